package bench

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
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
