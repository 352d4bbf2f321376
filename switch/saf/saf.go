// Package saf is the store-and-forward queue: messages the switch owes an issuer
// (reversal advices 0420, stand-in advices 0120/0220) are written durably before
// anything else happens, sent in order with retries and backoff (as repeats 0421, 0121,
// 0221 after the first try) until the issuer acknowledges them, and survive restarts.
package saf

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"
)

// Item is one message owed to an issuer.
type Item struct {
	Seq     uint64            `json:"seq"`
	Issuer  string            `json:"issuer"`
	MTI     string            `json:"mti"` // 0420, 0120 or 0220 (the repeat MTI is derived)
	RRN     string            `json:"rrn"` // of the transaction the advice is about
	Fields  map[int]string    `json:"fields"`
	Binary  map[int][]byte    `json:"binary,omitempty"`
	Reason  string            `json:"reason"`
	Created time.Time         `json:"created"`
	Tries   int               `json:"tries"`
	Last    time.Time         `json:"last,omitempty"`
	Next    time.Time         `json:"next,omitempty"` // not before this (backoff after a failed try)
	LastErr string            `json:"last_error,omitempty"`
	Meta    map[string]string `json:"meta,omitempty"`
	// Repeat makes the first try a repeat (0421) too: the advice may have reached
	// the issuer before, queued by a process that died before it could note so
	// (pipeline recovery queues its reversals so). An issuer takes a repeat it
	// never had as the advice, and one it had as a duplicate.
	Repeat bool `json:"repeat,omitempty"`
	// Unacked counts the tries the issuer answered without acknowledging the advice
	// (ErrNotAcknowledged: an answer without DE 39); at Options.ParkAfter of them the
	// advice is parked (Queue.Parked).
	Unacked int `json:"unacked,omitempty"`
	// Parked is when the advice was parked (zero while it is queued).
	Parked time.Time `json:"parked,omitempty"`
}

// RepeatMTI returns the MTI of a repeated advice (0420 -> 0421).
func RepeatMTI(mti string) string {
	if len(mti) != 4 {
		return mti
	}
	return mti[:3] + "1"
}

// Sender delivers one item; it returns nil once the issuer acknowledged it. An
// error that wraps ErrNotAcknowledged says the issuer answered, but not with an
// acknowledgement; any other error is a try without an answer (link down, timeout,
// an answer that says the issuer did not process it, 91 or 96).
type Sender func(ctx context.Context, it *Item, repeat bool) error

// ErrNotAcknowledged is wrapped by a Sender's error when the issuer answered the
// advice with something that is no acknowledgement: an answer without a response code
// (DE 39), which says nothing of the advice's fate. Such a try fails as one without an
// answer does (repeated after a backoff), and is counted in Item.Unacked: an advice
// the issuer keeps answering so is parked at Options.ParkAfter of them, instead of
// being repeated for ever, which no repeat can change (the issuer answers, and never
// says).
var ErrNotAcknowledged = errors.New("answered without an acknowledgement")

// ErrRefused is wrapped by a Sender's error when the issuer answered the advice with
// a refusal for good, one no repeat can change: a wallet network that will not cancel
// a payment past its cancel window (switch/wallet, REVERSE_EXPIRE). Such an advice is
// parked at its first such answer (unless Options.ParkAfter is negative), its reason
// in LastErr, for an operator to settle out of band (a refund through the network)
// and resolve; it was repeated for ever. A refusal that may pass (a network's system
// error, a timeout) must not wrap it: it is a failed try, repeated.
var ErrRefused = errors.New("refused for good by the issuer")

// ParkedLog is the error line logged when an advice is parked for cause: what made it
// parked, and what the operator does.
func ParkedLog(cause error) string {
	if errors.Is(cause, ErrRefused) {
		return "advice parked: the issuer refused it for good (no repeat can change that); it is no longer sent. Settle it with the issuer out of band (a wallet payment not cancelled: refund it) and resolve it (GET /api/v1/saf/parked lists it)"
	}
	return "advice parked: the issuer answered it again and again without an acknowledgement (no DE 39); it is no longer sent. Settle it with the issuer (GET /api/v1/saf/parked lists it)"
}

// DefaultParkAfter is Options.ParkAfter's default: about seven minutes of answers
// without an acknowledgement at the default backoff (0.5 s doubling to 30 s).
const DefaultParkAfter = 20

// Store is what the switch uses of a store-and-forward queue: the Badger Queue of
// a single node (this package), or the JetStream queue a cluster's nodes share
// (switch/cluster/jsaf). The pipeline needs only Enqueue; the server registers
// the issuers' senders, reads the figures and lists, and flushes and closes it.
type Store interface {
	// Enqueue stores it durably and returns once it is; on success it.Seq is set.
	// An error means the advice is not known to be stored: the caller must not
	// act as if it were owed.
	Enqueue(it *Item) error
	// Register sets the sender of an issuer's advices and starts delivering them.
	Register(issuer string, send Sender)
	// Pending lists the advices waiting, oldest first (all issuers when issuer is "").
	Pending(issuer string) ([]Item, error)
	// Parked lists the advices parked (Options.ParkAfter), oldest first (all
	// issuers when issuer is "").
	Parked(issuer string) ([]Item, error)
	// Requeue puts the parked advice id (its Seq) back in its issuer's queue as a
	// repeat (RequeuedItem), acting as by; Resolve takes it out of the parked list
	// for good, settled out of band by by with note (required), never sent. Each
	// advice is acted on once: a second action, at the same time on another node
	// too, fails with ErrParkedConflict; an unknown id with ErrParkedNotFound.
	Requeue(id uint64, by string) (ParkedAction, error)
	Resolve(id uint64, by, note string) (ParkedAction, error)
	// Actions lists the records of the actions done on parked advices (who
	// requeued or resolved which, when, why), kept Options.ActionRetention, by
	// ascending id, as f selects them (CheckFilter).
	Actions(f ActionFilter) ([]ParkedAction, error)
	// Len counts the advices waiting for issuer ("" for all issuers).
	Len(issuer string) int
	// IssuerStats returns the delivery counts of every issuer tried or registered.
	IssuerStats() map[string]*Stats
	// Flush waits until what this process owes is delivered, or ctx ends.
	Flush(ctx context.Context) error
	// Close stops the deliveries and waits for them; what is queued stays queued.
	Close() error
}

var _ Store = (*Queue)(nil)

// ErrNoSender is returned when no sender is registered for an item's issuer.
var ErrNoSender = errors.New("saf: no sender for issuer")

// Options tune the retries.
type Options struct {
	MinBackoff, MaxBackoff time.Duration // defaults 500 ms, 30 s
	Poll                   time.Duration // how often idle workers look for work (default 1 s)
	// InFlight bounds the advices of one issuer sent at once (default 16).
	InFlight int
	// WarnEvery is the least time between two warnings about an issuer's failed tries
	// (default 1 min); the failures in between are counted (Stats), not logged.
	WarnEvery time.Duration
	// Now is the clock of the warnings' rate limit (default time.Now).
	Now func() time.Time
	// Persist, when set, writes a new item durably (returning once it is on disk); the
	// switch hands its journal's group commit here, so that an enqueue shares the
	// journal's fsync. Nil: a Badger transaction and a sync of its own.
	Persist func(ctx context.Context, key, value []byte) error
	// HoldWarn is how long a reversal advice may be held back behind an earlier
	// advice of its transaction (see Reversal) before it is counted (Stats.HeldLong)
	// and logged as such, the earlier advice not being delivered (default 5 min).
	HoldWarn time.Duration
	// ParkAfter is how many answers without an acknowledgement (ErrNotAcknowledged)
	// an advice may get before it is parked (default DefaultParkAfter; negative:
	// never; an answer that refuses it for good, ErrRefused, parks it at once): taken out of the queue, kept under saf/parked/ (through Persist when
	// set: the journal's log), counted (Stats.Parked) and logged as an error, for an
	// operator to settle with the issuer. Tries without an answer never park an
	// advice: an issuer down for an hour gets its reversals when it is back.
	ParkAfter int
	// ActionRetention is how long the record of an operator's action on a parked
	// advice (saf/parkdone/, Queue.Actions) is kept: a Badger TTL (default
	// DefaultActionRetention). The oplog keeps its own entry of each for good.
	ActionRetention time.Duration
	// Logger receives delivery warnings, tagged by the wiring (component=saf); the
	// zero value logs nothing.
	Logger zerolog.Logger
}

// Reversal reports whether an advice of MTI mti reverses its transaction (0420,
// 0400): such an advice is not sent while an earlier advice of the same RRN that is
// not a reversal (a stand-in or completion 0220, a 0120) is still queued. An issuer
// that got the reversal first would find nothing to reverse, acknowledge it all the
// same, then book the advice that follows: the card charged for a transaction the
// switch reversed. Both queues hold it back, each advice's retry delay and
// in-flight slot being otherwise independent (Queue.due; jsaf's deliver).
func Reversal(mti string) bool { return len(mti) == 4 && mti[:2] == "04" }

// Queue is the Badger-backed queue. Key layout: "saf/q/<issuer>/<seq BE 8>" -> JSON item;
// an in-memory index of the queued sequences and their retry times finds due items.
type Queue struct {
	db   *badger.DB
	opts Options
	log  zerolog.Logger
	seq  *badger.Sequence

	mu      sync.Mutex
	senders map[string]Sender
	kicks   map[string]chan struct{}
	wg      sync.WaitGroup
	ctx     context.Context
	cancel  context.CancelFunc

	Sent, Acked, Failed atomic.Int64

	statsMu sync.Mutex
	byIss   map[string]*Stats

	// idx is the queue's in-memory index, so that finding due items never iterates
	// Badger (whose iterators walk every deleted version of a busy queue's keys).
	// It is loaded once by Open and kept by Enqueue and deliver.
	idxMu sync.Mutex
	idx   map[string]*index

	// parkMu makes the operators' actions on parked advices one at a time (act).
	parkMu sync.Mutex
}

// index is one issuer's queued items: their sequence numbers in order, and the time
// before which each must not be tried (zero: due now).
type index struct {
	order   []uint64 // ascending; may still hold removed sequences
	live    map[uint64]time.Time
	removed int // removed sequences still in order
	// ahead are the queued advices that are not reversals, by RRN: a reversal of
	// the same RRN queued after one of them waits for it (Reversal). advs are the
	// queued items' RRNs and kinds. An item that could not be read at load is in
	// neither (its RRN unknown: it holds nothing back; logged at load).
	ahead map[string]map[uint64]struct{}
	advs  map[uint64]*advice
}

// advice is what the index knows of one queued item: its RRN and kind, when it was
// queued, and, for a reversal, whether it was counted held (Stats.Held) and held
// long (Stats.HeldLong) in this process.
type advice struct {
	rrn           string
	reversal      bool
	created       time.Time
	counted, long bool
}

// add indexes seq, due at next; it is the item (nil when it cannot be read).
func (x *index) add(seq uint64, next time.Time, it *Item) {
	if _, ok := x.live[seq]; ok {
		x.live[seq] = next
		return
	}
	x.live[seq] = next
	if it != nil && it.RRN != "" {
		a := &advice{rrn: it.RRN, reversal: Reversal(it.MTI), created: it.Created}
		x.advs[seq] = a
		if !a.reversal {
			if x.ahead[a.rrn] == nil {
				x.ahead[a.rrn] = map[uint64]struct{}{}
			}
			x.ahead[a.rrn][seq] = struct{}{}
		}
	}
	i := len(x.order)
	for i > 0 && x.order[i-1] > seq { // enqueues race only briefly: almost always appends
		i--
	}
	x.order = append(x.order, 0)
	copy(x.order[i+1:], x.order[i:])
	x.order[i] = seq
}

// heldBy returns the earliest queued advice that the reversal seq must not pass (an
// earlier one of its RRN that is not a reversal), or 0.
func (x *index) heldBy(seq uint64) uint64 {
	a := x.advs[seq]
	if a == nil || !a.reversal {
		return 0
	}
	var by uint64
	for s := range x.ahead[a.rrn] {
		if s < seq && (by == 0 || s < by) {
			by = s
		}
	}
	return by
}

func (x *index) remove(seq uint64) {
	if _, ok := x.live[seq]; !ok {
		return
	}
	delete(x.live, seq)
	if a := x.advs[seq]; a != nil {
		delete(x.advs, seq)
		if m := x.ahead[a.rrn]; m != nil && !a.reversal {
			if delete(m, seq); len(m) == 0 {
				delete(x.ahead, a.rrn)
			}
		}
	}
	x.removed++
	if x.removed > 64 && x.removed > len(x.order)/2 {
		kept := x.order[:0]
		for _, s := range x.order {
			if _, ok := x.live[s]; ok {
				kept = append(kept, s)
			}
		}
		clear(x.order[len(kept):])
		x.order, x.removed = kept, 0
	}
}

const prefix = "saf/q/"

// parkedPrefix holds the parked advices: "saf/parked/<issuer>/<seq BE 8>" -> JSON
// item (Options.ParkAfter).
const parkedPrefix = "saf/parked/"

// Open returns the queue on db; Start begins delivering.
func Open(db *badger.DB, opts Options) (*Queue, error) {
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 500 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	if opts.InFlight <= 0 {
		opts.InFlight = 16
	}
	if opts.WarnEvery <= 0 {
		opts.WarnEvery = time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.HoldWarn <= 0 {
		opts.HoldWarn = 5 * time.Minute
	}
	if opts.ParkAfter == 0 {
		opts.ParkAfter = DefaultParkAfter
	}
	if opts.ActionRetention <= 0 {
		opts.ActionRetention = DefaultActionRetention
	}
	seq, err := db.GetSequence([]byte("saf/seq"), 1000)
	if err != nil {
		return nil, fmt.Errorf("saf: sequence: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	q := &Queue{db: db, opts: opts, log: opts.Logger, seq: seq,
		senders: map[string]Sender{}, kicks: map[string]chan struct{}{}, ctx: ctx, cancel: cancel, idx: map[string]*index{},
		byIss: map[string]*Stats{}}
	if err := q.load(); err != nil {
		cancel()
		_ = seq.Release()
		return nil, fmt.Errorf("saf: load the queue: %w", err)
	}
	return q, nil
}

// load builds the index from the stored items. An item that cannot be decoded stays
// on disk, is logged and is set aside for a day instead of stopping the start.
func (q *Queue) load() error {
	now := time.Now()
	return q.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, Prefix: []byte(prefix)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) < len(prefix)+10 { // issuer, "/", 8-byte sequence
				continue
			}
			issuer, seq := string(k[len(prefix):len(k)-9]), binary.BigEndian.Uint64(k[len(k)-8:])
			var x Item
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &x) }); err != nil {
				q.log.Error().Err(err).Str("issuer", issuer).Uint64("seq", seq).Msg("undecodable queued advice set aside")
				q.index(issuer).add(seq, now.Add(24*time.Hour), nil)
				continue
			}
			q.index(issuer).add(seq, x.Next, &x)
		}
		return nil
	})
}

// index returns issuer's index; the caller holds idxMu or is Open.
func (q *Queue) index(issuer string) *index {
	x := q.idx[issuer]
	if x == nil {
		x = &index{live: map[uint64]time.Time{}, ahead: map[string]map[uint64]struct{}{}, advs: map[uint64]*advice{}}
		q.idx[issuer] = x
	}
	return x
}

func key(issuer string, seq uint64) []byte {
	return keyIn(prefix, issuer, seq)
}

func parkedKey(issuer string, seq uint64) []byte {
	return keyIn(parkedPrefix, issuer, seq)
}

func keyIn(prefix, issuer string, seq uint64) []byte {
	k := append([]byte(prefix+issuer+"/"), make([]byte, 8)...)
	binary.BigEndian.PutUint64(k[len(k)-8:], seq)
	return k
}

// Enqueue stores it durably (synced to disk) and wakes its issuer's worker.
func (q *Queue) Enqueue(it *Item) error {
	n, err := q.seq.Next()
	if err != nil {
		return fmt.Errorf("saf: next sequence: %w", err)
	}
	it.Seq = n + 1
	if it.Created.IsZero() {
		it.Created = time.Now().UTC()
	}
	b, err := json.Marshal(it)
	if err != nil {
		return fmt.Errorf("saf: encode %s for %s: %w", it.MTI, it.RRN, err)
	}
	if q.opts.Persist != nil {
		if err := q.opts.Persist(context.Background(), key(it.Issuer, it.Seq), b); err != nil {
			return fmt.Errorf("saf: store %s for %s: %w", it.MTI, it.RRN, err)
		}
	} else {
		if err := q.db.Update(func(txn *badger.Txn) error { return txn.Set(key(it.Issuer, it.Seq), b) }); err != nil {
			return fmt.Errorf("saf: store %s for %s: %w", it.MTI, it.RRN, err)
		}
		if err := q.db.Sync(); err != nil {
			return fmt.Errorf("saf: sync: %w", err)
		}
	}
	q.idxMu.Lock()
	q.index(it.Issuer).add(it.Seq, it.Next, it)
	q.idxMu.Unlock()
	q.kick(it.Issuer)
	return nil
}

func (q *Queue) kick(issuer string) {
	q.mu.Lock()
	ch := q.kicks[issuer]
	q.mu.Unlock()
	if ch != nil {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Register sets the sender of an issuer and starts its worker.
func (q *Queue) Register(issuer string, send Sender) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.senders[issuer]; ok {
		q.senders[issuer] = send
		return
	}
	q.senders[issuer] = send
	q.stats(issuer)
	ch := make(chan struct{}, 1)
	q.kicks[issuer] = ch
	q.wg.Add(1)
	go q.worker(issuer, ch)
}

// Pending returns the items waiting, oldest first (all issuers when issuer is "").
func (q *Queue) Pending(issuer string) ([]Item, error) {
	return q.list(prefix, issuer)
}

// Parked returns the advices parked (Options.ParkAfter), oldest first (all issuers
// when issuer is ""): out of the queue, never sent again by the switch, each for an
// operator to settle with its issuer.
func (q *Queue) Parked(issuer string) ([]Item, error) {
	return q.list(parkedPrefix, issuer)
}

// list reads the items under prefix, of issuer or all.
func (q *Queue) list(prefix, issuer string) ([]Item, error) {
	var out []Item
	p := []byte(prefix)
	if issuer != "" {
		p = []byte(prefix + issuer + "/")
	}
	err := q.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, Prefix: p})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var x Item
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &x) }); err != nil {
				return err
			}
			out = append(out, x)
		}
		return nil
	})
	return out, err
}

// due returns up to n of an issuer's items whose time has come, oldest first, leaving
// out those in skip (being tried), and the earliest time another becomes due (zero if
// none waits).
//
// A reversal due while an earlier advice of its RRN that is not a reversal is still
// queued (in its backoff, being tried, or not yet tried) is held back: left out this
// round, so that the issuer never gets the reversal before the advice it reverses
// (Reversal). It needs no timer of its own: the earlier advice is this worker's, and
// its try ending (acknowledged: out of the index) or its backoff ending wakes the
// worker. One held longer than HoldWarn (its earlier advice not delivered: the issuer
// refuses it, or it cannot be read) is counted and logged, and still held: sending it
// would reverse at the issuer what the issuer may book afterwards.
func (q *Queue) due(issuer string, n int, now time.Time, skip map[uint64]struct{}) ([]*Item, time.Time, error) {
	var seqs []uint64
	var next time.Time
	type heldLong struct {
		seq, by uint64
		rrn     string
		since   time.Duration
	}
	var long []heldLong
	st := q.stats(issuer)
	q.idxMu.Lock()
	if x := q.idx[issuer]; x != nil {
		for _, s := range x.order {
			at, ok := x.live[s]
			if !ok {
				continue
			}
			if _, busy := skip[s]; busy {
				continue
			}
			if at.After(now) {
				if next.IsZero() || at.Before(next) {
					next = at
				}
				continue
			}
			if by := x.heldBy(s); by != 0 {
				a := x.advs[s]
				if !a.counted {
					a.counted = true
					st.Held.Add(1)
				}
				if d := now.Sub(a.created); d > q.opts.HoldWarn {
					if !a.long {
						a.long = true
						st.HeldLong.Add(1)
					}
					long = append(long, heldLong{seq: s, by: by, rrn: a.rrn, since: d})
				}
				continue
			}
			seqs = append(seqs, s)
			if len(seqs) == n {
				break // the worker comes back for more as soon as these are tried
			}
		}
	}
	q.idxMu.Unlock()
	if len(long) > 0 && st.HoldWarnDue(q.opts.Now(), q.opts.WarnEvery) {
		h := long[0]
		q.log.Warn().Str("issuer", issuer).Str("rrn", h.rrn).Uint64("seq", h.seq).Uint64("held_by_seq", h.by).
			Dur("held_for", h.since).Int("reversals_held_long", len(long)).
			Msg("reversal advice held back behind an earlier advice of its transaction that is still not delivered; it goes once that one is acknowledged")
	}
	if len(seqs) == 0 {
		return nil, next, nil
	}
	out := make([]*Item, 0, len(seqs))
	err := q.db.View(func(txn *badger.Txn) error {
		for _, s := range seqs {
			item, err := txn.Get(key(issuer, s))
			if errors.Is(err, badger.ErrKeyNotFound) {
				continue // acknowledged meanwhile
			}
			if err != nil {
				return err
			}
			x := new(Item)
			if err := item.Value(func(v []byte) error { return json.Unmarshal(v, x) }); err != nil {
				// An item that cannot be read must not hold up the others: it stays on
				// disk for an operator and is set aside for a day.
				q.log.Error().Err(err).Str("issuer", issuer).Uint64("seq", s).Msg("undecodable queued advice set aside")
				q.idxMu.Lock()
				q.index(issuer).live[s] = now.Add(24 * time.Hour)
				q.idxMu.Unlock()
				continue
			}
			out = append(out, x)
		}
		return nil
	})
	return out, next, err
}

func (q *Queue) save(it *Item) error {
	b, err := json.Marshal(it)
	if err != nil {
		return err
	}
	return q.db.Update(func(txn *badger.Txn) error { return txn.Set(key(it.Issuer, it.Seq), b) })
}

// remove deletes an acknowledged item, and its parked copy if a crash left one (the
// advice parked, the process dead before it left the queue, acknowledged since). It
// is not synced: if a crash loses the deletion, the advice is sent once more, and
// repeats are what issuers expect.
func (q *Queue) remove(it *Item) error {
	return q.db.Update(func(txn *badger.Txn) error {
		if err := txn.Delete(key(it.Issuer, it.Seq)); err != nil {
			return err
		}
		return txn.Delete(parkedKey(it.Issuer, it.Seq))
	})
}

// park moves an advice the issuer kept answering without an acknowledgement, or refused
// for good (ErrRefused), out of
// the queue (Options.ParkAfter): its parked copy is written durably first (through
// Persist, the journal's log, when set), then it leaves the queue and its index, so
// that a crash between the two leaves it queued, never lost; it is then tried again
// and parked again. A reversal held behind it (Reversal) goes: if the issuer booked
// the parked advice, the reversal takes it back, and if it did not, the reversal
// finds nothing to reverse; either way the card is not left charged, as long as the
// parked advice is not sent afterwards (docs/journal.md). It reports whether the
// advice was parked; when its parked copy cannot be written, it stays queued.
func (q *Queue) park(it *Item, cause error) bool {
	it.Parked = time.Now().UTC()
	b, err := json.Marshal(it)
	if err == nil {
		if q.opts.Persist != nil {
			err = q.opts.Persist(context.Background(), parkedKey(it.Issuer, it.Seq), b)
		} else if err = q.db.Update(func(txn *badger.Txn) error { return txn.Set(parkedKey(it.Issuer, it.Seq), b) }); err == nil {
			err = q.db.Sync()
		}
	}
	if err != nil {
		it.Parked = time.Time{}
		q.log.Error().Err(err).Str("issuer", it.Issuer).Str("mti", it.MTI).Str("rrn", it.RRN).Uint64("seq", it.Seq).
			Msg("advice not parked (its parked copy could not be written): it stays queued and is repeated")
		return false
	}
	if err := q.db.Update(func(txn *badger.Txn) error { return txn.Delete(key(it.Issuer, it.Seq)) }); err != nil {
		q.log.Error().Err(err).Str("rrn", it.RRN).Msg("removing a parked advice from the queue")
	}
	q.idxMu.Lock()
	q.index(it.Issuer).remove(it.Seq)
	q.idxMu.Unlock()
	q.stats(it.Issuer).Parked.Add(1)
	q.log.Error().AnErr("last_error", cause).Str("issuer", it.Issuer).Str("mti", it.MTI).Str("rrn", it.RRN).Uint64("seq", it.Seq).
		Int("tries", it.Tries).Int("unacknowledged_answers", it.Unacked).
		Msg(ParkedLog(cause))
	return true
}

// worker delivers an issuer's items, up to InFlight at once. Each in-flight slot is
// independent: as soon as one try ends (acknowledged, failed or timed out), the next
// due item takes its slot, so a slow or unanswered advice holds up only itself, never
// a batch. An item leaves the queue only when acknowledged, and an item that failed
// waits out its own backoff without holding up the others.
func (q *Queue) worker(issuer string, kick chan struct{}) {
	defer q.wg.Done()
	var running sync.WaitGroup
	defer running.Wait()                       // the senders see q.ctx end and return
	busy := map[uint64]struct{}{}              // items being tried (read and written by this goroutine only)
	done := make(chan uint64, q.opts.InFlight) // a try ended; never blocks: at most InFlight run
	timer := time.NewTimer(q.opts.Poll)
	defer timer.Stop()
	for {
		for drained := false; !drained; { // collect the slots freed meanwhile
			select {
			case s := <-done:
				delete(busy, s)
			default:
				drained = true
			}
		}
		now := time.Now()
		var items []*Item
		var next time.Time
		if free := q.opts.InFlight - len(busy); free > 0 {
			var err error
			if items, next, err = q.due(issuer, free, now, busy); err != nil {
				q.log.Error().Err(err).Str("issuer", issuer).Msg("reading the queue")
				next = now.Add(q.opts.MaxBackoff)
			}
		}
		if len(items) > 0 {
			q.mu.Lock()
			send := q.senders[issuer]
			q.mu.Unlock()
			for _, it := range items {
				busy[it.Seq] = struct{}{}
				running.Add(1)
				go func() {
					defer running.Done()
					q.deliver(send, it)
					done <- it.Seq
				}()
			}
			continue
		}
		wait := q.opts.Poll
		if !next.IsZero() && next.Sub(now) < wait {
			wait = next.Sub(now)
		}
		timer.Reset(wait)
		select {
		case <-kick:
		case s := <-done:
			delete(busy, s)
		case <-timer.C:
		case <-q.ctx.Done():
			return
		}
		timer.Stop() // since Go 1.23, Stop and Reset leave no stale tick in timer.C
	}
}

// deliver makes one try of an item.
func (q *Queue) deliver(send Sender, it *Item) {
	st := q.stats(it.Issuer)
	repeat := it.Tries > 0 || it.Repeat
	it.Tries++
	it.Last = time.Now().UTC()
	if err := q.save(it); err != nil { // the try is counted before it is made
		q.log.Error().Err(err).Msg("saving try count")
	}
	q.Sent.Add(1)
	st.Sent.Add(1)
	err := send(q.ctx, it, repeat)
	if err == nil {
		if err := q.remove(it); err != nil {
			q.log.Error().Err(err).Str("rrn", it.RRN).Msg("removing acknowledged item")
		}
		q.idxMu.Lock()
		q.index(it.Issuer).remove(it.Seq)
		q.idxMu.Unlock()
		q.Acked.Add(1) // once out of the queue: Len and Acked agree for whoever reads both
		st.Acked.Add(1)
		return
	}
	if q.ctx.Err() != nil {
		return
	}
	q.Failed.Add(1)
	st.Failed.Add(1)
	if errors.Is(err, ErrNotAcknowledged) {
		it.Unacked++
	}
	if q.opts.ParkAfter > 0 && (errors.Is(err, ErrRefused) || errors.Is(err, ErrNotAcknowledged) && it.Unacked >= q.opts.ParkAfter) {
		it.LastErr = err.Error()
		if q.park(it, err) {
			return
		}
	}
	backoff := q.opts.MinBackoff << min(it.Tries-1, 16)
	if backoff > q.opts.MaxBackoff || backoff <= 0 {
		backoff = q.opts.MaxBackoff
	}
	it.LastErr, it.Next = err.Error(), time.Now().Add(backoff).UTC()
	q.idxMu.Lock()
	q.index(it.Issuer).live[it.Seq] = it.Next
	q.idxMu.Unlock()
	if err := q.save(it); err != nil {
		q.log.Error().Err(err).Msg("saving retry time")
	}
	// An issuer that is down fails every advice on every try: one warning per issuer
	// per WarnEvery says so, with the count of the failures not logged since; the
	// metrics count each one.
	if n, ok := st.WarnDue(q.opts.Now(), q.opts.WarnEvery); ok {
		q.log.Warn().Err(err).Str("issuer", it.Issuer).Str("mti", it.MTI).Str("rrn", it.RRN).Int("tries", it.Tries).
			Dur("retry_in", backoff).Int64("failures_not_logged", n).Msg("advice not acknowledged; will repeat")
	} else {
		st.Suppressed.Add(1)
	}
}

// Stats are one issuer's delivery counts since the start: the rate of Acked is the
// queue's drain rate at that issuer.
type Stats struct {
	Sent   atomic.Int64 // tries made
	Acked  atomic.Int64 // advices acknowledged (delivered and removed from the queue)
	Failed atomic.Int64 // tries that failed (not answered, link down, timed out)
	// Suppressed counts the failures whose warning the rate limit left out of the log.
	Suppressed atomic.Int64
	// Parked counts the advices parked (Options.ParkAfter): answered again and again
	// without an acknowledgement, taken out of the queue for an operator.
	Parked atomic.Int64
	// Held counts the reversal advices held back behind an earlier advice of their
	// transaction still queued (Reversal), once per advice in this process; HeldLong
	// those still held past Options.HoldWarn (logged): their earlier advice is not
	// being delivered, and they wait for it.
	Held, HeldLong atomic.Int64

	warnMu   sync.Mutex
	lastWarn time.Time
	unlogged int64
	lastHold time.Time
}

// HoldWarnDue reports whether a warning about reversals held long may be logged now
// (at most one per every; a rate limit of its own, apart from the failures').
func (s *Stats) HoldWarnDue(now time.Time, every time.Duration) bool {
	s.warnMu.Lock()
	defer s.warnMu.Unlock()
	if !s.lastHold.IsZero() && now.Sub(s.lastHold) < every {
		return false
	}
	s.lastHold = now
	return true
}

// WarnDue reports whether a failure may be logged now and, if so, how many failures
// were not logged since the last warning (the rate limit of Options.WarnEvery, for
// the queues built on this package's Stats).
func (s *Stats) WarnDue(now time.Time, every time.Duration) (int64, bool) {
	s.warnMu.Lock()
	defer s.warnMu.Unlock()
	if !s.lastWarn.IsZero() && now.Sub(s.lastWarn) < every {
		s.unlogged++
		return 0, false
	}
	n := s.unlogged
	s.lastWarn, s.unlogged = now, 0
	return n, true
}

func (q *Queue) stats(issuer string) *Stats {
	q.statsMu.Lock()
	defer q.statsMu.Unlock()
	st := q.byIss[issuer]
	if st == nil {
		st = &Stats{}
		q.byIss[issuer] = st
	}
	return st
}

// IssuerStats returns the delivery counts of every issuer tried or registered, by issuer.
func (q *Queue) IssuerStats() map[string]*Stats {
	q.statsMu.Lock()
	defer q.statsMu.Unlock()
	out := make(map[string]*Stats, len(q.byIss))
	for k, v := range q.byIss {
		out[k] = v
	}
	return out
}

// Flush waits until every issuer's queue is empty or ctx ends.
func (q *Queue) Flush(ctx context.Context) error {
	for {
		q.idxMu.Lock()
		n := 0
		var issuers []string
		for issuer, x := range q.idx {
			if len(x.live) > 0 {
				n += len(x.live)
				issuers = append(issuers, issuer)
			}
		}
		q.idxMu.Unlock()
		if n == 0 {
			return nil
		}
		for _, issuer := range issuers {
			q.kick(issuer)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("saf: %d item(s) still queued: %w", n, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Len returns the number of items queued for issuer ("" for all issuers).
func (q *Queue) Len(issuer string) int {
	q.idxMu.Lock()
	defer q.idxMu.Unlock()
	n := 0
	for name, x := range q.idx {
		if issuer == "" || name == issuer {
			n += len(x.live)
		}
	}
	return n
}

// Close stops the workers; queued items stay for the next start.
func (q *Queue) Close() error {
	q.cancel()
	q.wg.Wait()
	return q.seq.Release()
}
