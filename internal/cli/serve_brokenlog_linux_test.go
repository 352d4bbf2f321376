package cli

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testfault"
	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/server"
)

// TestServeExitsOnBrokenJournalLog: once the journal's log breaks under `serve`
// (its active segment turns unwritable, as with a disk that turns read-only), serve
// logs one error line saying so, drains (the listeners closed, "switch stopped")
// and returns 75 (ExitRestart) for its supervisor to start it again, without a
// signal. Before, it stayed up answering 96 until a person restarted it.
func TestServeExitsOnBrokenJournalLog(t *testing.T) {
	sv := startServeForBreak(t, "")
	if rc := sv.purchase(t, 1000); rc != "00" {
		t.Fatalf("purchase before the break answered %q, want 00", rc)
	}
	testfault.MakeSegmentsReadOnly(t, server.JournalDir(sv.dataDir))
	if rc := sv.purchase(t, 1100); rc == "00" {
		t.Fatalf("purchase after the break approved")
	}
	select {
	case <-sv.exited:
		if sv.code != 75 { // ExitRestart
			t.Fatalf("serve returned %d after the journal's log broke, want 75\n%s", sv.code, sv.logs.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("serve still running 60 s after the journal's log broke\n%s", sv.logs.String())
	}
	logs := sv.logs.String()
	if n := strings.Count(logs, "the journal's log is broken"); n != 1 {
		t.Errorf("%d lines say the journal's log is broken, want 1:\n%s", n, logs)
	}
	for _, want := range []string{`"exit_status":75`, "exiting with status 75", "supervisor", "reverses what the issuer approved", "start it again by hand"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log does not say %q:\n%s", want, logs)
		}
	}
	if !strings.Contains(logs, "switch stopped") && !strings.Contains(logs, "drain incomplete") {
		t.Errorf("serve returned without draining:\n%s", logs)
	}
	if code, _, _ := runCLI(t, nil, "term", "purchase", "--pan", "4761739001010119", "--amount", "1200", "--addr", sv.ascii); code == 0 {
		t.Errorf("a terminal still reaches %s after serve returned", sv.ascii)
	}
}

// TestServeKeepsServingOnBrokenLogWhenTold: with journal.exit_on_broken_log false,
// a switch whose journal log broke stays up as before: it answers the next
// purchase (not approved), /readyz says the log is broken, and only its context's
// end stops it, with status 0.
func TestServeKeepsServingOnBrokenLogWhenTold(t *testing.T) {
	sv := startServeForBreak(t, "exit_on_broken_log: false")
	if rc := sv.purchase(t, 1000); rc != "00" {
		t.Fatalf("purchase before the break answered %q, want 00", rc)
	}
	testfault.MakeSegmentsReadOnly(t, server.JournalDir(sv.dataDir))
	if rc := sv.purchase(t, 1100); rc == "00" {
		t.Fatalf("purchase after the break approved")
	}
	// The answer came after the journal's write failed: the log is broken by now.
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + sv.admin + "/readyz")
	if err != nil {
		t.Fatalf("/readyz after the break: %v\n%s", err, sv.logs.String())
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "journal log broken") {
		t.Fatalf("/readyz after the break: %d %q, want 503 journal log broken", resp.StatusCode, b)
	}
	if rc := sv.purchase(t, 1200); rc == "00" || rc == "" {
		t.Fatalf("second purchase after the break answered %q, want an answer without approval", rc)
	}
	sv.cancel()
	select {
	case <-sv.exited:
		if sv.code != 0 {
			t.Fatalf("serve returned %d, want 0 (stopped by its context, not by the broken log)\n%s", sv.code, sv.logs.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not stop within 60 s of its context's end")
	}
	if logs := sv.logs.String(); strings.Contains(logs, "exiting with status 75") {
		t.Errorf("serve told to stay up logged an exit:\n%s", logs)
	}
}

// serveForBreak is a demo switch run by `serve` in this process (so that the test
// can replace its journal segment's descriptor).
type serveForBreak struct {
	dataDir, ascii, admin string
	logs                  *lockedBuffer
	cancel                context.CancelFunc
	exited                chan struct{} // closed once serve returned code
	code                  int
}

// purchase sends one purchase of amount minor units to the ascii listener with
// term and returns its response code ("" when there was no answer).
func (sv *serveForBreak) purchase(t *testing.T, amount int) string {
	t.Helper()
	_, out, errs := runCLI(t, nil, "term", "purchase", "--pan", "4761739001010119",
		"--amount", strconv.Itoa(amount), "--addr", sv.ascii)
	i := strings.Index(out+errs, "RC=")
	if i < 0 || len(out+errs) < i+5 {
		return ""
	}
	return (out + errs)[i+3 : i+5]
}

// startServeForBreak starts `serve` with a demo configuration on loopback whose
// journal section holds journalKeys besides min_free_mb -1, and waits for its
// banner's addresses.
func startServeForBreak(t *testing.T, journalKeys string) *serveForBreak {
	t.Helper()
	dir := t.TempDir()
	sv := &serveForBreak{dataDir: filepath.Join(dir, "data"), logs: &lockedBuffer{}, exited: make(chan struct{})}
	if journalKeys != "" {
		journalKeys = ", " + journalKeys
	}
	cfgFile := filepath.Join(dir, "switchyard.yaml")
	yaml := fmt.Sprintf(`demo: true
data_dir: %s
rules_dir: %s
admin: {addr: 127.0.0.1:0}
listeners:
  - {name: ascii, addr: 127.0.0.1:0}
demo_issuer: {addr: 127.0.0.1:0}
security: {card_hash_key_hex: %s}
journal: {min_free_mb: -1%s}
`, sv.dataDir, filepath.Join(dir, "rules"), config.DemoCardHashKey, journalKeys)
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sv.cancel = cancel
	pr, pw := io.Pipe()
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	keep := func(k string) string { return map[string]string{"GOGC": "100", "GOMEMLIMIT": "off"}[k] }
	go func() {
		sv.code = Main(&Env{Stdin: strings.NewReader(""), Stdout: sv.logs, Stderr: pw, Ctx: ctx, Getenv: keep}, []string{"serve", "--config", cfgFile})
		close(sv.exited)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-sv.exited:
		case <-time.After(60 * time.Second):
			t.Error("serve did not stop within 60 s of its context's end")
		}
	})
	deadline := time.After(60 * time.Second)
	for sv.ascii == "" || sv.admin == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				<-sv.exited
				t.Fatalf("serve ended before its banner (exit %d)\n%s", sv.code, sv.logs.String())
			}
			if a, found := strings.CutPrefix(strings.TrimSpace(l), "terminals (ascii):"); found {
				sv.ascii = strings.TrimSpace(a)
			}
			if a, found := strings.CutPrefix(strings.TrimSpace(l), "admin:"); found {
				a = strings.TrimPrefix(strings.TrimSpace(a), "http://")
				sv.admin, _, _ = strings.Cut(a, " ")
			}
		case <-deadline:
			t.Fatal("no banner within 60 s")
		}
	}
	go func() { // the rest of the banner, unread, must not block serve's writes
		for range lines {
		}
	}()
	return sv
}

// lockedBuffer is a bytes.Buffer safe for serve's log writes and the test's reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
