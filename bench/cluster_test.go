package bench

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// TestRoundsReport: the median of the rounds' ratios (odd and even counts), and the
// table of rounds that `bench --cluster N --rounds M` prints before its verdict; the
// phases' table says it is the last round's (it read as the verdict's figures).
func TestRoundsReport(t *testing.T) {
	if got := median([]float64{4, 2, 3}); got != 3 {
		t.Fatalf("median of 4, 2, 3: %v", got)
	}
	if got := median([]float64{4, 2, 3, 1}); got != 2.5 {
		t.Fatalf("median of 4, 2, 3, 1: %v", got)
	}
	if got := median(nil); got != 0 {
		t.Fatalf("median of nothing: %v", got)
	}
	rep := &ClusterReport{Rounds: []Round{{80, 320, 4, 0}, {90, 270, 3, 0}, {100, 350, 3.5, 0}}, Ratio: 3.5, MarginalRatio: 3.4}
	var b strings.Builder
	rep.WriteTable(&b)
	for _, want := range []string{
		"the last of 3 rounds (the verdict below is the rounds' median):",
		"rounds (single node and cluster measured in turn",
		"2                90.0        270.0    3.00×",
		"cluster/single CPU per authorization (median of 3 rounds): 3.50× (target ≤ 1.5×: NOT met); marginal costs: 3.40×",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, b.String())
		}
	}
}

// TestReadProcStat: this process's CPU time and minor page faults (a Go process has
// faulted in its heap), and a clear error for a process that does not exist.
func TestReadProcStat(t *testing.T) {
	// Spend CPU until /proc shows some (its unit is 10 ms), so that a wrong field
	// for the CPU time fails too.
	var st procStat
	var err error
	x := uint64(1)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		for i := range 1_000_000 {
			x = x*6364136223846793005 + uint64(i)
		}
		if st, err = readProcStat(os.Getpid()); err != nil || st.cpu > 0 {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if st.minflt == 0 || st.cpu <= 0 {
		t.Fatalf("this process: %+v (%d), want minor faults and CPU time above 0", st, x)
	}
	if _, err := readProcStat(1 << 30); err == nil || !strings.Contains(err.Error(), "/proc/1073741824/stat") {
		t.Fatalf("a process that does not exist: %v, want an error naming its /proc file", err)
	}
}

// TestClusterTableFaults: the table shows each process's page faults an
// authorization, "-" where /proc could not be read.
func TestClusterTableFaults(t *testing.T) {
	rep := &ClusterReport{
		Single:  &ClusterPhase{Nodes: []NodeFigures{{Answered: 1000, CPUPerAuthUS: 60, FaultsPerAuth: 0.31}}},
		Cluster: &ClusterPhase{Nodes: []NodeFigures{{Node: 1, Answered: 300, CPUPerAuthUS: 200, FaultsPerAuth: 4.5}, {Node: 2, Answered: 300, CPUPerAuthUS: 200, FaultsPerAuth: -1}}},
		Ratio:   3.3, MarginalRatio: 3.2,
	}
	var b strings.Builder
	rep.WriteTable(&b)
	for _, want := range []string{
		"faults/auth",
		"single             1000          0          0          0.0           60.0            0.0         0.31",
		"node 1              300          0          0          0.0          200.0            0.0         4.50",
		"node 2              300          0          0          0.0          200.0            0.0            -",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, b.String())
		}
	}
}

// TestClusterTableRate: a run offered an open loop says so, and a closed-loop run
// has no such row.
func TestClusterTableRate(t *testing.T) {
	for _, rate := range []float64{0, 4000} {
		rep := &ClusterReport{Rate: rate, Single: &ClusterPhase{}, Cluster: &ClusterPhase{}}
		var b strings.Builder
		rep.WriteTable(&b)
		has := strings.Contains(b.String(), "offered (open loop) /s")
		if has != (rate > 0) {
			t.Errorf("rate %v: offered row shown %v:\n%s", rate, has, b.String())
		}
		if rate > 0 && !strings.Contains(b.String(), "4000           4000") {
			t.Errorf("rate %v: the offered rate is not in both columns:\n%s", rate, b.String())
		}
	}
}

// TestHostSpeed: the same fixed work's CPU time in the two phases compares the
// host's speed in them; the table says so, and warns when the host ran slower in
// one phase (docs/cluster.md, "The host's speed between the phases").
func TestHostSpeed(t *testing.T) {
	slow := &ClusterPhase{HostCalibUS: 173}
	fast := &ClusterPhase{HostCalibUS: 100}
	for _, c := range []struct {
		name            string
		single, cluster *ClusterPhase
		want            float64
	}{
		{"no single phase", nil, fast, 0},
		{"not measured", &ClusterPhase{}, fast, 0},
		{"slower single phase", slow, fast, 1.73},
		{"slower cluster phase", fast, slow, 100.0 / 173},
		{"same speed", fast, fast, 1},
	} {
		if got := HostSpeed(c.single, c.cluster); got < c.want-1e-9 || got > c.want+1e-9 {
			t.Errorf("%s: HostSpeed = %v, want %v", c.name, got, c.want)
		}
	}

	table := func(rep *ClusterReport) string {
		var b strings.Builder
		rep.WriteTable(&b)
		return b.String()
	}
	slowSingle := table(&ClusterReport{Single: slow, Cluster: fast, Ratio: 1.98, MarginalRatio: 1.86, Host: HostSpeed(slow, fast)})
	for _, want := range []string{
		"host speed: the same fixed work took 1.73× as much CPU in the single node's phase as in the cluster's (173 / 100 µs)",
		"the host ran slower in the single node's phase",
	} {
		if !strings.Contains(slowSingle, want) {
			t.Errorf("the table lacks %q:\n%s", want, slowSingle)
		}
	}
	steady := table(&ClusterReport{Single: &ClusterPhase{HostCalibUS: 110}, Cluster: fast, Ratio: 2, MarginalRatio: 2, Host: 1.1})
	if !strings.Contains(steady, "took 1.10× as much") || strings.Contains(steady, "the host ran slower") {
		t.Errorf("a host speed within 20%%: want the figure and no warning:\n%s", steady)
	}
	if unmeasured := table(&ClusterReport{Single: fast, Cluster: fast, Ratio: 2, MarginalRatio: 2}); strings.Contains(unmeasured, "host speed") {
		t.Errorf("no calibration: want no host speed line:\n%s", unmeasured)
	}
	if partial := table(&ClusterReport{Cluster: fast, Host: 1.3}); strings.Contains(partial, "host speed") { // read back without its single phase: no panic
		t.Errorf("no single phase: want no host speed line:\n%s", partial)
	}
	rounds := table(&ClusterReport{Single: fast, Cluster: slow, Ratio: 2, MarginalRatio: 2, Host: HostSpeed(fast, slow),
		Rounds: []Round{{100, 200, 2, 1.01}, {90, 200, 2.22, 0.58}}})
	for _, want := range []string{"host speed\n", "2                90.0        200.0    2.22×         0.58", "host speed (last round)", "the host ran slower in the cluster's phase"} {
		if !strings.Contains(rounds, want) {
			t.Errorf("rounds: the table lacks %q:\n%s", want, rounds)
		}
	}
}

// TestCalibrate: the fixed work takes some CPU time of the thread that did it (a
// gauge reading 0, or a thread's clock that cannot be read, fails).
func TestCalibrate(t *testing.T) {
	if _, ok := threadCPU(); !ok {
		t.Skip("this system cannot read a thread's CPU time")
	}
	if d := calibrate(); d <= 0 {
		t.Fatalf("calibrate: %v, want CPU time above 0", d)
	}
}

// TestClusterTableFailures: a phase that answered more than 1% of its answers with
// a failure (91, 96) is said to have been overloaded or unavailable (a cluster at
// 3,000/s on 2 cores fell behind, answered 57% 91, and its 3.91× stood as a round's
// ratio unremarked, 7 December 2026); a few failures are not remarked on.
func TestClusterTableFailures(t *testing.T) {
	load := func(auths, failed int64) *LoadResult {
		h := hdrhistogram.New(1, 60_000_000, 3)
		for range auths {
			if err := h.RecordValue(5000); err != nil {
				t.Fatal(err)
			}
		}
		return &LoadResult{Hist: h, Failed: failed, Codes: map[string]int64{"00": auths, "91": failed}}
	}
	var b strings.Builder
	(&ClusterReport{Single: &ClusterPhase{Load: load(1000, 5)}, Cluster: &ClusterPhase{Load: load(13612, 18360)}, Ratio: 3.91, MarginalRatio: 3.5}).WriteTable(&b)
	out := b.String()
	if want := "the cluster's phase answered 18360 of its 31972 answers with a failure (91 x 18360, 57%): it was overloaded or unavailable"; !strings.Contains(out, want) {
		t.Errorf("the table lacks %q:\n%s", want, out)
	}
	if strings.Contains(out, "the single node's phase answered") {
		t.Errorf("5 failures in 1,005 answers remarked on:\n%s", out)
	}
}
