package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/switch/registry"
)

// TestCommitEncoding: commits survive the message encoding, small and plain or
// large and deflated, with deletes and empty values, intent commits with encodings
// of their own (which versions before them refuse as unknown); a damaged message
// is refused.
func TestCommitEncoding(t *testing.T) {
	small := statelog.Commit{Writes: []statelog.KV{{Key: []byte("reg/t/1"), Value: []byte(`{"a":1}`)}, {Key: []byte("reg/rule/x")}, {Key: []byte("e"), Value: []byte{}}}}
	var big statelog.Commit
	for i := range 2000 {
		big.Writes = append(big.Writes, statelog.KV{Key: fmt.Appendf(nil, "reg/t/T%07d", i), Value: bytes.Repeat([]byte(`{"status":"active"}`), 5)})
	}
	intent, bigIntent := small, big
	intent.Intent, bigIntent.Intent = true, true
	for name, c := range map[string]statelog.Commit{"small": small, "big": big, "empty": {}, "intent": intent, "big intent": bigIntent} {
		b, err := encodeCommit(c)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]byte{"big": commitDeflated, "intent": commitIntent, "big intent": commitIntentDeflated}[name]
		if want == 0 {
			want = commitPlain
		}
		if b[0] != want {
			t.Errorf("%s: encoding %d, want %d", name, b[0], want)
		}
		got, err := decodeCommit(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.Intent != c.Intent {
			t.Fatalf("%s: intent %v back", name, got.Intent)
		}
		if len(got.Writes) != len(c.Writes) {
			t.Fatalf("%s: %d writes back, want %d", name, len(got.Writes), len(c.Writes))
		}
		for i, w := range c.Writes {
			g := got.Writes[i]
			if !bytes.Equal(g.Key, w.Key) || !bytes.Equal(g.Value, w.Value) || (g.Value == nil) != (w.Value == nil) {
				t.Fatalf("%s: write %d: %q=%q, want %q=%q", name, i, g.Key, g.Value, w.Key, w.Value)
			}
		}
	}
	b, _ := encodeCommit(small)
	for _, bad := range [][]byte{nil, {9}, b[:len(b)-2], append(append([]byte{}, b...), 0), {commitDeflated, 1, 2, 3}} {
		_, err := decodeCommit(bad)
		if err == nil {
			t.Errorf("%x decoded", bad)
		}
		// Only an encoding this version does not know says "a newer version's":
		// the follower stops on it and /readyz tells to upgrade the node.
		if newer := len(bad) == 1 && bad[0] == 9; errors.Is(err, ErrNewerCommit) != newer {
			t.Errorf("%x: %v; ErrNewerCommit wrapped: %v, want %v", bad, err, !newer, newer)
		}
	}
}

// sizeLog orders commits in a Memory and records their encoded sizes.
type sizeLog struct {
	*statelog.Memory
	mu    sync.Mutex
	sizes [][2]int // keys, bytes
}

func (s *sizeLog) Append(ctx context.Context, c statelog.Commit, after uint64) (uint64, error) {
	b, err := encodeCommit(c)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	s.sizes = append(s.sizes, [2]int{len(c.Writes), len(b)})
	s.mu.Unlock()
	return s.Memory.Append(ctx, c, after)
}

func openBadger(t *testing.T, dir string) *badger.DB {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithMemTableSize(8 << 20).WithValueLogFileSize(16 << 20).
		WithNumCompactors(2).WithBlockCacheSize(8 << 20).WithIndexCacheSize(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

var (
	alice = registry.Actor{Name: "alice", Role: registry.RoleOperator}
	bob   = registry.Actor{Name: "bob", Role: registry.RoleReviewer}
	dave  = registry.Actor{Name: "dave", Role: registry.RoleReviewer}
)

func importOf(n int) registry.Change {
	ts := make([]registry.Terminal, n)
	for i := range ts {
		ts[i] = registry.Terminal{ID: fmt.Sprintf("L%07d", i), MerchantID: "000000000000001", Kind: registry.KindPOS,
			Status: registry.TerminalActive, Binding: registry.Binding{DeviceSerial: fmt.Sprintf("SN-L%07d", i)}}
	}
	return registry.Change{Op: registry.OpTerminalImport, Terminals: ts}
}

// TestCommitSizes measures the encoded size of the registry's largest commits:
// the demo fleet, and a CSV import of 10,000 terminals (its request carries them
// all; its approval is written in commits of 500), against the NATS default max
// payload of 1 MB.
func TestCommitSizes(t *testing.T) {
	sl := &sizeLog{Memory: &statelog.Memory{}}
	reg, err := registry.New(openBadger(t, t.TempDir()), nil, registry.Options{SeenFlushInterval: -1, Log: sl})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	if _, err := registry.LoadDemoFleet(reg, 200); err != nil {
		t.Fatal(err)
	}
	req, err := reg.RequestChange(alice, importOf(10000))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Approve(bob, req.ID, ""); err != nil {
		t.Fatal(err)
	}
	largest := 0
	for _, s := range sl.sizes {
		largest = max(largest, s[1])
	}
	n := len(sl.sizes)
	t.Logf("demo fleet: %d commits, the first %d keys in %d bytes; import request of 10,000 terminals: %d bytes; an approval commit: %d keys in %d bytes; largest %d bytes (limit 1 MB less %d)",
		n-21, sl.sizes[0][0], sl.sizes[0][1], sl.sizes[n-21][1], sl.sizes[n-20][0], sl.sizes[n-20][1], largest, headerRoom)
	if largest > 1<<20-headerRoom {
		t.Errorf("a commit of %d bytes would not fit the default max payload", largest)
	}
}

// startCluster starts n embedded nodes routed to each other, with JetStream ready.
func startCluster(t *testing.T, ctx context.Context, n int) []*Node {
	t.Helper()
	ports := reservePorts(t, n)
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	base := t.TempDir()
	nodes := make([]*Node, n)
	for i := range nodes {
		nodes[i] = startNode(t, ctx, Config{Mode: ModeEmbedded, Node: i + 1, Replicas: n, Embedded: Embedded{
			ServerName: fmt.Sprintf("n%d", i+1), StoreDir: filepath.Join(base, fmt.Sprintf("n%d", i+1)),
			ClientAddr: "127.0.0.1:0", ClusterName: "sy", ClusterAddr: fmt.Sprintf("127.0.0.1:%d", ports[i]), Routes: routes,
		}})
		t.Cleanup(func() { nodes[i].Close() })
	}
	for _, nd := range nodes {
		if err := nd.WaitJetStream(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return nodes
}

// TestStateLogSingle: the compare-and-set on a store's subject (0 = no commit
// yet), a conflict as statelog.ErrConflict, no acknowledgement as ErrUnavailable,
// an oversized commit refused, the follower applying in order and CatchUp.
func TestStateLogSingle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sl := soloStateLog(t, ctx)
	if _, err := sl.n.StateLog(ctx); err != nil { // idempotent
		t.Fatalf("second StateLog: %v", err)
	}
	if _, err := sl.Store("a.b"); err == nil {
		t.Fatal("store name with a dot accepted")
	}
	keys, _ := sl.Store("keys")
	lists, _ := sl.Store("lists")
	c := func(k string) statelog.Commit {
		return statelog.Commit{Writes: []statelog.KV{{Key: []byte(k), Value: []byte("v")}}}
	}
	r1, err := keys.Append(ctx, c("k1"), 0)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := lists.Append(ctx, c("l1"), 0) // another store's subject: its own compare-and-set
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Append(ctx, c("k2"), 0); !errors.Is(err, statelog.ErrConflict) {
		t.Fatalf("append after 0 with a commit there: %v; want ErrConflict", err)
	}
	if _, err := keys.Append(ctx, c("k2"), r2); !errors.Is(err, statelog.ErrConflict) {
		t.Fatalf("append after another store's revision: %v; want ErrConflict", err)
	}
	r3, err := keys.Append(ctx, c("k2"), r1)
	if err != nil || r3 <= r2 {
		t.Fatalf("append after %d: %d, %v", r1, r3, err)
	}
	dctx, dcancel := context.WithTimeout(ctx, time.Nanosecond)
	<-dctx.Done()
	_, err = keys.Append(dctx, c("k3"), r3)
	dcancel()
	if !errors.Is(err, statelog.ErrUnavailable) || !errors.Is(err, ErrNoQuorum) {
		t.Fatalf("append without an acknowledgement: %v; want ErrUnavailable", err)
	}
	huge := statelog.Commit{Writes: []statelog.KV{{Key: []byte("x"), Value: randomBytes(2 << 20)}}}
	if _, err := keys.Append(ctx, huge, r3); !errors.Is(err, ErrCommitTooLarge) || !strings.Contains(err.Error(), "max payload") {
		t.Fatalf("a 2 MB commit: %v; want ErrCommitTooLarge", err)
	}

	rep := &memReplica{}
	f := keys.Follow(ctx, rep)
	defer f.Close()
	if err := keys.CatchUp(ctx, rep); err != nil {
		t.Fatal(err)
	}
	if got := rep.keys(); strings.Join(got, ",") != "k1,k2" || rep.Revision() != r3 {
		t.Fatalf("follower applied %v up to %d; want k1,k2 up to %d", got, rep.Revision(), r3)
	}
	f.Close()
	f.Close()
}

// soloStateLog starts a standalone node (closed when the test ends) and returns
// its STATE stream's log.
func soloStateLog(t *testing.T, ctx context.Context) *StateLog {
	t.Helper()
	n := startSolo(t, ctx)
	t.Cleanup(func() { n.Close() })
	sl, err := n.StateLog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return sl
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// memReplica records what a follower applies.
type memReplica struct {
	mu      sync.Mutex
	rev     uint64
	applied []statelog.Commit
}

func (m *memReplica) ApplyRemote(rev uint64, c statelog.Commit) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if rev <= m.rev {
		return nil
	}
	m.rev = rev
	m.applied = append(m.applied, c)
	return nil
}

func (m *memReplica) Revision() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rev
}

func (m *memReplica) keys() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, c := range m.applied {
		for _, w := range c.Writes {
			out = append(out, string(w.Key))
		}
	}
	return out
}

// TestRegistryThreeNodes: three nodes share the registry over an R3 STATE
// stream. A suspension requested and approved on node 1 is enforced by node 3's
// Check within 1 s; the same change approved on nodes 2 and 3 at once: one
// approval wins, the other gets a clear conflict error; all three end with the
// same oplog.
func TestRegistryThreeNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t0 := time.Now()
	nodes := startCluster(t, ctx, 3)
	t.Logf("cluster formed in %v", time.Since(t0).Round(time.Millisecond))
	regs := make([]*registry.Registry, 3)
	for i, nd := range nodes {
		sl, err := nd.StateLog(ctx)
		if err != nil {
			t.Fatal(err)
		}
		lg, err := sl.Store("registry")
		if err != nil {
			t.Fatal(err)
		}
		reg, err := registry.New(openBadger(t, t.TempDir()), nil, registry.Options{SeenFlushInterval: -1, Log: lg, CatchUp: lg.CatchUp})
		if err != nil {
			t.Fatal(err)
		}
		regs[i] = reg
		f := lg.Follow(ctx, reg)
		t.Cleanup(func() { f.Close(); reg.Close() }) // before the node and Badger close (cleanups run last first)
		if err := lg.CatchUp(ctx, reg); err != nil { // start-up catch-up
			t.Fatal(err)
		}
		if _, err := registry.LoadDemoFleet(reg, 200); err != nil {
			t.Fatalf("node %d: LoadDemo: %v", i+1, err)
		}
	}
	good := registry.CheckRequest{TerminalID: "T0000001", MerchantID: "000000000000001", SourceIP: netip.MustParseAddr("10.1.2.3"),
		DeviceID: "SN-T0000001", SIM: "89860000000000000001", IMEI: "860000000000001",
		Location: registry.GeoPoint{Lat: 39.9050, Lon: 116.4080, Present: true}, Cell: "460-00-1234-5678", AppVersion: "2.10.0"}
	waitFor := func(what string, within time.Duration, ok func() bool) time.Duration {
		t.Helper()
		start := time.Now()
		for !ok() {
			if time.Since(start) > within {
				t.Fatalf("%s: not within %v", what, within)
			}
			time.Sleep(time.Millisecond)
		}
		return time.Since(start)
	}
	waitFor("node 3 has the demo fleet", 5*time.Second, func() bool { return !regs[2].Check(good).Decline })

	req, err := regs[0].RequestChange(alice, registry.Change{Op: registry.OpTerminalSuspend, Target: "T0000001", Reason: "stolen"})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := regs[0].Approve(bob, req.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	approved := time.Since(start)
	enforced := waitFor("node 3 enforces the suspension approved on node 1", time.Second, func() bool {
		return regs[2].Check(good).Reason == registry.ReasonTerminalSuspended
	})
	t.Logf("approval on node 1 took %v (one ordered commit); node 3's Check declined %v after it returned", approved.Round(time.Microsecond), enforced.Round(time.Microsecond))

	// One change, approved on nodes 2 and 3 at the same moment.
	req, err = regs[0].RequestChange(alice, registry.Change{Op: registry.OpTerminalSuspend, Target: "LT000042"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range regs[1:] {
		if err := waitForChange(r, req.ID); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, who := range []registry.Actor{bob, dave} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = regs[i+1].Approve(who, req.ID, "")
		}()
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Fatalf("both approvals: %v / %v; want exactly one to win", errs[0], errs[1])
	}
	loser := errors.Join(errs...)
	if !errors.Is(loser, registry.ErrConflict) || !strings.Contains(loser.Error(), "is approved, not pending") {
		t.Fatalf("losing approval: %v; want a clear conflict", loser)
	}
	t.Logf("the losing approval: %v", loser)
	for _, r := range regs {
		// Replication has no bound of its own to check here (the 1 s one is above);
		// 10 s leaves room for a loaded CI machine under -race.
		waitFor("every node has the approval", 10*time.Second, func() bool {
			pv, err := r.GetChange(req.ID)
			return err == nil && pv.Change.Status == registry.ChangeApproved
		})
	}
	want, _ := regs[0].Oplog(registry.OplogFilter{})
	for i, r := range regs {
		waitFor("same oplog", 10*time.Second, func() bool { got, _ := r.Oplog(registry.OplogFilter{}); return len(got) == len(want) })
		got, _ := r.Oplog(registry.OplogFilter{})
		if n, err := r.VerifyOplog(); err != nil || got[len(got)-1].Hash != want[len(want)-1].Hash {
			t.Errorf("node %d: oplog of %d entries: %v, last hash %s, want %s", i+1, n, err, got[len(got)-1].Hash, want[len(want)-1].Hash)
		}
	}
}

func waitForChange(r *registry.Registry, id string) error {
	deadline := time.Now().Add(10 * time.Second) // room for a loaded CI machine under -race
	for time.Now().Before(deadline) {
		if _, err := r.GetChange(id); err == nil {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("change %s did not arrive within 10s", id)
}

// TestFollowerFailLogged: a follower's error is logged once, then the same error
// at most every failLogEvery (with how often it recurred unlogged), while a
// different one is logged at once; Err always has the last. A commit that cannot
// be read is retried for good, and logged every try at 4 a second before.
func TestFollowerFailLogged(t *testing.T) {
	var out strings.Builder
	f := &Follower{l: &StoreLog{name: "registry", s: &StateLog{n: &Node{log: zerolog.New(&out)}}}}
	bad := errors.New("cluster: follow state.registry: commit at sequence 7: unknown version 9")
	for range 5 {
		f.fail(bad)
	}
	other := errors.New("cluster: follow state.registry: nats: timeout")
	f.fail(other)
	if got := strings.Count(out.String(), "unknown version 9"); got != 1 {
		t.Fatalf("the same error logged %d times in a row, want once:\n%s", got, out.String())
	}
	if !strings.Contains(out.String(), "nats: timeout") || f.err != other {
		t.Fatalf("a different error not logged at once, or not the last: %v\n%s", f.err, out.String())
	}
	f.fail(bad)
	f.fail(bad)
	f.loggedAt = f.loggedAt.Add(-failLogEvery) // a minute on
	f.fail(bad)
	if !strings.Contains(out.String(), `"repeated_unlogged":1`) || strings.Count(out.String(), "unknown version 9") != 3 {
		t.Fatalf("after a minute the same error is logged again with its unlogged repeats:\n%s", out.String())
	}
}

// busyReplica refuses its first busy applications with statelog.ErrBusy, as a
// Badger store does while a DropPrefix flushes its memtables.
type busyReplica struct {
	memReplica
	busy     int
	attempts int
}

func (b *busyReplica) ApplyRemote(rev uint64, c statelog.Commit) error {
	b.mu.Lock()
	b.attempts++
	refuse := b.attempts <= b.busy
	b.mu.Unlock()
	if refuse {
		return fmt.Errorf("%w: Writes are blocked, possibly due to DropAll or Close", statelog.ErrBusy)
	}
	return b.memReplica.ApplyRemote(rev, c)
}

// TestFollowerBusyRetriedQuietly: a commit the store refuses for a moment
// (statelog.ErrBusy) is tried again at once and applied, and the follower reports
// no fault (it logged one at Error level and paused 250 ms and more before: seen
// on a cluster node's first start, whose clean-up of stored text flushes Badger
// with a DropPrefix while the followers apply).
func TestFollowerBusyRetriedQuietly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	keys, err := soloStateLog(t, ctx).Store("keys")
	if err != nil {
		t.Fatal(err)
	}
	r1, err := keys.Append(ctx, statelog.Commit{Writes: []statelog.KV{{Key: []byte("k1"), Value: []byte("v")}}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	rep := &busyReplica{busy: 3}
	f := keys.Follow(ctx, rep)
	defer f.Close()
	if err := keys.CatchUp(ctx, rep); err != nil {
		t.Fatal(err)
	}
	rep.mu.Lock()
	attempts := rep.attempts
	rep.mu.Unlock()
	if attempts != 4 || rep.Revision() != r1 {
		t.Fatalf("applied at revision %d after %d attempts; want %d after 4 (3 refused)", rep.Revision(), attempts, r1)
	}
	if err := f.Err(); err != nil {
		t.Fatalf("the follower reports %v for a store busy for a moment; want nothing", err)
	}
}
