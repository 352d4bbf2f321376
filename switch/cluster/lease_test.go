package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	_ "unsafe" // go:linkname, to stop a server's Raft nodes the way a kill does

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/cluster/ordered"
)

// threeNodeConfigs are the configurations of a 3-node loopback cluster, node
// numbers 1 to 3, R3.
func threeNodeConfigs(t *testing.T) []Config { return nodeConfigs(t, 3) }

// nodeConfigs are the configurations of an n-node loopback cluster, node numbers
// 1 to n, R3.
func nodeConfigs(t *testing.T, n int) []Config {
	t.Helper()
	ports := reservePorts(t, n)
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	base := t.TempDir()
	cfgs := make([]Config, n)
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
	leases, stop := startLeases(t, ctx, nodes, opts)
	defer stop()
	for i, l := range leases {
		if l.Incarnation() != 1 {
			t.Fatalf("node %d's first incarnation is %d", i+1, l.Incarnation())
		}
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
	// The survivor that lost the claim reports who recovers node 3 (it read "-").
	loser := 3 - first.by // the survivors are nodes 1 and 2
	recoveredBy := func() int {
		for _, h := range nodes[loser-1].Report(ctx, leases[loser-1]).Leases {
			if h.Node == 3 && !h.Alive {
				return h.RecoveredBy
			}
		}
		return -1 // not seen lapsed yet
	}
	// The loser learns of the lapse from its watcher or its sweep; a sweep judges a
	// lapse only after its own refreshes have succeeded for TTL + 1 s, which on a
	// loaded machine (a CI run of every package at once: not seen within 7 s, once)
	// takes longer.
	for deadline := time.Now().Add(ttl + 15*time.Second); recoveredBy() != first.by; {
		if time.Now().After(deadline) {
			t.Fatalf("node %d reports node 3 recovered by %d, want node %d", loser, recoveredBy(), first.by)
		}
		time.Sleep(50 * time.Millisecond)
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
// whole seconds, under 1 s), over MaxLeaseTTL, or that a refresh cannot keep
// alive are refused.
func TestLeaseOptions(t *testing.T) {
	var o LeaseOptions
	if err := o.defaults(); err != nil || o.Refresh != time.Second || o.TTL != 5*time.Second || o.ClaimTTL != 24*time.Hour {
		t.Fatalf("defaults: %+v, %v", o, err)
	}
	for _, o := range []LeaseOptions{
		{TTL: 1500 * time.Millisecond},
		{TTL: 500 * time.Millisecond, Refresh: 100 * time.Millisecond},
		{TTL: 2 * time.Second, Refresh: 1500 * time.Millisecond},
		{TTL: MaxLeaseTTL + time.Second},
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
	n := startSolo(t, ctx)
	defer n.Close()
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
	b, _ := json.Marshal(LeaseValue{Node: 7, Server: "ghost", Incarnation: 3, TTLSeconds: 1})
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

// TestLeaseLapseGuard: a lapse seen while this node's own refreshes fail (in
// the field: the bucket has no leader, and every node's refreshes fail alike)
// is not judged, nor until TTL plus the grace after they succeed again; the
// node so set aside is judged by the sweep as soon as that is over, not a
// whole TTL plus grace later (the sweep used to mark a stale lease it read
// during the guard as heard). Node 7's lease is put once without a TTL, so
// that only the sweep can find it dead.
func TestLeaseLapseGuard(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := startSolo(t, ctx)
	defer n.Close()
	const ttl = 3 * time.Second
	calls := make(chan deadCall, 4)
	l, err := n.StartLease(ctx, LeaseOptions{Refresh: 250 * time.Millisecond, TTL: ttl, OnDead: func(_ context.Context, node int) error {
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
	b, _ := json.Marshal(LeaseValue{Node: 7, Server: "ghost", Incarnation: 3, TTLSeconds: int(ttl / time.Second)})
	if _, err := kv.Put(ctx, "node.7", b); err != nil {
		t.Fatal(err)
	}
	for alive := false; !alive; {
		for _, h := range l.Holders() {
			alive = alive || h.Node == 7 && h.Alive
		}
		select {
		case <-ctx.Done():
			t.Fatalf("node 7's lease never seen: %+v", l.Holders())
		case <-time.After(10 * time.Millisecond):
		}
	}
	seen := time.Now()

	// Node 7 has been silent for a while (half a second: longer than a sweep
	// period, so that its silence reaches TTL plus the grace while the guard
	// below still holds) when this node's refresh fails; node 7's marker
	// comes right then.
	select {
	case <-time.After(500*time.Millisecond - time.Since(seen)):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	dead, cancelDead := context.WithCancel(ctx)
	cancelDead()
	failed := time.Now()
	if err := l.refresh(dead); err == nil {
		t.Fatal("a refresh with its context over succeeded")
	}
	d := &deaths{running: map[int]chan struct{}{}}
	defer d.calls.Wait()
	l.lapsed(ctx, d, 7, "its lease's delete marker")
	for _, h := range l.Holders() {
		if h.Node == 7 && (!h.Alive || len(d.running) != 0) {
			t.Fatalf("node 7's lapse, seen right after this node's own refresh failed, was judged: %+v", h)
		}
	}

	select {
	case c := <-calls:
		took := c.at.Sub(failed)
		t.Logf("node 7 found dead by the sweep %v after this node's refresh failed (TTL %v, grace %v, refresh 250ms)", took.Round(time.Millisecond), ttl, leaseGrace)
		if limit := ttl + leaseGrace + 2*time.Second; c.node != 7 || took < ttl+leaseGrace || took > limit {
			t.Fatalf("recovery %+v after %v; want node 7, TTL + grace after this node's refreshes succeeded again, no later than %v",
				c, took, limit)
		}
	case <-ctx.Done():
		t.Fatal("the sweep never found node 7 dead")
	}
}

// stopRaftNodes stops every Raft node of s without stepping down its leaders.
// Server.Shutdown steps them down first (a leader hands over to a current
// follower at once), so a closed server never leaves a group without a
// leader; a killed one (kill -9, a crash, a pulled cable) does, and its
// followers elect a new one only after their election timeout (4 to 9 s).
// Stopping the Raft nodes before Shutdown is that kill, as the Raft groups
// see it; nats-server exports no way to do it.
//
//go:linkname stopRaftNodes github.com/nats-io/nats-server/v2/server.(*Server).shutdownRaftNodes
func stopRaftNodes(s *server.Server)

// killNode stops n's lease and its server the way kill -9 does: no refresh,
// no lease removed, no Raft leadership handed over.
func killNode(t *testing.T, n *Node, l *Lease) {
	t.Helper()
	stopRaftNodes(n.srv)
	l.Stop()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestLeaseBucketLeaderKilled: the node whose server leads the leases bucket
// is killed. The bucket has no leader until the survivors' election timeout
// (4 to 9 s, longer than the TTL), during which nobody's refresh is stored,
// the live nodes' included; when the new leader expires their silent leases,
// the survivors must not take those lapses for deaths. Exactly the killed
// node is recovered, once, and no live node is, within 2 TTLs after.
func TestLeaseBucketLeaderKilled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	nodes := startLeaseCluster(t, ctx, threeNodeConfigs(t))

	// A refresh period of half the TTL, as long as allowed: the later a live
	// node's first refresh after the election lands, the likelier the old code
	// took its lapse (the new leader's marker, or the sweep's read of the
	// leader) for a death.
	const ttl = 4 * time.Second
	calls := make(chan deadCall, 10)
	leases, stop := startLeases(t, ctx, nodes, func(by int) LeaseOptions {
		return LeaseOptions{Refresh: ttl / 2, TTL: ttl, OnDead: func(_ context.Context, node int) error {
			calls <- deadCall{by, node, time.Now()}
			return nil
		}}
	})
	defer stop()
	// Every node sees the three leases alive, and the bucket has a leader.
	var leader string
	for {
		all := true
		for _, l := range leases {
			alive := 0
			for _, h := range l.Holders() {
				if h.Alive {
					alive++
				}
			}
			all = all && alive == 3
		}
		if all {
			leader = leasesLeader(ctx, nodes[0])
		}
		if leader != "" {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("leases %+v, bucket leader %q: want 3 alive on every node and a leader", leases[0].Holders(), leader)
		case <-time.After(20 * time.Millisecond):
		}
	}
	k := map[string]int{"n1": 0, "n2": 1, "n3": 2}[leader]
	dead, survivor := k+1, (k+1)%3
	t.Logf("killing node %d, whose server %s leads the leases bucket", dead, leader)
	killed := time.Now()
	killNode(t, nodes[k], leases[k])
	nodes[k], leases[k] = nil, nil

	// The scenario holds only if the bucket was without a leader for longer
	// than the TTL: a probe put (not a lease key) from a survivor says when
	// the bucket took writes again.
	for {
		pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
		_, err := nodes[survivor].JetStream().Publish(pctx, "$KV."+LeaseBucket+".probe", nil)
		pcancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the bucket never took a write again after node %d was killed: %v", dead, err)
		}
	}
	election := time.Since(killed)
	t.Logf("the bucket took writes again %v after the kill (TTL %v)", election.Round(time.Millisecond), ttl)
	if election < ttl {
		t.Fatalf("the bucket had a new leader %v after the kill: not the leaderless window over the TTL this test is about", election)
	}

	var first deadCall
	select {
	case first = <-calls:
	case <-ctx.Done():
		t.Fatalf("node %d, killed, never recovered", dead)
	}
	t.Logf("node %d recovered by node %d, %v after the kill (%v after the bucket took writes again)",
		first.node, first.by, first.at.Sub(killed).Round(time.Millisecond), first.at.Sub(killed.Add(election)).Round(time.Millisecond))
	if first.node != dead {
		t.Fatalf("recovery %+v: node %d is alive (its lease only went unrefreshed while the bucket had no leader); node %d was killed", first, first.node, dead)
	}
	// No recovery of a live node, nor a second of the dead one, within 2 TTLs
	// (a bounded wait for an absence).
	window := time.NewTimer(2 * ttl)
	defer window.Stop()
	select {
	case c := <-calls:
		t.Fatalf("another recovery %+v, %v after the kill: only node %d died", c, c.at.Sub(killed).Round(time.Millisecond), dead)
	case <-window.C:
	}
	for i, l := range leases {
		if l == nil {
			continue
		}
		for _, h := range l.Holders() {
			if h.Node != dead && !h.Alive {
				t.Errorf("node %d sees live node %d's lease lapsed: %+v", i+1, h.Node, h)
			}
		}
	}
}

// TestLeaseStopBounded: Stop returns once leaseStopWait has passed even when a
// goroutine of the lease does not stop, and logs that goroutine's stack.
func TestLeaseStopBounded(t *testing.T) {
	defer func(d time.Duration) { leaseStopWait = d }(leaseStopWait)
	leaseStopWait = 50 * time.Millisecond
	var logged bytes.Buffer
	l := &Lease{n: &Node{log: zerolog.New(&logged)}}
	stuck := make(chan struct{})
	l.wg.Add(1)
	go func() { // a goroutine of the lease that does not heed the stop
		defer l.wg.Done()
		<-stuck
	}()
	l.Stop()
	close(stuck)
	out := logged.String()
	if !strings.Contains(out, "did not stop within 50ms") || !strings.Contains(out, "TestLeaseStopBounded") {
		t.Errorf("Stop's log does not name the goroutine that did not stop:\n%s", out)
	}
	l.wg.Wait()
}

// TestLeaseEntry: the leases bucket's stream read as the KV watcher reads it (the
// lease watch follows the stream itself, see StartLease): a put is a value; a
// delete, a purge and the server's marker of an expired key are not.
func TestLeaseEntry(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := startSolo(t, ctx)
	defer n.Close()
	kv, err := n.LeaseKV(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "node.4", []byte(`{"node":4}`)); err != nil {
		t.Fatal(err)
	}
	// The bucket keeps one message a key: a delete or a purge replaces the value.
	if _, err := kv.Put(ctx, "node.1", []byte(`{"node":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, "node.1"); err != nil {
		t.Fatal(err)
	}
	if err := kv.Purge(ctx, "node.2"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.js.Publish(ctx, leaseSubjects+"node.3", []byte(`{"node":3}`), jetstream.WithMsgTTL(time.Second)); err != nil {
		t.Fatal(err)
	}
	f, err := ordered.Follow(n.js, ordered.Config{Stream: leaseStream, Subjects: []string{leaseSubjects + "node.*"}, From: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	var got []string
	for {
		var m jetstream.Msg
		select {
		case m = <-f.C():
		case <-ctx.Done():
			t.Fatalf("read %v, and no expiry marker of node.3 (its TTL is 1 s)", got)
		}
		key, put := leaseEntry(m)
		if key == "node.3" && put {
			continue // the value, if it is still there (its marker replaces it)
		}
		got = append(got, fmt.Sprintf("%s %v", key, put))
		if key == "node.3" {
			break
		}
	}
	if want := []string{"node.4 true", "node.1 false", "node.2 false", "node.3 false"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("read %v, want %v", got, want)
	}
}

// TestRefused: a 4xx API error, wrapped as the ordered follower wraps it, is a
// refusal; a 503, a timeout or no responders are not.
func TestRefused(t *testing.T) {
	limit := &jetstream.APIError{Code: 400, ErrorCode: 10026, Description: "maximum consumers limit reached"}
	for _, c := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("ordered: create consumer x of STATE: %w", limit), true},
		{&jetstream.APIError{Code: 404, ErrorCode: 10059, Description: "stream not found"}, true},
		{&jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}, false},
		{fmt.Errorf("create: %w", context.DeadlineExceeded), false},
		{nats.ErrNoResponders, false},
		{nil, false},
	} {
		if got := Refused(c.err); got != c.want {
			t.Errorf("Refused(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// startLeases starts a lease on each of nodes with opts(its number, from 1); stop
// stops those started (the caller defers it, before its context is cancelled). A
// failed start stops the ones before it and fails the test.
func startLeases(t *testing.T, ctx context.Context, nodes []*Node, opts func(by int) LeaseOptions) (leases []*Lease, stop func()) {
	t.Helper()
	leases = make([]*Lease, len(nodes))
	stop = func() {
		for _, l := range leases {
			if l != nil {
				l.Stop()
			}
		}
	}
	for i, n := range nodes {
		l, err := n.StartLease(ctx, opts(i+1))
		if err != nil {
			stop()
			t.Fatal(err)
		}
		leases[i] = l
	}
	return leases, stop
}

// TestStartLeaseBucketLeaderless: a node reads the leases bucket, and starts
// its lease, right after the server leading the bucket was killed. Until the
// survivors notice (their election timeout, 4 to 9 s) every server takes
// another for the leader and nobody answers a read; one read must give up
// after a while, not wait its whole context (seen in CI: a restarted node
// waited its two-minute start on one such read), and the start must keep
// trying and succeed after the election.
func TestStartLeaseBucketLeaderless(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	nodes := startLeaseCluster(t, ctx, threeNodeConfigs(t))
	if _, err := nodes[0].LeaseKV(ctx); err != nil {
		t.Fatal(err)
	}
	var leader string
	for {
		if leader = leasesLeader(ctx, nodes[0]); leader != "" {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("the leases bucket has no leader")
		case <-time.After(20 * time.Millisecond):
		}
	}
	k := map[string]int{"n1": 0, "n2": 1, "n3": 2}[leader]
	survivor := nodes[(k+1)%3]
	t.Logf("killing server %s, which leads the leases bucket; node %d reads it and starts its lease", leader, survivor.cfg.Node)
	stopRaftNodes(nodes[k].srv)
	if err := nodes[k].Close(); err != nil {
		t.Fatal(err)
	}
	nodes[k] = nil

	// A read sent now is answered by nobody: it must end on its own, before
	// the 30 s its caller allows (the old code waited all of them).
	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	start := time.Now()
	_, _, _, err := survivor.readLeader(rctx, LeaseBucket, leaseKey(survivor.cfg.Node))
	callerLeft := rctx.Err()
	rcancel()
	t.Logf("read right after the kill: %v after %v", err, time.Since(start).Round(time.Millisecond))
	if callerLeft != nil {
		t.Fatalf("a read of the leaderless bucket waited its caller's whole context (%v): %v", callerLeft, err)
	}

	sctx, scancel := context.WithTimeout(ctx, 40*time.Second)
	defer scancel()
	start = time.Now()
	l, err := survivor.StartLease(sctx, LeaseOptions{OnDead: func(context.Context, int) error { return nil }})
	if err != nil {
		t.Fatalf("lease start during the bucket's election, after %v: %v", time.Since(start).Round(time.Millisecond), err)
	}
	defer l.Stop()
	t.Logf("lease of node %d taken %v after the read", survivor.cfg.Node, time.Since(start).Round(time.Millisecond))
}

// leasesLeader is the server leading the leases bucket, as n's status says ("" if
// none, or no status).
func leasesLeader(ctx context.Context, n *Node) string {
	st, err := n.Status(ctx)
	if err != nil {
		return ""
	}
	for _, b := range st.Buckets {
		if b.Name == LeaseBucket {
			return b.Leader
		}
	}
	return ""
}

// TestLeaseWatchReplacedCounted: the lease watcher's replaced consumers are
// counted in switchyard_cluster_consumers_replaced_total under KV_leases, as the
// journal's and the shared stores' are (TestClusterStoreReadOnly saw the
// watcher's consumer on a server whose store turned read-only replaced for its
// stall, and counted nowhere). Here its consumer is deleted on the server: the
// watcher replaces it and follows the leases again. The replacement is counted
// as "gone" when the server's notice of the deletion reaches the pull, or as
// "heartbeat" when the pull missed it and the idle heartbeats stopped instead
// (a fresh-clone CI run of 7 December 2026, under load): either counts.
func TestLeaseWatchReplacedCounted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	n := startSolo(t, ctx)
	defer n.Close()
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	n.SetMetrics(m)
	l, err := n.StartLease(ctx, LeaseOptions{OnDead: func(context.Context, int) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	replaced := func() (n float64) {
		for _, r := range ordered.Reasons {
			n += testutil.ToFloat64(m.ConsumersReplaced.WithLabelValues(leaseStream, r))
		}
		return n
	}
	// The watcher's consumer, once it has one: the only consumer of the stream.
	var names []string
	for len(names) == 0 {
		names = nil
		st, err := n.js.Stream(ctx, leaseStream)
		if err != nil {
			t.Fatalf("stream %s: %v", leaseStream, err)
		}
		for name := range st.ConsumerNames(ctx).Name() {
			names = append(names, name)
		}
		if len(names) == 0 {
			select {
			case <-ctx.Done():
				t.Fatal("the lease watcher never created a consumer")
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	before := replaced()
	for _, name := range names {
		if err := n.js.DeleteConsumer(ctx, leaseStream, name); err != nil {
			t.Fatalf("delete consumer %s of %s: %v", name, leaseStream, err)
		}
	}
	for replaced() <= before {
		select {
		case <-ctx.Done():
			t.Fatalf("the lease watcher's consumer %v deleted, no replacement counted under %s", names, leaseStream)
		case <-time.After(50 * time.Millisecond):
		}
	}
	// It follows the leases again: a node 7's lease put now is seen alive.
	kv, err := n.LeaseKV(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(LeaseValue{Node: 7, Server: "ghost", Incarnation: 1})
	if _, err := kv.Put(ctx, "node.7", b); err != nil {
		t.Fatal(err)
	}
	for !slices.ContainsFunc(l.Holders(), func(h LeaseHolder) bool { return h.Node == 7 && h.Alive }) {
		select {
		case <-ctx.Done():
			t.Fatalf("node 7's lease not seen after the watcher's consumer was replaced: %+v", l.Holders())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
