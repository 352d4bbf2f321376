// Package cases is the queue of transactions the risk rules sent to manual review:
// a rule with action review (or alert) lets the transaction through to the issuer and
// opens a case here, with the transaction, the rules that hit and the values they saw.
// An analyst assigns the case and decides it: confirmed fraud puts the card on the
// deny list and opens an incident for the merchant; cleared notes which counters
// flagged it. Every assignment and decision goes into the registry's operation log.
//
// Opening a case never holds up a transaction: Open copies what the case needs and
// hands it to a writer goroutine through a bounded queue. When the queue is full the
// case is not opened (counted in switchyard_cases_dropped_total, logged once per
// overflow); the transaction and its rule hits stay in the journal, where `switchyard
// journal` and `rules backtest` find them.
//
// Cases live in the switch's Badger database under "case/".
package cases

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/risk"
)

// Status is where a case is in its handling: open -> assigned -> decided.
type Status string

// The case states.
const (
	StatusOpen     Status = "open"     // waiting for an analyst
	StatusAssigned Status = "assigned" // an analyst has it
	StatusDecided  Status = "decided"  // confirmed fraud or cleared; final
)

// Verdict is an analyst's decision on a case.
type Verdict string

// The verdicts.
const (
	// VerdictFraud: the transaction was fraud. The card goes on the deny list and the
	// merchant gets an incident.
	VerdictFraud Verdict = "confirmed-fraud"
	// VerdictCleared: the transaction was genuine. The counters that flagged it are
	// noted in the decision, for tuning the rules.
	VerdictCleared Verdict = "cleared"
)

// Case is one transaction under manual review. It holds the masked PAN and the card
// hash, never a clear PAN.
type Case struct {
	ID     string `json:"id"` // CASE-n
	Seq    uint64 `json:"seq"`
	Status Status `json:"status"`
	// Action is the rules' action that opened the case: review or alert.
	Action string `json:"action"`
	// Rule and Reason are the deciding rule's; Score the summed score of the enforced hits.
	Rule     string    `json:"rule"`
	Reason   string    `json:"reason,omitempty"`
	Score    int       `json:"score,omitempty"`
	RuleSet  string    `json:"rule_set,omitempty"` // version of the rules that decided
	OpenedAt time.Time `json:"opened_at"`

	// The transaction.
	RRN       string    `json:"rrn"`
	Time      time.Time `json:"time"` // when the switch received it
	MTI       string    `json:"mti,omitempty"`
	Type      string    `json:"type,omitempty"`
	TID       string    `json:"tid"`
	MID       string    `json:"mid,omitempty"`
	STAN      string    `json:"stan,omitempty"`
	PANMasked string    `json:"pan"`
	CardHash  string    `json:"card_hash"`
	Amount    int64     `json:"amount"`
	Currency  string    `json:"currency,omitempty"`

	// Hits are the rules that hit (shadow ones included) with the values they saw,
	// as `switchyard rules explain` shows them.
	Hits []risk.RuleTrace `json:"hits"`

	AssignedTo string     `json:"assigned_to,omitempty"`
	AssignedBy string     `json:"assigned_by,omitempty"`
	AssignedAt *time.Time `json:"assigned_at,omitempty"`

	Decision *Decision `json:"decision,omitempty"`
}

// Decision is how an analyst decided a case.
type Decision struct {
	Verdict Verdict   `json:"verdict"`
	By      string    `json:"by"`
	At      time.Time `json:"at"`
	Note    string    `json:"note,omitempty"`
	// DenyListed: the card hash was put on the deny list (confirmed fraud).
	DenyListed bool `json:"deny_listed,omitempty"`
	// Incident is the merchant's incident opened for the fraud (INC-n).
	Incident string `json:"incident,omitempty"`
	// Counters are the velocity counters the rules that hit read, with the values
	// they saw: what flagged a cleared transaction.
	Counters []risk.RefValue `json:"counters,omitempty"`
}

func caseID(seq uint64) string { return "CASE-" + strconv.FormatUint(seq, 10) }

func parseID(id string) (uint64, error) {
	s, ok := strings.CutPrefix(strings.ToUpper(strings.TrimSpace(id)), "CASE-")
	n, err := strconv.ParseUint(s, 10, 64)
	if !ok || err != nil || n == 0 {
		return 0, kindErrorf(ErrInvalid, "case ID %q: want CASE-n, like CASE-12", id)
	}
	return n, nil
}

// Error kinds. Every error the store returns for a refused request wraps one of
// these, so that the API maps them to HTTP statuses with errors.Is.
var (
	ErrNotFound  = errors.New("not found") // no such case
	ErrInvalid   = errors.New("invalid")   // malformed request
	ErrConflict  = errors.New("conflict")  // the case's state does not allow it
	ErrForbidden = errors.New("forbidden") // the principal may not do it
)

// ErrChanged is returned (wrapping statelog.ErrConflict) when a change to the cases
// conflicted twice with changes made on other nodes of the cluster. It is a kind of
// ErrConflict.
var ErrChanged = &kindError{ErrConflict, "the review cases changed on another node; retry"}

type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

func kindErrorf(kind error, format string, args ...any) error {
	return &kindError{kind, fmt.Sprintf(format, args...)}
}

// counters picks the velocity counters out of the values the hits saw, each once.
func counters(hits []risk.RuleTrace) []risk.RefValue {
	var out []risk.RefValue
	seen := map[string]bool{}
	for _, h := range hits {
		for _, v := range h.Values {
			if strings.HasPrefix(v.Name, "velocity.") && !seen[v.Name] {
				seen[v.Name] = true
				out = append(out, v)
			}
		}
	}
	return out
}

// summary is what the operation log keeps of a case before and after a change.
func summary(c *Case) json.RawMessage {
	m := map[string]any{"status": c.Status}
	if c.AssignedTo != "" {
		m["assigned_to"] = c.AssignedTo
	}
	if d := c.Decision; d != nil {
		m["verdict"] = d.Verdict
		if d.Incident != "" {
			m["incident"] = d.Incident
		}
		if d.DenyListed {
			m["deny_listed"] = "card " + c.CardHash
		}
		if len(d.Counters) > 0 {
			m["counters"] = d.Counters
		}
	}
	b, _ := json.Marshal(m)
	return b
}
