package frontend

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// workerIdle is the period over which the pool of request goroutines shrinks to what
// the period used: goroutines idle at two successive reaps end.
const workerIdle = 10 * time.Second

// workers runs the requests' handlers on goroutines kept for the next request.
//
// A new goroutine starts on a small stack, and an authorization goes deeper (the
// decoder, then the rules' evaluation over the velocity counters): with a goroutine
// per request every request grew, that is copied, its stack once to three times,
// about 7% of the switch's CPU in the closed loop (issue 15). A goroutine that
// served one request keeps its grown stack for the next. The pool has no bound of its
// own: the connections' and the switch's in-flight limits bound the requests, so
// they bound the goroutines too.
//
// An idle goroutine waits with a plain receive on jobs, not a select with a timer
// and a quit channel (which locks all three channels and arms the timer at every
// wait, ~1% of the switch's CPU). A job without a connection tells the goroutine that
// receives it to end: the reaper sends them to shrink the pool, stop to end it.
//
// Every goroutine is started by run or newWorkers and joined by stop.
type workers struct {
	jobs chan job     // unbuffered: a send succeeds only when a goroutine is idle
	idle atomic.Int32 // goroutines waiting for a request

	mu     sync.Mutex
	live   int  // goroutines not yet sent an end
	closed bool // stop has begun: the reaper sends no more ends

	quit   chan struct{} // closed by stop: the reaper ends
	reaped chan struct{} // closed when the reaper has ended
	wg     sync.WaitGroup
	once   sync.Once
}

// job is one request for a handler; c nil: the goroutine ends.
type job struct {
	c        *serverConn
	ctx      context.Context
	body     []byte
	read     time.Time
	inflight *sync.WaitGroup
}

// newWorkers starts a pool and its reaper, which shrinks it at every tick of reap
// (nil: every workerIdle).
func newWorkers(reap <-chan time.Time) *workers {
	w := &workers{jobs: make(chan job), quit: make(chan struct{}), reaped: make(chan struct{})}
	var t *time.Ticker
	if reap == nil {
		t = time.NewTicker(workerIdle)
		reap = t.C
	}
	go func() {
		defer close(w.reaped)
		if t != nil {
			defer t.Stop()
		}
		w.reaper(reap)
	}()
	return w
}

// run hands j to an idle goroutine, or starts one. It must not be called after stop.
func (w *workers) run(j job) {
	select {
	case w.jobs <- j:
		return
	default:
	}
	w.mu.Lock()
	w.live++
	w.mu.Unlock()
	w.wg.Add(1)
	go w.loop(j)
}

// loop handles j, then the requests handed to it, until it receives an end.
func (w *workers) loop(j job) {
	defer w.wg.Done()
	for {
		j.c.handle(j.ctx, j.body, j.read, j.inflight)
		j = job{} // let the request go while idle
		w.idle.Add(1)
		j = <-w.jobs
		w.idle.Add(-1)
		if j.c == nil {
			return
		}
	}
}

// reaper ends, at every tick, as many goroutines as were idle at both this tick and
// the one before (those the period did not need), until stop.
func (w *workers) reaper(tick <-chan time.Time) {
	prev := int32(0)
	for {
		select {
		case <-w.quit:
			return
		case <-tick:
		}
		now := w.idle.Load()
		for range min(prev, now) {
			if !w.sendEnd(false) {
				break
			}
		}
		prev = w.idle.Load()
	}
}

// sendEnd sends one end to an idle goroutine; with wait false only if one is idle
// now. It reports whether it sent one.
func (w *workers) sendEnd(wait bool) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.live == 0 || w.closed && !wait {
		return false
	}
	if wait {
		w.jobs <- job{}
	} else {
		select {
		case w.jobs <- job{}:
		default:
			return false
		}
	}
	w.live--
	return true
}

// stop ends every goroutine and waits for them; the requests must all have been
// handled (the listener's connections are closed) and run is not called again.
func (w *workers) stop() {
	w.once.Do(func() {
		close(w.quit)
		<-w.reaped
		w.mu.Lock()
		w.closed = true
		w.mu.Unlock()
		for w.sendEnd(true) {
		}
	})
	w.wg.Wait()
}
