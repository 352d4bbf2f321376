package server

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"
)

// loops owns the goroutines the server starts itself: the terminal listeners' accept
// loops, the admin server, the offline monitor and the rules watcher. Each runs under
// one errgroup and is joined by stop, which the shutdown calls before it closes a
// store, so that nothing the server started outlives it or writes to a closed store.
// (The components' own workers, such as the journal's indexer, the store-and-forward
// workers and the pipeline's housekeeping, are joined by their Close or Stop, which the
// shutdown calls in order too.)
//
// An errgroup rather than an oklog/run Group: run interrupts every actor as soon as one
// returns, but here some loops return early by design (the rules watcher when there is
// no rules directory) and the stop is staged (listeners drained first, the monitor
// last), which the shutdown spells out step by step.
type loops struct {
	g errgroup.Group
	// ctx is given to every loop; stop cancels it (the monitor and the watcher return).
	ctx    context.Context
	cancel context.CancelFunc
	// running counts the loops that have not returned, for the shutdown's check.
	running atomic.Int32
}

func newLoops() *loops {
	l := &loops{}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	return l
}

// Go runs f in a goroutine of the group. f must return once ctx is done or, for the
// accept loops, once its listener is closed.
func (l *loops) Go(name string, f func(ctx context.Context) error) {
	l.running.Add(1)
	l.g.Go(func() error {
		defer l.running.Add(-1)
		if err := f(l.ctx); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	})
}

// stop cancels the loops' context and waits until every loop has returned; it returns
// the first error a loop returned.
func (l *loops) stop() error {
	l.cancel()
	return l.g.Wait()
}

// inFlight counts the admin requests being served, so that the shutdown waits for the
// last handler to return (http.Server.Shutdown gives up at its deadline and leaves the
// handlers running) before it closes the stores they write to. Each request holds a
// read lock; close takes the write lock, which waits for them and refuses later ones.
type inFlight struct {
	mu sync.RWMutex
	h  http.Handler
}

func (f *inFlight) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !f.mu.TryRLock() {
		http.Error(w, "switch stopping", http.StatusServiceUnavailable)
		return
	}
	defer f.mu.RUnlock()
	f.h.ServeHTTP(w, r)
}

// close waits for the requests in progress and refuses the next ones.
func (f *inFlight) close() { f.mu.Lock() }

// Run starts the switch (Start, if not done yet), serves until ctx is done, then drains
// (Drain) and returns once every goroutine the server started has returned and the
// stores are closed.
func (s *Server) Run(ctx context.Context) error {
	s.Start()
	<-ctx.Done()
	return s.Drain()
}
