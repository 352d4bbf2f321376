package e2e

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/issuersim"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/server"
	"github.com/switchyard/switchyard/switch/termclient"
)

// Issue 11, item 10: a purchase of nothing is not approved.
func TestZeroAmountPurchaseDeclined13(t *testing.T) {
	f := startDemo(t, nil)
	for _, mti := range []string{"0200", "0100"} {
		tx := pos(0)
		tx.MTI = mti
		r := f.send(tx)
		if r.RC != message.RCInvalidAmount || r.Reason != "invalid-amount" || r.AuthCode != "" {
			t.Fatalf("%s of 0: %+v", mti, r)
		}
		rec, err := f.s.Journal.Get(r.RRN)
		if err != nil || rec.RC != "13" || rec.Issuer != "" {
			t.Fatalf("journal: %+v %v", rec, err)
		}
	}
}

// Issue 11, item 7: a request with the DE 41 + 11 + 7 of another but another amount or
// card is not a resend: 94, journaled, nothing forwarded; the first one's resends still
// get the first answer.
func TestReusedKeyWithOtherContentAnswered94(t *testing.T) {
	f := startDemo(t, nil)
	first := pos(1010)
	first.STAN, first.Time = "510001", time.Now()
	a := f.send(first)
	if a.RC != "00" || a.AuthCode == "" {
		t.Fatal(a)
	}
	other := first
	other.Amount, other.PAN = 999910, testPAN(7)
	for _, tx := range []termclient.Txn{other, func() termclient.Txn { x := first; x.Amount = 1020; return x }()} {
		r := f.send(tx)
		if r.RC != message.RCDuplicate || r.AuthCode != "" || r.Reason != "duplicate-key-other-content" || r.RRN == a.RRN || r.RRN == "" {
			t.Fatalf("other content under the same key: %+v (first %+v)", r, a)
		}
		rec, err := f.s.Journal.Get(r.RRN)
		if err != nil || rec.RC != "94" || rec.OriginalRRN != a.RRN || rec.Amount != tx.Amount {
			t.Fatalf("94 not journaled: %+v %v", rec, err)
		}
		if e := f.sim().Ledger()[r.RRN]; e.Requests != 0 {
			t.Fatalf("94 forwarded: %+v", e)
		}
	}
	if r := f.send(first); r.RC != "00" || r.RRN != a.RRN || r.AuthCode != a.AuthCode {
		t.Fatalf("a true resend after the 94s: %+v, want %+v", r, a)
	}
	if e := f.sim().Ledger()[a.RRN]; e.Requests != 1 {
		t.Fatalf("first forwarded %d times", e.Requests)
	}
}

// Issue 11, item 8: a reversal that comes before its original is remembered; the
// original, arriving late, is declined and never reaches the issuer.
func TestReversalBeforeOriginalDeclinesTheOriginal(t *testing.T) {
	f := startDemo(t, nil)
	orig := pos(3000)
	orig.STAN, orig.Time = "520001", time.Now()
	rev := pos(3000)
	rev.MTI, rev.STAN, rev.PAN = "0400", "520002", ""
	rev.Original = termclient.OriginalData("0200", orig.STAN, message.FormatDE7(orig.Time))
	rr := f.send(rev)
	if rr.RC != "00" || rr.MTI != "0410" {
		t.Fatalf("0410: %+v", rr)
	}
	r := f.send(orig)
	if r.RC != message.RCInvalidTransaction || r.Reason != "reversed-before-arrival" || r.AuthCode != "" {
		t.Fatalf("late original: %+v", r)
	}
	rec, err := f.s.Journal.Get(r.RRN)
	if err != nil || rec.RC != "12" || rec.Issuer != "" || !contains(rec.Events[len(rec.Events)-1].Note+rec.Events[len(rec.Events)-2].Note, rr.RRN) {
		t.Fatalf("journal of the late original: %+v %v", rec, err)
	}
	if e := f.sim().Ledger()[r.RRN]; e.Requests != 0 {
		t.Fatalf("late original forwarded: %+v", e)
	}
	// Its resend gets the same decline.
	if again := f.send(orig); again.RC != "12" || again.RRN != r.RRN {
		t.Fatalf("resend of the late original: %+v", again)
	}
	// Another transaction of the terminal is not affected.
	other := pos(3000)
	other.STAN = "520003"
	if o := f.send(other); o.RC != "00" {
		t.Fatalf("unrelated purchase: %+v", o)
	}
}

// Issue 11, item 9: a reversal whose amount is not its original's is declined 13 and
// reverses nothing, or reverses in full when configured.
func TestReversalAmountMismatch(t *testing.T) {
	for _, mode := range []string{"decline", "reverse_full"} {
		t.Run(mode, func(t *testing.T) {
			f := startDemo(t, func(c *config.Config) { c.Reversals.AmountMismatch = mode })
			tx := pos(5000)
			tx.STAN, tx.Time = "530001", time.Now()
			orig := f.send(tx)
			if orig.RC != "00" {
				t.Fatal(orig)
			}
			rev := pos(4000)
			rev.MTI, rev.STAN, rev.PAN = "0400", "530002", ""
			rev.Original = termclient.OriginalData("0200", tx.STAN, message.FormatDE7(tx.Time))
			r := f.send(rev)
			rrec, err := f.s.Journal.Get(r.RRN)
			if err != nil {
				t.Fatal(err)
			}
			o, err := f.s.Journal.Get(orig.RRN)
			if err != nil {
				t.Fatal(err)
			}
			if mode == "decline" {
				if r.RC != message.RCInvalidAmount || r.Reason != "reversal-amount-mismatch" || rrec.RC != "13" || rrec.OriginalRRN != orig.RRN {
					t.Fatalf("mismatched reversal: %+v, journal %+v", r, rrec)
				}
				if o.Reversed() {
					t.Fatalf("original reversed by a declined reversal: %+v", o)
				}
				return
			}
			if r.RC != "00" || o.ReversedBy != r.RRN || !contains(rrec.Events[len(rrec.Events)-1].Note+rrec.Events[len(rrec.Events)-2].Note, "reversed in full") {
				t.Fatalf("reverse_full: %+v, original %+v, reversal %+v", r, o, rrec)
			}
		})
	}
}

// Issue 11, item 4: an approval whose answer has no delivery mark when the switch
// stops (a crash between the answer and its write to the socket) is in doubt: the
// restart reverses it through the store-and-forward queue, and the terminal's resend
// is answered 91 approval-reversed, never with the approval.
func TestRecoveryReversesApprovalWithoutDeliveryMark(t *testing.T) {
	dir := t.TempDir()
	c := demoConfig(t, dir)
	s1, err := server.New(c, zerolog.Nop(), demoIssuer)
	if err != nil {
		t.Fatal(err)
	}
	tx := pos(4200)
	tx.STAN, tx.Time = "540001", time.Now()
	// The record as the pipeline leaves it when the process dies right after the
	// journal has the issuer's approval and before the delivery mark.
	rrn, err := s1.Journal.NextRRN()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	rec := &journal.Record{RRN: rrn, Received: now, MTI: "0200", Type: "purchase", ProcCode: message.PCPurchase,
		TID: tx.TID, MID: tx.MID, STAN: tx.STAN, DE7: message.FormatDE7(tx.Time), PANMasked: message.MaskPAN(tx.PAN),
		CardHash: s1.Pipeline.CardHash(tx.PAN), Amount: tx.Amount, Currency: "156", Issuer: "demo", IssuerSTAN: "777001",
		RC: "00", AuthCode: "A00001", DecidedBy: "issuer"}
	rec.AddEvent(journal.StateReceived, now, "")
	rec.AddEvent(journal.StateSent, now, "")
	rec.AddEvent(journal.StateAnswered, now, "")
	if err := s1.Journal.Write(context.Background(), rec, true, true); err != nil {
		t.Fatal(err)
	}
	s1.Close()

	s2, err := server.New(c, zerolog.Nop(), demoIssuer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s2.Close)
	got, err := s2.Journal.Get(rrn)
	if err != nil {
		t.Fatal(err)
	}
	if got.ReversedBy != "switch:undelivered-at-restart" || !hasState(got, journal.StateInDoubt) || !hasState(got, journal.StateReversed) {
		t.Fatalf("approval without delivery mark after restart: %+v", got)
	}
	cl, err := termclient.Dial(s2.ListenerAddr("ascii"), message.DialectASCII, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	r := sendOn(t, cl, tx, nil)
	if r.RC != message.RCIssuerUnavailable || r.AuthCode != "" || r.RRN != rrn || r.Reason != "approval-reversed" {
		t.Fatalf("resend of the reversed approval: %+v", r)
	}
	// A delivered approval is left alone by a restart.
	ok := sendOn(t, cl, func() termclient.Txn { x := pos(4300); x.STAN = "540002"; return x }(), nil)
	if ok.RC != "00" {
		t.Fatal(ok)
	}
	waitFor(t, "delivery mark", func() bool {
		r, err := s2.Journal.Get(ok.RRN)
		return err == nil && hasState(r, journal.StateResponded)
	})
	cl.Close()
	s2.Close()
	s3, err := server.New(c, zerolog.Nop(), demoIssuer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s3.Close)
	if r, err := s3.Journal.Get(ok.RRN); err != nil || r.Reversed() {
		t.Fatalf("delivered approval after restart: %+v %v", r, err)
	}
}

// luhnPAN returns the i-th Luhn-valid 16-digit PAN of a 6-digit BIN.
func luhnPAN(bin string, i int) string {
	body := fmt.Sprintf("%s%09d", bin, i)
	sum := 0
	for j := len(body) - 1; j >= 0; j-- {
		d := int(body[j] - '0')
		if (len(body)-j)%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return body + strconv.Itoa((10-sum%10)%10)
}

// Issue 11, item 1: an issuer that loses one answer in ten, with the timeouts of each
// burst arriving together, never opens the circuit breaker (it used to open after five
// timeouts in a row and stay open while late timeouts re-armed it).
func TestTenPercentIssuerFaultsDoNotOpenTheBreaker(t *testing.T) {
	sim, err := issuersim.Start(issuersim.Config{Addr: "127.0.0.1:0", BIN: "411111"})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	f := startDemo(t, func(c *config.Config) {
		c.Issuers = []config.Issuer{{ID: "flaky", Addrs: []string{sim.Addr()}, Timeout: config.Duration(200 * time.Millisecond)}}
		c.Routes = append(c.Routes, config.Route{Prefix: "411111", Issuer: "flaky"})
	})
	waitUp(t, func() bool { return f.send(card(luhnPAN("411111", 0), 100)).RC == "00" })
	sim.SetFaults(issuersim.Faults{Drop: 0.1})
	const bursts, size = 10, 40
	conns := make([]*termclient.Client, size)
	for i := range conns {
		c, err := termclient.Dial(f.s.ListenerAddr("ascii"), message.DialectASCII, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	var mu sync.Mutex
	reasons := map[string]int{}
	for b := range bursts {
		var wg sync.WaitGroup
		for i := range size {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n := 1 + b*size + i
				tx := termclient.Txn{PAN: luhnPAN("411111", n), Amount: 1000, Expiry: "2912",
					TID: fmt.Sprintf("LT%06d", 1+i), MID: "000000000000003"}
				m, err := termclient.Build(tx, message.DialectASCII)
				if err != nil {
					t.Error(err)
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				resp, err := conns[i].Send(ctx, m, nil)
				if err != nil {
					t.Error(err)
					return
				}
				r, err := termclient.Decode(resp)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				reasons[r.RC+" "+r.Reason]++
				mu.Unlock()
			}()
		}
		wg.Wait()
	}
	if reasons["00 "] < bursts*size/2 || reasons["91 issuer-circuit-open"] != 0 {
		t.Fatalf("answers by rc and reason: %v", reasons)
	}
	t.Logf("answers by rc and reason: %v", reasons)
}

// Issue 11, item 7, while the first is still at the issuer: a request with its key and
// another amount does not wait for (and get) the first one's answer.
func TestReusedKeyWhileFirstInFlightAnswered94(t *testing.T) {
	sim, err := issuersim.Start(issuersim.Config{Addr: "127.0.0.1:0", BIN: "411111"})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	f := startDemo(t, func(c *config.Config) {
		c.Issuers = []config.Issuer{{ID: "slow", Addrs: []string{sim.Addr()}, Timeout: config.Duration(5 * time.Second)}}
		c.Routes = append(c.Routes, config.Route{Prefix: "411111", Issuer: "slow"})
	})
	waitUp(t, func() bool { return f.send(card(luhnPAN("411111", 1), 100)).RC == "00" })
	sim.SetFaults(issuersim.Faults{Delay: 1, DelayBy: 2 * time.Second})
	first := card(luhnPAN("411111", 2), 1010)
	first.STAN, first.Time = "550001", time.Now()
	done := make(chan termclient.Result, 1)
	go func() {
		c, err := termclient.Dial(f.s.ListenerAddr("ascii"), message.DialectASCII, nil)
		if err != nil {
			t.Error(err)
			done <- termclient.Result{}
			return
		}
		defer c.Close()
		m, _ := termclient.Build(first, message.DialectASCII)
		resp, err := c.Send(context.Background(), m, nil)
		if err != nil {
			t.Error(err)
			done <- termclient.Result{}
			return
		}
		r, _ := termclient.Decode(resp)
		done <- r
	}()
	// The first is in flight once its write-ahead is in the journal.
	waitFor(t, "the first request at the issuer", func() bool {
		_, found, _ := f.s.Journal.LookupDuplicate(first.TID, first.STAN, message.FormatDE7(first.Time))
		return found
	})
	other := first
	other.Amount = 999910
	start := time.Now()
	r := f.send(other)
	if r.RC != message.RCDuplicate || r.Reason != "duplicate-key-other-content" || time.Since(start) > time.Second {
		t.Fatalf("other content while the first is in flight: %+v after %s", r, time.Since(start))
	}
	if a := <-done; a.RC != "00" || a.RRN == r.RRN {
		t.Fatalf("first: %+v", a)
	}
}
