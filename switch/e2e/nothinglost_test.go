package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/issuersim"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/termclient"
)

// waitLedger waits until cond holds for the demo issuer's ledger entry of rrn.
func waitLedger(t *testing.T, sim *issuersim.Sim, rrn string, cond func(issuersim.Entry) bool) issuersim.Entry {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		e := sim.Ledger()[rrn]
		if cond(e) {
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("issuer ledger for %s: %+v", rrn, e)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDuplicatesAnsweredOnceForwardedOnce(t *testing.T) {
	f := startDemo(t, nil)
	tx := pos(1234)
	tx.STAN = "424242"
	tx.Time = time.Now()
	m1, _ := termclient.Build(tx, message.DialectASCII)
	b1, _ := message.Pack(m1, nil)
	// Three copies at once (the second and third arrive while the first is in flight),
	// and one more later.
	var wg sync.WaitGroup
	answers := make([]termclient.Result, 3)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := termclient.Dial(f.s.ListenerAddr("ascii"), message.DialectASCII, nil)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			raw, err := c.Exchange(context.Background(), "T0000001", "424242", b1)
			if err != nil {
				t.Error(err)
				return
			}
			answers[i] = decode(t, raw)
		}()
	}
	wg.Wait()
	later := f.send(tx)
	for _, a := range append(answers, later) {
		if a.RC != "00" || a.RRN != answers[0].RRN || a.AuthCode != answers[0].AuthCode {
			t.Fatalf("duplicate answered differently: %+v vs %+v", a, answers[0])
		}
	}
	if e := f.sim().Ledger()[answers[0].RRN]; e.Requests != 1 {
		t.Fatalf("forwarded %d times", e.Requests)
	}
}

func decode(t *testing.T, raw []byte) termclient.Result {
	t.Helper()
	m := newMsg()
	if err := m.Unpack(raw); err != nil {
		t.Fatal(err)
	}
	r, err := termclient.Decode(m)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestReversalsReachTheIssuer(t *testing.T) {
	f := startDemo(t, nil)
	tx := pos(5000)
	tx.STAN, tx.Time = "100001", time.Now()
	orig := f.send(tx)
	if orig.RC != "00" {
		t.Fatal(orig)
	}
	rev := pos(5000)
	rev.MTI, rev.STAN, rev.PAN = "0400", "100002", ""
	rev.Original = termclient.OriginalData("0200", "100001", message.FormatDE7(tx.Time))
	if r := f.send(rev); r.RC != "00" || r.MTI != "0410" {
		t.Fatalf("0410: %+v", r)
	}
	e := waitLedger(t, f.sim(), orig.RRN, func(e issuersim.Entry) bool { return e.Reversals >= 1 })
	if !e.Reversed {
		t.Fatal(e)
	}
	rec, err := f.s.Journal.Get(orig.RRN)
	if err != nil || !rec.Reversed() {
		t.Fatalf("original not marked reversed: %+v %v", rec, err)
	}
	// A second reversal of the same original forwards nothing more.
	rev.STAN = "100003"
	if r := f.send(rev); r.RC != "00" {
		t.Fatal(r)
	}
	// A reversal of an unknown original: answered 00, recorded, nothing forwarded.
	unknown := rev
	unknown.STAN = "100004"
	unknown.Original = termclient.OriginalData("0200", "999999", "0101000000")
	r := f.send(unknown)
	if r.RC != "00" {
		t.Fatal(r)
	}
	rec, _ = f.s.Journal.Get(r.RRN)
	if rec.Type != "reversal" || rec.OriginalRRN != "" {
		t.Fatalf("unknown original: %+v", rec)
	}
	// Reversals reach the issuer through the store-and-forward queue: once it is
	// empty, a second reversal forwarded would be in the ledger.
	waitFor(t, "the store-and-forward queue to empty", func() bool { return f.s.Queue.Len("") == 0 })
	if n := f.sim().Ledger()[orig.RRN].Reversals; n != 1 {
		t.Fatalf("the issuer got %d reversals for one original", n)
	}
}

func TestIssuerTimeoutIsReversedAndLateAnswerHandled(t *testing.T) {
	sim, err := issuersim.Start(issuersim.Config{Addr: "127.0.0.1:0", BIN: "411111"})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	f := startDemo(t, func(c *config.Config) {
		c.Issuers = []config.Issuer{{ID: "slow", Addrs: []string{sim.Addr()}, Timeout: config.Duration(200 * time.Millisecond)}}
		c.Routes = append(c.Routes, config.Route{Prefix: "411111", Issuer: "slow"})
	})
	waitUp(t, func() bool { return f.send(card("4111111111111111", 100)).RC == "00" })
	sim.SetFaults(issuersim.Faults{Delay: 1, DelayBy: 700 * time.Millisecond})
	r := f.send(card("4111111111111111", 4200))
	if r.RC != "91" || r.Reason != "issuer-timeout" {
		t.Fatalf("timeout: %+v", r)
	}
	sim.SetFaults(issuersim.Faults{})
	e := waitLedger(t, sim, r.RRN, func(e issuersim.Entry) bool { return e.Reversals >= 1 && e.Requests == 1 })
	if !e.Reversed || !e.Approved {
		t.Fatalf("the late approval must be reversed at the issuer: %+v", e)
	}
	rec, _ := f.s.Journal.Get(r.RRN)
	if rec.State == "" || !rec.Reversed() || !hasState(rec, journal.StateTimedOut) {
		t.Fatalf("journal: %+v", rec)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !contains(f.logs.String(), "late issuer answer") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !contains(f.logs.String(), "late issuer answer") {
		t.Fatal("the late answer was not noticed")
	}
}

func hasState(r *journal.Record, s journal.State) bool {
	for _, e := range r.Events {
		if e.State == s {
			return true
		}
	}
	return false
}

func TestVoidsAndRefunds(t *testing.T) {
	f := startDemo(t, nil)
	p := f.send(pos(10000))
	if p.RC != "00" {
		t.Fatal(p)
	}
	void := pos(10000)
	void.ProcCode, void.RRN = message.PCVoid, p.RRN
	if r := f.send(void); r.RC != "00" || r.AuthCode != p.AuthCode {
		t.Fatalf("void: %+v", r)
	}
	waitLedger(t, f.sim(), p.RRN, func(e issuersim.Entry) bool { return e.Reversed })
	if r := f.send(void); r.RC != "12" || r.Reason != "original-already-reversed" {
		t.Fatalf("second void: %+v", r)
	}
	unknown := void
	unknown.RRN = "999999999999"
	if r := f.send(unknown); r.RC != "25" {
		t.Fatalf("void of unknown: %+v", r)
	}

	// Refunds: partial refunds add up to at most the original.
	p2 := f.send(pos(8000))
	refund := func(amount int64, rrn string) termclient.Result {
		tx := pos(amount)
		tx.ProcCode, tx.RRN = message.PCRefund, rrn
		return f.send(tx)
	}
	if r := refund(3000, p2.RRN); r.RC != "00" {
		t.Fatalf("refund 1: %+v", r)
	}
	if r := refund(5001, p2.RRN); r.RC != "13" || r.Reason != "refund-exceeds-original" {
		t.Fatalf("refund over the original: %+v", r)
	}
	if r := refund(5000, p2.RRN); r.RC != "00" {
		t.Fatalf("refund 2: %+v", r)
	}
	if r := refund(1, p2.RRN); r.RC != "13" {
		t.Fatalf("refund past the original: %+v", r)
	}
	if r := refund(100, "999999999999"); r.RC != "25" {
		t.Fatalf("refund of unknown: %+v", r)
	}
	// A refund the issuer declines (amount ending in 05) releases its reservation.
	p3 := f.send(pos(2000))
	if r := refund(1005, p3.RRN); r.RC != "05" {
		t.Fatalf("declined refund: %+v", r)
	}
	if r := refund(2000, p3.RRN); r.RC != "00" {
		t.Fatalf("full refund after a declined one: %+v", r)
	}
	// A void of a reversed (voided) purchase is refused.
	v2 := void
	v2.RRN = p.RRN
	if r := f.send(v2); r.RC != "12" {
		t.Fatal(r)
	}
}

func TestBatchTotalsAndSettlement(t *testing.T) {
	// The switch's clock reads noon of today in the acquirer's zone, running on: the
	// transactions and the day settled below are that day even if midnight passes.
	loc, _ := time.LoadLocation("Asia/Shanghai")
	y, m, d := time.Now().In(loc).Date()
	noon, began := time.Date(y, m, d, 12, 0, 0, 0, loc), time.Now()
	f := startDemo(t, func(c *config.Config) { c.Clock = func() time.Time { return noon.Add(time.Since(began)) } })
	var sum int64
	var rrns []string
	for _, a := range []int64{1000, 2000, 3000} {
		r := f.send(pos(a))
		if r.RC != "00" {
			t.Fatal(r)
		}
		sum += a
		rrns = append(rrns, r.RRN)
	}
	f.send(pos(1051)) // declined: not in the totals
	rf := pos(500)
	rf.ProcCode, rf.RRN = message.PCRefund, rrns[0]
	if r := f.send(rf); r.RC != "00" {
		t.Fatal(r)
	}
	batch := func(bt string) termclient.Result {
		return f.send(termclient.Txn{MTI: "0500", ProcCode: message.PCBatch, TID: "T0000001", MID: "000000000000001", TLV: [][2]string{{"BT", bt}}})
	}
	if r := batch(fmt.Sprintf("3,%d,1,500", sum+1)); r.RC != "95" || r.Reason != "batch-totals-differ" {
		t.Fatalf("wrong totals: %+v", r)
	}
	// The batch was closed: the next batch is empty.
	if r := batch("0,0,0,0"); r.RC != "00" {
		t.Fatalf("empty batch: %+v", r)
	}
	f.send(pos(700))
	if r := batch("1,700,0,0"); r.RC != "00" {
		t.Fatalf("matching totals: %+v", r)
	}
	// Settlement of the day adds up exactly.
	out, code := f.cli(tokOperator, "settle", "--date", noon.Format("2006-01-02"), "--json")
	if code != 0 {
		t.Fatal(out)
	}
	_ = journal.Query{}
	if want := fmt.Sprintf(`"net": %d`, sum+700-500); !contains(out, want) {
		t.Fatalf("settlement %s does not contain %s", out, want)
	}
}

func TestStandInWhenIssuerDown(t *testing.T) {
	sim, err := issuersim.Start(issuersim.Config{Addr: "127.0.0.1:0", BIN: "411111"})
	if err != nil {
		t.Fatal(err)
	}
	addr := sim.Addr()
	f := startDemo(t, func(c *config.Config) {
		c.Issuers = []config.Issuer{{ID: "alt", Addrs: []string{addr}, Timeout: config.Duration(300 * time.Millisecond),
			StandIn: config.StandIn{Enabled: true, MaxAmount: 50000, PerCardCount: 2, PerCardSum: 80000}}}
		c.Routes = append(c.Routes, config.Route{Prefix: "411111", Issuer: "alt"})
	})
	waitUp(t, func() bool { r := f.send(card("4111111111111111", 100)); return r.RC == "00" && r.AuthCode[0] != 'S' })
	sim.Close() // the issuer goes away
	// The link's failed reconnect is logged once it has seen the connection go.
	waitFor(t, "the switch to see the issuer gone", func() bool { return contains(f.logs.String(), `"message":"issuer link"`) })
	r1 := f.send(card("4111111111111111", 30000))
	if r1.RC != "00" || r1.AuthCode[0] != 'S' {
		t.Fatalf("stand-in approval: %+v", r1)
	}
	if r := f.send(card("4111111111111111", 60000)); r.RC != "91" {
		t.Fatalf("above the stand-in amount: %+v", r)
	}
	if r := f.send(card("4111111111111111", 40000)); r.RC != "00" {
		t.Fatalf("second stand-in: %+v", r)
	}
	if r := f.send(card("4111111111111111", 100)); r.RC != "91" {
		t.Fatalf("over the per-card count: %+v", r)
	}
	rec, _ := f.s.Journal.Get(r1.RRN)
	if !rec.StandIn || rec.DecidedBy != "stand-in" {
		t.Fatalf("journal: %+v", rec)
	}
	// The issuer comes back: the advices reach it.
	sim2, err := issuersim.Start(issuersim.Config{Addr: addr, BIN: "411111"})
	if err != nil {
		t.Fatal(err)
	}
	defer sim2.Close()
	e := waitLedger(t, sim2, r1.RRN, func(e issuersim.Entry) bool { return e.Advices >= 1 })
	if !e.StandIn || e.Amount != 30000 {
		t.Fatalf("advice: %+v", e)
	}
}

func card(pan string, amount int64) termclient.Txn {
	tx := pos(amount)
	tx.PAN = pan
	return tx
}

func waitUp(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("not up in time")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func contains(s, sub string) bool { return len(s) >= len(sub) && (stringsIndex(s, sub) >= 0) }
