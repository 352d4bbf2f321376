package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/internal/devpki"
)

// ClusterOptions configure `bench --cluster N`: the same load against one switch node
// (the single-node Badger mode) and against N nodes with embedded JetStream on this
// machine, in one run.
type ClusterOptions struct {
	// Exe is the switchyard binary (default: this process's executable).
	Exe string
	// Nodes is the cluster's size (3 to 5; the streams are R3).
	Nodes    int
	Duration time.Duration // measured time of each phase (default 20 s)
	// Warmup is the load before the measured window, for each phase (default
	// 60 s). A fresh process's first touches of the memory its heap grows into are
	// zeroed by the kernel, and on a virtual machine whose host has taken that
	// memory back each costs far more than the work around it; the nodes of a
	// cluster, each at a third of the single node's rate, grow for longer: with a
	// 3 s warm-up this machine measured the cluster at 7 to 11 times the single
	// node, with 60 s at 2.6 to 3.3 times (docs/cluster.md, "Warm-up and first
	// touches"). NodeFigures.FaultsPerAuth shows what was left in the window.
	Warmup    time.Duration
	Terminals int // distinct terminals (default 600)
	Conns     int // connections, spread over the nodes (default 8 per node)
	Depth     int // requests in flight per connection (default 8)
	// Rate, above zero, offers the single node and the cluster the same open loop
	// of this many authorizations a second instead of the closed loop: their CPU
	// per authorization compared at the same load. In the closed loop each runs as
	// fast as it can, and the single node, three to four times faster on this
	// machine, batches its journal's writes and its answers in larger groups.
	Rate float64
	// Profile takes a CPU profile of every switch process over the window, to split
	// the embedded nats-server's CPU from the switch's (one process, one /proc figure).
	Profile bool
	// TLS runs the cluster's embedded servers with mutual TLS on their routes and
	// client ports (cluster.embedded.tls), with a CA and certificates made for the
	// run (internal/devpki): what TLS costs the cluster.
	TLS bool
	// ProfileDir, when set, keeps those profiles there (single.pprof, node1.pprof...)
	// for `go tool pprof`.
	ProfileDir string
	// Rounds, above 1, repeats the run (a fresh single node, then a fresh cluster)
	// Rounds times: on a shared machine whose load drifts, each round's ratio
	// compares windows a minute apart at most, and Ratio is their median. The
	// tables show the last round.
	Rounds   int
	RulesDir string
	WorkDir  string
	Out      io.Writer
}

// Round is one round of alternating windows (ClusterOptions.Rounds).
type Round struct {
	SingleUS  float64 `json:"single_cpu_per_auth_us"`
	ClusterUS float64 `json:"cluster_cpu_per_auth_us"`
	Ratio     float64 `json:"ratio"`
	// Host is the round's HostSpeed.
	Host float64 `json:"host_speed,omitempty"`
}

// NodeFigures are one switch process's figures over a measured window.
type NodeFigures struct {
	Node     int     `json:"node"` // 0: the single node
	Answered int64   `json:"answered"`
	TPS      float64 `json:"tps"`
	CPUMS    int64   `json:"cpu_ms"`
	// CPUPerAuthUS is the process's CPU over the authorizations it answered.
	CPUPerAuthUS float64 `json:"cpu_per_auth_us"`
	// IdleCPUPerS is the process's CPU per second without load (ms/s): the cluster's
	// fixed costs (Raft heartbeats, leases, watchers), measured just before the load.
	IdleCPUPerS float64 `json:"idle_cpu_ms_per_s"`
	// MarginalPerAuthUS is CPUPerAuthUS without the idle CPU of the window: what one
	// more authorization costs, the figure to project a bigger machine's capacity from.
	MarginalPerAuthUS float64 `json:"marginal_cpu_per_auth_us"`
	// Shares split the process's CPU by the profile: nats-server (the embedded
	// JetStream server), nats.go (the client side) and switch (the rest); percent.
	Shares map[string]float64 `json:"shares,omitempty"`
	// FaultsPerAuth are the process's minor page faults in the window over the
	// authorizations it answered: a settled process has few (0.1 to 0.8 here), one
	// whose heap still grows into new memory more (see ClusterOptions.Warmup); -1
	// when /proc could not be read at the window's start or end.
	FaultsPerAuth float64 `json:"minor_faults_per_auth"`
}

// ClusterPhase is one measured phase: one node, or the cluster.
type ClusterPhase struct {
	Name  string        `json:"name"`
	Load  *LoadResult   `json:"-"`
	Nodes []NodeFigures `json:"nodes"`
	// CPUPerAuthUS is the CPU of every switch process over every authorization;
	// MarginalPerAuthUS the same without their idle CPU.
	CPUPerAuthUS, MarginalPerAuthUS float64
	// SimCPUPerAuthUS and HarnessCPUPerAuthUS: the issuer simulator and this process.
	SimCPUPerAuthUS, HarnessCPUPerAuthUS float64
	// HostCalibUS is the CPU time of calibrate's fixed work, the mean of a run in
	// the idle window before the load and one after it (0: not measured).
	HostCalibUS float64 `json:"host_calibration_us,omitempty"`
}

// ClusterReport is the outcome of `bench --cluster`.
type ClusterReport struct {
	Single, Cluster *ClusterPhase
	// TLS is whether the cluster's routes ran mutual TLS (ClusterOptions.TLS).
	TLS bool `json:"tls"`
	// Rate is the open loop both phases were offered (ClusterOptions.Rate), 0 for
	// closed loops.
	Rate float64 `json:"rate,omitempty"`
	// Ratio is the cluster's CPU per authorization over the single node's (target ≤ 1.5);
	// MarginalRatio the same of the marginal costs. With rounds, both are the
	// medians of the rounds'.
	Ratio, MarginalRatio float64
	// Rounds are the rounds' figures, in order (ClusterOptions.Rounds above 1).
	Rounds []Round `json:"rounds,omitempty"`
	// Host is HostSpeed of the (last round's) phases.
	Host float64 `json:"host_speed,omitempty"`
}

// failedWarn is the share of failures (91, 96) among a phase's answers past which
// the table says the phase was overloaded or unavailable.
const failedWarn = 0.01

// hostDrift is how far from 1 a HostSpeed may be before the table says that the
// host's speed moved between the phases.
const hostDrift = 1.2

// HostSpeed compares the host's speed in the two phases: the CPU time of the same
// fixed work (calibrate) in the single node's phase over the cluster's. A figure
// away from 1 says that the shared host ran slower (above 1: in the single node's
// phase) or faster, which moves the switches' CPU per authorization too, and the
// ratio with it. It is 0 when a phase lacks the figure. (The issuer simulator's and
// the harness's CPU per authorization are no such gauge: at one rate they still
// read and write more per authorization when the switch answers one request at a
// time, as the single node does, than when it answers in bursts.)
func HostSpeed(single, cluster *ClusterPhase) float64 {
	if single == nil || cluster == nil || single.HostCalibUS <= 0 || cluster.HostCalibUS <= 0 {
		return 0
	}
	return single.HostCalibUS / cluster.HostCalibUS
}

// RunCluster runs the issuer simulator, then one switch node under the load, then a
// cluster of o.Nodes nodes with embedded JetStream under the same load spread over its
// nodes, and reports both.
func RunCluster(ctx context.Context, o ClusterOptions) (*ClusterReport, error) {
	if o.Exe == "" {
		exe, err := selfExe()
		if err != nil {
			return nil, err
		}
		o.Exe = exe
	}
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Nodes < 3 || o.Nodes > 5 {
		return nil, fmt.Errorf("--cluster %d: a cluster of R3 streams needs 3 to 5 nodes", o.Nodes)
	}
	if o.Duration <= 0 {
		o.Duration = 20 * time.Second
	}
	if o.Warmup <= 0 {
		o.Warmup = time.Minute
	}
	o.Terminals = orDefault(o.Terminals, 600)
	o.Conns = orDefault(o.Conns, 8*o.Nodes)
	o.Depth = orDefault(o.Depth, 8)
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.RulesDir == "" {
		o.RulesDir = "rules"
	}
	rulesDir, err := filepath.Abs(o.RulesDir)
	if err != nil {
		return nil, err
	}
	dir, cleanup, err := workDir(o.WorkDir, "switchyard-bench-cluster-")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	simAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	sim, err := startProc(o.Exe, dir, "issuer-sim", "issuer-sim", "--addr", simAddr)
	if err != nil {
		return nil, err
	}
	defer sim.stop()
	rep := &ClusterReport{TLS: o.TLS, Rate: o.Rate}
	if o.Rounds <= 1 {
		if err := runRound(ctx, o, dir, "", rulesDir, simAddr, sim, rep); err != nil {
			return rep, err
		}
		if rep.Single.CPUPerAuthUS > 0 {
			rep.Ratio = rep.Cluster.CPUPerAuthUS / rep.Single.CPUPerAuthUS
		}
		if rep.Single.MarginalPerAuthUS > 0 {
			rep.MarginalRatio = rep.Cluster.MarginalPerAuthUS / rep.Single.MarginalPerAuthUS
		}
		rep.Host = HostSpeed(rep.Single, rep.Cluster)
		return rep, nil
	}
	// Rounds: each the procedure of one run, in a directory of its own.
	var ratios, marginal []float64
	for r := 1; r <= o.Rounds; r++ {
		label := fmt.Sprintf("round %d of %d: ", r, o.Rounds)
		if err := runRound(ctx, o, filepath.Join(dir, fmt.Sprintf("round%d", r)), label, rulesDir, simAddr, sim, rep); err != nil {
			return rep, err
		}
		if rep.Single.CPUPerAuthUS <= 0 || rep.Single.MarginalPerAuthUS <= 0 {
			return rep, fmt.Errorf("round %d: the single node answered nothing", r)
		}
		rd := Round{SingleUS: rep.Single.CPUPerAuthUS, ClusterUS: rep.Cluster.CPUPerAuthUS, Ratio: rep.Cluster.CPUPerAuthUS / rep.Single.CPUPerAuthUS,
			Host: HostSpeed(rep.Single, rep.Cluster)}
		rep.Rounds = append(rep.Rounds, rd)
		rep.Host = rd.Host
		ratios = append(ratios, rd.Ratio)
		marginal = append(marginal, rep.Cluster.MarginalPerAuthUS/rep.Single.MarginalPerAuthUS)
		host := ""
		if rd.Host > 0 {
			host = fmt.Sprintf(" (host speed single/cluster %.2f)", rd.Host)
		}
		fmt.Fprintf(o.Out, "%ssingle %.1f µs, cluster %.1f µs an authorization: %.2f×%s\n", label, rd.SingleUS, rd.ClusterUS, rd.Ratio, host)
	}
	rep.Ratio, rep.MarginalRatio = median(ratios), median(marginal)
	return rep, nil
}

// runRound measures a fresh single node, stops it, then a fresh cluster, and stops
// it (so that neither's background work after its load, a compaction, lands in the
// other's window), with their data under dir; it sets rep.Single and rep.Cluster.
// label leads its progress lines.
func runRound(ctx context.Context, o ClusterOptions, dir, label, rulesDir, simAddr string, sim *proc, rep *ClusterReport) error {
	// One node, the single-node Badger mode.
	single, err := startNodes(ctx, o.Exe, filepath.Join(dir, "single"), rulesDir, simAddr, 1, false, false)
	if err != nil {
		return err
	}
	loop := "closed loop"
	if o.Rate > 0 {
		loop = fmt.Sprintf("open loop of %.0f/s", o.Rate)
	}
	fmt.Fprintf(o.Out, "%ssingle node: %d terminals over %d connections, %d in flight each, %s, %s warm-up, %s measured\n",
		label, o.Terminals, o.Conns, o.Depth, loop, o.Warmup, o.Duration)
	rep.Single, err = measure(ctx, o, "single node", single, sim)
	stopNodes(single, o.Out)
	if err != nil {
		return err
	}

	// The cluster.
	nodes, err := startNodes(ctx, o.Exe, filepath.Join(dir, "cluster"), rulesDir, simAddr, o.Nodes, true, o.TLS)
	if err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "%scluster of %d nodes (embedded JetStream, R3): the same load spread over the nodes\n", label, o.Nodes)
	rep.Cluster, err = measure(ctx, o, fmt.Sprintf("cluster of %d", o.Nodes), nodes, sim)
	stopNodes(nodes, o.Out)
	return err
}

// median returns the median of xs (the mean of the middle two for an even count).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// benchNode is a switch process of the cluster bench.
type benchNode struct {
	n                   int // 0: the single node
	p                   *proc
	termAddr, adminAddr string
}

// startNodes writes the configurations of n switch nodes (a cluster with embedded
// JetStream when cluster is set, its routes and client ports mutual TLS when tls is)
// and starts them at once, returning when each is ready and approves.
func startNodes(ctx context.Context, exe, dir, rulesDir, simAddr string, n int, cluster, tls bool) ([]*benchNode, error) {
	var ca *devpki.CA
	pki := filepath.Join(dir, "pki")
	if cluster && tls {
		if err := os.MkdirAll(pki, 0o700); err != nil {
			return nil, err
		}
		var err error
		if ca, err = devpki.NewCA(pki, "bench-cluster"); err != nil {
			return nil, err
		}
	}
	var nodes []*benchNode
	var routes []string
	type ports struct{ term, admin, client, route string }
	ps := make([]ports, n)
	for i := range ps {
		var err error
		addrs := make([]string, 4)
		for j := range addrs {
			if addrs[j], err = freeAddr(); err != nil {
				return nil, err
			}
		}
		ps[i] = ports{addrs[0], addrs[1], addrs[2], addrs[3]}
		routes = append(routes, "nats-route://"+addrs[3])
	}
	for i := range n {
		nd := &benchNode{termAddr: ps[i].term, adminAddr: ps[i].admin}
		name := "switch"
		if cluster {
			nd.n = i + 1
			name = fmt.Sprintf("node%d", nd.n)
		}
		ndir := filepath.Join(dir, name)
		if err := os.MkdirAll(ndir, 0o755); err != nil {
			stopNodes(nodes, io.Discard)
			return nil, err
		}
		cfg := switchConfig(filepath.Join(ndir, "data"), rulesDir, nd.termAddr, nd.adminAddr, simAddr)
		if cluster {
			cfg += fmt.Sprintf(`cluster:
  mode: embedded
  node: %d
  replicas: 3
  embedded:
    server_name: n%d
    client_addr: "%s"
    cluster_name: bench
    cluster_addr: "%s"
    routes: [%s]
`, nd.n, nd.n, ps[i].client, ps[i].route, strings.Join(routes, ", "))
			if ca != nil {
				cert, key, err := ca.Issue(pki, fmt.Sprintf("n%d", nd.n))
				if err != nil {
					stopNodes(nodes, io.Discard)
					return nil, err
				}
				cfg += fmt.Sprintf("    tls: {ca_file: %q, cert_file: %q, key_file: %q}\n", ca.File, cert, key)
			}
		}
		file := filepath.Join(ndir, "switch.yaml")
		if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
			stopNodes(nodes, io.Discard)
			return nil, err
		}
		p, err := startProc(exe, ndir, "switch", "serve", "--config", file)
		if err != nil {
			stopNodes(nodes, io.Discard)
			return nil, err
		}
		nd.p = p
		nodes = append(nodes, nd)
	}
	for _, nd := range nodes {
		if err := waitReady(ctx, "http://"+nd.adminAddr+"/readyz", nd.p); err != nil {
			stopNodes(nodes, io.Discard)
			return nil, err
		}
		if err := waitApproving(ctx, nd.termAddr); err != nil {
			stopNodes(nodes, io.Discard)
			return nil, fmt.Errorf("%s: %w (see %s)", nd.p.name, err, nd.p.log.Name())
		}
	}
	return nodes, nil
}

func stopNodes(nodes []*benchNode, out io.Writer) {
	var wg sync.WaitGroup
	for _, nd := range nodes {
		wg.Go(func() {
			if err := nd.p.stop(); err != nil {
				fmt.Fprintf(out, "%s exit: %v\n", nd.p.log.Name(), err)
			}
		})
	}
	wg.Wait()
}

// switchConfig is the demo switch's configuration of the benches.
func switchConfig(dataDir, rulesDir, termAddr, adminAddr, simAddr string) string {
	return fmt.Sprintf(`# written by switchyard bench
demo: true
data_dir: %s
rules_dir: %s
# Every terminal of the bench comes from one address: its limit is the switch's.
listeners:
  - {name: ascii, addr: "%s", dialect: ascii, max_in_flight: 1024, max_in_flight_per_source: 20000}
admin: {addr: "%s"}
demo_issuer: {external: "%s"}
shutdown: {drain_timeout: 10s}
security: {card_hash_key_hex: "5357495443485941524444454d4f2d4b45592d464f522d504154482d48415348"}
`, dataDir, rulesDir, termAddr, adminAddr, simAddr)
}

// measure loads the nodes (plain purchases, connections spread over them) and reads
// each process's CPU over the window, and its profile when asked.
func measure(ctx context.Context, o ClusterOptions, name string, nodes []*benchNode, sim *proc) (*ClusterPhase, error) {
	ph := &ClusterPhase{Name: name}
	var addrs []string
	for _, nd := range nodes {
		addrs = append(addrs, nd.termAddr)
	}
	start := make([]procStat, len(nodes))
	cpu := make([]time.Duration, len(nodes))
	faults := make([]uint64, len(nodes))
	faultsOK := make([]bool, len(nodes)) // both reads of the window succeeded
	profiles := make([][]byte, len(nodes))
	var simStart, selfStart, simCPU, selfCPU time.Duration
	var profWG sync.WaitGroup
	// The host's speed before the load (and after it, below), while the nodes idle.
	calibBefore := calibrate()
	// The idle CPU first, over a few seconds without load.
	const idleWindow = 3 * time.Second
	idle := make([]time.Duration, len(nodes))
	for i, nd := range nodes {
		idle[i], _ = cpuTime(nd.p.cmd.Process.Pid)
	}
	select {
	case <-time.After(idleWindow):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	for i, nd := range nodes {
		end, _ := cpuTime(nd.p.cmd.Process.Pid)
		idle[i] = end - idle[i]
	}
	lo := LoadOptions{Addrs: addrs, Terminals: o.Terminals, Conns: o.Conns, Depth: o.Depth, Duration: o.Duration, Warmup: o.Warmup, Rate: o.Rate, Progress: o.Out}
	lo.onStart = func() {
		for i, nd := range nodes {
			var err error
			if start[i], err = readProcStat(nd.p.cmd.Process.Pid); err != nil {
				fmt.Fprintf(o.Out, "%s: %v\n", nd.p.name, err)
			}
			faultsOK[i] = err == nil
			if o.Profile {
				profWG.Go(func() {
					var buf bytes.Buffer
					if err := fetchProfileTo(ctx, "http://"+nd.adminAddr, o.Duration, &buf); err != nil {
						fmt.Fprintf(o.Out, "%s: cpu profile: %v\n", nd.p.name, err)
						return
					}
					profiles[i] = buf.Bytes()
				})
			}
		}
		simStart, _ = cpuTime(sim.cmd.Process.Pid)
		selfStart, _ = cpuTime(os.Getpid())
	}
	lo.onEnd = func() {
		for i, nd := range nodes {
			end, err := readProcStat(nd.p.cmd.Process.Pid)
			if err != nil {
				fmt.Fprintf(o.Out, "%s: %v\n", nd.p.name, err)
				faultsOK[i] = false
				continue
			}
			cpu[i], faults[i] = end.cpu-start[i].cpu, end.minflt-start[i].minflt
		}
		end, _ := cpuTime(sim.cmd.Process.Pid)
		simCPU = end - simStart
		end, _ = cpuTime(os.Getpid())
		selfCPU = end - selfStart
	}
	res, err := RunLoad(ctx, lo)
	profWG.Wait()
	if err != nil {
		return nil, fmt.Errorf("%s load: %w", name, err)
	}
	if calibBefore > 0 {
		ph.HostCalibUS = float64((calibBefore + calibrate()).Microseconds()) / 2
	}
	if err := ctx.Err(); err != nil {
		return nil, err // interrupted: RunLoad returns what it measured so far
	}
	// Nothing authorized (failures alone, 91s of a lost lease) would read as a
	// cluster of no cost: its ratio 0.
	if err := res.Measured(); err != nil {
		return nil, fmt.Errorf("%s load: %w", name, err)
	}
	ps := []*proc{sim}
	for _, nd := range nodes {
		ps = append(ps, nd.p)
	}
	if err := checkAlive(ps...); err != nil {
		return nil, fmt.Errorf("%s load: %w", name, err)
	}
	ph.Load = res
	var total time.Duration
	var idleInWindow float64 // µs
	for i, nd := range nodes {
		f := NodeFigures{Node: nd.n, Answered: res.ByAddr[nd.termAddr], CPUMS: cpu[i].Milliseconds()}
		f.TPS = float64(f.Answered) / res.Elapsed.Seconds()
		f.IdleCPUPerS = float64(idle[i].Microseconds()) / 1000 / idleWindow.Seconds()
		if f.Answered > 0 {
			f.CPUPerAuthUS = float64(cpu[i].Microseconds()) / float64(f.Answered)
			f.MarginalPerAuthUS = (float64(cpu[i].Microseconds()) - f.IdleCPUPerS*1000*res.Elapsed.Seconds()) / float64(f.Answered)
			if faultsOK[i] {
				f.FaultsPerAuth = float64(faults[i]) / float64(f.Answered)
			} else {
				f.FaultsPerAuth = -1 // unknown: /proc could not be read
			}
		}
		if profiles[i] != nil && o.ProfileDir != "" {
			name := "single.pprof"
			if nd.n > 0 {
				name = fmt.Sprintf("node%d.pprof", nd.n)
			}
			if err := os.MkdirAll(o.ProfileDir, 0o755); err == nil {
				err = os.WriteFile(filepath.Join(o.ProfileDir, name), profiles[i], 0o644)
			}
			if err != nil {
				fmt.Fprintf(o.Out, "keep profile: %v\n", err)
			}
		}
		if profiles[i] != nil {
			shares, sum, err := ProfileShares(bytes.NewReader(profiles[i]), NATSClass)
			if err != nil {
				fmt.Fprintf(o.Out, "%s: %v\n", nd.p.name, err)
			} else if sum > 0 {
				f.Shares = map[string]float64{}
				for k, v := range shares {
					f.Shares[k] = 100 * float64(v) / float64(sum)
				}
			}
		}
		total += cpu[i]
		idleInWindow += f.IdleCPUPerS * 1000 * res.Elapsed.Seconds()
		ph.Nodes = append(ph.Nodes, f)
	}
	if n := res.Hist.TotalCount(); n > 0 {
		ph.CPUPerAuthUS = float64(total.Microseconds()) / float64(n)
		ph.MarginalPerAuthUS = (float64(total.Microseconds()) - idleInWindow) / float64(n)
		ph.SimCPUPerAuthUS = float64(simCPU.Microseconds()) / float64(n)
		ph.HarnessCPUPerAuthUS = float64(selfCPU.Microseconds()) / float64(n)
	}
	return ph, nil
}

// fetchProfileTo writes a CPU profile of d from the switch at base into w; it gives
// up when ctx ends. (It waited out the profile's whole duration, through a temporary
// file: an interrupted cluster bench took up to --duration to stop its nodes, and a
// second Ctrl-C left the file behind.)
func fetchProfileTo(ctx context.Context, base string, d time.Duration, w io.Writer) error {
	secs := int(d.Seconds())
	if secs < 1 {
		secs = 1
	}
	url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, secs)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile %s: %s", url, resp.Status)
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("profile %s: %w", url, err)
	}
	return nil
}

// WriteTable prints the report: each phase's throughput and latency, then each
// switch process's CPU per authorization and, with profiles, how it splits.
func (r *ClusterReport) WriteTable(w io.Writer) {
	fmt.Fprintln(w)
	if len(r.Rounds) > 1 {
		// The phases below are the last round's; the verdict is the rounds' median.
		fmt.Fprintf(w, "the last of %d rounds (the verdict below is the rounds' median):\n", len(r.Rounds))
	}
	head := "cluster"
	if r.TLS {
		head = "cluster (TLS)"
	}
	fmt.Fprintf(w, "%-34s %14s %14s\n", "", "single node", head)
	row := func(name string, f func(*ClusterPhase) string) {
		fmt.Fprintf(w, "%-34s %14s %14s\n", name, f(r.Single), f(r.Cluster))
	}
	load := func(f func(*LoadResult) string) func(*ClusterPhase) string {
		return func(p *ClusterPhase) string {
			if p == nil || p.Load == nil {
				return "-"
			}
			return f(p.Load)
		}
	}
	if r.Rate > 0 {
		row("offered (open loop) /s", func(*ClusterPhase) string { return fmt.Sprintf("%.0f", r.Rate) })
	}
	row("authorizations/s", load(func(l *LoadResult) string { return fmt.Sprintf("%.0f", l.TPS) }))
	row("latency p50", load(func(l *LoadResult) string { return fmtUS(l.Hist.ValueAtQuantile(50)) }))
	row("latency p99", load(func(l *LoadResult) string { return fmtUS(l.Hist.ValueAtQuantile(99)) }))
	row("latency max", load(func(l *LoadResult) string { return fmtUS(l.Hist.Max()) }))
	row("errors (unanswered)", load(func(l *LoadResult) string { return fmt.Sprint(l.Errors) }))
	row("failed (91, 96)", load(func(l *LoadResult) string { return fmt.Sprint(l.Failed) }))
	row("malformed (no DE 39)", load(func(l *LoadResult) string { return fmt.Sprint(l.Malformed) }))
	row("switch CPU µs/auth (all nodes)", func(p *ClusterPhase) string {
		if p == nil {
			return "-"
		}
		return fmt.Sprintf("%.1f", p.CPUPerAuthUS)
	})
	row("  marginal (without idle CPU)", func(p *ClusterPhase) string {
		if p == nil {
			return "-"
		}
		return fmt.Sprintf("%.1f", p.MarginalPerAuthUS)
	})
	row("issuer-sim CPU µs/auth", func(p *ClusterPhase) string {
		if p == nil {
			return "-"
		}
		return fmt.Sprintf("%.1f", p.SimCPUPerAuthUS)
	})
	row("harness CPU µs/auth", func(p *ClusterPhase) string {
		if p == nil {
			return "-"
		}
		return fmt.Sprintf("%.1f", p.HarnessCPUPerAuthUS)
	})
	row("response codes", load(func(l *LoadResult) string {
		var s []string
		for _, k := range sortedKeys(l.Codes) {
			s = append(s, fmt.Sprintf("%s:%d", k, l.Codes[k]))
		}
		return strings.Join(s, " ")
	}))
	fmt.Fprintf(w, "\nper node:\n%-12s %10s %10s %10s %12s %14s %14s %12s   %s\n", "", "answered", "auth/s", "CPU ms", "idle ms/s", "CPU µs/auth", "marginal µs", "faults/auth", "CPU split by profile")
	for _, p := range []*ClusterPhase{r.Single, r.Cluster} {
		if p == nil {
			continue
		}
		for _, f := range p.Nodes {
			name := "single"
			if f.Node > 0 {
				name = fmt.Sprintf("node %d", f.Node)
			}
			var split []string
			keys := make([]string, 0, len(f.Shares))
			for k := range f.Shares {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				split = append(split, fmt.Sprintf("%s %.1f%% (%.1f µs)", k, f.Shares[k], f.Shares[k]*f.CPUPerAuthUS/100))
			}
			faults := "-"
			if f.FaultsPerAuth >= 0 {
				faults = fmt.Sprintf("%.2f", f.FaultsPerAuth)
			}
			fmt.Fprintf(w, "%-12s %10d %10.0f %10d %12.1f %14.1f %14.1f %12s   %s\n", name, f.Answered, f.TPS, f.CPUMS, f.IdleCPUPerS, f.CPUPerAuthUS,
				f.MarginalPerAuthUS, faults, strings.Join(split, ", "))
		}
	}
	if len(r.Rounds) > 0 {
		fmt.Fprintf(w, "\nrounds (single node and cluster measured in turn, CPU µs an authorization):\n%-8s %12s %12s %8s %12s\n", "round", "single", "cluster", "ratio", "host speed")
		for i, rd := range r.Rounds {
			fmt.Fprintf(w, "%-8d %12.1f %12.1f %7.2f× %12.2f\n", i+1, rd.SingleUS, rd.ClusterUS, rd.Ratio, rd.Host)
		}
	}
	if r.Ratio > 0 {
		verdict := "met"
		if r.Ratio > 1.5 {
			verdict = "NOT met"
		}
		of := ""
		if len(r.Rounds) > 0 {
			of = fmt.Sprintf(" (median of %d rounds)", len(r.Rounds))
		}
		fmt.Fprintf(w, "\ncluster/single CPU per authorization%s: %.2f× (target ≤ 1.5×: %s); marginal costs: %.2f×\n", of, r.Ratio, verdict, r.MarginalRatio)
	}
	for _, ph := range []struct {
		name string
		p    *ClusterPhase
	}{{"single node's", r.Single}, {"cluster's", r.Cluster}} {
		if ph.p == nil || ph.p.Load == nil || ph.p.Load.Failed == 0 {
			continue
		}
		failed, all := ph.p.Load.Failed, ph.p.Load.Failed+ph.p.Load.Hist.TotalCount()
		if float64(failed) > failedWarn*float64(all) {
			fmt.Fprintf(w, "the %s phase answered %d of its %d answers with a failure (%s, %.0f%%): it was overloaded or unavailable, and its CPU per authorization counts the failures' work; read its ratio as that, not as its cost (a lower --rate)\n",
				ph.name, failed, all, failedCodes(ph.p.Load.Codes), 100*float64(failed)/float64(all))
		}
	}
	if r.Host > 0 && r.Single != nil && r.Cluster != nil {
		of := ""
		if len(r.Rounds) > 1 {
			of = " (last round)"
		}
		fmt.Fprintf(w, "host speed%s: the same fixed work took %.2f× as much CPU in the single node's phase as in the cluster's (%.0f / %.0f µs)\n", of, r.Host, r.Single.HostCalibUS, r.Cluster.HostCalibUS)
		if r.Host > hostDrift || r.Host < 1/hostDrift {
			slower := "single node's"
			if r.Host < 1 {
				slower = "cluster's"
			}
			fmt.Fprintf(w, "  the host ran slower in the %s phase: the switches' figures moved by about as much, and the ratio with them; run again, or with --rounds\n", slower)
		}
	}
}
