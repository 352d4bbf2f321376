package pipeline

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/risk/profile"
	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/metrics"
	"github.com/switchyard/switchyard/switch/registry"
)

// Risk is the rules engine: it decides on a transaction, learns from its outcome, and
// forgets a transaction that a void, a reversal or a refund took back.
type Risk interface {
	Evaluate(in *risk.Input) risk.Decision
	Observe(in *risk.Input, out risk.Outcome)
	Retract(orig *risk.Input, out risk.Outcome, r risk.Retraction)
}

// Profiles know each merchant's profile (profile.Set): Fill sets m.Profile from
// m.ID and m.Tier without taking a lock.
type Profiles interface {
	Fill(m *risk.Merchant)
}

// Ratings give the rules a merchant's rating in force (risk/rating.Book): Apply
// sets m.Rating and lowers m's limits to its rating's (the SoftPOS one on a SoftPOS
// terminal), without a lock or an allocation.
type Ratings interface {
	Apply(m *risk.Merchant, softpos bool)
}

// tierDefaults serves a pipeline configured without profiles.
var tierDefaults = profile.NewSet(nil)

var inputs = sync.Pool{New: func() any { return new(risk.Input) }}

// ratingGrade maps the registry's underwriting rating to the rules' A (best) to E
// (worst) grades: low risk B, medium C, high D. A to E pass through.
func ratingGrade(r string) string {
	switch r {
	case registry.RatingLow:
		return "B"
	case registry.RatingMedium:
		return "C"
	case registry.RatingHigh:
		return "D"
	}
	return r
}

// fillInput gives the rules the transaction, its terminal and merchant, and the facts
// of the binding checks. It builds no map.
func (p *Pipeline) fillInput(in *risk.Input, t *txn, res *registry.CheckResult, orig *journal.Record) {
	r := t.req
	x := &in.Txn
	x.MTI, x.ProcCode, x.Type = r.MTI, r.ProcCode, risk.TxnTypeOf(r.MTI, r.ProcCode)
	x.Amount, x.Currency = int(r.Amount), r.Currency
	x.SetEntryMode(r.EntryMode)
	x.PINPresent = x.PINPresent || r.HasPIN
	if r.QR {
		x.QR, x.Wallet = true, t.rec.QR
	}
	x.BIN, x.CardHash, x.STAN, x.RRN, x.Time = r.BIN(), t.rec.CardHash, r.STAN, t.rec.RRN, t.start.UTC()
	if orig != nil {
		x.OriginalCardHash, x.OriginalAmount = orig.CardHash, int(orig.Amount)
	}
	in.Device.ID = r.TLV.Device
	in.Device.AttestationAgeS = -1
	if res == nil {
		return
	}
	f := &res.Facts
	if term := res.Terminal; term != nil {
		// The version the registry judged: a signed attestation's ver, not the AV
		// tag the app writes itself (checkRequest).
		in.Terminal = risk.Terminal{ID: term.ID, Kind: string(term.Kind), Status: string(term.Status), AgeDays: f.TerminalAgeDays,
			AppVersion: f.AppVersion, Bound: term.Bound()}
		if loc := term.Location; loc != nil {
			in.Terminal.Lat, in.Terminal.Lon, in.Terminal.RadiusM = loc.Lat, loc.Lon, int(loc.RadiusM)
		}
	}
	if m := res.Merchant; m != nil {
		in.Terminal.Region = m.Region
		in.Merchant = risk.Merchant{ID: m.ID, MCC: m.MCC, Tier: m.Tier, Rating: ratingGrade(m.Rating), Status: string(m.Status),
			SingleLimit: int(m.Limits.PerTransaction), DailyLimit: int(m.Limits.Daily), MonthlyLimit: int(m.Limits.Monthly),
			DailyCount: int(m.Limits.DailyCount), Group: m.Group, Currency: m.Currency}
		p.profiles.Fill(&in.Merchant)
		if p.ratings != nil {
			p.ratings.Apply(&in.Merchant, in.Terminal.Kind == string(registry.KindSoftPOS))
		}
	}
	in.Binding = risk.Binding{Checked: true, LocationKnown: f.LocationKnown, Lat: f.Lat, Lon: f.Lon, DistanceM: f.DistanceM,
		LocationOK: f.LocationOK, SIMOK: f.SIMOK, IMEIOK: f.IMEIOK, DeviceOK: f.DeviceOK, NetworkOK: f.NetworkOK}
	in.Device.Findings = append(in.Device.Findings[:0], f.Findings...)
	if f.AttestationAgeS >= 0 {
		in.Device.Attested, in.Device.AttestationAgeS = f.AttestationOK, int(f.AttestationAgeS)
	}
}

// assess runs the rules. It records the rule-set version, every hit (shadow ones
// included), the rules that failed at run time and the facts the rules saw in the
// journal record, and returns a response when the rules decline.
func (p *Pipeline) assess(ctx context.Context, t *txn, res *registry.CheckResult, orig *journal.Record) *frontend.Response {
	if p.risk == nil {
		return nil
	}
	start := p.now()
	in := inputs.Get().(*risk.Input)
	in.Reset()
	p.fillInput(in, t, res, orig)
	if declined := p.lockNearLimits(ctx, t, in); declined != nil {
		return declined // 91: the merchant's lock, which the check near its limits needs, not taken
	}
	d := p.risk.Evaluate(in)
	took := p.now().Sub(start)
	t.rec.Timings.Risk = took.Microseconds()
	t.stages.add(metrics.StageRules, took)
	t.risk, t.decision = in, d
	t.rec.RuleSet = d.Version
	for _, h := range d.Hits {
		t.rec.RuleHits = append(t.rec.RuleHits, journal.RuleHit{ID: h.Rule, Action: string(h.Action), Mode: string(h.Mode), Reason: h.Reason, Score: h.Score})
		p.metrics.RuleHits.WithLabelValues(h.Rule, string(h.Mode)).Inc()
	}
	if len(d.Errors) > 0 {
		t.rec.RuleErrors = journalRuleErrors(d.Errors)
	}
	t.rec.Facts = journalFacts(in)
	switch d.Action {
	case risk.ActionDecline:
		rc := d.ResponseCode
		if rc == "" {
			rc = message.RCDoNotHonour
		}
		reason := d.Reason
		if reason == "" {
			reason = d.Rule
		}
		resp, err := p.decline(ctx, t, rc, "risk", reason)
		if err != nil {
			return &frontend.Response{}
		}
		return &resp
	case risk.ActionReview, risk.ActionAlert:
		p.log.Info().Str("rrn", t.rec.RRN).Str("tid", t.rec.TID).Str("action", string(d.Action)).Str("rule", d.Rule).
			Str("reason", d.Reason).Int("score", d.Score).Msg("risk " + string(d.Action))
		p.openCase(ctx, t)
	}
	return nil
}

// observe tells the rules how the transaction ended (velocity counters), once.
func (p *Pipeline) observe(t *txn) {
	if p.risk == nil || t.risk == nil {
		return
	}
	p.risk.Observe(t.risk, risk.OutcomeOf(&t.decision, t.rec.RC))
	in := t.risk
	t.risk = nil
	inputs.Put(in)
}

// probe fills the Input of a request the switch declines itself before the rules,
// with nothing for the rules to decide (a purchase of nothing), so that the velocity
// counters count it as the attempt it is (observe, at the answer) and the journal
// carries its facts for the other nodes of a cluster and for backtests. The rules are
// not run: the switch's decline stands whatever they say.
func (p *Pipeline) probe(t *txn, res *registry.CheckResult) {
	if p.risk == nil || t.risk != nil {
		return
	}
	in := inputs.Get().(*risk.Input)
	in.Reset()
	p.fillInput(in, t, res, nil)
	t.risk, t.decision = in, risk.Decision{Action: risk.ActionAllow}
	t.rec.Facts = journalFacts(in)
}

// retract takes orig (a journal record the rules saw) back out of the velocity
// counters, as r says: a void, a reversal or a refund of it was answered approved.
func (p *Pipeline) retract(orig *journal.Record, r risk.Retraction) {
	if p.risk == nil {
		return
	}
	in := inputs.Get().(*risk.Input)
	in.Reset()
	if out, ok := RecordInput(orig, in); ok {
		p.risk.Retract(in, out, r)
	}
	inputs.Put(in)
}

// RecordInput decodes into in the Input the rules saw for r (its journaled facts,
// with the fields the record holds itself restored) and returns the outcome r was
// observed with; false for a record the rules never saw.
func RecordInput(r *journal.Record, in *risk.Input) (risk.Outcome, bool) {
	if len(r.Facts) == 0 {
		return risk.Outcome{}, false
	}
	if err := in.UnmarshalBinary(r.Facts); err != nil {
		return risk.Outcome{}, false
	}
	restoreFacts(&in.Txn, r)
	return risk.Outcome{Approved: r.Approved(), ResponseCode: r.RC, RiskDeclined: r.DecidedBy == "risk"}, true
}

// restoreFacts fills in the transaction fields that journalFacts leaves out of the
// journaled facts because the record holds them (older records have them all).
func restoreFacts(x *risk.Txn, r *journal.Record) {
	fill := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	fill(&x.MTI, r.MTI)
	fill(&x.ProcCode, r.ProcCode)
	fill(&x.Currency, r.Currency)
	fill(&x.CardHash, r.CardHash)
	fill(&x.STAN, r.STAN)
	fill(&x.RRN, r.RRN)
	if len(r.PANMasked) >= 6 {
		fill(&x.BIN, r.PANMasked[:6])
	}
	if x.Amount == 0 {
		x.Amount = int(r.Amount)
	}
	if x.Time.IsZero() {
		x.Time = r.Received
	}
}

// journalFacts encodes the facts the rules saw for the journal, without the fields the
// record holds itself (MTI, processing code, amount, currency, BIN, card hash, STAN,
// RRN, time): server.RiskRecord restores them from the record. That is ~80 of ~190
// bytes, in every record the journal writes and compacts.
func journalFacts(in *risk.Input) []byte {
	x := in.Txn
	in.Txn.MTI, in.Txn.ProcCode, in.Txn.Currency, in.Txn.BIN, in.Txn.CardHash, in.Txn.STAN, in.Txn.RRN = "", "", "", "", "", "", ""
	in.Txn.Amount, in.Txn.Time = 0, time.Time{}
	b := in.AppendBinary(make([]byte, 0, 128))
	in.Txn = x
	return b
}

// journalRuleErrors is the journal's copy of a decision's run-time errors: at most
// journal.MaxRuleErrors (the last then says how many more failed), each error as
// risk.RuleErrorText keeps it (card numbers masked, bounded: the engine's
// decision has it so already, this keeps a card number out of the record
// whatever the Risk). Only a decision with errors comes here: a transaction
// without any journals nothing more and allocates nothing more.
func journalRuleErrors(errs []risk.RuleError) []journal.RuleError {
	n := min(len(errs), journal.MaxRuleErrors)
	out := make([]journal.RuleError, 0, n)
	for _, e := range errs[:n] {
		out = append(out, journal.RuleError{ID: e.Rule, Error: risk.RuleErrorText(e.Error)})
	}
	if more := len(errs) - n; more > 0 {
		out[n-1] = journal.RuleError{ID: "...", Error: fmt.Sprintf("%d more rules failed: rules explain lists them", more+1)}
	}
	return out
}
