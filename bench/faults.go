package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/switchyard/switchyard/switch/issuersim"
	"github.com/switchyard/switchyard/switch/journal"
)

// FaultOptions configure a fault run (`switchyard bench --faults`): the issuer simulator
// drops and delays a share of its answers, goes away once for Outage, and the switch is
// killed (SIGKILL) once and restarted on the same data directory, under a steady load.
//
// The schedule: Before of load, the outage, AfterWindow (the window in which the rules'
// declines of legitimate traffic are compared with before the outage; the is 10
// minutes, the default here 60 s to keep the run short), the kill and restart, AfterKill
// of load, then up to Settle for the reversals the switch owes to reach the issuer.
type FaultOptions struct {
	Exe      string // the switchyard binary (default: this process's executable)
	WorkDir  string // default: a new temporary directory, removed afterwards
	RulesDir string // default "rules"
	Out      io.Writer
	Version  string

	Rate      float64 // authorizations per second (default 200)
	Conns     int     // terminal connections (default 8)
	Terminals int     // load terminals (default 50: enough traffic per till for the terminal rules to notice an outage)

	Drop, Late    float64       // shares of issuer answers dropped and late (default 0.05 each; negative: none)
	IssuerTimeout time.Duration // the switch's issuer timeout (default 2 s)
	LateBy        time.Duration // how late a late answer is (default IssuerTimeout + 1 s)

	Before      time.Duration // load before the outage (default 30 s)
	Outage      time.Duration // default 30 s
	OutageMode  string        // down (default) or silent
	AfterWindow time.Duration // default 60 s
	NoKill      bool          // skip the kill -9
	AfterKill   time.Duration // load after the restart (default 20 s)
	Settle      time.Duration // longest wait for owed reversals after the load (default 30 s)
}

func (o *FaultOptions) defaults() error {
	if o.Exe == "" {
		exe, err := selfExe()
		if err != nil {
			return err
		}
		o.Exe = exe
	}
	if o.RulesDir == "" {
		o.RulesDir = "rules"
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Rate <= 0 {
		o.Rate = 200
	}
	o.Conns, o.Terminals = orDefault(o.Conns, 8), orDefault(o.Terminals, 50)
	for _, p := range []*float64{&o.Drop, &o.Late} {
		switch {
		case *p == 0:
			*p = 0.05
		case *p < 0:
			*p = 0
		}
	}
	if o.Drop+o.Late > 1 {
		return fmt.Errorf("bench --faults: drop %v and late %v add up to more than all answers", o.Drop, o.Late)
	}
	dur := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	dur(&o.IssuerTimeout, 2*time.Second)
	dur(&o.LateBy, o.IssuerTimeout+time.Second)
	dur(&o.Before, 30*time.Second)
	dur(&o.Outage, 30*time.Second)
	dur(&o.AfterWindow, 60*time.Second)
	dur(&o.AfterKill, 20*time.Second)
	dur(&o.Settle, 30*time.Second)
	if o.OutageMode == "" {
		o.OutageMode = "down"
	}
	if _, err := issuersim.ParseOutageMode(o.OutageMode); err != nil {
		return fmt.Errorf("bench --faults: %w", err)
	}
	return nil
}

// RunFaults runs the fault bench and returns its result, with the FaultResult and its
// targets.
func RunFaults(ctx context.Context, o FaultOptions) (*Result, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	dir, cleanup, err := workDir(o.WorkDir, "switchyard-faults-")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	o.WorkDir = dir
	simAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	ctlAddr, _ := freeAddr()
	sim, err := startProc(o.Exe, o.WorkDir, "issuer-sim", "issuer-sim", "--addr", simAddr, "--control", ctlAddr,
		"--drop", fmt.Sprint(o.Drop), "--delay", fmt.Sprint(o.Late), "--delay-by", o.LateBy.String())
	if err != nil {
		return nil, err
	}
	defer sim.stop()
	ctl := "http://" + ctlAddr
	if err := waitReady(ctx, ctl+"/status", sim); err != nil {
		return nil, err
	}
	termAddr, _ := freeAddr()
	adminAddr, _ := freeAddr()
	rulesDir, err := filepath.Abs(o.RulesDir)
	if err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`# written by switchyard bench --faults
demo: true
data_dir: %s
rules_dir: %s
# Every terminal of the bench comes from one address: its limit is the switch's.
listeners:
  - {name: ascii, addr: "%s", dialect: ascii, max_in_flight: 1024, max_in_flight_per_source: 20000}
admin: {addr: "%s"}
demo_issuer: {external: "%s", timeout: %s}
shutdown: {drain_timeout: 10s}
security: {card_hash_key_hex: "5357495443485941524444454d4f2d4b45592d464f522d504154482d48415348"}
`, filepath.Join(o.WorkDir, "data"), rulesDir, termAddr, adminAddr, simAddr, o.IssuerTimeout)
	cfgFile := filepath.Join(o.WorkDir, "switch.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	sw, err := startProc(o.Exe, o.WorkDir, "switch", "serve", "--config", cfgFile)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sw.stop() }()
	adminURL := "http://" + adminAddr
	if err := waitReady(ctx, adminURL+"/readyz", sw); err != nil {
		return nil, err
	}
	if err := waitApproving(ctx, termAddr); err != nil {
		return nil, err
	}
	fleet, err := NewFleet(o.Terminals, 10000)
	if err != nil {
		return nil, err
	}
	if err := registerFleet(ctx, adminURL, fleet.plan); err != nil {
		return nil, err
	}
	before, err := fetchLedger(ctx, ctl)
	if err != nil {
		return nil, err
	}
	baseline := map[string]bool{}
	for _, e := range before {
		baseline[e.RRN] = true
	}

	tl := faultTimeline{AfterWindow: o.AfterWindow, Drop: o.Drop, Late: o.Late, IssuerTimeout: o.IssuerTimeout, LateBy: o.LateBy,
		Outage: o.Outage, OutageMode: o.OutageMode}
	total := o.Before + o.Outage + o.AfterWindow
	if !o.NoKill {
		total += o.AfterKill
	}
	fmt.Fprintf(o.Out, "faults: %.0f/s over %d connections from %d load terminals; issuer drops %.0f%%, answers %.0f%% %s late (switch timeout %s)\n",
		o.Rate, o.Conns, o.Terminals, 100*o.Drop, 100*o.Late, o.LateBy, o.IssuerTimeout)
	fmt.Fprintf(o.Out, "faults: %s of load, issuer outage (%s) of %s, %s after it", o.Before, o.OutageMode, o.Outage, o.AfterWindow)
	if !o.NoKill {
		fmt.Fprintf(o.Out, ", kill -9 and restart of the switch, %s after it", o.AfterKill)
	}
	fmt.Fprintf(o.Out, "; about %s in all\n", (total + o.Settle/2).Round(time.Second))

	load := &faultLoad{addr: termAddr, fleet: fleet, rate: o.Rate, conns: o.Conns}
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	loadDone := make(chan struct{})
	start := time.Now()
	go func() { defer close(loadDone); load.run(loadCtx, o.IssuerTimeout+3*time.Second) }()

	step := func(d time.Duration, what string) error {
		fmt.Fprintf(o.Out, "  %6.1fs  %s\n", time.Since(start).Seconds(), what)
		select {
		case <-time.After(d):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	schedule := func() error {
		if err := step(o.Before, "load"); err != nil {
			return err
		}
		tl.OutageStart = time.Now()
		if err := control(ctx, http.MethodPost, ctl+"/outage?mode="+o.OutageMode); err != nil {
			return err
		}
		if err := step(o.Outage, "issuer outage"); err != nil {
			return err
		}
		if err := control(ctx, http.MethodDelete, ctl+"/outage"); err != nil {
			return err
		}
		tl.OutageEnd = time.Now()
		if err := step(o.AfterWindow, "issuer back"); err != nil {
			return err
		}
		if o.NoKill {
			return nil
		}
		fmt.Fprintf(o.Out, "  %6.1fs  kill -9 of the switch\n", time.Since(start).Seconds())
		tl.KillAt = time.Now()
		sw.kill()
		if sw, err = startProc(o.Exe, o.WorkDir, "switch-restarted", "serve", "--config", cfgFile); err != nil {
			return err
		}
		if err := waitReady(ctx, adminURL+"/readyz", sw); err != nil {
			return err
		}
		tl.RestartedAt = time.Now()
		return step(o.AfterKill, fmt.Sprintf("switch restarted (%.1fs after the kill)", tl.RestartedAt.Sub(tl.KillAt).Seconds()))
	}
	serr := schedule()
	end := time.Now()
	stopLoad()
	<-loadDone
	if serr != nil {
		return nil, fmt.Errorf("bench --faults: %w", serr)
	}

	// Let the switch deliver what it owes, then take the three accounts.
	var ledger []issuersim.Entry
	var recs []*journal.Record
	settleEnd := time.Now().Add(o.Settle)
	lastOwed := -1
	for {
		if ledger, err = fetchLedger(ctx, ctl); err != nil {
			return nil, err
		}
		if recs, err = fetchJournalRecords(ctx, adminURL, start.Add(-time.Minute)); err != nil {
			return nil, err
		}
		owed := owedReversals(recs, ledger)
		if owed == 0 || time.Now().After(settleEnd) {
			fmt.Fprintf(o.Out, "  %6.1fs  settled: %d reversal(s) the switch owes are not at the issuer\n", time.Since(start).Seconds(), owed)
			break
		}
		if owed != lastOwed {
			fmt.Fprintf(o.Out, "  %6.1fs  waiting for %d owed reversal(s)\n", time.Since(start).Seconds(), owed)
			lastOwed = owed
		}
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	txns, lr := load.result(start, end)
	fr := reconcile(txns, ledger, recs, baseline, tl)
	since := func(t time.Time) float64 {
		if t.IsZero() {
			return 0
		}
		return math.Round(10*t.Sub(start).Seconds()) / 10
	}
	fr.Schedule = Schedule{OutageStart: since(tl.OutageStart), OutageEnd: since(tl.OutageEnd), Kill: since(tl.KillAt), Ready: since(tl.RestartedAt)}
	if o.AfterWindow < 10*time.Minute {
		fr.Notes = append(fr.Notes, fmt.Sprintf("the window after the outage is %s, not the issue's 10 minutes (--after-outage)", o.AfterWindow))
	}
	host, _ := os.Hostname()
	r := &Result{Started: start.UTC(), Host: fmt.Sprintf("%s, %s/%s, %d CPUs", host, runtime.GOOS, runtime.GOARCH, runtime.NumCPU()),
		Version: o.Version, Scenario: "faults",
		Settings: Settings{Terminals: o.Terminals, Conns: o.Conns, Duration: end.Sub(start).Round(time.Second), Rate: o.Rate},
		Switch:   lr.Phase(phaseName(o.Rate, fr.Schedule)), Faults: fr, Targets: fr.Targets()}
	return r, nil
}

// phaseName names the fault run's load with its schedule, the marks of its timeline.
func phaseName(rate float64, s Schedule) string {
	name := fmt.Sprintf("switch, open loop at %.0f/s under faults: issuer outage %.1f-%.1f s", rate, s.OutageStart, s.OutageEnd)
	if s.Kill > 0 {
		name += fmt.Sprintf(", kill -9 at %.1f s (ready at %.1f s)", s.Kill, s.Ready)
	}
	return name
}

// owedReversals counts the reversals the journal says the switch owes that the issuer
// has not received.
func owedReversals(recs []*journal.Record, ledger []issuersim.Entry) int {
	rev := make(map[string]bool, len(ledger))
	for _, e := range ledger {
		if e.Reversed {
			rev[e.RRN] = true
		}
	}
	n := 0
	for _, r := range recs {
		if strings.HasPrefix(r.ReversedBy, "switch") && !rev[r.RRN] {
			n++
		}
	}
	return n
}

// control calls the issuer simulator's control API.
func control(ctx context.Context, method, url string) error {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("issuer simulator control: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("issuer simulator control: %s %s: %s: %s", method, url, resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}

// fetchLedger reads the issuer simulator's ledger through its control API.
func fetchLedger(ctx context.Context, ctl string) ([]issuersim.Entry, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ctl+"/ledger", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("issuer simulator ledger: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("issuer simulator ledger: %s", resp.Status)
	}
	var out []issuersim.Entry
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("issuer simulator ledger: %w", err)
	}
	return out, nil
}

// fetchJournalRecords reads the switch's journal from `from` on through the admin API
// (as the demo operator).
func fetchJournalRecords(ctx context.Context, adminURL string, from time.Time) ([]*journal.Record, error) {
	url := adminURL + "/api/v1/journal?limit=0&from=" + from.UTC().Format(time.RFC3339Nano)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer demo-operator-7Kq2")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("switch journal: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return nil, fmt.Errorf("switch journal: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	var out []*journal.Record
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64*1024), 16<<20)
	for sc.Scan() {
		var r journal.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("switch journal: %w", err)
		}
		if r.RRN == "" {
			// An error line ({"error": ...}) ends a scan that failed half way.
			var e struct{ Error string }
			if json.Unmarshal(sc.Bytes(), &e) == nil && e.Error != "" {
				return nil, fmt.Errorf("switch journal: %s", e.Error)
			}
			continue
		}
		out = append(out, &r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("switch journal: %w", err)
	}
	return out, nil
}
