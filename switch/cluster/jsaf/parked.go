package jsaf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/switch/saf"
)

// ParkedOpSubject is the subject, in ParkedStreamName, of the operator's action on
// the parked advice id (its SAF sequence): a saf.ParkedAction, at most one, which
// JetStream enforces (the record is published expecting the subject empty), so that
// of two operators acting on the same advice at once on two nodes exactly one wins.
// It stays in the stream as the record of who did what, when, and why. A requeue
// whose repeat was published adds a second record on the subject, the same action
// with Requeued set (noteRequeued): what a roll-forward (finish) reads to know that
// the repeat went.
func ParkedOpSubject(id uint64) string { return fmt.Sprintf("safparkedop.%d", id) }

// requeueMsgID is the Nats-Msg-Id of the repeat a requeue of the parked advice id
// publishes: derived from the action's record (its advice), so that the requeue
// and any roll-forward of it (finish) are stored once within the SAF stream's
// duplicate window (Options.Duplicates).
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
// the record's acknowledgement (PublishTimeout). It is well inside the SAF stream's
// duplicate window at the defaults (8 s of 2 min; 48 s in the switch, whose
// PublishTimeout is 12 s), so that a roll-forward soon after is dropped by the stream
// if the repeat went.
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
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
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
// copy, however late. A failure is logged: finish then looks for the repeat.
func (q *Queue) noteRequeued(ctx context.Context, a saf.ParkedAction, opSeq uint64) {
	b, err := json.Marshal(&a)
	if err == nil {
		_, err = q.js.Publish(ctx, ParkedOpSubject(a.ID), b, jetstream.WithExpectLastSequencePerSubject(opSeq))
	}
	if err != nil {
		q.log.Warn().Err(err).Uint64("seq", a.ID).Uint64("requeued_seq", a.Requeued).
			Msg("store-and-forward: a parked advice's requeue went, and could not be noted as such in " + ParkedStreamName)
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
	if err != nil {
		return fmt.Errorf("%w; it was left unfinished, and finishing it failed: %w", saf.AlreadyDone(id, prev), err)
	}
	if done.Requeued != 0 {
		return fmt.Errorf("%w; it was left unfinished and is completed now (requeued as %d)", saf.AlreadyDone(id, prev), done.Requeued)
	}
	return fmt.Errorf("%w; it was left unfinished and is completed now", saf.AlreadyDone(id, prev))
}

// finish rolls forward the action prev, recorded at m and left unfinished, on the
// parked copy pseq: for a requeue whose repeat is not noted as gone (noteRequeued),
// it publishes the repeat, then deletes the parked copy. It is idempotent: within
// the SAF stream's duplicate window (Options.Duplicates) from the record, a repeat
// that did go is dropped by the stream under its Nats-Msg-Id; past it (less a
// margin of PublishTimeout), the repeat is looked for first (findRepeat), in the
// queue and parked again, and published only when found in neither.
func (q *Queue) finish(ctx context.Context, prev saf.ParkedAction, m *jetstream.RawStreamMsg, pseq uint64) (saf.ParkedAction, error) {
	if prev.Action == saf.ActionRequeue && prev.Requeued == 0 {
		var seq uint64
		if q.opts.Now().Sub(m.Time) > q.opts.Duplicates-q.opts.PublishTimeout {
			var err error
			if seq, err = q.findRepeat(ctx, prev); err != nil {
				return prev, err
			}
			if seq == 0 {
				q.log.Warn().Uint64("seq", prev.ID).Str("issuer", prev.Item.Issuer).Str("rrn", prev.Item.RRN).Dur("recorded_ago", q.opts.Now().Sub(m.Time)).
					Msg("store-and-forward: an unfinished requeue is finished past the stream's duplicate window and its repeat is in the queue nowhere: published now (an issuer that had it already takes it as a duplicate)")
			}
		}
		if seq == 0 {
			var err error
			if seq, err = q.publishRepeat(ctx, prev); err != nil {
				return prev, err
			}
		}
		prev.Requeued = seq
		q.noteRequeued(ctx, prev, m.Sequence)
	}
	if !q.deleteParked(ctx, prev.ID, pseq) {
		return prev, fmt.Errorf("jsaf: delete parked advice %d (sequence %d of %s)", prev.ID, pseq, ParkedStreamName)
	}
	q.log.Warn().Str("action", prev.Action).Str("by", prev.By).Str("issuer", prev.Item.Issuer).Str("rrn", prev.Item.RRN).
		Uint64("seq", prev.ID).Uint64("requeued_seq", prev.Requeued).Msg("parked advice: an operator's " + prev.Action + " left unfinished is completed now")
	return prev, nil
}

// findRepeat returns the SAF sequence of the repeat of the requeue a when it is in
// the SAF stream (its Nats-Msg-Id) or parked again since (the same advice, a later
// sequence), else 0.
func (q *Queue) findRepeat(ctx context.Context, a saf.ParkedAction) (uint64, error) {
	subj := Subject(a.Item.Issuer)
	for seq := uint64(1); ; {
		m, err := q.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("jsaf: look for the repeat of parked advice %d in %s from sequence %d: %w", a.ID, subj, seq, err)
		}
		if m.Header.Get(jetstream.MsgIDHeader) == requeueMsgID(a.ID) {
			return m.Sequence, nil
		}
		seq = m.Sequence + 1
	}
	subj = ParkedSubject(a.Item.Issuer)
	for seq := uint64(1); ; {
		m, err := q.parked.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return 0, nil
		}
		if err != nil {
			return 0, fmt.Errorf("jsaf: look for the repeat of parked advice %d in %s from sequence %d: %w", a.ID, subj, seq, err)
		}
		var it saf.Item
		if json.Unmarshal(m.Data, &it) == nil && it.Seq > a.ID && it.MTI == a.Item.MTI && it.RRN == a.Item.RRN &&
			it.Created.Equal(a.Item.Created) {
			return it.Seq, nil
		}
		seq = m.Sequence + 1
	}
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
	var a saf.ParkedAction
	m, err := q.parked.GetLastMsgForSubject(ctx, ParkedOpSubject(id))
	if err != nil || json.Unmarshal(m.Data, &a) != nil {
		return a, nil, false
	}
	return a, m, true
}
