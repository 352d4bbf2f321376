package frontend

import (
	"context"
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
