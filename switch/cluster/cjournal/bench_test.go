package cjournal

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/journal/wal"
)

// BenchmarkWrite journals transactions as the pipeline does (a durable write-ahead
// record that owns its duplicate key, a durable final version, a delivery mark) from
// 64 concurrent writers, on a 3-node loopback cluster (R3, the writer's server not
// necessarily the stream's leader) and on a single node (R1), with two ways of
// publishing:
//
//   - futures: Journal as it is (its grouper packs the writes into group messages;
//     before, each write published its own message and waited for its own
//     acknowledgement);
//   - committer: Journal's messages go through a wal.Committer that publishes each
//     batch of them asynchronously with one wait for the batch's acknowledgements.
//
// It reports transactions per second, the wait per transaction and the process's CPU
// per transaction (the whole cluster's: all servers run in this process).
//
//	go test -run '^$' -bench Write -benchtime 3000x ./switch/cluster/cjournal/
func BenchmarkWrite(b *testing.B) {
	for _, size := range []int{3, 1} {
		b.Run(fmt.Sprintf("R%d", size), func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			nc := startCluster(b, ctx, size)
			for _, mode := range []string{"futures", "committer", "local"} {
				if mode == "local" && size != 1 {
					continue
				}
				b.Run(mode, func(b *testing.B) {
					m := openMember(b, ctx, nc.nodes[0], 1, size, filepath.Join(b.TempDir(), "m"))
					stop := func() {}
					defer func() { m.close(b); stop() }() // the journal before its committer
					var w txnWriter = m.j
					switch mode {
					case "committer":
						stop = useCommitter(m.j)
					case "local":
						w = m.store
					}
					benchTxns(b, ctx, w)
				})
			}
		})
	}
}

// BenchmarkWriteSpread is BenchmarkWrite's R3/futures as a cluster of switches runs
// it: a member (journal, applier, local store) on each of the three nodes, the 64
// writers spread over the three, every member applying the other two's records,
// and the figure taken once all three have applied everything. Against
// R3/futures (one member, the other servers running no switch) it shows what the
// appliers and the other nodes' deliveries add: docs/cluster.md, "The floor".
//
//	go test -run '^$' -bench 'WriteSpread|Write/R3/futures' -benchtime 5000x ./switch/cluster/cjournal/
func BenchmarkWriteSpread(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	nc := startCluster(b, ctx, 3)
	var ms []*member
	var ws []txnWriter
	for i := range 3 {
		m := openMember(b, ctx, nc.nodes[i], i+1, 3, filepath.Join(b.TempDir(), fmt.Sprintf("m%d", i+1)))
		defer m.close(b)
		ms = append(ms, m)
		ws = append(ws, m.j)
	}
	cpu0 := cpuTime()
	benchTxnsOver(b, ctx, ws)
	waitApplied(b, ctx, cpu0, ms...)
}

// waitApplied waits until every member has applied and indexed all the stream
// holds, and reports the process's CPU per transaction since cpu0.
func waitApplied(b *testing.B, ctx context.Context, cpu0 time.Duration, ms ...*member) {
	b.StartTimer()
	for _, m := range ms {
		if err := m.j.CaughtUp(ctx); err != nil {
			b.Fatal(err)
		}
		for m.store.Unindexed() > 0 && ctx.Err() == nil {
			time.Sleep(time.Millisecond) // polling for the indexer, with the deadline
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "all-cpu-µs/txn")
}

// txnWriter is what a transaction writes to: the cluster journal, or the local store
// alone (the single node's figures, for comparison).
type txnWriter interface {
	NextRRN() (string, error)
	Write(ctx context.Context, rec *journal.Record, first, durable bool) error
	MarkDelivery(rrn string, delivered bool, at time.Time) error
}

var benchRuns atomic.Int64

// benchTxns runs b.N transactions over 64 writers.
func benchTxns(b *testing.B, ctx context.Context, m txnWriter) {
	benchTxnsOver(b, ctx, []txnWriter{m})
}

// benchTxnsOver runs b.N transactions over 64 writers, writer w writing to
// ms[w%len(ms)].
func benchTxnsOver(b *testing.B, ctx context.Context, ms []txnWriter) {
	const writers = 64
	run := benchRuns.Add(1) // b.N grows over runs on one stream: new duplicate keys each run
	var next atomic.Int64
	var wg sync.WaitGroup
	at := time.Now()
	cpu0 := cpuTime()
	b.ResetTimer()
	start := time.Now()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := next.Add(1)
				if k > int64(b.N) {
					return
				}
				if _, err := writeTxn(ctx, ms[w%len(ms)], fmt.Sprintf("B%d-%02d", run, w), fmt.Sprintf("%06d", k%1000000), at.Add(time.Duration(k)*time.Millisecond)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "txn/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/txn")
}

// cpuTime is the process's user and system time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// groupFuture is a publish handed to the benchmark's group committer.
type groupFuture struct {
	m   *nats.Msg
	ok  chan *jetstream.PubAck
	err chan error
}

func (g *groupFuture) Ok() <-chan *jetstream.PubAck { return g.ok }
func (g *groupFuture) Err() <-chan error            { return g.err }
func (g *groupFuture) Msg() *nats.Msg               { return g.m }

// useCommitter makes j publish through a group committer: each group's messages go
// out asynchronously and the committer waits for all their acknowledgements before
// it takes the next group. It returns the committer's Close.
func useCommitter(j *Journal) func() {
	c := wal.StartCommitter(wal.GroupOptions{MaxBatch: 256}, func(group []*groupFuture) {
		fs := make([]jetstream.PubAckFuture, len(group))
		for i, g := range group {
			f, err := j.js.PublishMsgAsync(g.m)
			if err != nil {
				g.err <- err
				continue
			}
			fs[i] = f
		}
		for i, g := range group {
			if fs[i] == nil {
				continue
			}
			select {
			case a := <-fs[i].Ok():
				g.ok <- a
			case err := <-fs[i].Err():
				g.err <- err
			}
		}
	})
	j.publishAsync = func(m *nats.Msg, _ ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
		g := &groupFuture{m: m, ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1)}
		return g, c.Submit(g)
	}
	return c.Close
}

// BenchmarkApplyLive measures what applying another node's transactions costs:
// node 2 journals b.N transactions (as BenchmarkWrite) on a standalone server while
// node 1 applies them live (messages trickling in, a position written after each
// burst), until node 1 has applied and indexed them all. The process's CPU per
// transaction covers node 2's writes, the server and node 1's applier: compare
// builds one after the other (the figure moves with the machine's load).
//
//	go test -run '^$' -bench ApplyLive -benchtime 5000x -count 4 ./switch/cluster/cjournal/
func BenchmarkApplyLive(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	nc := startCluster(b, ctx, 1)
	m1 := openMember(b, ctx, nc.nodes[0], 1, 1, filepath.Join(b.TempDir(), "m1"))
	defer m1.close(b)
	m2 := openMember(b, ctx, nc.nodes[0], 2, 1, filepath.Join(b.TempDir(), "m2"))
	defer m2.close(b)
	cpu0 := cpuTime()
	benchTxns(b, ctx, m2.j)
	waitApplied(b, ctx, cpu0, m1)
}
