package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/journal/wal"
)

// serveConns listens on loopback and runs serve on each connection it accepts, each
// in a goroutine of its own; at the test's end it closes the listener and waits for
// them. It returns the address.
func serveConns(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// echoUpstream answers every frame with the same frame.
func echoUpstream(t *testing.T) string {
	return serveConns(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			body, err := frontend.ReadFrame(br, nil, 0xFFFF)
			if err != nil {
				return
			}
			if _, err := c.Write(frontend.AppendFrame(nil, body)); err != nil {
				return
			}
		}
	})
}

// roundTrips sends n frames through the relay at addr, one at a time, and checks
// each answer.
func roundTrips(t *testing.T, addr string, n int) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for i := range n {
		msg := []byte(fmt.Sprintf("0200 request %d", i))
		if _, err := c.Write(frontend.AppendFrame(nil, msg)); err != nil {
			t.Fatal(err)
		}
		if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		got, err := frontend.ReadFrame(br, nil, 0xFFFF)
		if err != nil {
			t.Fatalf("answer %d through the relay: %v", i, err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("answer %d is %q; want %q", i, got, msg)
		}
	}
}

func TestRelay(t *testing.T) {
	r, err := StartRelay("127.0.0.1:0", echoUpstream(t), RelayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	roundTrips(t, r.Addr(), 50)
}

func TestRelayBurn(t *testing.T) {
	const burn, n = 3 * time.Millisecond, 30
	r, err := StartRelay("127.0.0.1:0", echoUpstream(t), RelayOptions{Burn: burn})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	before, err := cpuTime(os.Getpid())
	if err != nil {
		t.Skipf("no process CPU time here: %v", err)
	}
	roundTrips(t, r.Addr(), n)
	after, _ := cpuTime(os.Getpid())
	// The spin is calibrated on the fastest of its timed runs, so it spends at least
	// its CPU time unless the CPU got faster; half of it is a safe lower bound.
	if used := after - before; used < n*burn/2 {
		t.Errorf("%d requests with a burn of %v used %v of CPU; want at least %v", n, burn, used, n*burn/2)
	}
}

func TestRelayBadBurn(t *testing.T) {
	for _, b := range []time.Duration{-time.Millisecond, 2 * time.Second} {
		r, err := StartRelay("127.0.0.1:0", "127.0.0.1:1", RelayOptions{Burn: b})
		if err == nil {
			r.Close()
			t.Errorf("burn %v accepted", b)
		}
	}
}

// TestRelayJournal: a relay with a journal passes every frame on, and its log holds
// each request and each answer once, in order (read back after Close).
func TestRelayJournal(t *testing.T) {
	dir := t.TempDir()
	r, err := StartRelay("127.0.0.1:0", echoUpstream(t), RelayOptions{Journal: dir})
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	roundTrips(t, r.Addr(), n)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	kinds := map[byte][]string{}
	l, err := wal.Open(dir, wal.Options{MaxKind: 2}, wal.Pos{}, func(f wal.Frame) error {
		if len(f.Payload) != relayRecord {
			return fmt.Errorf("a record of %d bytes; want %d", len(f.Payload), relayRecord)
		}
		kinds[f.Kind] = append(kinds[f.Kind], string(bytes.TrimRight(f.Payload, "\x00")))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, k := range []byte{1, 2} {
		if len(kinds[k]) != n {
			t.Fatalf("%d records of kind %d in the relay's log; want %d", len(kinds[k]), k, n)
		}
		for i, rec := range kinds[k] {
			if want := fmt.Sprintf("0200 request %d", i); rec != want {
				t.Errorf("record %d of kind %d is %q; want %q", i, k, rec, want)
			}
		}
	}
}

// TestRelayJournalBadDir: a journal directory that cannot be made is an error.
func TestRelayJournalBadDir(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := StartRelay("127.0.0.1:0", "127.0.0.1:1", RelayOptions{Journal: filepath.Join(f, "journal")})
	if err == nil {
		r.Close()
		t.Fatal("a journal under a file accepted")
	}
	if !strings.Contains(err.Error(), "relay journal") {
		t.Errorf("error %q does not say it is the relay's journal", err)
	}
}
