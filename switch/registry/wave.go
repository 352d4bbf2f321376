package registry

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// The suspension wave limit: however a suspend rule is set, the monitor suspends no
// more than a share of the fleet's, or of a merchant's, terminals per window, and
// asks a reviewer about the rest.

// offlineAlertNote starts the status reason of a terminal suspended by an alert
// action; the wave limit counts terminals by it.
const offlineAlertNote = "offline-alert "

// suspendWave counts the terminals suspended by alert actions within the window,
// over the fleet and per merchant, against the limits of MonitorOptions.
type suspendWave struct {
	share       float64
	min         int
	fleetTotal  int
	fleetDone   int
	merchTotal  map[string]int
	merchDone   map[string]int
	held        int
	windowStart time.Time
}

// newWave counts, from the registry's snapshot, the terminals that are not closed
// and those an alert action suspended since now less the window. Counting from the
// records rather than from memory keeps the limit across restarts.
func (mo *Monitor) newWave(now time.Time) *suspendWave {
	w := &suspendWave{share: mo.opts.SuspendMaxShare, min: mo.opts.SuspendMin, merchTotal: map[string]int{}, merchDone: map[string]int{},
		windowStart: now.Add(-mo.opts.SuspendWindow)}
	for _, sl := range mo.reg.snap.Load().terminals {
		t := sl.rec.Load()
		if t.Status == TerminalClosed {
			continue
		}
		w.fleetTotal++
		w.merchTotal[t.MerchantID]++
		if t.Status == TerminalSuspended && strings.HasPrefix(t.Note, offlineAlertNote) && t.UpdatedAt.After(w.windowStart) {
			w.add(t.MerchantID)
		}
	}
	return w
}

func (w *suspendWave) limit(total int) int {
	return max(w.min, int(w.share*float64(total)))
}

func (w *suspendWave) add(merchant string) {
	w.fleetDone++
	w.merchDone[merchant]++
}

// over returns why one more suspension of a terminal of merchant would exceed the
// wave limit, or "" if it would not.
func (w *suspendWave) over(merchant string) string {
	if n, lim := w.merchDone[merchant], w.limit(w.merchTotal[merchant]); n+1 > lim {
		return fmt.Sprintf("%d of merchant %s's %d terminals already suspended by alert rules since %s (limit %d)",
			n, merchant, w.merchTotal[merchant], w.windowStart.Format(time.RFC3339), lim)
	}
	if n, lim := w.fleetDone, w.limit(w.fleetTotal); n+1 > lim {
		return fmt.Sprintf("%d of the fleet's %d terminals already suspended by alert rules since %s (limit %d)",
			n, w.fleetTotal, w.windowStart.Format(time.RFC3339), lim)
	}
	return ""
}

// holdSuspension requests the suspension of a's terminal as a change by "system"
// for a reviewer, instead of suspending it, and returns the action's outcome.
func (mo *Monitor) holdSuspension(a *Alert, why, limit string) (bool, string) {
	sys := Actor{Name: SystemActor, Role: RoleOperator}
	c, err := mo.reg.RequestChange(sys, Change{Op: OpTerminalSuspend, Target: a.TerminalID, Reason: why + "; held for review: " + limit})
	if errors.Is(err, ErrConflict) {
		return true, "terminal not active; nothing to do"
	}
	if err != nil {
		mo.reg.log.Error().Err(err).Str("alert", a.ID).Str("terminal", a.TerminalID).Msg("suspension held by the wave limit, but its change request failed")
		return false, fmt.Sprintf("not suspended (suspension wave limit: %s); change request failed: %v", limit, err)
	}
	mo.reg.m.withheld.WithLabelValues("wave-limit").Inc()
	return true, fmt.Sprintf("suspension held for review as %s (wave limit: %s)", c.ID, limit)
}
