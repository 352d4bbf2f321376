package cpubusy

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The files the system counter reads (variables so that tests can point them at
// fixtures).
var (
	procStat   = "/proc/stat"
	procCgroup = "/proc/self/cgroup"
	cgroupRoot = "/sys/fs/cgroup"
)

// System returns the counter of the CPUs this process may use: the usage of its
// cgroup (v2) against its CPU quota when the cgroup or one above it has one (the
// smallest quota on the way up, and no more cores than the affinity mask holds), else
// the CPUs of its affinity mask from /proc/stat (all of the machine's unless a cpuset
// narrows them). Where neither can be read the counter reports ok false.
func System() Counter {
	cpus := affinity()
	if dir, cores, err := cgroupQuota(); err == nil && cores > 0 {
		if len(cpus) > 0 {
			cores = min(cores, float64(len(cpus)))
		}
		return cgroupCounter(dir, cores)
	}
	return procStatCounter(cpus)
}

// userHZ is the unit of /proc/stat's times (USER_HZ, 100 on every Linux
// architecture Go supports). Only ratios of them are used.
const userHZ = 100

// procStatCounter reads CPU times from /proc/stat: of the CPUs in cpus, or of all of
// them (the first line's totals) when cpus is nil.
func procStatCounter(cpus map[int]bool) Counter {
	return func() (used, total time.Duration, ok bool) {
		f, err := os.Open(procStat)
		if err != nil {
			return 0, 0, false
		}
		defer f.Close()
		busy, all, err := parseProcStat(bufio.NewReaderSize(f, 4096), cpus)
		if err != nil {
			return 0, 0, false
		}
		tick := time.Second / userHZ
		return time.Duration(busy) * tick, time.Duration(all) * tick, true
	}
}

// parseProcStat returns the busy and total ticks in /proc/stat's "cpu" lines: the
// first line's (all CPUs) when cpus is nil, else the sum of the lines "cpuN" for the
// N in cpus. A line holds user nice system idle iowait irq softirq steal (guest
// times are already in user and nice). Idle and iowait are not busy; steal is (the
// hypervisor gave the time to someone else). It reads no further than the cpu lines.
func parseProcStat(r *bufio.Reader, cpus map[int]bool) (busy, total uint64, err error) {
	first, found := true, 0
	for {
		line, rerr := r.ReadString('\n')
		name, rest, _ := strings.Cut(strings.TrimRight(line, "\n"), " ")
		if !strings.HasPrefix(name, "cpu") {
			break
		}
		include := first && name == "cpu" && cpus == nil
		if !first || name != "cpu" {
			n, aerr := strconv.Atoi(name[3:])
			include = aerr == nil && cpus[n]
		}
		if first && name != "cpu" {
			return 0, 0, fmt.Errorf("cpubusy: %s: first line %q is not the cpu totals", procStat, line)
		}
		first = false
		if include {
			b, t, perr := cpuTicks(rest)
			if perr != nil {
				return 0, 0, fmt.Errorf("cpubusy: %s: %s: %w", procStat, name, perr)
			}
			busy, total, found = busy+b, total+t, found+1
			if cpus == nil {
				return busy, total, nil
			}
		}
		if rerr != nil {
			break
		}
	}
	if first {
		return 0, 0, fmt.Errorf("cpubusy: %s has no cpu totals", procStat)
	}
	if found == 0 {
		return 0, 0, fmt.Errorf("cpubusy: %s has none of the CPUs of the affinity mask", procStat)
	}
	return busy, total, nil
}

// cpuTicks returns the busy and total ticks of a cpu line's columns.
func cpuTicks(cols string) (busy, total uint64, err error) {
	f := strings.Fields(cols)
	if len(f) < 4 {
		return 0, 0, fmt.Errorf("%d columns, want at least 4", len(f))
	}
	var v [8]uint64
	for i := range min(len(f), len(v)) {
		if v[i], err = strconv.ParseUint(f[i], 10, 64); err != nil {
			return 0, 0, fmt.Errorf("column %d: %w", i+1, err)
		}
	}
	for _, x := range v {
		total += x
	}
	return total - v[3] - v[4], total, nil
}

// cgroupQuota returns the cgroup (v2) directory whose CPU quota binds this process
// (its own cgroup's or one above it: the smallest quota on the way up to the root of
// the hierarchy as mounted), and that quota in cores; 0 cores when none has one.
func cgroupQuota() (dir string, cores float64, err error) {
	b, err := os.ReadFile(procCgroup)
	if err != nil {
		return "", 0, err
	}
	var rel string
	found := false
	for line := range strings.SplitSeq(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			rel, found = p, true
			break
		}
	}
	if !found {
		return "", 0, fmt.Errorf("cpubusy: %s: no cgroup v2 entry", procCgroup)
	}
	own := filepath.Join(cgroupRoot, filepath.Clean("/"+rel))
	read := false
	for d := own; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "cpu.max"))
		if err == nil {
			read = true
			c, perr := parseCPUMax(b)
			if perr != nil {
				return "", 0, perr
			}
			if c > 0 && (cores == 0 || c < cores) {
				dir, cores = d, c
			}
		}
		if d == cgroupRoot || len(d) <= len(cgroupRoot) {
			break
		}
	}
	if !read {
		return "", 0, fmt.Errorf("cpubusy: no cpu.max in %s or above it", own)
	}
	if cores == 0 {
		dir = own
	}
	return dir, cores, nil
}

// parseCPUMax reads a cgroup's cpu.max ("<quota> <period>" in microseconds, or "max
// <period>"): the quota in cores, 0 for none.
func parseCPUMax(b []byte) (float64, error) {
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, fmt.Errorf("cpubusy: cpu.max %q: want quota and period", b)
	}
	if f[0] == "max" {
		return 0, nil
	}
	q, err1 := strconv.ParseFloat(f[0], 64)
	p, err2 := strconv.ParseFloat(f[1], 64)
	if err1 != nil || err2 != nil || q <= 0 || p <= 0 {
		return 0, fmt.Errorf("cpubusy: cpu.max %q: not two positive numbers", b)
	}
	return q / p, nil
}

// cgroupCounter reads the usage of the cgroup at dir (cpu.stat's usage_usec, its
// own and its descendants') against cores, over the wall clock.
func cgroupCounter(dir string, cores float64) Counter {
	stat := filepath.Join(dir, "cpu.stat")
	start := time.Now()
	return func() (used, total time.Duration, ok bool) {
		b, err := readHead(stat, 1024)
		if err != nil {
			return 0, 0, false
		}
		usec, err := parseUsage(b)
		if err != nil {
			return 0, 0, false
		}
		return time.Duration(usec) * time.Microsecond, time.Duration(float64(time.Since(start)) * cores), true
	}
}

// parseUsage returns usage_usec from a cgroup's cpu.stat.
func parseUsage(b []byte) (uint64, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "usage_usec "); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("cpubusy: cpu.stat %q has no usage_usec", b)
}

// readHead reads up to n bytes from the start of the file at path.
func readHead(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	k, err := f.Read(b)
	if k > 0 {
		return b[:k], nil
	}
	return nil, fmt.Errorf("cpubusy: read %s: %w", path, err)
}
