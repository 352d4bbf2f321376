package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/registry"
)

// failingFinals is a journal whose writes of an offline capture's final version fail
// with err while it is set (a disk error of the log's segment, not
// journal.ErrUnavailable: the kind of failure answered 96), and whose other writes go
// to the journal under it.
type failingFinals struct {
	Journal
	mu     sync.Mutex
	err    error
	failed int // final writes of captures refused
}

func (j *failingFinals) Write(ctx context.Context, rec *journal.Record, first, durable bool) error {
	j.mu.Lock()
	err := j.err
	if err != nil && rec.Offline && rec.Final() {
		j.failed++
		j.mu.Unlock()
		return fmt.Errorf("journal: record %s: %w", rec.RRN, err)
	}
	j.mu.Unlock()
	return j.Journal.Write(ctx, rec, first, durable)
}

func (j *failingFinals) fail(err error) {
	j.mu.Lock()
	j.err = err
	j.mu.Unlock()
}

// openStore opens a real journal (Badger and its log) in a temporary directory,
// closed when the test ends.
func openStore(t *testing.T) *journal.Store {
	t.Helper()
	dir := t.TempDir()
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, "db")).WithLogger(nil).WithSyncWrites(false))
	if err != nil {
		t.Fatal(err)
	}
	s, err := journal.Open(db, journal.Options{Dir: filepath.Join(dir, "journal")})
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// eio is the injected failure: the log's segment write failing with an I/O error.
var eio = &os.PathError{Op: "write", Path: "journal/00000001.seg", Err: syscall.EIO}

// TestCaptureOfflineFinalWriteFails: an offline capture whose final (approved) write
// fails with another error than an unavailable journal (a disk's I/O error) is
// answered 96 and stands from its write ahead; the running switch writes its
// approval by itself once the journal takes writes again (the housekeeping's 5 s
// tick, started here as the server starts it), without a restart: the upload's
// resend, which waits for the open record, is answered 00 with the first RRN and
// approval code, nothing captured or advised twice. The journal says what happened
// (an in_doubt event naming the 96 and the error), and
// switchyard_offline_capture_final_writes_total counts it failed, then written. Over
// a real journal in a temporary directory; before, the record stayed open until a
// restart's recovery and every resend was answered 91 duplicate-in-flight.
func TestCaptureOfflineFinalWriteFails(t *testing.T) {
	store := &failingFinals{Journal: openStore(t)}
	h := newHarness(t, withTerminal(termNoKey), func(h *harness, c *Config) {
		h.store = store
		c.DupWait = 15 * time.Second // a resend waits for the record across a tick
	})
	h.p.Start()
	t.Cleanup(h.p.Stop)
	store.fail(eio)
	tx := h.offlineSale(4200, h.clock.Now().Add(-time.Hour))
	a := h.capture(tx, true)
	if a.RC != "96" || a.Reason != "system-malfunction" || a.RRN == "" || h.advices("0220", a.RRN) != 1 {
		t.Fatalf("final write failing: %+v, %d advices; want 96 system-malfunction, the advice queued", a.Result, h.advices("0220", a.RRN))
	}
	if r, err := store.Get(a.RRN); err != nil || r.Final() || len(r.SealedPAN) == 0 {
		t.Fatalf("record after the failure %+v (%v): want the write ahead, open, its card sealed", r, err)
	}

	store.fail(nil) // the disk recovers; the switch keeps running
	again := h.capture(tx, true)
	if again.RC != "00" || again.RRN != a.RRN || strings.TrimSpace(again.AuthCode) != "Y1" {
		t.Fatalf("resend once the journal takes writes again, no restart: %+v; want 00 with %s (the capture's)", again.Result, a.RRN)
	}
	r, err := store.Get(a.RRN)
	if err != nil || !r.Approved() || r.Reversed() || r.DecidedBy != DecidedByCard || r.State != journal.StateAnswered {
		t.Fatalf("record after the switch wrote it: %+v (%v); want approved by the card, answered", r, err)
	}
	doubt := ""
	for _, e := range r.Events {
		if e.State == journal.StateInDoubt {
			doubt = e.Note
		}
	}
	if !strings.Contains(doubt, "answered 96 system-malfunction") || !strings.Contains(doubt, "input/output error") {
		t.Errorf("in_doubt event %q: want the 96 the terminal had and the error", doubt)
	}
	if n := h.advices("0220", a.RRN); n != 1 || len(h.q.all()) != 1 {
		t.Errorf("%d advices of the capture, %d items queued; want the one", n, len(h.q.all()))
	}
	m := h.p.metrics.OfflineFinalWrites
	if f, w := testutil.ToFloat64(m.WithLabelValues("failed")), testutil.ToFloat64(m.WithLabelValues("written")); f != 1 || w != 1 {
		t.Errorf("switchyard_offline_capture_final_writes_total failed %v written %v, want 1 and 1", f, w)
	}
	if n := h.p.unsettled.len(); n != 0 {
		t.Errorf("%d records still kept", n)
	}
}

// TestCaptureOfflineFinalWriteRetried: the approval of an offline capture whose
// final write failed (96) is kept while the journal goes on failing (settle tries it
// again and keeps it, the record open and in the open set, so that the recovery
// checkpoint does not pass it), and written once the journal takes it. On a cluster's
// node (withNode, record locks): a resend to another node meanwhile waits for the
// record and is answered 91 duplicate-in-flight; the approval is written under the
// record's cluster-wide lock, the merchant's lock the capture kept (LimitHold.Keep) is
// given up then, and the other node's resend is answered 00 with the first RRN.
// Before, the approval was dropped and the record stayed open until a restart.
func TestCaptureOfflineFinalWriteRetried(t *testing.T) {
	lim := &fakeLimits{}
	var locksMu sync.Mutex
	locked := map[string]int{} // RRN -> locks taken and given back
	lock := func(_ context.Context, rrn string) (func(), error) {
		locksMu.Lock()
		locked[rrn]++
		locksMu.Unlock()
		return func() {}, nil
	}
	short := func(_ *harness, c *Config) { c.DupWait = 20 * time.Millisecond }
	n1 := newHarness(t, withNode("1", nil), withLocks(lock), withMerchantLimits(registry.Limits{Daily: 100_000}), short,
		func(h *harness, c *Config) {
			lim.j = h.j
			c.MerchantLimits = lim
		})
	n2 := newHarness(t, withNode("2", n1), withMerchantLimits(registry.Limits{Daily: 100_000}), short)
	n1.j.writeHook = func(rec *journal.Record, _ bool) error {
		if rec.Offline && rec.Final() {
			return eio
		}
		return nil
	}
	tx := n1.offlineSale(900, n1.clock.Now().Add(-time.Hour))
	a := n1.capture(tx, true)
	if a.RC != "96" || lim.kept != 1 || lim.keptDone != 0 {
		t.Fatalf("final write failing on node 1: %+v, merchant lock kept %d (given up %d); want 96, kept", a.Result, lim.kept, lim.keptDone)
	}
	if b := n2.capture(tx, true); b.RC != "91" || b.Reason != "duplicate-in-flight" || b.RRN != a.RRN {
		t.Fatalf("resend to node 2 while the record is open: %+v; want 91 duplicate-in-flight naming %s", b.Result, a.RRN)
	}

	n1.p.settle(t.Context()) // the journal still failing
	if r := n1.record(a.RRN); r.Final() {
		t.Fatalf("record written while the journal fails: %+v", r)
	}
	if n := n1.p.unsettled.len(); n != 1 || n1.p.open.min() != a.RRN || lim.keptDone != 0 {
		t.Fatalf("after a failed try: %d records kept, oldest open %q, merchant lock given up %d; want the approval kept, %s open, the lock kept",
			n, n1.p.open.min(), lim.keptDone, a.RRN)
	}

	n1.j.writeHook = nil
	n1.p.settle(t.Context())
	r := n1.record(a.RRN)
	if !r.Approved() || r.Reversed() || r.DecidedBy != DecidedByCard || !hasState(r, journal.StateInDoubt) {
		t.Fatalf("record once the journal takes it: %+v; want approved by the card, with its in_doubt event", r)
	}
	if n := n1.p.unsettled.len(); n != 0 || n1.p.open.min() == a.RRN || lim.keptDone != 1 {
		t.Errorf("after the write: %d records kept, oldest open %q, merchant lock given up %d; want none, not open, given up once",
			n, n1.p.open.min(), lim.keptDone)
	}
	locksMu.Lock()
	if locked[a.RRN] != 2 {
		t.Errorf("record lock taken %d times, want by each try of settle (2)", locked[a.RRN])
	}
	locksMu.Unlock()
	if b := n2.capture(tx, true); b.RC != "00" || b.RRN != a.RRN {
		t.Fatalf("resend to node 2 once written: %+v; want 00 with %s", b.Result, a.RRN)
	}
	if n := n1.advices("0220", a.RRN); n != 1 {
		t.Errorf("%d advices, want 1", n)
	}
}

// TestCaptureOfflineApprovalTimedWhenWritten: an offline capture whose final write
// failed is approved in the journal when the housekeeping writes it, and its answered
// event (journal.Record.DecidedAt) says that time, not the failed write's. Settlement
// pays an approval decided more than 10 minutes after its receipt in the day it was
// decided: one journaled two hours late, after its day's cut-off, kept the failed
// write's time, counted in its own day's report (whose file had been written without
// it) and was paid by no file.
func TestCaptureOfflineApprovalTimedWhenWritten(t *testing.T) {
	h := newHarness(t, withTerminal(termNoKey))
	h.j.writeHook = func(rec *journal.Record, _ bool) error {
		if rec.Offline && rec.Final() {
			return eio
		}
		return nil
	}
	failedAt := h.clock.Now()
	a := h.capture(h.offlineSale(700, failedAt.Add(-time.Minute)), true)
	if a.RC != "96" {
		t.Fatalf("final write failing: %+v; want 96", a.Result)
	}
	h.clock.Advance(2 * time.Hour)
	h.p.settle(t.Context()) // the journal still failing
	h.clock.Advance(time.Minute)
	h.j.writeHook = nil
	h.p.settle(t.Context())
	r := h.record(a.RRN)
	if !r.Approved() || !hasState(r, journal.StateInDoubt) {
		t.Fatalf("record once the journal takes it: %+v; want approved, with its in_doubt event", r)
	}
	if at, ok := r.DecidedAt(); !ok || !at.Equal(h.clock.Now().UTC()) {
		t.Errorf("approval decided at %s (%v), want %s, when it was journaled (the failure was at %s)", at, ok, h.clock.Now().UTC(), failedAt.UTC())
	}
	for i := 1; i < len(r.Events); i++ {
		if r.Events[i].At.Before(r.Events[i-1].At) {
			t.Errorf("events out of order: %+v", r.Events)
		}
	}
}
