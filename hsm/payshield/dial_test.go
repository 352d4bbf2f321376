package payshield_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/payshield"
	"github.com/switchyard/switchyard/keys"
)

// stallingTLSHSM serves hsm serve over TLS on its first `serve` connections and, on
// the ones after, accepts the TCP connection but never answers the TLS handshake (a
// payShield at its limit of host sessions, or a middlebox that stalls new
// sessions): a dial to it hangs while the connections it has keep answering.
type stallingTLSHSM struct {
	addr    string
	pool    *x509.CertPool
	stalled chan struct{} // signalled when a connection is accepted and left stalling
}

func newStallingTLSHSM(t *testing.T, serve int32) *stallingTLSHSM {
	t.Helper()
	cert, pool := selfSigned(t)
	srv, err := payshield.NewServer(keys.DemoLMK(), payshield.ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &stallingTLSHSM{addr: ln.Addr().String(), pool: pool, stalled: make(chan struct{}, 64)}
	good := make(chan net.Conn)
	goodLn := &chanListener{ch: good, addr: ln.Addr(), done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- srv.Serve(ctx, tls.NewListener(goodLn, &tls.Config{Certificates: []tls.Certificate{cert}}))
	}()
	var mu sync.Mutex
	var stalledConns []net.Conn
	var accepted atomic.Int32
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if accepted.Add(1) <= serve {
				select {
				case good <- c:
				case <-goodLn.done:
					c.Close()
				}
				continue
			}
			mu.Lock()
			stalledConns = append(stalledConns, c)
			mu.Unlock()
			signal(h.stalled)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		mu.Lock()
		for _, c := range stalledConns {
			c.Close()
		}
		mu.Unlock()
		cancel()
		goodLn.Close()
		<-done
	})
	return h
}

// chanListener is a net.Listener fed with connections through a channel.
type chanListener struct {
	ch   chan net.Conn
	addr net.Addr
	once sync.Once
	done chan struct{}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// TestClientDialDoesNotStallLiveConnection: with Conns 2 and one connection up, a
// command went on dialing the second one while holding the node, with its own
// deadline: when the HSM stalled new sessions (the TLS handshake unanswered), every
// command waited out its timeout in the dial, then wrote to the live connection with
// its deadline past, failed, and closed that live connection too: 96 for every
// transaction although the HSM answered on the connection it had. A live connection
// now takes the command at once while the next one is dialed in the background, and
// no command waits on a dial (or on another command's write) past its deadline.
func TestClientDialDoesNotStallLiveConnection(t *testing.T) {
	h := newStallingTLSHSM(t, 1)
	const timeout = 400 * time.Millisecond
	e := newEnv(t, payshield.ClientOptions{Addrs: []string{h.addr}, Conns: 2, Timeout: timeout, CommandDeadline: timeout,
		DialTimeout: 10 * time.Second, TLS: &tls.Config{RootCAs: h.pool}})
	// newEnv formed the demo keys through the client: the first connection is up,
	// and a second one may already be stalling.
	for i := range 5 {
		start := time.Now()
		req := hsm.MACRequest{Key: hsm.KeyRef{ID: "T0000002.TAK"}, Data: []byte{byte(i)}}
		got, err := e.client.GenerateMAC(e.ctx, req)
		if err != nil {
			t.Fatalf("MAC %d after %s with one live connection and the second one's handshake stalled: %v", i, time.Since(start), err)
		}
		want, _ := e.sw.GenerateMAC(e.ctx, req)
		if string(got) != string(want) {
			t.Fatalf("MAC %d: %X, want %X", i, got, want)
		}
		if took := time.Since(start); took > timeout/2 {
			t.Errorf("MAC %d took %s on a live connection, want well within the timeout %s", i, took, timeout)
		}
	}
}
