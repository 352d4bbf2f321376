package wal

import (
	"runtime"
	"sync"
	"time"
)

// GroupOptions configure group commit.
type GroupOptions struct {
	// MaxBatch is the most requests in one group (default 4096).
	MaxBatch int
	// Window is the longest a group may gather before it is committed, and Gap how
	// long the queue may stay empty before it is committed anyway. With Window 0 a
	// group is committed as soon as the queue is empty (while one commit runs, the
	// next group gathers by itself). The Window applies only once the syncs are the
	// bottleneck: when the requests already queued as a group starts (those that
	// came during the previous commit) average WindowFrom or more. Then requests
	// arrive closer than Gap apart and a group gathers for the whole Window (fewer,
	// larger syncs); below that nothing waits for a group. Gap defaults to 50 µs.
	Window time.Duration
	Gap    time.Duration
	// Queue is how many requests may wait for the loop before Submit blocks (default
	// 8192).
	Queue int
}

// WindowFrom is the average number of requests already queued when a group starts
// (those that arrived while the previous group was being committed) from which
// groups gather for a Window. It counts only the requests that queued by themselves,
// never those the Window gathered: counting those (as the average group size did
// until issue 15) kept the Window engaged by its own effect, and made an ordinary
// load (5,000 authorizations/s: 3-5 writes per sync) wait up to a Window at each of
// its two durable writes. A load that saturates the syncs (the closed loop: 10 and
// more per sync) still gets the Window's fewer, larger syncs.
const WindowFrom = 8

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

	mu     sync.Mutex // guards queue and closed
	space  *sync.Cond // signalled when the queue shrinks
	queue  []R
	closed bool

	// token is held by whoever commits; the fields below are its holder's.
	token sync.Mutex
	batch []R
	timer *time.Timer
	// avg is the moving average of the requests already queued as a group starts:
	// how far the syncs fall behind.
	avg float64
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
		batch: make([]R, 0, opts.MaxBatch), timer: time.NewTimer(time.Hour)}
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
	queued := c.gather()
	if len(c.batch) == 0 {
		return 0
	}
	c.avg += (float64(queued) - c.avg) / 8
	c.commit(c.batch)
	n := len(c.batch)
	clear(c.batch) // let the requests go
	return n
}

// take moves queued requests into the batch, up to MaxBatch; it returns how many.
func (c *Committer[R]) take() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := min(len(c.queue), c.opts.MaxBatch-len(c.batch))
	if n == 0 {
		return 0
	}
	c.batch = append(c.batch, c.queue[:n]...)
	rest := copy(c.queue, c.queue[n:])
	clear(c.queue[rest:])
	c.queue = c.queue[:rest]
	c.space.Broadcast()
	return n
}

// gather fills the batch: all that is queued, and with a Window, what arrives less
// than Gap apart until the Window is over. It returns how many the batch held before
// the Window gathered any (the requests that queued by themselves).
func (c *Committer[R]) gather() (queued int) {
	c.take()
	queued = len(c.batch)
	if queued == 0 || c.opts.Window <= 0 || c.avg < WindowFrom {
		return queued
	}
	deadline := time.Now().Add(c.opts.Window)
	for len(c.batch) < c.opts.MaxBatch {
		wait := time.Until(deadline)
		if wait <= 0 {
			return queued
		}
		c.timer.Reset(min(wait, c.opts.Gap))
		select {
		case <-c.kick:
			// Requests came (or the kick is stale: its requests went with this
			// group already); the Gap starts again.
			c.timer.Stop()
			c.take()
		case <-c.timer.C:
			c.take() // any that came as the Gap ended
			return queued
		}
	}
	return queued
}
