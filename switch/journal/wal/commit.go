package wal

import (
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// GroupOptions configure group commit.
type GroupOptions struct {
	// MaxBatch is the most requests in one group (default 4096).
	MaxBatch int
	// Window is the longest a group may gather before it is committed, and Gap how
	// long the queue may stay empty before it is committed anyway. With Window 0 a
	// group is committed as soon as the queue is empty (while one commit runs, the
	// next group gathers by itself). The Window applies only once requests arrive
	// fast enough for one Window to gather WindowFrom of them or more (the arrival
	// rate, measured, times the Window); below that nothing waits for a group.
	// While a group gathers, the Gap is at least the time WindowGap requests take
	// to arrive at that rate, so that ordinary spacing between arrivals does not
	// end the Window early. Gap defaults to 50 µs.
	Window time.Duration
	Gap    time.Duration
	// Busy, when set, reports how busy the CPUs are (a share from 0 to 1) and whether
	// that is known (cpubusy.Meter.Busy). The Window then engages only while the CPUs
	// are busy too: from a share of BusyFrom on, until it falls below BusyFrom minus
	// BusyBand (or half of BusyFrom, when that is higher). A group's sync costs CPU
	// (60-125 µs on the test machine's virtual disk, issue 15) and the Window saves it
	// at the price of the writers' wait, which is worth paying only when the CPU is
	// scarce. A share that is not known, or a BusyFrom of 0, leaves the decision to the
	// arrival rate alone.
	Busy     func() (share float64, known bool)
	BusyFrom float64
	// Queue is how many requests may wait for the loop before Submit blocks (default
	// 8192).
	Queue int
}

// WindowFrom is how many requests one Window must be expected to gather, at the
// measured arrival rate, for groups to gather for a Window: with the journal's
// 1 ms Window, from 8,000 writes/s (about 2,700 authorizations/s, each two durable
// writes and a delivery mark). Below that a sync costs less than the wait would:
// an ordinary load of 1,000 authorizations/s is synced as it comes. Above it each
// sync (on a virtual disk 80-125 µs of CPU, issue 15) is shared by WindowFrom
// requests or more instead of the 3-6 that queue by themselves during a sync.
//
// The rate counts every request submitted, whatever the Window did with it; until
// issue 15 the trigger was how many requests queued by themselves during the
// previous sync (8 on average), which fewer, faster syncs kept low at 5,000
// authorizations/s: the Window stayed off where its syncs cost the most CPU.
const WindowFrom = 8

// WindowGap is how many mean arrival intervals the queue may stay empty, within a
// Window, before the group is committed anyway (when that is longer than the Gap).
const WindowGap = 3

// BusyBand is how far below GroupOptions.BusyFrom the CPUs' busy share must fall for
// the Window to disengage once it has engaged. The Window itself lowers the share (at
// 4,000-5,000 authorizations a second on the 2-core test machine, with the bench's
// harness and simulator, from 0.55-0.74 to 0.35-0.53 in quarter seconds, issue 15),
// so a narrower band would turn it on and off by turns (a band of 0.3 did).
const BusyBand = 0.35

// rateTau is the time constant of the arrival rate's moving average, and
// ratePeriod the shortest interval it is measured over.
const (
	rateTau    = 50 * time.Millisecond
	ratePeriod = 5 * time.Millisecond
)

// Committer runs group commit. Requests wait in a queue, in the order submitted;
// whoever holds the commit token takes what is queued (and, under load, what follows
// within the Window) as a group and hands it to the commit function, which writes it
// to the log with one Append (one write, one fdatasync) and tells the requests'
// writers. The token is held by the committer's own goroutine (started by
// StartCommitter, joined by Close) or, through Lead, by a writer that waits for its
// own request: when no commit is in progress, that writer commits its request (and
// those queued with it) on its own goroutine, instead of waking the committer and
// being woken by it (two run-queue hand-offs per durable write, each a wait for a P
// on a busy machine: issue 15). Groups are committed one at a time, in submission
// order, whoever commits them.
type Committer[R any] struct {
	opts    GroupOptions
	commit  func(group []R)
	kick    chan struct{} // capacity 1: requests were queued
	closing chan struct{} // closed by Close
	done    chan struct{}

	mu       sync.Mutex // guards queue, arrivals and closed
	space    *sync.Cond // signalled when the queue shrinks
	queue    []R
	arrivals uint64 // requests ever queued
	closed   bool

	// token is held by whoever commits; the fields below are its holder's.
	token sync.Mutex
	batch []R
	timer *time.Timer
	// rateFrom is how many requests had arrived when the rate was last measured.
	rateFrom uint64
	// now is the clock the rate is measured with (tests set their own).
	now func() time.Time

	// The moving average of the requests submitted a second (math.Float64bits) and
	// when it was measured (Unix nanoseconds, by now): written by the token's
	// holder at the start of groups, read by Rate too.
	rateBits atomic.Uint64
	rateAt   atomic.Int64

	// cpuBusy is whether the CPUs were last found busy enough for the Window (the
	// token holder's, with the hysteresis of BusyBand); cpuLets whether the CPU
	// allowed the Window when a group last asked (true when not known), read by
	// Rate too.
	cpuBusy bool
	cpuLets atomic.Bool
}

// StartCommitter starts a committer that hands each group to commit, in the order the
// requests were submitted. commit runs one group at a time, on the committer's
// goroutine or on a Lead caller's; it must not keep the slice.
func StartCommitter[R any](opts GroupOptions, commit func(group []R)) *Committer[R] {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 4096
	}
	if opts.Gap <= 0 {
		opts.Gap = 50 * time.Microsecond
	}
	if opts.Queue <= 0 {
		opts.Queue = 8192
	}
	c := &Committer[R]{opts: opts, commit: commit, kick: make(chan struct{}, 1), closing: make(chan struct{}), done: make(chan struct{}),
		batch: make([]R, 0, opts.MaxBatch), timer: time.NewTimer(time.Hour), now: time.Now}
	c.rateAt.Store(c.now().UnixNano())
	c.cpuLets.Store(true)
	c.timer.Stop()
	c.space = sync.NewCond(&c.mu)
	go c.loop()
	return c
}

// Submit queues r for the next group, which the committer's goroutine commits. It
// blocks while Queue requests wait, and fails with ErrClosed after Close.
func (c *Committer[R]) Submit(r R) error {
	if err := c.enqueue(r); err != nil {
		return err
	}
	c.wake()
	return nil
}

// Lead queues r and, when no commit is in progress, commits the queued requests, r
// among them, on the caller's goroutine before it returns; otherwise it leaves them
// to the committer's goroutine, as Submit does. It is for a writer that will wait for
// r's commit anyway. It fails with ErrClosed after Close.
func (c *Committer[R]) Lead(r R) error {
	if err := c.enqueue(r); err != nil {
		return err
	}
	if !c.token.TryLock() {
		c.wake() // the commit in progress may have taken its group already
		return nil
	}
	c.commitQueued()
	c.token.Unlock()
	if c.queued() > 0 {
		c.wake() // what came during the commit
	}
	return nil
}

func (c *Committer[R]) enqueue(r R) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for !c.closed && len(c.queue) >= c.opts.Queue {
		c.space.Wait()
	}
	if c.closed {
		return ErrClosed
	}
	c.queue = append(c.queue, r)
	c.arrivals++
	return nil
}

func (c *Committer[R]) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// queued returns the number of requests waiting.
func (c *Committer[R]) queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

// Close stops taking requests, commits those queued, and returns once the
// committer's goroutine has ended. It may be called more than once.
func (c *Committer[R]) Close() {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.closing)
		c.space.Broadcast()
	}
	c.mu.Unlock()
	<-c.done
}

func (c *Committer[R]) loop() {
	defer close(c.done)
	for {
		select {
		case <-c.kick:
		case <-c.closing:
		}
		for {
			c.token.Lock()
			n := c.commitQueued()
			c.token.Unlock()
			if n == 0 {
				break
			}
			if c.queued() > 0 {
				// The next group is waiting, and its sync would hold this goroutine's P
				// in the kernel with the writers just told still queued on it: they
				// would wait for the sync, or for the runtime to take the P back (20 µs
				// to 10 ms). Let them run first (issue 15: 57% of the runnable wait of
				// an authorization was of writers woken here).
				runtime.Gosched()
			}
		}
		c.mu.Lock()
		closed := c.closed && len(c.queue) == 0
		c.mu.Unlock()
		if closed {
			// Nothing can be queued any more; a Lead caller may still be committing
			// what it took: wait for it.
			c.token.Lock()
			c.token.Unlock()
			return
		}
	}
}

// commitQueued commits one group of the queued requests and returns its size (0:
// none was queued). The caller holds the token.
func (c *Committer[R]) commitQueued() int {
	c.batch = c.batch[:0]
	c.gather()
	if len(c.batch) == 0 {
		return 0
	}
	c.commit(c.batch)
	n := len(c.batch)
	clear(c.batch) // let the requests go
	return n
}

// take moves queued requests into the batch, up to MaxBatch; it returns how many
// requests have ever been queued.
func (c *Committer[R]) take() (arrivals uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := min(len(c.queue), c.opts.MaxBatch-len(c.batch))
	if n == 0 {
		return c.arrivals
	}
	c.batch = append(c.batch, c.queue[:n]...)
	rest := copy(c.queue, c.queue[n:])
	clear(c.queue[rest:])
	c.queue = c.queue[:rest]
	c.space.Broadcast()
	return c.arrivals
}

// gather fills the batch: all that is queued, and, when the arrival rate is high
// enough for a Window to gather WindowFrom requests and the CPUs are busy (Busy),
// what arrives less than a gap apart until the Window is over.
func (c *Committer[R]) gather() {
	arrivals := c.take()
	if len(c.batch) == 0 {
		return
	}
	rate := c.observe(arrivals)
	if !c.engaged(rate) || !c.cpuAllows() {
		return
	}
	gap := max(c.opts.Gap, min(c.opts.Window, time.Duration(WindowGap/rate*float64(time.Second))))
	deadline := time.Now().Add(c.opts.Window)
	for len(c.batch) < c.opts.MaxBatch {
		wait := time.Until(deadline)
		if wait <= 0 {
			return
		}
		c.timer.Reset(min(wait, gap))
		select {
		case <-c.kick:
			// Requests came (or the kick is stale: its requests went with this
			// group already); the gap starts again.
			c.timer.Stop()
			c.take()
		case <-c.timer.C:
			c.take() // any that came as the gap ended
			return
		}
	}
}

// observe updates the arrival rate with the requests submitted since it was last
// measured, at least ratePeriod ago, and returns it: a moving average weighted by
// the time each measure covers, so that after an idle stretch the rate is that of
// the stretch. The caller holds the token.
func (c *Committer[R]) observe(arrivals uint64) float64 {
	rate := math.Float64frombits(c.rateBits.Load())
	now := c.now()
	d := now.Sub(time.Unix(0, c.rateAt.Load()))
	if d < ratePeriod {
		return rate
	}
	r := float64(arrivals-c.rateFrom) / d.Seconds()
	rate += (r - rate) * (1 - math.Exp(-float64(d)/float64(rateTau)))
	c.rateFrom = arrivals
	c.rateBits.Store(math.Float64bits(rate))
	c.rateAt.Store(now.UnixNano())
	return rate
}

// cpuAllows reports whether the CPUs are busy enough for the Window: from BusyFrom
// on, until the share falls BusyBand below it (or below half of it, for a BusyFrom
// under twice BusyBand, which the band alone would never let go); always when the
// share is not known or not asked for. The caller holds the token.
func (c *Committer[R]) cpuAllows() bool {
	if c.opts.Busy == nil || c.opts.BusyFrom <= 0 {
		return true
	}
	share, known := c.opts.Busy()
	if known {
		if share >= c.opts.BusyFrom {
			c.cpuBusy = true
		} else if share < max(c.opts.BusyFrom-BusyBand, c.opts.BusyFrom/2) {
			c.cpuBusy = false
		}
	}
	lets := !known || c.cpuBusy
	c.cpuLets.Store(lets)
	return lets
}

// Rate returns the requests submitted a second (a moving average with a time
// constant of 50 ms), and whether groups gather for the Window at that rate and
// with the CPUs as busy as a group last found them (GroupOptions.Busy). It is
// measured as groups start; while none does (no request came), it decays as a
// measure over that stretch would, so that an idle committer reports an idle rate.
func (c *Committer[R]) Rate() (perSecond float64, windowEngaged bool) {
	r := math.Float64frombits(c.rateBits.Load())
	if d := c.now().Sub(time.Unix(0, c.rateAt.Load())); d > ratePeriod {
		r *= math.Exp(-float64(d) / float64(rateTau))
	}
	return r, c.engaged(r) && c.cpuLets.Load()
}

// engaged reports whether groups gather for the Window at rate requests a second.
func (c *Committer[R]) engaged(rate float64) bool {
	return c.opts.Window > 0 && rate*c.opts.Window.Seconds() >= WindowFrom
}
