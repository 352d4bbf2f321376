package frontend

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

type echoProc struct{}

func (echoProc) Process(_ context.Context, _ *Conn, body []byte) (Response, error) {
	return Response{Body: append([]byte(nil), body...)}, nil
}

// countMetrics counts what the listener reports.
type countMetrics struct {
	mu      sync.Mutex
	refused map[string]int
	closed  map[string]int
}

func newCountMetrics() *countMetrics {
	return &countMetrics{refused: map[string]int{}, closed: map[string]int{}}
}

func (m *countMetrics) ConnOpened(string) {}
func (m *countMetrics) ConnClosed(_, reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed[reason]++
}
func (m *countMetrics) ProtocolError(_, _ string) {}
func (m *countMetrics) ConnRefused(_, reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refused[reason]++
}
func (m *countMetrics) RequestRefused(_, reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refused["request "+reason]++
}
func (m *countMetrics) Turnaround(string) func(float64) { return func(float64) {} }

func (m *countMetrics) get(which map[string]int, reason string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return which[reason]
}

// client is a terminal connection of a test.
type client struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

func dialFrom(t *testing.T, l *Listener, local string) *client {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	nc, err := d.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc, r: bufio.NewReader(nc)}
}

// roundTrip sends a frame and waits for its echo: the connection was accepted and served.
func (c *client) roundTrip(body string) {
	c.t.Helper()
	writeFrame(c.t, c.nc, body)
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := ReadFrame(c.r, nil, 1024)
	if err != nil || string(got) != body {
		c.t.Fatalf("echo of %q: %q, %v", body, got, err)
	}
}

// refusedAt dials from local and checks that the switch closes the connection at once
// (the reset may even beat the end of the dial).
func refusedAt(t *testing.T, l *Listener, local string) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	nc, err := d.Dial("tcp", l.Addr().String())
	if err != nil {
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("dial: %v, want a connection the switch closes", err)
		}
		return
	}
	defer nc.Close()
	(&client{t: t, nc: nc, r: bufio.NewReader(nc)}).closedBySwitch()
}

// closedBySwitch waits for the switch to close the connection (EOF or reset) and
// returns how long that took.
func (c *client) closedBySwitch() time.Duration {
	c.t.Helper()
	start := time.Now()
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := c.r.ReadByte()
	if err == nil || isTimeout(err) || !(errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
		c.t.Fatalf("read = %v, want the switch to close the connection", err)
	}
	return time.Since(start)
}

// TestMaxConnsRefusesThePastLimit: with max 3 connections, the 4th is closed at
// accept and counted; once one closes, a new one is served again.
func TestMaxConnsRefusesThePastLimit(t *testing.T) {
	m := newCountMetrics()
	l := listen(t, Config{MaxConns: 3}, echoProc{}, nil, m)
	var open []*client
	for range 3 {
		c := dialFrom(t, l, "")
		c.roundTrip("hello")
		open = append(open, c)
	}
	refusedAt(t, l, "")
	if n := m.get(m.refused, "max-conns"); n != 1 {
		t.Fatalf("refused max-conns = %d, want 1", n)
	}
	for _, c := range open { // the three are untouched
		c.roundTrip("still here")
	}
	open[0].nc.Close()
	waitFor(t, "the closed connection to be let go", func() bool { return l.ConnCount() == 2 })
	dialFrom(t, l, "").roundTrip("room again")
}

// TestMaxConnsPerSource: one address gets at most 2; another address still gets in.
func TestMaxConnsPerSource(t *testing.T) {
	m := newCountMetrics()
	l := listen(t, Config{MaxConns: 10, MaxConnsPerSource: 2}, echoProc{}, nil, m)
	for range 2 {
		dialFrom(t, l, "127.0.0.1").roundTrip("hello")
	}
	refusedAt(t, l, "127.0.0.1")
	if n := m.get(m.refused, "per-source"); n != 1 {
		t.Fatalf("refused per-source = %d, want 1", n)
	}
	dialFrom(t, l, "127.0.0.2").roundTrip("another host") // loopback answers all of 127/8
}

// TestFirstFrameDeadline: a connection that sends nothing is closed after the
// first-frame deadline, not the idle timeout; one that sent its first frame is not.
func TestFirstFrameDeadline(t *testing.T) {
	m := newCountMetrics()
	l := listen(t, Config{FirstFrameTimeout: 200 * time.Millisecond, IdleTimeout: time.Minute}, echoProc{}, nil, m)
	talker := dialFrom(t, l, "")
	talker.roundTrip("hello") // before its first-frame deadline
	silent := dialFrom(t, l, "")
	if d := silent.closedBySwitch(); d > 5*time.Second {
		t.Fatalf("silent connection closed after %s, want about 200ms", d)
	}
	// The talker's first-frame deadline passed before the silent one's: it is served.
	talker.roundTrip("still here")
	waitFor(t, "the close to be counted", func() bool { return m.get(m.closed, "first frame timeout") == 1 })
}

// slowProc answers the bodies that start with "slow" once release is closed (an issuer
// that does not answer), the others at once; its refusals say so.
type slowProc struct {
	started chan string // a slow request reached the processor
	release chan struct{}
}

func (p *slowProc) Process(_ context.Context, _ *Conn, body []byte) (Response, error) {
	if strings.HasPrefix(string(body), "slow") {
		p.started <- string(body)
		<-p.release
	}
	return Response{Body: append([]byte("done "), body...)}, nil
}

func (p *slowProc) Refuse(_ *Conn, body []byte, reason string) (Response, error) {
	return Response{Body: append([]byte(reason+" "), body...)}, nil
}

// TestMaxInFlightPerSource: one address whose requests wait on a slow issuer gets at
// most max_in_flight_per_source of them in progress; the rest are answered at once
// with the processor's refusal and counted, and another address's requests still
// find room under the switch's limit and are answered. Until 5 December 2026 one
// address could fill the switch's limit with its waiting requests (80 connections at
// 256 each fill 20,000), and every other terminal's request waited behind them.
func TestMaxInFlightPerSource(t *testing.T) {
	m := newCountMetrics()
	p := &slowProc{started: make(chan string, 16), release: make(chan struct{})}
	l, err := Listen(Config{Name: "test", Addr: "127.0.0.1:0", MaxInFlightPerSource: 4}, p, NewLimiter(6), m)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = l.Serve() }()
	t.Cleanup(l.Close)
	t.Cleanup(func() {
		select {
		case <-p.release:
		default:
			close(p.release) // Close waits for the requests in progress
		}
	})
	read := func(c *client) string {
		t.Helper()
		_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, err := ReadFrame(c.r, nil, 1024)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		return string(got)
	}
	busy := []*client{dialFrom(t, l, "127.0.0.1"), dialFrom(t, l, "127.0.0.1"), dialFrom(t, l, "127.0.0.1")}
	for i := range 4 {
		writeFrame(t, busy[0].nc, fmt.Sprintf("slow %d", i))
	}
	for range 4 {
		<-p.started
	}
	// Past the limit, on the address's other connections: answered at once.
	for i, c := range busy[1:] {
		body := fmt.Sprintf("slow %d", 4+i)
		writeFrame(t, c.nc, body)
		if got := read(c); got != ReasonSourceBusy+" "+body {
			t.Fatalf("request past max_in_flight_per_source 4: answered %q, want the refusal", got)
		}
	}
	if n := m.get(m.refused, "request "+ReasonSourceBusy); n != 2 {
		t.Fatalf("%d refusals counted, want 2", n)
	}
	// Another terminal is served meanwhile, within the switch's limit of 6.
	other := dialFrom(t, l, "127.0.0.2")
	writeFrame(t, other.nc, "quick")
	if got := read(other); got != "done quick" {
		t.Fatalf("another address's request while the first one's wait: %q", got)
	}
	close(p.release)
	for range 4 {
		if got := read(busy[0]); !strings.HasPrefix(got, "done slow ") {
			t.Fatalf("a slow request once released: %q", got)
		}
	}
	// The address has room again.
	writeFrame(t, busy[1].nc, "again")
	if got := read(busy[1]); got != "done again" {
		t.Fatalf("the address's request once its others were answered: %q", got)
	}
}
