package termclient

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/moov-io/iso8583"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
)

// fakeNode accepts connections on loopback; each request body it reads goes to got,
// and answer decides whether it answers (a 0210 with RC 00) or drops the connection.
func fakeNode(t *testing.T, answer bool, got chan<- []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				r := bufio.NewReader(nc)
				for {
					body, err := frontend.ReadFrame(r, nil, 0xFFFF)
					if err != nil {
						return
					}
					got <- body
					if !answer {
						return // the node dies with the request
					}
					req := iso8583.NewMessage(message.SpecASCII)
					if err := req.Unpack(body); err != nil {
						return
					}
					resp := iso8583.NewMessage(message.SpecASCII)
					resp.MTI("0210")
					for _, id := range []int{7, 11, 41} {
						v, _ := req.GetString(id)
						_ = resp.Field(id, v)
					}
					_ = resp.Field(39, "00")
					b, err := message.Pack(resp, nil)
					if err != nil {
						return
					}
					_, _ = nc.Write(append([]byte{byte(len(b) >> 8), byte(len(b))}, b...))
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestFailoverResendsTheSameRequest: the first node takes the request and dies; the
// terminal resends the very same bytes to the next node and takes its answer.
func TestFailoverResendsTheSameRequest(t *testing.T) {
	gotA, gotB := make(chan []byte, 4), make(chan []byte, 4)
	a, b := fakeNode(t, false, gotA), fakeNode(t, true, gotB)
	f := NewFailover([]string{a, b}, 0, message.DialectASCII, nil)
	defer f.Close()
	m, err := Build(Txn{PAN: "4761739001010119", Amount: 1000, Expiry: "2912", TID: "T0000001", MID: "000000000000001", STAN: "000042",
		Time: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}, message.DialectASCII)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, node, sends, err := f.Send(ctx, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Decode(resp)
	if err != nil || r.RC != "00" || r.STAN != "000042" || node != 1 || sends != 2 {
		t.Fatalf("answer %+v (%v) from node %d after %d sends; want 00 to STAN 000042 from node 1 after 2", r, err, node, sends)
	}
	first, resent := <-gotA, <-gotB
	if !bytes.Equal(first, resent) {
		t.Fatalf("the resend differs from the first send:\n%q\n%q", first, resent)
	}
}

// TestFailoverNoNode: no node listens; Send gives up when its context ends and says so.
func TestFailoverNoNode(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	f := NewFailover([]string{dead, dead}, 1, message.DialectASCII, nil)
	m, err := Build(Txn{PAN: "4761739001010119", Amount: 1000, Expiry: "2912", TID: "T0000001", MID: "000000000000001", STAN: "000043"}, message.DialectASCII)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, node, sends, err := f.Send(ctx, m, nil)
	if err == nil || node != -1 || sends != 0 || !strings.Contains(err.Error(), "T0000001/000043: no answer from any of 2 switch nodes") {
		t.Fatalf("node %d, %d sends, %v", node, sends, err)
	}
	if _, _, _, err := NewFailover(nil, 0, message.DialectASCII, nil).Send(ctx, m, nil); err == nil {
		t.Fatal("a terminal without addresses sent")
	}
}
