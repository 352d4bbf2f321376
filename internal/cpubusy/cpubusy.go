// Package cpubusy measures how busy the CPUs that this process may use are: the share
// (0 to 1) of their time that was not idle over the last interval. The journal's group
// commit reads it to decide whether a sync's CPU is worth saving by letting groups
// gather (issue 15): on a machine with CPU to spare it is not, and a transaction
// should not wait for its group.
//
// On Linux the share is read from the cgroup (v2) when the process's cgroup has a CPU
// quota (cpu.max: its usage against the quota), and otherwise from /proc/stat: the
// CPUs of the process's affinity mask (all of the machine's unless a cpuset narrows
// them), whoever uses them, since the other processes on those CPUs compete for the
// same cores. cgroup v1 quotas are not read. Elsewhere the share is unknown.
//
// Hand-written rather than taken from a library (gopsutil reads the same files): two
// files of a few lines each, read a few times a second on the journal's commit path,
// without a dependency that brings much more.
package cpubusy

import (
	"context"
	"math"
	"sync/atomic"
	"time"
)

// DefaultEvery is how often a Meter takes a new sample by default, and DefaultTau
// the time constant of the moving average it reports: a quarter second's share
// swings by 0.15 on a busy machine (issue 15), and a decision taken on one would
// turn back and forth.
const (
	DefaultEvery = 250 * time.Millisecond
	DefaultTau   = time.Second
)

// Counter is a source of CPU time: how much of it has been used and how much has
// been available since some fixed point, both growing. ok is false when it cannot be
// read.
type Counter func() (used, total time.Duration, ok bool)

// Meter reports the busy share of the CPUs: a moving average of the share over each
// interval between samples. Run samples the counter on its caller's goroutine; Busy
// reads what the last sample found and never touches a file, so that it can sit on a
// hot path (a read of /proc/stat costs the kernel more the more CPUs and interrupts
// a machine has). Busy is safe for concurrent use with Run.
type Meter struct {
	every time.Duration
	tau   time.Duration
	read  Counter
	now   func() time.Time

	// The last sample, the sampler's (Run's goroutine) alone.
	at         time.Time
	used, tot  time.Duration
	haveSample bool

	share atomic.Uint64 // math.Float64bits of the moving average
	known atomic.Bool
}

// New returns a Meter of this system's CPUs (System) with the default interval and
// time constant.
func New() *Meter {
	return NewFrom(System(), DefaultEvery, DefaultTau)
}

// NewFrom returns a Meter that reads read (nil: the share is never known), samples
// every every (0: DefaultEvery) and averages with the time constant tau (0: none,
// the last interval's share alone).
func NewFrom(read Counter, every, tau time.Duration) *Meter {
	if every <= 0 {
		every = DefaultEvery
	}
	return &Meter{every: every, tau: max(tau, 0), read: read, now: time.Now}
}

// Run samples the counter now and then at every interval until ctx is done, and
// returns nil. A Meter has one Run at a time; without one the share stays unknown.
func (m *Meter) Run(ctx context.Context) error {
	if m == nil || m.read == nil {
		return nil
	}
	t := time.NewTicker(m.every)
	defer t.Stop()
	for {
		m.sample()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Busy returns the share (0 to 1) of the CPUs' time that was in use, a moving
// average over the intervals between samples with the Meter's time constant, and
// whether it is known (false before Run's second sample, and while the counter
// cannot be read; the average starts again once it can).
func (m *Meter) Busy() (share float64, known bool) {
	if m == nil {
		return 0, false
	}
	return math.Float64frombits(m.share.Load()), m.known.Load()
}

// sample reads the counter and folds the interval since the last sample into the
// share. Only the sampler calls it.
func (m *Meter) sample() {
	now := m.now()
	used, tot, ok := m.read()
	if !ok {
		m.haveSample = false
		m.known.Store(false)
		return
	}
	if m.haveSample && tot > m.tot {
		s := min(max(float64(used-m.used)/float64(tot-m.tot), 0), 1)
		if m.known.Load() && m.tau > 0 {
			old := math.Float64frombits(m.share.Load())
			s = old + (s-old)*(1-math.Exp(-float64(now.Sub(m.at))/float64(m.tau)))
		}
		m.share.Store(math.Float64bits(s))
		m.known.Store(true)
	}
	m.at, m.used, m.tot, m.haveSample = now, used, tot, true
}
