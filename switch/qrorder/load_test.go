package qrorder

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/statelog"
)

// netLog is a shared log for the load tests: commits are ordered like the cluster's
// Log (a compare-and-set on the last revision), each Append costs a round trip (the
// commit ordered at its midpoint), and each node applies the commits in its own
// goroutine, every poll period (a follower of the stream, not a synchronous
// delivery as statelog.Memory's).
type netLog struct {
	rtt       time.Duration
	mu        sync.Mutex
	commits   []statelog.Commit
	appends   atomic.Int64
	conflicts atomic.Int64
}

func (l *netLog) Append(ctx context.Context, c statelog.Commit, after uint64) (uint64, error) {
	l.appends.Add(1)
	time.Sleep(l.rtt / 2)
	l.mu.Lock()
	last := uint64(len(l.commits))
	if after != last {
		l.mu.Unlock()
		l.conflicts.Add(1)
		time.Sleep(l.rtt / 2)
		return 0, fmt.Errorf("append after revision %d, the store is at %d: %w", after, last, statelog.ErrConflict)
	}
	l.commits = append(l.commits, c)
	l.mu.Unlock()
	time.Sleep(l.rtt / 2)
	return last + 1, nil
}

func (l *netLog) head() uint64 { l.mu.Lock(); defer l.mu.Unlock(); return uint64(len(l.commits)) }

// follow applies the log's commits to r every poll until stop is closed.
func (l *netLog) follow(r statelog.Replica, poll time.Duration, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-time.After(poll):
		}
		l.mu.Lock()
		commits := l.commits[:len(l.commits):len(l.commits)]
		l.mu.Unlock()
		for rev := r.Revision() + 1; rev <= uint64(len(commits)); rev++ {
			_ = r.ApplyRemote(rev, commits[rev-1])
		}
	}
}

// catchUp waits until r has applied every commit the log held when it was called
// (the cluster's StoreLog.CatchUp).
func (l *netLog) catchUp(ctx context.Context, r statelog.Replica) error {
	head := l.head()
	for r.Revision() < head {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Microsecond):
		}
	}
	return nil
}

// TestBookSharedLoad: three nodes (a 1 ms round trip to the log, the third node a
// slow follower that applies the others' commits 5 ms late), eight terminals on
// each creating an order every 80 ms (100 orders a second a node, under the log's
// ceiling) for 1.5 s: every creation succeeds. Contention slows the requests down
// (their latencies are logged) rather than failing them: a node whose own commits
// leave it current used to win round after round while the others caught up, and a
// request failed after ten conflicts ("changed on other nodes meanwhile").
func TestBookSharedLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load")
	}
	const (
		nodes, terminals = 3, 8
		pace, run        = 80 * time.Millisecond, 1500 * time.Millisecond
	)
	c := &clock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	l := &netLog{rtt: time.Millisecond}
	stop := make(chan struct{})
	var fwg sync.WaitGroup
	defer func() { close(stop); fwg.Wait() }()
	var books []*Book
	for i := range nodes {
		b, err := NewBook(openDB(t, t.TempDir()), Options{Now: c.now, Log: l, CatchUp: l.catchUp})
		if err != nil {
			t.Fatal(err)
		}
		poll := 200 * time.Microsecond
		if i == nodes-1 {
			poll = 5 * time.Millisecond
		}
		fwg.Add(1)
		go func() { defer fwg.Done(); l.follow(b, poll, stop) }()
		books = append(books, b)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		lat   []time.Duration
		ids   []string
		fails []error
	)
	start := time.Now()
	end := start.Add(run)
	for n, b := range books {
		for g := range terminals {
			wg.Add(1)
			go func() {
				defer wg.Done()
				next := start.Add(pace * time.Duration(g) / terminals)
				for j := 0; next.Before(end); j++ {
					time.Sleep(time.Until(next))
					next = next.Add(pace)
					id := fmt.Sprintf("%d%02d%09d", n+1, g, j)
					t0 := time.Now()
					err := b.Create(t.Context(), Order{ID: id, TID: "T0000001", Amount: 100, Created: c.now(), Expires: c.now().Add(time.Minute)})
					d := time.Since(t0)
					mu.Lock()
					lat = append(lat, d)
					if err != nil {
						fails = append(fails, err)
					} else {
						ids = append(ids, id)
					}
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	wall := time.Since(start)
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))].Round(time.Millisecond) }
	t.Logf("%d nodes × %d terminals: %d of %d creations failed in %v (%.0f commits/s); appends %d, conflicts %d; p50 %v, p99 %v, max %v",
		nodes, terminals, len(fails), len(lat), wall.Round(time.Millisecond), float64(l.head())/wall.Seconds(), l.appends.Load(), l.conflicts.Load(), q(.5), q(.99), q(1))
	if len(fails) > 0 {
		t.Errorf("%d of %d creations failed, the first: %v", len(fails), len(lat), fails[0])
	}
	if got := l.head(); got != uint64(len(ids)) {
		t.Errorf("the log holds %d commits, want %d", got, len(ids))
	}
	// Every node has every order once it has caught up.
	for i, b := range books {
		if err := l.catchUp(t.Context(), b); err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			if _, err := b.Get(id); err != nil {
				t.Fatalf("node %d: %v", i+1, err)
			}
		}
	}
}
