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

// Committer runs group commit: one goroutine takes the requests submitted, gathers
// those waiting (and, under load, those that follow within the Window) into a group,
// and hands the group to its commit function, which writes it to the log with one
// Append (one write, one fdatasync) and tells the requests' writers. The goroutine is
// started by StartCommitter and joined by Close.
type Committer[R any] struct {
	opts   GroupOptions
	commit func(group []R)
	reqs   chan R
	done   chan struct{}

	mu     sync.RWMutex // guards closed against Submit's send on reqs
	closed bool

	// avg is the moving average of the requests already queued as a group starts
	// (loop only): how far the syncs fall behind.
	avg float64
}

// StartCommitter starts a committer that hands each group to commit, in the order the
// requests were submitted. commit runs on the committer's goroutine only, one group
// at a time; it must not keep the slice.
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
	c := &Committer[R]{opts: opts, commit: commit, reqs: make(chan R, opts.Queue), done: make(chan struct{})}
	go c.loop()
	return c
}

// Submit queues r for the next group. It fails with ErrClosed after Close.
func (c *Committer[R]) Submit(r R) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return ErrClosed
	}
	c.reqs <- r
	return nil
}

// Close stops taking requests, commits those queued, and returns once the
// committer's goroutine has ended. It may be called more than once.
func (c *Committer[R]) Close() {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.reqs)
	}
	c.mu.Unlock()
	<-c.done
}

func (c *Committer[R]) loop() {
	defer close(c.done)
	batch := make([]R, 0, c.opts.MaxBatch)
	gapTimer := time.NewTimer(time.Hour)
	gapTimer.Stop()
	for {
		req, ok := <-c.reqs
		if !ok {
			return
		}
		batch = append(batch[:0], req)
		queued := c.gather(&batch, gapTimer)
		c.avg += (float64(queued) - c.avg) / 8
		c.commit(batch)
		clear(batch) // let the requests go
		if len(c.reqs) > 0 {
			// The next group is waiting, and its sync would hold this goroutine's P
			// in the kernel with the writers just told still queued on it: they
			// would wait for the sync, or for the runtime to take the P back (20 µs
			// to 10 ms). Let them run first (issue 15: 57% of the runnable wait of
			// an authorization was of writers woken here).
			runtime.Gosched()
		}
	}
}

// gather adds waiting requests to the batch: all that are queued, and with a Window,
// those that arrive less than Gap apart until the Window is over. It returns how many
// the batch held before the Window gathered any (the requests that queued by
// themselves).
func (c *Committer[R]) gather(batch *[]R, gapTimer *time.Timer) (queued int) {
	for len(*batch) < c.opts.MaxBatch {
		r, ok := c.tryRecv()
		if !ok {
			break
		}
		*batch = append(*batch, r)
	}
	queued = len(*batch)
	var deadline time.Time
	if c.opts.Window > 0 && c.avg >= WindowFrom {
		deadline = time.Now().Add(c.opts.Window)
	}
	for len(*batch) < c.opts.MaxBatch {
		select {
		case r, ok := <-c.reqs:
			if !ok {
				return queued
			}
			*batch = append(*batch, r)
			continue
		default:
		}
		if deadline.IsZero() {
			return queued
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return queued
		}
		gapTimer.Reset(min(wait, c.opts.Gap))
		select {
		case r, ok := <-c.reqs:
			gapTimer.Stop()
			if !ok {
				return queued
			}
			*batch = append(*batch, r)
		case <-gapTimer.C:
			return queued
		}
	}
	return queued
}

// tryRecv takes a queued request without waiting; ok is false when none is queued or
// the queue is closed.
func (c *Committer[R]) tryRecv() (r R, ok bool) {
	select {
	case r, ok = <-c.reqs:
		return r, ok
	default:
		return r, false
	}
}
