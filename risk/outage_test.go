package risk

import (
	"fmt"
	"testing"
	"time"
)

// TestOutageDeclinesDoNotCount replays the outage through the default pack:
// during 45 s without the issuer a standard merchant's terminal gets 91 on every
// purchase (timeout, lost link, open circuit), and one card is tried five times. Once
// the issuer is back, the terminal and the card must be approved at once: the decline
// counters hold only declines that say something about the card or the terminal.
// The same number of the issuer's 05, 14 and 51 must still trip the rules.
func TestOutageDeclinesDoNotCount(t *testing.T) {
	start := time.Date(2026, 11, 30, 2, 0, 0, 0, time.UTC) // 10:00 in Beijing
	term, merch := simGrocery.t, simGrocery.m
	for _, tc := range []struct {
		rc       string
		wantRule string // "" when the purchase after the burst must pass
	}{
		{"91", ""}, {"96", ""}, {"68", ""},
		// 14 (invalid card) is a probe: the merchant-wide card-testing rule, earlier in
		// the file, sees it first.
		{"05", "card-testing-declines"}, {"14", "card-testing-merchant"}, {"51", "card-testing-declines"},
	} {
		t.Run("terminal after "+tc.rc, func(t *testing.T) {
			e, err := New("../rules", Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			// One purchase every 5 s for 45 s, each with a new card, all declined with rc.
			var at time.Time
			for i := 0; i < 9; i++ {
				at = start.Add(time.Duration(i) * 5 * time.Second)
				in := simPurchase(at, term, merch, fmt.Sprintf("outage-card-%02d", i), 4200)
				d := e.Evaluate(&in)
				rc := tc.rc
				if d.Declined() {
					if tc.wantRule == "" {
						t.Fatalf("purchase %d during the outage: declined %s by %s", i, d.ResponseCode, d.Rule)
					}
					rc = d.ResponseCode // as the pipeline does: the rules' answer went out
				}
				e.Observe(&in, OutcomeOf(&d, rc))
			}
			// The issuer is back: the next purchase, 10 s later, with another card.
			in := simPurchase(at.Add(10*time.Second), term, merch, "after-outage", 4200)
			d := e.Evaluate(&in)
			switch {
			case tc.wantRule == "" && d.Declined():
				t.Fatalf("after nine %ss: declined %s by %s (%s); they say nothing about the terminal", tc.rc, d.ResponseCode, d.Rule, d.Reason)
			case tc.wantRule != "" && d.Rule != tc.wantRule:
				t.Fatalf("after nine %ss: decision %s by %q, want a decline by %s", tc.rc, d.Action, d.Rule, tc.wantRule)
			}
		})
		t.Run("card after "+tc.rc, func(t *testing.T) {
			e, err := New("../rules", Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			// Five tries of one card, 8 s apart, at five terminals (so that no
			// terminal counter is involved): a cashier retrying through the outage.
			for i := 0; i < 5; i++ {
				tm := term
				tm.ID = fmt.Sprintf("T00001%02d", i)
				in := simPurchase(start.Add(time.Duration(i)*8*time.Second), tm, merch, "one-card", 6600)
				d := e.Evaluate(&in)
				rc := tc.rc
				if d.Declined() {
					if tc.wantRule == "" {
						t.Fatalf("try %d during the outage: declined %s by %s", i, d.ResponseCode, d.Rule)
					}
					rc = d.ResponseCode
				}
				e.Observe(&in, OutcomeOf(&d, rc))
			}
			in := simPurchase(start.Add(5*time.Minute), term, merch, "one-card", 6600)
			d := e.Evaluate(&in)
			want := ""
			if tc.wantRule != "" {
				want = "card-declines-1h"
			}
			_, hit := d.Hit(want)
			switch {
			case want == "" && d.Declined():
				t.Fatalf("after five %ss: declined %s by %s (%s); they say nothing about the card", tc.rc, d.ResponseCode, d.Rule, d.Reason)
			case want != "" && (!d.Declined() || !hit):
				t.Fatalf("after five %ss: decision %s by %q (hits %v), want a decline and a hit of %s", tc.rc, d.Action, d.Rule, d.Hits, want)
			}
		})
	}
}

func TestUnavailableCode(t *testing.T) {
	for rc, want := range map[string]bool{
		"91": true, "96": true, "68": true, "90": true, "92": true,
		"00": false, "05": false, "14": false, "51": false, "54": false, "55": false, "57": false,
		"59": false, "61": false, "62": false, "63": false, "65": false, "": false,
	} {
		if got := UnavailableCode(rc); got != want {
			t.Errorf("UnavailableCode(%q) = %v, want %v", rc, got, want)
		}
	}
}
