package cup

import (
	"context"
	"fmt"
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

// TestReversalOriginalChoice: a reversal's original is its own F11 when the session
// knows that STAN as a request of the kind its 60.1 names (a void's reversal, whose
// F61 names the sale, takes back the void); else its 61.2 when that is such a
// request (a terminal reversing under a STAN of its own); else F11, an original the
// switch never saw (DE 90 of the kind 60.1 names), never a request of another kind
// nor one received more than a day before.
func TestReversalOriginalChoice(t *testing.T) {
	h := newCUPHarness(t)
	card := "4761739001010119"
	h.send(Txn{Kind: "sale", PAN: card, Expiry: "2912", Amount: 300, STAN: "000001"}, nil)
	h.now = h.now.Add(time.Second)
	void := Txn{Kind: "void", PAN: card, Expiry: "2912", Amount: 300, RRN: "000000000042", OrigSTAN: "000001", STAN: "000002"}
	reverse := func(tx Txn, sent bool) *message.Request {
		t.Helper()
		f, err := h.term.Build(tx)
		if err != nil {
			t.Fatal(err)
		}
		if sent {
			h.send(tx, nil)
			h.now = h.now.Add(time.Second)
		}
		rev, err := ReversalOf(f)
		if err != nil {
			t.Fatal(err)
		}
		n := len(h.p.reqs)
		ans := exchange(t, h.a, &frontend.Conn{Listener: "cup", Dialect: message.DialectCUP}, rev, h.term.MACOf)
		if len(h.p.reqs) != n+1 || ans.MTI() != "0410" {
			t.Fatalf("reversal of %s: %s", tx.Kind, Summary(ans))
		}
		return h.p.last()
	}
	// The void never arrived: an unknown original of STAN 000002, not the sale.
	if r := reverse(void, false); r.Original[:10] != "0200000002" || r.ProcCode != message.PCVoid {
		t.Errorf("reversal of an unsent void: DE 90 %s DE 3 %s, want 0200000002... 020000", r.Original, r.ProcCode)
	}
	// The void arrived: its reversal names it (its DE 7), not the sale.
	void.STAN = "000003"
	if r := reverse(void, true); r.Original[:10] != "0200000003" || r.ProcCode != message.PCVoid || r.Original[10:20] != h.p.reqs[len(h.p.reqs)-2].DE7 {
		t.Errorf("reversal of the void: DE 90 %s DE 3 %s", r.Original, r.ProcCode)
	}
	// A terminal reversing the sale under a STAN of its own, 61.2 naming the sale.
	f, _ := h.term.Build(Txn{Kind: "reversal", PAN: card, Expiry: "2912", Amount: 300, STAN: "000009", OrigSTAN: "000001"})
	ans := exchange(t, h.a, &frontend.Conn{Listener: "cup", Dialect: message.DialectCUP}, f, h.term.MACOf)
	if r := h.p.last(); r.MTI != "0400" || r.Original[:10] != "0200000001" || r.Original[10:20] != h.p.reqs[0].DE7 {
		t.Errorf("reversal under its own STAN naming the sale in 61.2: %s, DE 90 %s", Summary(ans), r.Original)
	}
	// A sale of more than a day ago is no reversal's original, though the session
	// holds its STAN (a terminal whose counter started again reverses a sale of
	// the same STAN and amount that never arrived).
	old := Txn{Kind: "sale", PAN: card, Expiry: "2912", Amount: 500, STAN: "000050"}
	h.send(old, nil)
	oldDE7 := h.p.last().DE7
	h.now = h.now.Add(25 * time.Hour)
	f, _ = h.term.Build(Txn{Kind: "reversal", PAN: card, Expiry: "2912", Amount: 500, STAN: "000050"})
	exchange(t, h.a, &frontend.Conn{Listener: "cup", Dialect: message.DialectCUP}, f, h.term.MACOf)
	if r := h.p.last(); r.MTI != "0400" || r.Original[10:20] == oldDE7 {
		t.Errorf("reversal 25 h after a sale of its STAN and amount named that sale: DE 90 %s", r.Original)
	}
	h.now = h.now.Add(-25 * time.Hour)
}

// TestProcessingCodeMatchesType: F3 and 60.1 must name the same transaction (the
// spec's table: a sale 000000 and 22, a refund 200000 and 25, a balance inquiry
// 310000 and 01...). A request whose F3 says another (a refund's or void's 20, a
// balance inquiry's 31, under a sale's 60.1 22) is refused 12
// processing-code-mismatch, MAC'd, nothing forwarded: until 6 December 2026 60.1
// alone decided, and a terminal that labelled a refund 0200/200000 with 60.1 22
// had the card charged as a sale. A request without F3 goes on as before.
func TestProcessingCodeMatchesType(t *testing.T) {
	h := newCUPHarness(t)
	card := "4761739001010119"
	for i, f3 := range []string{"200000", "310000"} {
		ans := h.send(Txn{Kind: "sale", PAN: card, Expiry: "2912", Amount: 300, STAN: fmt.Sprintf("%06d", i+1)}, func(f *Frame) { f.Set(3, f3) })
		if ans.Str(39) != message.RCInvalidTransaction || !ans.Has(64) || len(h.p.reqs) != 0 {
			t.Errorf("0200 F3 %s 60.1 22: %s, %d forwarded; want 12, MAC'd, none", f3, Summary(ans), len(h.p.reqs))
		}
	}
	if ans := h.send(Txn{Kind: "preauth", PAN: card, Expiry: "2912", Amount: 300, STAN: "000003"}, nil); ans.Str(39) != "00" {
		t.Errorf("pre-authorization 030000: %s", Summary(ans))
	}
	if ans := h.send(Txn{Kind: "sale", PAN: card, Expiry: "2912", Amount: 300, STAN: "000004"}, func(f *Frame) { f.Msg.UnsetField(3) }); ans.Str(39) != "00" {
		t.Errorf("sale without F3: %s", Summary(ans))
	}
}
