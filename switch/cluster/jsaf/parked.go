package jsaf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/switch/saf"
)

// ParkedOpSubject is the subject, in ParkedStreamName, of the operator's action on
// the parked advice id (its SAF sequence): a saf.ParkedAction, at most one, which
// JetStream enforces (the record is published expecting the subject empty), so that
// of two operators acting on the same advice at once on two nodes exactly one wins.
// It stays in the stream as the record of who did what, when, and why, for
// Options.ActionRetention after the subject's last record (pruneActions). A requeue
// whose repeat was published adds a record on the subject, the same action with
// Requeued set (noteRequeued, or noteGone by the node that delivers the repeat):
// what a roll-forward (finish) reads to know that the repeat went; a roll-forward
// adds one before it publishes.
func ParkedOpSubject(id uint64) string { return fmt.Sprintf("safparkedop.%d", id) }

// requeueMsgID is the Nats-Msg-Id of the repeat a requeue of the parked advice id
// publishes: derived from the action's record (its advice), so that the stream
// stores it once within its duplicate window (Options.Duplicates), and so that the
// repeat is known in the SAF stream (findRepeat) and by the node that delivers it
// (requeueOf, noteGone).
func requeueMsgID(id uint64) string { return fmt.Sprintf("requeue:%d", id) }

// Requeue puts the parked advice id (its SAF sequence, Item.Seq in Parked) back in
// its issuer's queue, acting as by: a repeat (saf.RequeuedItem) published to the SAF
// stream, which any node then delivers. See act for the order of the steps.
func (q *Queue) Requeue(id uint64, by string) (saf.ParkedAction, error) {
	return q.act(saf.ParkedAction{ID: id, Action: saf.ActionRequeue, By: by})
}

// Resolve takes the parked advice id out of SAF_PARKED for good, settled out of band
// by by with note (required); it is never sent.
func (q *Queue) Resolve(id uint64, by, note string) (saf.ParkedAction, error) {
	return q.act(saf.ParkedAction{ID: id, Action: saf.ActionResolve, By: by, Note: note})
}

// stepsTimeout bounds the steps of an action after its record (act): the repeat's
// publish, its note and the parked copy's delete, PublishTimeout each.
func (q *Queue) stepsTimeout() time.Duration { return 3 * q.opts.PublishTimeout }

// staleAfter is the age of an action's record past which, its parked copy still
// there, the action will not finish by itself (its node died between the steps, or
// the delete failed), and finish rolls it forward: the steps' time (stepsTimeout) and
// the record's acknowledgement (PublishTimeout): 8 s at the defaults, 48 s in the
// switch, whose PublishTimeout is 12 s. Whether the roll-forward comes inside the SAF
// stream's duplicate window or long after it, it does not publish a repeat that went
// (finish).
func (q *Queue) staleAfter() time.Duration { return q.stepsTimeout() + q.opts.PublishTimeout }

// act does a on its parked advice, from any node: it records the action first on
// ParkedOpSubject (claim: a second one fails, saf.ErrParkedConflict), then, for a
// requeue, publishes the repeat to the SAF stream (Nats-Msg-Id requeueMsgID: stored
// once) and notes it (noteRequeued), and last deletes the parked copy. A requeue
// that cannot be published takes its record back, so that the action may be tried
// again. An action recorded earlier whose parked copy is still listed was left
// unfinished (its node died between the steps, or the delete failed): act finishes
// it (finish) before refusing a's with the first actor's name.
func (q *Queue) act(a saf.ParkedAction) (saf.ParkedAction, error) {
	if err := saf.CheckAction(&a); err != nil {
		return a, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*q.opts.PublishTimeout)
	defer cancel()
	pseq, it, err := q.findParked(ctx, a.ID)
	if errors.Is(err, saf.ErrParkedNotFound) {
		if prev, _, ok := q.parkedOp(ctx, a.ID); ok {
			return a, saf.AlreadyDone(a.ID, prev)
		}
	}
	if err != nil {
		return a, err
	}
	if _, _, ok := q.parkedOp(ctx, a.ID); ok {
		return a, q.refuse(ctx, a.ID, pseq)
	}
	a.Item, a.At = it, time.Now().UTC()
	opSeq, err := q.claim(ctx, &a)
	if errors.Is(err, saf.ErrParkedConflict) {
		return a, q.refuse(ctx, a.ID, pseq)
	}
	if err != nil {
		return a, err
	}
	ctx, cancel = context.WithTimeout(context.Background(), q.stepsTimeout()) // the record is in: staleAfter
	defer cancel()
	if a.Action == saf.ActionRequeue {
		seq, err := q.publishRepeat(ctx, a)
		if err != nil {
			if perr := q.parked.Purge(ctx, jetstream.WithPurgeSubject(ParkedOpSubject(a.ID))); perr != nil {
				q.log.Error().Err(perr).Uint64("seq", a.ID).Msg("store-and-forward: the record of a failed requeue could not be taken back; the next action on the parked advice finishes the requeue")
			}
			return a, err
		}
		a.Requeued = seq
		q.noteRequeued(ctx, a, opSeq)
	}
	q.deleteParked(ctx, a.ID, pseq)
	q.log.Warn().Str("action", a.Action).Str("by", a.By).Str("issuer", it.Issuer).Str("mti", it.MTI).Str("rrn", it.RRN).
		Uint64("seq", a.ID).Uint64("requeued_seq", a.Requeued).Msg("parked advice " + a.Action + "d by an operator")
	return a, nil
}

// claim publishes a's record on ParkedOpSubject expecting the subject empty, and
// returns its sequence in ParkedStreamName; an action recorded first makes it fail
// with saf.ErrParkedConflict.
func (q *Queue) claim(ctx context.Context, a *saf.ParkedAction) (uint64, error) {
	b, err := json.Marshal(a)
	if err != nil {
		return 0, fmt.Errorf("jsaf: encode the %s of parked advice %d: %w", a.Action, a.ID, err)
	}
	ack, err := q.js.Publish(ctx, ParkedOpSubject(a.ID), b, jetstream.WithExpectLastSequencePerSubject(0))
	if err != nil {
		if wrongLast(err) {
			return 0, fmt.Errorf("%w: parked advice %d is being acted on by another operator", saf.ErrParkedConflict, a.ID)
		}
		return 0, fmt.Errorf("jsaf: %s parked advice %d: record the action in %s: %w", a.Action, a.ID, ParkedStreamName, err)
	}
	return ack.Sequence, nil
}

// publishRepeat publishes the repeat of a requeue (saf.RequeuedItem of a.Item) to the
// SAF stream under requeueMsgID, and returns its SAF sequence.
func (q *Queue) publishRepeat(ctx context.Context, a saf.ParkedAction) (uint64, error) {
	r := saf.RequeuedItem(a.Item)
	rb, err := json.Marshal(&r)
	if err != nil {
		return 0, fmt.Errorf("jsaf: requeue parked advice %d (%s %s): encode: %w", a.ID, r.MTI, r.RRN, err)
	}
	ack, err := q.node.Publish(ctx, Subject(r.Issuer), rb, requeueMsgID(a.ID))
	if err != nil {
		return 0, fmt.Errorf("jsaf: requeue parked advice %d (%s %s) to %s: %w", a.ID, r.MTI, r.RRN, Subject(r.Issuer), err)
	}
	return ack.Sequence, nil
}

// noteRequeued records, after the action's record (opSeq), that the repeat of the
// requeue a went (a.Requeued): a roll-forward (finish) then only deletes the parked
// copy, however late. A failure is logged: the node that delivers the repeat notes
// it before it leaves the queue (noteGone), and finish looks for it.
func (q *Queue) noteRequeued(ctx context.Context, a saf.ParkedAction, opSeq uint64) {
	_, err := q.note(ctx, a, opSeq)
	if err != nil && wrongLast(err) {
		if prev, _, lerr := q.lastOp(ctx, a.ID); lerr == nil && prev.Requeued == a.Requeued {
			return // noted first by the node that delivered it (noteGone)
		}
	}
	if err != nil {
		q.log.Warn().Err(err).Uint64("seq", a.ID).Uint64("requeued_seq", a.Requeued).
			Msg("store-and-forward: a parked advice's requeue went, and could not be noted as such in " + ParkedStreamName)
	}
}

// note publishes a as the record of its action after the record at opSeq (the
// subject's last), as JetStream checks, and returns its sequence.
func (q *Queue) note(ctx context.Context, a saf.ParkedAction, opSeq uint64) (uint64, error) {
	b, err := json.Marshal(&a)
	if err != nil {
		return 0, fmt.Errorf("jsaf: encode the %s of parked advice %d: %w", a.Action, a.ID, err)
	}
	ack, err := q.js.Publish(ctx, ParkedOpSubject(a.ID), b, jetstream.WithExpectLastSequencePerSubject(opSeq))
	if err != nil {
		return 0, fmt.Errorf("jsaf: record the %s of parked advice %d after sequence %d of %s: %w", a.Action, a.ID, opSeq, ParkedStreamName, err)
	}
	return ack.Sequence, nil
}

// wrongLast reports whether err is JetStream's refusal of a publish that expected
// another last sequence on its subject: another record came first.
func wrongLast(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// requeueOf returns the parked advice whose requeue published the SAF message with
// headers h (its Nats-Msg-Id is requeueMsgID), if it is such a repeat.
func requeueOf(h nats.Header) (uint64, bool) {
	id, ok := strings.CutPrefix(h.Get(jetstream.MsgIDHeader), "requeue:")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(id, 10, 64)
	return n, err == nil && n != 0
}

// noteGone notes, before the repeat of the requeue of the parked advice id leaves
// the SAF stream at seq (acknowledged by its issuer, or parked again), that the
// repeat went, unless its record says so already: a work queue keeps no trace of
// an acknowledged message, and past the stream's duplicate window nothing else would
// tell a roll-forward of a requeue left unfinished (finish) that the repeat went.
// Another record coming first (the requeue's own note, a roll-forward) is read again;
// a failure is logged, and the message still leaves the queue (kept, it would go to
// the issuer again for certain).
func (q *Queue) noteGone(id, seq uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*q.opts.PublishTimeout)
	defer cancel()
	var err error
	for range 3 {
		var prev saf.ParkedAction
		var m *jetstream.RawStreamMsg
		prev, m, err = q.lastOp(ctx, id)
		if errors.Is(err, jetstream.ErrMsgNotFound) || err == nil && (prev.Action != saf.ActionRequeue || prev.Requeued != 0) {
			return // noted already, or no record (expired: nothing left to roll forward)
		}
		if err != nil {
			break
		}
		prev.Requeued = seq
		if _, err = q.note(ctx, prev, m.Sequence); err == nil || !wrongLast(err) {
			break
		}
	}
	if err != nil {
		q.log.Error().Err(err).Uint64("seq", id).Uint64("requeued_seq", seq).
			Msg("store-and-forward: the repeat of a requeued parked advice leaves the queue, and could not be noted as gone in " + ParkedStreamName +
				"; if its requeue was left unfinished, the roll-forward will send it again")
	}
}

// deleteParked deletes the parked copy pseq of the parked advice id; a copy gone
// already is no error. A failure is logged: the advice stays listed until the next
// action or listing finishes its action (finish).
func (q *Queue) deleteParked(ctx context.Context, id, pseq uint64) bool {
	err := q.parked.DeleteMsg(ctx, pseq)
	if err == nil || errors.Is(err, jetstream.ErrMsgNotFound) {
		return true
	}
	q.log.Error().Err(err).Uint64("seq", id).Uint64("parked_seq", pseq).
		Msg("store-and-forward: a parked advice acted on could not be deleted from " + ParkedStreamName + "; the next action on it or listing deletes it")
	return false
}

// refuse is act's answer when the parked advice id (its copy at pseq) has an action
// recorded already: saf.ErrParkedConflict naming the first actor. When that action
// is older than staleAfter, it will not finish by itself, and refuse finishes it
// first (finish), saying so.
func (q *Queue) refuse(ctx context.Context, id, pseq uint64) error {
	prev, m, ok := q.parkedOp(ctx, id)
	if !ok {
		return fmt.Errorf("%w: parked advice %d is being acted on by another operator", saf.ErrParkedConflict, id)
	}
	if q.opts.Now().Sub(m.Time) < q.staleAfter() {
		return saf.AlreadyDone(id, prev) // in progress, on its node
	}
	done, err := q.finish(ctx, prev, m, pseq)
	if errors.Is(err, saf.ErrParkedConflict) {
		return fmt.Errorf("%w; it was left unfinished, and another node is completing it now", saf.AlreadyDone(id, prev))
	}
	if err != nil {
		return fmt.Errorf("%w; it was left unfinished, and finishing it failed: %w", saf.AlreadyDone(id, prev), err)
	}
	if done.Requeued != 0 {
		return fmt.Errorf("%w; it was left unfinished and is completed now (requeued as %d)", saf.AlreadyDone(id, prev), done.Requeued)
	}
	return fmt.Errorf("%w; it was left unfinished and is completed now", saf.AlreadyDone(id, prev))
}

// finish rolls forward the action prev, recorded at m and left unfinished, on the
// parked copy pseq: for a requeue whose repeat is not noted as gone (noteRequeued,
// noteGone), it looks for the repeat (findRepeat) and, found nowhere, publishes it
// once it has taken the roll-forward (a record of the same action after m, which
// JetStream grants to one of two nodes finishing at once); then it deletes the parked
// copy. It is idempotent whenever it runs: a repeat that went is either still in the
// SAF stream (found by its Nats-Msg-Id) or was noted before it left it (noteGone),
// so it is never published twice, within the SAF stream's duplicate window or past
// it.
func (q *Queue) finish(ctx context.Context, prev saf.ParkedAction, m *jetstream.RawStreamMsg, pseq uint64) (saf.ParkedAction, error) {
	if prev.Action == saf.ActionRequeue && prev.Requeued == 0 {
		seq, opSeq, err := q.findRepeat(ctx, prev, m.Sequence)
		if err != nil {
			return prev, err
		}
		if seq == 0 {
			// Taken by a record of the same action: the roll-forward's, whose age
			// staleAfter then counts (a node that dies before publishing leaves it
			// to the next roll-forward, which looks again).
			if opSeq, err = q.note(ctx, prev, opSeq); err != nil {
				if wrongLast(err) {
					return prev, fmt.Errorf("%w: parked advice %d: its unfinished %s is being finished by another operator", saf.ErrParkedConflict, prev.ID, prev.Action)
				}
				return prev, err
			}
			q.log.Warn().Uint64("seq", prev.ID).Str("issuer", prev.Item.Issuer).Str("rrn", prev.Item.RRN).Dur("recorded_ago", q.opts.Now().Sub(m.Time)).
				Msg("store-and-forward: an unfinished requeue's repeat is in the queue nowhere and was never noted as gone: published now")
			if seq, err = q.publishRepeat(ctx, prev); err != nil {
				return prev, err
			}
		}
		prev.Requeued = seq
		q.noteRequeued(ctx, prev, opSeq)
	}
	if !q.deleteParked(ctx, prev.ID, pseq) {
		return prev, fmt.Errorf("jsaf: delete parked advice %d (sequence %d of %s)", prev.ID, pseq, ParkedStreamName)
	}
	q.log.Warn().Str("action", prev.Action).Str("by", prev.By).Str("issuer", prev.Item.Issuer).Str("rrn", prev.Item.RRN).
		Uint64("seq", prev.ID).Uint64("requeued_seq", prev.Requeued).Msg("parked advice: an operator's " + prev.Action + " left unfinished is completed now")
	return prev, nil
}

// findRepeat looks for the repeat of the requeue a, whose last record is at opSeq:
// in the SAF stream (its Nats-Msg-Id), then, gone from it, in its record (noted by
// the node that delivered it before it left the queue: noteGone; read after the
// stream, so that a repeat acknowledged meanwhile is seen), then parked again since
// (the same advice, a later sequence; a repeat delivered by a release that did not
// note it). It returns the repeat's SAF sequence (0: found nowhere) and the sequence
// of the subject's last record.
func (q *Queue) findRepeat(ctx context.Context, a saf.ParkedAction, opSeq uint64) (uint64, uint64, error) {
	subj := Subject(a.Item.Issuer)
	for seq := uint64(1); ; {
		m, err := q.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return 0, opSeq, fmt.Errorf("jsaf: look for the repeat of parked advice %d in %s from sequence %d: %w", a.ID, subj, seq, err)
		}
		if m.Header.Get(jetstream.MsgIDHeader) == requeueMsgID(a.ID) {
			return m.Sequence, opSeq, nil
		}
		seq = m.Sequence + 1
	}
	last, lm, err := q.lastOp(ctx, a.ID)
	if err != nil {
		return 0, opSeq, fmt.Errorf("jsaf: look for the repeat of parked advice %d in its record: %w", a.ID, err)
	}
	if last.Requeued != 0 {
		return last.Requeued, lm.Sequence, nil
	}
	opSeq = lm.Sequence
	subj = ParkedSubject(a.Item.Issuer)
	for seq := uint64(1); ; {
		m, err := q.parked.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return 0, opSeq, nil
		}
		if err != nil {
			return 0, opSeq, fmt.Errorf("jsaf: look for the repeat of parked advice %d in %s from sequence %d: %w", a.ID, subj, seq, err)
		}
		var it saf.Item
		if json.Unmarshal(m.Data, &it) == nil && it.Seq > a.ID && it.MTI == a.Item.MTI && it.RRN == a.Item.RRN &&
			it.Created.Equal(a.Item.Created) {
			return it.Seq, opSeq, nil
		}
		seq = m.Sequence + 1
	}
}

// Actions lists the records of the actions done on parked advices, the whole
// cluster's, by ascending id, as f selects them: the last record of each advice's
// ParkedOpSubject (with Requeued once the repeat is noted as gone). The subjects
// come from one stream info (paged by the client), then one read per advice above
// f.After until f.Limit are selected. An advice whose last record is older than
// Options.ActionRetention is not listed (pruneActions purges it). An action still unfinished is listed as recorded (its parked copy is
// listed too, until the listing of the parked advices or the next action finishes
// it).
func (q *Queue) Actions(f saf.ActionFilter) ([]saf.ParkedAction, error) {
	if err := saf.CheckFilter(&f); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*q.opts.PublishTimeout)
	defer cancel()
	info, err := q.parked.Info(ctx, jetstream.WithSubjectFilter("safparkedop.>"))
	if err != nil {
		return nil, fmt.Errorf("jsaf: list the actions on parked advices: the subjects of %s: %w", ParkedStreamName, err)
	}
	ids := make([]uint64, 0, len(info.State.Subjects))
	for subj := range info.State.Subjects {
		if id, err := strconv.ParseUint(strings.TrimPrefix(subj, "safparkedop."), 10, 64); err == nil && id > f.After {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	out := []saf.ParkedAction{}
	for _, id := range ids {
		if len(out) == f.Limit {
			break
		}
		a, m, err := q.lastOp(ctx, id)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // purged since the info
		}
		if err != nil {
			return out, fmt.Errorf("jsaf: list the actions on parked advices: %w", err)
		}
		if f.Matches(a) && !q.expired(m) {
			out = append(out, a)
		}
	}
	return out, nil
}

// pruneActionsEvery is how often each node purges the actions' records past their
// retention (pruneDaily).
const pruneActionsEvery = 24 * time.Hour

// expired reports whether m, the last record of an action on a parked advice, is
// older than Options.ActionRetention.
func (q *Queue) expired(m *jetstream.RawStreamMsg) bool {
	return q.opts.Now().Sub(m.Time) > q.opts.ActionRetention
}

// pruneDaily purges the actions' records past their retention (pruneActions) now
// and every pruneActionsEvery, until the queue closes; after a failure (logged: a
// stream without a leader yet, at start) it tries again in an hour. Every node
// does: a purge is idempotent.
func (q *Queue) pruneDaily() {
	defer q.wg.Done()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-q.ctx.Done():
			return
		case <-t.C:
		}
		next := pruneActionsEvery
		if n, err := q.pruneActions(q.ctx); err != nil && q.ctx.Err() == nil {
			next = time.Hour
			q.log.Warn().Err(err).Int("purged", n).Msg("store-and-forward: the records of the actions on parked advices past their retention not all purged; trying again in an hour")
		} else if n > 0 {
			q.log.Info().Int("purged", n).Dur("retention", q.opts.ActionRetention).Msg("store-and-forward: records of actions on parked advices purged past their retention")
		}
		t.Reset(next)
	}
}

// pruneActions purges from ParkedStreamName the records of the actions on parked
// advices whose last record is older than Options.ActionRetention, every record of
// such an advice (its ParkedOpSubject), and returns how many advices' records it
// purged. A record so old has long been finished (the listing of the parked
// advices finishes an action left unfinished, staleAfter after it).
func (q *Queue) pruneActions(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*q.opts.PublishTimeout)
	defer cancel()
	info, err := q.parked.Info(ctx, jetstream.WithSubjectFilter("safparkedop.>"))
	if err != nil {
		return 0, fmt.Errorf("jsaf: prune the actions on parked advices: the subjects of %s: %w", ParkedStreamName, err)
	}
	n := 0
	for subj := range info.State.Subjects {
		id, err := strconv.ParseUint(strings.TrimPrefix(subj, "safparkedop."), 10, 64)
		if err != nil {
			continue
		}
		_, m, err := q.lastOp(ctx, id)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return n, fmt.Errorf("jsaf: prune the actions on parked advices: %w", err)
		}
		if !q.expired(m) {
			continue
		}
		if err := q.parked.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
			return n, fmt.Errorf("jsaf: prune the actions on parked advice %d: purge %s: %w", id, subj, err)
		}
		n++
	}
	return n, nil
}

// findParked returns the ParkedStreamName sequence and the item of the parked advice
// whose SAF sequence is id.
func (q *Queue) findParked(ctx context.Context, id uint64) (uint64, saf.Item, error) {
	for seq := uint64(1); ; {
		m, err := q.parked.GetMsg(ctx, seq, jetstream.WithGetMsgSubject("safparked.>"))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return 0, saf.Item{}, fmt.Errorf("%w: %d", saf.ErrParkedNotFound, id)
		}
		if err != nil {
			return 0, saf.Item{}, fmt.Errorf("jsaf: find parked advice %d from sequence %d: %w", id, seq, err)
		}
		var it saf.Item
		if json.Unmarshal(m.Data, &it) == nil && it.Seq == id {
			return m.Sequence, it, nil
		}
		seq = m.Sequence + 1
	}
}

// parkedOp returns the action recorded on the parked advice id, if any (the last
// record: noteRequeued's when the repeat was noted), and its stream message.
func (q *Queue) parkedOp(ctx context.Context, id uint64) (saf.ParkedAction, *jetstream.RawStreamMsg, bool) {
	a, m, err := q.lastOp(ctx, id)
	return a, m, err == nil
}

// lastOp returns the last record of an action on the parked advice id and its
// stream message; jetstream.ErrMsgNotFound when there is none.
func (q *Queue) lastOp(ctx context.Context, id uint64) (saf.ParkedAction, *jetstream.RawStreamMsg, error) {
	var a saf.ParkedAction
	m, err := q.parked.GetLastMsgForSubject(ctx, ParkedOpSubject(id))
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return a, nil, err
		}
		return a, nil, fmt.Errorf("jsaf: read the action on parked advice %d: %w", id, err)
	}
	if err := json.Unmarshal(m.Data, &a); err != nil {
		return a, nil, fmt.Errorf("jsaf: the action on parked advice %d at sequence %d of %s: %w", id, m.Sequence, ParkedStreamName, err)
	}
	return a, m, nil
}
