package jsbench

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The operations measured, each usable once by TestSmoke and in a loop by
// the benchmarks.

// publishSync publishes one record and waits for its ack; id, when set, is
// the Nats-Msg-Id the stream deduplicates on.
func publishSync(ctx context.Context, js jetstream.JetStream, subj string, rec []byte, id string) (*jetstream.PubAck, error) {
	if id != "" {
		return js.Publish(ctx, subj, rec, jetstream.WithMsgID(id))
	}
	return js.Publish(ctx, subj, rec)
}

// publishGroup publishes recs asynchronously and then waits once for all of
// their acks: the journal's group commit on JetStream. ids, when not nil,
// are the records' Nats-Msg-Ids.
func publishGroup(ctx context.Context, js jetstream.JetStream, subj string, recs [][]byte, ids []string) error {
	futs := make([]jetstream.PubAckFuture, len(recs))
	for i, rec := range recs {
		var opts []jetstream.PublishOpt
		if ids != nil {
			opts = append(opts, jetstream.WithMsgID(ids[i]))
		}
		f, err := js.PublishAsync(subj, rec, opts...)
		if err != nil {
			return fmt.Errorf("publish %d of %d to %s: %w", i+1, len(recs), subj, err)
		}
		futs[i] = f
	}
	for i, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("ack %d of %d on %s: %w", i+1, len(recs), subj, err)
		case <-ctx.Done():
			return fmt.Errorf("ack %d of %d on %s: %w", i+1, len(recs), subj, ctx.Err())
		}
	}
	return nil
}

// createOnce claims key in a duplicate-filter bucket (KV Create with a
// per-key TTL). A duplicate returns jetstream.ErrKeyExists.
func createOnce(ctx context.Context, kv jetstream.KeyValue, key string, val []byte, ttl time.Duration) (uint64, error) {
	return kv.Create(ctx, key, val, jetstream.KeyTTL(ttl))
}

// increment adds incr to the distributed counter on subj (ADR-49), with id
// as Nats-Msg-Id so that a retried increment counts once; it returns the
// counter's total after the increment, as the ack reports it.
func increment(ctx context.Context, js jetstream.JetStream, subj string, incr int, id string) (string, error) {
	m := nats.NewMsg(subj)
	m.Header.Set("Nats-Incr", fmt.Sprintf("%+d", incr))
	if id != "" {
		m.Header.Set(jetstream.MsgIDHeader, id)
	}
	ack, err := js.PublishMsg(ctx, m)
	if err != nil {
		return "", fmt.Errorf("increment %s: %w", subj, err)
	}
	return ack.Value, nil
}

// incrementGroup sends one authorization's increments asynchronously and
// waits once for their acks.
func incrementGroup(ctx context.Context, js jetstream.JetStream, subjs []string, id string) error {
	futs := make([]jetstream.PubAckFuture, len(subjs))
	for i, subj := range subjs {
		m := nats.NewMsg(subj)
		m.Header.Set("Nats-Incr", "+1")
		m.Header.Set(jetstream.MsgIDHeader, id+"/"+subj)
		f, err := js.PublishMsgAsync(m)
		if err != nil {
			return fmt.Errorf("increment %s: %w", subj, err)
		}
		futs[i] = f
	}
	for i, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("increment %s: %w", subjs[i], err)
		case <-ctx.Done():
			return fmt.Errorf("increment %s: %w", subjs[i], ctx.Err())
		}
	}
	return nil
}

// folder is one node's view of an observation stream: an ordered consumer
// that folds every observation ("card|terminal|amount") into per-key counts
// in memory, as a node's velocity counters would.
type folder struct {
	mu     sync.Mutex
	counts map[string]int
	seen   atomic.Int64
	cons   jetstream.ConsumeContext
	notify chan struct{} // receives after every message, never blocks
}

// startFolder starts folding stream on js from its first message.
func startFolder(ctx context.Context, js jetstream.JetStream, stream string) (*folder, error) {
	oc, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, fmt.Errorf("ordered consumer on %s: %w", stream, err)
	}
	f := &folder{counts: map[string]int{}, notify: make(chan struct{}, 1)}
	f.cons, err = oc.Consume(func(m jetstream.Msg) {
		card, rest, _ := strings.Cut(string(m.Data()), "|")
		term, _, _ := strings.Cut(rest, "|")
		f.mu.Lock()
		f.counts["c:"+card]++
		f.counts["t:"+term]++
		f.mu.Unlock()
		f.seen.Add(1)
		select {
		case f.notify <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return nil, fmt.Errorf("consume %s: %w", stream, err)
	}
	return f, nil
}

// waitSeen waits until the folder has folded n observations.
func (f *folder) waitSeen(n int64, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for f.seen.Load() < n {
		select {
		case <-f.notify:
		case <-deadline.C:
			return fmt.Errorf("folded %d of %d observations in %s", f.seen.Load(), n, timeout)
		}
	}
	return nil
}

func (f *folder) count(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[key]
}

// watchDelay puts key on one node's bucket handle and returns how long the
// change took to reach a watcher on another node; updates is that watcher's
// channel, already past its initial values.
func watchDelay(ctx context.Context, kv jetstream.KeyValue, updates <-chan jetstream.KeyValueEntry, key string, val []byte) (time.Duration, error) {
	start := time.Now()
	rev, err := kv.Put(ctx, key, val)
	if err != nil {
		return 0, fmt.Errorf("put %s: %w", key, err)
	}
	for {
		select {
		case e := <-updates:
			if e != nil && e.Key() == key && e.Revision() >= rev {
				return time.Since(start), nil
			}
		case <-ctx.Done():
			return 0, fmt.Errorf("watch of %s rev %d: %w", key, rev, ctx.Err())
		}
	}
}

// casUpdate reads key and writes it back with a compare-and-set on the
// revision read; a change in between fails with
// jetstream.ErrKeyRevisionMismatch.
func casUpdate(ctx context.Context, kv jetstream.KeyValue, key string, val []byte) (uint64, error) {
	e, err := kv.Get(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("get %s: %w", key, err)
	}
	return kv.Update(ctx, key, val, e.Revision())
}

// publishAtomicBatch publishes recs as one atomic batch (ADR-50, stream
// config AllowAtomicPublish): the records go without a reply, the last one
// carries Nats-Batch-Commit and is the only request, so a group costs one
// ack. The batch is all or nothing: a record whose Nats-Msg-Id is a
// duplicate makes the server reject the whole batch.
func publishAtomicBatch(ctx context.Context, nc *nats.Conn, subj string, recs [][]byte, ids []string, batchID string) (*jetstream.PubAck, error) {
	for i, rec := range recs {
		m := nats.NewMsg(subj)
		m.Data = rec
		m.Header.Set("Nats-Batch-Id", batchID)
		m.Header.Set("Nats-Batch-Sequence", strconv.Itoa(i+1))
		if ids != nil {
			m.Header.Set(jetstream.MsgIDHeader, ids[i])
		}
		if i < len(recs)-1 {
			if err := nc.PublishMsg(m); err != nil {
				return nil, fmt.Errorf("batch %s record %d: %w", batchID, i+1, err)
			}
			continue
		}
		m.Header.Set("Nats-Batch-Commit", "1")
		resp, err := nc.RequestMsgWithContext(ctx, m)
		if err != nil {
			return nil, fmt.Errorf("batch %s commit: %w", batchID, err)
		}
		var ack struct {
			jetstream.PubAck
			Error *jetstream.APIError `json:"error,omitempty"`
		}
		if err := json.Unmarshal(resp.Data, &ack); err != nil {
			return nil, fmt.Errorf("batch %s commit answer %q: %w", batchID, resp.Data, err)
		}
		if ack.Error != nil {
			return nil, fmt.Errorf("batch %s: %w", batchID, ack.Error)
		}
		return &ack.PubAck, nil
	}
	return nil, fmt.Errorf("batch %s: no records", batchID)
}
