package jsbench

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/internal/racedetect"
)

// TestSmoke starts a three-node cluster and uses every helper once, checking
// the behaviour the benchmarks and docs/cluster-measurements.md rely on: a
// duplicate publish is acknowledged as a duplicate of the first sequence, an
// atomic batch holding a duplicate id is refused whole, a duplicate KV Create
// fails with ErrKeyExists, a retried counter increment counts once, a stale
// compare-and-set fails with ErrKeyRevisionMismatch, and a change reaches a
// watcher on another node.
func TestSmoke(t *testing.T) {
	c := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Journal: a synchronous publish, a group, a duplicate.
	_, leader := c.stream(t, jetstream.StreamConfig{Name: "J", Subjects: []string{"j.>"}, Replicas: 3, Duplicates: 2 * time.Minute})
	js := c.js[c.follower(leader)]
	first, err := publishSync(ctx, js, "j.rec", journalRecord(1, 450), "t-1/wa")
	if err != nil {
		t.Fatal(err)
	}
	recs := [][]byte{journalRecord(2, 450), journalRecord(3, 450)}
	if err := publishGroup(ctx, js, "j.rec", recs, []string{"t-2/wa", "t-3/wa"}); err != nil {
		t.Fatal(err)
	}
	dup, err := publishSync(ctx, c.js[leader], "j.rec", journalRecord(1, 450), "t-1/wa")
	if err != nil {
		t.Fatalf("duplicate publish: %v", err)
	}
	if !dup.Duplicate || dup.Sequence != first.Sequence {
		t.Fatalf("duplicate publish acked %+v, want Duplicate of seq %d", dup, first.Sequence)
	}

	// An atomic batch commits with one ack; a duplicate id inside rejects
	// the whole batch. Not under the race detector: nats-server v2.15.2's apply of
	// an atomic batch races with itself there (batchStagedDiff.commit against
	// applyStreamMsgOp on a follower: seen once in a CI run on 6 December 2026),
	// which fails the test whatever it checks; the switch publishes no atomic
	// batches. The Makefile runs this test without the detector too.
	if racedetect.Enabled {
		t.Log("atomic batch step skipped under -race (a race inside nats-server v2.15.2's batch apply)")
	} else {
		c.stream(t, jetstream.StreamConfig{Name: "JB", Subjects: []string{"jb.>"}, Replicas: 3, AllowAtomicPublish: true, Duplicates: 2 * time.Minute})
		back, err := publishAtomicBatch(ctx, c.conns[0], "jb.rec", recs, []string{"b-1", "b-2"}, "batch1")
		if err != nil {
			t.Fatal(err)
		}
		if back.Sequence != 2 {
			t.Fatalf("batch commit acked %+v, want sequence 2", back)
		}
		if _, err := publishAtomicBatch(ctx, c.conns[0], "jb.rec", recs, []string{"b-3", "b-2"}, "batch2"); err == nil {
			t.Fatal("a batch with a duplicate id was accepted")
		} else {
			t.Logf("batch with a duplicate id: %v", err)
		}
	}

	// Duplicate filter in KV.
	kv := c.keyValue(t, jetstream.KeyValueConfig{Bucket: "dups", Replicas: 3, Storage: jetstream.FileStorage, LimitMarkerTTL: time.Minute})
	if _, err := createOnce(ctx, kv, "T0000001.000001", []byte("t-1"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := createOnce(ctx, kv, "T0000001.000001", []byte("t-1b"), time.Minute); !errors.Is(err, jetstream.ErrKeyExists) {
		t.Fatalf("duplicate create: %v, want ErrKeyExists", err)
	}

	// Counters: a retried increment counts once; the ack carries the total.
	c.stream(t, jetstream.StreamConfig{Name: "CTR", Subjects: []string{"ctr.>"}, Replicas: 3, AllowMsgCounter: true, AllowDirect: true})
	for range 2 {
		if _, err := increment(ctx, c.js[1], "ctr.card.abc", 1, "t-1/card"); err != nil {
			t.Fatal(err)
		}
	}
	v, err := increment(ctx, c.js[2], "ctr.card.abc", 1, "t-2/card")
	if err != nil {
		t.Fatal(err)
	}
	if v != "2" {
		t.Fatalf("counter after a retried and a new increment = %q, want 2", v)
	}
	if err := incrementGroup(ctx, c.js[0], []string{"ctr.card.abc", "ctr.term.T1"}, "t-3"); err != nil {
		t.Fatal(err)
	}

	// Observation stream folded on another node.
	c.stream(t, jetstream.StreamConfig{Name: "OBS", Subjects: []string{"obs.>"}, Replicas: 3, Duplicates: 2 * time.Minute})
	f, err := startFolder(ctx, c.js[2], "OBS")
	if err != nil {
		t.Fatal(err)
	}
	defer f.cons.Stop()
	for i := range 2 {
		if _, err := publishSync(ctx, c.js[0], "obs.auth", []byte(fmt.Sprintf("card1|T1|%d", i)), fmt.Sprintf("t-%d/obs", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.waitSeen(2, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if n := f.count("c:card1"); n != 2 {
		t.Fatalf("folded card count %d, want 2", n)
	}

	// Registry: compare-and-set and a watch on another node.
	reg := c.keyValue(t, jetstream.KeyValueConfig{Bucket: "reg", Replicas: 3, Storage: jetstream.FileStorage})
	rev, err := reg.Put(ctx, "terminal.T1", []byte(`{"state":"active"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := casUpdate(ctx, reg, "terminal.T1", []byte(`{"state":"blocked"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Update(ctx, "terminal.T1", []byte(`{"state":"x"}`), rev); !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		t.Fatalf("stale update: %v, want ErrKeyRevisionMismatch", err)
	}
	reg3, err := c.js[2].KeyValue(ctx, "reg")
	if err != nil {
		t.Fatal(err)
	}
	w, err := reg3.Watch(ctx, "terminal.>", jetstream.UpdatesOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	d, err := watchDelay(ctx, reg, w.Updates(), "terminal.T1", []byte(`{"state":"active"}`))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("put on node 1 seen by a watcher on node 3 after %s", d)
}
