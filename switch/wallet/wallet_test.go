package wallet

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/issuer"
	"github.com/switchyard/switchyard/switch/pipeline"
)

func newPair(t *testing.T, timeout time.Duration) (*Sim, *Connector) {
	t.Helper()
	s, err := StartSim("127.0.0.1:0", SimConfig{ConfirmAfter: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	c, err := New(Config{ID: "wechat", URL: s.URL(), Timeout: timeout, Poll: 10 * time.Millisecond, RequestTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

// TestConnectorAgainstSim: each script of the simulator gives the connector the
// answer it must: approvals (at once, after the payer confirms, after an HTTP 500
// learned by query), declines (by err_code, the payer cancelling), a timeout (payer
// never confirms, network silent: only the first is the payer's walk-away,
// pipeline.ErrPayerNotConfirmed, which the breaker does not count); reverse and
// refund reach the ledger.
func TestConnectorAgainstSim(t *testing.T) {
	s, c := newPair(t, 500*time.Millisecond)
	cases := []struct {
		amount  int64
		rc      string
		timeout bool
		// walkAway: the timeout is the payer's (the network kept answering USERPAYING)
		walkAway bool
		state    string
	}{
		{amount: 1000, rc: "00", state: Success},
		{amount: 1051, rc: "51", state: PayError},
		{amount: 1005, rc: "05", state: PayError},
		{amount: 1014, rc: "14", state: PayError},
		{amount: 1062, rc: "00", state: Success},
		{amount: 1063, rc: "05", state: PayError},
		{amount: 1064, timeout: true, walkAway: true, state: UserPaying},
		{amount: 1091, timeout: true, state: Success},
		{amount: 1096, rc: "00", state: Success},
	}
	for i, tc := range cases {
		rrn := "00000000000" + string(rune('a'+i))
		rc, auth, err := c.Pay(context.Background(), pipeline.WalletPayment{RRN: rrn, Code: "134567890123456789", Amount: tc.amount, Currency: "156", TID: "T0000001", MID: "000000000000001"})
		if tc.timeout {
			if !errors.Is(err, issuer.ErrTimeout) || errors.Is(err, pipeline.ErrPayerNotConfirmed) != tc.walkAway {
				t.Fatalf("amount %d: %q %v, want a timeout (the payer's: %v)", tc.amount, rc, err, tc.walkAway)
			}
		} else if err != nil || rc != tc.rc || (rc == "00" && len(auth) != 6) {
			t.Fatalf("amount %d: rc %q auth %q err %v, want %s", tc.amount, rc, auth, err, tc.rc)
		}
		if tr, ok := s.Trade(rrn); !ok || tr.State != tc.state {
			t.Fatalf("amount %d: trade %+v", tc.amount, tr)
		}
		if tc.timeout {
			if err := c.Reverse(context.Background(), rrn, false); err != nil {
				t.Fatal(err)
			}
			if tr, _ := s.Trade(rrn); tr.State != Revoked {
				t.Fatalf("amount %d: after reverse %+v", tc.amount, tr)
			}
		}
	}
	// Refund in part, twice the same (idempotent), more than is left, then undo.
	if rc, _, err := c.Refund(context.Background(), pipeline.WalletRefund{RRN: "R1", OriginalRRN: "00000000000a", Amount: 400}); rc != "00" || err != nil {
		t.Fatalf("refund %q %v", rc, err)
	}
	if rc, _, _ := c.Refund(context.Background(), pipeline.WalletRefund{RRN: "R1", OriginalRRN: "00000000000a", Amount: 400}); rc != "00" {
		t.Fatalf("refund resent %q", rc)
	}
	if rc, _, _ := c.Refund(context.Background(), pipeline.WalletRefund{RRN: "R2", OriginalRRN: "00000000000a", Amount: 700}); rc != "13" {
		t.Fatalf("refund over %q", rc)
	}
	if tr, _ := s.Trade("00000000000a"); tr.Refunded != 400 {
		t.Fatalf("refunded %d", tr.Refunded)
	}
	if err := c.Reverse(context.Background(), "R1", true); err != nil {
		t.Fatal(err)
	}
	if tr, _ := s.Trade("00000000000a"); tr.Refunded != 0 || tr.State != Success {
		t.Fatalf("after undoing the refund: %+v", tr)
	}
	// A cancel that overtakes its pay: the pay finds the order reversed.
	if err := c.Reverse(context.Background(), "early", false); err != nil {
		t.Fatal(err)
	}
	if rc, _, _ := c.Pay(context.Background(), pipeline.WalletPayment{RRN: "early", Code: "134567890123456789", Amount: 100}); rc != "94" {
		t.Fatalf("pay after its cancel: %q", rc)
	}
}

// TestConnectorNetworkDown: a refused connection is "unavailable" (nothing sent, no
// reversal owed).
func TestConnectorNetworkDown(t *testing.T) {
	s, c := newPair(t, time.Second)
	_ = s.Close()
	_, _, err := c.Pay(context.Background(), pipeline.WalletPayment{RRN: "x", Code: "134567890123456789", Amount: 100})
	if !errors.Is(err, issuer.ErrUnavailable) {
		t.Fatalf("%v", err)
	}
}
