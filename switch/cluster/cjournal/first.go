package cjournal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/switchyard/switchyard/switch/journal"
)

// First versions: which of two nodes took a request is decided by the stream's order.
//
// The first version of a request that owns its duplicate key (DE 41 + 11 + 7: the
// write-ahead record, written before the issuer is asked) goes to the grouper like
// every other entry, as kind f. It is not written to the local store by its writer:
// every node's applier, this node's included, meets the f entries of all nodes in the
// stream's order and decides each the same way. An entry whose key no earlier record
// holds, or holds under the entry's own RRN (a writer's retry, the final version of a
// request answered 91 while the stream was unavailable), is taken: applied as a
// record version (on the writer's node, written to its store by the applier). An
// entry whose key an earlier record holds under another RRN is void: no node applies
// it, and its writer gets a *journal.DuplicateError naming that RRN. So a terminal
// that resends a request on another node after a failover gets the first answer,
// never a second authorization, and every node's store holds the same records.
//
// Each applier asks its own state, which is the stream's up to the entry: the
// duplicate index of its store, and the keys it applied since its last flush (keys:
// the store's index shows a write only once committed). The writer waits for its
// group's acknowledgement, then for its own applier's verdict, and, when the entry
// is taken, for the local store's sync of the applier's write of it (so that it is
// durable and readable here when Write returns, as a single node's is); when it is
// void, for the applier's next flush (so that the record that holds the key is
// readable here). Each group costs the stream one message; the previous version published
// each first version alone, with the key as its Nats-Msg-Id, and the stream's
// deduplication decided (a message per authorization more: docs/cluster.md,
// Publishing). Beyond the stream's order, nothing is assumed: not a window, not a
// clock.
//
// An f entry's payload: RRN length (1 byte), RRN, the record's encoding.

// kindFirst is the group entry of a first version that owns its duplicate key.
const kindFirst = "f"

// firstWait is a writer waiting for the verdict on its first version.
type firstWait struct {
	rec  *journal.Record
	data []byte        // rec's encoding: only an entry of these bytes is this writer's
	done chan struct{} // closed by the applier once the fields below are set

	seq       uint64       // the entry's stream sequence
	dupOf     string       // the RRN that holds the key: the entry is void
	replayOf  string       // the RRN that carried the entry's KSN first: void too
	committed <-chan error // taken: the outcome of the local write (nil: none needed)
	err       error        // the applier could not apply it (its fate is unknown)
}

// ownsKey says whether rec's first version decides its duplicate key.
func ownsKey(rec *journal.Record) bool { return rec.DuplicateKey() != "" }

// writeFirst is Write of the first version of a request that owns its duplicate key:
// an f entry, waited for (durable or not) until the stream has acknowledged its group
// and this node's applier has decided it. It returns a *journal.DuplicateError when
// the key is another RRN's, and an error wrapping journal.ErrUnavailable when either
// does not come within AckTimeout. payload is the f entry (the RRN's length, the RRN
// and the encoding), data the encoding alone (its end).
func (j *Journal) writeFirst(ctx context.Context, rec *journal.Record, payload, data []byte) error {
	start := time.Now()
	what := "publish record " + rec.RRN
	if len(rec.RRN) > 255 {
		return fmt.Errorf("cjournal: record %s: an RRN of %d bytes", rec.RRN, len(rec.RRN))
	}
	if err := j.halted(); err != nil {
		// Nothing new goes into a stream this node no longer reads (the final
		// versions of requests already in flight still do).
		return fmt.Errorf("cjournal: %s: %w: %w", what, journal.ErrUnavailable, err)
	}
	w := &firstWait{rec: rec, data: data, done: make(chan struct{})}
	j.ap.firstMu.Lock()
	j.ap.firsts[rec.RRN] = w
	j.ap.firstMu.Unlock()
	forget := func() {
		j.ap.firstMu.Lock()
		if j.ap.firsts[rec.RRN] == w {
			delete(j.ap.firsts, rec.RRN)
		}
		j.ap.firstMu.Unlock()
	}
	ch, err := j.enqueue(kindFirst[0], payload, true)
	if err != nil {
		forget()
		return &unavailableError{what: what, err: err}
	}
	if err := j.awaitGroup(ctx, what, start, ch); err != nil {
		forget()
		return err
	}
	timer := time.NewTimer(time.Until(start.Add(j.opts.AckTimeout)))
	defer timer.Stop()
	select {
	case <-w.done:
	case <-timer.C:
		forget()
		return j.failed(what, errors.New("acknowledged, but not decided by this node's applier in time"))
	case <-ctx.Done():
		forget()
		return j.failed(what, ctx.Err())
	case <-j.ap.done:
		forget()
		return j.failed(what, errors.New("the journal is closed"))
	case <-j.ap.halt:
		select {
		case <-w.done: // decided before the halt: the verdict stands
		default:
			forget()
			return fmt.Errorf("cjournal: %s: %w: %w", what, journal.ErrUnavailable, j.ap.haltErr)
		}
	}
	switch {
	case w.err != nil:
		return &unavailableError{what: what, err: w.err, noQuorum: true}
	case w.replayOf != "":
		return &journal.KSNReplayError{RRN: w.replayOf}
	case w.dupOf != "":
		j.stats.duplicates.Add(1)
		// The record that holds the key is readable here once the applier has
		// flushed past it (it is at most a second away).
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		_ = j.WaitApplied(wctx, w.seq)
		cancel()
		return &journal.DuplicateError{Key: rec.DuplicateKey(), RRN: w.dupOf}
	case w.committed == nil:
		return nil // the store held this version already
	}
	select {
	case err := <-w.committed:
		if err != nil {
			// Unavailable, so that the pipeline answers 91 and writes the final
			// version when it can (the other nodes hold this one open).
			return fmt.Errorf("cjournal: record %s: taken by the stream, but the local store failed: %w: %w", rec.RRN, journal.ErrUnavailable, err)
		}
		return nil
	case <-timer.C:
		return j.failed(what, errors.New("taken, but the local store's sync did not come in time"))
	case <-ctx.Done():
		return j.failed(what, ctx.Err())
	}
}

// applyFirst decides an f entry at stream sequence seq (see the top of this file)
// and applies it when it is taken; a waiting writer of this node is told at once.
// With byKSN (the entry's format is ksnFormat or later) a DUKPT KSN that another
// RRN carried earlier makes it void too.
func (j *Journal) applyFirst(ctx context.Context, seq uint64, payload []byte, own, byKSN bool) error {
	if len(payload) < 1 || len(payload) < 1+int(payload[0]) {
		return badMessage{fmt.Errorf("first version of %d bytes", len(payload))}
	}
	n := int(payload[0])
	rrn, data := string(payload[1:1+n]), payload[1+n:]
	var w *firstWait
	if own {
		// The writer's own entry, not an earlier one of the same RRN sent again
		// late by the resender.
		j.ap.firstMu.Lock()
		if w = j.ap.firsts[rrn]; w != nil && bytes.Equal(w.data, data) {
			delete(j.ap.firsts, rrn)
		} else {
			w = nil
		}
		j.ap.firstMu.Unlock()
	}
	rec := (*journal.Record)(nil)
	if w != nil {
		rec = w.rec
	} else {
		rec = new(journal.Record)
		if err := rec.UnmarshalBinary(data); err != nil {
			return badMessage{fmt.Errorf("decode first version %s: %w", rrn, err)}
		}
		if rec.RRN != rrn || !ownsKey(rec) {
			return badMessage{fmt.Errorf("first version %s: holds record %s (key %s/%s/%s, RC %q)", rrn, rec.RRN, rec.TID, rec.STAN, rec.DE7, rec.RC)}
		}
	}
	// After an error the entry is redelivered once the applier starts again, and
	// decided then: its writer waits on.
	waitAgain := func() {
		if w != nil {
			j.ap.firstMu.Lock()
			if j.ap.firsts[rrn] == nil {
				j.ap.firsts[rrn] = w
			}
			j.ap.firstMu.Unlock()
		}
	}
	holder, known, err := j.keyHolder(rec)
	if err != nil {
		waitAgain()
		return err
	}
	if known && holder != rrn {
		if w != nil {
			w.seq, w.dupOf = seq, holder
			close(w.done)
		}
		return nil
	}
	if byKSN && !known && rec.KSN != "" {
		// A DUKPT KSN another RRN carried earlier in the stream: a replay that reached
		// its node before that node applied the first (its HSM's counters did not
		// know it yet). Void on every node. (A known key is this RRN's own retry.)
		first, used, err := j.ksnHolder(rec.KSN)
		if err != nil {
			waitAgain()
			return err
		}
		if used && first != rrn {
			if w != nil {
				w.seq, w.replayOf = seq, first
				close(w.done)
			}
			return nil
		}
	}
	// An own entry a writer of this process waits for is live; one nobody waits
	// for (its writer gave up, or an earlier process wrote it) is restored, as
	// one the stream gives back after a lost disk.
	err = j.applyRecord(ctx, rec, data, own, !known, w)
	if w != nil {
		w.seq, w.err = seq, err
		close(w.done)
	}
	return err
}

// ksnHolder returns the RRN of the record that carried the DUKPT KSN first, in the
// applier's view: the records applied since the last flush, else the store's index
// (journal.Options.IndexKSN).
func (j *Journal) ksnHolder(ksn string) (string, bool, error) {
	if rrn, ok := j.ap.keys[journal.KSNKey(ksn)]; ok {
		return rrn, true, nil
	}
	return j.store.LookupKSN(ksn)
}

// keyHolder returns the RRN that holds rec's duplicate key (journal.Record.DuplicateKey:
// an offline approval's is its card's, not its DE 41 + 11 + 7) in the applier's view:
// the keys applied since the last flush, else the store's duplicate index.
func (j *Journal) keyHolder(rec *journal.Record) (string, bool, error) {
	key := rec.DuplicateKey()
	if rrn, ok := j.ap.keys[key]; ok {
		return rrn, true, nil
	}
	return j.store.LookupDuplicateKey(key)
}
