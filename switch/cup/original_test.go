package cup

import (
	"context"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
)

// cupHarness is an adapter in front of a fakePipeline, a terminal signed in to it
// (its MAK known to both) and a clock the test moves.
type cupHarness struct {
	t    *testing.T
	a    *Adapter
	p    *fakePipeline
	term *Terminal
	now  time.Time
}

func newCUPHarness(t *testing.T) *cupHarness {
	mak := []byte("0123456789ABCDEF")
	h := &cupHarness{t: t, p: &fakePipeline{}, now: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)}
	h.a = NewAdapter(Config{HSM: &fakeHSM{mak: mak}, Terminals: fakeTerminals{}, Now: func() time.Time { return h.now }}, h.p)
	h.term = &Terminal{TID: "T0000001", MID: "000000000000001", mak: mak, batch: "000007",
		TPDU: TPDU{0x60, 0, 3, 0, 0}, Header: Header{0x60, 0x31, 0, 0x31, 0, 0}}
	return h
}

// send builds tx, lets change alter the frame (nil: none), MACs it and returns the
// answer.
func (h *cupHarness) send(tx Txn, change func(*Frame)) *Frame {
	h.t.Helper()
	f, err := h.term.Build(tx)
	if err != nil {
		h.t.Fatal(err)
	}
	if change != nil {
		change(f)
	}
	body, err := f.Encode(h.term.MACOf)
	if err != nil {
		h.t.Fatal(err)
	}
	resp, err := h.a.Process(context.Background(), &frontend.Conn{Listener: "cup", Dialect: message.DialectCUP}, body)
	if err != nil {
		h.t.Fatal(err)
	}
	ans, err := Decode(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return ans
}

// TestPreauthVoidOfASale: a pre-authorization void (0100, 60.1 = 11) whose 61.2 names
// a sale's STAN is not the pipeline's reversal of that sale: the terminal would show
// a hold released while the customer's purchase was taken back at the issuer. It is
// answered 25 (no such pre-authorization) and nothing is forwarded; one naming a
// pre-authorization goes on as before.
func TestPreauthVoidOfASale(t *testing.T) {
	h := newCUPHarness(t)
	card := "4761739001010119"
	sale := h.send(Txn{Kind: "sale", PAN: card, Expiry: "2912", Amount: 300, STAN: "000001"}, nil)
	pre := h.send(Txn{Kind: "preauth", PAN: card, Expiry: "2912", Amount: 300, STAN: "000002"}, nil)
	if sale.Str(39) != "00" || pre.Str(39) != "00" {
		t.Fatalf("sale %s, pre-authorization %s", Summary(sale), Summary(pre))
	}
	n := len(h.p.reqs)
	ans := h.send(Txn{Kind: "preauth-void", PAN: card, Expiry: "2912", Amount: 300, OrigSTAN: "000001", STAN: "000003"}, nil)
	if len(h.p.reqs) != n {
		r := h.p.last()
		t.Fatalf("a pre-authorization void naming a sale reached the pipeline as %s DE 90 %s (answered %s)", r.MTI, r.Original, Summary(ans))
	}
	if ans.Str(39) != message.RCOriginalNotFound || ans.MTI() != "0110" {
		t.Errorf("pre-authorization void naming a sale: %s, want 0110 rc=25", Summary(ans))
	}
	ans = h.send(Txn{Kind: "preauth-void", PAN: card, Expiry: "2912", Amount: 300, OrigSTAN: "000002", STAN: "000004"}, nil)
	if r := h.p.last(); ans.Str(39) != "00" || r.MTI != "0400" || r.Original[:10] != "0100000002" {
		t.Errorf("pre-authorization void of the pre-authorization: %s, pipeline got %s DE 90 %s", Summary(ans), r.MTI, r.Original)
	}
}
