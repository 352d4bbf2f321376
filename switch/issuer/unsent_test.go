package issuer

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	connection "github.com/moov-io/iso8583-connection"

	"github.com/switchyard/switchyard/switch/issuersim"
	"github.com/switchyard/switchyard/switch/message"
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
	go func() { _, err := cw.register("000001/100000000001", [4]byte{}, []byte("first"), false); first <- err }()
	<-w.holding // the first request's write blocks
	for _, id := range []string{"000002/100000000002", "000003/100000000003", "000004/100000000004", "000005/100000000005"} {
		if _, err := cw.register(id, [4]byte{}, []byte(id[:6]), false); err != nil {
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
	if _, err := cw.register("000006/100000000006", [4]byte{}, []byte("000006"), false); err != nil {
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

// onlineConns waits until l has n signed-on connections and returns them.
func onlineConns(t *testing.T, l *Link, n int) []*connection.Connection {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var on []*connection.Connection
		for _, c := range l.pool.Connections() {
			if c.Status() == connection.StatusOnline {
				on = append(on, c)
			}
		}
		if len(on) == n {
			return on
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections signed on, want %d", len(on), n)
		}
	}
}

// breakWriter makes c's writer fail as a failed write does, before the connection's
// close is handled: the pool still hands c out.
func breakWriter(t *testing.T, l *Link, c *connection.Connection) {
	t.Helper()
	v, ok := l.writers.Load(c)
	if !ok {
		t.Fatal("connection without a writer")
	}
	cw := v.(*coalescingWriter)
	cw.mu.Lock()
	cw.err = errors.New("write to issuer: broken pipe")
	cw.mu.Unlock()
}

// TestRequestOnFailedConnectionNotInDoubt: a request handed a connection whose
// failure is already known is not written; it goes on another connection, and with
// none left it fails as unavailable (nothing sent: stand-in or 91, no reversal), not
// as a lost connection (in doubt: 91 and a reversal of what the issuer never got).
func TestRequestOnFailedConnectionNotInDoubt(t *testing.T) {
	sim, err := issuersim.Start(issuersim.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	l, err := Dial(Config{ID: "sim", Addrs: []string{sim.Addr()}, Connections: 2, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	conns := onlineConns(t, l, 2)
	breakWriter(t, l, conns[0])
	for i := range 4 { // the pool hands out both in turn
		rrn := fmt.Sprintf("%012d", 500000+i)
		stan, body := packedPurchase(t, l, rrn)
		a, err := l.SendPacked(context.Background(), "0200", stan, rrn, body, 0)
		if err != nil || a.RC != message.RCApproved {
			t.Fatalf("request %d with one connection failed: %+v, %v; want it approved on the other", i, a, err)
		}
	}
	m := msg(t, l.NextSTAN())
	_ = m.Field(37, "000000500009")
	if _, err := l.Send(context.Background(), m, 0); err != nil && !errors.Is(err, ErrTimeout) {
		// The simulator may not answer a bare message; what matters is that it went.
		t.Fatalf("Send with one connection failed: %v", err)
	}
	breakWriter(t, l, conns[1])
	rrn := "000000500010"
	stan, body := packedPurchase(t, l, rrn)
	_, err = l.SendPacked(context.Background(), "0200", stan, rrn, body, 0)
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrConnectionLost) {
		t.Fatalf("request with every connection failed: %v; want ErrUnavailable (nothing sent), not ErrConnectionLost", err)
	}
	if n := sim.Stats.Requests.Load(); n != 5 {
		t.Errorf("the issuer got %d requests, want 5", n)
	}
}
