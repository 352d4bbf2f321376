package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
)

// fakeSwitch answers every request 00 with an RRN of its own, except that it closes the
// first connection without answering once it has read breakAfter requests on it, as a
// killed switch does.
func fakeSwitch(t *testing.T, breakAfter int) (addr string, conns *atomic.Int32) {
	t.Helper()
	conns = new(atomic.Int32)
	var rrn atomic.Int64
	addr = serveConns(t, func(nc net.Conn) {
		n := conns.Add(1)
		br := bufio.NewReader(nc)
		for i := 1; ; i++ {
			body, err := frontend.ReadFrame(br, nil, 0xFFFF)
			if err != nil || n == 1 && i == breakAfter {
				return
			}
			var tid, stan string
			mti, err := message.Scan(body, message.DialectASCII, func(id int, v []byte) {
				switch id {
				case 11:
					stan = string(v)
				case 41:
					tid = string(v)
				}
			})
			if err != nil {
				return
			}
			resp, err := message.NewBuilder(message.DialectASCII, message.ResponseMTI(string(mti))).Set(11, stan).Set(41, tid).
				Set(37, fmt.Sprintf("%012d", rrn.Add(1))).Set(39, "00").Bytes(nil)
			if err != nil {
				return
			}
			if _, err := nc.Write(frontend.AppendFrame(nil, resp)); err != nil {
				return
			}
		}
	})
	return addr, conns
}

// TestFaultLoadReconnects: the fault run's load keeps going through a broken
// connection: the request the switch never answered stays unanswered, the connection is
// dialled again, and the answers after it are recorded with their RRNs.
func TestFaultLoadReconnects(t *testing.T) {
	addr, conns := fakeSwitch(t, 5)
	fleet, err := NewFleet(10, 100)
	if err != nil {
		t.Fatal(err)
	}
	l := &faultLoad{addr: addr, fleet: fleet, rate: 200, conns: 1}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	start := time.Now()
	go func() { defer close(done); l.run(ctx, time.Second) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		l.mu.Lock()
		n := len(l.txns)
		l.mu.Unlock()
		if conns.Load() >= 2 && n >= 30 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20 s: %d connections, %d requests", conns.Load(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	txns, lr := l.result(start, time.Now())
	// The 5th request is never answered; so are any written on the broken connection
	// before the load noticed (consecutive ones, on a slow machine).
	unanswered := 0
	for i, x := range txns {
		switch {
		case !x.answered():
			if i != 4+unanswered {
				t.Errorf("request %d (%s) unanswered, want only the 5th and those right after it", i+1, x.Key)
			}
			unanswered++
		case x.RC != "00" || x.RRN == "" || x.Answered.Before(x.Sent):
			t.Errorf("request %d: %+v", i+1, x)
		}
	}
	if unanswered == 0 || lr.Errors != int64(unanswered) || lr.Answered != int64(len(txns)-unanswered) {
		t.Errorf("%d unanswered, load result %d errors %d answered of %d", unanswered, lr.Errors, lr.Answered, len(txns))
	}
}
