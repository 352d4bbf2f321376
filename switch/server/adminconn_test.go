package server

import (
	"bufio"
	"net"
	"net/http"
	"testing"
	"time"
)

// A connection to the admin port kept alive after a request is closed once it
// has been idle adminIdleTimeout: idle sockets, one request each, would
// otherwise use up the file descriptors the terminal listeners share.
func TestAdminIdleConnectionClosed(t *testing.T) {
	was := adminIdleTimeout
	adminIdleTimeout = 200 * time.Millisecond
	t.Cleanup(func() { adminIdleTimeout = was })
	s := start(t, demoConfig(t, t.TempDir()), nil)
	conn, err := net.Dial("tcp", s.AdminAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /livez HTTP/1.1\r\nHost: admin\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("/livez: %d, close %v: want 200 on a kept-alive connection", resp.StatusCode, resp.Close)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("the server sent something on an idle connection")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("an idle admin connection still open after 10 s (idle timeout %v)", adminIdleTimeout)
	}
}
