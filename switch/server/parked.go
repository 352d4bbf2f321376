package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/api"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/registry"
	"github.com/switchyard/switchyard/switch/saf"
)

// ParkedAdvice is a parked advice as GET /api/v1/saf/parked lists it: what an
// operator needs to settle it with its issuer, its card masked (first 6, last 4,
// from its journal record), never its fields (a stand-in advice carries its sealed
// card).
type ParkedAdvice struct {
	ID       uint64    `json:"id"` // the advice's queue sequence: /api/v1/saf/parked/{id}/...
	Issuer   string    `json:"issuer"`
	MTI      string    `json:"mti"`
	RRN      string    `json:"rrn"`
	PAN      string    `json:"pan,omitempty"`    // masked; "" when its record is not in the journal
	Amount   string    `json:"amount,omitempty"` // DE 4, minor units
	Currency string    `json:"currency,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Created  time.Time `json:"created"`
	Tries    int       `json:"tries"`
	Unacked  int       `json:"unacked"`
	Parked   time.Time `json:"parked"`
	LastErr  string    `json:"last_error,omitempty"`
}

// parkedView lists the parked advices of issuer ("" all) as ParkedAdvice.
func (s *Server) parkedView(issuer string) ([]ParkedAdvice, error) {
	items, err := s.Queue.Parked(issuer)
	out := make([]ParkedAdvice, 0, len(items)) // a list, never null: nothing is parked
	for _, it := range items {
		out = append(out, s.parkedAdvice(it))
	}
	return out, err
}

// parkedAdvice shows it as the list does, its masked card read from its journal
// record (none when the record is not there).
func (s *Server) parkedAdvice(it saf.Item) ParkedAdvice {
	v := ParkedAdvice{ID: it.Seq, Issuer: it.Issuer, MTI: it.MTI, RRN: it.RRN, Amount: it.Fields[4], Currency: it.Fields[49],
		Reason: it.Reason, Created: it.Created, Tries: it.Tries, Unacked: it.Unacked, Parked: it.Parked, LastErr: it.LastErr}
	if rec, err := s.Journal.Get(it.RRN); err == nil {
		v.PAN = rec.PANMasked
	}
	return v
}

// ParkedActionRecord is an operator's action on a parked advice as GET
// /api/v1/saf/parked?state=resolved|requeued lists it, from the queue's record: who
// did it, when, the note (a resolve's; card numbers in it masked when it was
// written), where a requeue's repeat went, and the advice shown as the list of the
// parked shows it (card masked, never its fields).
type ParkedActionRecord struct {
	ID       uint64       `json:"id"`
	Action   string       `json:"action"`
	By       string       `json:"by"`
	At       time.Time    `json:"at"`
	Note     string       `json:"note,omitempty"`
	Requeued uint64       `json:"requeued_seq,omitempty"` // 0: not noted (yet) as gone
	Advice   ParkedAdvice `json:"advice"`
}

// actionsView lists the records of the actions on parked advices f selects.
func (s *Server) actionsView(f saf.ActionFilter) ([]ParkedActionRecord, error) {
	as, err := s.Queue.Actions(f)
	out := make([]ParkedActionRecord, 0, len(as)) // a list, never null
	for _, a := range as {
		out = append(out, ParkedActionRecord{ID: a.ID, Action: a.Action, By: a.By, At: a.At, Note: a.Note, Requeued: a.Requeued,
			Advice: s.parkedAdvice(a.Item)})
	}
	return out, err
}

// ParkedActionResult answers POST /api/v1/saf/parked/{id}/requeue and /resolve: the
// action as the queue recorded it, the advice shown as the list shows it, and the
// oplog entry that records it.
type ParkedActionResult struct {
	Action   string       `json:"action"`
	By       string       `json:"by"`
	At       time.Time    `json:"at"`
	Note     string       `json:"note,omitempty"`
	Advice   ParkedAdvice `json:"advice"`
	Requeued uint64       `json:"requeued_seq,omitempty"` // the repeat's sequence in the queue
	OplogSeq uint64       `json:"oplog_seq"`
}

// requeueParked puts the parked advice id back in its queue as p. An advice that is
// no reversal (a stand-in or completion 0220, a 0120) whose transaction the journal
// says was reversed since is refused (409): sent after its reversal, the issuer would
// book it and the card stay charged; it must be resolved instead.
func (s *Server) requeueParked(_ context.Context, id uint64, p admin.Principal) (any, error) {
	items, err := s.Queue.Parked("")
	if err != nil {
		return nil, fmt.Errorf("requeue parked advice %d: list the parked advices: %w", id, err)
	}
	for _, it := range items {
		if it.Seq != id || saf.Reversal(it.MTI) {
			continue
		}
		rec, err := s.Journal.Get(it.RRN)
		if err != nil && !errors.Is(err, journal.ErrNotFound) {
			return nil, fmt.Errorf("requeue parked advice %d: the journal record of %s: %w", id, it.RRN, err)
		}
		if err == nil && rec.Reversed() {
			return nil, api.WithStatus(http.StatusConflict, fmt.Errorf(
				"requeue parked advice %d (%s of %s): its transaction was reversed since (%s): sent now, the issuer would book it after its reversal; settle it with the issuer and resolve it instead",
				id, it.MTI, it.RRN, rec.ReversedBy))
		}
	}
	a, err := s.Queue.Requeue(id, p.Name)
	if err != nil {
		return nil, err
	}
	return s.logParked(a, p)
}

// resolveParked takes the parked advice id out of the parked list as p, with note.
func (s *Server) resolveParked(_ context.Context, id uint64, p admin.Principal, note string) (any, error) {
	a, err := s.Queue.Resolve(id, p.Name, note)
	if err != nil {
		return nil, err
	}
	return s.logParked(a, p)
}

// logParked records a done in the oplog (action saf.requeue or saf.resolve, target
// type saf-advice, the note as its reason, the advice as the list shows it) and
// returns the answer. The action is done whether the entry is written or not: an
// entry that cannot be written is an error (500) that says so, and is logged.
func (s *Server) logParked(a saf.ParkedAction, p admin.Principal) (any, error) {
	v := s.parkedAdvice(a.Item)
	res := ParkedActionResult{Action: a.Action, By: a.By, At: a.At, Note: a.Note, Advice: v, Requeued: a.Requeued}
	after, err := json.Marshal(map[string]any{"action": a.Action, "advice": v, "requeued_seq": a.Requeued})
	if err != nil {
		return nil, fmt.Errorf("parked advice %d %sd: encode its oplog entry: %w", a.ID, a.Action, err)
	}
	e, err := s.Registry.LogOp(registry.OpEntry{Actor: p.Name, Role: string(p.Role), Action: "saf." + a.Action, TargetType: "saf-advice",
		Target: strconv.FormatUint(a.ID, 10), Reason: a.Note, Time: a.At, After: after}, nil)
	if err != nil {
		s.log.Error().Err(err).Str("action", a.Action).Str("by", a.By).Uint64("seq", a.ID).Str("rrn", a.Item.RRN).
			Msg("parked advice acted on, but its oplog entry was not written")
		return nil, fmt.Errorf("parked advice %d %sd, but its oplog entry was not written: %w", a.ID, a.Action, err)
	}
	res.OplogSeq = e.Seq
	return res, nil
}
