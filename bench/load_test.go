package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/switchyard/switchyard/internal/syncbuf"
	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
)

// dyingSwitch is a stand-in for a switch on loopback TCP: it answers each request
// with the request itself (the harness matches answers by terminal and STAN), and
// after answers answers in all closes every connection and its listener, as a
// switch that dies mid-run.
type dyingSwitch struct {
	ln      net.Listener
	answers int64
	n       atomic.Int64
	mu      sync.Mutex
	conns   []net.Conn
	dead    chan struct{}
	once    sync.Once
}

func startDyingSwitch(t *testing.T, answers int64) *dyingSwitch {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dyingSwitch{ln: ln, answers: answers, dead: make(chan struct{})}
	t.Cleanup(s.die)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			go s.serve(c)
		}
	}()
	return s
}

func (s *dyingSwitch) serve(c net.Conn) {
	var hdr [2]byte
	for {
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		body := make([]byte, binary.BigEndian.Uint16(hdr[:]))
		if _, err := io.ReadFull(c, body); err != nil {
			return
		}
		if s.n.Add(1) > s.answers {
			s.die()
			return
		}
		if _, err := c.Write(append(hdr[:], body...)); err != nil {
			return
		}
	}
}

func (s *dyingSwitch) die() {
	s.once.Do(func() {
		s.ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		close(s.dead)
	})
}

// TestRunLoadSwitchDies: the switch dying in the measured window stops the load at
// once with an error that says so, and every request it left unanswered counts as
// an error (once), in the closed and in the open loop.
func TestRunLoadSwitchDies(t *testing.T) {
	for _, rate := range []float64{0, 2000} {
		sw := startDyingSwitch(t, 3000)
		start := time.Now()
		res, err := RunLoad(context.Background(), LoadOptions{Addr: sw.ln.Addr().String(), Terminals: 20, Conns: 4, Depth: 8,
			Duration: time.Minute, Warmup: 0, Rate: rate})
		took := time.Since(start)
		if err == nil || !strings.Contains(err.Error(), "connection") {
			t.Fatalf("rate %v: RunLoad against a switch that died: %v, want a lost connection", rate, err)
		}
		select {
		case <-sw.dead: // die closes the connections, then this
		case <-time.After(5 * time.Second):
			t.Fatalf("rate %v: RunLoad ended, the switch alive: %v", rate, err)
		}
		if took > 10*time.Second {
			t.Errorf("rate %v: RunLoad took %v to notice the switch died (the window is a minute)", rate, took)
		}
		if res == nil {
			t.Fatalf("rate %v: no result with the error", rate)
		}
		if res.Errors == 0 || res.Errors != res.Sent-res.Answered {
			t.Errorf("rate %v: sent %d, answered %d, errors %d: want every unanswered request counted once", rate, res.Sent, res.Answered, res.Errors)
		}
	}
}

// TestMeasuredNothingAnswered: a load with no answer in its window (a switch that
// accepts and never answers) is an error, not a report of zeros.
func TestMeasuredNothingAnswered(t *testing.T) {
	r := &LoadResult{Hist: hdrhistogram.New(1, 60_000_000, 3), Sent: 512, Errors: 512, Elapsed: 2 * time.Second}
	if err := r.Measured(); err == nil || !strings.Contains(err.Error(), "nothing answered in the 2.0s measured window (512 sent") {
		t.Fatalf("Measured: %v", err)
	}
	_ = r.Hist.RecordValue(100)
	if err := r.Measured(); err != nil {
		t.Fatalf("Measured with an answer: %v", err)
	}
}

// TestRunLoadTerminalsShared: more connections than terminals would have two
// connections send for one terminal (colliding STANs, and a data race on its
// sequence): refused, as are more terminals than the IDs allow.
func TestRunLoadTerminalsShared(t *testing.T) {
	sw := startDyingSwitch(t, 1<<40)
	for _, o := range []LoadOptions{{Terminals: 2, Conns: 4}, {Terminals: 1_000_000, Conns: 4}} {
		o.Addr, o.Duration, o.Depth = sw.ln.Addr().String(), 300*time.Millisecond, 2
		if _, err := RunLoad(context.Background(), o); err == nil || !strings.Contains(err.Error(), "terminals") {
			t.Errorf("%d terminals over %d connections: %v, want an error", o.Terminals, o.Conns, err)
		}
	}
}

// codeSwitch is a stand-in for a switch on loopback TCP that answers every request
// with a response whose DE 39 is code(n), n counting the requests from 1.
func codeSwitch(t *testing.T, code func(n int64) string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					body, err := frontend.ReadFrame(br, nil, 0xFFFF)
					if err != nil {
						return
					}
					req, err := message.Decode(body, message.DialectASCII)
					if err != nil {
						t.Errorf("codeSwitch: %v", err)
						return
					}
					raw, err := message.NewResponseBuilder(req).Set(39, code(n.Add(1))).Bytes(nil)
					if err != nil {
						t.Errorf("codeSwitch: %v", err)
						return
					}
					if _, err := c.Write(frontend.AppendFrame(nil, raw)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestRunLoadFailuresAreNoAuthorizations: answers 91 (the switch's answer at once
// when a listener's limit is reached, or its issuer unavailable) and 96 are failures,
// not authorizations: they are counted as failed and in the codes, but not in the
// throughput, the latency or the count the CPU per authorization divides by; a window
// of nothing but failures is no measurement. A decline (05) is an authorization.
func TestRunLoadFailuresAreNoAuthorizations(t *testing.T) {
	addr := codeSwitch(t, func(n int64) string {
		switch n % 4 {
		case 0:
			return "91"
		case 1:
			return "96"
		case 2:
			return "05"
		}
		return "00"
	})
	res, err := RunLoad(t.Context(), LoadOptions{Addr: addr, Terminals: 8, Conns: 2, Depth: 4, Duration: 300 * time.Millisecond, Warmup: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ok, failed := res.Codes["00"]+res.Codes["05"], res.Codes["91"]+res.Codes["96"]
	if ok == 0 || failed == 0 {
		t.Fatalf("codes %v: want 00, 05, 91 and 96 answers", res.Codes)
	}
	if res.Failed != failed || res.Hist.TotalCount() != ok {
		t.Errorf("codes %v: failed %d, histogram %d: want failed %d (91, 96) and %d authorizations (00, 05) in the histogram",
			res.Codes, res.Failed, res.Hist.TotalCount(), failed, ok)
	}
	if want := float64(ok) / res.Elapsed.Seconds(); res.TPS != want {
		t.Errorf("TPS %.0f: want %.0f, the authorizations alone", res.TPS, want)
	}
	if p := res.Phase("switch"); p.Failed != failed || p.Count != ok || int64(len(res.Samples)) != ok {
		t.Errorf("phase failed %d count %d, %d samples: want %d and %d", p.Failed, p.Count, len(res.Samples), failed, ok)
	}

	busy := codeSwitch(t, func(int64) string { return "91" })
	res, err = RunLoad(t.Context(), LoadOptions{Addr: busy, Terminals: 8, Conns: 2, Depth: 4, Duration: 200 * time.Millisecond, Warmup: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.TPS != 0 || res.Failed == 0 {
		t.Errorf("a switch answering 91 to all: %.0f/s, %d failed: want 0/s", res.TPS, res.Failed)
	}
	if err := res.Measured(); err == nil || !strings.Contains(err.Error(), "no authorization") || !strings.Contains(err.Error(), "91 x ") {
		t.Errorf("Measured of a window of 91s: %v, want an error naming them", err)
	}
}

// slowSwitch is a stand-in for a switch on loopback TCP that answers each request 00
// after delay, and records when it wrote each answer.
type slowSwitch struct {
	addr   string
	mu     sync.Mutex
	wrote  []time.Time
	closed atomic.Bool
}

func startSlowSwitch(t *testing.T, delay time.Duration) *slowSwitch {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &slowSwitch{addr: ln.Addr().String()}
	t.Cleanup(func() { s.closed.Store(true); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var wmu sync.Mutex
				br := bufio.NewReader(c)
				for {
					body, err := frontend.ReadFrame(br, nil, 0xFFFF)
					if err != nil {
						return
					}
					req, err := message.Decode(body, message.DialectASCII)
					if err != nil {
						return
					}
					raw, err := message.NewResponseBuilder(req).Set(39, "00").Bytes(nil)
					if err != nil {
						return
					}
					time.AfterFunc(delay, func() {
						wmu.Lock()
						defer wmu.Unlock()
						if _, err := c.Write(frontend.AppendFrame(nil, raw)); err == nil {
							s.mu.Lock()
							s.wrote = append(s.wrote, time.Now())
							s.mu.Unlock()
						}
					})
				}
			}()
		}
	}()
	return s
}

// between counts the answers written from a to b.
func (s *slowSwitch) between(a, b time.Time) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, w := range s.wrote {
		if !w.Before(a) && w.Before(b) {
			n++
		}
	}
	return n
}

// TestRunLoadThroughputOverTheWindow: the throughput counts the answers that came in
// the measured window, whenever their requests were sent. It counted only those sent
// in the window too, which leaves out the requests in flight at its start: with 200
// ms answers and a 1 s window, a fifth of the window's answers (with a deep closed
// loop, 64 connections of depth 1,000 at 15,000/s, more than four seconds of them).
func TestRunLoadThroughputOverTheWindow(t *testing.T) {
	sw := startSlowSwitch(t, 200*time.Millisecond)
	var from, to time.Time
	o := LoadOptions{Addr: sw.addr, Terminals: 40, Conns: 2, Depth: 20, Duration: time.Second, Warmup: 500 * time.Millisecond}
	o.onStart = func() { from = time.Now() }
	o.onEnd = func() { to = time.Now() }
	res, err := RunLoad(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	// The answers the switch wrote in the window, less those still on the wire at
	// its end (20 ms: a loaded machine may read them late).
	wrote := sw.between(from, to.Add(-20*time.Millisecond))
	if got := res.Hist.TotalCount(); float64(got) < 0.95*float64(wrote) {
		t.Fatalf("%d answers counted in the window, of %d the switch wrote in it: the answers to requests sent before it are left out", got, wrote)
	}
}

// TestRunLoadCUPTerminalLost: a cup terminal that cannot connect or sign in (past
// the listener's connections from one address, say) fails the run, as a lost ASCII
// connection does; it used to stop alone, counted as one error.
func TestRunLoadCUPTerminalLost(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := ln.Addr().String()
	ln.Close() // nothing listens there now
	res, err := RunLoad(t.Context(), LoadOptions{Addr: codeSwitch(t, func(int64) string { return "00" }), Terminals: 10, Conns: 2, Depth: 2,
		Duration: 300 * time.Millisecond, Warmup: 50 * time.Millisecond, CUPTerminals: 2, CUPAddr: refused})
	if err == nil || !strings.Contains(err.Error(), "cup terminal LT0000") || !strings.Contains(err.Error(), "connect") {
		t.Fatalf("cup terminals that cannot connect: %v, want the run failed", err)
	}
	if res == nil || res.Errors < 2 {
		t.Fatalf("result %+v: want the cup terminals' errors counted", res)
	}
}

// TestRunLoadProgress: the progress line counts the answers of the measured window
// (it counted the warm-up's too: twice the window's second after a 1 s warm-up),
// and shows no error count (the connections count theirs at the end: it read 0).
func TestRunLoadProgress(t *testing.T) {
	var progress syncbuf.Buffer
	_, err := RunLoad(t.Context(), LoadOptions{Addr: codeSwitch(t, func(int64) string { return "00" }), Terminals: 8, Conns: 2, Depth: 4,
		Duration: 1100 * time.Millisecond, Warmup: time.Second, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	out := progress.String()
	var secs float64
	var answered, perS int64
	if _, err := fmt.Sscanf(strings.TrimLeft(out, "\r "), "%fs %d answered in the window %d/s", &secs, &answered, &perS); err != nil {
		t.Fatalf("progress %q: %v", out, err)
	}
	if answered != perS || answered == 0 {
		t.Errorf("progress %q: %d answered after the window's first second at %d/s: want the window's alone", out, answered, perS)
	}
	if strings.Contains(out, "errors") {
		t.Errorf("progress %q shows an error count it cannot know", out)
	}
}

// TestRunLoadAnswerWithoutRCIsMalformed: an answer without DE 39 is no authorization
// (and no failure code either): it is counted malformed, not in the throughput, the
// latency, the timeline or the codes, and a window of nothing else is no measurement.
// (Until the fifth release of 6 December 2026 it counted as an authorization.)
func TestRunLoadAnswerWithoutRCIsMalformed(t *testing.T) {
	addr := codeSwitch(t, func(n int64) string {
		if n%2 == 0 {
			return "" // no DE 39
		}
		return "00"
	})
	res, err := RunLoad(t.Context(), LoadOptions{Addr: addr, Terminals: 8, Conns: 2, Depth: 4, Duration: 300 * time.Millisecond, Warmup: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Malformed == 0 || res.Codes["00"] == 0 {
		t.Fatalf("malformed %d, codes %v: want answers with and without DE 39", res.Malformed, res.Codes)
	}
	if _, ok := res.Codes[""]; ok || res.Hist.TotalCount() != res.Codes["00"] || int64(len(res.Samples)) != res.Codes["00"] {
		t.Errorf("codes %v, histogram %d, %d samples: want the 00s alone counted, no empty code", res.Codes, res.Hist.TotalCount(), len(res.Samples))
	}
	if res.Sent != res.Answered+res.Errors {
		t.Errorf("sent %d, answered %d, unanswered %d: a malformed answer is an answer", res.Sent, res.Answered, res.Errors)
	}
	if p := res.Phase("switch"); p.Malformed != res.Malformed || p.Count != res.Codes["00"] {
		t.Errorf("phase malformed %d count %d: want %d and %d", p.Malformed, p.Count, res.Malformed, res.Codes["00"])
	}

	none := codeSwitch(t, func(int64) string { return "" })
	res, err = RunLoad(t.Context(), LoadOptions{Addr: none, Terminals: 8, Conns: 2, Depth: 4, Duration: 200 * time.Millisecond, Warmup: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.TPS != 0 || res.Malformed == 0 {
		t.Errorf("a switch answering without DE 39: %.0f/s, %d malformed: want 0/s", res.TPS, res.Malformed)
	}
	if err := res.Measured(); err == nil || !strings.Contains(err.Error(), "no response code (DE 39)") {
		t.Errorf("Measured of a window of answers without DE 39: %v, want an error naming them", err)
	}
}

// stepWall returns tm with its wall clock reading moved by d (whole seconds) and its
// monotonic reading kept: what time.Now returns after the system's clock was stepped
// by d (NTP, an operator), which a test cannot do to the machine. It relies on
// time.Time's layout (wall, ext, loc; a time with a monotonic reading keeps its
// seconds in bits 30 to 62 of wall) and checks that the result is what it says.
func stepWall(t *testing.T, tm time.Time, d time.Duration) time.Time {
	t.Helper()
	type rep struct {
		wall uint64
		ext  int64
		loc  *time.Location
	}
	out := tm
	r := (*rep)(unsafe.Pointer(&out))
	if r.wall&(1<<63) == 0 {
		t.Fatal("stepWall: the time has no monotonic reading")
	}
	r.wall += uint64(int64(d/time.Second) << 30)
	if out.Sub(tm) != 0 || out.Round(0).Sub(tm.Round(0)) != d.Truncate(time.Second) {
		t.Fatalf("stepWall: time.Time's layout is not the one assumed (monotonic %v, wall %v)", out.Sub(tm), out.Round(0).Sub(tm.Round(0)))
	}
	return out
}

// TestWindowSecondMonotonic: a sample's second of the window comes from the monotonic
// clock: the wall clock stepped an hour back or forward during the run neither moves
// an answer 2.5 s into the window to another second nor drops it from the timeline.
// (Until the fifth release of 6 December 2026 it came from the wall clock: a step back
// put it in second 0, a step forward 3602 s past the window, out of the timeline.)
func TestWindowSecondMonotonic(t *testing.T) {
	start := time.Now()
	at := start.Add(2500 * time.Millisecond)
	for _, step := range []time.Duration{0, -time.Hour, time.Hour} {
		now := stepWall(t, at, step)
		if got := windowSecond(start, now); got != 2 {
			t.Errorf("wall clock stepped %v: second %d, want 2", step, got)
		}
		pts := timeline([]Sample{{Second: windowSecond(start, now), LatencyUS: 500}}, 3*time.Second)
		if len(pts) != 3 || pts[2].TPS != 1 {
			t.Errorf("wall clock stepped %v: timeline %+v, want the answer in the third second", step, pts)
		}
	}
	if got := windowSecond(start, start.Add(-time.Second)); got != 0 {
		t.Errorf("a time before the window: second %d, want 0", got)
	}
}
