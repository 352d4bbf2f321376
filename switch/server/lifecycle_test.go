package server

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/goroutines"
	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/termclient"
)

// moduleGoroutines returns the stacks of the goroutines running code of this module,
// other than the test's own.
func moduleGoroutines() []string { return goroutines.Running("github.com/switchyard/switchyard/") }

// TestRunLeavesNoGoroutine: after Run returns (its context cancelled), no goroutine
// running the switch's code is left, and no goroutine at all that the server started
// (goleak: badger's, fsnotify's, net/http's too). Both checks poll briefly, since a
// goroutine that has signalled its owner still takes a few instructions to exit;
// TestStoresCloseAfterEveryLoop checks that the loops are joined, not merely told to stop.
func TestRunLeavesNoGoroutine(t *testing.T) {
	before := goleak.IgnoreCurrent()
	if g := moduleGoroutines(); len(g) > 0 {
		t.Fatalf("goroutines of the switch before the test: %s", strings.Join(g, "\n\n"))
	}
	s, err := Open(demoConfig(t, t.TempDir()), zerolog.New(io.Discard), testDemoIssuer)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	// Some traffic, so that connections, the admin server and the pipeline run (the
	// sockets are bound by Open: a connection made before Run accepts it waits).
	c := dial(t, s, "ascii", message.DialectASCII)
	if r := send(t, c, message.DialectASCII, purchase(testCard(0), 1500)); r.RC != "00" {
		t.Fatalf("purchase: %+v", r)
	}
	_ = c.Close()
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := hc.Get("http://" + s.AdminAddr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
	deadline := time.Now().Add(5 * time.Second)
	for g := moduleGoroutines(); len(g) > 0; g = moduleGoroutines() {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutine(s) of the switch still running after Run returned:\n%s", len(g), strings.Join(g, "\n\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	goleak.VerifyNone(t, before)
}

// TestStoresCloseAfterEveryLoop: a loop of the server's group that still writes to the
// journal when told to stop (as the offline monitor may, through the registry) has
// returned, and its write succeeded, before the stores close.
func TestStoresCloseAfterEveryLoop(t *testing.T) {
	s := start(t, demoConfig(t, t.TempDir()), nil)
	stopping, release, wrote := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	s.loops.Go("test writer", func(ctx context.Context) error {
		<-ctx.Done()
		close(stopping)
		<-release
		err := s.Journal.PutDurable(context.Background(), []byte("test/lifecycle"), []byte("last write"))
		wrote <- err
		return err
	})
	var running int32 = -1
	var wroteBefore bool
	s.beforeStores = func() {
		running = s.loops.running.Load()
		select {
		case err := <-wrote:
			wroteBefore = err == nil
			if err != nil {
				t.Errorf("the loop's last write failed: %v", err)
			}
		default:
		}
	}
	go func() { <-stopping; close(release) }()
	s.Close()
	if running != 0 || !wroteBefore {
		t.Fatalf("stores closed with %d loop(s) still running (last write done before: %v)", running, wroteBefore)
	}
}

// TestRequestCarriedToItsEndAfterDrainStarts: the front-end cancels the context of the
// requests in progress when the drain starts; the pipeline still answers them as it
// would have (a batch settlement, whose journal scan watches the context, included).
func TestRequestCarriedToItsEndAfterDrainStarts(t *testing.T) {
	s := start(t, demoConfig(t, t.TempDir()), nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // as seen by a request in progress once the drain has started
	conn := &frontend.Conn{ID: 1, Listener: "ascii", Dialect: message.DialectASCII}
	process := func(tx termclient.Txn) termclient.Result {
		t.Helper()
		m, err := termclient.Build(tx, message.DialectASCII)
		if err != nil {
			t.Fatal(err)
		}
		body, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		resp, err := s.Pipeline.Process(ctx, conn, body)
		if err != nil {
			t.Fatalf("%s not answered: %v", tx.MTI, err)
		}
		if resp.Sent != nil {
			resp.Sent(true)
		}
		r, err := decodeResp(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := process(purchase(testCard(3), 700)); r.RC != "00" {
		t.Fatalf("purchase: %+v", r)
	}
	batch := termclient.Txn{MTI: "0500", ProcCode: message.PCBatch, TID: "T0000001", MID: "000000000000001", TLV: [][2]string{{"BT", "1,700,0,0"}}}
	if r := process(batch); r.RC != "00" {
		t.Fatalf("batch settlement: %+v", r)
	}
}

// TestOpenStartsNoLoop: Open builds the switch and starts none of its loops; a switch
// opened and closed without Start closes cleanly, and a Start after Close starts nothing.
func TestOpenStartsNoLoop(t *testing.T) {
	s, err := Open(demoConfig(t, t.TempDir()), zerolog.New(io.Discard), testDemoIssuer)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.loops.running.Load(); n != 0 || s.ready.Load() {
		t.Fatalf("after Open: %d loop(s) running, ready %v", n, s.ready.Load())
	}
	s.Close()
	s.Start()
	if n := s.loops.running.Load(); n != 0 {
		t.Fatalf("Start after Close started %d loop(s)", n)
	}
}
