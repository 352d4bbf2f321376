package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/freeport"
	"github.com/switchyard/switchyard/internal/racedetect"
	"github.com/switchyard/switchyard/switch/issuersim"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/server"
	"github.com/switchyard/switchyard/switch/termclient"
)

// The harness of the cluster tests (issue 14): three `switchyard serve` processes, each
// embedding a JetStream server clustered with the other two over loopback routes, in
// front of one issuer simulator that runs in the test (so that the test reads its
// ledger: what it approved and which reversals it got). The switch nodes are processes
// of their own so that a SIGKILL is real: nothing of the killed node's memory survives,
// only its data directory and what it had replicated.

// clusterNode is one switch node as a process.
type clusterNode struct {
	t                         *testing.T
	n                         int // 1..3, the cluster.node number (the RRNs' first digit)
	bin, cfg, dir             string
	termAddr, adminAddr, nats string
	cmd                       *exec.Cmd
	exited                    chan struct{} // closed when cmd has been waited for
	runs                      int
	// storeMB, when not 0, puts the node's JetStream store (data/jetstream) on a
	// tmpfs of that many MiB in a mount namespace of its own (clusterOptions.StoreTmpfsMB).
	storeMB   int
	storeExt4 bool // clusterOptions.StoreExt4
}

// testCluster is three nodes and the issuer simulator they share.
type testCluster struct {
	t     *testing.T
	dir   string
	sim   *issuersim.Sim
	nodes []*clusterNode
	rules string
	// links, with clusterOptions.Partitionable, are the routes between the
	// nodes' servers: links[[2]int{k, j}] carries what node k's server dials to
	// node j's (partition.go).
	links map[[2]int]*routeLink
}

// clusterOptions shape a test cluster.
type clusterOptions struct {
	// Faults of the issuer simulator (drops, late answers).
	Faults issuersim.Faults
	// IssuerTimeout is the nodes' issuer timeout (default 300ms).
	IssuerTimeout time.Duration
	// StoreTmpfsMB, when not 0, runs node 3 in a private mount namespace (unshare -m:
	// root or user namespaces; needTmpfs skips the test otherwise) with its JetStream
	// store on a tmpfs of this many MiB that the test reaches through storeDisk.
	StoreTmpfsMB int
	// StoreExt4, with StoreTmpfsMB, puts node 3's store on an ext4 of 256 MiB on a
	// loop device whose image is on that tmpfs (storeBacking): once the tmpfs is full
	// the file system's writes fail, and ext4 turns read-only. Needs root.
	StoreExt4 bool
	// Partitionable routes every connection between two nodes' servers through a
	// proxy of the test's (routeLink), one per direction of each pair, so that
	// the test can cut a node off from its peers while it runs (partition); each
	// node advertises an address nobody listens on, so that no server dials a
	// peer around the proxies.
	Partitionable bool
	// LeaseTTL, when not empty, is every node's cluster.lease_ttl (default 5s).
	LeaseTTL string
}

// leaseTTLKey is the cluster section's lease_ttl line for ttl, none when empty.
func leaseTTLKey(ttl string) string {
	if ttl == "" {
		return ""
	}
	return "\n  lease_ttl: " + ttl
}

// freePorts picks n distinct free loopback addresses for the nodes, outside the
// ephemeral range (freeport), so that no outgoing connection or port-0 listener of
// another process takes one before its node binds it.
func freePorts(t *testing.T, n int) []string {
	t.Helper()
	out, err := freeport.Addrs(n)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// clusterRules copies the repository's rules (zoned to midday, see middayRules) and adds
// the cluster tests' own file: velocity on probe cards and terminals that the other
// traffic never uses, with small thresholds.
func clusterRules(t *testing.T) string {
	t.Helper()
	dir := middayRules(t, time.Now())
	if err := os.WriteFile(filepath.Join(dir, "90-e2e-cluster.yaml"), []byte(clusterVelocityRules), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// clusterVelocityRules: the third use of a card on LT001998 within 10 minutes is
// declined, and the fourth purchase on LT001999; both terminals serve only the velocity
// test.
const clusterVelocityRules = `# The cluster tests' velocity probes (switch/e2e/cluster_test.go).
owner: e2e

counters:
  - name: e2e_card_uses_10m
    description: Purchases of the card on the card probe terminal.
    dimension: card
    window: 10m
    where: txn.txn_type == "purchase" && terminal.id == "LT001998"
  - name: e2e_terminal_uses_10m
    description: Purchases on the terminal probe terminal.
    dimension: terminal
    window: 10m
    where: txn.txn_type == "purchase" && terminal.id == "LT001999"

test_base:
  txn: {mti: "0200", proc_code: "000000", txn_type: purchase, amount: 1000, currency: "156",
        entry_mode: "071", bin: "476173", card_hash: 3b9d00c1e2f3a4b5c6d7e8f9}
  terminal: {id: LT001998, kind: pos, status: active}
  merchant: {id: "000000000000003", mcc: "5311", tier: enterprise, status: active}

rules:
  - id: e2e-card-third-use
    description: The card's third purchase on the card probe terminal within 10 minutes.
    condition: terminal.id == "LT001998" && velocity.e2e_card_uses_10m >= 2
    action: decline
    response_code: "65"
    reason: e2e-card-velocity
    tests:
      - {name: third use, velocity: {e2e_card_uses_10m: 2}, expect: hit}
      - {name: second use, velocity: {e2e_card_uses_10m: 1}, expect: miss}
  - id: e2e-terminal-fourth-use
    description: The fourth purchase on the terminal probe terminal within 10 minutes.
    condition: terminal.id == "LT001999" && velocity.e2e_terminal_uses_10m >= 3
    action: decline
    response_code: "65"
    reason: e2e-terminal-velocity
    tests:
      - {name: fourth use, input: {terminal: {id: LT001999}}, velocity: {e2e_terminal_uses_10m: 3}, expect: hit}
      - {name: third use, input: {terminal: {id: LT001999}}, velocity: {e2e_terminal_uses_10m: 2}, expect: miss}
`

// startCluster writes three node configurations and starts the three nodes at once
// (a node's JetStream waits for a quorum of its peers), and returns when each answers
// /readyz with 200.
//
// The cluster tests run in parallel with each other (t.Parallel; `make test` runs them
// with -parallel 4): each has its own processes, ports, directories and issuer
// simulator, and they spend most of their time waiting (leases lapsing, a quorum
// returning, an offline threshold of a minute), not computing: one after the other,
// they took about 2.5 minutes of which the switch processes used 40 s of CPU.
func startCluster(t *testing.T, o clusterOptions) *testCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a three-node cluster of switch processes")
	}
	if racedetect.Enabled {
		t.Skip("three race-detector switch processes and their JetStream servers are too slow on two cores; run without -race")
	}
	bin := switchyardBinary(t)
	if o.IssuerTimeout == 0 {
		o.IssuerTimeout = 300 * time.Millisecond
	}
	sim, err := issuersim.Start(issuersim.Config{Addr: "127.0.0.1:0", Cards: issuersim.DemoCards, Faults: o.Faults})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	c := &testCluster{t: t, dir: t.TempDir(), sim: sim, rules: clusterRules(t)}
	// $SWITCHYARD_E2E_KEEP: a failed test's node logs are copied there (they go
	// with the test's directory otherwise; the failure prints only their tails);
	// every test's, passed or not, with $SWITCHYARD_E2E_KEEP_ALL set too.
	if keep := os.Getenv("SWITCHYARD_E2E_KEEP"); keep != "" {
		t.Cleanup(func() {
			if !t.Failed() && os.Getenv("SWITCHYARD_E2E_KEEP_ALL") == "" {
				return
			}
			logs, _ := filepath.Glob(filepath.Join(c.dir, "node*", "switch-*.log"))
			to := filepath.Join(keep, fmt.Sprintf("%s-%d", strings.ReplaceAll(t.Name(), "/", "_"), time.Now().UnixNano()))
			for _, l := range logs {
				b, err := os.ReadFile(l)
				if err == nil {
					dst := filepath.Join(to, filepath.Base(filepath.Dir(l))+"-"+filepath.Base(l))
					if err = os.MkdirAll(to, 0o755); err == nil {
						err = os.WriteFile(dst, b, 0o644)
					}
				}
				if err != nil {
					t.Logf("keep %s: %v", l, err)
				}
			}
			t.Logf("node logs kept in %s", to)
		})
	}
	ports := freePorts(t, 3*4)
	var routes []string
	for i := range 3 {
		routes = append(routes, "nats-route://"+ports[i*4+3])
	}
	nodeRoutes := func(int) string { return strings.Join(routes, ", ") }
	advertise := func(int) string { return "" }
	if o.Partitionable {
		c.links = startRouteLinks(t, ports)
		nowhere := freePorts(t, 3)
		nodeRoutes = func(n int) string {
			var rs []string
			for j := 1; j <= 3; j++ {
				if j != n {
					rs = append(rs, "nats-route://"+c.links[[2]int{n, j}].addr())
				}
			}
			return strings.Join(rs, ", ")
		}
		advertise = func(n int) string { return "\n    cluster_advertise: \"" + nowhere[n-1] + "\"" }
	}
	for i := range 3 {
		n := &clusterNode{t: t, n: i + 1, bin: bin, dir: filepath.Join(c.dir, fmt.Sprintf("node%d", i+1)),
			termAddr: ports[i*4], adminAddr: ports[i*4+1], nats: ports[i*4+2]}
		if n.n == 3 {
			n.nats = "none" // node 3 lets no tool in (cluster.ClientAddrNone): every test runs it so
			n.storeMB, n.storeExt4 = o.StoreTmpfsMB, o.StoreExt4
		}
		if err := os.MkdirAll(n.dir, 0o755); err != nil {
			t.Fatal(err)
		}
		n.cfg = filepath.Join(n.dir, "switch.yaml")
		cfg := fmt.Sprintf(`# node %[1]d of the cluster tests
demo: true
data_dir: %[2]s
rules_dir: %[3]s
log: {txn_lines: false}
listeners: [{name: ascii, addr: "%[4]s"}]
admin: {addr: "%[5]s"}
demo_issuer: {external: "%[6]s", timeout: %[7]s}
shutdown: {drain_timeout: 5s}
qr: {orders: {wait: 20s}}
security: {card_hash_key_hex: "5357495443485941524444454d4f2d4b45592d464f522d504154482d48415348"}
cluster:
  mode: embedded
  node: %[1]d
  replicas: 3%[12]s
  embedded:
    server_name: n%[1]d
    client_addr: "%[8]s"
    cluster_name: e2e
    cluster_addr: "%[9]s"%[11]s
    routes: [%[10]s]
`, n.n, filepath.Join(n.dir, "data"), c.rules, n.termAddr, n.adminAddr, sim.Addr(), o.IssuerTimeout, n.nats,
			ports[i*4+3], nodeRoutes(n.n), advertise(n.n), leaseTTLKey(o.LeaseTTL))
		if err := os.WriteFile(n.cfg, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, n)
		t.Cleanup(func() {
			if n.running() {
				n.kill()
			}
		})
	}
	if os.Getenv("SWITCHYARD_E2E_KEEP") != "" {
		// Before the nodes are killed (cleanups run last first): a failed test's
		// running nodes dump their goroutines into their logs (SIGQUIT).
		t.Cleanup(func() {
			if !t.Failed() {
				return
			}
			for _, n := range c.nodes {
				if n.running() {
					_ = n.cmd.Process.Signal(syscall.SIGQUIT)
					select {
					case <-n.exited:
					case <-time.After(5 * time.Second):
					}
				}
			}
		})
	}
	for _, n := range c.nodes {
		n.launch()
	}
	for _, n := range c.nodes {
		n.waitReady(60 * time.Second)
	}
	return c
}

// keepGoroutines writes the nodes' goroutine dumps (/debug/pprof/goroutine) to
// $SWITCHYARD_E2E_KEEP, when it is set: what a node still waits for when a test
// gives up on it.
func (c *testCluster) keepGoroutines(nodes ...*clusterNode) {
	keep := os.Getenv("SWITCHYARD_E2E_KEEP")
	if keep == "" {
		return
	}
	for _, n := range nodes {
		code, b, err := n.api("GET", "/debug/pprof/goroutine?debug=2", "", nil)
		name := filepath.Join(keep, fmt.Sprintf("%s-node%d-goroutines-%d.txt", strings.ReplaceAll(c.t.Name(), "/", "_"), n.n, time.Now().UnixNano()))
		if err == nil && code == http.StatusOK {
			err = os.WriteFile(name, b, 0o644)
		}
		c.t.Logf("node %d's goroutines: %s (%d %v)", n.n, name, code, err)
	}
}

// node returns node n (1..3).
func (c *testCluster) node(n int) *clusterNode { return c.nodes[n-1] }

// launch starts the node's process without waiting for it.
func (n *clusterNode) launch() {
	n.t.Helper()
	n.runs++
	logf, err := os.Create(filepath.Join(n.dir, fmt.Sprintf("switch-%d.log", n.runs)))
	if err != nil {
		n.t.Fatal(err)
	}
	n.cmd = exec.Command(n.bin, "serve", "--config", n.cfg)
	if n.storeMB > 0 {
		// The script ends by exec-ing the switch: the process started is the switch,
		// whose pid names the namespace (storeDisk).
		disk := fmt.Sprintf(`mkdir -p "$STORE" && mount -t tmpfs -o size=%dm tmpfs "$STORE"`, n.storeMB)
		if n.storeExt4 {
			// The loop device is detached when the namespace's last process exits
			// (mount -o loop sets autoclear).
			disk = fmt.Sprintf(`mkdir -p "$STORE" "$BACK" && mount -t tmpfs -o size=%dm tmpfs "$BACK" && truncate -s 256M "$BACK/img" && mkfs.ext4 -q -F "$BACK/img" && mount -o loop "$BACK/img" "$STORE"`, n.storeMB)
		}
		n.cmd = exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", disk+` && exec "$BIN" serve --config "$CFG"`)
		n.cmd.Env = append(os.Environ(), "BIN="+n.bin, "CFG="+n.cfg, "STORE="+n.storeDir(), "BACK="+n.storeBacking())
	}
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	exited := make(chan struct{})
	n.exited = exited
	cmd := n.cmd
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
}

// storeDir is the node's JetStream store (the default, data_dir/jetstream).
func (n *clusterNode) storeDir() string { return filepath.Join(n.dir, "data", "jetstream") }

// storeBacking is where the image of the node's store lives (clusterOptions.StoreExt4).
func (n *clusterNode) storeBacking() string { return filepath.Join(n.dir, "storedisk") }

// storeDisk is the tmpfs of the node's JetStream store (clusterOptions.StoreTmpfsMB)
// as the test reaches it: through /proc/<pid>/root, into the node's mount namespace.
func (n *clusterNode) storeDisk() string {
	return filepath.Join("/proc", fmt.Sprint(n.cmd.Process.Pid), "root", n.storeDir())
}

// logName is the log file of the node's current run.
func (n *clusterNode) logName() string {
	return filepath.Join(n.dir, fmt.Sprintf("switch-%d.log", n.runs))
}

func (n *clusterNode) running() bool {
	if n.exited == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// waitReady polls /readyz until it answers 200; it fails the test, with the end of the
// node's log, if the process exits or the deadline passes.
func (n *clusterNode) waitReady(d time.Duration) {
	n.t.Helper()
	deadline := time.Now().Add(d)
	for {
		code, _ := n.readyz()
		if code == http.StatusOK {
			return
		}
		if !n.running() {
			n.t.Fatalf("node %d exited before it was ready; its log ends:\n%s", n.n, n.logTail(3000))
		}
		if time.Now().After(deadline) {
			_, body := n.readyz()
			n.t.Fatalf("node %d not ready after %s (/readyz: %q); its log ends:\n%s\n%s", n.n, d, body, n.logTail(1500), n.mainStack())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readyz returns /readyz's status code and body (0 when the node does not answer).
func (n *clusterNode) readyz() (int, string) {
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get("http://" + n.adminAddr + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// mainStack makes a node that hangs dump its goroutines (SIGQUIT) and returns the
// stack of its main goroutine: where the start is stuck.
func (n *clusterNode) mainStack() string {
	_ = n.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-n.exited:
	case <-time.After(10 * time.Second):
		return "(no goroutine dump within 10 s of SIGQUIT)"
	}
	b, _ := os.ReadFile(n.logName())
	for _, g := range strings.Split(string(b), "\n\n") {
		if strings.HasPrefix(g, "goroutine 1 ") {
			return "its main goroutine:\n" + g
		}
	}
	return "(no main goroutine in the dump)"
}

// logGrep returns the lines of the node's logs (every run) that contain any of words.
func (n *clusterNode) logGrep(words ...string) string {
	var out []string
	for run := 1; run <= n.runs; run++ {
		b, _ := os.ReadFile(filepath.Join(n.dir, fmt.Sprintf("switch-%d.log", run)))
		for _, line := range strings.Split(string(b), "\n") {
			for _, w := range words {
				if strings.Contains(line, w) {
					out = append(out, fmt.Sprintf("node %d run %d: %s", n.n, run, line))
					break
				}
			}
		}
	}
	return strings.Join(out, "\n")
}

func (n *clusterNode) logTail(max int) string {
	b, _ := os.ReadFile(n.logName())
	return tail(string(b), max)
}

// kill sends SIGKILL and waits for the process to be gone.
func (n *clusterNode) kill() {
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.exited
}

// stop sends SIGTERM and waits for a graceful exit (SIGKILL after 30 s).
func (n *clusterNode) stop() error {
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
		if st := n.cmd.ProcessState; st != nil && !st.Success() {
			if held := n.logGrep("drain deadline passed"); held != "" {
				// The goroutines at the drain's deadline, from the node's log.
				return fmt.Errorf("node %d: %s; %s", n.n, st, tail(strings.ReplaceAll(held, `\n`, "\n"), 30000))
			}
			return fmt.Errorf("node %d: %s", n.n, st)
		}
		return nil
	case <-time.After(30 * time.Second):
		stack := n.mainStack() // where Close is stuck; SIGQUIT ends the process
		n.kill()
		return fmt.Errorf("node %d did not stop within 30 s of SIGTERM; %s", n.n, stack)
	}
}

// api does an admin API request with token and returns the status and body.
func (n *clusterNode) api(method, path, token string, body io.Reader) (int, []byte, error) {
	req, err := http.NewRequest(method, "http://"+n.adminAddr+path, body)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	cl := http.Client{Timeout: 10 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// journal reads the node's whole journal (every node's records, in a cluster) through
// the admin API, optionally for one terminal.
func (n *clusterNode) journal(tid string) ([]*journal.Record, error) {
	q := url.Values{}
	if tid != "" {
		q.Set("tid", tid)
	}
	return n.journalQuery(q)
}

// journalQuery reads the node's journal records that match q (tid, from, to...).
func (n *clusterNode) journalQuery(q url.Values) ([]*journal.Record, error) {
	code, b, err := n.api("GET", "/api/v1/journal?"+q.Encode(), tokOperator, nil)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("node %d: GET /api/v1/journal: %d %s", n.n, code, b)
	}
	var out []*journal.Record
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		var probe struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(line, &probe) == nil && probe.Error != "" {
			return out, fmt.Errorf("node %d: journal scan: %s", n.n, probe.Error)
		}
		r := &journal.Record{}
		if err := json.Unmarshal(line, r); err != nil {
			return out, fmt.Errorf("node %d: journal line %q: %w", n.n, line, err)
		}
		out = append(out, r)
	}
	return out, sc.Err()
}

// settlement returns the node's settlement report of a day (YYYY-MM-DD, Asia/Shanghai).
func (n *clusterNode) settlement(date string) (*server.Settlement, error) {
	code, b, err := n.api("GET", "/api/v1/settlement?date="+date, tokOperator, nil)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("node %d: settlement %s: %d %s", n.n, date, code, b)
	}
	s := &server.Settlement{}
	return s, json.Unmarshal(b, s)
}

// cliOn runs a switchyard command against node n's admin API.
func (c *testCluster) cliOn(n int, token string, args ...string) (string, int) {
	c.t.Helper()
	args = append(args, "--admin", "http://"+c.node(n).adminAddr, "--token", token)
	return cliLocal(args...)
}

// failoverTerm is a terminal that knows every node (termclient.Failover): when its
// node's connection dies or an answer does not come in time it reconnects to the next
// node and resends the same request (the same DE 11 and DE 7), until the request is
// answered or its patience runs out.
type failoverTerm struct {
	f *termclient.Failover
}

// newFailoverTerm is a terminal of the cluster that starts with node first (1..3).
func newFailoverTerm(c *testCluster, first int) *failoverTerm {
	var addrs []string
	for _, n := range c.nodes {
		addrs = append(addrs, n.termAddr)
	}
	return &failoverTerm{f: termclient.NewFailover(addrs, first-1, message.DialectASCII, nil)}
}

// singleNodeTerm is a terminal of node n alone, which waits up to patience for its
// answer without resending: how long that node takes to answer.
func singleNodeTerm(c *testCluster, n int, patience time.Duration) *failoverTerm {
	ft := &failoverTerm{f: termclient.NewFailover([]string{c.node(n).termAddr}, 0, message.DialectASCII, nil)}
	ft.f.PerTry = patience
	return ft
}

func (ft *failoverTerm) close() { ft.f.Close() }

// send sends tx (whose STAN and Time must be set, so that every resend is the same
// request) until it is answered or patience has passed; it returns the answer, the node
// (1..3) that gave it and how many times the request went out.
func (ft *failoverTerm) send(tx termclient.Txn, patience time.Duration) (r termclient.Result, node, sends int, err error) {
	m, err := termclient.Build(tx, message.DialectASCII)
	if err != nil {
		return r, 0, 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	resp, i, sends, err := ft.f.Send(ctx, m, nil)
	if err != nil {
		return r, 0, sends, err
	}
	r, err = termclient.Decode(resp)
	return r, i + 1, sends, err
}

// clusterTold is what a failover terminal was told about one purchase.
type clusterTold struct {
	tid, stan, de7 string
	amount         int64
	rc, rrn, auth  string
	node           int  // the node that answered (0: none)
	sends          int  // how often the purchase went out (more than 1: resent after a failover)
	answered       bool // false: no answer from any node; the terminal reversed it
	reversed       bool // not answered, and the terminal's reversal was answered 00
	at             time.Time
}

func (t clusterTold) key() string { return t.tid + "/" + t.stan + "/" + t.de7 }

// clusterTerminalLoop sends purchases one at a time from tid, first to node first,
// failing over as needed; a purchase no node answered is reversed (0400, same
// failover) until a reversal is answered. Amounts never end in 05, 51 or 91 (the demo
// issuer's own declines).
func clusterTerminalLoop(ctx context.Context, c *testCluster, first int, tid string, seq int, out chan<- clusterTold) {
	ft := newFailoverTerm(c, first)
	defer ft.close()
	// At most 25 purchases a second per terminal: a node that answers 91 at once (its
	// issuer link down) must not flood the journals of a two-core test machine.
	pace := time.NewTicker(40 * time.Millisecond)
	defer pace.Stop()
	for i := 0; ctx.Err() == nil; i++ {
		select {
		case <-pace.C:
		case <-ctx.Done():
			return
		}
		now := time.Now()
		tx := termclient.Txn{PAN: testPAN(seq*10000 + i), Amount: int64(1000 + (i%50)*100), Expiry: "2912", TID: tid,
			MID: "000000000000003", STAN: fmt.Sprintf("%06d", i+1), Time: now}
		r, node, sends, err := ft.send(tx, 20*time.Second)
		told := clusterTold{tid: tid, stan: tx.STAN, de7: message.FormatDE7(now), amount: tx.Amount, node: node, sends: sends, at: now}
		if err == nil {
			told.rc, told.rrn, told.auth, told.answered = r.RC, r.RRN, r.AuthCode, true
			out <- told
			continue
		}
		// No answer: reverse it, as long as it takes, but not past 15 s after the
		// load has ended (told.reversed stays false then, and the test says so).
		var giveUp time.Time
		for j := 0; ; j++ {
			rev := termclient.Txn{MTI: "0400", ProcCode: "000000", Amount: tx.Amount, TID: tid, MID: "000000000000003",
				STAN: fmt.Sprintf("9%05d", (i*10+j)%100000), Time: time.Now(), Original: termclient.OriginalData("0200", tx.STAN, told.de7)}
			if r, _, _, err := ft.send(rev, 5*time.Second); err == nil && r.RC == "00" {
				told.reversed = true
				break
			}
			if ctx.Err() != nil {
				if giveUp.IsZero() {
					giveUp = time.Now().Add(15 * time.Second)
				}
				if time.Now().After(giveUp) {
					break
				}
			}
		}
		out <- told
	}
}

// waitUntil polls ok every 100 ms until it holds or d passes, and returns how long it
// took; it fails the test with what() on the deadline.
func waitUntil(t *testing.T, d time.Duration, what func() string, ok func() bool) time.Duration {
	t.Helper()
	return waitUntilOr(t.Fatalf, d, what, ok)
}

// waitUntilOr is waitUntil reporting the deadline with fail (t.Errorf to go on).
func waitUntilOr(fail func(format string, args ...any), d time.Duration, what func() string, ok func() bool) time.Duration {
	start := time.Now()
	for !ok() {
		if time.Since(start) > d {
			fail("after %s: %s", d, what())
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start)
}

// shanghaiDates are the acquirer's days (the demo's Asia/Shanghai) from..to touch.
func shanghaiDates(from, to time.Time) []string {
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		loc = time.FixedZone("CST", 8*3600)
	}
	a, b := from.In(loc).Format("2006-01-02"), to.In(loc).Format("2006-01-02")
	if a == b {
		return []string{a}
	}
	return []string{a, b}
}

// settledFor sums the settlement lines of the given terminals over dates on node n.
func settledFor(n *clusterNode, dates []string, tids map[string]bool) (count, amount int64, err error) {
	for _, d := range dates {
		s, err := n.settlement(d)
		if err != nil {
			return 0, 0, err
		}
		for _, l := range s.Lines {
			if tids[l.TID] {
				count += l.PurchaseCount
				amount += l.PurchaseAmount
			}
		}
	}
	return count, amount, nil
}
