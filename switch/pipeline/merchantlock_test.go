package pipeline

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/moov-io/iso8583"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/cluster"
	"github.com/switchyard/switchyard/switch/cluster/cjournal"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/registry"
)

// countingLocks is a MerchantLocker that counts the locks asked for, tells locking
// of each before it is taken, and takes it through next (nil: at once, unlock
// counted in unlocked and checked by onUnlock).
type countingLocks struct {
	mu       sync.Mutex
	asked    []string
	unlocked int
	locking  chan string
	next     MerchantLocker
	err      error
	onUnlock func()
}

func (c *countingLocks) LockMerchant(ctx context.Context, mid string) (unlock, keep func(), err error) {
	c.mu.Lock()
	c.asked = append(c.asked, mid)
	c.mu.Unlock()
	if c.locking != nil {
		c.locking <- mid
	}
	if c.err != nil {
		return nil, nil, c.err
	}
	if c.next != nil {
		return c.next.LockMerchant(ctx, mid)
	}
	return func() {
		if c.onUnlock != nil {
			c.onUnlock()
		}
		c.mu.Lock()
		c.unlocked++
		c.mu.Unlock()
	}, func() {}, nil
}

// calls returns how many locks were asked for and given back.
func (c *countingLocks) calls() (asked, unlocked int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.asked), c.unlocked
}

// withMerchantLocks makes the pipeline a cluster node's whose purchases near their
// merchant's limits (margin 10%) take the merchant's lock from l.
func withMerchantLocks(l MerchantLocker) func(h *harness, c *Config) {
	return func(_ *harness, c *Config) { c.MerchantLocks, c.MerchantLockWithin = l, 0.1 }
}

// locksTaken reads switchyard_purchase_merchant_locks_total{outcome}.
func locksTaken(h *harness, outcome string) float64 {
	return counterValue(h.p.metrics.MerchantLocks.WithLabelValues(outcome))
}

// TestPurchaseMerchantLockOnlyNearLimits: on a cluster node, a purchase far from its
// merchant's limits takes no merchant lock (no compare-and-set, no catch-up: the
// issue 14 CPU budget); one whose merchant's known usage plus its amount comes within
// the margin of the daily limit (the greater of 10% of it and its own amount) or of
// the daily count (one purchase) takes it, and gives it back only once its final
// record is in the journal; one already over on the known usage takes none (the
// rules decline it). switchyard_purchase_merchant_locks_total counts the locks taken.
func TestPurchaseMerchantLockOnlyNearLimits(t *testing.T) {
	approve := func(sent) (*iso8583.Message, error) { return issuerAnswer("00", "123456"), nil }

	// Far: 6.00 of a daily limit of 1,000.00, nothing taken yet.
	locks := &countingLocks{}
	h := newHarness(t, withRulePack, withMerchantLimits(registry.Limits{Daily: 100000}), withMerchantLocks(locks))
	h.bank.script(approve)
	if a := h.do(h.purchase(600)); a.RC != "00" {
		t.Fatalf("purchase far from the limit: %s (%s)", a.RC, h.record(a.RRN).Reason)
	}
	if asked, _ := locks.calls(); asked != 0 || locksTaken(h, "taken") != 0 {
		t.Fatalf("a purchase of 6.00 against a daily limit of 1,000.00 took the merchant's lock (%d asked, metric %v): every purchase would pay a compare-and-set", asked, locksTaken(h, "taken"))
	}

	// Near: 6.00 of a daily limit of 10.00 (its own amount is the margin).
	locks = &countingLocks{}
	h = newHarness(t, withRulePack, withMerchantLimits(registry.Limits{Daily: 1000}), withMerchantLocks(locks))
	h.bank.script(approve)
	var atUnlock []*journal.Record
	locks.onUnlock = func() {
		h.j.mu.Lock()
		defer h.j.mu.Unlock()
		for _, r := range h.j.recs {
			atUnlock = append(atUnlock, copyRecord(r))
		}
	}
	a := h.do(h.purchase(600))
	if a.RC != "00" {
		t.Fatalf("purchase near the limit: %s (%s)", a.RC, h.record(a.RRN).Reason)
	}
	if asked, unlocked := locks.calls(); asked != 1 || unlocked != 1 || locksTaken(h, "taken") != 1 {
		t.Fatalf("purchase of 6.00 against a daily limit of 10.00: %d locks asked, %d given back, metric %v; want 1, 1, 1", asked, unlocked, locksTaken(h, "taken"))
	}
	if len(atUnlock) != 1 || atUnlock[0].RRN != a.RRN || !atUnlock[0].Final() || !atUnlock[0].Approved() {
		t.Fatalf("the merchant's lock given back before the purchase's final record was journaled: journal then %+v", atUnlock)
	}
	// Over on the known usage: declined by the rules, no lock.
	if a := h.do(h.purchase(600)); a.RC != "61" || h.record(a.RRN).Reason != "merchant-daily-limit" {
		t.Fatalf("second purchase of 6.00: %s (%s), want 61 merchant-daily-limit", a.RC, h.record(a.RRN).Reason)
	}
	if asked, _ := locks.calls(); asked != 1 {
		t.Fatalf("a purchase over the limit on the known usage took the lock (%d asked)", asked)
	}

	// The daily count: 2 a day. The first (0 taken, this one and another unseen
	// fit) takes none; the second does.
	locks = &countingLocks{}
	h = newHarness(t, withRulePack, withMerchantLimits(registry.Limits{DailyCount: 2}), withMerchantLocks(locks))
	h.bank.script(approve)
	for i, want := range []int{0, 1} {
		if a := h.do(h.purchase(100)); a.RC != "00" {
			t.Fatalf("purchase %d of a daily count of 2: %s (%s)", i+1, a.RC, h.record(a.RRN).Reason)
		}
		if asked, _ := locks.calls(); asked != want {
			t.Fatalf("after purchase %d of a daily count of 2: %d locks asked, want %d", i+1, asked, want)
		}
	}

	// A single switch has no locker: nothing changes.
	h = newHarness(t, withRulePack, withMerchantLimits(registry.Limits{Daily: 1000}))
	h.bank.script(approve)
	if a := h.do(h.purchase(600)); a.RC != "00" || locksTaken(h, "taken") != 0 {
		t.Fatalf("single switch: %s, metric %v", a.RC, locksTaken(h, "taken"))
	}
}

// TestPurchaseMerchantLockUnavailable: a purchase near its merchant's limits whose
// lock cannot be taken (held elsewhere too long, no quorum) is answered 91
// merchant-limits-unavailable, as an offline capture is, without going to the
// issuer: its check would not be exact.
func TestPurchaseMerchantLockUnavailable(t *testing.T) {
	noQuorum := fmt.Errorf("cjournal: lock merchant: %w: %w", journal.ErrUnavailable, cluster.ErrNoQuorum)
	locks := &countingLocks{err: noQuorum}
	h := newHarness(t, withRulePack, withMerchantLimits(registry.Limits{Daily: 1000}), withMerchantLocks(locks))
	h.bank.script(func(sent) (*iso8583.Message, error) { return issuerAnswer("00", "123456"), nil })
	a := h.do(h.purchase(600))
	rec := h.record(a.RRN)
	if a.RC != "91" || rec.Reason != reasonMerchantLimitsUnavailable || !rec.Final() {
		t.Fatalf("purchase near the limit without the merchant's lock: %s (%q), want 91 %s", a.RC, rec.Reason, reasonMerchantLimitsUnavailable)
	}
	if n := len(h.bank.sent()); n != 0 {
		t.Fatalf("%d requests went to the issuer without the merchant's lock", n)
	}
	if locksTaken(h, "unavailable") != 1 || locksTaken(h, "taken") != 0 {
		t.Fatalf("metric: unavailable %v, taken %v; want 1, 0", locksTaken(h, "unavailable"), locksTaken(h, "taken"))
	}
}

// TestPurchaseMerchantLockNotHeldOverDuplicateWait: a purchase near its merchant's
// limits whose write ahead finds its key journaled first by another node (a
// DuplicateError: the terminal's resend after a failover, the first still at its
// issuer there) gives the merchant's lock back before it waits for the first's
// answer: nothing of it is approved or journaled by this path, and the wait (up to
// Config.DupWait, 10 s) under the lock would have made the merchant's other
// near-limit purchases, QR payments and offline captures 91 after 5 s. It still
// gets the first's answer. Before, the lock was held to the end of the wait.
func TestPurchaseMerchantLockNotHeldOverDuplicateWait(t *testing.T) {
	limits := withMerchantLimits(registry.Limits{Daily: 1000})
	locks := &countingLocks{}
	h := newHarness(t, withRulePack, limits, withMerchantLocks(locks))
	h.bank.script(func(sent) (*iso8583.Message, error) { return issuerAnswer("00", "123456"), nil })
	tx := h.purchase(600)
	orig := nodeTwo(t, tx)
	h.j.dupOf[journal.DupKey(orig.TID, orig.STAN, orig.DE7)] = orig.RRN
	h.j.remote(inFlight(orig))
	h.j.applyLater(orig, 3) // its answer comes here during the wait
	firstFinal := make(chan bool, 1)
	locks.onUnlock = func() {
		h.j.mu.Lock()
		defer h.j.mu.Unlock()
		firstFinal <- h.j.recs[orig.RRN].Final()
	}
	a := h.do(tx)
	if a.RC != "00" || a.RRN != orig.RRN || a.AuthCode != "123456" {
		t.Fatalf("duplicate of a purchase in flight on another node: %s %s auth %q, want the first's 00 %s", a.RC, a.RRN, a.AuthCode, orig.RRN)
	}
	if asked, unlocked := locks.calls(); asked != 1 || unlocked != 1 {
		t.Fatalf("%d merchant locks asked, %d given back; want 1, 1", asked, unlocked)
	}
	if <-firstFinal {
		t.Fatal("the merchant's lock was held while waiting for the first request's answer (given back only once it was final here)")
	}
	if n := len(h.bank.sent()); n != 0 {
		t.Fatalf("%d requests went to the issuer for a duplicate", n)
	}
}

// cardNode is a pipeline over a cluster node's journal, with the default rule pack
// whose counters fold the other nodes' records as the cluster journal applies them
// (the server's foldVelocity, here its first final versions only).
type cardNode struct {
	h     *harness
	cj    *cjournal.Journal
	locks *countingLocks
}

// openCardNode opens node num's journal under dir on the JetStream server nd and a
// pipeline over it whose merchant's limits are limits, its merchant locks taken
// through the journal (locked: false, none: the pipeline before merchant locks).
func openCardNode(t *testing.T, ctx context.Context, nd *cluster.Node, num int, dir string, limits registry.Limits, locked bool) *cardNode {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, "badger")).WithLogger(nil).WithSyncWrites(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	store, err := journal.Open(db, journal.Options{Dir: filepath.Join(dir, "journal"), RRNPrefix: strconv.Itoa(num), IndexDelay: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	engine, err := risk.New("../../rules", risk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = engine.Close() })
	fold := func(rec, prev *journal.Record, _ cjournal.Latest) {
		if !rec.Final() || prev != nil && prev.Final() {
			return
		}
		var in risk.Input
		if out, ok := RecordInput(rec, &in); ok {
			engine.Observe(&in, out)
		}
	}
	cj, err := cjournal.Open(ctx, nd, store, db, cjournal.Options{Node: num, Replicas: 1, AckTimeout: 3 * time.Second, OnRemote: fold, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatalf("node %d's cluster journal: %v", num, err)
	}
	t.Cleanup(func() { _ = cj.Close() })
	n := &cardNode{cj: cj, locks: &countingLocks{locking: make(chan string, 4), next: cj}}
	opts := []func(h *harness, c *Config){withMerchantLimits(limits), func(h *harness, c *Config) { h.store, c.Risk = cj, engine }}
	if locked {
		opts = append(opts, withMerchantLocks(n.locks))
	}
	n.h = newHarness(t, opts...)
	return n
}

// startJetStream starts an embedded JetStream server (standalone, R1) whose store
// is under base, closed when the test ends: the cluster the test's nodes share.
func startJetStream(t *testing.T, ctx context.Context, base string) *cluster.Node {
	t.Helper()
	nd, err := cluster.Start(ctx, cluster.Config{Mode: cluster.ModeEmbedded, Node: 1, Replicas: 1,
		Embedded: cluster.Embedded{ServerName: "n1", StoreDir: filepath.Join(base, "jetstream"), ClientAddr: "127.0.0.1:0"}}, cluster.Options{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nd.Close() })
	if err := nd.WaitJetStream(ctx); err != nil {
		t.Fatal(err)
	}
	return nd
}

// TestPurchaseMerchantLimitAcrossNodes: two nodes of a cluster (their journals on
// one JetStream server on loopback, each with the default rule pack) take a
// purchase of 6.00 each for one merchant whose daily limit (10.00) fits only one.
// Node 1's purchase is at its issuer (approved, not answered yet) when node 2's
// comes. Before merchant locks, node 2's rules read counters without node 1's
// approval, unjournaled yet, and both were approved: 12.00 against 10.00. Now each
// purchase, near the limit, takes the merchant's cluster-wide lock; node 2 waits for
// it until node 1's purchase is journaled, catches up (its counters fold node 1's
// approval) and is declined 61 merchant-daily-limit. Exactly one is approved.
func TestPurchaseMerchantLimitAcrossNodes(t *testing.T) {
	testPurchaseMerchantLimitAcrossNodes(t, true)
}

func testPurchaseMerchantLimitAcrossNodes(t *testing.T, locked bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	base := t.TempDir()
	nd := startJetStream(t, ctx, base)
	limits := registry.Limits{Daily: 1000}
	n1 := openCardNode(t, ctx, nd, 1, filepath.Join(base, "node1"), limits, locked)
	n2 := openCardNode(t, ctx, nd, 2, filepath.Join(base, "node2"), limits, locked)
	entered, release := n1.h.gateIssuer()
	n2.h.bank.script(func(sent) (*iso8583.Message, error) { return issuerAnswer("00", "222222"), nil })

	first := make(chan answer, 1)
	go func() { first <- n1.h.do(n1.h.purchase(600)) }()
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("node 1's purchase did not reach its issuer")
	}
	tx2 := n2.h.purchase(600)
	tx2.TID = "T0000002"
	second := make(chan answer, 1)
	go func() { second <- n2.h.do(tx2) }()
	// Node 2's purchase asks for the merchant's lock (node 1 holds it), or, without
	// locks, is answered at once.
	var a2 answer
	answered := false
	select {
	case <-n2.locks.locking:
	case a2 = <-second:
		answered = true
	case <-ctx.Done():
		t.Fatal("node 2's purchase neither asked for the merchant's lock nor was answered")
	}
	close(release)
	a1 := <-first
	if !answered {
		a2 = <-second
	}
	if a1.RC != "00" {
		t.Fatalf("node 1's purchase: %s, want 00", a1.RC)
	}
	rec2, err := n2.cj.Get(a2.RRN)
	if err != nil {
		t.Fatal(err)
	}
	if a2.RC != "61" || rec2.Reason != "merchant-daily-limit" {
		t.Fatalf("node 2's purchase of 6.00, taken while node 1's of 6.00 was at its issuer: %s (%q), want 61 merchant-daily-limit: both approved against a daily limit of 10.00",
			a2.RC, rec2.Reason)
	}
	if asked, _ := n1.locks.calls(); asked != 1 {
		t.Fatalf("node 1: %d merchant locks asked, want 1", asked)
	}
}
