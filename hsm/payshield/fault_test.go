package payshield_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/payshield"
	"github.com/switchyard/switchyard/keys"
)

// Fault modes of a faultHSM, for the commands it reads next.
const (
	modeOK     int32 = iota // answer every command
	modeSilent              // read commands, answer none, on this connection for ever
	modeClose               // close the connection on reading a command, answer nothing
	modeHold                // hold the answer to the next command until another command comes
)

// faultHSM is hsm serve's command handler behind a loopback listener whose
// behaviour a test switches between commands: it answers, swallows commands
// (a silent HSM), closes the connection mid-command, or answers one command late,
// after the answer to the next. Its listener can be closed (connections refused)
// and opened again on the same address (the HSM back).
type faultHSM struct {
	t    *testing.T
	srv  *payshield.Server
	addr string
	mode atomic.Int32
	// accepted counts the connections accepted; held is signalled when a command's
	// answer is held (modeHold); hung is signalled when a command is swallowed
	// (modeSilent); closedByPeer when the client closed a connection.
	accepted atomic.Int32
	// sameHeader: a held answer is sent before the answer to the next command
	// with its header (a header reused), not before the next command's.
	sameHeader atomic.Bool
	// headerLen is the header length of the commands (0: the default).
	headerLen    atomic.Int32
	held         chan struct{}
	hung         chan struct{}
	closedByPeer chan struct{}

	mu    sync.Mutex
	ln    net.Listener
	conns []net.Conn
	wg    sync.WaitGroup
}

func newFaultHSM(t *testing.T) *faultHSM {
	t.Helper()
	srv, err := payshield.NewServer(keys.DemoLMK(), payshield.ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f := &faultHSM{t: t, srv: srv, held: make(chan struct{}, 16), hung: make(chan struct{}, 16), closedByPeer: make(chan struct{}, 16)}
	f.listen("127.0.0.1:0")
	t.Cleanup(f.stop)
	return f
}

// listen (re)opens the listener on addr and serves it.
func (f *faultHSM) listen(addr string) {
	f.t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		f.t.Fatal(err)
	}
	f.mu.Lock()
	f.ln, f.addr = ln, ln.Addr().String()
	f.mu.Unlock()
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.accepted.Add(1)
			f.mu.Lock()
			f.conns = append(f.conns, c)
			f.mu.Unlock()
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				f.serveConn(c)
			}()
		}
	}()
}

// down closes the listener and every connection: connections are refused.
func (f *faultHSM) down() {
	f.mu.Lock()
	f.ln.Close()
	for _, c := range f.conns {
		c.Close()
	}
	f.conns = nil
	f.mu.Unlock()
}

func (f *faultHSM) stop() {
	f.down()
	f.wg.Wait()
}

func (f *faultHSM) serveConn(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	silent := false
	var held []byte
	var heldHeader string
	answer := func(req payshield.Request) []byte {
		out, err := payshield.AppendResponse(nil, f.srv.Handle(context.Background(), req))
		if err != nil {
			f.t.Errorf("fault HSM: %v", err)
		}
		return out
	}
	for {
		msg, err := payshield.ReadFrame(r, nil)
		if err != nil {
			if silent && !errors.Is(err, net.ErrClosed) {
				signal(f.closedByPeer)
			}
			return
		}
		if silent {
			continue
		}
		hl := int(f.headerLen.Load())
		if hl == 0 {
			hl = payshield.DefaultHeaderLength
		}
		req, err := payshield.ParseRequest(msg, hl)
		if err != nil {
			f.t.Errorf("fault HSM: %v", err)
			return
		}
		switch f.mode.Load() {
		case modeSilent:
			silent = true
			signal(f.hung)
			continue
		case modeClose:
			return
		case modeHold:
			if held == nil {
				held, heldHeader = answer(req), req.Header
				signal(f.held)
				continue
			}
		}
		out := answer(req)
		if held != nil && f.mode.Load() == modeOK && (!f.sameHeader.Load() || req.Header == heldHeader) {
			// The late answer first, then the one to this command.
			out = append(held, out...)
			held = nil
		}
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

// signal sends on ch without blocking (its buffer is larger than a test needs).
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// faultEnv is a client with Conns 1 and its metrics on the fault HSM.
func faultEnv(t *testing.T, f *faultHSM, timeout time.Duration) (*env, *payshield.Metrics) {
	t.Helper()
	m, err := payshield.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return newEnv(t, payshield.ClientOptions{Addrs: []string{f.addr}, Conns: 1, Timeout: timeout, Metrics: m}), m
}

// margin is what a failed command may take past its timeout.
const margin = 500 * time.Millisecond

// macOK checks that a MAC command answers, with the software HSM's MAC.
func macOK(t *testing.T, e *env, data string) {
	t.Helper()
	req := hsm.MACRequest{Key: hsm.KeyRef{ID: "T0000002.TAK"}, Data: []byte(data)}
	got, err := e.client.GenerateMAC(e.ctx, req)
	want, _ := e.sw.GenerateMAC(e.ctx, req)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("MAC of %q: %X, %v; want %X", data, got, err, want)
	}
}

// macFails checks that a MAC command fails with hsm.ErrUnavailable (the switch's 96
// hsm-unavailable) naming why, within within.
func macFails(t *testing.T, e *env, why string, within time.Duration) {
	t.Helper()
	start := time.Now()
	_, err := e.client.GenerateMAC(e.ctx, hsm.MACRequest{Key: hsm.KeyRef{ID: "T0000002.TAK"}, Data: []byte("data")})
	took := time.Since(start)
	if !errors.Is(err, hsm.ErrUnavailable) || !strings.Contains(err.Error(), why) {
		t.Fatalf("MAC: %v, want ErrUnavailable saying %q", err, why)
	}
	if took > within {
		t.Fatalf("MAC failed after %s, want at most %s", took, within)
	}
}

// TestClientSilentConnection: an HSM connection that goes silent (the HSM hung in
// that session, or a firewall dropped the connection without a reset) fails its
// command with ErrUnavailable (timeout) within the timeout, marks the HSM down, and
// is closed by the client: the next command dials again and is answered, and the
// health check marks the HSM up, without a restart. Before, the connection was kept
// and every later command and health check timed out on it for ever.
func TestClientSilentConnection(t *testing.T) {
	f := newFaultHSM(t)
	const timeout = 300 * time.Millisecond
	e, m := faultEnv(t, f, timeout)
	macOK(t, e, "before")
	f.mode.Store(modeSilent)
	// Each command that times out closes its silent connection (none leaks, nor
	// its reader), and the next dials a new one.
	const silent = 3
	for i := range silent {
		macFails(t, e, "timeout", timeout+margin)
		<-f.hung
		if v := testutil.ToFloat64(m.Up.WithLabelValues(f.addr)); v != 0 {
			t.Fatalf("switchyard_hsm_up %v after a timeout, want 0", v)
		}
		if v := testutil.ToFloat64(m.Errors.WithLabelValues("M6", "timeout")); v != float64(i+1) {
			t.Fatalf("switchyard_hsm_errors_total{M6,timeout} %v, want %d", v, i+1)
		}
		select {
		case <-f.closedByPeer:
		case <-time.After(5 * time.Second):
			t.Fatalf("silent command %d: the client kept its connection open", i+1)
		}
	}
	f.mode.Store(modeOK) // the HSM answers new connections
	macOK(t, e, "after")
	e.client.CheckHealth(e.ctx)
	if v := testutil.ToFloat64(m.Up.WithLabelValues(f.addr)); v != 1 {
		t.Fatalf("switchyard_hsm_up %v with the HSM back, want 1", v)
	}
	if n := f.accepted.Load(); n != silent+1 {
		t.Fatalf("%d connections dialed, want %d (the first, then one after each silent one)", n, silent+1)
	}
}

// TestClientLateAnswer: on a connection that still answers (the HSM slow on one
// command), a command that times out keeps the connection, and its late answer,
// arriving just before the next command's, is not taken for the next command's:
// answers are matched by header, and each command has a header of its own.
func TestClientLateAnswer(t *testing.T) {
	f := newFaultHSM(t)
	const timeout = time.Second
	e, _ := faultEnv(t, f, timeout)
	macOK(t, e, "before")
	f.mode.Store(modeHold)
	late := heldMAC(e, f)
	// Another command answered while the first waits: the connection is alive.
	macOK(t, e, "meanwhile")
	if err := <-late; !errors.Is(err, hsm.ErrUnavailable) || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("held command: %v, want ErrUnavailable (timeout)", err)
	}
	f.mode.Store(modeOK) // the next command's answer follows the held one's
	macOK(t, e, "next")
	macOK(t, e, "and the next")
	if n := f.accepted.Load(); n != 1 {
		t.Fatalf("%d connections dialed, want 1 (a slow command does not discard a live connection)", n)
	}
}

// TestClientConnectionClosed: an HSM that closes the connection mid-command fails
// the command at once with ErrUnavailable (not after the timeout); the next command
// dials again and is answered.
func TestClientConnectionClosed(t *testing.T) {
	f := newFaultHSM(t)
	const timeout = 5 * time.Second
	e, _ := faultEnv(t, f, timeout)
	macOK(t, e, "before")
	f.mode.Store(modeClose)
	macFails(t, e, "connection lost", timeout/2)
	f.mode.Store(modeOK)
	macOK(t, e, "after")
}

// TestClientRefusedThenBack: an HSM that refuses connections fails commands at
// once with ErrUnavailable, is marked down (switchyard_hsm_up 0, Down names it, so
// /readyz does); back on the same address, the next command finds it and marks it
// up, without a restart and without waiting for a health check (here there are
// none: before, it stayed down until the next NC check, for ever without checks).
func TestClientRefusedThenBack(t *testing.T) {
	f := newFaultHSM(t)
	const timeout = 5 * time.Second
	e, m := faultEnv(t, f, timeout)
	macOK(t, e, "before")
	if err := e.client.Down(); err != nil {
		t.Fatalf("Down with the HSM up: %v", err)
	}
	addr := f.addr
	f.down()
	// The first command may still meet the connection the HSM closed; the next
	// finds it refused.
	macFails(t, e, "", timeout/2)
	macFails(t, e, "refused", timeout/2)
	if v := testutil.ToFloat64(m.Up.WithLabelValues(addr)); v != 0 {
		t.Fatalf("switchyard_hsm_up %v with the HSM refusing, want 0", v)
	}
	if err := e.client.Down(); err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("Down with the HSM refusing: %v, want an error naming %s", err, addr)
	}
	f.listen(addr)
	macOK(t, e, "after")
	if v := testutil.ToFloat64(m.Up.WithLabelValues(addr)); v != 1 {
		t.Fatalf("switchyard_hsm_up %v with the HSM answering again, want 1", v)
	}
	if err := e.client.Down(); err != nil {
		t.Fatalf("Down with the HSM answering again: %v", err)
	}
}

// TestClientHeaderNotReused: with the shortest header (2 characters, 1,296 values),
// the header of a command that timed out on a connection that stays is not given to
// another command while its answer may still come: here the late answer comes just
// before the answer to the command 1,296 headers later. Before, that command took
// the late answer (another command's MAC) for its own.
func TestClientHeaderNotReused(t *testing.T) {
	f := newFaultHSM(t)
	f.headerLen.Store(2)
	m, err := payshield.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, payshield.ClientOptions{Addrs: []string{f.addr}, Conns: 1, Timeout: time.Second, HeaderLength: 2, Metrics: m})
	macOK(t, e, "before")
	f.sameHeader.Store(true)
	f.mode.Store(modeHold)
	late := heldMAC(e, f)
	macOK(t, e, "meanwhile")
	if err := <-late; !errors.Is(err, hsm.ErrUnavailable) {
		t.Fatalf("held command: %v, want ErrUnavailable (timeout)", err)
	}
	f.mode.Store(modeOK)
	for i := range 36*36 + 4 {
		macOK(t, e, fmt.Sprintf("command %d", i))
	}
}

// TestClientCommandDeadline: with two silent HSMs, a command fails with
// ErrUnavailable (the switch's 96) within its one deadline (CommandDeadline,
// by default Timeout) across its attempts, not after Timeout on each HSM (2 ×
// Timeout before 6 December 2026). With CommandDeadline above Timeout, a command
// whose first HSM is silent still fails over to the second within its deadline,
// and two silent HSMs fail it within that deadline.
func TestClientCommandDeadline(t *testing.T) {
	const timeout = time.Second
	t.Run("default", func(t *testing.T) {
		// Three silent HSMs: the 96 within two attempts (the default deadline),
		// not three.
		a, b, c := newFaultHSM(t), newFaultHSM(t), newFaultHSM(t)
		e := newEnv(t, payshield.ClientOptions{Addrs: []string{a.addr, b.addr, c.addr}, Conns: 1, Timeout: timeout})
		macOK(t, e, "before")
		a.mode.Store(modeSilent)
		b.mode.Store(modeSilent)
		c.mode.Store(modeSilent)
		macFails(t, e, "timeout", 2*timeout+margin)
	})
	t.Run("default fails over", func(t *testing.T) {
		// The default leaves room for one failover: a silent first HSM, a
		// second that answers, within the same command.
		a, b := newFaultHSM(t), newFaultHSM(t)
		e := newEnv(t, payshield.ClientOptions{Addrs: []string{a.addr, b.addr}, Conns: 1, Timeout: timeout})
		macOK(t, e, "before")
		a.mode.Store(modeSilent)
		start := time.Now()
		macOK(t, e, "failed over")
		if took := time.Since(start); took > timeout+margin {
			t.Fatalf("failover took %s, want at most %s", took, timeout+margin)
		}
	})
	t.Run("failover within the deadline", func(t *testing.T) {
		const attempt, deadline = 400 * time.Millisecond, 600 * time.Millisecond
		a, b := newFaultHSM(t), newFaultHSM(t)
		e := newEnv(t, payshield.ClientOptions{Addrs: []string{a.addr, b.addr}, Conns: 1, Timeout: attempt, CommandDeadline: deadline})
		macOK(t, e, "before")
		a.mode.Store(modeSilent)
		start := time.Now()
		macOK(t, e, "failed over") // a times out after attempt; b answers
		if took := time.Since(start); took > attempt+margin {
			t.Fatalf("failover took %s, want at most %s", took, attempt+margin)
		}
		// a (down) now comes after b: both silent, the command fails within its
		// deadline (b's attempt, then what is left of it on a).
		b.mode.Store(modeSilent)
		macFails(t, e, "timeout", deadline+margin)
	})
}

// heldMAC starts a MAC command on e that f, in modeHold, holds without an answer,
// and returns once f holds it; the command's error comes on the channel.
func heldMAC(e *env, f *faultHSM) <-chan error {
	late := make(chan error, 1)
	go func() {
		_, err := e.client.GenerateMAC(e.ctx, hsm.MACRequest{Key: hsm.KeyRef{ID: "T0000002.TAK"}, Data: []byte("late")})
		late <- err
	}()
	<-f.held
	return late
}
