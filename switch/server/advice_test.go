package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/internal/testswitch"
	"github.com/switchyard/switchyard/switch/issuersim"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/saf"
)

// TestAdviceAnsweredUnprocessedSentAgain: an issuer answers the 0420 of a voided
// purchase 91 (its front end up, its host down: the reversal not booked); the advice
// stays queued and goes again until the issuer takes it, and the card is not left
// charged. (Until the third release of 6 December 2026 any answer acknowledged an advice: the 0430 of 91
// took the reversal out of the queue, and the issuer never reversed the purchase the
// terminal had voided.)
func TestAdviceAnsweredUnprocessedSentAgain(t *testing.T) {
	sim, s := simSwitch(t, issuersim.Faults{}, 10*time.Second, nil)
	tc := dial(t, s, "ascii", message.DialectASCII)
	sale := voidedSale(t, tc, sim, issuersim.Faults{AdviceUnavailable: 1})
	// The issuer answers the first try 91.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if st := s.Queue.IssuerStats()["sim"]; st != nil && st.Sent.Load() >= 1 && st.Sent.Load() == st.Acked.Load()+st.Failed.Load() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the 0420 was not tried")
		}
	}
	if e := sim.Ledger()[sale.RRN]; e.Reversed {
		t.Fatalf("the issuer booked a reversal it answered 91: %+v", e)
	}
	if n := s.Queue.Len("sim"); n != 1 {
		t.Fatalf("after the issuer's 91 the queue holds %d advices, want the 0420 still owed", n)
	}
	sim.SetFaults(issuersim.Faults{})
	for deadline := time.Now().Add(20 * time.Second); !sim.Ledger()[sale.RRN].Reversed; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the 0420 never reached the issuer again: %+v", sim.Ledger()[sale.RRN])
		}
	}
	for deadline := time.Now().Add(5 * time.Second); s.Queue.Len("sim") != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the 0420 the issuer took stays queued")
		}
	}
}

// TestAdviceAnsweredWithoutRCSentAgain: an issuer answers the 0420 of a voided
// purchase without DE 39, which says nothing of whether it reversed the purchase: the
// advice stays queued and goes again as a repeat (a failed try each time) until the
// issuer takes it. A warning says so at most once a minute for the issuer, however
// many such answers come. (Until the third release of 6 December 2026 an answer without DE 39
// acknowledged the advice: it left the queue, and the card could stay charged.)
func TestAdviceAnsweredWithoutRCSentAgain(t *testing.T) {
	logs := &testswitch.SyncBuffer{}
	sim, s := simSwitch(t, issuersim.Faults{}, 10*time.Second, logs)
	tc := dial(t, s, "ascii", message.DialectASCII)
	sale := voidedSale(t, tc, sim, issuersim.Faults{AdviceNoRC: 1})
	// Three tries answered without DE 39 (the queue's backoff: 0.5 s, then 1 s).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		st := s.Queue.IssuerStats()["sim"]
		if st != nil && st.Acked.Load() != 0 {
			t.Fatalf("an advice answered without DE 39 was acknowledged (%d tries failed before)", st.Failed.Load())
		}
		if st != nil && st.Failed.Load() >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the 0420 was not tried three times")
		}
	}
	if n := s.Queue.Len("sim"); n != 1 {
		t.Fatalf("after answers without DE 39 the queue holds %d advices, want the 0420 still owed", n)
	}
	if n := strings.Count(logs.String(), "advice answered without DE 39"); n != 1 {
		t.Errorf("%d warnings about answers without DE 39 within a minute, want 1:\n%s", n, logs.String())
	}
	if e := sim.Ledger()[sale.RRN]; e.Reversed {
		t.Fatalf("the simulator booked a reversal it answered without DE 39: %+v", e)
	}
	sim.SetFaults(issuersim.Faults{})
	for deadline := time.Now().Add(20 * time.Second); !sim.Ledger()[sale.RRN].Reversed; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the 0420 never reached the issuer again: %+v", sim.Ledger()[sale.RRN])
		}
	}
	if e := sim.Ledger()[sale.RRN]; e.Reversal90 == "" {
		t.Errorf("the repeat reached the issuer without DE 90: %+v", e)
	}
	for deadline := time.Now().Add(5 * time.Second); s.Queue.Len("sim") != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the 0420 the issuer took stays queued")
		}
	}
}

// TestAdviceAnsweredWithoutRCParked: an issuer (the simulator, over loopback TCP)
// answers the 0420 of a voided purchase without DE 39 on every try. The switch
// repeats it with backoff, and at saf.park_after such answers parks it: out of the
// queue (which empties: it stalls nothing), listed by GET /api/v1/saf/parked,
// counted in switchyard_saf_parked_total and logged; it is not sent again. (Until the
// fifth release of 6 December 2026 it was repeated for ever.)
func TestAdviceAnsweredWithoutRCParked(t *testing.T) {
	logs := &testswitch.SyncBuffer{}
	sim, s := simSwitchWith(t, issuersim.Faults{}, 10*time.Second, logs, func(c *config.Config) { c.SAF.ParkAfter = 3 })
	tc := dial(t, s, "ascii", message.DialectASCII)
	sale := voidedSale(t, tc, sim, issuersim.Faults{AdviceNoRC: 1})
	// Three tries answered without DE 39 (the queue's backoff: 0.5 s, then 1 s).
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		st := s.Queue.IssuerStats()["sim"]
		if st != nil && st.Acked.Load() != 0 {
			t.Fatalf("an advice answered without DE 39 was acknowledged (%d tries failed before)", st.Failed.Load())
		}
		if st != nil && st.Parked.Load() == 1 && s.Queue.Len("sim") == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the 0420 answered without DE 39 was not parked: %d queued", s.Queue.Len("sim"))
		}
	}
	if st := s.Queue.IssuerStats()["sim"]; st.Failed.Load() != 3 || st.Sent.Load() != 3 {
		t.Errorf("%d tries, %d failed: want 3 (saf.park_after), then none", st.Sent.Load(), st.Failed.Load())
	}
	if e := sim.Ledger()[sale.RRN]; e.Reversed {
		t.Fatalf("the simulator booked a reversal it answered without DE 39: %+v", e)
	}
	req, err := http.NewRequest("GET", "http://"+s.AdminAddr()+"/api/v1/saf/parked?issuer=sim", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer demo-operator-7Kq2")
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var parked []saf.Item
	err = json.NewDecoder(resp.Body).Decode(&parked)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || len(parked) != 1 || parked[0].RRN != sale.RRN || parked[0].MTI != "0420" || parked[0].Unacked != 3 {
		t.Fatalf("GET /api/v1/saf/parked: %d %v %+v, want the 0420 of %s", resp.StatusCode, err, parked, sale.RRN)
	}
	fams := testswitch.Metrics(t, s.AdminAddr())
	got := -1.0
	for _, m := range fams["switchyard_saf_parked_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "issuer" && l.GetValue() == "sim" {
				got = m.GetCounter().GetValue()
			}
		}
	}
	if got != 1 {
		t.Errorf("switchyard_saf_parked_total{issuer=\"sim\"} %v, want 1", got)
	}
	if !strings.Contains(logs.String(), "advice parked") {
		t.Errorf("no line says the advice was parked:\n%s", logs.String())
	}
}
