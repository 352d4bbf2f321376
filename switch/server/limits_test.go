package server

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"
)

// TestAdminAnswersWhileTerminalListenerFull: the terminal listener at its max_conns
// refuses the next connection at once, and /readyz still answers on the admin port.
func TestAdminAnswersWhileTerminalListenerFull(t *testing.T) {
	cfg := demoConfig(t, t.TempDir())
	cfg.Listeners[0].MaxConns, cfg.Listeners[0].MaxConnsPerSource = 20, 20
	s := start(t, cfg, nil)
	addr := s.ListenerAddr(cfg.Listeners[0].Name)
	for range 20 {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.listeners[0].ConnCount() < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections accepted, want 20", s.listeners[0].ConnCount())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if nc, err := net.Dial("tcp", addr); err == nil {
		_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := nc.Read(make([]byte, 1)); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("21st connection: read = %v, want it closed by the switch", err)
		}
		nc.Close()
	} else if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatal(err)
	}
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + s.AdminAddr() + "/readyz")
	if err != nil {
		t.Fatalf("/readyz with the terminal listener full: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz: %s", resp.Status)
	}
	if got := refusedMetric(t, s, cfg.Listeners[0].Name, "max-conns"); got != 1 {
		t.Fatalf("switchyard_terminal_connections_refused_total = %v, want 1", got)
	}
}

func refusedMetric(t *testing.T, s *Server, listener, reason string) float64 {
	t.Helper()
	mfs, err := s.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "switchyard_terminal_connections_refused_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			if labels["listener"] == listener && labels["reason"] == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestConnBudget: the listeners' max_conns are fitted under the file-descriptor limit
// with room left for the admin server and the stores.
func TestConnBudget(t *testing.T) {
	cases := []struct {
		limit   uint64
		want    []int
		got     []int
		lowered bool
	}{
		{0, []int{10000, 10000}, []int{10000, 10000}, false},       // limit unknown
		{1 << 20, []int{10000, 10000}, []int{10000, 10000}, false}, // plenty
		{20000, []int{10000, 10000}, []int{9488, 9488}, true},      // 1024 kept back
		{20000, []int{15000, 5000}, []int{14232, 4744}, true},      // shares kept
		{1024, []int{10000}, []int{768}, true},                     // a quarter kept back
		{100, []int{10000, 10}, []int{35, 1}, true},                // at least 64 kept, at least 1 each
		{20000, []int{100, 200}, []int{100, 200}, false},           // small limits untouched
	}
	for _, c := range cases {
		got, lowered := connBudget(c.limit, c.want)
		if fmt.Sprint(got) != fmt.Sprint(c.got) || lowered != c.lowered {
			t.Errorf("connBudget(%d, %v) = %v, %v; want %v, %v", c.limit, c.want, got, lowered, c.got, c.lowered)
		}
	}
}
