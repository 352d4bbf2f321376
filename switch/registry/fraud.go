package registry

import (
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// ReasonConfirmedFraud is the reason of an incident opened because an analyst
// confirmed fraud in a review case at the merchant (switch/cases). Nothing was
// declined for it: the incident tells the merchant's handlers about the fraud.
const ReasonConfirmedFraud Reason = "confirmed-fraud"

// OpenFraudIncident records that an analyst confirmed fraud in review case caseID,
// a transaction at merchantID on terminalID, and returns the incident, stored. The
// terminal and merchant are kept as they are now, like a binding incident's.
func (r *Registry) OpenFraudIncident(caseID, merchantID, terminalID string) (*Incident, error) {
	if caseID == "" || (merchantID == "" && terminalID == "") {
		return nil, invalidf("a fraud incident needs its case and a merchant or terminal (case %q, merchant %q, terminal %q)", caseID, merchantID, terminalID)
	}
	inc := &Incident{Time: r.now(), Reason: ReasonConfirmedFraud, TerminalID: terminalID, MerchantID: merchantID,
		Status: IncidentOpen, Action: "card-denied", Case: caseID, Device: DeviceData{MerchantID: merchantID}}
	if t, ok := r.Terminal(terminalID); ok {
		inc.Terminal = t
	}
	if m, ok := r.Merchant(merchantID); ok {
		inc.Merchant = m
	}
	inc.Seq = r.incSeq.Add(1)
	inc.ID = incidentID(inc.Seq)
	if err := r.writeIncident(inc); err != nil {
		return nil, err
	}
	r.m.incidents.WithLabelValues(string(inc.Reason)).Inc()
	r.log.Warn().Str("incident", inc.ID).Str("reason", string(inc.Reason)).Str("case", caseID).Str("terminal", terminalID).
		Str("merchant", merchantID).Msg("fraud confirmed at merchant")
	return inc, nil
}

// LogOp appends e to the operation log for another part of the switch (the review
// cases), in one Badger transaction with write (nil: nothing else), so that a
// record and the entry that tells who changed it are stored together or not at
// all. Seq, PrevHash and Hash are set here; Time defaults to the registry's clock.
func (r *Registry) LogOp(e OpEntry, write func(txn *badger.Txn) error) (OpEntry, error) {
	if e.Actor == "" || e.Action == "" || e.TargetType == "" || e.Target == "" {
		return e, invalidf("oplog entry needs an actor, an action, a target type and a target (got %q %q %q %q)", e.Actor, e.Action, e.TargetType, e.Target)
	}
	if e.Time.IsZero() {
		e.Time = r.now()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.ops()
	b.add(e)
	if err := r.commitLocked(func(txn *badger.Txn) error {
		if write != nil {
			if err := write(txn); err != nil {
				return err
			}
		}
		return b.write(txn)
	}); err != nil {
		return e, fmt.Errorf("registry: store %s of %s %s: %w", e.Action, e.TargetType, e.Target, err)
	}
	b.done()
	return b.entries[0], nil
}
