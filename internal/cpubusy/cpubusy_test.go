package cpubusy

import (
	"bufio"
	"context"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	const stat = "cpu  2338556 16458 946033 8402468 70074 0 183568 25018 0 0\n" +
		"cpu0 100 0 100 700 100 0 0 0 0 0\n" +
		"cpu1 10 0 10 80 0 0 0 0 0 0\n" +
		"cpu2 50 0 0 50 0 0 0 0 0 0\n" +
		"intr 1 2 3\n"
	for _, tc := range []struct {
		in          string
		cpus        map[int]bool
		busy, total uint64
		bad         bool
	}{
		// user nice system idle iowait irq softirq steal guest guest_nice
		{in: stat, busy: 2338556 + 16458 + 946033 + 183568 + 25018, total: 2338556 + 16458 + 946033 + 8402468 + 70074 + 183568 + 25018},
		{in: stat, cpus: map[int]bool{1: true, 2: true}, busy: 20 + 50, total: 100 + 100}, // a cpuset of two
		{in: stat, cpus: map[int]bool{0: true, 1: true, 2: true}, busy: 270, total: 1200}, // iowait is not busy
		{in: "cpu 10 0 10 80\n", busy: 20, total: 100},                                    // an old kernel: four columns
		{in: stat, cpus: map[int]bool{7: true}, bad: true},                                // none of the mask
		{in: "cpu0 1 2 3 4 5\n", bad: true},
		{in: "intr 1 2 3\n", bad: true},
		{in: "cpu 1 2 x 4 5\n", bad: true},
		{in: "cpu 1 2\n", bad: true},
		{in: "", bad: true},
	} {
		busy, total, err := parseProcStat(bufio.NewReader(strings.NewReader(tc.in)), tc.cpus)
		if tc.bad {
			if err == nil {
				t.Errorf("parseProcStat(%q, %v) = %d, %d, want an error", tc.in, tc.cpus, busy, total)
			}
			continue
		}
		if err != nil || busy != tc.busy || total != tc.total {
			t.Errorf("parseProcStat(%q, %v) = %d, %d, %v, want %d, %d", tc.in, tc.cpus, busy, total, err, tc.busy, tc.total)
		}
	}
}

func TestParseCPUMax(t *testing.T) {
	for _, tc := range []struct {
		in    string
		cores float64
		bad   bool
	}{
		{in: "max 100000\n", cores: 0},
		{in: "200000 100000\n", cores: 2},
		{in: "50000 100000", cores: 0.5},
		{in: "max", bad: true},
		{in: "-1 100000", bad: true},
		{in: "100000 0", bad: true},
	} {
		got, err := parseCPUMax([]byte(tc.in))
		if (err != nil) != tc.bad || got != tc.cores {
			t.Errorf("parseCPUMax(%q) = %v, %v, want %v (error %v)", tc.in, got, err, tc.cores, tc.bad)
		}
	}
}

func TestParseUsage(t *testing.T) {
	got, err := parseUsage([]byte("usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\n"))
	if err != nil || got != 123456 {
		t.Errorf("parseUsage = %d, %v, want 123456", got, err)
	}
	if _, err := parseUsage([]byte("user_usec 1\n")); err == nil {
		t.Error("parseUsage without usage_usec: no error")
	}
}

// TestCgroupQuota reads a cgroup v2 quota from fixture files laid out as the kernel
// lays them out, and the counter built on it.
func TestCgroupQuota(t *testing.T) {
	dir := t.TempDir()
	defer func(a, b string) { procCgroup, cgroupRoot = a, b }(procCgroup, cgroupRoot)
	procCgroup, cgroupRoot = filepath.Join(dir, "cgroup"), filepath.Join(dir, "fs")
	grp := filepath.Join(cgroupRoot, "system.slice", "switchyard.service")
	if err := os.MkdirAll(grp, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(path, s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(procCgroup, "0::/system.slice/switchyard.service\n")
	write(filepath.Join(grp, "cpu.max"), "150000 100000\n")
	write(filepath.Join(grp, "cpu.stat"), "usage_usec 5000\nuser_usec 4000\n")
	gotDir, cores, err := cgroupQuota()
	if err != nil || gotDir != grp || cores != 1.5 {
		t.Fatalf("cgroupQuota = %q, %v, %v; want %q, 1.5", gotDir, cores, err, grp)
	}
	used, _, ok := cgroupCounter(grp, cores)()
	if !ok || used != 5*time.Millisecond {
		t.Errorf("the cgroup's counter = %v, %v; want 5ms used", used, ok)
	}

	// A smaller quota on the slice above binds the service, and its usage is the
	// one to read.
	slice := filepath.Dir(grp)
	write(filepath.Join(slice, "cpu.max"), "100000 100000\n")
	if gotDir, cores, err := cgroupQuota(); err != nil || gotDir != slice || cores != 1 {
		t.Errorf("cgroupQuota under a slice of 1 core = %q, %v, %v; want %q, 1", gotDir, cores, err, slice)
	}
	write(filepath.Join(slice, "cpu.max"), "max 100000\n")
	write(filepath.Join(grp, "cpu.max"), "max 100000\n")
	if _, cores, err := cgroupQuota(); err != nil || cores != 0 {
		t.Errorf("cgroupQuota without a quota = %v, %v; want 0 cores", cores, err)
	}
	write(procCgroup, "12:cpu,cpuacct:/docker/abc\n") // cgroup v1 only
	if _, _, err := cgroupQuota(); err == nil {
		t.Error("cgroupQuota with cgroup v1 only: no error")
	}
}

// TestMeter drives a Meter's samples with a counter and a clock of the test's own.
func TestMeter(t *testing.T) {
	var used, total time.Duration
	ok := true
	m := NewFrom(func() (time.Duration, time.Duration, bool) { return used, total, ok }, 100*time.Millisecond, 0)
	clock := time.Unix(1000, 0)
	m.now = func() time.Time { return clock }
	step := func(d, u, tot time.Duration) {
		clock = clock.Add(d)
		used += u
		total += tot
		m.sample()
	}
	m.sample()
	if _, known := m.Busy(); known {
		t.Fatal("known after one sample")
	}
	step(100*time.Millisecond, 150*time.Millisecond, 200*time.Millisecond)
	if s, known := m.Busy(); !known || s != 0.75 {
		t.Fatalf("Busy = %v, %v; want 0.75", s, known)
	}
	step(100*time.Millisecond, 40*time.Millisecond, 400*time.Millisecond)
	if s, _ := m.Busy(); s != 0.1 {
		t.Errorf("Busy = %v, want 0.1 (40ms of 400ms)", s)
	}
	// A counter that did not move keeps the last share.
	step(100*time.Millisecond, 0, 0)
	if s, known := m.Busy(); !known || s != 0.1 {
		t.Errorf("Busy after a sample that did not move = %v, %v; want 0.1 still", s, known)
	}
	// A counter that stops being readable makes the share unknown, and two
	// readable samples make it known again.
	ok = false
	step(100*time.Millisecond, 0, 0)
	if _, known := m.Busy(); known {
		t.Error("known while the counter cannot be read")
	}
	ok = true
	step(100*time.Millisecond, 10*time.Millisecond, 200*time.Millisecond)
	if _, known := m.Busy(); known {
		t.Error("known after one readable sample")
	}
	step(100*time.Millisecond, 200*time.Millisecond, 200*time.Millisecond)
	if s, known := m.Busy(); !known || s != 1 {
		t.Errorf("Busy = %v, %v; want 1", s, known)
	}
	var nilMeter *Meter
	if _, known := nilMeter.Busy(); known {
		t.Error("a nil Meter's share is known")
	}
}

// TestMeterAverages: with a time constant, the share is a moving average weighted by
// the time each interval covers.
func TestMeterAverages(t *testing.T) {
	var used, total time.Duration
	m := NewFrom(func() (time.Duration, time.Duration, bool) { return used, total, true }, 250*time.Millisecond, time.Second)
	clock := time.Unix(1000, 0)
	m.now = func() time.Time { return clock }
	interval := func(share float64) (float64, bool) {
		clock = clock.Add(250 * time.Millisecond)
		used += time.Duration(share * float64(500*time.Millisecond))
		total += 500 * time.Millisecond
		m.sample()
		return m.Busy()
	}
	m.sample()
	if s, known := interval(0.8); !known || s != 0.8 {
		t.Fatalf("first interval: %v, %v; want 0.8 (the average starts at the first share)", s, known)
	}
	w := 1 - math.Exp(-0.25) // a quarter second's weight against a time constant of 1 s
	want := 0.8 + (0.4-0.8)*w
	if s, _ := interval(0.4); math.Abs(s-want) > 1e-9 {
		t.Errorf("after a quarter second at 0.4: %v, want %v", s, want)
	}
	// A second and a half at 0.4: the average comes within 0.1 of it.
	var s float64
	for range 6 {
		s, _ = interval(0.4)
	}
	if s > 0.5 || s < 0.4 {
		t.Errorf("after 1.75 s at 0.4: %v, want within 0.1 above 0.4", s)
	}
}

// TestMeterRun: Run samples until its context ends, then returns; Busy reads what it
// found, and a counter that cannot be read is read only once an interval.
func TestMeterRun(t *testing.T) {
	reads := make(chan int, 1)
	n := 0
	m := NewFrom(func() (time.Duration, time.Duration, bool) {
		n++
		if n == 3 {
			reads <- n
		}
		return time.Duration(n) * time.Second, time.Duration(n) * 2 * time.Second, true
	}, time.Millisecond, 0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	<-reads // the third sample: two intervals folded in
	if s, known := m.Busy(); !known || s != 0.5 {
		t.Errorf("Busy after three samples = %v, %v; want 0.5", s, known)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
	if err := NewFrom(nil, 0, 0).Run(context.Background()); err != nil { // returns at once
		t.Errorf("Run of a Meter without a counter = %v", err)
	}
}

// TestSystem reads this machine's CPUs: on Linux the share becomes known once the
// counter has moved, and lies between 0 and 1.
func TestSystem(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the system counter reads Linux's files")
	}
	if cpus := affinity(); len(cpus) != runtime.NumCPU() {
		t.Errorf("affinity() holds %d CPUs, runtime.NumCPU() %d", len(cpus), runtime.NumCPU())
	}
	m := NewFrom(System(), time.Millisecond, DefaultTau)
	deadline := time.Now().Add(10 * time.Second)
	for {
		m.sample()
		s, known := m.Busy()
		if known {
			if s < 0 || s > 1 {
				t.Fatalf("Busy = %v, not a share", s)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the share of this machine's CPUs never became known")
		}
		time.Sleep(5 * time.Millisecond) // the counter moves with the kernel's clock ticks
	}
}
