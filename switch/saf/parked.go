package saf

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// The operator's actions on a parked advice (ParkedAction.Action).
const (
	// ActionRequeue puts a parked advice back in its issuer's queue, as a repeat,
	// its answers without an acknowledgement counted afresh (the issuer fixed its side).
	ActionRequeue = "requeue"
	// ActionResolve takes a parked advice out of the parked list for good, settled
	// with the issuer out of band (by phone, by file); it is never sent.
	ActionResolve = "resolve"
)

// ParkedAction is what an operator did with a parked advice: kept by the queue
// (saf/parkdone/ in Badger, SAF_PARKED in a cluster) so that a second action on the
// same advice is refused with the first one's name (ErrParkedConflict).
type ParkedAction struct {
	ID     uint64    `json:"id"`     // the parked advice's Seq
	Action string    `json:"action"` // ActionRequeue or ActionResolve
	By     string    `json:"by"`
	At     time.Time `json:"at"`
	Note   string    `json:"note,omitempty"` // required to resolve
	// Item is the parked advice as it was; Requeued its new sequence in the queue
	// (requeue only).
	Item     Item   `json:"item"`
	Requeued uint64 `json:"requeued_seq,omitempty"`
}

// DefaultActionRetention is how long the record of an operator's action on a parked
// advice is kept by default (Options.ActionRetention; jsaf's too): 400 days, a year's
// audit and the card schemes' longest dispute windows with a margin. The oplog keeps
// its own entry of each action (saf.requeue, saf.resolve) for good.
const DefaultActionRetention = 400 * 24 * time.Hour

// The bounds of a listing of the actions (ActionFilter.Limit).
const (
	DefaultActionLimit = 100
	MaxActionLimit     = 10000
)

// ActionFilter selects the records of the operators' actions on parked advices
// (Store.Actions). A page follows the one before with After set to its last ID.
type ActionFilter struct {
	Action string // ActionRequeue or ActionResolve; "" both
	Issuer string // "" all issuers
	After  uint64 // only the advices whose id is above
	Limit  int    // at most this many (0: DefaultActionLimit; at most MaxActionLimit)
}

// CheckFilter returns an ErrParkedInvalid error when f asks for an action not known
// or too many records, and sets the default limit.
func CheckFilter(f *ActionFilter) error {
	switch {
	case f.Action != "" && f.Action != ActionRequeue && f.Action != ActionResolve:
		return fmt.Errorf("%w: list the actions %q: want %s, %s or both", ErrParkedInvalid, f.Action, ActionRequeue, ActionResolve)
	case f.Limit < 0 || f.Limit > MaxActionLimit:
		return fmt.Errorf("%w: list %d actions: from 1 to %d at a time (page with after)", ErrParkedInvalid, f.Limit, MaxActionLimit)
	case f.Limit == 0:
		f.Limit = DefaultActionLimit
	}
	return nil
}

// Matches reports whether the record a is one f selects, its limit aside.
func (f ActionFilter) Matches(a ParkedAction) bool {
	return a.ID > f.After && (f.Action == "" || a.Action == f.Action) && (f.Issuer == "" || a.Item.Issuer == f.Issuer)
}

// The errors of Requeue and Resolve, wrapped with what failed.
var (
	// ErrParkedNotFound: no advice is parked under that id (a wrong id).
	ErrParkedNotFound = errors.New("no parked advice with that id")
	// ErrParkedConflict: the advice was requeued or resolved already (by another
	// operator, maybe at the same moment on another node); the error names who.
	ErrParkedConflict = errors.New("parked advice already acted on")
	// ErrParkedInvalid: the request is incomplete (no actor, no note to resolve).
	ErrParkedInvalid = errors.New("invalid action on a parked advice")
)

// CheckAction returns an ErrParkedInvalid error when a is not a complete action of
// the operator: an actor, a known action and, to resolve, a note.
func CheckAction(a *ParkedAction) error {
	switch {
	case a.Action != ActionRequeue && a.Action != ActionResolve:
		return fmt.Errorf("%w: action %q: want %s or %s", ErrParkedInvalid, a.Action, ActionRequeue, ActionResolve)
	case strings.TrimSpace(a.By) == "":
		return fmt.Errorf("%w: %s of parked advice %d: no actor", ErrParkedInvalid, a.Action, a.ID)
	case a.Action == ActionResolve && strings.TrimSpace(a.Note) == "":
		return fmt.Errorf("%w: resolve parked advice %d: a note is required (how it was settled with the issuer)", ErrParkedInvalid, a.ID)
	}
	return nil
}

// AlreadyDone is the ErrParkedConflict error for an action refused because prev
// was done first.
func AlreadyDone(id uint64, prev ParkedAction) error {
	return fmt.Errorf("%w: parked advice %d was %sd by %s at %s", ErrParkedConflict, id, prev.Action, prev.By, prev.At.UTC().Format(time.RFC3339))
}

// RequeuedItem is the advice a requeue of parked puts back in the queue: a repeat
// from its first try (0421 for a reversal), its answers without an acknowledgement
// counted afresh toward Options.ParkAfter, due now; its tries so far are kept.
func RequeuedItem(parked Item) Item {
	it := parked
	it.Seq, it.Unacked, it.Parked, it.Next, it.Repeat = 0, 0, time.Time{}, time.Time{}, true
	return it
}

// parkDonePrefix holds the actions done on parked advices: "saf/parkdone/<seq BE 8>"
// -> JSON ParkedAction, each with a TTL of Options.ActionRetention.
const parkDonePrefix = "saf/parkdone/"

func parkDoneKey(seq uint64) []byte {
	k := append([]byte(parkDonePrefix), make([]byte, 8)...)
	binary.BigEndian.PutUint64(k[len(k)-8:], seq)
	return k
}

// Requeue puts the parked advice id back in its issuer's queue (RequeuedItem: a
// repeat, under a new sequence), as by. It is one Badger transaction, synced: the
// parked copy goes, the queued item and the action's record (ParkedAction) come.
func (q *Queue) Requeue(id uint64, by string) (ParkedAction, error) {
	return q.act(ParkedAction{ID: id, Action: ActionRequeue, By: by})
}

// Resolve takes the parked advice id out of the parked list for good, settled out of
// band by by with note (required); it is never sent. Its record (ParkedAction) stays.
func (q *Queue) Resolve(id uint64, by, note string) (ParkedAction, error) {
	return q.act(ParkedAction{ID: id, Action: ActionResolve, By: by, Note: note})
}

// act does a on its parked advice, once: the parkMu and the record of the action
// done make a second action on the same advice fail with ErrParkedConflict.
func (q *Queue) act(a ParkedAction) (ParkedAction, error) {
	if err := CheckAction(&a); err != nil {
		return a, err
	}
	q.parkMu.Lock()
	defer q.parkMu.Unlock()
	a.At = time.Now().UTC()
	var newSeq uint64
	if a.Action == ActionRequeue { // taken outside the transaction: Next may write its lease
		n, err := q.seq.Next()
		if err != nil {
			return a, fmt.Errorf("saf: requeue parked advice %d: next sequence: %w", a.ID, err)
		}
		newSeq = n + 1
	}
	var queued *Item
	err := q.db.Update(func(txn *badger.Txn) error {
		if v, err := txn.Get(parkDoneKey(a.ID)); err == nil {
			var prev ParkedAction
			if err := v.Value(func(b []byte) error { return json.Unmarshal(b, &prev) }); err != nil {
				return fmt.Errorf("saf: the record of the action on parked advice %d: %w", a.ID, err)
			}
			return AlreadyDone(a.ID, prev)
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		k, it, err := findParked(txn, a.ID)
		if err != nil {
			return err
		}
		a.Item = it
		if a.Action == ActionRequeue {
			r := RequeuedItem(it)
			r.Seq = newSeq
			b, err := json.Marshal(&r)
			if err != nil {
				return err
			}
			if err := txn.Set(key(r.Issuer, r.Seq), b); err != nil {
				return err
			}
			a.Requeued, queued = r.Seq, &r
		}
		b, err := json.Marshal(&a)
		if err != nil {
			return err
		}
		if err := txn.SetEntry(badger.NewEntry(parkDoneKey(a.ID), b).WithTTL(q.opts.ActionRetention)); err != nil {
			return err
		}
		return txn.Delete(k)
	})
	if err != nil {
		if errors.Is(err, ErrParkedNotFound) || errors.Is(err, ErrParkedConflict) {
			return a, err
		}
		return a, fmt.Errorf("saf: %s parked advice %d: %w", a.Action, a.ID, err)
	}
	if err := q.db.Sync(); err != nil {
		return a, fmt.Errorf("saf: %s parked advice %d: sync: %w", a.Action, a.ID, err)
	}
	if queued != nil {
		q.idxMu.Lock()
		q.index(queued.Issuer).add(queued.Seq, time.Time{}, queued)
		q.idxMu.Unlock()
		q.kick(queued.Issuer)
	}
	q.log.Warn().Str("action", a.Action).Str("by", a.By).Str("issuer", a.Item.Issuer).Str("mti", a.Item.MTI).Str("rrn", a.Item.RRN).
		Uint64("seq", a.ID).Uint64("requeued_seq", a.Requeued).Msg("parked advice " + a.Action + "d by an operator")
	return a, nil
}

// Actions lists the records of the actions done on parked advices, by ascending id
// (the key order), as f selects them; a record past Options.ActionRetention is gone.
func (q *Queue) Actions(f ActionFilter) ([]ParkedAction, error) {
	if err := CheckFilter(&f); err != nil {
		return nil, err
	}
	out := []ParkedAction{}
	if f.After == ^uint64(0) {
		return out, nil // nothing above
	}
	err := q.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: []byte(parkDonePrefix)})
		defer it.Close()
		for it.Seek(parkDoneKey(f.After + 1)); it.Valid() && len(out) < f.Limit; it.Next() {
			var a ParkedAction
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &a) }); err != nil {
				return fmt.Errorf("the record %x: %w", it.Item().Key(), err)
			}
			if f.Matches(a) {
				out = append(out, a)
			}
		}
		return nil
	})
	if err != nil {
		return out, fmt.Errorf("saf: list the actions on parked advices after %d: %w", f.After, err)
	}
	return out, nil
}

// findParked returns the key and the item of the parked advice seq.
func findParked(txn *badger.Txn, seq uint64) ([]byte, Item, error) {
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: []byte(parkedPrefix)})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().Key()
		if len(k) < len(parkedPrefix)+10 || binary.BigEndian.Uint64(k[len(k)-8:]) != seq {
			continue
		}
		var x Item
		if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &x) }); err != nil {
			return nil, x, fmt.Errorf("saf: parked advice %d: %w", seq, err)
		}
		return it.Item().KeyCopy(nil), x, nil
	}
	return nil, Item{}, fmt.Errorf("%w: %d", ErrParkedNotFound, seq)
}
