package frontend

import (
	"fmt"
	"net"
	"testing"
	"time"
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
