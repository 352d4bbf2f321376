package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/cluster/cjournal"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/pipeline"
)

// A node of a cluster folds into its velocity counters the records it did not
// observe itself (docs/cluster.md, "Velocity counters"): the other nodes' (every
// one, from the cluster journal's applier: onRemoteRecord), and its own when its
// counters did not come back with its disk (a node rebuilt on an empty one gets
// its records back from the stream: onRestoredRecord). Both fold alike
// (foldVelocity), so that a card counts the same on every node.

// keyOwnCounted is the Badger key whose presence says that the velocity counters
// this data directory holds count this node's own transactions: the node observed
// them as it answered them, or folded them when the stream gave them back. It is
// written (markOwnCounted) once the journal's applier has caught up with the stream
// at a start and the counters are written; a node that starts without it folds the
// records of its own that the stream gives back to its local journal.
const keyOwnCounted = "c/velocity/own"

// ownCounted says whether db holds keyOwnCounted.
func ownCounted(db *badger.DB) (bool, error) {
	err := db.View(func(txn *badger.Txn) error {
		_, err := txn.Get([]byte(keyOwnCounted))
		return err
	})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, badger.ErrKeyNotFound):
		return false, nil
	}
	return false, fmt.Errorf("read %s: %w", keyOwnCounted, err)
}

// markOwnCounted writes the velocity counters, then keyOwnCounted (durably,
// through the journal's log): the counters hold the node's own records that the
// stream gave back.
func (s *Server) markOwnCounted() error {
	if err := s.Risk.Flush(); err != nil {
		return fmt.Errorf("write the velocity counters before %s: %w", keyOwnCounted, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Journal.PutDurable(ctx, []byte(keyOwnCounted), []byte(time.Now().UTC().Format(time.RFC3339))); err != nil {
		return fmt.Errorf("write %s: %w", keyOwnCounted, err)
	}
	return nil
}

// onRestoredRecord takes a version of this node's own record that the stream gave
// back to a local store that lacked it (a lost disk): the DUKPT counter its KSN
// used is raised again, so that the node does not take that KSN a second time, and,
// while the node starts without counters that hold its own transactions (foldOwn),
// it is folded into the velocity counters as another node's would be. A node whose
// counters came back with its disk does not fold them: they hold its transactions
// already.
func (s *Server) onRestoredRecord(rec, prev *journal.Record, latest cjournal.Latest) {
	if rec.KSN != "" && s.Keys != nil {
		s.raiseDUKPT(rec)
	}
	if s.foldOwn.Load() {
		// The counters and the stand-in book of the day were lost with the disk:
		// this node's own stand-in approvals count again as the other nodes' do.
		if rec.StandIn && rec.Final() && (prev == nil || !prev.Final()) {
			s.seenStandIn(rec)
		}
		s.foldVelocity(rec, prev, latest)
	}
}

// onRemoteRecord takes a record version another node journaled, once the cluster
// journal applied it here: the pipeline's filter of recent requests learns its key (a
// resend reaching this node is then looked up) and so does the session of its
// terminal when it is a cup terminal signed in here, its stand-in approval counts in
// the day's book, and it folds into the velocity counters (foldVelocity).
func (s *Server) onRemoteRecord(rec, prev *journal.Record, latest cjournal.Latest) {
	if p := s.remotePipe.Load(); p != nil && rec.TID != "" && rec.STAN != "" && rec.DE7 != "" {
		p.SeenRemote(rec.TID, rec.STAN, rec.DE7, rec.Received)
		if s.cupSessions != nil && prev == nil {
			// A cup terminal's session on this node learns the request (its
			// replay here is the duplicate it is: cup.Sessions.NoteRemote).
			s.cupSessions.NoteRemote(rec)
		}
	}
	if rec.StandIn && rec.Final() && (prev == nil || !prev.Final()) {
		s.seenStandIn(rec)
	}
	if rec.KSN != "" && s.Keys != nil {
		// Every version, not only the first seen: a raise is idempotent (no write
		// when the counter is not higher), and a node that died between applying
		// the record and syncing the raise sees the record again with a prev.
		s.raiseDUKPT(rec)
	}
	s.foldVelocity(rec, prev, latest)
}

// foldVelocity folds a record version this node did not observe into the velocity
// counters; prev is the version the local store held before (nil: none), and latest
// reads the original of a void, reversal or refund as the applier has applied it
// (the local store may not show it yet: cjournal.Latest). Its first
// final version counts, as the node that handled it observed it (an observation
// every node folds: docs/cluster.md). Retractions fold the same way, each from one
// version: an approved void, reversal or refund (its first final version) takes its
// original back out; the switch's own reversal of an approval (the version of the
// original that first carries ReversedBy "switch:...") takes that original back out.
func (s *Server) foldVelocity(rec, prev *journal.Record, latest cjournal.Latest) {
	if s.Risk == nil || !rec.Final() {
		return
	}
	if w := s.Risk.RuleSet().MaxWindow(); w > 0 && time.Since(rec.Received) > w {
		// Older than every counter's window, it counts in none a rule reads (an
		// imported single switch's history, an applier catching up after days
		// away): observed, it would only take room from the live series.
		return
	}
	if prev != nil && prev.Final() {
		if !prev.Reversed() && strings.HasPrefix(rec.ReversedBy, "switch:") {
			s.retractRemote(rec, risk.Retraction{Kind: risk.RetractReversal})
		}
		return
	}
	if rr, ok := RiskRecord(rec); ok {
		s.Risk.Observe(&rr.Input, rr.Outcome)
	}
	if !rec.Approved() || rec.OriginalRRN == "" || latest == nil {
		return
	}
	var r risk.Retraction
	switch rec.Type {
	case "void":
		r.Kind = risk.RetractVoid
	case "reversal":
		r.Kind = risk.RetractReversal
	case "refund":
		r.Kind = risk.RetractRefund
	default:
		return
	}
	orig, err := latest(rec.OriginalRRN)
	if err != nil {
		return
	}
	if r.Kind == risk.RetractRefund {
		// Whole or partial as the node that handled the refund decided it at its
		// reservation: the original as it stands now may hold the reservations of
		// refunds made after this one (before 5 December 2026 a refund did not say).
		refunded := orig.Refunded
		if rec.RefundedTo > 0 {
			refunded = rec.RefundedTo
		}
		r.Amount, r.Partial = int(rec.Amount), refunded < orig.Amount
	} else if orig.ReversedBy != rec.RRN {
		return // a reversal answered 00 that reversed nothing (already reversed, not approved...)
	}
	s.retractRemote(orig, r)
}

// retractRemote takes orig, a record the rules saw, back out of the velocity counters.
func (s *Server) retractRemote(orig *journal.Record, r risk.Retraction) {
	var in risk.Input
	if out, ok := pipeline.RecordInput(orig, &in); ok {
		s.Risk.Retract(&in, out, r)
	}
}

// earlyStandIns holds the stand-in approvals the cluster journal's applier gave
// before the pipeline existed (the catch-up of a start: another node's stand-ins
// while this one was down), for the pipeline's book of the day once it exists.
type earlyStandIns struct {
	mu   sync.Mutex
	recs []journal.Record // only what SeenRemoteStandIn reads
}

// seenStandIn counts a stand-in approval another node gave (or this node's own,
// given back to a node rebuilt on an empty disk) in the pipeline's book of the day,
// or keeps it until the pipeline exists (attachPipeline). Before 5 December 2026
// the applier's catch-up at a start dropped them: a card other nodes had stood in
// for while this node was down got its stand-in limits afresh here.
func (s *Server) seenStandIn(rec *journal.Record) {
	if p := s.remotePipe.Load(); p != nil {
		p.SeenRemoteStandIn(rec)
		return
	}
	s.early.mu.Lock()
	if p := s.remotePipe.Load(); p != nil {
		s.early.mu.Unlock()
		p.SeenRemoteStandIn(rec)
		return
	}
	s.early.recs = append(s.early.recs, journal.Record{RRN: rec.RRN, StandIn: rec.StandIn, RC: rec.RC,
		CardHash: rec.CardHash, Received: rec.Received, Amount: rec.Amount})
	s.early.mu.Unlock()
}

// attachPipeline hands p to the cluster journal's applier's callbacks, and the
// stand-in approvals kept until it existed to its book.
func (s *Server) attachPipeline(p *pipeline.Pipeline) {
	s.early.mu.Lock()
	s.remotePipe.Store(p)
	recs := s.early.recs
	s.early.recs = nil
	s.early.mu.Unlock()
	for i := range recs {
		p.SeenRemoteStandIn(&recs[i])
	}
}
