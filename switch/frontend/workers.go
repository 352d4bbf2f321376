package frontend

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// workerIdle is how long a request goroutine waits for the next request before it
// ends.
const workerIdle = 10 * time.Second

// workers runs the requests' handlers on goroutines kept for the next request.
//
// A new goroutine starts on a small stack, and an authorization goes deeper (the
// decoder, then the rules' evaluation over the velocity counters): with a goroutine
// per request every request grew, that is copied, its stack once to three times,
// about 7% of the switch's CPU in the closed loop (issue 15). A goroutine that
// served one request keeps its grown stack for the next. The pool has no bound of its
// own: the connections' and the switch's in-flight limits bound the requests, so
// they bound the goroutines too; an idle one ends after workerIdle.
//
// Every goroutine is started by run and joined by stop.
type workers struct {
	jobs chan job // unbuffered: a send succeeds only when a goroutine is idle
	quit chan struct{}
	wg   sync.WaitGroup
	once sync.Once
	idle atomic.Int32 // goroutines waiting for a request
}

// job is one request for a handler.
type job struct {
	c        *serverConn
	ctx      context.Context
	body     []byte
	read     time.Time
	inflight *sync.WaitGroup
}

func newWorkers() *workers {
	return &workers{jobs: make(chan job), quit: make(chan struct{})}
}

// run hands j to an idle goroutine, or starts one. It must not be called after stop.
func (w *workers) run(j job) {
	select {
	case w.jobs <- j:
		return
	default:
	}
	w.wg.Add(1)
	go w.loop(j)
}

// loop handles j, then the requests handed to it, until it has been idle for
// workerIdle or stop is called.
func (w *workers) loop(j job) {
	defer w.wg.Done()
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		j.c.handle(j.ctx, j.body, j.read, j.inflight)
		j = job{} // let the request go while idle
		idle.Reset(workerIdle)
		w.idle.Add(1)
		select {
		case j = <-w.jobs:
			w.idle.Add(-1)
		case <-idle.C:
			w.idle.Add(-1)
			return
		case <-w.quit:
			w.idle.Add(-1)
			return
		}
	}
}

// stop ends the idle goroutines and waits for every goroutine to end; the requests
// must all have been handled (the listener's connections are closed).
func (w *workers) stop() {
	w.once.Do(func() { close(w.quit) })
	w.wg.Wait()
}
