package jsaf

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/switchyard/switchyard/internal/freeport"
	"github.com/switchyard/switchyard/switch/cluster"
)

// TestMain fails the package when a goroutine outlives its test: Close must
// join the workers and the senders they started.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testLogger(t *testing.T) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
}

// standalone starts a single embedded JetStream server (R1 streams).
func standalone(t *testing.T, ctx context.Context) *cluster.Node {
	t.Helper()
	cfg := cluster.Config{Mode: cluster.ModeEmbedded, Node: 1, Embedded: cluster.Embedded{ServerName: "solo", ClientAddr: "127.0.0.1:0"}}
	cfg.ApplyDefaults(t.TempDir())
	n, err := cluster.Start(ctx, cfg, cluster.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	if err := n.WaitJetStream(ctx); err != nil {
		t.Fatal(err)
	}
	return n
}

// threeNodes starts an R3 cluster of three embedded servers on loopback, as
// switch/cluster's TestThreeNodes does, and waits for its meta leader. Closing
// a node is the test's business; Cleanup closes what is left.
func threeNodes(t *testing.T, ctx context.Context) []*cluster.Node {
	t.Helper()
	// Route ports must be known before any node starts (every node is started
	// with its peers' routes): freeport picks them outside the ephemeral range,
	// reserved from the other processes that use it.
	ports, err := freeport.Ports(3)
	if err != nil {
		t.Fatal(err)
	}
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	base := t.TempDir()
	nodes := make([]*cluster.Node, 3)
	t.Cleanup(func() {
		for _, n := range nodes {
			if n != nil {
				n.Close()
			}
		}
	})
	for i := range nodes {
		cfg := cluster.Config{Mode: cluster.ModeEmbedded, Node: i + 1, Replicas: 3, Embedded: cluster.Embedded{
			ServerName: fmt.Sprintf("n%d", i+1), StoreDir: filepath.Join(base, fmt.Sprintf("n%d", i+1)),
			ClientAddr: "127.0.0.1:0", ClusterName: "sy", ClusterAddr: fmt.Sprintf("127.0.0.1:%d", ports[i]), Routes: routes,
		}}
		n, err := cluster.Start(ctx, cfg, cluster.Options{Logger: testLogger(t)})
		if err != nil {
			t.Fatalf("start n%d: %v", i+1, err)
		}
		nodes[i] = n
	}
	for _, n := range nodes {
		if err := n.WaitJetStream(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return nodes
}

// openRetry opens a queue, retrying while a freshly formed cluster still
// refuses to create streams (no leader yet for the stream's Raft group).
func openRetry(t *testing.T, ctx context.Context, n *cluster.Node, opts Options) *Queue {
	t.Helper()
	var last error
	for ctx.Err() == nil {
		octx, cancel := context.WithTimeout(ctx, 3*time.Second)
		q, err := Open(octx, n, opts)
		cancel()
		if err == nil {
			t.Cleanup(func() { q.Close() })
			return q
		}
		last = err
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond): // a poll with the test's deadline
		}
	}
	t.Fatalf("open the queue on %s: %v", n.ServerName(), last)
	return nil
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
