package jsbench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// recSize is the journal record size the publishes use: the journal's
// record versions are 300-600 bytes.
const recSize = 450

var runID atomic.Int64 // keeps message ids unique across a benchmark's reruns

func nextID() int64 { return runID.Add(1) }

// BenchmarkPublish measures the journal's publish to an R1 and an R3 stream:
// synchronous (one ack wait per record) and asynchronous in groups of 1, 8
// and 64 with one wait for the group's acks. An op is one record; µs-p50/p99
// are per group (per record for sync). For R3 the publisher is connected to
// a node that does not lead the stream (two nodes in three are), and to the
// leader ("R3-leader"); "-fsync" servers fsync every write (SyncAlways), as
// the single-node journal does, where by default JetStream syncs every two
// minutes and counts on the replicas. "batchN" sends the groups as atomic
// batches (ADR-50: one request and one ack a group). "g8-par8" runs eight publishers at once, each in
// groups of 8, as concurrent transactions would.
func BenchmarkPublish(b *testing.B) {
	for _, setup := range []struct {
		name     string
		nodes    int
		atLeader bool
		fsync    bool
	}{{"R1", 1, true, false}, {"R3", 3, false, false}, {"R3-leader", 3, true, false}, {"R1-fsync", 1, true, true}, {"R3-fsync", 3, false, true}} {
		// One cluster per setup, stopped before the next starts.
		b.Run(setup.name, func(b *testing.B) {
			var opts []func(*server.Options)
			if setup.fsync {
				opts = append(opts, syncAlways)
			}
			c := startCluster(b, setup.nodes, opts...)
			_, leader := c.stream(b, jetstream.StreamConfig{Name: "J", Subjects: []string{"j.>"}, Replicas: setup.nodes})
			js := c.js[leader]
			if !setup.atLeader {
				js = c.js[c.follower(leader)]
			}
			rec := journalRecord(1, recSize)
			b.Run("sync", func(b *testing.B) {
				ctx := context.Background()
				m := startMeter(b)
				for range b.N {
					t0 := time.Now()
					if _, err := publishSync(ctx, js, "j.rec", rec, ""); err != nil {
						b.Fatal(err)
					}
					m.lat = append(m.lat, time.Since(t0))
				}
				m.report(b, b.N, "rec")
			})
			for _, g := range []int{1, 8, 64} {
				b.Run(fmt.Sprintf("g%d", g), func(b *testing.B) {
					benchGroups(b, js, rec, g, 1, nil)
				})
			}
			b.Run("g8-par8", func(b *testing.B) {
				benchGroups(b, js, rec, 8, 8, nil)
			})
			// The same groups as atomic batches (one ack a group), on a
			// stream of their own that allows them.
			_, bleader := c.stream(b, jetstream.StreamConfig{Name: "JB", Subjects: []string{"jb.>"}, Replicas: setup.nodes, AllowAtomicPublish: true})
			nc := c.conns[bleader]
			if !setup.atLeader {
				nc = c.conns[c.follower(bleader)]
			}
			var batches atomic.Int64
			batch := func(ctx context.Context, recs [][]byte) error {
				_, err := publishAtomicBatch(ctx, nc, "jb.rec", recs, nil, fmt.Sprintf("b%d", batches.Add(1)))
				return err
			}
			for _, g := range []int{8, 64} {
				b.Run(fmt.Sprintf("batch%d", g), func(b *testing.B) {
					benchGroups(b, js, rec, g, 1, batch)
				})
			}
			b.Run("batch8-par8", func(b *testing.B) {
				benchGroups(b, js, rec, 8, 8, batch)
			})
		})
	}
}

// benchGroups publishes b.N records in groups of g from par goroutines,
// with publishGroup or, when set, with send.
func benchGroups(b *testing.B, js jetstream.JetStream, rec []byte, g, par int, send func(context.Context, [][]byte) error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	recs := make([][]byte, g)
	for i := range recs {
		recs[i] = rec
	}
	groups := (b.N + g - 1) / g
	var next atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, par)
	m := startMeter(b)
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			for next.Add(1) <= int64(groups) {
				t0 := time.Now()
				var err error
				if send != nil {
					err = send(ctx, recs)
				} else {
					err = publishGroup(ctx, js, "j.rec", recs, nil)
				}
				if err != nil {
					errs <- err
					return
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			m.lat = append(m.lat, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	m.report(b, groups*g, "rec")
}

// BenchmarkDedup compares the two cluster-wide duplicate filters on R3
// (publisher on a non-leader node): the write-ahead record published with a
// Nats-Msg-Id (the stream's duplicate window does the filtering) against a
// KV Create with a per-key TTL. "-new" ops succeed; "-dup" ops repeat one id
// or key and measure what a resent request costs and gets back.
func BenchmarkDedup(b *testing.B) {
	c := startCluster(b, 3)
	_, leader := c.stream(b, jetstream.StreamConfig{Name: "J", Subjects: []string{"j.>"}, Replicas: 3, Duplicates: 2 * time.Minute})
	node := c.follower(leader)
	js := c.js[node]
	ctx := context.Background()
	c.keyValue(b, jetstream.KeyValueConfig{Bucket: "dups", Replicas: 3, Storage: jetstream.FileStorage, LimitMarkerTTL: time.Minute})
	kv, err := js.KeyValue(ctx, "dups")
	if err != nil {
		b.Fatal(err)
	}
	rec := journalRecord(1, recSize)
	syncOps := func(name string, op func(i int) error) {
		b.Run(name, func(b *testing.B) {
			m := startMeter(b)
			for i := range b.N {
				t0 := time.Now()
				if err := op(i); err != nil {
					b.Fatal(err)
				}
				m.lat = append(m.lat, time.Since(t0))
			}
			m.report(b, b.N, "op")
		})
	}
	syncOps("publish-noid", func(int) error {
		_, err := publishSync(ctx, js, "j.rec", rec, "")
		return err
	})
	syncOps("publish-msgid-new", func(int) error {
		_, err := publishSync(ctx, js, "j.rec", rec, fmt.Sprintf("t-%d/wa", nextID()))
		return err
	})
	if _, err := publishSync(ctx, js, "j.rec", rec, "t-dup/wa"); err != nil {
		b.Fatal(err)
	}
	syncOps("publish-msgid-dup", func(int) error {
		ack, err := publishSync(ctx, js, "j.rec", rec, "t-dup/wa")
		if err == nil && !ack.Duplicate {
			return fmt.Errorf("resent id acked as new: %+v", ack)
		}
		return err
	})
	val := []byte("t-000000000001")
	syncOps("kv-create-ttl-new", func(int) error {
		_, err := createOnce(ctx, kv, fmt.Sprintf("T%07d.%d", nextID()%2000, nextID()), val, time.Minute)
		return err
	})
	if _, err := createOnce(ctx, kv, "Tdup.1", val, time.Minute); err != nil {
		b.Fatal(err)
	}
	syncOps("kv-create-ttl-dup", func(int) error {
		_, err := createOnce(ctx, kv, "Tdup.1", val, time.Minute)
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("duplicate create: %v, want ErrKeyExists", err)
		}
		return nil
	})
	// The id's cost inside the journal's groups.
	for _, withID := range []bool{false, true} {
		name := "publish-g64-noid"
		if withID {
			name = "publish-g64-msgid"
		}
		b.Run(name, func(b *testing.B) {
			recs := make([][]byte, 64)
			for i := range recs {
				recs[i] = rec
			}
			groups := (b.N + 63) / 64
			m := startMeter(b)
			for range groups {
				var ids []string
				if withID {
					ids = make([]string, 64)
					for i := range ids {
						ids[i] = fmt.Sprintf("t-%d/wa", nextID())
					}
				}
				t0 := time.Now()
				if err := publishGroup(ctx, js, "j.rec", recs, ids); err != nil {
					b.Fatal(err)
				}
				m.lat = append(m.lat, time.Since(t0))
			}
			m.report(b, groups*64, "rec")
		})
	}
}

// counterSubjects are one authorization's counter keys: the standard rule
// set keeps 15 counters (card, terminal, merchant over several windows).
func counterSubjects(card, term int) []string {
	s := make([]string, 0, 15)
	for w := range 5 {
		s = append(s,
			fmt.Sprintf("ctr.card.%d.w%d", card, w),
			fmt.Sprintf("ctr.term.%d.w%d", term, w),
			fmt.Sprintf("ctr.merch.%d.w%d", term%50, w))
	}
	return s
}

// BenchmarkCounter compares the two ways of sharing velocity counters on
// R3 (client on a non-leader node): JetStream distributed counters (ADR-49,
// AllowMsgCounter), one increment per counter with a Nats-Msg-Id, against
// an observation stream (one message per authorization) that every node
// folds into its own memory with an ordered consumer.
//
//   - incr-sync: one increment, waited for (op = increment).
//   - incr-auth15: an authorization's 15 increments sent together, one wait
//     (op = authorization; µsCPU/auth is the whole cluster's).
//   - obs-g64: observations published in groups of 64 while three folders
//     (one per node) fold them; the op ends when all three have folded
//     everything (op = authorization).
//   - obs-fold-only: a new folder on one node folds the whole stream
//     (everything published so far), the op's CPU is per observation.
//   - obs-fold-delay: one observation published and waited for until the
//     folder on another node has it (latency = publish to remote fold).
func BenchmarkCounter(b *testing.B) {
	c := startCluster(b, 3)
	_, leader := c.stream(b, jetstream.StreamConfig{Name: "CTR", Subjects: []string{"ctr.>"}, Replicas: 3, AllowMsgCounter: true, AllowDirect: true, Duplicates: 2 * time.Minute})
	node := c.follower(leader)
	js := c.js[node]
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b.Run("incr-sync", func(b *testing.B) {
		m := startMeter(b)
		for i := range b.N {
			t0 := time.Now()
			id := nextID()
			if _, err := increment(ctx, js, fmt.Sprintf("ctr.card.%d.w0", id%10000), 1, fmt.Sprintf("t-%d/c%d", id, i)); err != nil {
				b.Fatal(err)
			}
			m.lat = append(m.lat, time.Since(t0))
		}
		m.report(b, b.N, "incr")
	})
	b.Run("incr-auth15", func(b *testing.B) {
		m := startMeter(b)
		for range b.N {
			id := nextID()
			t0 := time.Now()
			if err := incrementGroup(ctx, js, counterSubjects(int(id%10000), int(id%2000)), fmt.Sprintf("t-%d", id)); err != nil {
				b.Fatal(err)
			}
			m.lat = append(m.lat, time.Since(t0))
		}
		m.report(b, b.N, "auth")
	})

	// Observation stream, folded on all three nodes.
	_, oleader := c.stream(b, jetstream.StreamConfig{Name: "OBS", Subjects: []string{"obs.>"}, Replicas: 3, Duplicates: 2 * time.Minute})
	ojs := c.js[c.follower(oleader)]
	var folders []*folder
	for i := range c.js {
		f, err := startFolder(ctx, c.js[i], "OBS")
		if err != nil {
			b.Fatal(err)
		}
		defer f.cons.Stop()
		folders = append(folders, f)
	}
	var published int64
	b.Run("obs-g64", func(b *testing.B) {
		groups := (b.N + 63) / 64
		recs := make([][]byte, 64)
		ids := make([]string, 64)
		m := startMeter(b)
		for range groups {
			for i := range recs {
				id := nextID()
				recs[i] = fmt.Appendf(nil, "%d|T%07d|1234", id%10000, id%2000)
				ids[i] = fmt.Sprintf("t-%d/obs", id)
			}
			t0 := time.Now()
			if err := publishGroup(ctx, ojs, "obs.auth", recs, ids); err != nil {
				b.Fatal(err)
			}
			m.lat = append(m.lat, time.Since(t0))
		}
		published += int64(groups * 64)
		for _, f := range folders {
			if err := f.waitSeen(published, time.Minute); err != nil {
				b.Fatal(err)
			}
		}
		m.report(b, groups*64, "auth")
	})
	b.Run("obs-fold-only", func(b *testing.B) {
		// The observations are published first, outside the measured
		// window; a new folder on one node then folds all of them: one
		// node's cost of keeping the counters (op = authorization).
		b.StopTimer()
		recs := make([][]byte, 64)
		ids := make([]string, 64)
		for n := 0; n < b.N; n += 64 {
			for i := range recs {
				id := nextID()
				recs[i] = fmt.Appendf(nil, "%d|T%07d|1234", id%10000, id%2000)
				ids[i] = fmt.Sprintf("t-%d/obs", id)
			}
			if err := publishGroup(ctx, ojs, "obs.auth", recs[:min(64, b.N-n)], ids[:min(64, b.N-n)]); err != nil {
				b.Fatal(err)
			}
			published += int64(min(64, b.N-n))
		}
		for _, f := range folders {
			if err := f.waitSeen(published, time.Minute); err != nil {
				b.Fatal(err)
			}
		}
		m := startMeter(b)
		b.StartTimer()
		f, err := startFolder(ctx, c.js[c.follower(oleader)], "OBS")
		if err != nil {
			b.Fatal(err)
		}
		defer f.cons.Stop()
		if err := f.waitSeen(published, time.Minute); err != nil {
			b.Fatal(err)
		}
		m.report(b, int(published), "obs")
	})
	b.Run("obs-fold-delay", func(b *testing.B) {
		remote := folders[(c.follower(oleader)+1)%3]
		m := startMeter(b)
		for range b.N {
			id := nextID()
			t0 := time.Now()
			if _, err := publishSync(ctx, ojs, "obs.auth", fmt.Appendf(nil, "%d|T%07d|1234", id%10000, id%2000), fmt.Sprintf("t-%d/obs", id)); err != nil {
				b.Fatal(err)
			}
			published++
			if err := remote.waitSeen(published, 10*time.Second); err != nil {
				b.Fatal(err)
			}
			m.lat = append(m.lat, time.Since(t0))
		}
		for _, f := range folders {
			if err := f.waitSeen(published, time.Minute); err != nil {
				b.Fatal(err)
			}
		}
		m.report(b, b.N, "auth")
	})
}

// BenchmarkKV measures the registry's operations on an R3 bucket from a
// node that does not lead it: get (direct get, which followers may serve),
// put, compare-and-set (get then update on the revision read), and the delay
// from a put on that node to a watcher on another node.
func BenchmarkKV(b *testing.B) {
	c := startCluster(b, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c.keyValue(b, jetstream.KeyValueConfig{Bucket: "reg", Replicas: 3, Storage: jetstream.FileStorage})
	st, err := c.js[0].Stream(ctx, "KV_reg")
	if err != nil {
		b.Fatal(err)
	}
	leader := c.leaderOf(b, st)
	n1 := c.follower(leader)
	n3 := (n1 + 1) % 3
	if n3 == leader {
		n3 = (n3 + 1) % 3
	}
	kv, err := c.js[n1].KeyValue(ctx, "reg")
	if err != nil {
		b.Fatal(err)
	}
	val := []byte(`{"id":"T0000001","merchant":"M000000000123","state":"active","bound":"softpos","kcv":"A1B2C3","updated_by":"operator@demo","approved_by":"reviewer@demo","rev_note":"padding to a registry entry's usual size............................................"}`)
	for i := range 100 {
		if _, err := kv.Put(ctx, fmt.Sprintf("terminal.T%07d", i), val); err != nil {
			b.Fatal(err)
		}
	}
	ops := func(name string, op func(i int) error) {
		b.Run(name, func(b *testing.B) {
			m := startMeter(b)
			for i := range b.N {
				t0 := time.Now()
				if err := op(i); err != nil {
					b.Fatal(err)
				}
				m.lat = append(m.lat, time.Since(t0))
			}
			m.report(b, b.N, "op")
		})
	}
	ops("get", func(i int) error {
		_, err := kv.Get(ctx, fmt.Sprintf("terminal.T%07d", i%100))
		return err
	})
	ops("put", func(i int) error {
		_, err := kv.Put(ctx, fmt.Sprintf("terminal.T%07d", i%100), val)
		return err
	})
	ops("cas", func(i int) error {
		_, err := casUpdate(ctx, kv, fmt.Sprintf("terminal.T%07d", i%100), val)
		return err
	})
	kv3, err := c.js[n3].KeyValue(ctx, "reg")
	if err != nil {
		b.Fatal(err)
	}
	w, err := kv3.Watch(ctx, "terminal.>", jetstream.UpdatesOnly())
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	ops("watch-delay", func(i int) error {
		_, err := watchDelay(ctx, kv, w.Updates(), fmt.Sprintf("terminal.T%07d", i%100), val)
		return err
	})
}
