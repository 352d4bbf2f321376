package cjournal

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/switchyard/switchyard/switch/journal"
)

// Holding the other nodes' write-ahead records: a request's write-ahead version is
// followed within milliseconds by its final version, so the applier keeps a remote
// first version that is not final in memory (held) instead of writing it to the local
// store, and writes the final version in its place: the local log and Badger take one
// version per remote transaction instead of two. A held version is written as it is
// when no later version came within Options.HoldRemote (or more than Options.MaxHeld
// are held), and at once when something needs it in the store: a query (Scan,
// ScanNode, LastReceived: a survivor settling a dead node's open transactions scans
// them), a delivery mark for it, or a write of this node to that record.
//
// What holds it together:
//   - the applier's durable position (keyApplied) stays behind the oldest held
//     version's stream sequence, so that after a crash the applier reads it again
//     from the stream; the position's second half is the last sequence applied, and
//     below it a remote record the local store already holds is not applied again
//     (its newest version up to there is in the store), so a restart neither rolls a
//     record back nor counts it twice in velocity;
//   - Get and LookupDuplicate see a held version exactly as they saw it in the store
//     (and a version written but not yet committed to the local log, until the
//     applier's next flush has committed it), so a request resent to this node
//     finds another node's request in flight and waits for its final answer;
//   - the applier's visible position (Position, WaitApplied) counts a held version
//     as applied: it is readable.

// The defaults of Options.HoldRemote and Options.MaxHeld.
const (
	DefaultHoldRemote = 2 * time.Second
	DefaultMaxHeld    = 8192
)

// heldEntry is a remote record whose first version the applier took without writing
// it to the local store (held), or wrote since, until that write is committed.
type heldEntry struct {
	rrn   string
	first *journal.Record // the first version taken (its indexes are the store's)
	rec   *journal.Record // the newest version taken
	data  []byte          // rec's encoding (a copy)
	seq   uint64          // the stream sequence of the first version
	at    time.Time       // when it was taken (Options.Now)
	dup   string          // the duplicate key the first version owns ("" none)

	written bool   // handed to the local store
	gen     uint64 // holdings.gen when written
}

// writtenEntry is an entry's write to the local store: gen is holdings.gen then (an
// entry written again has a later one).
type writtenEntry struct {
	e   *heldEntry
	gen uint64
}

// holdings are the held records. The applier adds and settles them; Get and
// LookupDuplicate read them; queries, delivery marks and this node's writes to a
// held record release them. mu also orders the local store's writes of a held
// record: its versions reach the store's committer in their order.
type holdings struct {
	mu      sync.Mutex
	m       map[string]*heldEntry // by RRN
	dup     map[string]string     // duplicate key -> RRN, of the entries in m
	order   []*heldEntry          // entries by first sequence; written ones skipped lazily
	written []writtenEntry        // entries written, by gen, until committed
	gen     uint64                // counts the writes of entries
	held    int                   // entries not written
}

func (h *holdings) init() {
	h.m = make(map[string]*heldEntry)
	h.dup = make(map[string]string)
}

// lookup returns the entry of rrn (nil if none). h.mu held.
func (h *holdings) lookup(rrn string) *heldEntry { return h.m[rrn] }

// add holds rec (encoded as data), taken from the stream at seq. h.mu held.
func (h *holdings) add(rec *journal.Record, data []byte, seq uint64, at time.Time) {
	e := &heldEntry{rrn: rec.RRN, first: rec, rec: rec, data: append([]byte(nil), data...), seq: seq, at: at}
	if rec.TID != "" && rec.STAN != "" && rec.DE7 != "" && rec.OwnsDupKey() {
		e.dup = journal.DupKey(rec.TID, rec.STAN, rec.DE7)
		h.dup[e.dup] = rec.RRN
	}
	h.m[rec.RRN] = e
	h.order = append(h.order, e)
	h.held++
}

// markWritten records that e's newest version went to the local store. h.mu held.
func (h *holdings) markWritten(e *heldEntry) {
	if !e.written {
		e.written = true
		h.held--
	}
	h.gen++
	e.gen = h.gen
	h.written = append(h.written, writtenEntry{e, h.gen})
}

// oldest returns the oldest entry still held (nil if none). h.mu held.
func (h *holdings) oldest() *heldEntry {
	for len(h.order) > 0 && h.order[0].written {
		h.order[0] = nil
		h.order = h.order[1:]
	}
	if len(h.order) == 0 {
		h.order = nil
		return nil
	}
	return h.order[0]
}

// committed forgets the entries written up to gen: the local store serves them. h.mu
// held.
func (h *holdings) committed(gen uint64) {
	n := 0
	for n < len(h.written) && h.written[n].gen <= gen {
		if e := h.written[n].e; e.gen <= gen && h.m[e.rrn] == e {
			delete(h.m, e.rrn)
			if e.dup != "" && h.dup[e.dup] == e.rrn {
				delete(h.dup, e.dup)
			}
		}
		h.written[n] = writtenEntry{}
		n++
	}
	h.written = h.written[n:]
	if len(h.written) == 0 {
		h.written = nil
	}
}

// needsFirst says whether the first version must be written before a later one can
// stand in for it: the store indexes a record (duplicate key, receive time, terminal)
// from its first write, and those of the later version differ.
func needsFirst(first, later *journal.Record) bool {
	return first.OwnsDupKey() != later.OwnsDupKey() || first.TID != later.TID || first.STAN != later.STAN ||
		first.DE7 != later.DE7 || !first.Received.Equal(later.Received)
}

// holdFor is Options.HoldRemote with its default; 0 when holding is off.
func (j *Journal) holdFor() time.Duration {
	switch {
	case j.opts.HoldRemote < 0:
		return 0
	case j.opts.HoldRemote == 0:
		return DefaultHoldRemote
	}
	return j.opts.HoldRemote
}

func (j *Journal) now() time.Time {
	if j.opts.Now != nil {
		return j.opts.Now()
	}
	return time.Now()
}

// writeHeld writes e's version to the local store, not durably. h.mu held.
func (j *Journal) writeHeld(ctx context.Context, e *heldEntry) error {
	j.ap.dirty.Store(true)
	if err := j.store.WriteEncodedLater(ctx, e.rec, e.data, true); err != nil {
		return fmt.Errorf("write the held record %s: %w", e.rrn, err)
	}
	j.hold.markWritten(e)
	j.stats.heldWritten.Add(1)
	return nil
}

// releaseDue writes the held versions that waited HoldRemote for a later one, and the
// oldest beyond MaxHeld. The applier's alone.
func (j *Journal) releaseDue(ctx context.Context) error {
	h := &j.hold
	limit := j.opts.MaxHeld
	if limit <= 0 {
		limit = DefaultMaxHeld
	}
	due := j.now().Add(-j.holdFor())
	h.mu.Lock()
	defer h.mu.Unlock()
	for {
		e := h.oldest()
		if e == nil || h.held <= limit && e.at.After(due) {
			return nil
		}
		if err := j.writeHeld(ctx, e); err != nil {
			return err
		}
	}
}

// releaseRRN writes rrn's held version, if any, to the local store, before this node
// writes a version of its own to that record (a reversal of another node's request,
// a dead node's recovery): the held version must not land after it.
func (j *Journal) releaseRRN(ctx context.Context, rrn string) error {
	h := &j.hold
	h.mu.Lock()
	defer h.mu.Unlock()
	if e := h.lookup(rrn); e != nil && !e.written {
		return j.writeHeld(ctx, e)
	}
	return nil
}

// releaseAll writes every held version to the local store and returns once they are
// committed there (readable by a scan): queries see every record the applier took.
func (j *Journal) releaseAll(ctx context.Context) error {
	h := &j.hold
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.held == 0 {
		return nil
	}
	var last *heldEntry
	for _, e := range h.order {
		if e.written {
			continue
		}
		if last != nil {
			if err := j.writeHeld(ctx, last); err != nil {
				return err
			}
		}
		last = e
	}
	// The last one durably: the committer commits in order, so all are then on
	// the log and readable (with h.mu held, a rare fsync's wait for Get's callers).
	if err := j.store.WriteEncoded(ctx, last.rec, last.data, true, true); err != nil {
		return fmt.Errorf("cjournal: write the held record %s: %w", last.rrn, err)
	}
	h.markWritten(last)
	j.stats.heldWritten.Add(1)
	h.committed(h.gen)
	h.oldest()
	return nil
}

// getHeld returns a copy of rrn's newest version when the applier holds it, or wrote
// it to the local store and the store does not serve it yet; ok is false otherwise
// (the store answers).
func (j *Journal) getHeld(rrn string) (rec *journal.Record, ok bool, err error) {
	h := &j.hold
	h.mu.Lock()
	e := h.lookup(rrn)
	if e == nil {
		h.mu.Unlock()
		return nil, false, nil
	}
	written, data := e.written, e.data
	h.mu.Unlock()
	if written {
		// Committed by now, or not yet: the store's version with the delivery merged
		// in, if it has it.
		r, err := j.store.GetStored(rrn)
		if err == nil || !errors.Is(err, journal.ErrNotFound) {
			return r, true, err
		}
	}
	rec = new(journal.Record)
	if err := rec.UnmarshalBinary(data); err != nil {
		return nil, true, fmt.Errorf("cjournal: decode the held record %s: %w", rrn, err)
	}
	return rec, true, nil
}

// lookupHeld returns the RRN of a held record that owns the duplicate key.
func (j *Journal) lookupHeld(key string) (string, bool) {
	h := &j.hold
	h.mu.Lock()
	rrn, ok := h.dup[key]
	h.mu.Unlock()
	return rrn, ok
}

// overlay is the journal's held versions as the local store's overlay: every reader
// of the store sees them (journal.Overlay).
type overlay struct{ j *Journal }

func (o overlay) Get(rrn string) (*journal.Record, bool, error) { return o.j.getHeld(rrn) }

func (o overlay) LookupDuplicate(key string) (string, bool) { return o.j.lookupHeld(key) }

func (o overlay) Release(ctx context.Context) error { return o.j.releaseAll(ctx) }
