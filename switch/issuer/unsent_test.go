package issuer

import (
	"testing"
	"time"
)

// TestTimedOutRequestNotWrittenLater: requests queued behind a write that blocks (an
// issuer that stopped reading) and timing out there are not written when the write
// ends: their reversals go on another connection, and would reach the issuer before
// them. A request whose bytes a write had taken when it timed out goes out as it is,
// and the requests queued with the dropped ones that did not time out are written,
// intact and in order. Until 5 December 2026 every queued byte was written.
func TestTimedOutRequestNotWrittenLater(t *testing.T) {
	w := &stackWriter{t: t, hold: make(chan struct{}), holding: make(chan struct{}, 1)}
	cw := newCoalescingWriter()
	cw.started, cw.w = true, w
	go cw.flushLoop()
	defer cw.stop()
	first := make(chan error, 1)
	go func() { _, err := cw.register("000001/100000000001", []byte("first"), false); first <- err }()
	<-w.holding // the first request's write blocks
	for _, id := range []string{"000002/100000000002", "000003/100000000003", "000004/100000000004", "000005/100000000005"} {
		if _, err := cw.register(id, []byte(id[:6]), false); err != nil {
			t.Fatal(err)
		}
	}
	// Timeouts: of the first, already handed to the write, and of two queued.
	cw.abandon("000001/100000000001")
	cw.abandon("000004/100000000004")
	cw.abandon("000002/100000000002")
	w.mu.Lock()
	release := w.hold
	w.hold = nil
	w.mu.Unlock()
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	want := "\x00\x05first\x00\x06000003\x00\x06000005"
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		w.mu.Lock()
		data := string(w.data)
		w.mu.Unlock()
		if data == want {
			break
		}
		if len(data) >= len(want) || time.Now().After(deadline) {
			t.Fatalf("written %q, want %q: the queued requests that timed out (000002, 000004) dropped, the rest intact", data, want)
		}
	}
	// A request queued after the drop goes out as any.
	if _, err := cw.register("000006/100000000006", []byte("000006"), false); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		w.mu.Lock()
		data := string(w.data)
		w.mu.Unlock()
		if data == want+"\x00\x06000006" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("written %q after a later request", data)
		}
	}
}
