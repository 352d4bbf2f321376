package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/internal/cli/apiclient"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/termclient"
)

// The fraud that spreads, probes or hides under limits (issue 22), and the everyday
// patterns a rule pack must not decline. Unlike the older scenarios, which take a share
// of the requests (so their pace follows the bench's throughput), these run on the
// wall clock: a card tester or a breakfast queue has its own pace whatever the rest of
// the switch does. Each plays at a merchant of its own (registered by the bench), as
// real ones do: a merchant-wide card-testing rule must decline the attacked merchant's
// tills, not the breakfast stall's.
const (
	LabelCardTestSpread  = "card-testing-spread"   // tiny amounts, new cards, over 6 terminals of one merchant
	LabelCardTestAbove   = "card-testing-above"    // 10.01-30.00: just above the old small-amount cut-offs
	LabelCardTestInquiry = "card-testing-inquiry"  // balance inquiries with new cards
	LabelStructuring     = "structuring"           // many cards, each just under a micro merchant's single limit
	LabelSplitTerminals  = "split-cross-terminal"  // the second part of a sale split over two terminals
	LabelCardTestSlow    = "card-testing-slow"     // one probe every 8 s
	LabelVoidRering      = "legit-void-rering"     // a sale voided and rung up again (a forgotten discount)
	LabelBreakfast       = "legit-breakfast-queue" // small tickets, new cards, at a noodle stall
	LabelRegular         = "legit-regular-customer"
	LabelLunch           = "legit-lunch-queue"
	// labelSplitFirst is the first part of a split purchase: an ordinary sale no one
	// can tell from others yet. It is not reported.
	labelSplitFirst = "setup:split-first-part"
)

// LegitPatterns are the everyday patterns of the legitimate traffic, in report order;
// each must see no decline at all.
var LegitPatterns = []string{LabelVoidRering, LabelBreakfast, LabelRegular, LabelLunch}

// benchMerchant is a merchant the bench registers for one pattern.
type benchMerchant struct {
	id, name, mcc, tier string
	single              int64 // registry single limit, 0 for the tier's
	// daily is the registry's daily and monthly limit, 0 for the tier's: high for
	// the shops whose patterns are large approved sales, so that the tier's daily
	// limit (not the rule under test) does not decline them after a minute.
	daily int64
}

// The bench's own merchants. 110 takes the older card-testing and cash-out scenarios
// off the demo noodle stall, whose real till T0000002 sends legitimate traffic.
var (
	mAttacked  = benchMerchant{"000000000000110", "Bench Attacked Stall", "5814", "micro", 100_000, 0}
	mSpread    = benchMerchant{"000000000000111", "Bench Spread Target", "5812", "micro", 0, 0}
	mAbove     = benchMerchant{"000000000000112", "Bench Above Target", "5999", "small", 0, 0}
	mInquiry   = benchMerchant{"000000000000113", "Bench Inquiry Target", "5411", "micro", 0, 0}
	mStruct    = benchMerchant{"000000000000114", "Bench Structuring Shop", "5999", "micro", 0, 0}
	mSplit     = benchMerchant{"000000000000115", "Bench Split Shop", "5732", "small", 2_000_000, 10_000_000_000}
	mSlow      = benchMerchant{"000000000000116", "Bench Slow Target", "5814", "micro", 0, 0}
	mBreakfast = benchMerchant{"000000000000120", "Bench Breakfast Stall", "5814", "micro", 0, 0}
	mLunch     = benchMerchant{"000000000000121", "Bench Lunch Canteen", "5812", "small", 0, 0}
	mCorner    = benchMerchant{"000000000000122", "Bench Corner Shop", "5411", "small", 2_000_000, 10_000_000_000}
)

var benchMerchants = []benchMerchant{mAttacked, mSpread, mAbove, mInquiry, mStruct, mSplit, mSlow, mBreakfast, mLunch, mCorner}

// registerMerchants registers the bench's merchants (requested by the demo operator,
// approved by the demo reviewer). One already registered (a --workdir kept from an
// earlier run) is left as it is.
func registerMerchants(ctx context.Context, op, rev *apiclient.Client) error {
	for _, m := range benchMerchants {
		var have map[string]any
		if err := op.Do(ctx, "GET", "/api/v1/merchants/"+m.id, nil, &have); err == nil {
			continue
		}
		body := map[string]any{"id": m.id, "name": m.name, "mcc": m.mcc, "region": "CN-SH", "tier": m.tier, "rating": "medium",
			"status": "active", "reason": "bench fleet"}
		if m.single > 0 || m.daily > 0 {
			body["limits"] = map[string]int64{"per_transaction": m.single, "daily": m.daily, "monthly": m.daily}
		}
		var ch struct{ ID string }
		if err := op.Do(ctx, "POST", "/api/v1/merchants", body, &ch); err != nil {
			return fmt.Errorf("register bench merchant %s: %w", m.id, err)
		}
		if err := rev.Do(ctx, "POST", "/api/v1/changes/"+ch.ID+"/approve", map[string]string{"note": "bench"}, nil); err != nil {
			return fmt.Errorf("approve bench merchant %s: %w", m.id, err)
		}
	}
	return nil
}

// paced is a pattern on the wall clock: due every `every`.
type paced struct {
	every time.Duration
	next  atomic.Int64
	gen   func(rng *rand.Rand, now time.Time) (request, error)
}

// due reports whether the pattern's next request is due at now, and takes it.
func (p *paced) due(now time.Time) bool {
	n, t := p.next.Load(), now.UnixNano()
	if t < n {
		return false
	}
	return p.next.CompareAndSwap(n, t+int64(p.every))
}

// patterns is the state of the paced patterns.
type patterns struct {
	streams []*paced
	seq     atomic.Uint64
	regSeq  atomic.Uint64
	// regulars2 counts the regulars' purchases: the n-th pays with regular n/2.
	regulars2 atomic.Uint64

	mu       sync.Mutex
	voids    []approval // rung-up sales to void
	rerings  []approval // voided sales to ring up again
	seconds  []approval // first parts of a split purchase, for their second part
	regulars []string
}

// patternTerminals are the bench terminals of the paced patterns, by merchant.
type patternTerminals struct {
	spread, above, inquiry, structuring, split, slow, breakfast, lunch, corner []benchTerminal
}

func (p *fleetPlan) addPatternTerminals(mk func(prefix, merchant, kind string, n int, lat, lon float64, radius int) []benchTerminal) {
	const lat, lon = 31.2304, 121.4737
	p.pat.spread = mk("BC", mSpread.id, "pos", 6, lat, lon, 5000)
	p.pat.above = mk("BC", mAbove.id, "pos", 3, lat, lon, 5000)
	// Three tills where a pattern sends one request a second: 20 a minute each,
	// under terminal-velocity's 30, so that the rule under test decides.
	p.pat.inquiry = mk("BC", mInquiry.id, "pos", 3, lat, lon, 5000)
	p.pat.structuring = mk("BC", mStruct.id, "pos", 3, lat, lon, 5000)
	p.pat.split = mk("BC", mSplit.id, "pos", 2, lat, lon, 5000)
	p.pat.slow = mk("BC", mSlow.id, "pos", 2, lat, lon, 5000)
	p.pat.breakfast = mk("BE", mBreakfast.id, "pos", 6, lat, lon, 5000)
	p.pat.lunch = mk("BE", mLunch.id, "pos", 6, lat, lon, 5000)
	p.pat.corner = mk("BE", mCorner.id, "pos", 2, lat, lon, 5000)
}

// probeCard is a card tester's card: 40% made up (fails the Luhn check), 30% stolen
// and expired, the rest good.
func probeCard(rng *rand.Rand) (pan, expiry string) {
	pan, expiry = bigCard(rng), "2912"
	switch v := rng.IntN(10); {
	case v < 4:
		pan = pan[:15] + string(rune('0'+(int(pan[15]-'0')+1)%10))
	case v < 7:
		expiry = "2301"
	}
	return pan, expiry
}

// amountStep is a random amount from lo in steps of step: the issuer simulator
// declines amounts ending in 05 and 51, which legitimate patterns must avoid.
func amountStep(rng *rand.Rand, lo, hi, step int64) int64 {
	return lo + rng.Int64N((hi-lo)/step+1)*step
}

func (f *Fleet) initPatterns() {
	p, pt := &f.pat, &f.plan.pat
	// rr takes the terminals of a pattern in turn (each pattern has its own set).
	rr := func(ts []benchTerminal) benchTerminal { return ts[int(p.seq.Add(1))%len(ts)] }
	purchase := func(t benchTerminal, pan, expiry string, amount int64, now time.Time, label string) (request, error) {
		tx := termclient.Txn{TID: t.id, MID: t.merchant, PAN: pan, Amount: amount, Expiry: expiry, STAN: f.term(t.id).nextSTAN(), Time: now, TLV: posTags(t)}
		return f.build(tx, nil, label)
	}
	add := func(every time.Duration, gen func(rng *rand.Rand, now time.Time) (request, error)) {
		p.streams = append(p.streams, &paced{every: every, gen: gen})
	}
	for i := 0; i < 1000; i++ {
		p.regulars = append(p.regulars, bigCard(rand.New(rand.NewPCG(uint64(i), 22))))
	}
	add(time.Second, func(rng *rand.Rand, now time.Time) (request, error) {
		pan, exp := probeCard(rng)
		return purchase(rr(pt.spread), pan, exp, amountStep(rng, 100, 200, 1), now, LabelCardTestSpread)
	})
	add(time.Second, func(rng *rand.Rand, now time.Time) (request, error) {
		pan, exp := probeCard(rng)
		return purchase(rr(pt.above), pan, exp, amountStep(rng, 1001, 3000, 1), now, LabelCardTestAbove)
	})
	add(time.Second, func(rng *rand.Rand, now time.Time) (request, error) {
		pan, exp := probeCard(rng)
		t := rr(pt.inquiry)
		tx := termclient.Txn{TID: t.id, MID: t.merchant, PAN: pan, ProcCode: message.PCBalance, Expiry: exp, STAN: f.term(t.id).nextSTAN(), Time: now, TLV: posTags(t)}
		return f.build(tx, nil, LabelCardTestInquiry)
	})
	add(time.Second, func(rng *rand.Rand, now time.Time) (request, error) {
		// Good cards, each paying 4,760.00-4,999.00 at a micro merchant (single limit 5,000.00).
		return purchase(rr(pt.structuring), bigCard(rng), "2912", amountStep(rng, 476000, 499900, 100), now, LabelStructuring)
	})
	add(8*time.Second, func(rng *rand.Rand, now time.Time) (request, error) {
		pan, exp := probeCard(rng)
		return purchase(rr(pt.slow), pan, exp, amountStep(rng, 100, 300, 1), now, LabelCardTestSlow)
	})
	add(2*time.Second, func(rng *rand.Rand, now time.Time) (request, error) {
		// A sale of 12,000.00-15,000.00 on one till of a small merchant (single limit
		// 20,000.00), then the rest of it with the same card on the other till.
		p.mu.Lock()
		var first approval
		ok := len(p.seconds) > 0
		if ok {
			first, p.seconds = p.seconds[0], p.seconds[1:]
		}
		p.mu.Unlock()
		if ok {
			t := pt.split[0]
			if first.tid == t.id {
				t = pt.split[1]
			}
			return purchase(t, first.pan, "2912", amountStep(rng, 900000, 1200000, 100), now, LabelSplitTerminals)
		}
		t := pt.split[rng.IntN(2)]
		pan := bigCard(rng)
		req, err := purchase(t, pan, "2912", amountStep(rng, 1200000, 1500000, 100), now, labelSplitFirst)
		req.follow = &approval{pan: pan, kind: followSplit, tid: t.id}
		return req, err
	})
	// The breakfast stall's six tills take a ticket every 0.8 s between them and a
	// regular every 3 s: about 15 a minute each, under terminal-velocity's 30.
	add(800*time.Millisecond, func(rng *rand.Rand, now time.Time) (request, error) {
		return purchase(pt.breakfast[int(p.regSeq.Add(1))%len(pt.breakfast)], bigCard(rng), "2912", amountStep(rng, 300, 2500, 50), now, LabelBreakfast)
	})
	add(3*time.Second, func(rng *rand.Rand, now time.Time) (request, error) {
		// Each regular pays twice: once in the morning, once in the evening.
		n := p.regulars2.Add(1)
		pan := p.regulars[(n/2)%uint64(len(p.regulars))]
		return purchase(pt.breakfast[int(n)%len(pt.breakfast)], pan, "2912", amountStep(rng, 800, 1600, 50), now, LabelRegular)
	})
	add(500*time.Millisecond, func(rng *rand.Rand, now time.Time) (request, error) {
		return purchase(rr(pt.lunch), bigCard(rng), "2912", amountStep(rng, 1500, 6000, 50), now, LabelLunch)
	})
	add(2*time.Second, func(rng *rand.Rand, now time.Time) (request, error) {
		// A sale of 12,000.00-19,000.00 at a small shop (single limit 20,000.00), voided,
		// and rung up again with a discount on the same till and card.
		p.mu.Lock()
		var a approval
		step := 0
		switch {
		case len(p.voids) > 0:
			a, p.voids, step = p.voids[0], p.voids[1:], 1
		case len(p.rerings) > 0:
			a, p.rerings, step = p.rerings[0], p.rerings[1:], 2
		}
		p.mu.Unlock()
		switch step {
		case 1:
			t := termByID(pt.corner, a.tid)
			tx := termclient.Txn{TID: t.id, MID: t.merchant, PAN: a.pan, Amount: a.amount, ProcCode: message.PCVoid, RRN: a.rrn, AuthCode: a.auth,
				Expiry: "2912", STAN: f.term(t.id).nextSTAN(), Time: now, TLV: posTags(t)}
			req, err := f.build(tx, nil, LabelVoidRering)
			a.kind = followVoided
			req.follow = &a
			return req, err
		case 2:
			return purchase(termByID(pt.corner, a.tid), a.pan, "2912", a.amount/100*90, now, LabelVoidRering)
		}
		t := rr(pt.corner)
		pan, amount := bigCard(rng), amountStep(rng, 1200000, 1900000, 100)
		req, err := purchase(t, pan, "2912", amount, now, LabelVoidRering)
		req.follow = &approval{stan: "", pan: pan, amount: amount, kind: followRering, tid: t.id}
		return req, err
	})
}

func termByID(ts []benchTerminal, id string) benchTerminal {
	for _, t := range ts {
		if t.id == id {
			return t
		}
	}
	return ts[0]
}

// Kinds of approval a paced pattern follows up.
const (
	followRering = "rering" // a sale to void and ring up again
	followVoided = "voided" // its void, approved: ring up again
	followSplit  = "split"  // the first part of a split purchase
)

// followUp queues the next step of a paced pattern after an approval; false for an
// approval of the ordinary traffic.
func (f *Fleet) followUp(a approval) bool {
	p := &f.pat
	p.mu.Lock()
	defer p.mu.Unlock()
	switch a.kind {
	case followRering:
		p.voids = append(p.voids, a)
	case followVoided:
		p.rerings = append(p.rerings, a)
	case followSplit:
		p.seconds = append(p.seconds, a)
	default:
		return false
	}
	return true
}

// nextPaced is the request of the first paced pattern due at now, if any.
func (f *Fleet) nextPaced(rng *rand.Rand, now time.Time) (request, bool, error) {
	for _, s := range f.pat.streams {
		if s.due(now) {
			r, err := s.gen(rng, now)
			return r, true, err
		}
	}
	return request{}, false, nil
}
