package cjournal

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/switchyard/switchyard/internal/freeport"
	"github.com/switchyard/switchyard/switch/cluster"
	"github.com/switchyard/switchyard/switch/journal"
)

// TestMain fails the package when a goroutine outlives its test: Close must join
// the applier and the resender.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testLogger(t testing.TB) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel)
}

// reservePorts learns n free loopback ports (as switch/cluster's tests do: the
// route ports of a JetStream cluster must be known before any node starts).
func reservePorts(t testing.TB, n int) []int {
	t.Helper()
	ports, err := freeport.Ports(n)
	if err != nil {
		t.Fatal(err)
	}
	return ports
}

// natsCluster is n embedded NATS servers clustered on loopback (n = 1: standalone).
type natsCluster struct {
	cfgs  []cluster.Config
	nodes []*cluster.Node
}

func startCluster(t testing.TB, ctx context.Context, n int) *natsCluster {
	t.Helper()
	base := t.TempDir()
	c := &natsCluster{cfgs: make([]cluster.Config, n), nodes: make([]*cluster.Node, n)}
	var routes []string
	var ports []int
	if n > 1 {
		ports = reservePorts(t, n)
		for _, p := range ports {
			routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
		}
	}
	for i := range c.cfgs {
		name := fmt.Sprintf("n%d", i+1)
		e := cluster.Embedded{ServerName: name, StoreDir: filepath.Join(base, name), ClientAddr: "127.0.0.1:0"}
		if n > 1 {
			e.ClusterName, e.ClusterAddr, e.Routes = "sy", fmt.Sprintf("127.0.0.1:%d", ports[i]), routes
		}
		c.cfgs[i] = cluster.Config{Mode: cluster.ModeEmbedded, Node: i + 1, Replicas: n, Embedded: e}
	}
	t.Cleanup(func() {
		for i := range c.nodes {
			c.stop(i)
		}
	})
	for i := range c.nodes {
		c.start(t, ctx, i)
	}
	for _, nd := range c.nodes {
		if err := nd.WaitJetStream(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func (c *natsCluster) start(t testing.TB, ctx context.Context, i int) {
	t.Helper()
	nd, err := cluster.Start(ctx, c.cfgs[i], cluster.Options{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatalf("start NATS server %d: %v", i+1, err)
	}
	c.nodes[i] = nd
}

func (c *natsCluster) stop(i int) {
	if c.nodes[i] != nil {
		c.nodes[i].Close()
		c.nodes[i] = nil
	}
}

// member is a switch node's journal: Badger, the local store and the cluster journal.
type member struct {
	num   int
	dir   string
	db    *badger.DB
	store *journal.Store
	j     *Journal

	mu       sync.Mutex
	remote   []string // RRNs OnRemote saw
	restored []string // RRNs OnRestored saw
	// beforeFlush, when set, answers BeforeFlush; flushes counts its calls.
	beforeFlush func() error
	flushes     int
	// hold, when set, is called (outside mu) by OnRemote before it notes the
	// record: a test holds the applier there.
	hold func()
}

// openMember opens node num's journal in dir on the NATS node nd.
// Each of tweak changes the options before Open.
func openMember(t testing.TB, ctx context.Context, nd *cluster.Node, num, replicas int, dir string, tweak ...func(*Options)) *member {
	t.Helper()
	m, err := tryOpenMember(t, ctx, nd, num, replicas, dir, tweak...)
	if err != nil {
		t.Fatalf("open the cluster journal of node %d: %v", num, err)
	}
	return m
}

// tryOpenMember is openMember returning Open's error (the store and Badger closed).
func tryOpenMember(t testing.TB, ctx context.Context, nd *cluster.Node, num, replicas int, dir string, tweak ...func(*Options)) (*member, error) {
	t.Helper()
	m := &member{num: num, dir: dir}
	var err error
	if m.db, err = badger.Open(badger.DefaultOptions(filepath.Join(dir, "badger")).WithLogger(nil).WithSyncWrites(false)); err != nil {
		t.Fatal(err)
	}
	if m.store, err = journal.Open(m.db, journal.Options{Dir: filepath.Join(dir, "journal"), RRNPrefix: strconv.Itoa(num), IndexDelay: 10 * time.Millisecond, IndexKSN: true}); err != nil {
		t.Fatal(err)
	}
	opts := Options{Node: num, Replicas: replicas, AckTimeout: 3 * time.Second, Logger: testLogger(t),
		OnRemote: func(rec, _ *journal.Record, _ Latest) {
			m.mu.Lock()
			hold := m.hold
			m.mu.Unlock()
			if hold != nil {
				hold()
			}
			m.mu.Lock()
			m.remote = append(m.remote, rec.RRN)
			m.mu.Unlock()
		},
		OnRestored: func(rec, _ *journal.Record, _ Latest) {
			m.mu.Lock()
			m.restored = append(m.restored, rec.RRN)
			m.mu.Unlock()
		},
		BeforeFlush: func() error {
			m.mu.Lock()
			defer m.mu.Unlock()
			m.flushes++
			if m.beforeFlush != nil {
				return m.beforeFlush()
			}
			return nil
		}}
	for _, f := range tweak {
		f(&opts)
	}
	m.j, err = Open(ctx, nd, m.store, m.db, opts)
	if err != nil {
		m.store.Close()
		m.db.Close()
		return nil, err
	}
	return m, nil
}

func (m *member) close(t testing.TB) {
	t.Helper()
	if m.j == nil {
		return
	}
	if err := m.j.Close(); err != nil {
		t.Error(err)
	}
	if err := m.store.Close(); err != nil {
		t.Error(err)
	}
	if err := m.db.Close(); err != nil {
		t.Error(err)
	}
	m.j = nil
}

// request is a purchase request record as the pipeline writes it first.
func request(rrn, tid, stan string, at time.Time) *journal.Record {
	r := &journal.Record{RRN: rrn, Received: at.UTC(), MTI: "0200", Type: "purchase", ProcCode: "000000", TID: tid,
		MID: "000000000000001", STAN: stan, DE7: at.UTC().Format("0102150405"), PANMasked: "476173******0119",
		CardHash: "abcd", Amount: 1000, Currency: "156", Issuer: "demo"}
	r.AddEvent(journal.StateReceived, at.UTC(), "")
	return r
}

// answer is the record's final version.
func answer(r *journal.Record, at time.Time) *journal.Record {
	c := *r
	c.Events = append([]journal.Event(nil), r.Events...)
	c.RC, c.AuthCode, c.DecidedBy = "00", "123456", "issuer"
	c.AddEvent(journal.StateAnswered, at.UTC(), "")
	return &c
}

// journalTxn journals a transaction as the pipeline does: the durable write-ahead
// record, then the durable final version, then the delivery mark.
func journalTxn(ctx context.Context, m *member, tid, stan string, at time.Time) (string, error) {
	return writeTxn(ctx, m.j, tid, stan, at)
}

func writeTxn(ctx context.Context, w txnWriter, tid, stan string, at time.Time) (string, error) {
	rrn, err := w.NextRRN()
	if err != nil {
		return "", err
	}
	req := request(rrn, tid, stan, at)
	if err := w.Write(ctx, req, true, true); err != nil {
		return rrn, err
	}
	if err := w.Write(ctx, answer(req, at.Add(time.Millisecond)), false, true); err != nil {
		return rrn, err
	}
	return rrn, w.MarkDelivery(rrn, true, at.Add(2*time.Millisecond))
}

// scanAll returns the RRNs of every record of m's local store, and fails on one
// seen twice.
func scanAll(t testing.TB, ctx context.Context, m *member) map[string]*journal.Record {
	t.Helper()
	got := map[string]*journal.Record{}
	err := m.j.Scan(ctx, journal.Query{}, func(r *journal.Record) bool {
		if got[r.RRN] != nil {
			t.Errorf("node %d: record %s scanned twice", m.num, r.RRN)
		}
		got[r.RRN] = r
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}
