package rules_test

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/switchyard/switchyard/risk"
)

// The timelines of the acquirer-wide card-testing patterns: probes spread over
// many merchants with stolen cards of random BINs, alone or among the ordinary
// small tickets of an acquirer that hide them.

// spreadProbes is card testing spread over 40 merchants with stolen cards of
// random BINs: one probe every 20 s from start, amounts lo to hi (minor units),
// 70% declined 14 and 10% 54, the rest approved. The probes from the 16th on are
// measured (the first ones pass by design: the counters need them).
func spreadProbes(rng *rand.Rand, start time.Time, lo, hi int) []advEvent {
	var out []advEvent
	for i := 0; i < 40; i++ {
		m := fmt.Sprintf("0000000000009%02d", i)
		tier := "micro"
		if i%3 == 2 {
			tier = "small"
		}
		bin := fmt.Sprintf("62%04d", rng.IntN(10000))
		in := advTxn(start.Add(time.Duration(i)*20*time.Second), fmt.Sprintf("TB%06d", i), m, tier, bin, fmt.Sprintf("probe%04d", i),
			risk.TxnPurchase, lo+rng.IntN(hi-lo+1), "071")
		rc := "00"
		switch r := rng.IntN(10); {
		case r < 7:
			rc = "14"
		case r < 8:
			rc = "54"
		}
		out = append(out, ev(in, rc, i >= 15))
	}
	return out
}

// newCardTickets is ordinary purchases, each by a card new to the acquirer, at
// shops small merchants: n tickets one every every from from, amounts lo to hi,
// declinePct of them declined for a reason about the card (14, a fifth of them 54).
// tag keeps the shops' and cards' names apart from other flows of the timeline.
// The tickets are neither measured nor good: the caller says which they are.
func newCardTickets(rng *rand.Rand, from time.Time, n int, every time.Duration, lo, hi, declinePct, shops int, tag byte) []advEvent {
	out := make([]advEvent, 0, n)
	for i := 0; i < n; i++ {
		s := i % shops
		in := advTxn(from.Add(time.Duration(i)*every), fmt.Sprintf("T%c%06d", tag, s), fmt.Sprintf("00000000%02d%05d", tag%100, s), "small",
			fmt.Sprintf("62%04d", rng.IntN(10000)), fmt.Sprintf("%c-new%05d", tag, i), risk.TxnPurchase, lo+rng.IntN(hi-lo+1), "071")
		rc := "00"
		if r := rng.IntN(1000); r < declinePct*10 {
			rc = "14"
			if r%5 == 0 {
				rc = "54"
			}
		}
		out = append(out, ev(in, rc, false))
	}
	return out
}

// fareProfile is the learned profile of a bus line or a vending operator: its
// median ticket is 1.50, so that 1.00-2.00 tickets of new cards are ordinary
// there (card-testing-tiny leaves them alone).
func fareProfile() risk.Profile {
	p := dayProfile()
	p.P50Amount, p.P90Amount, p.P99Amount, p.CardDeclineShare = 150, 200, 400, 0.01
	return p
}

// fares is the busy small tickets of an acquirer's transit and vending merchants:
// 1,800 fares of 1.00 or 2.00, one a second from start-10m to start+20m, at 20
// standard-tier merchants (MCC 4111). 95% of the cards are commuters' whose card
// paid a fare this morning (07:00-08:30 local, not part of the result) and 5% new
// riders; 1% of the commuters' fares and 3% of the new riders' are declined for a
// reason about the card. The fares from start-10m on are returned with rc and
// their flags unset: the caller marks them measured or good.
func fares(rng *rand.Rand, start time.Time) (morning, now []advEvent) {
	for i := 0; i < 1800; i++ {
		m := i % 20
		card, bin, commuter := fmt.Sprintf("fare%05d", i), fmt.Sprintf("62%04d", rng.IntN(10000)), rng.IntN(100) < 95
		fare := func(at time.Time) risk.Input {
			in := advTxn(at, fmt.Sprintf("TF%06d", m), fmt.Sprintf("00000000004%04d", m), "standard", bin, card,
				risk.TxnPurchase, 100+rng.IntN(2)*100, "071")
			in.Merchant.MCC, in.Merchant.Profile = "4111", fareProfile()
			return in
		}
		if commuter {
			morning = append(morning, ev(fare(start.Add(-3*time.Hour+time.Duration(rng.IntN(90*60))*time.Second)), "00", false))
		}
		rc, pct := "00", 3
		if commuter {
			pct = 1
		}
		if rng.IntN(100) < pct {
			rc = "57"
		}
		now = append(now, ev(fare(start.Add(-10*time.Minute+time.Duration(i)*time.Second)), rc, false))
	}
	return morning, now
}

// acquirerPatterns are the acquirer-wide card-testing patterns and the everyday
// traffic they must leave alone.
var acquirerPatterns = []advPattern{
	{name: "card-testing-10-30-across-merchants", fraud: true, want: risk.ActionReview,
		// The bench's card-testing-above (10.01-30.00, just above the 2.00 band) spread
		// over 40 merchants with stolen cards of random BINs, one probe every 20 s, 80%
		// declined; meanwhile 20 other shops take ordinary 10.00-30.00 tickets of new
		// cards, one every 40 s, 3% declined (good): the probes are two thirds of the
		// acquirer's new-card tickets of that size (a quiet hour, a small acquirer).
		events: func(rng *rand.Rand, start time.Time) []advEvent {
			out := spreadProbes(rng, start, 1001, 3000)
			for _, e := range newCardTickets(rng, start.Add(-10*time.Minute), 38, 40*time.Second, 1000, 3000, 3, 20, 'Q') {
				e.good = true
				out = append(out, e)
			}
			return out
		}},
	{name: "card-testing-diluted-by-busy-fares", fraud: true, want: risk.ActionReview,
		// Stolen cards of random BINs probed at 1.00-2.00, one every 20 s at 40
		// merchants (80% declined), while 20 bus and vending merchants take a fare a
		// second, 95% of them by commuters whose card rode this morning: the probes'
		// declines are 4% of the acquirer's small tickets, far under the 30% share.
		events: func(rng *rand.Rand, start time.Time) []advEvent {
			out := spreadProbes(rng, start, 100, 200)
			morning, now := fares(rng, start)
			out = append(out, morning...)
			for _, e := range now {
				e.good = true
				out = append(out, e)
			}
			return out
		}},
	{name: "card-testing-10-30-at-lunch-rush", fraud: true, want: risk.ActionReview, gap: true,
		// The 10.01-30.00 probes of card-testing-10-30-across-merchants during a lunch
		// rush: 100 shops take 10.00-30.00 tickets of new cards, one every 1.2 s, 5%
		// declined (good). The probes are 6-9% of the acquirer's new-card tickets of
		// that size: an acquirer-wide share cannot tell them from the rush (a gap: it
		// would need the probes' spread over BINs, or a learned share per hour).
		events: func(rng *rand.Rand, start time.Time) []advEvent {
			out := spreadProbes(rng, start, 1001, 3000)
			for _, e := range newCardTickets(rng, start.Add(-10*time.Minute), 1250, 1200*time.Millisecond, 1000, 3000, 5, 100, 'R') {
				e.good = true
				out = append(out, e)
			}
			return out
		}},

	// Everyday patterns.
	{name: "legit-busy-fares-repeat-cards", want: risk.ActionAllow,
		// The fares of card-testing-diluted-by-busy-fares without the card test.
		events: func(rng *rand.Rand, start time.Time) []advEvent {
			morning, now := fares(rng, start)
			for i := range now {
				now[i].measured = true
			}
			return append(morning, now...)
		}},
	{name: "legit-lunch-many-shops", want: risk.ActionAllow,
		// 3,000 tickets of 10.00-30.00 in an hour, each of a card new to the acquirer,
		// at 100 small shops, 4% declined for a reason about the card: 20 card declines
		// in every 10 minutes, as many as a card test's, 4% of the tickets that size.
		// (At 5% one shop, by chance, sees 3 of its 5 tickets in 10 minutes declined
		// and card-testing-merchant declines its next new card: that rule's own margin.)
		events: func(rng *rand.Rand, start time.Time) []advEvent {
			out := newCardTickets(rng, start, 3000, 1200*time.Millisecond, 1000, 3000, 4, 100, 'L')
			for i := range out {
				out[i].measured = true
			}
			return out
		}},
	{name: "legit-issuer-declines-its-cards", want: risk.ActionAlert,
		// A big issuer's authorization system declines all its cards 57 for half an
		// hour: they are 40% of the acquirer's 1.00-30.00 tickets of new cards (one a
		// second at 400 shops, each seeing too few for a merchant rule; 20 BINs, each
		// too few for card-testing-bin at first). The other issuers' cardholders
		// (measured, 3% card declines) may be reviewed while it lasts, never declined:
		// the acquirer-wide decline tier must not mistake it for a card test. The
		// tickets start 10 minutes before the fault.
		events: func(rng *rand.Rand, start time.Time) []advEvent {
			out := newCardTickets(rng, start.Add(-10*time.Minute), 2400, time.Second, 100, 3000, 3, 400, 'G')
			for i := range out {
				if !out[i].in.Txn.Time.Before(start) && rng.IntN(100) < 40 {
					out[i].in.Txn.BIN, out[i].rc = fmt.Sprintf("4367%02d", rng.IntN(20)), "57"
					continue
				}
				out[i].measured = true
			}
			return out
		}},
}
