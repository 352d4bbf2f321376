package frontend

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/syncbuf"
)

// TestHTTPAnswerToAGoneTerminalIsUndelivered: over the https listener kind, an answer
// whose terminal reset its connection while the request was processed is reported
// undelivered, so that the pipeline reverses the approval among such answers, as the
// TCP listener does. The answer went into net/http's buffer, whose flush error
// http.Flusher drops: it was reported delivered, and an approval the terminal never
// got stood.
func TestHTTPAnswerToAGoneTerminalIsUndelivered(t *testing.T) {
	p := newGateProc()
	l := listen(t, Config{HTTP: true}, p, nil, nil)
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	body := "0200 an authorization"
	req := fmt.Sprintf("POST / HTTP/1.1\r\nHost: switch\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s", ContentTypeTPDU, len(body), body)
	if _, err := nc.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	<-p.started
	// The terminal gives up: its connection is reset (no lingering close).
	_ = nc.(*net.TCPConn).SetLinger(0)
	_ = nc.Close()
	close(p.release)
	select {
	case delivered := <-p.sent:
		if delivered {
			t.Fatal("the answer to a terminal whose connection was reset was reported delivered")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the answer's delivery was not reported within 10 s")
	}
}

// httpRoundTrip posts body on the client's connection and checks that it comes back
// (echoProc): the connection was accepted and served.
func (c *client) httpRoundTrip(body string) {
	c.t.Helper()
	req := fmt.Sprintf("POST / HTTP/1.1\r\nHost: switch\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s", ContentTypeTPDU, len(body), body)
	if _, err := c.nc.Write([]byte(req)); err != nil {
		c.t.Fatal(err)
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		c.t.Fatalf("answer to %q: %v", body, err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || string(got) != body {
		c.t.Fatalf("answer to %q: %d %q, %v", body, resp.StatusCode, got, err)
	}
}

// TestHTTPListenerConnectionLimits: a listener of kind https keeps max_conns and
// max_conns_per_source as a tcp one does. It kept neither: one host could open
// connections without end (each held for first_frame_timeout if silent, for
// idle_timeout between requests) and use up the process's file descriptors, which
// the journal, the other listeners and the admin server need too.
func TestHTTPListenerConnectionLimits(t *testing.T) {
	m := newCountMetrics()
	l := listen(t, Config{HTTP: true, MaxConns: 3, MaxConnsPerSource: 2, FirstFrameTimeout: time.Minute, IdleTimeout: time.Minute},
		echoProc{}, nil, m)
	var open []*client
	for range 2 {
		c := dialFrom(t, l, "127.0.0.1")
		c.httpRoundTrip("hello")
		open = append(open, c)
	}
	refusedAt(t, l, "127.0.0.1")
	if n := m.get(m.refused, "per-source"); n != 1 {
		t.Fatalf("refused per-source = %d, want 1", n)
	}
	dialFrom(t, l, "127.0.0.2").httpRoundTrip("another host")
	refusedAt(t, l, "127.0.0.3")
	if n := m.get(m.refused, "max-conns"); n != 1 {
		t.Fatalf("refused max-conns = %d, want 1", n)
	}
	for _, c := range open { // untouched
		c.httpRoundTrip("still here")
	}
	open[0].nc.Close()
	waitFor(t, "the closed connection to be let go", func() bool { return l.ConnCount() == 2 })
	dialFrom(t, l, "127.0.0.1").httpRoundTrip("room again")
}

// TestHTTPServerErrorsLogged: the https listener's own errors (here a TLS handshake
// that fails: a client that speaks no TLS) reach the listener's log, sampled, and
// not the standard logger. Before, http.Server.ErrorLog was nil: every failed
// handshake of a scanner was a line on stderr, outside the switch's log and
// unthrottled.
func TestHTTPServerErrorsLogged(t *testing.T) {
	var std syncbuf.Buffer
	log.SetOutput(&std)
	t.Cleanup(func() { log.SetOutput(os.Stderr) })
	var out syncbuf.Buffer
	srv, _ := testTLS(t)
	l := listen(t, Config{HTTP: true, TLS: srv}, newGateProc(), &out, nil)
	for i := 0; i < 6*httpErrorBurst; i++ {
		nc, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		// Not a TLS record: the handshake fails and the server closes.
		_, _ = io.WriteString(nc, "GET / HTTP/1.0\r\n\r\n")
		_, _ = io.Copy(io.Discard, nc)
		_ = nc.Close()
	}
	waitFor(t, "the handshake errors to be logged", func() bool {
		return strings.Count(out.String(), "TLS handshake error") >= httpErrorBurst
	})
	// A burst may straddle the sampler's period: two periods' worth at most.
	if n := strings.Count(out.String(), "TLS handshake error"); n > 2*httpErrorBurst {
		t.Errorf("%d handshake errors logged from %d connections: want at most %d a second", n, 6*httpErrorBurst, httpErrorBurst)
	}
	if std.String() != "" {
		t.Errorf("the standard logger got %q", std.String())
	}
}
