package bench

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// TestRoundsReport: the median of the rounds' ratios (odd and even counts), and the
// table of rounds that `bench --cluster N --rounds M` prints before its verdict.
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
	rep := &ClusterReport{Rounds: []Round{{80, 320, 4}, {90, 270, 3}, {100, 350, 3.5}}, Ratio: 3.5, MarginalRatio: 3.4}
	var b strings.Builder
	rep.WriteTable(&b)
	for _, want := range []string{
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
	st, err := readProcStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.minflt == 0 || st.cpu < 0 {
		t.Fatalf("this process: %+v, want minor faults above 0", st)
	}
	if _, err := readProcStat(1 << 30); err == nil || !strings.Contains(err.Error(), "/proc/1073741824/stat") {
		t.Fatalf("a process that does not exist: %v, want an error naming its /proc file", err)
	}
}

// TestSettledFn: the warm-up ends once the faults per authorization over the last
// settledWindow calls fall under settledFaults, not on one quiet second, and at
// once when the faults cannot be read.
func TestSettledFn(t *testing.T) {
	var faults uint64
	var answered int64
	settled := settledFn(func() (uint64, error) { return faults, nil }, io.Discard)
	step := func(perAuth float64) bool {
		answered += 1000
		faults += uint64(perAuth * 1000)
		return settled(answered)
	}
	for i := range 10 {
		if step(8) {
			t.Fatalf("call %d: settled at 8 faults an authorization", i+1)
		}
	}
	// One quiet second in a burst is not enough.
	if step(0.1) || step(8) {
		t.Fatal("settled within a window averaging over 1 fault an authorization")
	}
	calls := 0
	for !step(0.2) {
		if calls++; calls > settledWindow {
			t.Fatalf("not settled after %d calls at 0.2 faults an authorization", calls)
		}
	}
	if calls < settledWindow-2 {
		t.Fatalf("settled after %d quiet calls, while the window still held the burst", calls)
	}
	failing := settledFn(func() (uint64, error) { return 0, errors.New("no /proc") }, io.Discard)
	if !failing(1) {
		t.Fatal("faults unreadable: the warm-up should end")
	}
}

// TestWarmUntil: true as soon as settled says so; false at the deadline or when the
// context ends.
func TestWarmUntil(t *testing.T) {
	n := 0
	answered := func() int64 { return 7 }
	if !warmUntil(context.Background(), func(a int64) bool { n++; return n == 3 && a == 7 }, answered, time.Now().Add(time.Minute), time.Millisecond) {
		t.Fatal("not settled although settled said so")
	}
	if warmUntil(context.Background(), func(int64) bool { return false }, answered, time.Now().Add(20*time.Millisecond), time.Millisecond) {
		t.Fatal("settled although settled never said so")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if warmUntil(ctx, func(int64) bool { return false }, answered, time.Now().Add(time.Minute), time.Hour) {
		t.Fatal("settled with the context ended")
	}
}

// TestClusterTableWarmup: the table shows each phase's warm-up (a capped one so
// marked) and each process's page faults an authorization.
func TestClusterTableWarmup(t *testing.T) {
	rep := &ClusterReport{
		Single:  &ClusterPhase{Warmup: 9 * time.Second, Nodes: []NodeFigures{{Answered: 1000, CPUPerAuthUS: 60, FaultsPerAuth: 0.31}}},
		Cluster: &ClusterPhase{Warmup: 2 * time.Minute, WarmupCapped: true, Nodes: []NodeFigures{{Node: 1, Answered: 300, CPUPerAuthUS: 200, FaultsPerAuth: 4.5}}},
		Ratio:   3.3, MarginalRatio: 3.2,
	}
	var b strings.Builder
	rep.WriteTable(&b)
	for _, want := range []string{
		"warm-up                                       9 s    120 s (cap)",
		"faults/auth",
		"0.31",
		"4.50",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, b.String())
		}
	}
}
