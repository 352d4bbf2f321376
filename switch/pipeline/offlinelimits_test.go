package pipeline

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/registry"
)

// fakeLimits is a MerchantLimits that answers over and err, and records what the
// pipeline did with its holds.
type fakeLimits struct {
	j *fakeJournal

	mu       sync.Mutex
	over     string
	err      error
	checks   int
	counted  []string // RRN/amount counted
	kept     int
	released int
	// keptDone: the kept locks given up (LimitHold.Keep's done called).
	keptDone int
	// finalAtRelease: the counted capture's record was final (approved) in the
	// journal when its hold was released.
	finalAtRelease []bool
}

func (f *fakeLimits) HoldLimits(_ context.Context, m *registry.Merchant, rrn string, amount int64) (string, LimitHold, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checks++
	if f.err != nil {
		return "", nil, f.err
	}
	if f.over != "" {
		return f.over, nil, nil
	}
	return "", &fakeHold{f: f, rrn: rrn}, nil
}

// fakeHold is a fakeLimits' hold.
type fakeHold struct {
	f   *fakeLimits
	rrn string
}

func (h *fakeHold) Count(rrn string, _ time.Time, amount int64) {
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	h.f.counted = append(h.f.counted, fmt.Sprintf("%s/%d", rrn, amount))
}

func (h *fakeHold) Keep() func() {
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	h.f.kept++
	return func() {
		h.f.mu.Lock()
		defer h.f.mu.Unlock()
		h.f.keptDone++
	}
}

func (h *fakeHold) Release() {
	r, err := h.f.j.Get(h.rrn)
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	h.f.released++
	h.f.finalAtRelease = append(h.f.finalAtRelease, err == nil && r.Final() && r.Approved())
}

// TestCaptureOfflineMerchantLimits: an offline capture is checked against the
// merchant's daily, monthly and daily count limits (MerchantLimits): one that would
// pass the daily amount is refused 61 offline-over-daily-limit, the count 65
// offline-over-daily-count, journaled as refusals decided by the switch that take
// no duplicate key (the same upload is captured once the limits allow), nothing
// advised. Limits that cannot be checked (a cluster without a quorum) answer 91
// merchant-limits-unavailable, nothing captured, and the terminal's resend is
// captured later. A capture that passes is counted after its write ahead and its
// hold released only once its approved record is written; its final write refused,
// the hold's cluster-wide lock is kept, and given up once settle writes the approved
// record (not left to lapse). A merchant with no limits to check is not
// locked for a refused single limit, and an online purchase never asks.
func TestCaptureOfflineMerchantLimits(t *testing.T) {
	lim := &fakeLimits{}
	h := newHarness(t, withMerchantLimits(registry.Limits{Daily: 100_000, DailyCount: 10}), func(h *harness, c *Config) {
		lim.j = h.j
		c.MerchantLimits = lim
	})
	refusal := func(a answer, rc, reason string) {
		t.Helper()
		if a.RC != rc {
			t.Fatalf("answer %+v, want %s %s", a.Result, rc, reason)
		}
		r := h.record(a.RRN)
		if r.Approved() || r.Reason != reason || r.DecidedBy != "switch" || !r.Offline || r.DE7 != "" || r.DuplicateKey() != "" {
			t.Fatalf("refusal's record %+v, want %s by the switch, no duplicate key", r, reason)
		}
		if n := h.advices("0220", a.RRN); n != 0 {
			t.Fatalf("%d advices of a refused capture", n)
		}
	}
	tx := h.offlineSale(4000, h.clock.Now().Add(-time.Hour))
	lim.over = ReasonOfflineDailyLimit
	refusal(h.capture(tx, true), message.RCExceedsAmountLimit, ReasonOfflineDailyLimit)
	lim.over = ReasonOfflineMonthlyLimit
	refusal(h.capture(tx, true), message.RCExceedsAmountLimit, ReasonOfflineMonthlyLimit)
	lim.over = ReasonOfflineDailyCount
	refusal(h.capture(tx, true), message.RCExceedsFrequency, ReasonOfflineDailyCount)
	lim.over, lim.err = "", fmt.Errorf("the cluster-wide lock of merchant %s: %w", testMID, journal.ErrUnavailable)
	refusal(h.capture(tx, true), message.RCIssuerUnavailable, reasonOfflineLimitsUnchecked)
	if lim.released != 0 || len(lim.counted) != 0 {
		t.Fatalf("refusals held or counted: %+v", lim)
	}

	lim.err = nil
	a := h.capture(tx, true)
	if a.RC != "00" || !h.record(a.RRN).Approved() || h.advices("0220", a.RRN) != 1 {
		t.Fatalf("the same upload within the limits: %+v, want captured", a.Result)
	}
	if len(lim.counted) != 1 || lim.counted[0] != fmt.Sprintf("%s/4000", a.RRN) || lim.released != 1 || !lim.finalAtRelease[0] || lim.kept != 0 {
		t.Fatalf("hold of a capture: counted %v, released %d (final at release %v), kept %d; want counted once, released once its approval is written",
			lim.counted, lim.released, lim.finalAtRelease, lim.kept)
	}
	if again := h.capture(tx, true); again.RC != "00" || again.RRN != a.RRN || lim.checks != 5 {
		t.Fatalf("resend: %+v after %d checks, want the first answer without a check", again.Result, lim.checks)
	}

	// The final write refused: the capture stands (91, settled later), its hold's
	// cluster-wide lock kept.
	h.j.writeHook = func(rec *journal.Record, _ bool) error {
		if rec.Final() {
			return fmt.Errorf("no quorum: %w", journal.ErrUnavailable)
		}
		return nil
	}
	b := h.capture(h.offlineSale(500, h.clock.Now().Add(-time.Hour)), true)
	h.j.writeHook = nil
	if b.RC != "91" || lim.kept != 1 || lim.released != 2 || len(lim.counted) != 2 || lim.keptDone != 0 {
		t.Fatalf("final write refused: %+v, kept %d (given up %d), released %d, counted %v; want 91, kept, released, counted", b.Result, lim.kept, lim.keptDone, lim.released, lim.counted)
	}
	// The journal back, the approved record written by settle: the kept lock is
	// given up then, not left to lapse (5 minutes of the merchant's captures and
	// QR payments refused on every node).
	h.p.settle(context.Background())
	if r := h.record(b.RRN); !r.Final() || !r.Approved() || lim.keptDone != 1 {
		t.Fatalf("settled: record final %v approved %v, kept lock given up %d times; want once", r.Final(), r.Approved(), lim.keptDone)
	}

	// An online purchase does not ask.
	if p := h.do(h.purchase(700)); p.RC != "00" || lim.checks != 6 {
		t.Fatalf("purchase: %+v after %d checks; want approved without a check", p.Result, lim.checks)
	}
}

// TestCaptureOfflineSecurityDeclineTakesNoKey: an offline capture refused at its MAC
// check (here a caller that verified no MAC for a terminal with a MAC key) is
// journaled without the card's approval key, so the same approval uploaded later
// with a MAC that verifies is captured, not answered with that refusal. Before, the
// key was set before the MAC check and the refusal's record held it: every later
// upload of the approval got the security refusal.
func TestCaptureOfflineSecurityDeclineTakesNoKey(t *testing.T) {
	h := newHarness(t, withHSM, withTerminal(termMAC))
	tx := h.offlineSale(4200, h.clock.Now().Add(-time.Hour))
	tx.ICC = "9F26081122334455667788" + "9F270140" + "9F3602000C"
	bad := h.capture(tx, true) // no MAC
	if bad.RC == "00" {
		t.Fatalf("offline capture without its MAC: %+v, want refused", bad.Result)
	}
	if r := h.record(bad.RRN); r.CaptureKey != "" || r.Approved() {
		t.Fatalf("security refusal's record: capture key %q, approved %v; want no key", r.CaptureKey, r.Approved())
	}
	verified := *h.conn
	verified.MACVerified = true // as the cup adapter hands it over
	resp, err := h.p.CaptureOffline(context.Background(), &verified, h.frame(tx))
	if err != nil {
		t.Fatal(err)
	}
	if ok := h.answered(resp, true); ok.RC != "00" || ok.RRN == bad.RRN {
		t.Fatalf("the approval uploaded with its MAC verified: %+v, want captured (not the refusal %s)", ok.Result, bad.RRN)
	}
}
