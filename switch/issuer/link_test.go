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
	time.Sleep(50 * time.Microsecond)
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// TestCoalescingWriterSendsEachMessageOnce writes many messages from many goroutines
// and checks that every one arrives exactly once, intact.
func TestCoalescingWriterSendsEachMessageOnce(t *testing.T) {
	w := &slowWriter{}
	cw := newCoalescingWriter()
	const n = 2000
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += 8 {
				m := iso8583.NewMessage(message.SpecASCII)
				m.MTI("0200")
				_ = m.Field(11, fmt.Sprintf("%06d", i))
				_ = m.Field(37, fmt.Sprintf("%012d", i))
				if err := cw.WriteMessage(w, m); err != nil {
					t.Error(err)
					return
				}
				if i%7 == 0 {
					time.Sleep(20 * time.Microsecond)
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
