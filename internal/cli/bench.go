package cli

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/switchyard/switchyard/bench"
	"github.com/switchyard/switchyard/internal/cli/kit"
)

func init() {
	Register("bench", "load the demo switch like a real fleet and compare it with a plain relay", runBench)
	Register("bench-relay", "the bench's baseline: a plain framing relay (used by bench)", runBenchRelay)
}

func runBench(env *Env, args []string) int {
	fs := newFlags(env, "bench", "[--duration D] [--terminals N] [--conns N] [--depth N] | --faults [--outage D] [--after-outage D] ... | --cluster 3 [--profile] [--cluster-tls] [--rounds N]")
	o := bench.Options{Out: env.Stderr}
	fs.DurationVar(&o.Duration, "duration", 30e9, "measured time against the switch")
	fs.DurationVar(&o.Warmup, "warmup", 3e9, "warm-up before measuring (--cluster: 1m unless given, see docs/cluster.md)")
	fs.DurationVar(&o.RelayDuration, "relay-duration", 0, "measured time against the relay (default duration/3, at least 5s, and at least 10s when --duration is)")
	fs.DurationVar(&o.RelayBurn, "relay-burn", 0, "the relay spends this much CPU on each request: the latency a process of that cost gets on this machine beside the harness and the simulator")
	fs.DurationVar(&o.RelayJournalWindow, "relay-journal-window", -1, "with --relay-journal: the relay's group commit window (-1ns: the switch's journal.window default, 1ms)")
	fs.DurationVar(&o.JournalWindow, "journal-window", -1, "the switch's journal.window (-1ns: the switch's own, 1ms)")
	fs.Float64Var(&o.JournalWindowCPU, "journal-window-cpu", -1, "the switch's journal.window_cpu, 0 to 1 (-1: the switch's own, 0.7; 0: the window follows the write rate alone)")
	fs.BoolVar(&o.RelayJournal, "relay-journal", false, "the relay makes the switch's two durable writes of each transaction (its log and group commit): the latency floor of the switch's durability on this machine (lowers the relay's throughput, the baseline)")
	fs.IntVar(&o.Terminals, "terminals", 2000, "terminals (LT000001...)")
	fs.IntVar(&o.Conns, "conns", 64, "connections (at most 990 unless --target: the bench's switch takes 1000 from one address)")
	fs.IntVar(&o.Depth, "depth", 8, "requests in flight per connection")
	fs.Float64Var(&o.Rate, "rate", 5000, "open-loop rate for the latency run (0 to skip); with --cluster, given: both phases are open loops at this rate instead of closed loops")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the switch over the run to this file")
	fs.StringVar(&o.WorkDir, "workdir", "", "keep the switch's data and logs here, a new or empty directory (default: a temporary directory)")
	fs.StringVar(&o.RulesDir, "rules", "rules", "the switch's rules directory")
	fs.DurationVar(&o.IssuerLatency, "issuer-latency", 0, "the issuer simulator's answer time (with --issuer-latency-p99: the median)")
	fs.DurationVar(&o.IssuerLatencyP99, "issuer-latency-p99", 0, "log-normal issuer answer times with this 99th percentile")
	fs.BoolVar(&o.Plain, "plain", false, "ordinary purchases only, no fraud scenarios")
	fs.IntVar(&o.CUPTerminals, "cup-terminals", 0, "run this many of the load terminals as UnionPay-style terminals on a cup listener (sign-in, MAC'd sales one at a time); 0 keeps the default mix")
	fs.Float64Var(&o.QRShare, "qr-share", 0, "share (0 to 1) of the load terminals' requests that are QR purchases through a wallet simulator; 0: card only (not with --target or --plain)")
	fs.StringVar(&o.Scenario, "scenario", "standard", "name of the run in the reports")
	fs.BoolVar(&o.PayShield, "payshield", false, "the switch uses hsm.backend payshield against switchyard hsm serve, in its own process (the HSM's network hop)")
	results := fs.String("results", "bench/results", "write the JSON and HTML reports here (empty: none)")
	target := fs.String("target", "", "load a switch already running at this terminal address (no relay, no CPU figures)")
	faults := fs.Bool("faults", false, "the fault bench instead: issuer drops and late answers, an issuer outage, a kill -9 of the switch; reconciliation")
	var fo bench.FaultOptions
	fs.Float64Var(&fo.Drop, "drop", 0.05, "--faults: share of issuer answers dropped")
	fs.Float64Var(&fo.Late, "late", 0.05, "--faults: share of issuer answers late (after the switch's timeout)")
	fs.DurationVar(&fo.IssuerTimeout, "issuer-timeout", 2e9, "--faults: the switch's issuer timeout")
	fs.DurationVar(&fo.Before, "before", 30e9, "--faults: load before the outage")
	fs.DurationVar(&fo.Outage, "outage", 30e9, "--faults: length of the issuer outage")
	fs.StringVar(&fo.OutageMode, "outage-mode", "down", "--faults: down (connections refused) or silent (nothing answered)")
	fs.DurationVar(&fo.AfterWindow, "after-outage", 60e9, "--faults: load after the outage, the window of the rules figure (the issue's is 10m)")
	fs.BoolVar(&fo.NoKill, "no-kill", false, "--faults: no kill -9 of the switch")
	fs.DurationVar(&fo.AfterKill, "after-kill", 20e9, "--faults: load after the switch's restart")
	fs.DurationVar(&fo.Settle, "settle", 30e9, "--faults: longest wait for owed reversals after the load")
	faultRate := fs.Float64("fault-rate", 200, "--faults: authorizations per second")
	clusterNodes := fs.Int("cluster", 0, "the cluster bench instead: one node, then this many nodes with embedded JetStream (3 to 5), under the same load")
	clusterTLS := fs.Bool("cluster-tls", false, "--cluster: the nodes' routes and client ports in mutual TLS (cluster.embedded.tls), with certificates made for the run")
	profile := fs.Bool("profile", true, "--cluster: profile every switch process to split the embedded nats-server's CPU from the switch's")
	rounds := fs.Int("rounds", 1, "--cluster: repeat the run (a fresh single node, then a fresh cluster) this many times; the ratio is the rounds' median")
	curve := fs.String("curve", "", "a latency-versus-rate curve: open loops from:to:step authorizations/s, e.g. 1000:10000:1000")
	fs.DurationVar(&o.CurveStep, "curve-step", 10e9, "measured time at each rate of --curve")
	fs.BoolVar(&o.Fresh, "fresh", false, "run the open loops (--rate, --curve) on the fresh switch, before the closed loop (default: after it, once settled)")
	fs.DurationVar(&o.SettleTimeout, "settle-timeout", 60e9, "longest wait for the switch to settle (journal index, compactions) before the open loops")
	fs.IntVar(&o.Cards, "cards", 0, "end with this many purchases each with a new card, and report the switch's heap per million cards")
	if ok, code := parseFlagsOnly(env, fs, args); !ok {
		return code
	}
	// Interrupted (Ctrl-C, SIGTERM, the terminal closed), the bench stops its child
	// processes and removes its temporary work directory before it exits; a second
	// signal ends it at once (its children then die with it, see bench.startProc).
	ctx, stop := signal.NotifyContext(env.Ctx, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	go func() {
		<-ctx.Done()
		stop()
	}()
	benv := *env
	benv.Ctx = ctx
	code := runBenchMode(&benv, fs, o, fo, *target, *results, *faults, *faultRate, *curve, *clusterNodes, *profile, *clusterTLS, *rounds)
	if ctx.Err() != nil && env.Ctx.Err() == nil {
		fmt.Fprintf(env.Stderr, "switchyard: bench: interrupted (%v): its processes are stopped\n", context.Cause(ctx))
		return kit.ExitError
	}
	return code
}

// benchFailed reports a bench's error, unless the bench was interrupted (runBench
// says so).
func benchFailed(env *Env, err error) int {
	if env.Ctx.Err() == nil {
		fmt.Fprintf(env.Stderr, "switchyard: bench: %v\n", err)
	}
	return kit.ExitError
}

// runBenchMode runs the bench the flags chose, with env.Ctx ending on interruption.
func runBenchMode(env *Env, fs *flag.FlagSet, o bench.Options, fo bench.FaultOptions, target, results string, faults bool, faultRate float64,
	curve string, clusterNodes int, profile, clusterTLS bool, rounds int) int {
	var err error
	if o.Curve, err = bench.ParseCurve(curve); err != nil {
		return fail(env, "bench: --%v", err)
	}
	if !(o.JournalWindowCPU <= 1) { // NaN too; negative is the default
		return fail(env, "bench: --journal-window-cpu %v is not a share between 0 and 1", o.JournalWindowCPU)
	}
	if clusterTLS && clusterNodes == 0 {
		return fail(env, "bench: --cluster-tls goes with --cluster N")
	}
	if rounds != 1 && clusterNodes == 0 {
		return fail(env, "bench: --rounds goes with --cluster N")
	}
	if rounds < 1 || rounds > 20 {
		return fail(env, "bench: --rounds %d: want 1 to 20", rounds)
	}
	if clusterNodes != 0 && (clusterNodes < 3 || clusterNodes > 5) {
		fmt.Fprintf(env.Stderr, "switchyard: bench: --cluster %d: a cluster of R3 streams needs 3 to 5 nodes\n", clusterNodes)
		return kit.ExitUsage
	}
	mode := ""
	switch {
	case clusterNodes != 0:
		mode = "--cluster"
	case faults:
		mode = "--faults"
	case target != "":
		mode = "--target"
	}
	if msg := benchFlagsIgnored(fs, mode, o, fo, faultRate, results); msg != "" {
		fmt.Fprintf(env.Stderr, "switchyard: bench: %s\n", msg)
		return kit.ExitUsage
	}
	if msg := checkBenchFlags(fs, o, target != "", clusterNodes != 0 || faults); msg != "" {
		fmt.Fprintf(env.Stderr, "switchyard: bench: %s\n", msg)
		return kit.ExitUsage
	}
	if results != "" && target == "" && clusterNodes == 0 {
		// Checked before the run, not found unwritable at its end.
		if err := bench.CheckResultsDir(results); err != nil {
			return fail(env, "bench: --results: %v", err)
		}
	}
	if clusterNodes != 0 {
		return runClusterBench(env, fs, o, clusterNodes, profile, clusterTLS, rounds)
	}
	if faults {
		return runFaultBench(env, fs, fo, o, faultRate, results)
	}
	if target != "" {
		res, err := bench.RunLoad(env.Ctx, bench.LoadOptions{Addr: target, Terminals: o.Terminals, Conns: o.Conns, Depth: o.Depth,
			Duration: o.Duration, Warmup: o.Warmup, Rate: o.Rate, Progress: env.Stderr})
		if err == nil && env.Ctx.Err() == nil {
			err = res.Measured()
		}
		if err != nil {
			return benchFailed(env, err)
		}
		h := res.Hist
		fmt.Fprintf(env.Stdout, "%.0f/s  p50 %dµs  p90 %dµs  p99 %dµs  p99.9 %dµs  max %dµs  errors %d  failed (91, 96) %d  malformed (no DE 39) %d  codes %v\n", res.TPS,
			h.ValueAtQuantile(50), h.ValueAtQuantile(90), h.ValueAtQuantile(99), h.ValueAtQuantile(99.9), h.Max(), res.Errors, res.Failed, res.Malformed, res.Codes)
		return 0
	}
	o.Version = Version
	rep, err := bench.Run(env.Ctx, o)
	if err != nil {
		return benchFailed(env, err)
	}
	rep.Result.WriteTable(env.Stdout)
	if results != "" {
		j, h, err := rep.Result.WriteReports(results)
		if err != nil {
			return fail(env, "bench: reports: %v", err)
		}
		fmt.Fprintf(env.Stdout, "\nreports: %s\n         %s\n", j, h)
	}
	return 0
}

// maxBenchConns is the most load connections of a bench that starts its own switch:
// the listener's max_conns_per_source (1000 by default) less the harness's other
// connections (the DUKPT stream, the probe purchase).
const maxBenchConns = 990

// checkBenchFlags returns what is wrong with the load's flags ("" when nothing):
// values the bench used to replace with its defaults without a word (a zero or
// negative duration, terminals, connections or depth), or that make no load (a
// negative, infinite or NaN rate), or a share of the terminals that cannot be. The
// cluster bench takes --duration, --warmup, --terminals, --conns, --depth and --rate
// only when given, the fault bench --terminals and --conns (own sets: only those
// given are checked; benchFlagsIgnored refuses the others).
func checkBenchFlags(fs *flag.FlagSet, o bench.Options, target, ownDefaults bool) string {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	checked := func(name string) bool { return !ownDefaults || set[name] }
	if checked("duration") && o.Duration <= 0 {
		return fmt.Sprintf("--duration %v: want above zero", o.Duration)
	}
	// A sample's second of the window is 16 bits (bench.Sample): past it every answer
	// piled into the timeline's last point.
	for name, d := range map[string]time.Duration{"duration": o.Duration, "relay-duration": o.RelayDuration, "curve-step": o.CurveStep} {
		if d > bench.MaxWindow {
			return fmt.Sprintf("--%s %v: at most %v (the timeline's seconds)", name, d, bench.MaxWindow)
		}
	}
	if checked("warmup") && (o.Warmup < 0 || o.Warmup == 0 && !target) {
		return fmt.Sprintf("--warmup %v: want above zero (it primes the fleet's velocity counters and the switch)", o.Warmup)
	}
	if o.RelayDuration < 0 {
		return fmt.Sprintf("--relay-duration %v: want above zero (0: the default)", o.RelayDuration)
	}
	if o.CurveStep <= 0 || o.SettleTimeout <= 0 {
		return fmt.Sprintf("--curve-step %v, --settle-timeout %v: want above zero", o.CurveStep, o.SettleTimeout)
	}
	if checked("rate") && !(o.Rate >= 0 && o.Rate <= 1e7) { // NaN and ±Inf too
		return fmt.Sprintf("--rate %v: want 0 (no open loop) up to 10000000 a second", o.Rate)
	}
	if checked("terminals") && (o.Terminals < 1 || o.Terminals > bench.MaxTerminals) {
		return fmt.Sprintf("--terminals %d: want 1 to %d (LT000001...)", o.Terminals, bench.MaxTerminals)
	}
	if checked("conns") && o.Conns < 1 {
		return fmt.Sprintf("--conns %d: want at least 1", o.Conns)
	}
	if checked("conns") && !target && o.Conns > maxBenchConns {
		// The switch closes the ones past its limit at accept: the run failed with
		// "connection closed by the switch".
		return fmt.Sprintf("--conns %d: at most %d (the bench's switch takes 1000 connections from one address, max_conns_per_source, and the harness opens a few more)", o.Conns, maxBenchConns)
	}
	if !ownDefaults && (o.Plain || target) && o.Conns > o.Terminals {
		return fmt.Sprintf("--conns %d above --terminals %d: with --plain or --target each connection sends for terminals of its own", o.Conns, o.Terminals)
	}
	if checked("depth") && (o.Depth < 1 || o.Depth > 65535) {
		return fmt.Sprintf("--depth %d: want 1 to 65535 requests in flight per connection", o.Depth)
	}
	if o.Cards < 0 {
		return fmt.Sprintf("--cards %d: want 0 (none) or more", o.Cards)
	}
	if o.CUPTerminals < 0 || o.CUPTerminals > 0 && o.CUPTerminals >= o.Terminals {
		return fmt.Sprintf("--cup-terminals %d: want 0 up to --terminals (%d) less one", o.CUPTerminals, o.Terminals)
	}
	if o.CUPTerminals > maxBenchConns {
		// Each has a connection of its own to the cup listener, which takes 1000 from
		// one address.
		return fmt.Sprintf("--cup-terminals %d: at most %d (each has a connection of its own, and the cup listener takes 1000 from one address)", o.CUPTerminals, maxBenchConns)
	}
	return ""
}

// benchModeFlags are the flags each kind of bench takes, by the flag that chooses it
// ("": the ordinary bench). A flag given to a bench that does not take it used to be
// ignored without a word (an --outage without --faults, a --curve with --cluster).
var benchModeFlags = map[string]string{
	"": "duration warmup relay-duration relay-burn relay-journal-window journal-window journal-window-cpu relay-journal " +
		"terminals conns depth rate cpuprofile workdir rules issuer-latency issuer-latency-p99 plain cup-terminals qr-share " +
		"scenario payshield results curve curve-step fresh settle-timeout cards",
	"--target":  "target duration warmup terminals conns depth rate results",
	"--faults":  "faults drop late issuer-timeout before outage outage-mode after-outage no-kill after-kill settle fault-rate terminals conns workdir rules results",
	"--cluster": "cluster cluster-tls profile rounds duration warmup terminals conns depth rate workdir rules results",
}

// benchFlagsIgnored returns what is wrong ("" when nothing) with the flags given for
// the bench mode chooses (a key of benchModeFlags): a flag it does not take, a
// --results it would not write (--target, --cluster: no report files), a flag that
// goes with another not given, or a value of the fault bench's flags it used to
// replace with its default without a word (a zero or negative duration or rate).
func benchFlagsIgnored(fs *flag.FlagSet, mode string, o bench.Options, fo bench.FaultOptions, faultRate float64, results string) string {
	set := map[string]bool{}
	var names []string // the flags given, in lexical order: the first wrong one is said
	fs.Visit(func(f *flag.Flag) { set[f.Name], names = true, append(names, f.Name) })
	takes := map[string]bool{}
	for _, name := range strings.Fields(benchModeFlags[mode]) {
		takes[name] = true
	}
	what := "the bench"
	if mode != "" {
		what = "bench " + mode
	}
	for _, name := range names {
		if !takes[name] {
			return fmt.Sprintf("--%s does not apply to %s (it would be ignored); see switchyard bench -h", name, what)
		}
	}
	if set["results"] && results != "" && (mode == "--target" || mode == "--cluster") {
		return fmt.Sprintf("--results %s: %s writes no report files (its figures are printed); leave --results out", results, what)
	}
	switch mode {
	case "":
		if set["relay-journal-window"] && !o.RelayJournal {
			return "--relay-journal-window goes with --relay-journal"
		}
		if set["qr-share"] && o.Plain {
			return "--qr-share does not go with --plain (ordinary purchases only)"
		}
		if !(o.QRShare >= 0 && o.QRShare <= 1) {
			return fmt.Sprintf("--qr-share %v: want a share from 0 to 1", o.QRShare)
		}
		if set["curve-step"] && len(o.Curve) == 0 {
			return "--curve-step goes with --curve"
		}
		if (set["fresh"] || set["settle-timeout"]) && o.Rate == 0 && len(o.Curve) == 0 {
			return "--fresh and --settle-timeout go with an open loop (--rate above 0, or --curve)"
		}
		for name, d := range map[string]time.Duration{"relay-burn": o.RelayBurn, "journal-window": o.JournalWindow, "relay-journal-window": o.RelayJournalWindow} {
			if set[name] && d < 0 {
				return fmt.Sprintf("--%s %v: want 0 or more", name, d)
			}
		}
		if set["journal-window-cpu"] && o.JournalWindowCPU < 0 {
			return fmt.Sprintf("--journal-window-cpu %v is not a share between 0 and 1", o.JournalWindowCPU)
		}
		if set["issuer-latency"] && o.IssuerLatency < 0 || set["issuer-latency-p99"] && o.IssuerLatencyP99 < 0 {
			return fmt.Sprintf("--issuer-latency %v, --issuer-latency-p99 %v: want 0 or more", o.IssuerLatency, o.IssuerLatencyP99)
		}
	case "--faults":
		for name, d := range map[string]time.Duration{"issuer-timeout": fo.IssuerTimeout, "before": fo.Before, "outage": fo.Outage,
			"after-outage": fo.AfterWindow, "after-kill": fo.AfterKill, "settle": fo.Settle} {
			if d <= 0 {
				return fmt.Sprintf("--%s %v: want above zero", name, d)
			}
		}
		if !(faultRate > 0 && faultRate <= 1e6) { // NaN too
			return fmt.Sprintf("--fault-rate %v: want above 0, up to 1000000 a second", faultRate)
		}
		if !(fo.Drop >= 0 && fo.Drop <= 1 && fo.Late >= 0 && fo.Late <= 1) { // NaN too
			return fmt.Sprintf("--drop %v, --late %v: want shares between 0 and 1", fo.Drop, fo.Late)
		}
	}
	if set["rate"] && o.Rate > 0 && o.Rate < 1 {
		return fmt.Sprintf("--rate %v: want 0 (no open loop) or at least 1 a second", o.Rate)
	}
	return ""
}

// runFaultBench runs `bench --faults`. Of the ordinary bench's flags it takes
// --terminals and --conns only when given, as its defaults differ (50 and 8).
func runFaultBench(env *Env, fs *flag.FlagSet, fo bench.FaultOptions, o bench.Options, rate float64, results string) int {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["terminals"] {
		fo.Terminals = o.Terminals
	}
	if set["conns"] {
		fo.Conns = o.Conns
	}
	for name, p := range map[string]float64{"drop": fo.Drop, "late": fo.Late} {
		if p < 0 || p > 1 {
			return fail(env, "bench: --%s %v is not between 0 and 1", name, p)
		}
	}
	if fo.Drop == 0 {
		fo.Drop = -1 // none, not the default
	}
	if fo.Late == 0 {
		fo.Late = -1
	}
	fo.Rate, fo.WorkDir, fo.RulesDir, fo.Out, fo.Version = rate, o.WorkDir, o.RulesDir, env.Stderr, Version
	r, err := bench.RunFaults(env.Ctx, fo)
	if err != nil {
		return benchFailed(env, err)
	}
	r.WriteTable(env.Stdout)
	if results != "" {
		j, h, err := r.WriteReports(results)
		if err != nil {
			return fail(env, "bench: reports: %v", err)
		}
		fmt.Fprintf(env.Stdout, "\nreports: %s\n         %s\n", j, h)
	}
	return 0
}

// runClusterBench runs `bench --cluster N`. Of the ordinary bench's flags it takes
// --duration, --warmup, --terminals, --conns and --depth only when given, as its
// defaults differ (20s, 3s, 600, 8 per node, 8); --rate, given, makes both phases
// open loops at that rate (the same load for both) instead of closed loops.
func runClusterBench(env *Env, fs *flag.FlagSet, o bench.Options, nodes int, profile, tls bool, rounds int) int {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	co := bench.ClusterOptions{Nodes: nodes, Profile: profile, TLS: tls, Rounds: rounds, RulesDir: o.RulesDir, WorkDir: o.WorkDir, Out: env.Stderr}
	if profile && o.WorkDir != "" {
		co.ProfileDir = o.WorkDir // kept with the nodes' data and logs
	}
	if set["duration"] {
		co.Duration = o.Duration
	}
	if set["warmup"] {
		co.Warmup = o.Warmup
	}
	if set["terminals"] {
		co.Terminals = o.Terminals
	}
	if set["conns"] {
		co.Conns = o.Conns
	}
	if set["depth"] {
		co.Depth = o.Depth
	}
	if set["rate"] {
		// Given, the two phases are open loops at this rate; else closed loops.
		co.Rate = o.Rate
	}
	rep, err := bench.RunCluster(env.Ctx, co)
	if err != nil {
		return benchFailed(env, err)
	}
	rep.WriteTable(env.Stdout)
	return 0
}

func runBenchRelay(env *Env, args []string) int {
	fs := newFlags(env, "bench-relay", "--addr HOST:PORT --upstream HOST:PORT")
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	up := fs.String("upstream", "", "issuer simulator address")
	burn := fs.Duration("burn", 0, "CPU time spent on each request before forwarding it (a model of a switch of that cost)")
	jdir := fs.String("journal", "", "a directory: write each request and each answer durably there before passing it on, as the switch's journal does")
	jwin := fs.Duration("journal-window", -1, "the group commit's window of --journal (default: the switch's, 1ms)")
	if ok, code := parseFlagsOnly(env, fs, args); !ok {
		return code
	}
	if *up == "" {
		return fail(env, "bench-relay: --upstream is required")
	}
	r, err := bench.StartRelay(*addr, *up, bench.RelayOptions{Burn: *burn, Journal: *jdir, JournalWindow: *jwin})
	if err != nil {
		return fail(env, "bench-relay: %v", err)
	}
	fmt.Fprintf(env.Stderr, "relay %s -> %s\n", r.Addr(), *up)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	_ = r.Close()
	return 0
}
