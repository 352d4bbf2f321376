package issuer

import (
	"bufio"
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moov-io/iso8583"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/issuersim"
	"github.com/switchyard/switchyard/switch/message"
)

// scriptedIssuer is an issuer host whose answers take as long as delay says for each
// message (by MTI and, for network management, DE 70), and whose handling of the
// issuer's own network management (handleNM) tests can script. It counts the
// connections it accepted.
type scriptedIssuer struct {
	ln       net.Listener
	delay    func(mti, nm string) time.Duration
	accepted atomic.Int32
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]*sync.Mutex // each connection's write lock
	// received has every message read, by MTI and DE 70 ("0800/301"), in order.
	received chan string
	// rc, if not nil, gives each answer's DE 39 (default 00).
	rc func(mti, nm string) string
	// answers, if not nil, gives the answers to a request by its MTI and fields,
	// each written in turn after the delay; nil or none: the one answer of the
	// request's response MTI.
	answers func(mti string, f map[int]string) []scriptedAnswer
}

// scriptedAnswer is one answer a scripted issuer writes: its MTI and DE 39, written
// once gate (if not nil) is closed.
type scriptedAnswer struct {
	mti, rc string
	gate    <-chan struct{}
}

func startScriptedIssuer(t *testing.T, delay func(mti, nm string) time.Duration, rc func(mti, nm string) string) *scriptedIssuer {
	t.Helper()
	return startScripted(t, &scriptedIssuer{delay: delay, rc: rc})
}

// startScripted starts the scripted issuer s (its delay, rc and answers set) on a
// loopback port.
func startScripted(t *testing.T, s *scriptedIssuer) *scriptedIssuer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.ln, s.conns, s.received = ln, map[net.Conn]*sync.Mutex{}, make(chan string, 1024)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			wmu := new(sync.Mutex)
			s.mu.Lock()
			s.conns[c] = wmu
			s.mu.Unlock()
			s.wg.Add(1)
			go func() { defer s.wg.Done(); s.serve(c, wmu) }()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *scriptedIssuer) addr() string { return s.ln.Addr().String() }

// networkRequest sends the issuer's own 0800 with DE 70 nm on every connection.
func (s *scriptedIssuer) networkRequest(t *testing.T, nm, stan string) {
	t.Helper()
	raw, err := message.NewBuilder(message.DialectASCII, "0800").Set(7, message.FormatDE7(time.Now())).
		Set(11, stan).Set(70, nm).Bytes(nil)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for c, wmu := range s.conns {
		wmu.Lock()
		_, _ = c.Write(frontend.AppendFrame(nil, raw))
		wmu.Unlock()
	}
}

// await waits up to 5 s for the issuer to read a message of MTI and DE 70 ("0810/002").
func (s *scriptedIssuer) await(t *testing.T, want string) {
	t.Helper()
	timeout := time.NewTimer(5 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case m := <-s.received:
			if m == want {
				return
			}
		case <-timeout.C:
			t.Fatalf("the issuer did not receive %s within 5 s", want)
		}
	}
}

func (s *scriptedIssuer) serve(c net.Conn, wmu *sync.Mutex) {
	var answers sync.WaitGroup
	defer answers.Wait()
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		body, err := frontend.ReadFrame(r, nil, 0xFFFF)
		if err != nil {
			return
		}
		f := map[int]string{}
		mti, err := message.Scan(body, message.DialectASCII, func(id int, v []byte) { f[id] = string(v) })
		if err != nil || len(mti) != 4 {
			return
		}
		select {
		case s.received <- string(mti) + "/" + f[70]:
		default:
		}
		if mti[2] != '0' && mti[2] != '2' {
			continue // an answer to the issuer's own request
		}
		rc := message.RCApproved
		if s.rc != nil {
			rc = s.rc(string(mti), f[70])
		}
		script := []scriptedAnswer{{mti: message.ResponseMTI(string(mti)), rc: rc}}
		if s.answers != nil {
			if a := s.answers(string(mti), f); len(a) > 0 {
				script = a
			}
		}
		d := s.delay(string(mti), f[70])
		answers.Add(1)
		go func() {
			defer answers.Done()
			if d > 0 {
				time.Sleep(d) // the issuer's answer time: what the test is about
			}
			for _, a := range script {
				if a.gate != nil {
					<-a.gate
				}
				b := message.NewBuilder(message.DialectASCII, a.mti)
				for _, id := range []int{3, 4, 7, 11, 37, 41, 42, 70} {
					if v, ok := f[id]; ok {
						b.Set(id, v)
					}
				}
				if a.mti == "0210" || a.mti == "0110" {
					b.Set(38, "A12345")
				}
				raw, err := b.Set(39, a.rc).Bytes(nil)
				if err != nil {
					return
				}
				wmu.Lock()
				_, _ = c.Write(frontend.AppendFrame(nil, raw))
				wmu.Unlock()
			}
		}()
	}
}

// waitSignedOn waits up to within for the link to have a signed-on connection.
func waitSignedOn(t *testing.T, l *Link, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); !l.Up(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the link has no signed-on connection after %v", within)
		}
	}
}

// TestSlowIssuerKeepsItsConnections: an issuer that takes 5.5 s to answer, within the
// link's timeout of 8 s, is an issuer the switch must sign on to and keep: its sign-on
// and echoes waited a fixed 5 s, so its sign-on never succeeded (the issuer stayed
// unavailable for as long as it was slow), and an echo unanswered in 5 s closed a
// connection carrying answers, failing every request in flight on it as in doubt (91
// and a reversal each, every echo period).
func TestSlowIssuerKeepsItsConnections(t *testing.T) {
	const slow = 5500 * time.Millisecond
	t.Run("sign-on", func(t *testing.T) {
		t.Parallel()
		iss := startScriptedIssuer(t, func(string, string) time.Duration { return slow }, nil)
		l, err := Dial(Config{ID: "slow", Addrs: []string{iss.addr()}, Connections: 1, Timeout: 8 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
		waitSignedOn(t, l, slow+3*time.Second)
		if n := iss.accepted.Load(); n != 1 {
			t.Errorf("the issuer saw %d connections, want 1 (a sign-on abandoned and tried again)", n)
		}
	})
	t.Run("echo with a request in flight", func(t *testing.T) {
		t.Parallel()
		// Sign-on at once; echoes and authorizations slow.
		iss := startScriptedIssuer(t, func(mti, nm string) time.Duration {
			if mti == "0800" && nm == message.NMSignOn {
				return 0
			}
			return slow
		}, nil)
		l, err := Dial(Config{ID: "slow", Addrs: []string{iss.addr()}, Connections: 1, Timeout: 8 * time.Second,
			EchoEvery: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
		waitSignedOn(t, l, 5*time.Second)
		// An echo goes out while the purchase waits for its answer.
		rrn := "000000900001"
		stan, body := packedPurchase(t, l, rrn)
		a, err := l.SendPacked(context.Background(), "0200", stan, rrn, body, 0)
		if errors.Is(err, ErrConnectionLost) {
			t.Fatalf("the purchase answered within the timeout was failed as in doubt: %v (the echo closed its connection)", err)
		}
		if err != nil || a.RC != message.RCApproved {
			t.Fatalf("purchase: rc %q, err %v", a.RC, err)
		}
		echoes := 0
		for len(iss.received) > 0 {
			if m := <-iss.received; m == "0800/"+message.NMEcho {
				echoes++
			}
		}
		if echoes == 0 {
			t.Error("no echo was sent while the purchase waited: the test did not test the echo")
		}
		if n := iss.accepted.Load(); n != 1 {
			t.Errorf("the issuer saw %d connections, want 1", n)
		}
	})
}

// TestIssuerSignOffStopsTraffic: an issuer that signs off (its own 0800, DE 70 = 002)
// says it takes no more requests. Its sign-off was answered 0810/00 and the switch
// went on sending authorizations on the connection (each then unanswered: a timeout,
// a 91 and a reversal, where the stand-in could have answered). Signed off, the link
// is unavailable; it is used again once the issuer signs on (its own 0800/001), or
// once it approves the sign-on the switch sends it every echo_every meanwhile.
func TestIssuerSignOffStopsTraffic(t *testing.T) {
	var refuse atomic.Bool // the issuer refuses the switch's sign-ons (91)
	iss := startScriptedIssuer(t, func(string, string) time.Duration { return 0 }, func(mti, nm string) string {
		if mti == "0800" && nm == message.NMSignOn && refuse.Load() {
			return message.RCIssuerUnavailable
		}
		return message.RCApproved
	})
	l, err := Dial(Config{ID: "signoff", Addrs: []string{iss.addr()}, Connections: 1, Timeout: 300 * time.Millisecond,
		EchoEvery: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	waitSignedOn(t, l, 5*time.Second)
	send := func(rrn string) error {
		stan, body := packedPurchase(t, l, rrn)
		_, err := l.SendPacked(context.Background(), "0200", stan, rrn, body, 0)
		return err
	}
	if err := send("000000910001"); err != nil {
		t.Fatalf("before the sign-off: %v", err)
	}

	refuse.Store(true)
	iss.networkRequest(t, message.NMSignOff, "000001")
	iss.await(t, "0810/"+message.NMSignOff)
	if l.Up() {
		t.Fatal("the issuer signed off, and the link still reports a signed-on connection")
	}
	if err := send("000000910002"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a purchase after the issuer's sign-off: %v, want ErrUnavailable (not sent)", err)
	}

	// The issuer signs on again itself.
	iss.networkRequest(t, message.NMSignOn, "000002")
	iss.await(t, "0810/"+message.NMSignOn)
	if !l.Up() {
		t.Fatal("the issuer signed on again, and the link has no signed-on connection")
	}
	if err := send("000000910003"); err != nil {
		t.Fatalf("after the issuer's sign-on: %v", err)
	}

	// Signed off again; this time the switch's own sign-on brings it back once the
	// issuer answers it.
	iss.networkRequest(t, message.NMSignOff, "000003")
	iss.await(t, "0810/"+message.NMSignOff)
	if l.Up() {
		t.Fatal("signed off a second time, the link still reports a signed-on connection")
	}
	refuse.Store(false)
	waitSignedOn(t, l, 5*time.Second)
	if err := send("000000910004"); err != nil {
		t.Fatalf("after the switch signed on again: %v", err)
	}
	if n := iss.accepted.Load(); n != 1 {
		t.Errorf("the issuer saw %d connections, want 1", n)
	}
}

// TestDuplicateAnswerIsNotLate: an issuer that answers a request twice sends, the
// second time, an answer that matches no request. It went to OnLate, which the
// switch counts and logs as an answer after a timeout ("the transaction was already
// answered 91 and its reversal queued"), for a transaction answered 00 and never
// reversed. Only an answer to a request that timed out is late; the others are
// unmatched.
func TestDuplicateAnswerIsNotLate(t *testing.T) {
	late := make(chan string, 4)
	unmatched := make(chan string, 4)
	l, _ := dialSim(t, issuersim.Config{Faults: issuersim.Faults{Duplicate: 1}})
	l.OnLate = func(m *iso8583.Message) { rrn, _ := m.GetString(37); late <- rrn }
	l.OnUnmatched = func(m *iso8583.Message) { rrn, _ := m.GetString(37); unmatched <- rrn }
	rrn := "000000920001"
	stan, body := packedPurchase(t, l, rrn)
	if a, err := l.SendPacked(context.Background(), "0200", stan, rrn, body, 0); err != nil || a.RC != message.RCApproved {
		t.Fatalf("purchase: rc %q, err %v", a.RC, err)
	}
	select {
	case got := <-unmatched:
		if got != rrn {
			t.Fatalf("unmatched answer for %s, want %s", got, rrn)
		}
	case got := <-late:
		t.Fatalf("the second answer to %s, answered in time, was taken as late", got)
	case <-time.After(10 * time.Second):
		t.Fatal("the issuer's second answer was reported neither late nor unmatched within 10 s")
	}
	select {
	case got := <-late:
		t.Fatalf("the second answer to %s was also reported late", got)
	default:
	}
}
