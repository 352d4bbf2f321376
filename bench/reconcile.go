package bench

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/switchyard/switchyard/switch/issuersim"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
)

// This file judges a fault run (faults.go) from three independent accounts of it: what
// the terminals saw (faultTxn), what the issuer simulator approved and was told to
// reverse (its ledger), and what the switch journaled. No figure relies on the switch's
// own account alone: an issuer approval is checked against the terminal's answer and the
// simulator's record of reversals.

// faultTxn is one request of the fault run as the terminal saw it.
type faultTxn struct {
	Key      string    // TID + STAN
	Label    string    // ground truth (fleet.go)
	Sent     time.Time // when written
	Answered time.Time // zero: never answered
	RC, RRN  string
}

func (t *faultTxn) answered() bool { return !t.Answered.IsZero() }

// authorization reports whether the request asks for an authorization (not an echo, a
// terminal's reversal or batch totals, which the switch answers itself).
func (t *faultTxn) authorization() bool { return !strings.HasPrefix(t.Label, labelNonFinancialPfx) }

// faultTimeline are the moments of a fault run and its settings.
type faultTimeline struct {
	OutageStart, OutageEnd time.Time
	AfterWindow            time.Duration // the window after the outage for the rules figure
	KillAt, RestartedAt    time.Time     // zero: no kill
	Drop, Late             float64       // shares of the issuer's answers dropped and late
	IssuerTimeout, LateBy  time.Duration
	Outage                 time.Duration // planned length
	OutageMode             string
}

// FaultResult is what a fault run measured, as written to the JSON report.
type FaultResult struct {
	// Settings of the run.
	Drop          float64       `json:"drop"`       // share of issuer answers dropped
	Late          float64       `json:"late"`       // share answered late
	LateBy        time.Duration `json:"late_by_ns"` // how late
	IssuerTimeout time.Duration `json:"issuer_timeout_ns"`
	Outage        time.Duration `json:"outage_ns"`
	OutageMode    string        `json:"outage_mode"`
	AfterWindow   time.Duration `json:"after_window_ns"` // the window after the outage (the is 10 minutes)
	Kill          bool          `json:"kill"`            // the switch was killed (SIGKILL) and restarted
	// Schedule is when the outage started and ended, the switch was killed and was
	// ready again, in seconds since the load started (the timeline's axis).
	Schedule Schedule `json:"schedule"`

	// Sent and Answered count the terminals' requests; Unanswered got no answer (those
	// in flight at the kill among them).
	Sent       int64 `json:"sent"`
	Answered   int64 `json:"answered"`
	Unanswered int64 `json:"unanswered"`
	// Outside91 and OutsideAnswered are the 91s and the answers to authorizations whose
	// request and answer both fall outside the outage; Share91 is their quotient. The
	// outage lasts, for this figure, until the first approval after the issuer's return
	// (ReturnToApproval, a target of its own): the authorizations sent in between, while
	// the links reconnect, are counted in Gap91 and GapAnswered instead.
	Outside91       int64   `json:"outside_91"`
	OutsideAnswered int64   `json:"outside_answered"`
	Share91         float64 `json:"share_91_outside_outage"`
	// OutsideFaulty counts those of them whose issuer answer the simulator dropped,
	// delayed or cut off (its ledger says which): the 91s the faults alone explain.
	// FaultShare is its share of OutsideAnswered, what Share91 is held to (the faults
	// are drawn at random, so the configured rates are only their expectation).
	OutsideFaulty int64   `json:"outside_faulty"`
	FaultShare    float64 `json:"fault_share_outside_outage"`
	Gap91         int64   `json:"reconnect_gap_91"`
	GapAnswered   int64   `json:"reconnect_gap_answered"`
	// ReturnToApproval is the time from the issuer's return to the first approval a
	// terminal received that the issuer gave (-1: none came).
	ReturnToApproval time.Duration `json:"return_to_first_approval_ns"`
	// RestartToApproval is the same from the restarted switch being ready (-1: none;
	// 0 without a kill).
	RestartToApproval time.Duration `json:"restart_to_first_approval_ns"`
	// Rule declines of legitimate authorizations sent before the outage and in the
	// window after it, with the legitimate answers they are a share of.
	RuleDeclinesBefore int64 `json:"rule_declines_before"`
	LegitBefore        int64 `json:"legitimate_before"`
	RuleDeclinesAfter  int64 `json:"rule_declines_after"`
	LegitAfter         int64 `json:"legitimate_after"`
	// IssuerApprovals are the approvals the issuer gave to the run's requests.
	IssuerApprovals int64 `json:"issuer_approvals"`
	// ReversalsOwed are the reversals the switch decided on (timeouts, undelivered
	// answers, in-doubt at restart); Delivered of them reached the issuer, after a
	// delivery time of P50/Max from the moment the switch owed them.
	ReversalsOwed      int64         `json:"reversals_owed"`
	ReversalsDelivered int64         `json:"reversals_delivered"`
	ReversalP50        time.Duration `json:"reversal_delivery_p50_ns"`
	ReversalMax        time.Duration `json:"reversal_delivery_max_ns"`
	// The reconciliation, each with up to 10 RRNs as examples.
	Lost                  Finding `json:"lost"`
	DoubleAuthorizations  Finding `json:"double_authorizations"`
	UndeliveredUnreversed Finding `json:"approved_undelivered_unreversed"`
	DeliveredReversed     Finding `json:"delivered_then_reversed_by_switch"`
	// Notes say how the run departs from the setting (a shortened window).
	Notes []string `json:"notes,omitempty"`
}

// Schedule are the moments of a fault run in seconds since its load started (zero:
// did not happen).
type Schedule struct {
	OutageStart float64 `json:"outage_start_s"`
	OutageEnd   float64 `json:"outage_end_s"`
	Kill        float64 `json:"kill_s,omitempty"`
	Ready       float64 `json:"restarted_s,omitempty"`
}

// Finding is a count of reconciliation failures with a few examples.
type Finding struct {
	Count    int64    `json:"count"`
	Examples []string `json:"examples,omitempty"` // RRNs, or TID+STAN for an answer without an RRN
}

func (f *Finding) add(example string) {
	f.Count++
	if len(f.Examples) < 10 {
		f.Examples = append(f.Examples, example)
	}
}

// reconcile computes the fault run's figures. baseline are ledger RRNs from before the
// load (the readiness probes), which the run does not answer for.
func reconcile(txns []faultTxn, ledger []issuersim.Entry, recs []*journal.Record, baseline map[string]bool, tl faultTimeline) *FaultResult {
	fr := &FaultResult{ReturnToApproval: -1, RestartToApproval: -1, AfterWindow: tl.AfterWindow, Kill: !tl.KillAt.IsZero(),
		Drop: tl.Drop, Late: tl.Late, IssuerTimeout: tl.IssuerTimeout, LateBy: tl.LateBy, Outage: tl.Outage, OutageMode: tl.OutageMode}
	if !fr.Kill {
		fr.RestartToApproval = 0
	}
	led := make(map[string]*issuersim.Entry, len(ledger))
	for i := range ledger {
		if !baseline[ledger[i].RRN] {
			led[ledger[i].RRN] = &ledger[i]
		}
	}
	issuerApproved := func(e *issuersim.Entry) bool { return e != nil && e.Requests > 0 && e.Approved }
	jr := make(map[string]*journal.Record, len(recs))
	for _, r := range recs {
		jr[r.RRN] = r
	}
	delivered := map[string]bool{} // RRNs a terminal received an approval for
	afterEnd := tl.OutageEnd.Add(tl.AfterWindow)
	var outside []*faultTxn
	for i := range txns {
		t := &txns[i]
		fr.Sent++
		if !t.answered() {
			fr.Unanswered++
			continue
		}
		fr.Answered++
		if t.RRN != "" && message.Approved(t.RC) {
			delivered[t.RRN] = true
		}
		if t.RRN != "" && jr[t.RRN] == nil {
			fr.Lost.add(t.RRN) // answered, but not in the journal
		}
		if !t.authorization() {
			continue
		}
		if t.Answered.Before(tl.OutageStart) || !t.Sent.Before(tl.OutageEnd) {
			outside = append(outside, t) // classified once the return to approval is known
		}
		if t.RC == message.RCApproved && issuerApproved(led[t.RRN]) {
			if !t.Answered.Before(tl.OutageEnd) {
				if d := t.Answered.Sub(tl.OutageEnd); fr.ReturnToApproval < 0 || d < fr.ReturnToApproval {
					fr.ReturnToApproval = d
				}
			}
			if fr.Kill && !t.Answered.Before(tl.RestartedAt) {
				if d := t.Answered.Sub(tl.RestartedAt); fr.RestartToApproval < 0 || d < fr.RestartToApproval {
					fr.RestartToApproval = d
				}
			}
		}
		if t.Label != LabelLegit {
			continue
		}
		ruled := false
		if r := jr[t.RRN]; r != nil && r.DecidedBy == "risk" && !r.Approved() {
			ruled = true
		}
		switch {
		case t.Sent.Before(tl.OutageStart):
			fr.LegitBefore++
			if ruled {
				fr.RuleDeclinesBefore++
			}
		case !t.Sent.Before(tl.OutageEnd) && t.Sent.Before(afterEnd):
			fr.LegitAfter++
			if ruled {
				fr.RuleDeclinesAfter++
			}
		}
	}
	back := tl.OutageEnd
	if fr.ReturnToApproval > 0 {
		back = back.Add(fr.ReturnToApproval)
	}
	for _, t := range outside {
		is91 := t.RC == message.RCIssuerUnavailable
		if !t.Sent.Before(tl.OutageEnd) && t.Sent.Before(back) {
			fr.GapAnswered++
			if is91 {
				fr.Gap91++
			}
			continue
		}
		fr.OutsideAnswered++
		if is91 {
			fr.Outside91++
		}
		if e := led[t.RRN]; e != nil && e.Fault != "" {
			fr.OutsideFaulty++
		}
	}
	if fr.OutsideAnswered > 0 {
		fr.Share91 = float64(fr.Outside91) / float64(fr.OutsideAnswered)
		fr.FaultShare = float64(fr.OutsideFaulty) / float64(fr.OutsideAnswered)
	}

	// The issuer's approvals: each in the journal, delivered or reversed, and once.
	rrns := make([]string, 0, len(led))
	for rrn := range led {
		rrns = append(rrns, rrn)
	}
	slices.Sort(rrns)
	for _, rrn := range rrns {
		e := led[rrn]
		if !issuerApproved(e) {
			continue
		}
		fr.IssuerApprovals++
		if jr[rrn] == nil {
			fr.Lost.add(rrn)
		}
		if e.Requests > 1 {
			fr.DoubleAuthorizations.add(rrn)
		}
		if !e.Reversed && !delivered[rrn] {
			fr.UndeliveredUnreversed.add(rrn)
		}
	}

	// The switch's journal: one unreversed approval per terminal request, and every
	// reversal the switch owed delivered to the issuer.
	type dupKey struct{ tid, stan, de7 string }
	approvals := map[dupKey][]string{}
	var delays []time.Duration
	slices.SortFunc(recs, func(a, b *journal.Record) int { return strings.Compare(a.RRN, b.RRN) })
	for _, r := range recs {
		if baseline[r.RRN] {
			continue
		}
		if r.DecidedBy == "issuer" && r.Approved() && !r.Reversed() && r.Type != "reversal" {
			k := dupKey{r.TID, r.STAN, r.DE7}
			approvals[k] = append(approvals[k], r.RRN)
			if len(approvals[k]) == 2 {
				fr.DoubleAuthorizations.add(approvals[k][1])
			}
		}
		if !strings.HasPrefix(r.ReversedBy, "switch") {
			continue
		}
		fr.ReversalsOwed++
		if delivered[r.RRN] {
			fr.DeliveredReversed.add(r.RRN)
		}
		e := led[r.RRN]
		if e == nil || !e.Reversed {
			continue
		}
		fr.ReversalsDelivered++
		if owed := reversedAt(r); !owed.IsZero() {
			delays = append(delays, max(0, e.ReversedAt.Sub(owed)))
		}
	}
	if len(delays) > 0 {
		slices.Sort(delays)
		fr.ReversalP50 = delays[len(delays)/2]
		fr.ReversalMax = delays[len(delays)-1]
	}
	return fr
}

// reversedAt is when the journal says the record was reversed (zero: it does not say).
func reversedAt(r *journal.Record) time.Time {
	for _, ev := range r.Events {
		if ev.State == journal.StateReversed {
			return ev.At
		}
	}
	return time.Time{}
}

// share returns n/of, 0 when of is 0.
func share(n, of int64) float64 {
	if of == 0 {
		return 0
	}
	return float64(n) / float64(of)
}

// Targets are the fault run's figures against the goals.
func (fr *FaultResult) Targets() []Target {
	faulty := fr.FaultShare
	before, after := share(fr.RuleDeclinesBefore, fr.LegitBefore), share(fr.RuleDeclinesAfter, fr.LegitAfter)
	ret := Target{Name: "issuer's return to the first approval", Goal: "<= 3 s", Unit: "s", Measured: math.NaN()} // NaN: no approval came
	if fr.ReturnToApproval >= 0 {
		ret.Measured = fr.ReturnToApproval.Seconds()
		ret.Met = fr.ReturnToApproval <= 3*time.Second
	}
	window := "the " + fr.AfterWindow.String() + " after the outage"
	out := []Target{
		{Name: "91s outside the outage", Goal: fmt.Sprintf("<= %.2f%% (faulty answers)", 100*faulty), Unit: "%",
			Measured: 100 * fr.Share91, Met: fr.OutsideAnswered > 0 && fr.Share91 <= faulty},
		ret,
		{Name: "legitimate rule declines in " + window, Goal: fmt.Sprintf("<= before the outage (%.2f%%)", 100*before), Unit: "%",
			Measured: 100 * after, Met: fr.LegitAfter > 0 && (fr.RuleDeclinesAfter == 0 || after <= before)},
		{Name: "reversals owed delivered to the issuer", Goal: fmt.Sprintf("all %d", fr.ReversalsOwed),
			Measured: float64(fr.ReversalsDelivered), Met: fr.ReversalsDelivered == fr.ReversalsOwed},
		{Name: "lost (issuer approval or answer not journaled)", Goal: "0", Measured: float64(fr.Lost.Count), Met: fr.Lost.Count == 0},
		{Name: "double authorizations", Goal: "0", Measured: float64(fr.DoubleAuthorizations.Count), Met: fr.DoubleAuthorizations.Count == 0},
		{Name: "approvals neither delivered nor reversed", Goal: "0", Measured: float64(fr.UndeliveredUnreversed.Count), Met: fr.UndeliveredUnreversed.Count == 0},
		{Name: "delivered approvals reversed by the switch", Goal: "0", Measured: float64(fr.DeliveredReversed.Count), Met: fr.DeliveredReversed.Count == 0},
	}
	return out
}
