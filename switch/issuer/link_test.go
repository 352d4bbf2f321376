package issuer

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/moov-io/iso8583"

	"github.com/switchyard/switchyard/switch/message"
)

// slowWriter records what it is given, slowly, so that messages queue up meanwhile.
type slowWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *slowWriter) Write(p []byte) (int, error) {
	// Copy in two halves with a pause between, as a socket write may take the bytes:
	// a buffer changed under the write shows up as a corrupt or repeated message.
	w.mu.Lock()
	defer w.mu.Unlock()
	h := len(p) / 2
	w.buf.Write(p[:h])
	time.Sleep(20 * time.Microsecond)
	return w.buf.Write(p[h:])
}

// TestCoalescingWriterSendsEachMessageOnce writes many messages from many goroutines
// and checks that every one arrives exactly once, intact.
func TestCoalescingWriterSendsEachMessageOnce(t *testing.T) {
	w := &slowWriter{}
	cw := newCoalescingWriter()
	const n = 20000
	var wg sync.WaitGroup
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += 32 {
				m := iso8583.NewMessage(message.SpecASCII)
				m.MTI("0200")
				_ = m.Field(11, fmt.Sprintf("%06d", i))
				_ = m.Field(37, fmt.Sprintf("%012d", i))
				if err := cw.WriteMessage(w, m); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(5 * time.Second)
	seen := map[string]int{}
	for {
		w.mu.Lock()
		raw := append([]byte(nil), w.buf.Bytes()...)
		w.mu.Unlock()
		seen = map[string]int{}
		for len(raw) >= 2 {
			l := int(raw[0])<<8 | int(raw[1])
			if len(raw) < 2+l {
				break
			}
			var stan []byte
			if _, err := message.Scan(raw[2:2+l], message.DialectASCII, func(id int, v []byte) {
				if id == 11 {
					stan = v
				}
			}); err != nil {
				t.Fatalf("corrupt message on the wire: %v", err)
				return
			}
			seen[string(stan)]++
			raw = raw[2+l:]
		}
		if len(seen) == n || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := 0; i < n; i++ {
		if c := seen[fmt.Sprintf("%06d", i)]; c != 1 {
			t.Fatalf("message %d sent %d times", i, c)
		}
	}
	cw.stop()
}

// gateWriter writes its first half, then waits for the gate before the second half.
type gateWriter struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	entered chan struct{}
	gate    chan struct{}
	wrote   chan struct{} // a write has returned
}

func (w *gateWriter) Write(p []byte) (int, error) {
	w.entered <- struct{}{}
	<-w.gate
	w.mu.Lock()
	defer func() { w.mu.Unlock(); w.wrote <- struct{}{} }()
	return w.buf.Write(p)
}

func msg(t *testing.T, stan string) *iso8583.Message {
	m := iso8583.NewMessage(message.SpecASCII)
	m.MTI("0200")
	_ = m.Field(11, stan)
	return m
}

// TestCoalescingWriterStaleKick reproduces the sequence that once sent a message twice:
// a kick for bytes already written (an empty flush), then a message appended while the
// next write is in progress.
func TestCoalescingWriterStaleKick(t *testing.T) {
	w := &gateWriter{entered: make(chan struct{}, 10), gate: make(chan struct{}, 10), wrote: make(chan struct{}, 10)}
	cw := newCoalescingWriter()
	send := func(stan string) {
		if err := cw.WriteMessage(w, msg(t, stan)); err != nil {
			t.Fatal(err)
		}
	}
	send("000001")
	<-w.entered
	w.gate <- struct{}{}
	<-w.wrote // first write done
	// A stale kick: the flusher finds nothing to write. The second send returns once
	// the flusher has taken the first (the channel holds one).
	cw.kick <- struct{}{}
	cw.kick <- struct{}{}
	send("000002")
	<-w.entered    // the write of 000002 is in progress...
	send("000003") // ...when 000003 is appended
	w.gate <- struct{}{}
	<-w.entered
	w.gate <- struct{}{}
	<-w.wrote
	<-w.wrote // the writes of 000002 and 000003 are done
	w.mu.Lock()
	raw := w.buf.Bytes()
	var stans []string
	for len(raw) >= 2 {
		l := int(raw[0])<<8 | int(raw[1])
		_, err := message.Scan(raw[2:2+l], message.DialectASCII, func(id int, v []byte) {
			if id == 11 {
				stans = append(stans, string(v))
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		raw = raw[2+l:]
	}
	w.mu.Unlock()
	if fmt.Sprint(stans) != "[000001 000002 000003]" {
		t.Fatalf("on the wire: %v", stans)
	}
	cw.stop()
}
