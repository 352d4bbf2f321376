package issuer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moov-io/iso8583"

	"github.com/switchyard/switchyard/switch/issuersim"
	"github.com/switchyard/switchyard/switch/message"
)

// packedPurchase encodes an approvable 0200 with the link's next STAN and rrn, as the
// pipeline does before SendPacked.
func packedPurchase(t testing.TB, l *Link, rrn string) (stan string, body []byte) {
	t.Helper()
	stan = l.NextSTAN()
	m := iso8583.NewMessage(message.SpecASCII)
	m.MTI("0200")
	for id, v := range map[int]string{2: "4761739001010119", 3: "000000", 4: "000000001000",
		7: message.FormatDE7(time.Now()), 11: stan, 14: "2912", 37: rrn,
		41: "T0000001", 42: "000000000000001"} {
		if err := m.Field(id, v); err != nil {
			t.Fatal(err)
		}
	}
	body, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return stan, body
}

func dialSim(t *testing.T, cfg issuersim.Config) (*Link, *issuersim.Sim) {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	sim, err := issuersim.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	l, err := Dial(Config{ID: "sim", Addrs: []string{sim.Addr()}, Connections: 1, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for !l.Up() {
		if time.Now().After(deadline) {
			t.Fatal("link never signed on")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return l, sim
}

// TestSendPackedDirect: authorizations sent with SendPacked take the direct path (the
// coalescing writer's buffer out, the light reader's hand-off back, issue 15), each
// answer reaching its own request among many in flight; a request that times out
// gets ErrTimeout and its answer, when it comes, goes to OnLate as before.
func TestSendPackedDirect(t *testing.T) {
	l, _ := dialSim(t, issuersim.Config{})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rrn := fmt.Sprintf("%012d", 700000+i)
			stan, body := packedPurchase(t, l, rrn)
			a, err := l.SendPacked(context.Background(), "0200", stan, rrn, body, 0)
			if err != nil {
				errs <- err
				return
			}
			// The answer was matched to this request by its DE 11 and DE 37.
			if a.RC != message.RCApproved || len(a.AuthCode) != 6 {
				errs <- fmt.Errorf("request %s/%s answered with DE 39 %q, DE 38 %q", stan, rrn, a.RC, a.AuthCode)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// All went the direct way: the connection is known to it and nothing waits.
	n := 0
	l.writers.Range(func(_, v any) bool {
		cw := v.(*coalescingWriter)
		cw.mu.Lock()
		if len(cw.pend) != 0 {
			t.Errorf("%d requests still registered", len(cw.pend))
		}
		cw.mu.Unlock()
		n++
		return true
	})
	if n != 1 {
		t.Fatalf("%d connections known to the direct path, want 1", n)
	}
}

func TestSendPackedDirectTimeoutAndLate(t *testing.T) {
	l, _ := dialSim(t, issuersim.Config{Faults: issuersim.Faults{Delay: 1, DelayBy: 300 * time.Millisecond}})
	late := make(chan *iso8583.Message, 1)
	l.OnLate = func(m *iso8583.Message) { late <- m }
	rrn := "000000800001"
	stan, body := packedPurchase(t, l, rrn)
	if _, err := l.SendPacked(context.Background(), "0200", stan, rrn, body, 50*time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Fatalf("SendPacked with a 50 ms timeout against a 300 ms issuer: %v, want ErrTimeout", err)
	}
	select {
	case m := <-late:
		if got, _ := m.GetString(37); got != rrn {
			t.Fatalf("late answer for %s, want %s", got, rrn)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the late answer never reached OnLate")
	}
}

// TestSendPackedDirectConnectionLost: the issuer closing the connection while a request
// waits fails it with ErrConnectionLost (in doubt), not a timeout.
func TestSendPackedDirectConnectionLost(t *testing.T) {
	l, _ := dialSim(t, issuersim.Config{Faults: issuersim.Faults{Disconnect: 1}})
	rrn := "000000900001"
	stan, body := packedPurchase(t, l, rrn)
	start := time.Now()
	_, err := l.SendPacked(context.Background(), "0200", stan, rrn, body, 5*time.Second)
	if !errors.Is(err, ErrConnectionLost) {
		t.Fatalf("SendPacked on a connection the issuer closes: %v, want ErrConnectionLost", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("the loss was reported after %s (the timeout's end), not when it happened", d)
	}
}

// TestLightReaderAnswers: an answer to a waiting request reaches it as its DE 39 and
// DE 38 (none: ""), without a moov-io message for iso8583-connection; a network
// management answer (matched on DE 11 and DE 70) reaches a request that wants the
// message (Send) as one; an answer nobody waits for (a late one) is decoded into a
// moov-io message with the fields the switch reads, for the inbound handler.
func TestLightReaderAnswers(t *testing.T) {
	frame := func(fields map[int]string) []byte {
		t.Helper()
		m := iso8583.NewMessage(message.SpecASCII)
		m.MTI("0210")
		for id, v := range fields {
			if err := m.Field(id, v); err != nil {
				t.Fatal(err)
			}
		}
		body, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return append([]byte{byte(len(body) >> 8), byte(len(body))}, body...)
	}
	cw := newCoalescingWriter()
	cw.started, cw.w = true, io.Discard
	lr := lightReader{cw: cw}
	for _, tc := range []struct {
		fields map[int]string
		want   message.Answer
	}{
		{map[int]string{11: "000001", 37: "100000000001", 38: "A1B2C3", 39: "00"}, message.Answer{RC: "00", AuthCode: "A1B2C3"}},
		{map[int]string{11: "000002", 37: "100000000002", 39: "05"}, message.Answer{RC: "05"}},
		// DE 4 of any answer, which an approval echoes (the pipeline reverses one
		// of another amount), and of a partial approval (-1 without one).
		{map[int]string{4: "000000000600", 11: "000005", 37: "100000000005", 39: "00"}, message.Answer{RC: "00", Amount: 600, HasAmount: true}},
		{map[int]string{4: "000000000600", 11: "000006", 37: "100000000006", 39: "10"}, message.Answer{RC: "10", Amount: 600, HasAmount: true}},
		{map[int]string{11: "000007", 37: "100000000007", 39: "10"}, message.Answer{RC: "10", Amount: -1}},
	} {
		id := tc.fields[11] + "/" + tc.fields[37]
		ch, err := cw.register(id, [4]byte([]byte("0200")), []byte("request"), false)
		if err != nil {
			t.Fatal(err)
		}
		m, err := lr.ReadMessage(bytes.NewReader(frame(tc.fields)))
		if err != nil || m != nil {
			t.Fatalf("%s: the reader returned %v, %v to iso8583-connection; want nothing", id, m, err)
		}
		if got := <-ch; got.err != nil || got.a != tc.want {
			t.Fatalf("%s: delivered %+v, want %+v", id, got, tc.want)
		}
	}
	// A network management answer, to a request that wants the message (Send).
	ch, err := cw.register("000004/N301", [4]byte([]byte("0800")), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	nm := frame(map[int]string{11: "000004", 39: "00", 70: "301"})
	copy(nm[2:], "0810")
	if m, err := lr.ReadMessage(bytes.NewReader(nm)); err != nil || m != nil {
		t.Fatalf("0810: the reader returned %v, %v to iso8583-connection; want nothing", m, err)
	}
	if got := <-ch; got.err != nil || got.m == nil {
		t.Fatalf("0810: delivered %+v, want the message", got)
	} else if rc, _ := got.m.GetString(39); rc != "00" {
		t.Fatalf("0810: DE 39 %q, want 00", rc)
	} else if mti, _ := got.m.GetMTI(); mti != "0810" {
		t.Fatalf("0810: MTI %q", mti)
	}
	m, err := lr.ReadMessage(bytes.NewReader(frame(map[int]string{11: "000003", 37: "100000000003", 38: "XYZ123", 39: "00", 41: "T0000001"})))
	if err != nil || m == nil {
		t.Fatalf("an answer nobody waits for: %v, %v", m, err)
	}
	for id, want := range map[int]string{11: "000003", 37: "100000000003", 38: "XYZ123", 39: "00", 41: "T0000001"} {
		if got, _ := m.GetString(id); got != want {
			t.Errorf("DE %d of the late answer: %q, want %q", id, got, want)
		}
	}
}

// stackWriter records, for each write, the stack of the goroutine that made it, and
// can hold a write until released; it fails the test on two writes at once.
type stackWriter struct {
	t       *testing.T
	mu      sync.Mutex
	active  int
	stacks  []string
	data    []byte
	hold    chan struct{} // nil: writes return at once
	holding chan struct{} // receives when a held write started
}

func (w *stackWriter) Write(p []byte) (int, error) {
	buf := make([]byte, 4096)
	st := string(buf[:runtime.Stack(buf, false)])
	w.mu.Lock()
	w.active++
	if w.active > 1 {
		w.t.Error("two writes to the issuer's socket at once")
	}
	w.stacks = append(w.stacks, st)
	w.data = append(w.data, p...)
	hold := w.hold
	w.mu.Unlock()
	if hold != nil {
		w.holding <- struct{}{}
		<-hold
	}
	w.mu.Lock()
	w.active--
	w.mu.Unlock()
	return len(p), nil
}

// TestDirectRequestWrittenByItsGoroutine: with no write in progress, a request on
// the direct path is written to the issuer's socket by its own goroutine, not handed
// to the flusher (a run-queue hand-off per authorization, issue 15); while a write
// is in progress, requests queue and the flusher writes them after it, never two
// writes at once.
func TestDirectRequestWrittenByItsGoroutine(t *testing.T) {
	w := &stackWriter{t: t, hold: make(chan struct{}), holding: make(chan struct{}, 1)}
	cw := newCoalescingWriter()
	cw.started, cw.w = true, w
	go cw.flushLoop()
	defer cw.stop()
	first := make(chan error, 1)
	go func() { _, err := cw.register("000001/100000000001", [4]byte{}, []byte("first"), false); first <- err }()
	<-w.holding // the first request's goroutine is writing it
	for _, id := range []string{"000002/100000000002", "000003/100000000003"} {
		if _, err := cw.register(id, [4]byte{}, []byte(id[:6]), false); err != nil {
			t.Fatal(err)
		}
	}
	w.mu.Lock()
	release := w.hold
	w.hold = nil // the flusher's write goes through
	w.mu.Unlock()
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	// The flusher writes what queued meanwhile; wait for it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		w.mu.Lock()
		n, stacks, data := len(w.stacks), slices.Clone(w.stacks), string(w.data)
		w.mu.Unlock()
		if n == 2 {
			if !strings.Contains(stacks[0], "(*coalescingWriter).register") {
				t.Errorf("a lone request was not written by its own goroutine:\n%s", stacks[0])
			}
			if !strings.Contains(stacks[1], "(*coalescingWriter).flushLoop") {
				t.Errorf("the requests queued during a write were not written by the flusher:\n%s", stacks[1])
			}
			if want := "\x00\x05first\x00\x06000002\x00\x06000003"; data != want {
				t.Errorf("written %q, want %q", data, want)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d writes, want 2", n)
		}
		runtime.Gosched()
	}
}

// TestRepeatTimedOutLateAnswer: an advice whose 0220 and then its repeat 0221 (the
// same DE 11 and 37) both timed out takes a late 0231 as the late answer it is, not
// as an answer of the wrong message type (it kept the first try's MTI, 0220, until 7
// December 2026), and a late 0230 too.
func TestRepeatTimedOutLateAnswer(t *testing.T) {
	for _, late := range []string{"0231", "0230"} {
		cw := newCoalescingWriter()
		cw.started, cw.w = true, io.Discard
		const id = "000001/100000000001"
		for _, mti := range []string{"0220", "0221"} {
			if _, err := cw.register(id, [4]byte([]byte(mti)), []byte("advice"), false); err != nil {
				t.Fatal(err)
			}
			cw.abandon(id)
		}
		if ok, wrong := cw.wasTimedOut(id, late); !ok {
			t.Errorf("late %s to the repeated advice: not late (wrong MTI %q)", late, wrong[:])
		}
	}
}
