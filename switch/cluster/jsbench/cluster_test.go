package jsbench

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/internal/freeport"
)

// cluster is n embedded JetStream servers in this process, clustered when
// n > 1, each with its own store directory, and one client connection per
// server (conns[i] talks to servers[i]).
type cluster struct {
	servers []*server.Server
	conns   []*nats.Conn
	js      []jetstream.JetStream
}

// freePorts picks n free loopback ports (freeport: outside the ephemeral range);
// the cluster's route URLs must be known before any server starts.
func freePorts(tb testing.TB, n int) []int {
	tb.Helper()
	ports, err := freeport.Ports(n)
	if err != nil {
		tb.Fatalf("reserve ports: %v", err)
	}
	return ports
}

// startCluster starts n servers (1 or 3) and waits until JetStream answers
// on every connection; everything is stopped by tb.Cleanup. opts adjust
// each server's options (syncAlways).
func startCluster(tb testing.TB, n int, opts ...func(*server.Options)) *cluster {
	tb.Helper()
	c := &cluster{}
	var routes []*url.URL
	var ports []int
	if n > 1 {
		ports = freePorts(tb, n)
		for _, p := range ports {
			routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", p)})
		}
	}
	for i := range n {
		o := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       -1,
			NoLog:      true,
			NoSigs:     true,
			JetStream:  true,
			StoreDir:   tb.TempDir(),
			// The journal's records are small; the default limits are fine.
		}
		if n > 1 {
			o.Cluster.Name = "jsbench"
			o.Cluster.Host = "127.0.0.1"
			o.Cluster.Port = ports[i]
			o.Routes = routes
		}
		for _, f := range opts {
			f(o)
		}
		s, err := server.NewServer(o)
		if err != nil {
			tb.Fatalf("server %d: %v", i+1, err)
		}
		go s.Start()
		c.servers = append(c.servers, s)
		tb.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	}
	for i, s := range c.servers {
		if !s.ReadyForConnections(10 * time.Second) {
			tb.Fatalf("server %d not ready in 10 s", i+1)
		}
		nc, err := nats.Connect(s.ClientURL(), nats.MaxReconnects(-1))
		if err != nil {
			tb.Fatalf("connect to server %d: %v", i+1, err)
		}
		tb.Cleanup(nc.Close)
		js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
		if err != nil {
			tb.Fatalf("jetstream on server %d: %v", i+1, err)
		}
		c.conns = append(c.conns, nc)
		c.js = append(c.js, js)
	}
	// JetStream answers account requests only once the meta group has a
	// leader (clustered) or the server is up (single).
	deadline := time.Now().Add(20 * time.Second)
	for i, js := range c.js {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err := js.AccountInfo(ctx)
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("JetStream on server %d not ready: %v", i+1, err)
			}
			time.Sleep(50 * time.Millisecond) // polling with a deadline
		}
	}
	return c
}

// syncAlways makes a server fsync every write to a stream's files, as the
// single-node journal does before it answers; by default JetStream syncs
// every 2 minutes and relies on the replicas for durability.
func syncAlways(o *server.Options) { o.SyncAlways = true }

// stream creates a file-storage stream with r replicas and returns the index
// of the server that leads it.
func (c *cluster) stream(tb testing.TB, cfg jetstream.StreamConfig) (jetstream.Stream, int) {
	tb.Helper()
	cfg.Replicas = min(cfg.Replicas, len(c.servers))
	cfg.Storage = jetstream.FileStorage
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		st, err := c.js[0].CreateStream(ctx, cfg)
		if err == nil {
			c.waitInterest(tb, ctx, cfg.Subjects)
			return st, c.leaderOf(tb, st)
		}
		// Right after the cluster formed, the meta leader may not count every peer
		// online yet: "no suitable peers for placement" (10005). Try again until the
		// deadline, as the switch does at its start (server.clusterNode.retry).
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) || apiErr.ErrorCode != 10005 || ctx.Err() != nil {
			tb.Fatalf("create stream %s: %v", cfg.Name, err)
		}
		time.Sleep(50 * time.Millisecond) // polling with a deadline
	}
}

// keyValue creates a KV bucket, trying again while the meta leader does not
// count every peer online ("no suitable peers for placement", 10005: right after
// the cluster formed, or a peer that missed a heartbeat on a loaded machine, as
// a CI run saw), as stream does.
func (c *cluster) keyValue(tb testing.TB, cfg jetstream.KeyValueConfig) jetstream.KeyValue {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		kv, err := c.js[0].CreateKeyValue(ctx, cfg)
		if err == nil {
			return kv
		}
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) || apiErr.ErrorCode != 10005 || ctx.Err() != nil {
			tb.Fatalf("create key-value bucket %s: %v", cfg.Bucket, err)
		}
		time.Sleep(50 * time.Millisecond) // polling with a deadline
	}
}

// waitInterest waits until every server routes the stream's subjects to it.
// CreateStream answers once the stream leader has it; a replica, or a server
// that only learns of it over a route, may take a moment more. Until then a
// core-NATS publish there (an atomic batch's records, a commit request) finds
// no subscriber: "no responders" (seen in CI on a loaded machine).
func (c *cluster) waitInterest(tb testing.TB, ctx context.Context, subjects []string) {
	tb.Helper()
	for _, subj := range subjects {
		// A literal subject the (possibly wildcard) filter matches.
		lit := strings.NewReplacer("*", "probe", ">", "probe").Replace(subj)
		for i, s := range c.servers {
			for !s.GlobalAccount().SubscriptionInterest(lit) {
				if ctx.Err() != nil {
					tb.Fatalf("server %d has no interest in %s after the stream was created: %v", i+1, lit, ctx.Err())
				}
				time.Sleep(10 * time.Millisecond) // polling with a deadline
			}
		}
	}
}

// leaderOf returns the index of the server leading the stream (0 when not
// clustered).
func (c *cluster) leaderOf(tb testing.TB, st jetstream.Stream) int {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := st.Info(ctx)
	if err != nil {
		tb.Fatalf("stream info: %v", err)
	}
	if info.Cluster == nil {
		return 0
	}
	for i, s := range c.servers {
		if s.Name() == info.Cluster.Leader {
			return i
		}
	}
	return 0
}

// follower returns a server index other than leader (the leader itself when
// there is a single server): the connection most nodes of a cluster have to
// a stream, whose leader sits on one node.
func (c *cluster) follower(leader int) int {
	if len(c.servers) == 1 {
		return 0
	}
	return (leader + 1) % len(c.servers)
}

// journalRecord returns a record of about size bytes shaped like a journal
// record version (JSON with masked PAN, amounts, codes, timestamps).
func journalRecord(seq, size int) []byte {
	b := fmt.Appendf(nil, `{"v":2,"id":"t-%012d","kind":"authorization","state":"answered","pan":"411111******1111","amount":"12.34","currency":"EUR","mti":"0100","stan":"%06d","rrn":"%012d","terminal":"T%07d","merchant":"M000000000123","rc":"00","decided_by":"issuer","at":"2026-12-01T22:00:00.000000Z","pad":"`, seq, seq%1000000, seq, seq%2000)
	for len(b) < size-2 {
		b = append(b, 'x')
	}
	return append(b, '"', '}')
}

// cpuTime is the process's user + system CPU time so far. All servers and
// clients run in this process, so a difference is the whole cluster's cost.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// meter measures a benchmark's window: wall time, CPU and latency samples.
type meter struct {
	start time.Time
	cpu0  time.Duration
	lat   []time.Duration
}

func startMeter(b *testing.B) *meter {
	b.ResetTimer()
	return &meter{start: time.Now(), cpu0: cpuTime()}
}

// report adds throughput, CPU per operation and latency percentiles to the
// benchmark's output; ops is the number of units (records, increments) the
// CPU is divided by, and the latency samples are per group or per operation.
func (m *meter) report(b *testing.B, ops int, unit string) {
	b.StopTimer()
	wall := time.Since(m.start)
	cpu := cpuTime() - m.cpu0
	if ops > 0 {
		b.ReportMetric(float64(ops)/wall.Seconds(), unit+"/s")
		b.ReportMetric(float64(cpu.Microseconds())/float64(ops), "µsCPU/"+unit)
	}
	if len(m.lat) > 0 {
		p50, p99 := percentiles(m.lat)
		b.ReportMetric(float64(p50.Microseconds()), "µs-p50")
		b.ReportMetric(float64(p99.Microseconds()), "µs-p99")
	}
}

// percentiles returns the 50th and 99th percentiles of d (sorted in place).
func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	if len(d) == 0 {
		return 0, 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)*50/100], d[min(len(d)-1, len(d)*99/100)]
}
