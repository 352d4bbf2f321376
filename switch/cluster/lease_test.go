package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// threeNodeConfigs are the configurations of a 3-node loopback cluster, node
// numbers 1 to 3, R3.
func threeNodeConfigs(t *testing.T) []Config {
	t.Helper()
	ports := reservePorts(t, 3)
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	base := t.TempDir()
	cfgs := make([]Config, 3)
	for i := range cfgs {
		cfgs[i] = Config{Mode: ModeEmbedded, Node: i + 1, Replicas: 3, Embedded: Embedded{
			ServerName: fmt.Sprintf("n%d", i+1), StoreDir: filepath.Join(base, fmt.Sprintf("n%d", i+1)),
			ClientAddr: "127.0.0.1:0", ClusterName: "sy", ClusterAddr: fmt.Sprintf("127.0.0.1:%d", ports[i]), Routes: routes,
		}}
	}
	return cfgs
}

// startCluster starts the nodes of cfgs and waits for JetStream on each; the
// nodes left in the returned slice are closed at the test's end.
func startLeaseCluster(t *testing.T, ctx context.Context, cfgs []Config) []*Node {
	t.Helper()
	nodes := make([]*Node, len(cfgs))
	t.Cleanup(func() {
		for _, n := range nodes {
			if n != nil {
				n.Close()
			}
		}
	})
	for i := range cfgs {
		nodes[i] = startNode(t, ctx, cfgs[i])
	}
	for _, n := range nodes {
		if err := n.WaitJetStream(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return nodes
}

type deadCall struct {
	by, node int
	at       time.Time
}

// TestLeases: three nodes hold leases; node 3 stops and exactly one survivor
// recovers it, once, about TTL after its last refresh; node 3 restarting
// while that recovery runs waits for it, then serves under incarnation 2, and
// nobody recovers the live node. A node that restarts within its TTL (node 2
// here) claims its own previous incarnation, and nobody else recovers it.
func TestLeases(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cfgs := threeNodeConfigs(t)
	nodes := startLeaseCluster(t, ctx, cfgs)

	const ttl = 2 * time.Second
	calls := make(chan deadCall, 10)
	release := make(chan struct{})
	var releaseOnce sync.Once
	defer releaseOnce.Do(func() { close(release) })
	opts := func(by int) LeaseOptions {
		return LeaseOptions{Refresh: 250 * time.Millisecond, TTL: ttl, OnDead: func(ctx context.Context, node int) error {
			calls <- deadCall{by, node, time.Now()}
			select {
			case <-release: // the first recovery takes as long as the test says
			case <-ctx.Done():
			}
			return nil
		}}
	}
	leases := make([]*Lease, 3)
	defer func() {
		for _, l := range leases {
			if l != nil {
				l.Stop()
			}
		}
	}()
	for i, n := range nodes {
		l, err := n.StartLease(ctx, opts(i+1))
		if err != nil {
			t.Fatal(err)
		}
		if l.Incarnation() != 1 {
			t.Fatalf("node %d's first incarnation is %d", i+1, l.Incarnation())
		}
		leases[i] = l
	}
	waitHolders := func(l *Lease, want map[int]uint64) {
		t.Helper()
		for {
			got := map[int]uint64{}
			for _, h := range l.Holders() {
				if h.Alive {
					got[h.Node] = h.Incarnation
				}
			}
			if fmt.Sprint(got) == fmt.Sprint(want) {
				return
			}
			select {
			case <-ctx.Done():
				t.Fatalf("holders %+v, want alive %v", l.Holders(), want)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	for _, l := range leases {
		waitHolders(l, map[int]uint64{1: 1, 2: 1, 3: 1})
	}

	// Node 2 restarts its lease within the TTL: it claims its incarnation 1
	// itself; the survivors see incarnation 2 replace 1, no lapse.
	leases[1].Stop()
	l2, err := nodes[1].StartLease(ctx, opts(2))
	leases[1] = l2
	if err != nil || l2.Incarnation() != 2 {
		t.Fatalf("node 2's lease restarted: incarnation %v, %v; want 2", l2, err)
	}
	waitHolders(leases[0], map[int]uint64{1: 1, 2: 2, 3: 1})
	kv, err := nodes[0].LeaseKV(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(ctx, "recover.2.1")
	var c Claim
	if err != nil || json.Unmarshal(e.Value(), &c) != nil || c.By != 2 {
		t.Fatalf("node 2's own claim on its incarnation 1: %+v, %v", c, err)
	}

	if err := leases[2].Held(); err != nil {
		t.Fatalf("node 3's lease, refreshed: %v", err)
	}

	// Node 3 stops.
	if st, err := nodes[0].Status(ctx); err == nil {
		for _, b := range st.Buckets {
			t.Logf("bucket %s: leader %s", b.Name, b.Leader)
		}
	}
	l3 := leases[2]
	l3.Stop()
	leases[2] = nil
	stopped := time.Now()
	if err := nodes[2].Close(); err != nil {
		t.Fatal(err)
	}
	nodes[2] = nil
	var first deadCall
	select {
	case first = <-calls:
	case <-time.After(ttl + 5*time.Second):
		t.Fatalf("no survivor recovered node 3 within %v of its last refresh", ttl+5*time.Second)
	}
	if err := l3.Held(); err == nil || !strings.Contains(err.Error(), "node 3's lease not refreshed") {
		t.Fatalf("node 3's lease once recovered by another: %v", err)
	}
	took := first.at.Sub(stopped)
	t.Logf("node 3's recovery started %v after its last refresh (TTL %v), on node %d", took.Round(time.Millisecond), ttl, first.by)
	if first.node != 3 || first.by == 3 || took < ttl-300*time.Millisecond {
		t.Fatalf("first recovery %+v after %v; want node 3 by a survivor, no sooner than the TTL", first, took)
	}

	// Node 3 restarts while the survivor still recovers it: StartLease waits.
	nodes[2] = startNode(t, ctx, cfgs[2])
	if err := nodes[2].WaitJetStream(ctx); err != nil {
		t.Fatal(err)
	}
	type result struct {
		l   *Lease
		err error
	}
	res := make(chan result, 1)
	go func() {
		l, err := nodes[2].StartLease(ctx, opts(3))
		res <- result{l, err}
	}()
	select {
	case r := <-res:
		if r.l != nil {
			r.l.Stop()
		}
		t.Fatalf("node 3 took its lease back while node %d still recovered it: %v", first.by, r.err)
	case <-time.After(time.Second):
	}
	releaseOnce.Do(func() { close(release) })
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	leases[2] = r.l
	if r.l.Incarnation() != 2 {
		t.Fatalf("node 3 restarted as incarnation %d, want 2", r.l.Incarnation())
	}
	for _, l := range leases {
		waitHolders(l, map[int]uint64{1: 1, 2: 2, 3: 2})
	}
	if e, err := kv.Get(ctx, "recover.3.1"); err != nil || json.Unmarshal(e.Value(), &c) != nil || c.By != first.by || c.State != ClaimDone {
		t.Fatalf("claim on node 3's incarnation 1: %+v, %v; want done by node %d", c, err, first.by)
	}
	// No further recovery: not a second one of node 3's incarnation 1, none of
	// the live nodes, within two TTLs.
	select {
	case c := <-calls:
		t.Fatalf("a second recovery: %+v", c)
	case <-time.After(2 * ttl):
	}
	for _, h := range leases[0].Holders() {
		if h.Node == 3 && h.RecoveredBy != 0 {
			t.Errorf("the live incarnation of node 3 marked recovered: %+v", h)
		}
	}

	// The report `switchyard cluster status` prints.
	rep := nodes[0].Report(ctx, leases[0])
	if rep.Node != 1 || rep.NotReady != "" || rep.Status == nil || len(rep.Leases) != 3 || len(rep.Status.Buckets) != 1 ||
		rep.Status.Buckets[0].Name != LeaseBucket || rep.Status.Buckets[0].Replicas != 3 {
		t.Fatalf("report: %+v", rep)
	}
}

// TestLeaseOptions: the defaults, and the TTLs JetStream cannot keep (not
// whole seconds, under 1 s) or that a refresh cannot keep alive are refused.
func TestLeaseOptions(t *testing.T) {
	var o LeaseOptions
	if err := o.defaults(); err != nil || o.Refresh != time.Second || o.TTL != 5*time.Second || o.ClaimTTL != 24*time.Hour {
		t.Fatalf("defaults: %+v, %v", o, err)
	}
	for _, o := range []LeaseOptions{
		{TTL: 1500 * time.Millisecond},
		{TTL: 500 * time.Millisecond, Refresh: 100 * time.Millisecond},
		{TTL: 2 * time.Second, Refresh: 1500 * time.Millisecond},
		{Refresh: -time.Second},
		{ClaimTTL: time.Millisecond},
	} {
		if err := o.defaults(); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

// TestLeaseSweep: a lease whose delete marker never comes (here a node 7
// whose lease was put without a TTL, as if the survivor's watcher had missed
// the marker) is still found dead by the sweep, from the leader's timestamp
// of its last refresh, about TTL plus the grace after it; the sweep leaves
// this live node alone.
func TestLeaseSweep(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := Config{Mode: ModeEmbedded, Node: 1, Embedded: Embedded{ServerName: "solo", ClientAddr: "127.0.0.1:0"}}
	cfg.ApplyDefaults(t.TempDir())
	n := startNode(t, ctx, cfg)
	defer n.Close()
	if err := n.WaitJetStream(ctx); err != nil {
		t.Fatal(err)
	}
	calls := make(chan deadCall, 4)
	l, err := n.StartLease(ctx, LeaseOptions{Refresh: 250 * time.Millisecond, TTL: time.Second, OnDead: func(_ context.Context, node int) error {
		calls <- deadCall{1, node, time.Now()}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	kv, err := n.LeaseKV(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(LeaseValue{Node: 7, Server: "ghost", Incarnation: 3})
	if _, err := kv.Put(ctx, "node.7", b); err != nil {
		t.Fatal(err)
	}
	put := time.Now()
	select {
	case c := <-calls:
		took := c.at.Sub(put)
		t.Logf("node 7 found dead by the sweep %v after its only refresh (TTL 1s, grace %v)", took.Round(time.Millisecond), leaseGrace)
		if c.node != 7 || took < time.Second+leaseGrace {
			t.Fatalf("recovery %+v after %v; want node 7, after TTL + grace", c, took)
		}
	case <-ctx.Done():
		t.Fatal("the sweep never found node 7 dead")
	}
	if e, err := kv.Get(ctx, "recover.7.3"); err != nil {
		t.Fatalf("claim on node 7's incarnation 3: %v", err)
	} else if v := string(e.Value()); !strings.Contains(v, `"by":1`) {
		t.Fatalf("claim on node 7's incarnation 3: %s", v)
	}
	select {
	case c := <-calls:
		t.Fatalf("another recovery: %+v", c)
	case <-time.After(2 * time.Second):
	}
}
