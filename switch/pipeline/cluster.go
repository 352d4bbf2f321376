package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
)

// In a cluster the journal is replicated: every node holds every node's records, and
// a terminal may resend a request to another node than the one it first reached. What
// changes for the pipeline is seen only through the journal (its errors, and records
// of other nodes that are not final yet):
//   - a write may fail because the cluster cannot make it durable now (an error
//     wrapping journal.ErrUnavailable): the request is answered 91, never approved
//     (systemError, undoApproval), and what the journal did not take is written when
//     it is back (settleBook);
//   - the first write of a request may find that another node journaled the same
//     request first (*journal.DuplicateError), and the duplicate index may find a
//     request that is still in flight on another node: either way the request is a
//     duplicate and gets the first one's answer once that is final here
//     (answerAsDuplicate); a reversal of a request in flight elsewhere waits for it
//     the same way (awaitFinal);
//   - the filter of recent requests learns of the other nodes' requests (SeenRemote).

// RecordLocker orders the changes of one record made on different nodes of a cluster
// (the cluster journal is one): a node's stripes order only its own. Two refunds of
// one purchase sent to two nodes at once would otherwise each be checked against
// their own node's copy of it, and both approved.
type RecordLocker interface {
	// LockRecord returns once this node holds the record's lock across the cluster
	// and its journal holds the record as last changed under it; unlock gives the
	// lock up. An error wraps journal.ErrUnavailable: the change is not to be made.
	LockRecord(ctx context.Context, rrn string) (unlock func(), err error)
}

// Admitter is a journal that may refuse new authorizations and financial requests
// before any work is done on them, because it cannot keep up (a cluster node whose
// journal applier is behind the stream: cjournal.Journal.Admit). Its error wraps
// journal.ErrOverloaded: the request is answered 91 journal-overloaded, nothing of
// it written or sent.
type Admitter interface {
	Admit() error
}

// admit asks the journal, when it is an Admitter, whether a new online 0100 or
// 0200 may go on.
func (p *Pipeline) admit(t *txn) error {
	if p.admitter == nil || t.offline || t.req.MTI != "0100" && t.req.MTI != "0200" {
		return nil
	}
	return p.admitter.Admit()
}

// CatchUpper is a cluster's journal that can wait until its node holds every record,
// delivery mark and batch close the cluster's stream held when asked
// (cjournal.Journal.CaughtUp): a terminal's batch (0500) is totalled after it, over
// the whole cluster's records of the terminal.
type CatchUpper interface {
	CaughtUp(ctx context.Context) error
}

// batchCatchUp bounds a batch's wait for its node's journal to catch up.
const batchCatchUp = 5 * time.Second

// lockRecord takes the stripe of the record rrn and, when the journal is a
// cluster's, first the record's lock across the nodes (waited for without holding a
// stripe, so that a change waiting for another node's holds up no other record of its
// stripe). The returned function releases both. Every read, check and write of an
// original by another transaction (a reversal, void, refund or completion of it,
// their undoing, and the marks owed for them) goes under it.
func (p *Pipeline) lockRecord(ctx context.Context, rrn string) (unlock func(), err error) {
	l := &p.locks[lockIndex(rrn)]
	if p.locker == nil {
		l.Lock()
		return l.Unlock, nil
	}
	release, err := p.locker.LockRecord(ctx, rrn)
	if err != nil {
		return nil, err
	}
	l.Lock()
	return func() {
		l.Unlock()
		release()
	}, nil
}

// errWaitEnded is the end of a wait for another request's final answer.
var errWaitEnded = errors.New("the awaited request's answer did not come")

// SeenRemote tells the filter of recent requests that another node of the cluster
// journaled the request with DE 41 tid, DE 11 stan and DE 7 de7, received at at: a
// resend reaching this node is then looked up in the journal (and answered from there,
// or waited for) instead of being taken as new and sent to the journal's duplicate
// check at its first write. The cluster journal's applier calls it for the first
// version of each request of another node it applies. A request received more than
// two duplicate windows ago is left out (an applier catching up after a stop would
// otherwise fill the filter with keys it no longer needs: a resend that old carries an
// old DE 7 and is looked up anyway).
func (p *Pipeline) SeenRemote(tid, stan, de7 string, at time.Time) {
	now := p.now()
	if now.Sub(at) > 2*p.cfg.DupWindow {
		return
	}
	p.recent.add(journal.DupKey(tid, stan, de7), now)
}

// journalFailed answers a request whose record the journal did not take. A
// DuplicateError at its first write means that another node journaled the same request
// first: nothing of this one is kept (its RRN leaves the open set) and it is answered
// as that one's duplicate. A KSNReplayError means that another record carried its
// DUKPT KSN first: it is declined as a replay (ksnReplayed). Any other failure is a
// system error (91 when the journal is unavailable, see systemError).
func (p *Pipeline) journalFailed(ctx context.Context, t *txn, err error) (frontend.Response, error) {
	var replay *journal.KSNReplayError
	if !t.written && t.rec.KSN != "" && errors.As(err, &replay) {
		return p.ksnReplayed(ctx, t, replay.RRN)
	}
	var dup *journal.DuplicateError
	if t.written || !errors.As(err, &dup) {
		if !t.written {
			unsent(t) // the write ahead failed: nothing went to the issuer
		}
		return p.systemError(t, err)
	}
	p.open.remove(t.rec.RRN)
	p.log.Info().Str("rrn", t.rec.RRN).Str("first", dup.RRN).Str("mti", t.req.MTI).Str("tid", t.req.TID).Str("stan", t.req.STAN).
		Msg("request journaled first on another node: answered as its duplicate, nothing forwarded")
	e := t.dup
	t.dup = nil
	if t.risk != nil { // not observed: the first request is
		inputs.Put(t.risk)
		t.risk = nil
	}
	// What follows (a 94 for other content) is journaled as a record of its own.
	t.rec = journal.Record{Timings: t.rec.Timings}
	t.issuer = ""
	// Nothing of this request was journaled, approved or counted: the merchant's
	// lock it holds (a purchase near its merchant's limits, an offline capture) is
	// given back before the wait for the first's answer (up to Config.DupWait),
	// which would otherwise keep the merchant's other checks waiting (and answered
	// 91 after 5 s). The first request's own approval is counted under its node's.
	releaseHold(t)
	return p.answerAsDuplicate(ctx, t, e, dup.RRN)
}

// ksnReplayed declines t, whose first write a cluster refused because the record
// first carried its DUKPT KSN on another node (journal.KSNReplayError): a replay
// that reached this node before its HSM's counters knew of the first. It is
// declined as the HSM declines a replay it knows (63 dukpt-replay), never sent: the
// record goes without the KSN (a refused KSN is not carried, docs/cluster.md, Keys)
// and without its "sent" event.
func (p *Pipeline) ksnReplayed(ctx context.Context, t *txn, first string) (frontend.Response, error) {
	p.log.Warn().Str("rrn", t.rec.RRN).Str("first", first).Str("tid", t.req.TID).Str("stan", t.req.STAN).
		Msg("DUKPT KSN carried first by another record in the cluster: declined as a replay, nothing forwarded")
	t.rec.KSN, t.rec.IssuerSTAN, t.pin = "", "", nil
	unsent(t)
	return p.decline(ctx, t, message.RCSecurityViolation, "hsm", "dukpt-replay")
}

// unsent takes back the "sent" event that the write-ahead record carries when that
// write failed, so that the record kept of the request does not say it went to the
// issuer.
func unsent(t *txn) {
	if n := len(t.rec.Events); n > 1 && t.rec.Events[n-1].State == journal.StateSent {
		t.rec.Events = t.rec.Events[:n-1]
		t.rec.State = t.rec.Events[n-2].State
	}
}

// answerAsDuplicate answers t, a duplicate of the request journaled as rrn, with that
// request's answer: at once if its record is final here, else once it is (in flight on
// another node, or not yet applied here), waiting up to Config.DupWait. Other content
// than the first's is answered 94; a wait that ends is answered 91 and journals
// nothing, so that the terminal's next resend looks again. e is t's claim in the table
// of requests in flight (nil if none): it is finished with the answer, so that the
// duplicates waiting on it get the same, or forgotten.
func (p *Pipeline) answerAsDuplicate(ctx context.Context, t *txn, e *dupEntry, rrn string) (frontend.Response, error) {
	forget := func() {
		if e != nil {
			p.dups.forget(t.dupKey, e)
		}
	}
	rec, err := p.awaitFinal(ctx, rrn)
	if err != nil {
		forget()
		if errors.Is(err, errWaitEnded) {
			return p.tryAgain(t, rrn, "duplicate-in-flight", err)
		}
		return p.systemError(t, err)
	}
	if !p.sameContent(rec, t) {
		// Not this request's entry: duplicates waiting on it look for themselves.
		forget()
		return p.duplicateMismatch(ctx, t, rec.RRN)
	}
	out := recordOutcome(rec)
	if e != nil {
		p.dups.finish(t.dupKey, e, out)
	}
	return p.repeat(t, out)
}

// awaitFinal returns the record rrn once the journal holds it final (an approval: once
// its answer's delivery is known too, see deliveryPending), reading it again at
// growing intervals (1 ms to 50 ms: a local read) for up to Config.DupWait of the wall
// clock, or until ctx ends. Its error wraps errWaitEnded when the wait ended.
func (p *Pipeline) awaitFinal(ctx context.Context, rrn string) (*journal.Record, error) {
	var deadline, poll *time.Timer
	wait := time.Millisecond
	for {
		rec, err := p.journal.Get(rrn)
		if err == nil && rec.Final() && !deliveryPending(rec) {
			return rec, nil
		}
		if err != nil && !errors.Is(err, journal.ErrNotFound) {
			return nil, fmt.Errorf("first request %s: %w", rrn, err)
		}
		if deadline == nil {
			deadline, poll = time.NewTimer(p.cfg.DupWait), time.NewTimer(wait)
			defer deadline.Stop()
			defer poll.Stop()
		} else {
			poll.Reset(wait)
		}
		select {
		case <-poll.C:
		case <-deadline.C:
			return nil, fmt.Errorf("%w within %s: %s is not final here", errWaitEnded, p.cfg.DupWait, rrn)
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", errWaitEnded, ctx.Err())
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// deliveryPending reports whether rec is an approval whose answer's delivery is not
// known yet: an undelivered one is reversed (Pipeline.sent), so a duplicate told
// "approved" before would be told of an approval taken back a moment later (in a
// cluster: a terminal that failed over and resent while the first node, slow, still
// had its answer to write to the connection the terminal had left). It is known once
// the delivery mark says delivered, or the approval is reversed.
func deliveryPending(rec *journal.Record) bool {
	if !reversibleApproval(rec) {
		return false
	}
	for i := range rec.Events {
		if rec.Events[i].State == journal.StateResponded {
			return false
		}
	}
	return true
}

// tryAgain answers 91 with reason (and the RRN rrn) to a request that waited in vain
// for the final answer of the request rrn, in flight on another node: a duplicate of
// it (duplicate-in-flight), or a reversal of it (original-in-flight). Nothing is
// journaled, so that the terminal's next resend looks again.
func (p *Pipeline) tryAgain(t *txn, rrn, reason string, err error) (frontend.Response, error) {
	raw, perr := message.NewResponseBuilder(t.req).Set(37, rrn).Set(39, message.RCIssuerUnavailable).
		Set(48, message.ReasonTLV(reason)).Bytes(p.macFunc(t))
	if perr != nil {
		return frontend.Response{}, errors.Join(err, perr)
	}
	p.metrics.Transactions.WithLabelValues(t.req.MTI, message.RCIssuerUnavailable, "", "switch").Inc()
	p.log.Warn().Err(err).Str("first", rrn).Str("reason", reason).Str("mti", t.req.MTI).Str("tid", t.req.TID).Str("stan", t.req.STAN).
		Msg("request in flight elsewhere: no final answer in time, answered 91, nothing forwarded")
	return frontend.Response{Body: raw}, nil
}

// undoApproval takes back an approval (the issuer's, or a stand-in's whose advice is
// queued) whose final record the journal did not take: the terminal is not told of it
// (it gets 91, 96, or the first answer of the request it duplicates), so it is
// reversed through the queue like an undelivered approval, and what authorize's caller
// reserved (a refund's amount on its original) is released.
func (p *Pipeline) undoApproval(t *txn, err error) {
	rec := &t.rec
	by := "switch:journal-error"
	var dup *journal.DuplicateError
	switch {
	case errors.Is(err, journal.ErrUnavailable):
		by = "switch:journal-unavailable"
	case errors.As(err, &dup):
		by = "switch:duplicate"
	}
	p.queueReversal(rec, by)
	if rec.Reversed() {
		p.log.Warn().Err(err).Str("rrn", rec.RRN).Str("issuer", rec.Issuer).Str("reversed_by", by).
			Msg("approval not journaled: not given to the terminal, reversal queued")
	} else {
		p.log.Error().Err(err).Str("rrn", rec.RRN).Str("issuer", rec.Issuer).
			Msg("approval not journaled: not given to the terminal, and its reversal NOT queued")
	}
	if t.release != nil {
		t.release()
		t.release = nil
	}
}

// maxUnsettled bounds the records kept for the journal's return (about 1 KB each).
const maxUnsettled = 100_000

// settleBook keeps what the journal could not take for want of a quorum (an error
// wrapping journal.ErrUnavailable) and must still hold: the final version of each
// request answered 91 journal-unavailable (what the terminal was told, and why), and the
// reversal mark of each original whose 0420 is already queued. Without it, a record
// written ahead whose write did reach the cluster would stay open for ever (a resend of
// its request waiting on it in vain), and an original reversed at its issuer would
// stand approved in the journal. The housekeeping loop writes them again every tick
// until the journal takes them; a request's RRN stays in the open set meanwhile, so that
// the recovery checkpoint does not pass it. It keeps too the approval of each offline
// capture whose final write failed for any reason (offlineNotFinal): the capture stands
// from its write ahead, so its approval is written whatever failed, never dropped.
type settleBook struct {
	mu    sync.Mutex
	items []settleItem
	// logged is when settle last said that the journal is still unavailable,
	// failing is when it last said that a capture's approval still fails to be
	// written (the housekeeping goroutine's alone).
	logged, failing time.Time
}

// settleItem is a request's final record (first: no write of it is known to have been
// taken), the reversal mark (by) of the original orig, or (owed) the reversal_owed
// event of orig, whose 0420 is owed (writeOwed; by is the event's note).
type settleItem struct {
	rec      *journal.Record
	first    bool
	orig, by string
	owed     bool
	// kept gives up the merchant's cluster-wide lock an offline capture's hold
	// kept for rec (LimitHold.Keep), once rec is written; nil for none.
	kept func()
	// capture: rec is an offline capture's approval (offlineNotFinal), kept
	// until it is written whatever the journal's error, not only while it is
	// unavailable: its write ahead stands, and a record left open would answer
	// every resend of the upload 91 until a restart.
	capture bool
}

func (b *settleBook) add(it settleItem) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.items) >= maxUnsettled {
		return false
	}
	b.items = append(b.items, it)
	return true
}

// keeps reports whether b holds a final version of the record rrn kept for the
// journal's return (oweRecord): answered 91 journal-unavailable, and its approval, if
// any, taken back (undoApproval: its 0420 queued or owed). The journal may hold the
// approval all the same (a cluster's write acknowledged too late) until settle writes
// the kept version: a refund, void, completion or reversal of it meanwhile is to see
// it as not approved, or the card is credited (or reversed) a second time. It sees
// only this node's book: another node of a cluster reads the journal's approval.
func (b *settleBook) keeps(rrn string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, it := range b.items {
		if it.rec != nil && it.rec.RRN == rrn {
			return true
		}
	}
	return false
}

func (b *settleBook) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.items)
}

// oweRecord keeps the final version of t's record, answered 91 journal-unavailable,
// for the journal's return; false if it is not kept.
func (p *Pipeline) oweRecord(t *txn) bool {
	if t.rec.RRN == "" {
		return false
	}
	rec := t.rec
	rec.Events = slices.Clone(t.rec.Events)
	note := "journal unavailable: answered 91"
	switch {
	case rec.RC == "" || rec.RC == message.RCIssuerUnavailable && rec.AuthCode == "":
		// Nothing else decided (it read "answered 91, not 91  (decided by switch)").
	case rec.AuthCode != "":
		note = fmt.Sprintf("journal unavailable: answered 91, not %s %s (decided by %s)", rec.RC, rec.AuthCode, rec.DecidedBy)
	default:
		note = fmt.Sprintf("journal unavailable: answered 91, not %s (decided by %s)", rec.RC, rec.DecidedBy)
	}
	rec.RC, rec.AuthCode, rec.DecidedBy, rec.Reason = message.RCIssuerUnavailable, "", "journal", "journal-unavailable"
	rec.AddEvent(journal.StateDeclined, p.now().UTC(), note)
	if !p.unsettled.add(settleItem{rec: &rec, first: !t.written}) {
		p.log.Error().Str("rrn", rec.RRN).Str("tid", rec.TID).Str("stan", rec.STAN).
			Msg("journal unavailable: too many records waiting for it; this one is NOT kept")
		return false
	}
	return true
}

// oweReversal keeps the reversal mark (by) of the original orig, whose 0420 is queued,
// for the journal's return, if err (the failed write of the mark) says it is unavailable.
func (p *Pipeline) oweReversal(orig, by string, err error) {
	if !errors.Is(err, journal.ErrUnavailable) {
		return
	}
	if !p.unsettled.add(settleItem{orig: orig, by: by}) {
		p.log.Error().Str("rrn", orig).Str("reversed_by", by).
			Msg("journal unavailable: too many records waiting for it; the original's reversal mark is NOT kept")
	}
}

// settle writes what the journal could not take, in order, until it fails again for
// want of a quorum (the rest waits for the next tick). Other failures are logged and
// the item dropped, but for an offline capture's approval, which is kept for the
// next tick (its write ahead stands: see offlineNotFinal). Nothing is written while
// this node's lease is not known held (Config.LeaseHeld).
func (p *Pipeline) settle(ctx context.Context) {
	if !p.leaseHeld() {
		return
	}
	b := &p.unsettled
	b.mu.Lock()
	items := b.items
	b.items = nil
	b.mu.Unlock()
	if len(items) == 0 {
		return
	}
	var again []settleItem // captures whose approval failed to be written again
	done, written := 0, 0
	for ; done < len(items); done++ {
		it := items[done]
		err := p.settleOne(ctx, it)
		if errors.Is(err, journal.ErrUnavailable) {
			// Said once a minute, with why: an owed record that never goes
			// stays open in the cluster's journal.
			if now := p.now(); now.Sub(p.unsettled.logged) >= time.Minute {
				p.unsettled.logged = now
				p.log.Warn().Err(err).Str("rrn", it.orig+rrnOf(it.rec)).Int("waiting", len(items)-done).
					Msg("journal still unavailable: records answered 91 while it was unavailable still wait to be written")
			}
			break
		}
		switch {
		case err == nil:
			written++
		case it.capture:
			again = append(again, it)
			if now := p.now(); now.Sub(p.unsettled.failing) >= time.Minute {
				p.unsettled.failing = now
				p.log.Error().Err(err).Str("rrn", rrnOf(it.rec)).
					Msg("journal: an offline capture's approval still not written after its final write failed; tried again every 5 s (a restart's recovery approves it too)")
			}
		default:
			p.log.Error().Err(err).Str("rrn", it.orig+rrnOf(it.rec)).Msg("journal: a record kept for the journal's return NOT written")
		}
	}
	if written > 0 {
		p.log.Info().Int("written", written).Int("left", len(items)-done+len(again)).Msg("journal back: records it did not take when they were answered (91 or 96) written now")
	}
	b.mu.Lock()
	b.items = append(append(again, items[done:]...), b.items...)
	b.mu.Unlock()
}

// restampAnswered sets the time of r's last answered event to at.
func restampAnswered(r *journal.Record, at time.Time) {
	for i := len(r.Events) - 1; i >= 0; i-- {
		if r.Events[i].State == journal.StateAnswered {
			r.Events[i].At = at
			return
		}
	}
}

func rrnOf(r *journal.Record) string {
	if r == nil {
		return ""
	}
	return r.RRN
}

func (p *Pipeline) settleOne(ctx context.Context, it settleItem) error {
	if it.rec == nil {
		// A reversed refund's amount goes back to its original once the mark is
		// written, after this stripe is released (see releaseRefund): the paths
		// that owed the mark released nothing.
		var release *journal.Record
		defer func() {
			if release != nil {
				p.releaseRefund(release)
			}
		}()
		unlock, err := p.lockRecord(ctx, it.orig)
		if err != nil {
			return err
		}
		defer unlock()
		cur, err := p.journal.Get(it.orig)
		if err != nil || cur.Reversed() {
			return err
		}
		if it.owed {
			// The 0420 may have been queued (and the mark written) by the tick's
			// retryAdvices since: then cur is reversed, and nothing is owed.
			if reversalOwed(cur) {
				return nil
			}
			cur.OwedBy = p.node // as queueReversal: this node's memory holds the advice
			cur.AddEvent(journal.StateReversalOwed, p.now().UTC(), it.by)
			return p.journal.Write(ctx, cur, false, true)
		}
		cur.ReversedBy = it.by
		cur.AddEvent(journal.StateReversed, p.now().UTC(), it.by)
		if err := p.journal.Write(ctx, cur, false, true); err != nil {
			return err
		}
		if cur.Approved() {
			// An approved refund still holds its reservation. One answered 91 (a
			// timeout, an issuer error, a final write that failed) was released
			// when it was answered: releasing it again would free the amount of the
			// original's other refunds.
			release = cur
		}
		return nil
	}
	// Written under the record's lock, over what the journal holds of it now: the
	// kept copy was taken when the request was answered, and another path may have
	// changed the stored version since (see mergeStored).
	unlock, err := p.lockRecord(ctx, it.rec.RRN)
	if err != nil {
		return err
	}
	defer unlock()
	// Merged into a copy, each try afresh: a write that fails keeps the item as it
	// was kept, so that the next try reads the stored version again (a refund's
	// release or a completion's void in between would otherwise be taken back by
	// the values this try merged).
	rec := *it.rec
	rec.Events = slices.Clone(it.rec.Events)
	cur, err := p.journal.Get(rec.RRN)
	switch {
	case err == nil:
		mergeStored(&rec, cur)
	case !errors.Is(err, journal.ErrNotFound):
		return err
	}
	if it.capture && (cur == nil || !cur.Final()) {
		// The approval is journaled by this try: its answered event says when
		// (journal.Record.DecidedAt). Settlement pays an approval decided more than
		// 10 minutes after its receipt in the day it was decided: stamped with the
		// failed write's time, an approval journaled after its day's cut-off would
		// count in that day's report, whose file was written without it. (One the
		// journal has already, the failed write taken after all, keeps its time:
		// a report may have paid it.) Not reversed while open: no event to order.
		restampAnswered(&rec, p.now().UTC())
	}
	err = p.journal.Write(ctx, &rec, it.first, true)
	var replay *journal.KSNReplayError
	if it.first && rec.KSN != "" && errors.As(err, &replay) {
		// A replay of its KSN reached the cluster's order first (this request was
		// never sent: its write-ahead record is what failed). The record is kept,
		// without the KSN, as the answer the terminal got.
		it.rec.KSN, rec.KSN = "", ""
		err = p.journal.Write(ctx, &rec, true, true)
	}
	var dup *journal.DuplicateError
	if errors.As(err, &dup) {
		if dup.RRN == rec.RRN {
			// The write that failed had been taken after all: this is an update.
			err = p.journal.Write(ctx, &rec, false, true)
		} else {
			// Another request holds the key now: nothing of this one was taken.
			err = nil
		}
	}
	if err == nil && it.capture {
		// Counted before the record leaves the open set, which lets a resend
		// waiting for it take its answer: whoever reads that answer reads the count.
		p.metrics.OfflineFinalWrites.WithLabelValues("written").Inc()
		p.log.Warn().Str("rrn", rec.RRN).Str("tid", rec.TID).Str("stan", rec.STAN).
			Msg("offline capture's approval written after its final write failed: its resend is answered 00")
	}
	if err == nil || !errors.Is(err, journal.ErrUnavailable) && !it.capture {
		p.open.remove(it.rec.RRN)
	}
	if err == nil && it.kept != nil {
		// The capture is journaled: the other nodes' checks of its merchant see it.
		it.kept()
	}
	return err
}

// mergeStored carries into rec, a final version kept for the journal's return, what
// other paths wrote into the stored version cur of the same record after rec was
// copied, so that settle's write does not take it back:
//   - the reversal mark and its event: retryAdvices, in the same housekeeping tick
//     just before settle, queues an owed 0420 and marks the stored version reversed
//     (without it, recovery's owesReversal, a survivor's or a restart's, queues the
//     0420 again);
//   - a refund's reservation (Refunded) and a completion's mark (CompletedBy): the
//     stored version may be the approval whose write was taken after all (a cluster's
//     publish acknowledged too late), refunded or completed meanwhile; without them
//     the refund's release would drive Refunded below zero, and the completion's
//     pre-authorization would look open;
//   - a reversal owed by another node (its reversal_owed event and OwedBy): a void
//     or reversal of this record on another node whose 0420 its queue refused;
//     without them that node's recovery would not find the debt (ScanOwed);
//   - the version count (Rev): rec is made from cur, so that the cluster's appliers
//     keep it over the versions written since rec was copied.
//
// Delivery marks are kept apart from the versions and merged when read.
func mergeStored(rec, cur *journal.Record) {
	if !rec.Reversed() && cur.Reversed() {
		rec.ReversedBy = cur.ReversedBy
		insertEvents(rec, cur, journal.StateReversed)
	}
	if !rec.Reversed() && rec.OwedBy == "" && cur.OwedBy != "" {
		rec.OwedBy = cur.OwedBy
		insertEvents(rec, cur, journal.StateReversalOwed)
	}
	if rec.Refunded == 0 {
		rec.Refunded = cur.Refunded
	}
	if rec.CompletedBy == "" {
		rec.CompletedBy = cur.CompletedBy
	}
	rec.Rev = max(rec.Rev, cur.Rev)
}

// insertEvents inserts into rec, in time order, the events of cur in state that rec
// does not have, and then sets rec's state to its last event's.
func insertEvents(rec, cur *journal.Record, state journal.State) {
	inserted := false
	for _, e := range cur.Events {
		if e.State == state && !slices.Contains(rec.Events, e) {
			i := len(rec.Events)
			for i > 0 && rec.Events[i-1].At.After(e.At) {
				i--
			}
			rec.Events = slices.Insert(rec.Events, i, e)
			inserted = true
		}
	}
	if inserted {
		rec.State = rec.Events[len(rec.Events)-1].State
	}
}

// leaseLost returns Config.LeaseLost's error for t, a transaction whose write-ahead
// record went to the journal before it was sent to its issuer (the others a
// recovery does not reverse at an issuer: nothing to leave to it), nil otherwise.
func (p *Pipeline) leaseLost(ctx context.Context, t *txn) error {
	if p.cfg.LeaseLost == nil || !t.written || !sentToIssuer(&t.rec) {
		return nil
	}
	return p.cfg.LeaseLost(ctx)
}

// sentToIssuer reports whether rec went to its issuer (its "sent" event).
func sentToIssuer(rec *journal.Record) bool {
	for i := range rec.Events {
		if rec.Events[i].State == journal.StateSent {
			return true
		}
	}
	return false
}

// handOver answers t, a transaction sent to its issuer that this node may no
// longer finish (its lease lost: err, see Config.LeaseLost), 91 node-lease-lost,
// and writes, queues and sends nothing more for it: the node that claimed this
// incarnation's recovery settles its record as it finds it in the journal (one
// written ahead: 91, reversed at the issuer; an approval without a delivery mark,
// when the final version went before the lease was found lost: reversed), which
// is what the terminal is told. Had its last version reached the journal after that
// node's scan, the node's own restart settles it: it stays in the open set, so that
// the recovery checkpoint never passes it. Until 6 December 2026 a node woken after
// such a recovery wrote the issuer's approval over it and gave it to the terminal.
func (p *Pipeline) handOver(t *txn, err error) (frontend.Response, error) {
	if t.release != nil {
		t.release()
		t.release = nil
	}
	if t.dup != nil {
		// The duplicates waiting on it look for themselves: the journal gives
		// them the recovery's answer.
		p.dups.forget(t.dupKey, t.dup)
		t.dup, t.dupAtSent = nil, false
	}
	t.undo = nil
	rc, reason := message.RCIssuerUnavailable, "node-lease-lost"
	p.unavailLog.Warn().Err(err).Str("rrn", t.rec.RRN).Str("tid", t.req.TID).Str("stan", t.req.STAN).Str("mti", t.req.MTI).
		Msg("lease lost: transaction left to the node recovering this one; answered 91, nothing more written or sent for it")
	raw, perr := message.NewResponseBuilder(t.req).Set(37, t.rec.RRN).Set(39, rc).
		Set(48, message.ReasonTLV(reason)).Bytes(p.macFunc(t))
	if perr != nil {
		return frontend.Response{}, errors.Join(err, perr)
	}
	p.metrics.Transactions.WithLabelValues(t.req.MTI, rc, t.issuer, "switch").Inc()
	return frontend.Response{Body: raw}, nil
}
