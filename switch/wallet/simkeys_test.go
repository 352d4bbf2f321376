package wallet

import (
	"context"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/pipeline"
)

// TestSimIdempotencyKeys: the simulator keeps a network's rules on the merchant's
// numbers, which the switch's guarantees rest on. A pay or refund resent under its
// number is answered as the first one only when it is the same request: another
// payment under a used out_trade_no (another amount or code), or another refund
// under a used out_refund_no (another order or amount), is refused, not answered
// SUCCESS with nothing charged or refunded. And a refund whose undoing (reverse with
// its out_refund_no) overtook it is refused when it comes, as a pay is after its
// cancel: the switch, which reversed it, must not find the payer refunded.
func TestSimIdempotencyKeys(t *testing.T) {
	s, c := newPair(t, time.Second)
	ctx := context.Background()
	pay := func(rrn, code string, amount int64) string {
		rc, _, err := c.Pay(ctx, pipeline.WalletPayment{RRN: rrn, Code: code, Amount: amount, Currency: "156", MID: "000000000000001"})
		if err != nil {
			t.Fatalf("pay %s: %v", rrn, err)
		}
		return rc
	}
	refund := func(rrn, orig string, amount int64) string {
		rc, _, err := c.Refund(ctx, pipeline.WalletRefund{RRN: rrn, OriginalRRN: orig, Amount: amount})
		if err != nil {
			t.Fatalf("refund %s: %v", rrn, err)
		}
		return rc
	}
	if rc := pay("000000000101", "134567890123456789", 1000); rc != "00" {
		t.Fatalf("pay: %s", rc)
	}
	if rc := pay("000000000101", "134567890123456789", 1000); rc != "00" {
		t.Fatalf("the same pay resent: %s", rc)
	}
	if rc := pay("000000000101", "134567890123456789", 9000); rc != "94" {
		t.Fatalf("another amount under a used out_trade_no: %s, want 94 (OUT_TRADE_NO_USED)", rc)
	}
	if rc := pay("000000000101", "139999990123456789", 1000); rc != "94" {
		t.Fatalf("another payer's code under a used out_trade_no: %s, want 94", rc)
	}
	if rc := pay("000000000102", "134567890123456789", 3000); rc != "00" {
		t.Fatalf("second pay: %s", rc)
	}

	if rc := refund("000000000201", "000000000101", 400); rc != "00" {
		t.Fatalf("refund: %s", rc)
	}
	if rc := refund("000000000201", "000000000101", 400); rc != "00" {
		t.Fatalf("the same refund resent: %s", rc)
	}
	if rc := refund("000000000201", "000000000102", 400); rc == "00" {
		t.Fatal("a refund of another order under a used out_refund_no answered 00")
	}
	if rc := refund("000000000201", "000000000101", 500); rc == "00" {
		t.Fatal("a refund of another amount under a used out_refund_no answered 00")
	}
	if tr, _ := s.Trade("000000000102"); tr.Refunded != 0 {
		t.Fatalf("second order refunded %d", tr.Refunded)
	}

	// The undoing of refund 202 overtakes it.
	if err := c.Reverse(ctx, "000000000202", true); err != nil {
		t.Fatal(err)
	}
	if rc := refund("000000000202", "000000000102", 300); rc == "00" {
		t.Fatal("a refund that came after its undoing was made")
	}
	if tr, _ := s.Trade("000000000102"); tr.Refunded != 0 {
		t.Fatalf("refunded %d after the refund's undoing", tr.Refunded)
	}
}
