package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/freeport"
)

func testLogger(t *testing.T) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
}

func startNode(t *testing.T, ctx context.Context, cfg Config) *Node {
	t.Helper()
	n, err := Start(ctx, cfg, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("start %s: %v", cfg.Embedded.ServerName, err)
	}
	return n
}

// startSolo starts a standalone embedded node (no routes: R1 streams) and waits
// for its JetStream.
func startSolo(t *testing.T, ctx context.Context) *Node {
	t.Helper()
	cfg := Config{Mode: ModeEmbedded, Node: 1, Embedded: Embedded{ServerName: "solo", ClientAddr: "127.0.0.1:0"}}
	cfg.ApplyDefaults(t.TempDir())
	n := startNode(t, ctx, cfg)
	if err := n.WaitJetStream(ctx); err != nil {
		n.Close()
		t.Fatal(err)
	}
	return n
}

// TestSingleNode: a standalone embedded node with JetStream stores an R1
// stream's message and reads it back; Close joins the server.
func TestSingleNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	n := startSolo(t, ctx)
	defer n.Close()
	if _, err := n.JetStream().CreateStream(ctx, jetstream.StreamConfig{Name: "J", Subjects: []string{"j.>"}, Replicas: 1}); err != nil {
		t.Fatal(err)
	}
	ack, err := n.Publish(ctx, "j.1", []byte("hello"), "tx-1")
	if err != nil {
		t.Fatal(err)
	}
	if dup, err := n.Publish(ctx, "j.1", []byte("hello"), "tx-1"); err != nil || !dup.Duplicate || dup.Sequence != ack.Sequence {
		t.Fatalf("the same Nats-Msg-Id again: %+v, %v; want a duplicate of seq %d", dup, err, ack.Sequence)
	}
	s, err := n.JetStream().Stream(ctx, "J")
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMsg(ctx, ack.Sequence)
	if err != nil || string(m.Data) != "hello" || m.Subject != "j.1" {
		t.Fatalf("read back: %+v, %v", m, err)
	}
	st, err := n.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Server != "solo" || len(st.Streams) != 1 || st.Streams[0].Name != "J" || st.Streams[0].Messages != 1 || st.Streams[0].Replicas != 1 {
		t.Fatalf("status: %+v", st)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

// TestStartPortInUse: a client port, or a cluster port, already taken fails Start
// with nats-server's reason and the key that set the port.
func TestStartPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := Config{Mode: ModeEmbedded, Node: 1, Embedded: Embedded{ServerName: "busy", ClientAddr: l.Addr().String(), StoreDir: t.TempDir()}}
	_, err = Start(ctx, cfg, Options{Logger: zerolog.Nop()})
	if err == nil || !strings.Contains(err.Error(), "not ready for connections") || !strings.Contains(err.Error(), l.Addr().String()) ||
		!strings.Contains(err.Error(), "cluster.embedded.client_addr: ") {
		t.Fatalf("got %v; want a not-ready error naming %s and its key", err, l.Addr())
	}
	cfg = Config{Mode: ModeEmbedded, Node: 1, Embedded: Embedded{ServerName: "busy", ClientAddr: "127.0.0.1:0", StoreDir: t.TempDir(),
		ClusterName: "sy", ClusterAddr: l.Addr().String(), Routes: []string{"nats-route://" + l.Addr().String()}}}
	_, err = Start(ctx, cfg, Options{Logger: zerolog.Nop()})
	if err == nil || !strings.Contains(err.Error(), "cluster.embedded.cluster_addr: Error listening on router port") {
		t.Fatalf("got %v; want a not-ready error naming cluster.embedded.cluster_addr", err)
	}
}

// TestExternal connects by URL, with a token, to a NATS server already
// running (embedded in the test), and refuses a bad URL, a bad token and a
// token file readable by others, clearly.
func TestExternal(t *testing.T) {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
		StoreDir: t.TempDir(), Authorization: "s3cret-token", NoSigs: true, ServerName: "ext"})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	defer func() { s.Shutdown(); s.WaitForShutdown() }()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("test server not ready")
	}
	dir := t.TempDir()
	writeFile := func(name, data string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ext := func(url, tokenFile string) Config {
		return Config{Mode: ModeExternal, Node: 1, External: External{URLs: []string{url}, TokenFile: tokenFile}}
	}

	n, err := Start(ctx, ext(s.ClientURL(), writeFile("good", "s3cret-token\n", 0o600)), Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.WaitJetStream(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := n.JetStream().CreateStream(ctx, jetstream.StreamConfig{Name: "X", Subjects: []string{"x"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Publish(ctx, "x", []byte("1"), ""); err != nil {
		t.Fatal(err)
	}
	if st, err := n.Status(ctx); err != nil || st.Server != "ext" || len(st.Streams) != 1 || st.Streams[0].Messages != 1 {
		t.Fatalf("status: %+v, %v", st, err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "nats://" + l.Addr().String()
	l.Close() // nothing listens there now
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"nobody listens", ext(deadURL, ""), []string{"connect to the external NATS cluster at " + deadURL, "no servers available"}},
		{"wrong token", ext(s.ClientURL(), writeFile("bad", "guess", 0o600)), []string{"connect to the external NATS cluster", "Authorization Violation"}},
		{"no token", ext(s.ClientURL(), ""), []string{"Authorization Violation"}},
		{"token file open", ext(s.ClientURL(), writeFile("open", "s3cret-token", 0o644)), []string{"cluster.external.token_file", "readable by others", "chmod 600"}},
		{"token file missing", ext(s.ClientURL(), filepath.Join(dir, "none")), []string{"cluster.external.token_file", "no such file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := Start(ctx, tc.cfg, Options{Logger: zerolog.Nop()})
			if err == nil {
				n.Close()
				t.Fatal("connected")
			}
			for _, w := range tc.want {
				if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(w)) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// reservePorts picks n free loopback ports (freeport: outside the ephemeral range).
// Unavoidable for routes: every node of a JetStream cluster must be started with
// its peers' route URLs (nats-server refuses a JetStream cluster without
// configured routes), so the ports must be known before any node starts.
func reservePorts(t *testing.T, n int) []int {
	t.Helper()
	ports, err := freeport.Ports(n)
	if err != nil {
		t.Fatal(err)
	}
	return ports
}

// waitPublish publishes until JetStream acknowledges or ctx ends (a stream
// electing a new leader refuses writes for a few seconds), and returns how
// long it took. Each retry carries the same Nats-Msg-Id.
func waitPublish(t *testing.T, ctx context.Context, n *Node, subj string) time.Duration {
	t.Helper()
	start := time.Now()
	var last error
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		_, last = n.Publish(pctx, subj, []byte(subj), subj) // one Nats-Msg-Id: a retry after a timeout stores once
		cancel()
		if last == nil {
			return time.Since(start)
		}
	}
	t.Fatalf("no publish to %s acknowledged within the deadline: %v", subj, last)
	return 0
}

// readLast reads the last message on subj, trying again while the error is
// transient (lease.go's rule: CI saw 503 "temporarily unavailable" from a
// restarted peer still catching up, right after the survivor's write was
// acknowledged) until ctx ends. Any other error, "no message found" among them,
// is returned at once.
func readLast(ctx context.Context, s jetstream.Stream, subj string) error {
	for {
		_, err := s.GetLastMsgForSubject(ctx, subj)
		if err == nil || !transient(err) {
			return err
		}
		if perr := pause(ctx); perr != nil {
			return fmt.Errorf("%w (still so when the test's deadline came: %v)", err, perr)
		}
	}
}

// TestThreeNodes: three embedded nodes form an R3 cluster; it keeps taking
// writes with one node down, refuses them clearly with two down, and takes
// them again, without restarting the survivor, once the two come back on
// their store directories.
func TestThreeNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ports := reservePorts(t, 3)
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	base := t.TempDir()
	cfgs := make([]Config, 3)
	for i := range cfgs {
		cfgs[i] = Config{Mode: ModeEmbedded, Node: i + 1, Embedded: Embedded{
			ServerName: fmt.Sprintf("n%d", i+1), StoreDir: filepath.Join(base, fmt.Sprintf("n%d", i+1)),
			ClientAddr: "127.0.0.1:0", ClusterName: "sy", ClusterAddr: fmt.Sprintf("127.0.0.1:%d", ports[i]), Routes: routes,
		}}
	}
	nodes := make([]*Node, 3)
	defer func() {
		for _, n := range nodes {
			if n != nil {
				n.Close()
			}
		}
	}()
	t0 := time.Now()
	for i := range nodes {
		nodes[i] = startNode(t, ctx, cfgs[i])
	}
	for _, n := range nodes {
		if err := n.WaitJetStream(ctx); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("cluster formed, meta leader elected in %v", time.Since(t0).Round(time.Millisecond))
	if _, err := nodes[0].JetStream().CreateStream(ctx, jetstream.StreamConfig{Name: "J", Subjects: []string{"j.>"}, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[0].Publish(ctx, "j.all", nil, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[2].JetStream().CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "registry", Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[1].JetStream().CreateOrUpdateConsumer(ctx, "J", jetstream.ConsumerConfig{Durable: "saf", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	st, err := nodes[1].Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Server != "n2" || st.Cluster != "sy" || st.MetaLeader == "" || len(st.Servers) != 3 ||
		len(st.Streams) != 1 || st.Streams[0].Replicas != 3 || st.Streams[0].Leader == "" || len(st.Streams[0].Peers) != 2 ||
		len(st.Streams[0].Consumers) != 1 || st.Streams[0].Consumers[0].Pending != 1 ||
		len(st.Buckets) != 1 || st.Buckets[0].Name != "registry" || st.Buckets[0].Replicas != 3 || st.Buckets[0].Leader == "" {
		t.Fatalf("status of a formed cluster: %+v", st)
	}

	if st.PeersKnown != (st.MetaLeader == "n2") {
		t.Fatalf("status on n2 with meta leader %s: peers known %v", st.MetaLeader, st.PeersKnown)
	}
	// R1 consumers, placed on the stream's servers as JetStream chooses: some on
	// the node about to go down, as a dead node's own consumers are.
	for i := range 6 {
		if _, err := nodes[i%3].JetStream().CreateOrUpdateConsumer(ctx, "J", jetstream.ConsumerConfig{
			Durable: fmt.Sprintf("r1-%d", i), AckPolicy: jetstream.AckExplicitPolicy, Replicas: 1}); err != nil {
			t.Fatal(err)
		}
	}

	// Down one node, the stream's leader (the harder case: a new election).
	leader := st.Streams[0].Leader
	idx := map[string]int{"n1": 0, "n2": 1, "n3": 2}
	down1 := idx[leader]
	survivor, down2 := (down1+1)%3, (down1+2)%3
	if err := nodes[down1].Close(); err != nil {
		t.Fatal(err)
	}
	nodes[down1] = nil
	t.Logf("one node down (%s, the stream leader): a write acknowledged after %v", leader, waitPublish(t, ctx, nodes[survivor], "j.one-down").Round(time.Millisecond))
	// The status still answers, every consumer listed or named as not answering.
	start := time.Now()
	st, err = nodes[survivor].Status(ctx)
	if err != nil {
		t.Fatalf("status with one node down: %v", err)
	}
	s0 := st.Streams[0]
	t.Logf("status with one node down after %v: %d consumers listed, missing %v", time.Since(start).Round(time.Millisecond), len(s0.Consumers), s0.ConsumersMissing)
	if s0.ConsumersError != "" || len(s0.Consumers)+len(s0.ConsumersMissing) != 7 {
		t.Fatalf("consumers with one node down: %+v, missing %v, error %q; want 7 in all", s0.Consumers, s0.ConsumersMissing, s0.ConsumersError)
	}

	// Down a second: no quorum, so a publish fails within its timeout.
	if err := nodes[down2].Close(); err != nil {
		t.Fatal(err)
	}
	nodes[down2] = nil
	pctx, pcancel := context.WithTimeout(ctx, time.Second)
	start = time.Now()
	_, err = nodes[survivor].Publish(pctx, "j.two-down", nil, "tx-two-down")
	pcancel()
	if took := time.Since(start); !errors.Is(err, ErrNoQuorum) || took > 2*time.Second {
		t.Fatalf("publish with two of three down: %v after %v; want ErrNoQuorum within its 1s timeout", err, took)
	}
	t.Logf("two down: %v", err)

	// Both come back on their store directories; the survivor, untouched, writes again.
	for _, i := range []int{down1, down2} {
		nodes[i] = startNode(t, ctx, cfgs[i])
	}
	t.Logf("two nodes restarted: the survivor's write acknowledged after %v", waitPublish(t, ctx, nodes[survivor], "j.back").Round(time.Millisecond))
	s, err := nodes[survivor].JetStream().Stream(ctx, "J")
	if err != nil {
		t.Fatal(err)
	}
	// The refused write's outcome was unknown, not "not stored": the survivor
	// had taken it into its log and it may land once the quorum returns. The
	// retry with the same Nats-Msg-Id stores it exactly once either way.
	if _, err := nodes[survivor].Publish(ctx, "j.two-down", nil, "tx-two-down"); err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, subj := range []string{"j.all", "j.one-down", "j.two-down", "j.back"} {
		if err := readLast(ctx, s, subj); err != nil {
			t.Errorf("%s lost: %v", subj, err)
		}
	}
	if info.State.Msgs != 4 {
		t.Errorf("stream holds %d messages, want 4 (each write once)", info.State.Msgs)
	}
}

// TestWaitJetStreamNoQuorum: a node of a three-node cluster started alone has
// no meta leader; WaitJetStream gives up when its context ends and says so.
func TestWaitJetStreamNoQuorum(t *testing.T) {
	ports := reservePorts(t, 3)
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := Start(ctx, Config{Mode: ModeEmbedded, Node: 1, Embedded: Embedded{ServerName: "alone", StoreDir: t.TempDir(),
		ClientAddr: "127.0.0.1:0", ClusterName: "sy", ClusterAddr: fmt.Sprintf("127.0.0.1:%d", ports[0]), Routes: routes}},
		Options{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	wctx, wcancel := context.WithTimeout(ctx, time.Second)
	defer wcancel()
	start := time.Now()
	err = n.WaitJetStream(wctx)
	if err == nil || !strings.Contains(err.Error(), "JetStream not ready on alone") || time.Since(start) > 3*time.Second {
		t.Fatalf("got %v after %v; want a clear not-ready error at the 1s deadline", err, time.Since(start))
	}
	t.Log(err)
	if _, err := n.Status(wctx); err == nil {
		t.Fatal("status without a meta leader succeeded")
	}
}

// TestCloseCreatesInFlight: Close with stream creations still queued in the
// embedded server (requests whose callers stopped waiting, as a LeaseKV try that
// timed out on a loaded machine) leaves no file store running. nats-server
// registers a new stream with its account only once its store is made, and its
// Shutdown stops the streams registered then: a creation still running kept its
// store's goroutines (and the ats access-time ticker) for good, which this
// package's leak check reported once in CI. Close waits for those requests first.
func TestCloseCreatesInFlight(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	before := fileStoresRunning()
	for round := range 5 {
		n := startSolo(t, ctx)
		for i := range 10 {
			cfg := fmt.Sprintf(`{"name":"S%d","subjects":["s%d.>"],"storage":"file","num_replicas":1}`, i, i)
			// No one waits for the answer.
			if err := n.Conn().PublishRequest(fmt.Sprintf("$JS.API.STREAM.CREATE.S%d", i), nats.NewInbox(), []byte(cfg)); err != nil {
				t.Fatal(err)
			}
		}
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		// A store stopped without writing its state (fileStore.stop(delete, false), as
		// Delete does: nats-server v2.15.2 filestore.go) does not wait for its flush
		// loop, which ends a moment later: polled, with a deadline.
		for deadline := time.Now().Add(2 * time.Second); fileStoresRunning() > before; {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: %d nats-server file stores still running 2s after Close (%d before)", round, fileStoresRunning(), before)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// fileStoresRunning counts the nats-server file stores whose goroutines run
// (each has one state flush loop until it is stopped).
func fileStoresRunning() int {
	buf := make([]byte, 1<<20)
	for {
		if k := runtime.Stack(buf, true); k < len(buf) {
			return strings.Count(string(buf[:k]), "(*fileStore).flushStreamStateLoop(")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// TestNoMessageTrace: even under a logger at trace level, the embedded server does
// not trace the messages it routes: that would format every message (a fifth of a
// node's CPU) and write payloads (journal records) to the log.
func TestNoMessageTrace(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var buf strings.Builder
	var mu syncWriter
	mu.w = &buf
	cfg := Config{Mode: ModeEmbedded, Node: 1, Embedded: Embedded{ServerName: "traced", ClientAddr: "127.0.0.1:0"}}
	cfg.ApplyDefaults(t.TempDir())
	n, err := Start(ctx, cfg, Options{Logger: zerolog.New(&mu)}) // own level: trace
	if err != nil {
		t.Fatal(err)
	}
	if err := n.WaitJetStream(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := n.JetStream().CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Replicas: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Publish(ctx, "t.1", []byte("PAYLOAD-4761739001010119"), "m-1"); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if out := mu.String(); strings.Contains(out, "PAYLOAD-4761739001010119") {
		t.Fatalf("the server traced a message's payload into the log:\n%s", out)
	}
}

// syncWriter is an io.Writer safe for the server's concurrent log lines.
type syncWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}

func TestTryWait(t *testing.T) {
	for try, want := range []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second} {
		if got := TryWait(try); got != want {
			t.Errorf("TryWait(%d) = %v, want %v", try, got, want)
		}
	}
	if got := TryWait(100); got != 10*time.Second {
		t.Errorf("TryWait(100) = %v, want 10s", got)
	}
}

// TestNoClientPort: with client_addr "none" (nodes 2 and 3) no tool can connect to
// the embedded servers (the port they listen on refuses a connection without the
// node's in-process token, with or without a guessed one), a tool on node 1's
// client port is not told of theirs, and the nodes still form an R3 JetStream
// cluster over their routes: a stream written through node 1 is read through
// node 3.
func TestNoClientPort(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfgs := threeNodeConfigs(t)
	for i := 1; i < len(cfgs); i++ {
		cfgs[i].Embedded.ClientAddr = ClientAddrNone
		if err := cfgs[i].Validate(); err != nil {
			t.Fatal(err)
		}
	}
	nodes := startLeaseCluster(t, ctx, cfgs)
	tool, err := nats.Connect(nodes[0].srv.ClientURL(), nats.NoReconnect())
	if err != nil {
		t.Fatal(err)
	}
	defer tool.Close()
	if ds := tool.DiscoveredServers(); len(ds) != 0 {
		t.Fatalf("a tool on node 1's client port is told of %v; want none (nodes 2 and 3 take no tools)", ds)
	}
	for i, n := range nodes[1:] {
		i++
		a, ok := n.srv.Addr().(*net.TCPAddr)
		if !ok || !a.IP.IsLoopback() {
			t.Fatalf("node %d's client listener: %v; want a loopback address", i+1, n.srv.Addr())
		}
		url := fmt.Sprintf("nats://%s", a)
		for _, opts := range [][]nats.Option{nil, {nats.Token("guess")}, {nats.UserInfo("switchyard", "")}} {
			if nc, err := nats.Connect(url, append(opts, nats.NoReconnect())...); err == nil {
				nc.Close()
				t.Fatalf("node %d: a tool connected to %s with %d options", i+1, url, len(opts))
			} else if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(err.Error(), "Authorization") {
				t.Fatalf("node %d: a tool's connection to %s: %v; want an authorization violation", i+1, url, err)
			}
		}
	}
	for {
		_, err := nodes[0].js.CreateStream(ctx, jetstream.StreamConfig{Name: "NOCLIENT", Subjects: []string{"noclient.>"}, Replicas: 3})
		if err == nil {
			break
		}
		if !transient(err) {
			t.Fatal(err)
		}
		if err := pause(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waitPublish(t, ctx, nodes[0], "noclient.a")
	s, err := nodes[2].js.Stream(ctx, "NOCLIENT")
	if err != nil {
		t.Fatal(err)
	}
	if err := readLast(ctx, s, "noclient.a"); err != nil {
		t.Fatal(err)
	}
}

// lockedBuffer is a log destination that the embedded server's goroutines and
// the test may write and read at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestWaitJetStreamReports: a node whose routes reach none of its peers (here
// they were never started) says so while it waits for JetStream, at warn level
// every waitReportEvery, naming how many servers it is routed to, and not only
// when the wait ends: in an operator's trial a node whose peers' route ports were
// wrong logged nats-server's "Waiting for routing to be established..." for two
// minutes before its start gave up.
func TestWaitJetStreamReports(t *testing.T) {
	defer func(d time.Duration) { waitReportEvery = d }(waitReportEvery)
	waitReportEvery = 200 * time.Millisecond
	cfg := nodeConfigs(t, 3)[0] // nodes 2 and 3 never start
	var logs lockedBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := Start(ctx, cfg, Options{Logger: zerolog.New(&logs).Level(zerolog.WarnLevel)})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	wctx, wcancel := context.WithTimeout(ctx, 6500*time.Millisecond) // each probe without a meta leader waits jsProbeTimeout (2 s)
	defer wcancel()
	err = n.WaitJetStream(wctx)
	if err == nil || !strings.Contains(err.Error(), "routed to 0 other servers of 3 routes configured") {
		t.Fatalf("wait without peers: %v", err)
	}
	want := `"message":"still waiting for JetStream on n1 (this server is routed to 0 other servers of 3 routes configured`
	if c := strings.Count(logs.String(), want); c < 2 {
		t.Fatalf("%d reports while waiting, want 2 or more; log:\n%s", c, logs.String())
	}
}
