package pipeline

import (
	"fmt"
	"sync"
	"time"
)

// BreakerConfig tunes the issuers' circuit breakers.
type BreakerConfig struct {
	// Window is how far back the failure rate looks, in Buckets slices (defaults 10 s
	// and 10): outcomes older than the window age out a bucket at a time.
	Window  time.Duration
	Buckets int
	// MinRequests is how many outcomes the window must hold before the rate can open
	// the breaker (default 20): a few silent requests after traffic stops do not.
	MinRequests int
	// FailureRate is the share of timeouts in the window that opens it (default 0.5).
	FailureRate float64
	// OpenFor is how long it stays open before probing (default 5 s).
	OpenFor time.Duration
	// Probes is how many requests go to the issuer while half-open; all of them
	// answered closes the breaker, one timeout opens it again (default 3).
	Probes int
	// ProbeTimeout is how long the half-open breaker waits for the outcomes of its
	// probes (default 30 s; the server sets the longest issuer timeout plus 10 s):
	// once that long has passed since the last probe went and some have still not
	// come back (a probe lost to a panic, or to a path that gave no outcome), it
	// starts probing afresh, so that lost probes never leave it half-open for good.
	ProbeTimeout time.Duration
}

func (c *BreakerConfig) setDefaults() {
	if c.Window <= 0 {
		c.Window = 10 * time.Second
	}
	if c.Buckets <= 0 {
		c.Buckets = 10
	}
	if c.MinRequests <= 0 {
		c.MinRequests = 20
	}
	if c.FailureRate <= 0 || c.FailureRate > 1 {
		c.FailureRate = 0.5
	}
	if c.OpenFor <= 0 {
		c.OpenFor = 5 * time.Second
	}
	if c.Probes <= 0 {
		c.Probes = 3
	}
	if c.ProbeTimeout <= 0 {
		c.ProbeTimeout = 30 * time.Second
	}
}

// BreakerState is the state of an issuer's circuit breaker (the value of the
// switchyard_issuer_breaker_state gauge).
type BreakerState int

// The breaker's states.
const (
	BreakerClosed   BreakerState = 0 // requests go to the issuer; outcomes are counted
	BreakerHalfOpen BreakerState = 1 // a few probes go to the issuer, the rest do not
	BreakerOpen     BreakerState = 2 // no request goes to the issuer (stand-in or 91)
)

func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerHalfOpen:
		return "half-open"
	case BreakerOpen:
		return "open"
	}
	return "unknown"
}

// breakerOutcome is how a request the breaker let through ended.
type breakerOutcome int

const (
	outcomeAnswered breakerOutcome = iota // the issuer answered (any response code)
	outcomeTimedOut                       // no answer in time
	outcomeNone                           // not sent, or failed for another reason: not counted
)

// breakerTicket is what allow hands out with a request it lets through; done takes it
// back with the outcome. gen is the breaker's generation when the request was sent:
// an outcome of an older generation (sent before the last state change) is ignored,
// so that the timeouts of requests one stall released together, arriving late, neither
// keep an open breaker open nor reopen a closed one.
type breakerTicket struct {
	gen   uint64
	probe bool
}

// bucket counts the outcomes of one slice of the window.
type bucket struct {
	slot     int64 // which slice of time (now / width) the counts belong to
	total    int
	failures int
}

// breaker is an issuer's circuit breaker. Closed, it counts the outcomes of the
// requests sent to the issuer in a sliding window of buckets; when the window holds at
// least MinRequests outcomes and the share of timeouts reaches FailureRate, it opens
// for OpenFor: the switch does not wait for that issuer (stand-in or 91). Then it is
// half-open: Probes requests go to the issuer; if all are answered it closes, if one
// times out it opens again, and if some give no outcome within ProbeTimeout it
// probes again. Every state change starts a new generation.
type breaker struct {
	mu        sync.Mutex
	cfg       BreakerConfig
	width     time.Duration // of one bucket
	state     BreakerState
	gen       uint64
	openUntil time.Time
	buckets   []bucket
	probing   int       // probes sent in this half-open generation
	answered  int       // probes answered in this half-open generation
	lastProbe time.Time // when the last probe of this generation went
	// onChange, if set, is called under the breaker's lock once per state change.
	onChange func(from, to BreakerState, why string)
	// clock, if set, makes an open breaker half-open when its period is over
	// (timer, expire), not only at the next request.
	clock func() time.Time
	timer *time.Timer
}

func newBreaker(cfg BreakerConfig, onChange func(from, to BreakerState, why string)) *breaker {
	cfg.setDefaults()
	w := cfg.Window / time.Duration(cfg.Buckets)
	if w <= 0 {
		w = time.Millisecond
	}
	return &breaker{cfg: cfg, width: w, buckets: make([]bucket, cfg.Buckets), onChange: onChange}
}

// setState changes the state and starts a new generation; the caller holds mu.
func (b *breaker) setState(to BreakerState, now time.Time, why string) {
	from := b.state
	b.state = to
	b.gen++
	b.probing, b.answered = 0, 0
	switch to {
	case BreakerOpen:
		b.openUntil = now.Add(b.cfg.OpenFor)
		if b.clock != nil {
			if b.timer != nil {
				b.timer.Stop()
			}
			b.timer = time.AfterFunc(b.cfg.OpenFor, b.expire)
		}
	case BreakerClosed:
		clear(b.buckets) // a fresh window: nothing from before the outage counts
	}
	if b.onChange != nil {
		b.onChange(from, to, why)
	}
}

// expire makes an open breaker whose period is over half-open, as allow would at the
// next request: while none comes (the issuer's cardholders gone elsewhere, the night)
// its state, the switchyard_issuer_breaker_state gauge and the critical alert on it
// said open, for as long. Until 7 December 2026 they did.
func (b *breaker) expire() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if now := b.clock(); b.state == BreakerOpen && !now.Before(b.openUntil) {
		b.setState(BreakerHalfOpen, now, "open period over: probing")
	}
}

// allow reports whether a request may go to the issuer now; when it may, the ticket
// must be given back to done exactly once.
func (b *breaker) allow(now time.Time) (breakerTicket, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case BreakerClosed:
		return breakerTicket{gen: b.gen}, true
	case BreakerOpen:
		if now.Before(b.openUntil) {
			return breakerTicket{}, false
		}
		b.setState(BreakerHalfOpen, now, "open period over: probing")
	}
	if b.probing >= b.cfg.Probes {
		if now.Sub(b.lastProbe) < b.cfg.ProbeTimeout {
			return breakerTicket{}, false
		}
		// Every probe has had its time, and some never came back: a new half-open
		// generation, whose probes count afresh (an outcome of the lost ones, if it
		// ever comes, is of the old generation and ignored).
		b.setState(BreakerHalfOpen, now, fmt.Sprintf("%d of %d probes without an outcome after %s: probing again",
			b.probing-b.answered, b.cfg.Probes, b.cfg.ProbeTimeout))
	}
	b.probing++
	b.lastProbe = now
	return breakerTicket{gen: b.gen, probe: true}, true
}

// done records the outcome of a request allow let through.
func (b *breaker) done(tk breakerTicket, o breakerOutcome, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if tk.gen != b.gen {
		return // sent before the last state change: says nothing about the issuer now
	}
	switch b.state {
	case BreakerHalfOpen:
		switch o {
		case outcomeTimedOut:
			b.setState(BreakerOpen, now, "a probe timed out")
		case outcomeAnswered:
			b.answered++
			if b.answered >= b.cfg.Probes {
				b.setState(BreakerClosed, now, "probes answered")
			}
		default:
			b.probing-- // not a probe after all: let another one through
		}
	case BreakerClosed:
		if o == outcomeNone {
			return
		}
		slot := now.UnixNano() / int64(b.width)
		bk := &b.buckets[int(slot%int64(len(b.buckets)))]
		if bk.slot != slot {
			*bk = bucket{slot: slot}
		}
		bk.total++
		if o != outcomeTimedOut {
			return
		}
		bk.failures++
		total, failures := 0, 0
		oldest := slot - int64(len(b.buckets)) + 1
		for i := range b.buckets {
			if c := &b.buckets[i]; c.slot >= oldest {
				total += c.total
				failures += c.failures
			}
		}
		if total >= b.cfg.MinRequests && float64(failures) >= b.cfg.FailureRate*float64(total) {
			b.setState(BreakerOpen, now, "failure rate over the window")
		}
	}
}

// current returns the state now (an open breaker whose period is over reads half-open).
func (b *breaker) current(now time.Time) BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == BreakerOpen && !now.Before(b.openUntil) {
		return BreakerHalfOpen
	}
	return b.state
}
