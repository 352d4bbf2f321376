package registry

import (
	"fmt"
	"strings"
	"time"
)

// The mass-silence brake. Terminals that go silent one by one may be stolen or
// broken; thousands that go silent together share a cause: a regional network
// outage, an issuer outage that makes terminals give up, a power cut, the
// switch's own trouble. Suspending them turns that outage into one that outlasts
// it (every terminal declined 58 once the network is back). So when the terminals
// with an offline alert raised within the window exceed a share of the fleet, of
// a region or of a merchant, the monitor suspends none of that scope's terminals
// and requests no change for them; it still raises and logs the alerts and posts
// their webhooks. The wave limit (wave.go) caps the suspensions that the brake
// lets through.

// MassSilenceOpenFor is how long an alert not recovered (open or acknowledged)
// counts toward the mass-silence share after it was raised, beyond the window: an
// outage's alerts come as each terminal's threshold passes since it was last seen,
// which for idle terminals spreads over hours, and the terminals alerted first are
// still dark. A terminal dark for longer (left in a drawer, not closed) no longer
// counts.
const MassSilenceOpenFor = 24 * time.Hour

// massSilence counts, for one run, the terminals with an offline alert raised
// within the window or still open (MassSilenceOpenFor), over the fleet, per region
// and per merchant, against the terminals that are not closed in each.
type massSilence struct {
	share       float64
	min         int
	windowStart time.Time
	total       map[string]int // scope -> terminals not closed
	silent      map[string]int // scope -> terminals alerted within the window
	withheld    int            // suspensions withheld by this run
	engaged     map[string]bool
}

// The scopes of the brake: the fleet, "region " + code, "merchant " + ID.
const fleetScope = "the fleet"

// silenceScopes returns the scopes a terminal of merchantID in region belongs
// to, widest first (the first past its limit names the cause).
func silenceScopes(merchantID, region string) []string {
	out := []string{fleetScope}
	if region != "" {
		out = append(out, "region "+region)
	}
	return append(out, "merchant "+merchantID)
}

// newMassSilence counts from the alert index (the run's alerts, stored already,
// included) and the snapshot. The count comes from stored alerts, so it holds
// across restarts.
func (mo *Monitor) newMassSilence(now time.Time) *massSilence {
	ms := &massSilence{share: mo.opts.MassSilenceShare, min: mo.opts.MassSilenceMin, windowStart: now.Add(-mo.opts.SuspendWindow),
		total: map[string]int{}, silent: map[string]int{}, engaged: map[string]bool{}}
	s := mo.reg.snap.Load()
	region := func(t *Terminal) string {
		if msl := s.merchants[t.MerchantID]; msl != nil {
			return msl.rec.Load().Region
		}
		return ""
	}
	for _, sl := range s.terminals {
		t := sl.rec.Load()
		if t.Status == TerminalClosed {
			continue
		}
		for _, sc := range silenceScopes(t.MerchantID, region(t)) {
			ms.total[sc]++
		}
	}
	r := mo.reg
	alerted := map[string]bool{}
	r.mu.Lock()
	openSince := now.Add(-MassSilenceOpenFor)
	for k, ref := range r.alertIdx {
		stillOpen := ref.status != AlertRecovered && !ref.raised.Before(openSince)
		if ref.raised.Before(ms.windowStart) && !stillOpen {
			continue
		}
		if _, tid, ok := strings.Cut(k, "/"); ok { // rule IDs have no '/'
			alerted[tid] = true
		}
	}
	r.mu.Unlock()
	for tid := range alerted {
		sl := s.terminals[tid]
		if sl == nil {
			continue
		}
		t := sl.rec.Load()
		for _, sc := range silenceScopes(t.MerchantID, region(t)) {
			ms.silent[sc]++
		}
	}
	return ms
}

// limit is the most terminals of a scope of total that may be alerted within the
// window before the brake engages.
func (ms *massSilence) limit(total int) int {
	return max(ms.min, int(ms.share*float64(total)))
}

// over says why alert a's terminal is not to be suspended (its fleet's, region's
// or merchant's silence is past the limit), or "" when it may be.
func (ms *massSilence) over(a *Alert) string {
	for _, sc := range silenceScopes(a.MerchantID, a.Region) {
		if n, total := ms.silent[sc], ms.total[sc]; n > ms.limit(total) {
			ms.engaged[sc] = true
			return fmt.Sprintf("%d of %s's %d terminals alerted offline since %s (limit %d)",
				n, sc, total, ms.windowStart.Format(time.RFC3339), ms.limit(total))
		}
	}
	return ""
}

// log writes one error line per run in which the brake withheld suspensions.
func (ms *massSilence) log(mo *Monitor) {
	if ms.withheld == 0 {
		return
	}
	scopes := make([]string, 0, len(ms.engaged))
	for sc := range ms.engaged {
		scopes = append(scopes, fmt.Sprintf("%s %d/%d", sc, ms.silent[sc], ms.total[sc]))
	}
	mo.reg.log.Error().Int("withheld", ms.withheld).Strs("scopes", scopes).Dur("window", mo.opts.SuspendWindow).
		Float64("max_share", ms.share).Int("min", ms.min).
		Msg("mass silence: too many terminals went offline together, a common cause is assumed; their suspend actions are withheld (alerts and webhooks still go)")
}
