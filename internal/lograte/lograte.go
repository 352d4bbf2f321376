// Package lograte limits log lines that another party can cause at will (an
// issuer's stray answers): at most one line of a kind every period, each line
// saying how many of its kind were left out since the one before, so that a
// flood costs the log one line a period and loses no count. The metrics still
// count every event: a Gate decides only what is written to the log.
//
// zerolog's BurstSampler (the https listener's error log, the pipeline's fault
// log) bounds lines the same way but does not say how many it dropped; the
// store-and-forward queue's Stats.WarnDue does, for its own warning. A Gate is
// that rule for any kind of line.
package lograte

import (
	"sync"
	"time"
)

// Gate lets through one line of its kind every Every (the first at once) and
// counts those it holds back. Its zero value lets every line through. It is safe
// for concurrent use.
type Gate struct {
	// Every is the shortest time between two lines let through.
	Every time.Duration

	mu         sync.Mutex
	last       time.Time // when the last line went through (zero: none yet)
	suppressed int64     // lines held back since then
}

// Allow reports whether a line may be written at now and, when it may, how many
// lines of its kind were held back since the last one written. A clock that went
// back (now before the last line) lets the line through.
func (g *Gate) Allow(now time.Time) (suppressed int64, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if d := now.Sub(g.last); !g.last.IsZero() && d >= 0 && d < g.Every {
		g.suppressed++
		return 0, false
	}
	n := g.suppressed
	g.last, g.suppressed = now, 0
	return n, true
}
