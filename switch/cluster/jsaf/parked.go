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
// It stays in the stream as the record of who did what, when, and why.
func ParkedOpSubject(id uint64) string { return fmt.Sprintf("safparkedop.%d", id) }

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

// act does a on its parked advice, from any node: it records the action first on
// ParkedOpSubject (the claim: a second one fails, saf.ErrParkedConflict), then, for
// a requeue, publishes the repeat to the SAF stream (Nats-Msg-Id requeue:<id>: stored
// once), and last deletes the parked copy. A requeue that cannot be published takes
// its record back, so that the action may be tried again.
func (q *Queue) act(a saf.ParkedAction) (saf.ParkedAction, error) {
	if err := saf.CheckAction(&a); err != nil {
		return a, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*q.opts.PublishTimeout)
	defer cancel()
	pseq, it, err := q.findParked(ctx, a.ID)
	if errors.Is(err, saf.ErrParkedNotFound) {
		if prev, ok := q.parkedOp(ctx, a.ID); ok {
			return a, saf.AlreadyDone(a.ID, prev)
		}
	}
	if err != nil {
		return a, err
	}
	a.Item, a.At = it, time.Now().UTC()
	b, err := json.Marshal(&a)
	if err != nil {
		return a, fmt.Errorf("jsaf: encode the %s of parked advice %d: %w", a.Action, a.ID, err)
	}
	if _, err := q.js.Publish(ctx, ParkedOpSubject(a.ID), b, jetstream.WithExpectLastSequencePerSubject(0)); err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
			if prev, ok := q.parkedOp(ctx, a.ID); ok {
				return a, saf.AlreadyDone(a.ID, prev)
			}
			return a, fmt.Errorf("%w: parked advice %d is being acted on by another operator", saf.ErrParkedConflict, a.ID)
		}
		return a, fmt.Errorf("jsaf: %s parked advice %d: record the action in %s: %w", a.Action, a.ID, ParkedStreamName, err)
	}
	if a.Action == saf.ActionRequeue {
		r := saf.RequeuedItem(it)
		rb, err := json.Marshal(&r)
		var ack *jetstream.PubAck
		if err == nil {
			ack, err = q.node.Publish(ctx, Subject(r.Issuer), rb, fmt.Sprintf("requeue:%d", a.ID))
		}
		if err != nil {
			if perr := q.parked.Purge(ctx, jetstream.WithPurgeSubject(ParkedOpSubject(a.ID))); perr != nil {
				q.log.Error().Err(perr).Uint64("seq", a.ID).Msg("store-and-forward: the record of a failed requeue could not be taken back; the parked advice is refused further actions")
			}
			return a, fmt.Errorf("jsaf: requeue parked advice %d (%s %s) to %s: %w", a.ID, it.MTI, it.RRN, Subject(r.Issuer), err)
		}
		a.Requeued = ack.Sequence
	}
	if err := q.parked.DeleteMsg(ctx, pseq); err != nil {
		// Done and recorded: listed still, and any further action refused with this one's name.
		q.log.Error().Err(err).Uint64("seq", a.ID).Uint64("parked_seq", pseq).
			Msg("store-and-forward: a parked advice acted on could not be deleted from " + ParkedStreamName)
	}
	q.log.Warn().Str("action", a.Action).Str("by", a.By).Str("issuer", it.Issuer).Str("mti", it.MTI).Str("rrn", it.RRN).
		Uint64("seq", a.ID).Uint64("requeued_seq", a.Requeued).Msg("parked advice " + a.Action + "d by an operator")
	return a, nil
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

// parkedOp returns the action recorded on the parked advice id, if any.
func (q *Queue) parkedOp(ctx context.Context, id uint64) (saf.ParkedAction, bool) {
	var a saf.ParkedAction
	m, err := q.parked.GetLastMsgForSubject(ctx, ParkedOpSubject(id))
	if err != nil || json.Unmarshal(m.Data, &a) != nil {
		return a, false
	}
	return a, true
}
