package bench

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startTestProc starts sh -c script as a process of the bench named name (its log in
// a temporary directory), killed at the end of the test.
func startTestProc(t *testing.T, name, script string) *proc {
	t.Helper()
	p, err := startProc("sh", t.TempDir(), name, "-c", script)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.kill)
	return p
}

// TestCheckAlive: a process of the bench that has exited (an issuer simulator that
// crashed mid-run) is named with how it exited and the end of its log; running ones
// and nil ones (a wallet simulator not started) pass.
func TestCheckAlive(t *testing.T) {
	live := startTestProc(t, "relay", "exec sleep 60")
	dead := startTestProc(t, "issuer-sim", "echo 'issuer-sim: out of memory'; exit 3")
	select {
	case <-dead.done:
	case <-time.After(10 * time.Second):
		t.Fatal("sh -c 'exit 3' still running after 10 s")
	}
	if err := checkAlive(live, nil); err != nil {
		t.Fatalf("a running process: %v", err)
	}
	err := checkAlive(live, nil, dead)
	if err == nil || !strings.Contains(err.Error(), "issuer-sim exited during the run (exit status 3)") || !strings.Contains(err.Error(), "out of memory") {
		t.Fatalf("an exited process: %v", err)
	}
}

// TestClusterMeasureNothingAuthorized: a phase of the cluster bench whose switch
// answers nothing but failures (91: a node's lost lease, its journal unavailable)
// fails, where its CPU per authorization used to read 0 and the cluster's ratio to
// the single node 0.00×; and an issuer simulator that exited during the load fails it.
func TestClusterMeasureNothingAuthorized(t *testing.T) {
	if testing.Short() {
		t.Skip("waits the cluster bench's 3 s idle window twice")
	}
	node := &benchNode{n: 1, p: startTestProc(t, "node1", "exec sleep 60"), termAddr: codeSwitch(t, func(int64) string { return "91" })}
	sim := startTestProc(t, "issuer-sim", "exec sleep 60")
	o := ClusterOptions{Terminals: 8, Conns: 2, Depth: 4, Duration: 200 * time.Millisecond, Warmup: 50 * time.Millisecond, Out: io.Discard}
	ph, err := measure(t.Context(), o, "cluster of 1", []*benchNode{node}, sim)
	if err == nil || !strings.Contains(err.Error(), "no authorization") {
		t.Fatalf("a node answering 91 to all: %v, %+v; want an error", err, ph)
	}

	node.termAddr = codeSwitch(t, func(int64) string { return "00" })
	dead := startTestProc(t, "issuer-sim", "exit 1")
	<-dead.done
	if _, err := measure(t.Context(), o, "cluster of 1", []*benchNode{node}, dead); err == nil || !strings.Contains(err.Error(), "issuer-sim exited during the run") {
		t.Fatalf("the simulator exited: %v, want an error", err)
	}
}

// TestWorkDirRefusesPreviousRun: a --workdir holding a previous run's files is refused
// before anything starts (its data would be reused: the fleet's registration failed
// half-way, a --plain run measured another run's journal); a new or empty one is
// taken and kept, and the default is a temporary directory that cleanup removes.
func TestWorkDirRefusesPreviousRun(t *testing.T) {
	base := t.TempDir()
	fresh := filepath.Join(base, "new", "work")
	d, cleanup, err := workDir(fresh, "x-")
	if err != nil || d != fresh {
		t.Fatalf("a new directory: %q, %v", d, err)
	}
	cleanup()
	if err := os.WriteFile(filepath.Join(fresh, "switch.yaml"), []byte("demo: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := workDir(fresh, "x-"); err == nil || !strings.Contains(err.Error(), "is not empty (switch.yaml...)") {
		t.Fatalf("a directory of a previous run: %v, want it refused", err)
	}
	if _, err := os.Stat(filepath.Join(fresh, "switch.yaml")); err != nil {
		t.Fatalf("the refused directory was changed: %v", err)
	}
	tmp, cleanup, err := workDir("", "switchyard-test-")
	if err != nil {
		t.Fatal(err)
	}
	cleanup()
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("temporary %s left after cleanup: %v", tmp, err)
	}
}

// TestCurveTargetRatesAchieved: the curve's p99 target counts only answered requests,
// so a rate the switch did not achieve (the rest unanswered or failed) is not met
// however low its p99; and it says which rate fell short.
func TestCurveTargetRatesAchieved(t *testing.T) {
	r := &Result{Switch: &Phase{TPS: 10000}, Curve: []CurvePoint{
		{Rate: 1000, TPS: 1000, Latency: Quantiles{P99: 2000}},
		{Rate: 3000, TPS: 1500, Latency: Quantiles{P99: 3000}},
	}}
	ts := latencyTargets(r)
	if len(ts) != 1 || ts[0].Met || !strings.Contains(ts[0].Name, "not achieved: 3000/s achieved 1500/s") {
		t.Fatalf("a rate achieved at half: %+v, want the target missed and the rate named", ts)
	}
	r.Curve[1].TPS = 2990
	if ts := latencyTargets(r); len(ts) != 1 || !ts[0].Met {
		t.Fatalf("every rate achieved, p99 under 5 ms: %+v", ts)
	}
}

// TestOpenLoopsNothingAuthorized: an open loop (--rate, --curve) whose window holds
// no authorization fails the run, where its p99 read 0 (and the curve's target met).
func TestOpenLoopsNothingAuthorized(t *testing.T) {
	lo := LoadOptions{Addr: codeSwitch(t, func(int64) string { return "96" }), Terminals: 8, Conns: 2, Depth: 4,
		Duration: 200 * time.Millisecond, Warmup: 50 * time.Millisecond}
	for _, o := range []Options{
		{Fresh: true, Rate: 500, Warmup: 50 * time.Millisecond, Duration: 200 * time.Millisecond, Out: io.Discard},
		{Fresh: true, Curve: []float64{500}, CurveStep: 200 * time.Millisecond, Warmup: 50 * time.Millisecond, Out: io.Discard},
	} {
		rep := &Report{}
		err := rep.runOpenLoops(t.Context(), o, lo, "http://127.0.0.1:1")
		if err == nil || !strings.Contains(err.Error(), "no authorization") {
			t.Errorf("rate %v, curve %v, every answer 96: %v, want an error", o.Rate, o.Curve, err)
		}
	}
}

// TestFetchProfileStopsWithContext: a CPU profile being fetched (as long as the
// measured window) is given up when the bench is interrupted, at once, and leaves no
// file: it waited out the profile, so an interrupted cluster bench took up to
// --duration to stop its nodes, with a temporary file meanwhile in $TMPDIR.
func TestFetchProfileStopsWithContext(t *testing.T) {
	asked := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(asked)
		<-r.Context().Done() // a profile of 60 s: nothing until then
	}))
	defer srv.Close()
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	file := filepath.Join(tmp, "switch.pprof")
	go func() { done <- fetchProfile(ctx, srv.URL, time.Minute, file) }()
	<-asked
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("an interrupted profile: no error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the profile fetch went on 10 s after the interruption")
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Fatalf("left behind: %v", left)
	}
}
