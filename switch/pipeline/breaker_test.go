package pipeline

import (
	"strings"
	"testing"
	"time"
)

// step is one thing that happens to a breaker in a scenario: at is the offset from the
// scenario's start (the injected clock).
type step struct {
	at time.Duration
	// send asks allow for n requests (want: how many it lets through); their tickets
	// are kept under name.
	send int
	name string
	want int
	// done gives back the tickets kept under name with an outcome.
	done    string
	outcome breakerOutcome
	// state is the state expected after the step ("" checks nothing).
	state string
}

func TestBreaker(t *testing.T) {
	cfg := BreakerConfig{Window: 10 * time.Second, Buckets: 10, MinRequests: 20, FailureRate: 0.5, OpenFor: 5 * time.Second, Probes: 3}
	cases := []struct {
		name  string
		steps []step
		// transitions expected, in order
		changes []BreakerState
	}{{
		name: "a 10% timeout rate never opens it",
		steps: []step{
			{at: 0, send: 200, name: "a", want: 200},
			{at: 100 * time.Millisecond, done: "a", outcome: outcomeAnswered},
			{at: 0, send: 20, name: "b", want: 20},
			// the timeouts of one stall arrive together, an issuer timeout later
			{at: 2 * time.Second, done: "b", outcome: outcomeTimedOut, state: "closed"},
			{at: 2 * time.Second, send: 1, want: 1, state: "closed"},
		},
	}, {
		name: "a few silent requests after traffic stops do not open it",
		steps: []step{
			{at: 0, send: 10, name: "a", want: 10},
			{at: 10 * time.Second, done: "a", outcome: outcomeTimedOut, state: "closed"},
		},
	}, {
		name: "half the window timing out opens it, for open_for only",
		steps: []step{
			{at: 0, send: 10, name: "ok", want: 10},
			{at: 0, done: "ok", outcome: outcomeAnswered},
			{at: 0, send: 10, name: "lost", want: 10},
			{at: 2 * time.Second, done: "lost", outcome: outcomeTimedOut, state: "open"},
			{at: 4 * time.Second, send: 5, want: 0, state: "open"},
			{at: 7 * time.Second, state: "half-open"},
		},
		changes: []BreakerState{BreakerOpen},
	}, {
		name: "late timeouts of the old generation do not keep it open",
		steps: []step{
			{at: 0, send: 30, name: "lost", want: 30},
			{at: 0, send: 200, name: "late", want: 200},
			{at: 1 * time.Second, done: "lost", outcome: outcomeTimedOut, state: "open"},
			{at: 5 * time.Second, done: "late", outcome: outcomeTimedOut, state: "open"},
			{at: 6*time.Second + time.Millisecond, send: 5, name: "probe", want: 3, state: "half-open"},
			{at: 6*time.Second + 2*time.Millisecond, done: "probe", outcome: outcomeAnswered, state: "closed"},
			{at: 6*time.Second + 3*time.Millisecond, send: 4, want: 4, state: "closed"},
		},
		changes: []BreakerState{BreakerOpen, BreakerHalfOpen, BreakerClosed},
	}, {
		name: "a probe timing out opens it again; outcomes from closed times do not close it",
		steps: []step{
			{at: 0, send: 40, name: "lost", want: 40},
			{at: 0, send: 10, name: "old", want: 10},
			{at: time.Second, done: "lost", outcome: outcomeTimedOut, state: "open"},
			{at: 6 * time.Second, send: 1, name: "p1", want: 1, state: "half-open"},
			{at: 6 * time.Second, done: "old", outcome: outcomeAnswered, state: "half-open"},
			{at: 7 * time.Second, done: "p1", outcome: outcomeTimedOut, state: "open"},
			{at: 11 * time.Second, send: 1, want: 0, state: "open"},
			{at: 12 * time.Second, send: 1, name: "p2", want: 1, state: "half-open"},
		},
		changes: []BreakerState{BreakerOpen, BreakerHalfOpen, BreakerOpen, BreakerHalfOpen},
	}, {
		name: "a probe that never reached the issuer frees its place",
		steps: []step{
			{at: 0, send: 20, name: "lost", want: 20},
			{at: time.Second, done: "lost", outcome: outcomeTimedOut, state: "open"},
			{at: 7 * time.Second, send: 3, name: "p", want: 3, state: "half-open"},
			{at: 7 * time.Second, send: 1, want: 0},
			{at: 7 * time.Second, done: "p", outcome: outcomeNone, state: "half-open"},
			{at: 7 * time.Second, send: 3, name: "q", want: 3},
			{at: 7 * time.Second, done: "q", outcome: outcomeAnswered, state: "closed"},
		},
		changes: []BreakerState{BreakerOpen, BreakerHalfOpen, BreakerClosed},
	}, {
		// A probe lost (its goroutine panicked, or a path gave no outcome) used to
		// hold its place for good: all lost, the breaker stayed half-open letting
		// nothing through, the issuer cut off until a restart.
		name: "probes without an outcome are replaced after probe_timeout",
		steps: []step{
			{at: 0, send: 20, name: "lost", want: 20},
			{at: time.Second, done: "lost", outcome: outcomeTimedOut, state: "open"},
			{at: 7 * time.Second, send: 3, name: "p", want: 3, state: "half-open"},
			{at: 36 * time.Second, send: 1, want: 0, state: "half-open"},
			{at: 37 * time.Second, send: 5, name: "q", want: 3, state: "half-open"},
			{at: 37 * time.Second, done: "p", outcome: outcomeTimedOut, state: "half-open"}, // of the old generation
			{at: 37 * time.Second, done: "q", outcome: outcomeAnswered, state: "closed"},
		},
		changes: []BreakerState{BreakerOpen, BreakerHalfOpen, BreakerHalfOpen, BreakerClosed},
	}, {
		name: "old outcomes age out of the window",
		steps: []step{
			{at: 0, send: 15, name: "a", want: 15},
			{at: 0, done: "a", outcome: outcomeTimedOut, state: "closed"},
			{at: 0, send: 100, name: "b", want: 100},
			{at: 0, done: "b", outcome: outcomeAnswered},
			// 11 s later the window holds only what follows: 15 timeouts of 20
			{at: 11 * time.Second, send: 5, name: "c", want: 5},
			{at: 11 * time.Second, done: "c", outcome: outcomeAnswered},
			{at: 11 * time.Second, send: 15, name: "d", want: 15},
			{at: 11 * time.Second, done: "d", outcome: outcomeTimedOut, state: "open"},
		},
		changes: []BreakerState{BreakerOpen},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
			var changes []BreakerState
			b := newBreaker(cfg, func(from, to BreakerState, why string) {
				if from == to && (to != BreakerHalfOpen || !strings.Contains(why, "probing again")) {
					t.Errorf("change from %s to itself (%s)", from, why)
				}
				changes = append(changes, to)
			})
			tickets := map[string][]breakerTicket{}
			for i, s := range tc.steps {
				now := start.Add(s.at)
				if s.send > 0 {
					got := 0
					for range s.send {
						if tk, ok := b.allow(now); ok {
							got++
							tickets[s.name] = append(tickets[s.name], tk)
						}
					}
					if got != s.want {
						t.Fatalf("step %d: %d of %d let through, want %d", i, got, s.send, s.want)
					}
				}
				if s.done != "" {
					for _, tk := range tickets[s.done] {
						b.done(tk, s.outcome, now)
					}
					delete(tickets, s.done)
				}
				if got := b.current(now); s.state != "" && got.String() != s.state {
					t.Fatalf("step %d: state %s, want %s", i, got, s.state)
				}
			}
			if len(changes) != len(tc.changes) {
				t.Fatalf("changes %v, want %v", changes, tc.changes)
			}
			for i := range changes {
				if changes[i] != tc.changes[i] {
					t.Fatalf("changes %v, want %v", changes, tc.changes)
				}
			}
		})
	}
}

// BenchmarkBreakerClosed is the breaker's cost on every authorization.
func BenchmarkBreakerClosed(b *testing.B) {
	br := newBreaker(BreakerConfig{}, nil)
	now := time.Now()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		tk, _ := br.allow(now)
		br.done(tk, outcomeAnswered, now.Add(time.Duration(i)*time.Microsecond))
	}
}

// TestBreakerHalfOpenWithoutRequests: an open breaker goes half-open when its period
// is over, whether or not a request comes, so that the gauge (and the critical alert
// on it) does not say open for as long as the issuer's cardholders are away. Until 7
// December 2026 it moved only at the next request.
func TestBreakerHalfOpenWithoutRequests(t *testing.T) {
	changes := make(chan BreakerState, 8)
	b := newBreaker(BreakerConfig{MinRequests: 2, FailureRate: 0.5, OpenFor: 50 * time.Millisecond, Probes: 1},
		func(_, to BreakerState, _ string) { changes <- to })
	b.clock = time.Now
	now := time.Now()
	for range 2 {
		tk, ok := b.allow(now)
		if !ok {
			t.Fatal("a closed breaker refused a request")
		}
		b.done(tk, outcomeTimedOut, now)
	}
	want := []BreakerState{BreakerOpen, BreakerHalfOpen}
	for _, w := range want {
		select {
		case got := <-changes:
			if got != w {
				t.Fatalf("changed to %s, want %s", got, w)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no change to %s without a request (state %s)", w, b.current(time.Now()))
		}
	}
	// The next request is its probe, as before.
	if tk, ok := b.allow(time.Now()); !ok || !tk.probe {
		t.Errorf("after the period: allowed %v, probe %v; want a probe", ok, tk.probe)
	}
	// A fake clock behind the period leaves it open (tests drive it by hand).
	b2 := newBreaker(BreakerConfig{MinRequests: 1, FailureRate: 0.5, OpenFor: time.Millisecond}, nil)
	fake := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b2.clock = func() time.Time { return fake }
	tk, _ := b2.allow(fake)
	b2.done(tk, outcomeTimedOut, fake)
	b2.expire()
	if s := b2.current(fake); s != BreakerOpen {
		t.Errorf("with the clock before the period's end: %s, want open", s)
	}
}
