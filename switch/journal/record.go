// Package journal records every transaction the switch handles, with each state it went
// through, durably before the terminal is answered, and answers queries over them. The
// records go to a write-ahead log (package wal: segment files, group commit) and are
// indexed in Badger; store.go describes the index, indexer.go how it is kept and
// rebuilt after a crash.
package journal

import (
	"time"
)

// State is a step of a transaction's life.
type State string

// The states a journal record goes through.
const (
	StateReceived  State = "received"    // decoded and accepted for processing
	StateSent      State = "sent"        // forwarded to the issuer
	StateAnswered  State = "answered"    // the issuer answered
	StateTimedOut  State = "timed_out"   // the issuer did not answer in time (owes a reversal)
	StateDeclined  State = "declined"    // the switch declined without the issuer
	StateResponded State = "responded"   // the response was written to the terminal
	StateUndeliver State = "undelivered" // the response could not be written
	StateReversed  State = "reversed"    // reversed (by the terminal or the switch)
	StateInDoubt   State = "in_doubt"    // sent to the issuer when the switch stopped; reversed at restart
	// StateReversalOwed: a reversal advice (0420) of the record is owed, the queue
	// having refused it (or its fate unknown). The process queues it when the queue
	// takes it again (a "reversed" event follows), and recovery after a restart or a
	// survivor's does it for a process that is gone: the event is the durable mark of
	// the debt, which no later version takes back (its reason may be rewritten, as a
	// record kept for the journal's return is, to journal-unavailable). In a cluster
	// the record's OwedBy names the node that owes it, which need not be the node
	// whose record it is (a void of another node's purchase).
	StateReversalOwed State = "reversal_owed"
	// StateAdviceOwed: the advice (0220) of an offline approval the switch captured
	// (Record.Offline) is owed, the queue having refused it when the capture was
	// answered 00: the record is durable, so the issuer must have its advice. The
	// process queues it when the queue takes it again (an "advice_queued" event
	// follows), and recovery after a restart or a survivor's does it, as a repeat
	// (0221), for a process that is gone, from the card sealed in the record
	// (SealedPAN). No later version takes it back.
	StateAdviceOwed State = "advice_owed"
	// StateAdviceQueued: the owed advice of an offline approval (StateAdviceOwed, or
	// one whose fate a crash left unknown) is in the store-and-forward queue now.
	StateAdviceQueued State = "advice_queued"
)

// Event is one state change with its time.
type Event struct {
	State State     `json:"state"`
	At    time.Time `json:"at"`
	Note  string    `json:"note,omitempty"`
}

// RuleHit is one rule that matched, as the risk engine reported it.
type RuleHit struct {
	ID     string `json:"id"`
	Action string `json:"action"`
	Mode   string `json:"mode,omitempty"` // enforce or shadow
	Reason string `json:"reason,omitempty"`
	Score  int    `json:"score,omitempty"`
}

// RuleError is one rule that failed at run time on the transaction (an
// expression that could not be run on its values: int() of a word, a division by
// zero, a counter read in doubt), as the risk engine reported it: the rule counts
// as not hit, or as hit with its on_error action (a rule hit then says so). The
// error is kept as risk.RuleErrorText gives it: card numbers masked, at most
// risk.MaxRuleErrorText bytes.
type RuleError struct {
	ID    string `json:"id"`    // the rule's id
	Error string `json:"error"` // what failed
}

// MaxRuleErrors is the most rule errors a record keeps (RuleErrors): past it, the
// last one says how many more failed (`rules explain RRN` lists them all).
const MaxRuleErrors = 16

// Timings are the durations of the stages of a transaction, in microseconds.
type Timings struct {
	Decode  int64 `json:"decode_us"`
	Checks  int64 `json:"checks_us,omitempty"`
	Risk    int64 `json:"risk_us,omitempty"`
	HSM     int64 `json:"hsm_us,omitempty"`
	Issuer  int64 `json:"issuer_us,omitempty"`
	Journal int64 `json:"journal_us,omitempty"`
	// Total is from the request received to its answer written to the terminal once
	// the delivery mark is in (read back from the journal); in the final record as
	// written, to the start of its final write.
	Total int64 `json:"total_us"`
}

// Record is one transaction. It never holds a clear PAN, track data, PIN block or key:
// the card is kept as a masked PAN and a keyed hash for matching.
type Record struct {
	RRN      string    `json:"rrn"`
	Received time.Time `json:"received"`
	MTI      string    `json:"mti"`
	Type     string    `json:"type"` // purchase, preauth, void, refund, balance, reversal, batch, network
	ProcCode string    `json:"proc_code,omitempty"`
	TID      string    `json:"tid"`
	MID      string    `json:"mid,omitempty"`
	STAN     string    `json:"stan"`
	DE7      string    `json:"de7,omitempty"`
	Listener string    `json:"listener,omitempty"`
	Remote   string    `json:"remote,omitempty"`

	PANMasked string `json:"pan,omitempty"`
	CardHash  string `json:"card_hash,omitempty"`
	Amount    int64  `json:"amount"`
	Currency  string `json:"currency,omitempty"`
	EntryMode string `json:"entry_mode,omitempty"`

	Issuer     string `json:"issuer,omitempty"`
	IssuerSTAN string `json:"issuer_stan,omitempty"`

	State    State   `json:"state"`
	Events   []Event `json:"events"`
	RC       string  `json:"rc,omitempty"`
	AuthCode string  `json:"auth_code,omitempty"`
	// DecidedBy says who set the response code: issuer, switch, binding, risk, hsm, stand-in.
	DecidedBy string `json:"decided_by,omitempty"`
	Reason    string `json:"reason,omitempty"`

	OriginalRRN string `json:"original_rrn,omitempty"`
	// ReversedBy names what reversed or voided this transaction: the RRN of the
	// terminal's reversal or void, or "switch:<why>" for a reversal the switch made.
	ReversedBy string `json:"reversed_by,omitempty"`
	// Refunded is the sum of approved refunds that name this transaction.
	Refunded int64 `json:"refunded,omitempty"`
	// StandIn marks an approval the switch gave for an unreachable issuer.
	StandIn bool `json:"stand_in,omitempty"`
	// CompletedBy is, on a pre-authorization, the RRN of the completion that captured
	// it; the pre-authorization is completed while that completion stands approved
	// and not reversed (a voided completion reopens it).
	CompletedBy string `json:"completed_by,omitempty"`

	RuleSet  string    `json:"rule_set,omitempty"`
	RuleHits []RuleHit `json:"rule_hits,omitempty"`
	// RuleErrors are the rules that failed at run time on the transaction, in
	// the order they ran (at most MaxRuleErrors). Encoded after Balance, only
	// when set (since the fifteenth release of 8 December 2026); before it, a
	// rule's failure was in the metrics and the log only.
	RuleErrors []RuleError `json:"rule_errors,omitempty"`
	// Facts are what the rules saw (the risk engine's input in its compact encoding),
	// for backtest and explain.
	Facts []byte `json:"facts,omitempty"`

	Timings Timings `json:"timings"`

	// Label is the request's DE 48 LB: the ground truth of generated traffic (the
	// bench's scenario), "" for real traffic. Encoded after every other field and only
	// when set, so records without one are as before.
	Label string `json:"label,omitempty"`
	// QR is the network of a payment made with a payment code instead of a card
	// ("unionpay", "wechat", "alipay"...; "" for a card). PANMasked and CardHash then
	// stand for the payment code (masked like a PAN, hashed like one). Refunds and
	// voids of QR payments carry it too. Encoded after Label, only when set.
	QR string `json:"qr,omitempty"`
	// KSN is the DUKPT key serial number of the request's PIN block, set once the
	// HSM has taken its counter (not secret: the terminal sends it in clear), so that
	// the other nodes of a cluster refuse the same KSN again (a replay). Encoded after
	// CompletedBy, only when set.
	KSN string `json:"ksn,omitempty"`
	// Rev counts the versions of the record a cluster's journal published: each
	// write of a version sets it to one more than the version it was made from, so
	// that every node keeps the latest, whatever the events merged into its copy (a
	// delivery mark) or the order in which versions arrive. 0 on a single switch,
	// and in records written before it. Encoded after KSN, only when set.
	Rev int64 `json:"rev,omitempty"`
	// RefundedTo, on a refund, is its original's Refunded once this refund's amount
	// was reserved on it, as the node that handled the refund decided it: the
	// refund makes the original whole (its retraction takes the original's count out
	// of the velocity counters, not only its amount) when RefundedTo reaches the
	// original's Amount. Another node of a cluster that folds the refund reads the
	// decision here: the original as it stands when the refund's final version
	// arrives may hold the reservations of refunds made after it. 0 in records
	// written before it. Encoded after Rev, only when set.
	RefundedTo int64 `json:"refunded_to,omitempty"`
	// OwedBy names the node of a cluster that wrote the record's reversal_owed
	// event: its RRN prefix, the node's number. That node owes the reversal advice
	// (0420) in its memory, whoever's record this is (a void on node 2 of a purchase
	// made on node 1 marks node 1's record), and recovery finds the debt by it
	// (the journal's ScanOwed): the node's own at a restart, a survivor's once it
	// died. "" on a single switch, whose recovery scans all its records, and in
	// records written before 5 December 2026. Encoded after RefundedTo, only when
	// set.
	OwedBy string `json:"owed_by,omitempty"`
	// Requested is, on a partial approval (RC 10), the amount the terminal asked
	// for; Amount is then the amount the issuer approved, which settlement, refund
	// ceilings, velocity sums and batch totals count. 0 otherwise. Encoded after
	// OwedBy, only when set.
	Requested int64 `json:"requested,omitempty"`
	// Offline marks a purchase the card approved offline (EMV) that its terminal
	// uploaded afterwards (the cup dialect's 0320, docs/cup-dialect.md): the switch
	// captured it without an authorization, its issuer was advised (0220 through the
	// store-and-forward queue), and DecidedBy is "card" on its approval. Such an
	// approval is never reversed for an answer the terminal did not get: the terminal
	// uploads it again and is answered as before. Encoded after Requested, only when
	// set.
	Offline bool `json:"offline,omitempty"`
	// SealedPAN is, on an offline approval whose advice is not known to be queued
	// (its write-ahead version, or one with an advice_owed event), the card's PAN
	// sealed as the advice carries it in the store-and-forward queue (AES-256-GCM
	// under a key derived from the card hash key, never clear): the only copy of the
	// card from which recovery after a restart can build that advice again. The
	// version written once the advice is queued drops it. Never in the record's JSON
	// (queries, exports). Encoded after Offline, only when set.
	SealedPAN []byte `json:"-"`
	// Written is when the record's first version was written, on a record whose
	// receive time is not that of its write: a merchant-presented payment, received
	// when the order book took it and journaled then or, by the sweep of owed
	// orders, later. Zero on the others, written as they are received. Settlement
	// counts such a payment in the day it was written when that is later than the
	// day it was received (its day's report may have been filed without it), and the
	// journal indexes it by this time when it is more than LateAfter after Received
	// (Store.ScanLate). Encoded after SealedPAN, only when set.
	Written time.Time `json:"written,omitzero"`
	// SealedICC is, beside SealedPAN and dropped with it, the chip data the advice
	// carries (DE 55: the card's transaction certificate, without its track, PAN or
	// name; message.AdviceICC), sealed as the advice carries it, so that recovery
	// builds the advice with it. Never in the record's JSON. Encoded after
	// Written, only when set (since 6 December 2026).
	SealedICC []byte `json:"-"`
	// SealedExpiry is, beside SealedPAN and dropped with it, the card's expiry (DE
	// 14, YYMM) as the terminal sent it, sealed as the advice carries it in the
	// queue (never clear: it is cardholder data), so that the advice recovery
	// builds carries DE 14 as the first one would have. Empty when the request had
	// no expiry, and in records written before it (their rebuilt advice goes
	// without DE 14). Never in the record's JSON. Encoded after SealedICC, only
	// when set (since 6 December 2026).
	SealedExpiry []byte `json:"-"`
	// CaptureKey is, on an offline approval's record (Offline), the card's proof
	// of that approval as a keyed hash (the pipeline's card hash key over the PAN,
	// the application transaction counter 9F36 and the application cryptogram 9F26,
	// hex; never the clear PAN): the record's duplicate key is CaptureDupKey of it
	// instead of DE 41 + 11 + 7 (DuplicateKey), so that the same card approval
	// uploaded again under another STAN, another time or from another terminal is
	// the first one's duplicate, on every node of a cluster and after a restart.
	// Encoded after SealedExpiry, only when set (since 6 December 2026).
	CaptureKey string `json:"capture_key,omitempty"`
	// ContentSum is, on a cup request's record (0100, 0200, 0220 of the cup
	// dialect, switch/cup), the fingerprint of the request's content as the
	// adapter computed it (the first 64 bits of an HMAC-SHA256 under a key derived
	// from the card hash key, cup.ContentKeyLabel, over the fields that tell one
	// transaction from another: never card data, and of no use without the key):
	// the same on every node of a cluster and after a restart, so that a request
	// reusing the STAN, type and amount of this one with other content is told
	// from its resend (94) when the adapter reads this record back from the
	// journal. Set on the request's first record and kept by every later version.
	// 0 on other records and in records written before it (their STANs are
	// compared by entry mode and card, as before). Never in the record's JSON.
	// Encoded after CaptureKey as 8 bytes, only when set (since the third release
	// of 6 December 2026).
	ContentSum uint64 `json:"-"`
	// Balance is, on an approved balance inquiry's record, the DE 54 of its
	// answer: the issuer's balances in ISO 8583:1987's layout (account type,
	// amount type, currency, sign, amount; no card data), so that the
	// terminal's resend of the inquiry, answered from this record, carries them
	// as the first answer did. "" on other records and in records written
	// before it. Never in the record's JSON (queries, exports) nor a log.
	// Encoded after ContentSum, only when set (since the sixth release of 6
	// December 2026).
	Balance string `json:"-"`
	// Unknown is the encoding of the trailing fields after the last one this
	// version knows: fields a newer version wrote. Decoding keeps them and
	// encoding writes them back after the known ones, so that during a rolling
	// upgrade a node of this version rewriting a newer node's record (a reversal,
	// a refund, a settlement mark) does not drop them, as nodes before 6 December
	// 2026 dropped Written, SealedICC and SealedExpiry. They may hold card data
	// (sealed), so they are dropped with SealedPAN. Never in the record's JSON.
	Unknown []byte `json:"-"`
}

// LateAfter is how long after a record was received a change of it is late: a
// reversal (its first reversed event, Record.ReversedAt), a first write
// (Record.Written) or an approval (Record.DecidedAt of an approved record) later than
// that puts the record in the journal's index of late changes (Store.ScanLate), by
// the change's time. Settlement finds by its receive time, through the day before,
// what changed within a day of it; the index finds the rest.
const LateAfter = time.Hour

// ReversedAt is when the transaction was reversed or voided: the time of its first
// reversed event (the reversal mark goes with it); a record marked reversed without
// one (written before the events said so) counts as reversed when it was received.
// ok is false for a transaction not reversed.
func (r *Record) ReversedAt() (at time.Time, ok bool) {
	if !r.Reversed() {
		return time.Time{}, false
	}
	for _, e := range r.Events {
		if e.State == StateReversed {
			return e.At, true
		}
	}
	return r.Received, true
}

// DecidedAt is when the record's outcome was decided: the time of its last answered
// event (the issuer's answer, a stand-in's or a completion's approval, an offline
// capture's approval as journaled, by its final write, by the housekeeping after that
// write failed, or by recovery after a restart). ok is false for a record without
// one (declined by the switch, open, or written before the events said so).
func (r *Record) DecidedAt() (at time.Time, ok bool) {
	for i := len(r.Events) - 1; i >= 0; i-- {
		if r.Events[i].State == StateAnswered {
			return r.Events[i].At, true
		}
	}
	return time.Time{}, false
}

// lateMarks are the times under which the record is in the index of late changes:
// its first write, its reversal and, for an approved record, its approval
// (DecidedAt), each when more than LateAfter after it was received (zero otherwise).
func (r *Record) lateMarks() (marks [3]time.Time) {
	if !r.Written.IsZero() && r.Written.Sub(r.Received) > LateAfter {
		marks[0] = r.Written
	}
	if at, ok := r.ReversedAt(); ok && at.Sub(r.Received) > LateAfter {
		marks[1] = at
	}
	if r.Approved() {
		if at, ok := r.DecidedAt(); ok && at.Sub(r.Received) > LateAfter {
			marks[2] = at
		}
	}
	return marks
}

// RequestedAmount is the amount the terminal asked for: Requested on a partial
// approval, else Amount. Resends, reversals and voids of a partial approval may
// carry either (the terminal's own reversal, sent before it heard of the approval,
// carries the amount it asked for).
func (r *Record) RequestedAmount() int64 {
	if r.Requested != 0 {
		return r.Requested
	}
	return r.Amount
}

// Approved reports whether the record ended in an approval.
func (r *Record) Approved() bool {
	switch r.RC {
	case "00", "08", "10", "11":
		return true
	}
	return false
}

// AddEvent appends a state change and makes it the current state.
func (r *Record) AddEvent(s State, at time.Time, note string) {
	r.State = s
	r.Events = append(r.Events, Event{State: s, At: at, Note: note})
}

// Final reports whether the record's outcome is settled (it has a response code).
func (r *Record) Final() bool { return r.RC != "" }

// OwnsDupKey reports whether the record is indexed under its DE 41 + 11 + 7. A request
// the switch answered 94 (the pipeline's duplicate-key-other-content, the cup
// adapter's duplicate-stan-other-content: decided by anyone but the issuer) reused
// the key of another request with other content: the key stays the first one's, so
// that the first one's resends still find it. A request its issuer answered 94 is
// the key's own request (its write ahead took the key): a cup session reading it back
// after a restart gives its resend its DE 7, so that the pipeline answers it from the
// journal instead of sending it again (until 6 December 2026 every 94 was skipped).
func (r *Record) OwnsDupKey() bool { return r.RC != "94" || r.DecidedBy == "issuer" }

// dupKeyOf is the key of the duplicate index rec is (or would be) indexed under,
// "" when it has none (no DE 41, 11 or 7): CaptureDupKey of its CaptureKey when set,
// else DupKey of its DE 41, 11 and 7. An offline approval refused is journaled
// without DE 7, so that it takes no key (pipeline's captureOffline).
func dupKeyOf(rec *Record) string {
	if rec.TID == "" || rec.STAN == "" || rec.DE7 == "" {
		return ""
	}
	if rec.CaptureKey != "" {
		return CaptureDupKey(rec.CaptureKey)
	}
	return DupKey(rec.TID, rec.STAN, rec.DE7)
}

// DuplicateKey is the key under which the duplicate index holds the record, ""
// when none: a record answered 94 owns none (OwnsDupKey), nor one without DE 41,
// 11 or 7; an offline approval with a CaptureKey is held under CaptureDupKey of it,
// every other record under DupKey of its DE 41, 11 and 7.
func (r *Record) DuplicateKey() string {
	if !r.OwnsDupKey() {
		return ""
	}
	return dupKeyOf(r)
}

// TakesBack reports whether the record is of a request that takes back an earlier
// transaction: a reversal or a void. Such a request changes its original (its
// reversal mark, the 0420 queued to its issuer) before its own record is first
// written, so Store.RefuseNew lets it through: refused, the terminal would be told
// 91 for what was done.
func (r *Record) TakesBack() bool { return r.Type == "reversal" || r.Type == "void" }

// Reversed reports whether the transaction was reversed or voided.
func (r *Record) Reversed() bool { return r.ReversedBy != "" }

// Query selects records. Empty fields do not filter; From and To bound the receive time
// (To exclusive).
type Query struct {
	TID, MID, RRN string
	From, To      time.Time
	Limit         int // 0 = no limit
}
