package wal

import (
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
	// next group gathers by itself). The Window applies only once groups average
	// WindowFrom requests or more: under load, requests arrive closer than Gap apart
	// and a group gathers for the whole Window (fewer, larger syncs); under a light
	// load nothing waits. Gap defaults to 50 µs.
	Window time.Duration
	Gap    time.Duration
	// Queue is how many requests may wait for the loop before Submit blocks (default
	// 8192).
	Queue int
}

// WindowFrom is the average group size from which groups gather for a Window: a load
// light enough for small groups is not made to wait.
const WindowFrom = 4

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

	// avg is the moving average of the groups' sizes (loop only).
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
		c.gather(&batch, gapTimer)
		c.avg += (float64(len(batch)) - c.avg) / 8
		c.commit(batch)
		clear(batch) // let the requests go
	}
}

// gather adds waiting requests to the batch: all that are queued, and with a Window,
// those that arrive less than Gap apart until the Window is over.
func (c *Committer[R]) gather(batch *[]R, gapTimer *time.Timer) {
	var deadline time.Time
	if c.opts.Window > 0 && c.avg >= WindowFrom {
		deadline = time.Now().Add(c.opts.Window)
	}
	for len(*batch) < c.opts.MaxBatch {
		select {
		case r, ok := <-c.reqs:
			if !ok {
				return
			}
			*batch = append(*batch, r)
			continue
		default:
		}
		if deadline.IsZero() {
			return
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return
		}
		gapTimer.Reset(min(wait, c.opts.Gap))
		select {
		case r, ok := <-c.reqs:
			gapTimer.Stop()
			if !ok {
				return
			}
			*batch = append(*batch, r)
		case <-gapTimer.C:
			return
		}
	}
}
