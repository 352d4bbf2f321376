package e2e

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/termclient"
)

// TestSoftPOSRefundPolicy: on a SoftPOS a purchase may be voided only the same day
// and refunded only from the next day (local time), never for more than it was;
// each decline says why. The switch's clock is injected: noon in the acquirer's zone,
// moved a day on by the test.
func TestSoftPOSRefundPolicy(t *testing.T) {
	loc, _ := time.LoadLocation("Asia/Shanghai")
	y, m, d := time.Now().In(loc).Date()
	noon, began := time.Date(y, m, d, 12, 0, 0, 0, loc), time.Now()
	var shift atomic.Int64
	clock := func() time.Time { return noon.Add(time.Duration(shift.Load()) + time.Since(began)) }
	f := startDemo(t, func(c *config.Config) { c.Clock = clock })
	mac, _ := termclient.RetailMAC(demoTAK)
	buy := func(amount int64) termclient.Result {
		t.Helper()
		r := sendOn(t, f.c, softposAt(amount, clock()), mac)
		if r.RC != "00" {
			t.Fatalf("purchase of %d: %+v", amount, r)
		}
		return r
	}
	follow := func(proc, rrn string, amount int64) termclient.Result {
		tx := softposAt(amount, clock())
		tx.ProcCode, tx.RRN = proc, rrn
		return sendOn(t, f.c, tx, mac)
	}
	a, b := buy(3000), buy(2000)
	if r := follow(message.PCRefund, a.RRN, 1000); r.RC != "12" || r.Reason != "refund-not-before-next-day" {
		t.Fatalf("same-day SoftPOS refund: %+v", r)
	}
	if r := follow(message.PCVoid, b.RRN, 2000); r.RC != "00" {
		t.Fatalf("same-day SoftPOS void: %+v", r)
	}
	shift.Store(int64(24 * time.Hour))
	if r := follow(message.PCRefund, a.RRN, 1000); r.RC != "00" {
		t.Fatalf("next-day SoftPOS refund: %+v", r)
	}
	if r := follow(message.PCRefund, a.RRN, 2001); r.RC != "13" || r.Reason != "refund-exceeds-original" {
		t.Fatalf("refunds above the original: %+v", r)
	}
	c := buy(1500)
	shift.Store(int64(48 * time.Hour))
	if r := follow(message.PCVoid, c.RRN, 1500); r.RC != "12" || r.Reason != "void-not-same-day" {
		t.Fatalf("next-day SoftPOS void: %+v", r)
	}
	// A countertop POS may refund the same day (the default policy of other kinds).
	p := f.send(pos(2500))
	rf := pos(500)
	rf.ProcCode, rf.RRN = message.PCRefund, p.RRN
	if r := f.send(rf); r.RC != "00" {
		t.Fatalf("same-day POS refund: %+v", r)
	}
}

// TestRefundPolicyConfigured: a configured policy comes before the defaults: here
// POS terminals of standard merchants may not void, and refund at most half.
func TestRefundPolicyConfigured(t *testing.T) {
	f := startDemo(t, func(c *config.Config) {
		c.Refunds.Policies = []config.TxnPolicy{{Kind: "pos", Tier: "standard", Void: "never", MaxRefundPercent: 50}}
	})
	p := f.send(pos(2000))
	if p.RC != "00" {
		t.Fatal(p)
	}
	v := pos(2000)
	v.ProcCode, v.RRN = message.PCVoid, p.RRN
	if r := f.send(v); r.RC != "12" || r.Reason != "void-not-allowed-for-terminal" {
		t.Fatalf("void: %+v", r)
	}
	rf := pos(1001)
	rf.ProcCode, rf.RRN = message.PCRefund, p.RRN
	if r := f.send(rf); r.RC != "13" || r.Reason != "refund-exceeds-policy-share" {
		t.Fatalf("refund of more than half: %+v", r)
	}
	rf = pos(1000)
	rf.ProcCode, rf.RRN = message.PCRefund, p.RRN
	if r := f.send(rf); r.RC != "00" {
		t.Fatalf("refund of half: %+v", r)
	}
}
