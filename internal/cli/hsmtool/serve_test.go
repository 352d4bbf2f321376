package hsmtool

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/hsm/payshield"
)

// TestServe starts hsm serve on a free port, asks it NC and stops it.
func TestServe(t *testing.T) {
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var errb bytes.Buffer
	go func() { done <- serve(ctx, []string{"--demo", "--addr", "127.0.0.1:0"}, pw, &errb); pw.Close() }()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "listening on ") {
		t.Fatalf("first line %q, %v (%s)", line, err, errb.String())
	}
	go io.Copy(io.Discard, pr)
	c, err := net.Dial("tcp", strings.TrimSpace(strings.TrimPrefix(line, "listening on ")))
	if err != nil {
		t.Fatal(err)
	}
	frame, _ := payshield.AppendRequest(nil, payshield.Request{Header: "0001", Code: "NC"})
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write(frame)
	msg, err := payshield.ReadFrame(c, nil)
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	if r, err := payshield.ParseResponse(msg, 4); err != nil || r.Code != "ND" || r.ErrCode != "00" || !strings.HasSuffix(string(r.Body), payshield.Firmware) {
		t.Fatalf("NC: %+v %v", r, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
}

// TestServeNeedsAnLMK: without an LMK source and outside demo mode it refuses.
func TestServeNeedsAnLMK(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Run([]string{"serve", "--addr", "127.0.0.1:0"}, &out, &errb); code != ExitError || !strings.Contains(errb.String(), "LMK") {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
}
