package hsmtool

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"net"
	"os"
	"path/filepath"
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

// TestServeVariant: hsm serve --lmk-scheme variant --demo holds the Thales test
// LMK: BU of the X9.24 test key as a BDK (key type 009: LMK pair 28-29) under it
// answers the key's check value; the test LMK in a file is refused outside demo.
func TestServeVariant(t *testing.T) {
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var errb bytes.Buffer
	go func() {
		done <- serve(ctx, []string{"--lmk-scheme", "variant", "--demo", "--addr", "127.0.0.1:0"}, pw, &errb)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "listening on ") {
		t.Fatalf("first line %q, %v (%s)", line, err, errb.String())
	}
	go io.Copy(io.Discard, pr)
	pair, _ := hex.DecodeString(payshield.TestLMK[14])
	key, _ := hex.DecodeString("0123456789ABCDEFFEDCBA9876543210")
	enc, err := payshield.VariantEncrypt(pair, 0, 'U', key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", strings.TrimSpace(strings.TrimPrefix(line, "listening on ")))
	if err != nil {
		t.Fatal(err)
	}
	frame, _ := payshield.AppendRequest(nil, payshield.Request{Header: "0001", Code: "BU", Body: []byte("091U" + strings.ToUpper(hex.EncodeToString(enc)))})
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write(frame)
	msg, err := payshield.ReadFrame(c, nil)
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	if r, err := payshield.ParseResponse(msg, 4); err != nil || r.Code != "BV" || r.ErrCode != "00" || !strings.HasPrefix(string(r.Body), "08D7B4") {
		t.Fatalf("BU: %+v %v", r, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}

	f := filepath.Join(t.TempDir(), "lmk")
	if err := os.WriteFile(f, []byte(strings.Join(payshield.TestLMK[:], "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	errb.Reset()
	if code := Run([]string{"serve", "--lmk-scheme", "variant", "--lmk-file", f, "--addr", "127.0.0.1:0"}, &out, &errb); code != ExitError || !strings.Contains(errb.String(), "test LMK") {
		t.Fatalf("test LMK outside demo: exit %d: %s", code, errb.String())
	}
}
