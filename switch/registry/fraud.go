package registry

import (
	"errors"
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
func (r *incidents) OpenFraudIncident(caseID, merchantID, terminalID string) (*Incident, error) {
	if caseID == "" || (merchantID == "" && terminalID == "") {
		return nil, invalidf("a fraud incident needs its case and a merchant or terminal (case %q, merchant %q, terminal %q)", caseID, merchantID, terminalID)
	}
	if prev, err := r.caseIncident(caseID); prev != nil || err != nil {
		return prev, err // decided again after a failure: the incident is there already
	}
	inc := &Incident{Time: r.now(), Reason: ReasonConfirmedFraud, TerminalID: terminalID, MerchantID: merchantID,
		Status: IncidentOpen, Action: "card-denied", Case: caseID, Device: DeviceData{MerchantID: merchantID}}
	if t, ok := r.Terminal(terminalID); ok {
		inc.Terminal = t
	}
	if m, ok := r.Merchant(merchantID); ok {
		inc.Merchant = m
	}
	inc.Node = r.opts.Node
	if r.opts.Log != nil { // ordered now: the case records its ID, the same on every node
		inc.Origin = r.newOrigin()
		stored, err := r.orderNow(inc)
		if err != nil {
			return nil, err
		}
		inc = stored
	} else {
		inc.Seq = r.incSeq.Add(1)
		inc.ID = incidentID(inc.Seq)
		if err := r.writeIncident(inc); err != nil {
			return nil, err
		}
		r.logIncident(inc)
	}
	r.m.incidents.WithLabelValues(string(inc.Reason)).Inc()
	return inc, nil
}

// caseIncidentKey indexes the incident of a review case's confirmed fraud.
func caseIncidentKey(caseID string) []byte { return []byte(pfxIncCase + caseID) }

// caseIncident returns the incident opened for review case caseID, nil if none.
func (r *incidents) caseIncident(caseID string) (*Incident, error) {
	var id string
	err := r.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(caseIncidentKey(caseID))
		if err != nil {
			return err
		}
		b, err := it.ValueCopy(nil)
		id = string(b)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("registry: look up the incident of case %s: %w", caseID, err)
	}
	return r.GetIncident(id)
}
