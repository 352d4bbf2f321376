package frontend

import (
	"bufio"
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// goroutineProc answers at once and reports the ID of the goroutine that processed
// each request.
type goroutineProc struct{ ids chan string }

func (p goroutineProc) Process(ctx context.Context, c *Conn, body []byte) (Response, error) {
	buf := make([]byte, 64)
	first, _, _ := strings.Cut(string(buf[:runtime.Stack(buf, false)]), " [")
	p.ids <- first // "goroutine N"
	return Response{Body: append([]byte(nil), body...)}, nil
}

// TestRequestsReuseGoroutines: a request that comes while a request goroutine is
// idle runs on it, with the stack the previous request grew (a goroutine per
// request copied its growing stack once to three times an authorization, issue 15);
// Close ends the idle goroutines and waits for them.
func TestRequestsReuseGoroutines(t *testing.T) {
	p := goroutineProc{ids: make(chan string, 8)}
	l := listen(t, Config{}, p, nil, nil)
	nc, r := dial(t, l)
	var ids []string
	for i, req := range []string{"0200-1", "0200-2", "0200-3"} {
		if i > 0 {
			waitFor(t, "the request goroutine to be idle", func() bool { return l.workers.idle.Load() == 1 })
		}
		writeFrame(t, nc, req)
		_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		if body, err := ReadFrame(r, nil, 1024); err != nil || string(body) != req {
			t.Fatalf("answer: %q, %v", body, err)
		}
		ids = append(ids, <-p.ids)
	}
	if ids[1] != ids[0] || ids[2] != ids[0] {
		t.Fatalf("requests one after the other ran on %v, not on one goroutine", ids)
	}
	l.Close()
	buf := make([]byte, 1<<20)
	if stacks := string(buf[:runtime.Stack(buf, true)]); strings.Contains(stacks, "(*workers).loop") {
		t.Fatalf("a request goroutine outlived Close:\n%s", stacks)
	}
}

// workerGoroutines counts the request goroutines alive.
func workerGoroutines() int {
	buf := make([]byte, 1<<20)
	return strings.Count(string(buf[:runtime.Stack(buf, true)]), "(*workers).loop")
}

// TestIdleGoroutinesAreReaped: after a burst the pool keeps its goroutines for one
// reap period, then ends those idle at two successive reaps; a request after that
// starts a goroutine again; Close ends the rest. The idle goroutines wait without a
// timer of their own, so the reaper is what bounds them.
func TestIdleGoroutinesAreReaped(t *testing.T) {
	tick := make(chan time.Time)
	p := newGateProc()
	l := listen(t, Config{reapTick: tick}, p, nil, nil)
	// Three requests in progress at once, on three connections: three goroutines.
	var conns []*bufio.Reader
	for i := range 3 {
		nc, r := dial(t, l)
		writeFrame(t, nc, fmt.Sprintf("0200-%d", i))
		<-p.started
		conns = append(conns, r)
	}
	close(p.release)
	for i, r := range conns {
		if body, err := ReadFrame(r, nil, 1024); err != nil || string(body) != fmt.Sprintf("0200-%d", i) {
			t.Fatalf("answer %d: %q, %v", i, body, err)
		}
	}
	waitFor(t, "three idle request goroutines", func() bool { return l.workers.idle.Load() == 3 })
	tick <- time.Now() // the first reap: nothing was idle at the one before
	tick <- time.Now() // the reaper has finished the first reap when it takes the second tick
	waitFor(t, "the idle goroutines to end", func() bool { return l.workers.idle.Load() == 0 && workerGoroutines() == 0 })

	nc, r := dial(t, l)
	writeFrame(t, nc, "0200-after")
	if body, err := ReadFrame(r, nil, 1024); err != nil || string(body) != "0200-after" {
		t.Fatalf("answer after the reap: %q, %v", body, err)
	}
	if n := workerGoroutines(); n != 1 {
		t.Fatalf("%d request goroutines after one request, want 1", n)
	}
	l.Close()
	if n := workerGoroutines(); n != 0 {
		t.Fatalf("%d request goroutines outlived Close", n)
	}
}
