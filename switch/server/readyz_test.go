package server

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestReadyCheck: a check set with SetReadyCheck turns /readyz to 503 with its
// reason while it fails, and back to 200 once it passes or is removed.
func TestReadyCheck(t *testing.T) {
	s := start(t, demoConfig(t, t.TempDir()), nil)
	get := readyzGetter(t, s)
	waitReadyz(t, get)
	var why atomic.Pointer[error] // the handler reads it on another goroutine
	set := func(err error) { why.Store(&err) }
	set(errors.New("cluster: JetStream not ready on n1: no meta leader answers"))
	s.SetReadyCheck(func() error { return *why.Load() })
	if st, body := get(); st != http.StatusServiceUnavailable || !strings.Contains(body, "not ready: cluster: JetStream not ready on n1") {
		t.Fatalf("failing check: %d %q", st, body)
	}
	set(nil)
	if st, body := get(); st != http.StatusOK {
		t.Fatalf("passing check: %d %q", st, body)
	}
	set(errors.New("down"))
	s.SetReadyCheck(nil)
	if st, body := get(); st != http.StatusOK {
		t.Fatalf("check removed: %d %q", st, body)
	}
}

// TestReadyzNamesEveryCause: with several causes at once (a full disk, a failing
// cluster check), /readyz names each of them, not only the first; a draining switch
// says draining, not starting.
func TestReadyzNamesEveryCause(t *testing.T) {
	s := start(t, demoConfig(t, t.TempDir()), nil)
	get := readyzGetter(t, s)
	waitReadyz(t, get)
	if s.disk == nil {
		t.Fatal("demo configuration without a disk guard")
	}
	full := errors.New("data directory disk full: 100 MiB free, journal.min_free_mb 512")
	s.disk.full.Store(&full)
	s.SetReadyCheck(func() error { return errors.New("cluster node 1: JetStream not ready") })
	st, body := get()
	if st != http.StatusServiceUnavailable || !strings.Contains(body, "data directory disk full") || !strings.Contains(body, "cluster node 1: JetStream not ready") {
		t.Fatalf("two causes: %d %q, want both named", st, body)
	}
	s.disk.full.Store(nil)
	s.SetReadyCheck(nil)
	s.draining.Store(true)
	s.ready.Store(false)
	if st, body := get(); st != http.StatusServiceUnavailable || !strings.Contains(body, "not ready: draining") {
		t.Fatalf("draining: %d %q", st, body)
	}
}

// readyzGetter returns a function that asks s's /readyz for its status and body.
func readyzGetter(t *testing.T, s *Server) func() (int, string) {
	client := http.Client{Timeout: 5 * time.Second}
	return func() (int, string) {
		t.Helper()
		resp, err := client.Get("http://" + s.AdminAddr() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
}

// waitReadyz polls get until /readyz answers 200 (a started switch turns ready
// once its listeners are open), for 10 s at most.
func waitReadyz(t *testing.T, get func() (int, string)) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for st, _ := get(); st != http.StatusOK; st, _ = get() {
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never 200: %d", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
