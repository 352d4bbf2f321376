package payshield_test

import (
	"bufio"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/payshield"
)

// TestClientAnswerOfUnknownHeader: an HSM answering with a header no command was
// given (its header length not the client's, or an answer sent twice) fails the
// command at once, with an error that says so, and the connection is closed (nothing
// on it can be matched any more). The client dropped such answers: each command
// waited out its timeout, reported as a timeout, on a connection kept open.
func TestClientAnswerOfUnknownHeader(t *testing.T) {
	good, _ := serve(t, payshield.ServerOptions{})
	e := newEnv(t, payshield.ClientOptions{Addrs: []string{good}}) // the demo keys
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := bufio.NewReader(c)
				for {
					msg, err := payshield.ReadFrame(r, nil)
					if err != nil {
						return
					}
					req, err := payshield.ParseRequest(msg, payshield.DefaultHeaderLength)
					if err != nil {
						return
					}
					rc, _ := payshield.ResponseCode(req.Code)
					// The header shifted by one character, as an HSM with a header
					// length of 5 reads and echoes it.
					out, _ := payshield.AppendResponse(nil, payshield.Response{Header: req.Header[1:] + req.Code[:1], Code: rc, ErrCode: "00"})
					if _, err := c.Write(out); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	const timeout = 3 * time.Second
	c, err := payshield.NewClient(payshield.ClientOptions{Addrs: []string{ln.Addr().String()}, Store: e.store, Timeout: timeout, CommandDeadline: timeout, HealthEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	start := time.Now()
	_, err = c.GenerateMAC(e.ctx, hsm.MACRequest{Key: hsm.KeyRef{ID: "T0000002.TAK"}, Data: []byte("data")})
	took := time.Since(start)
	if !errors.Is(err, hsm.ErrUnavailable) || !strings.Contains(err.Error(), "header") {
		t.Errorf("M6 answered under another header: %v, want ErrUnavailable naming the header", err)
	}
	if took > timeout/3 {
		t.Errorf("M6 answered under another header failed after %s, want at once (timeout %s)", took, timeout)
	}
}
