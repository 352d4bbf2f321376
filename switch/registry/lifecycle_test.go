package registry

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

func TestDemoFleet(t *testing.T) {
	f := newFixture(t)
	// The fixture loads testLoadTerminals load terminals; the full fleet adds the rest.
	if n, err := LoadDemo(f.reg); err != nil || n != DemoLoadTerminals-testLoadTerminals {
		t.Fatalf("LoadDemo after LoadDemoFleet(%d) = %d, %v; want %d created", testLoadTerminals, n, err, DemoLoadTerminals-testLoadTerminals)
	}
	if _, err := LoadDemoFleet(f.reg, MaxDemoLoadTerminals+1); err == nil {
		t.Errorf("LoadDemoFleet(%d) took it", MaxDemoLoadTerminals+1)
	}
	if n := len(f.reg.Merchants(MerchantFilter{})); n != 4 {
		t.Errorf("demo merchants = %d, want 4", n)
	}
	if n := len(f.reg.Terminals(TerminalFilter{})); n != 4+DemoLoadTerminals {
		t.Errorf("demo terminals = %d, want %d", n, 4+DemoLoadTerminals)
	}
	if n := len(f.reg.Terminals(TerminalFilter{MerchantID: "000000000000003"})); n != 2000 {
		t.Errorf("load terminals = %d, want 2000", n)
	}
	for id, want := range map[string]MerchantStatus{"000000000000001": MerchantActive, "000000000000002": MerchantActive, "000000000000003": MerchantActive, "000000000000009": MerchantFrozen} {
		if m, ok := f.reg.Merchant(id); !ok || m.Status != want {
			t.Errorf("merchant %s = %+v, want status %s", id, m, want)
		}
	}
	m3, _ := f.reg.Merchant("000000000000003")
	if m3.Tier != TierEnterprise || m3.Limits != (Limits{}) {
		t.Errorf("load merchant tier %s limits %+v, want enterprise without limits", m3.Tier, m3.Limits)
	}
	t2, _ := f.reg.Terminal("T0000002")
	if t2.Kind != KindSoftPOS || !t2.MACRequired() || t2.Keys.TAK != "T0000002.TAK" || t2.Keys.PINMode != PINModeDUKPT || t2.Location.RadiusM != 5000 || t2.Binding.ICCID != "" {
		t.Errorf("T0000002 = %+v", t2)
	}
	t3, _ := f.reg.Terminal("T0000003")
	if t3.Status != TerminalSuspended {
		t.Errorf("T0000003 status %s, want suspended", t3.Status)
	}
	lt, _ := f.reg.Terminal("LT002000")
	if lt == nil || lt.Bound() || lt.Keys.TPK != "LT.TPK" || lt.Status != TerminalActive {
		t.Errorf("LT002000 = %+v", lt)
	}
	if _, ok := f.reg.Terminal("LT002001"); ok {
		t.Error("LT002001 exists")
	}

	// Idempotent, and it does not undo run-time changes.
	f.apply(t, Change{Op: OpTerminalSuspend, Target: "T0000001", Reason: "lost"})
	n, err := LoadDemo(f.reg)
	if err != nil || n != 0 {
		t.Fatalf("second LoadDemo = %d, %v; want 0 created", n, err)
	}
	f.reopen(t)
	if n, err := LoadDemo(f.reg); err != nil || n != 0 {
		t.Fatalf("LoadDemo after reopen = %d, %v; want 0 created", n, err)
	}
	if tt, _ := f.reg.Terminal("T0000001"); tt.Status != TerminalSuspended {
		t.Errorf("T0000001 after LoadDemo again = %s, want still suspended", tt.Status)
	}
	if rules := f.reg.AlertRules(); len(rules) != 1 || rules[0].ID != "offline-24h" {
		t.Errorf("alert rules = %+v", rules)
	}
	if toks := DemoTokens(); len(toks) != 6 {
		t.Errorf("demo tokens = %d", len(toks))
	}
}

func TestTwoPersonReview(t *testing.T) {
	f := newFixture(t)
	c, err := f.reg.RequestChange(alice, Change{Op: OpMerchantFreeze, Target: "000000000000001", Reason: "chargeback spike"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != ChangePending || c.RequestedBy != "alice" || c.ID == "" {
		t.Fatalf("requested change = %+v", c)
	}
	// Not in effect before approval.
	if res := f.reg.Check(f.goodT1()); res.Decline {
		t.Fatalf("merchant frozen before approval: %s", res.Reason)
	}
	// Roles: an operator, an analyst cannot approve; a reviewer cannot request.
	for _, p := range []struct {
		name string
		err  error
	}{
		{"operator alice", func() error { _, err := f.reg.Approve(alice, c.ID, ""); return err }()},
		{"operator carol", func() error { _, err := f.reg.Approve(carol, c.ID, ""); return err }()},
		{"analyst erin", func() error { _, err := f.reg.Approve(erin, c.ID, ""); return err }()},
		{"reviewer requests", func() error {
			_, err := f.reg.RequestChange(bob, Change{Op: OpMerchantFreeze, Target: "000000000000002"})
			return err
		}()},
	} {
		if !errors.Is(p.err, ErrForbidden) {
			t.Errorf("%s: err = %v, want ErrForbidden", p.name, p.err)
		}
	}
	// The requester cannot approve, even as an admin.
	ca, err := f.reg.RequestChange(root, Change{Op: OpMerchantFreeze, Target: "000000000000002"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Approve(root, ca.ID, ""); !errors.Is(err, ErrForbidden) {
		t.Errorf("admin approving own change: err = %v, want ErrForbidden", err)
	}
	// A different reviewer can; it takes effect at once.
	done, err := f.reg.Approve(bob, c.ID, "checked")
	if err != nil {
		t.Fatal(err)
	}
	if done.Status != ChangeApproved || done.ReviewedBy != "bob" || done.ReviewNote != "checked" {
		t.Errorf("approved change = %+v", done)
	}
	if res := f.reg.Check(f.goodT1()); res.Reason != ReasonMerchantFrozen || res.ResponseCode != "03" {
		t.Errorf("after freeze: %s %s, want 03 merchant-frozen", res.ResponseCode, res.Reason)
	}
	// Approving twice, rejecting an approved change: conflict.
	if _, err := f.reg.Approve(dave, c.ID, ""); !errors.Is(err, ErrConflict) {
		t.Errorf("second approval: err = %v, want ErrConflict", err)
	}
	if _, err := f.reg.Reject(dave, c.ID, ""); !errors.Is(err, ErrConflict) {
		t.Errorf("reject after approval: err = %v, want ErrConflict", err)
	}
	// Reject and cancel.
	cr, _ := f.reg.RequestChange(alice, Change{Op: OpMerchantUnfreeze, Target: "000000000000001"})
	if _, err := f.reg.Reject(dave, cr.ID, "not yet"); err != nil {
		t.Fatal(err)
	}
	if m, _ := f.reg.Merchant("000000000000001"); m.Status != MerchantFrozen {
		t.Errorf("rejected unfreeze applied: %s", m.Status)
	}
	cc, _ := f.reg.RequestChange(alice, Change{Op: OpMerchantUnfreeze, Target: "000000000000001"})
	if _, err := f.reg.Cancel(carol, cc.ID, ""); !errors.Is(err, ErrForbidden) {
		t.Errorf("cancel by another operator: err = %v, want ErrForbidden", err)
	}
	if got, err := f.reg.Cancel(alice, cc.ID, "oops"); err != nil || got.Status != ChangeCancelled {
		t.Errorf("cancel by requester = %+v, %v", got, err)
	}
	// A change that no longer applies stays pending and says why.
	c1, _ := f.reg.RequestChange(alice, Change{Op: OpMerchantUnfreeze, Target: "000000000000001"})
	c2, _ := f.reg.RequestChange(carol, Change{Op: OpMerchantUnfreeze, Target: "000000000000001"})
	if _, err := f.reg.Approve(bob, c1.ID, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Approve(bob, c2.ID, ""); !errors.Is(err, ErrConflict) {
		t.Errorf("approving an unfreeze of an active merchant: err = %v, want ErrConflict", err)
	}
	pv, err := f.reg.GetChange(c2.ID)
	if err != nil || pv.Change.Status != ChangePending || !strings.Contains(pv.Error, "is active") {
		t.Errorf("preview of stale change = %+v, %v", pv, err)
	}
	pending, _ := f.reg.Changes(ChangeFilter{Status: ChangePending})
	if len(pending) != 2 { // ca (admin's own) and c2
		t.Errorf("pending changes = %d, want 2", len(pending))
	}
	// Requests are validated at once.
	if _, err := f.reg.RequestChange(alice, Change{Op: OpTerminalResume, Target: "T0000001"}); !errors.Is(err, ErrConflict) {
		t.Errorf("resume of an active terminal: err = %v, want ErrConflict", err)
	}
	if _, err := f.reg.RequestChange(alice, Change{Op: OpTerminalSuspend, Target: "T7777777"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("suspend of an unknown terminal: err = %v, want ErrNotFound", err)
	}
	if _, err := f.reg.RequestChange(alice, Change{Op: OpMerchantRegister, Merchant: &Merchant{ID: "1", Name: "x"}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("register of an invalid merchant: err = %v, want ErrInvalid", err)
	}
}

func TestLifecycleAllOperations(t *testing.T) {
	f := newFixture(t)
	mid := "000000000000042"
	f.apply(t, Change{Op: OpMerchantRegister, Merchant: &Merchant{ID: mid, Name: "Tea House", MCC: "5814", Region: "CN-SH", Tier: TierMicro,
		Rating: RatingMedium, Limits: DemoLimitsMicro, Status: MerchantPending}})
	f.apply(t, Change{Op: OpTerminalRegister, Terminal: &Terminal{ID: "T0000042", MerchantID: mid, Kind: KindMPOS,
		Binding: Binding{DeviceSerial: "MP-42"}, MissingPolicy: PolicyFlag}})
	req := CheckRequest{TerminalID: "T0000042", MerchantID: mid, DeviceID: "MP-42"}
	steps := []struct {
		c    Change
		want Reason
	}{
		{Change{}, ReasonTerminalPending},
		{Change{Op: OpTerminalActivate, Target: "T0000042"}, ReasonMerchantPending},
		{Change{Op: OpMerchantActivate, Target: mid}, ReasonNone},
		{Change{Op: OpMerchantFreeze, Target: mid}, ReasonMerchantFrozen},
		{Change{Op: OpMerchantUnfreeze, Target: mid}, ReasonNone},
		{Change{Op: OpTerminalSuspend, Target: "T0000042"}, ReasonTerminalSuspended},
		{Change{Op: OpTerminalResume, Target: "T0000042"}, ReasonNone},
		{Change{Op: OpTerminalChange, Target: "T0000042", TerminalPatch: &TerminalPatch{DeviceSerial: strp("MP-43")}}, ReasonDeviceMismatch},
		{Change{Op: OpTerminalChange, Target: "T0000042", TerminalPatch: &TerminalPatch{DeviceSerial: strp("")}}, ReasonNone},
		{Change{Op: OpMerchantChange, Target: mid, MerchantPatch: &MerchantPatch{Tier: strp(TierStandard), Limits: &DemoLimitsStandard}}, ReasonNone},
		{Change{Op: OpTerminalChange, Target: "T0000042", TerminalPatch: &TerminalPatch{MerchantID: strp("000000000000001")}}, ReasonMerchantMismatch},
		{Change{Op: OpTerminalChange, Target: "T0000042", TerminalPatch: &TerminalPatch{MerchantID: strp(mid)}}, ReasonNone},
		{Change{Op: OpMerchantClose, Target: mid}, ReasonMerchantClosed},
		{Change{Op: OpTerminalClose, Target: "T0000042"}, ReasonTerminalClosed},
	}
	for _, s := range steps {
		if s.c.Op != "" {
			f.apply(t, s.c)
		}
		if res := f.reg.Check(req); res.Reason != s.want {
			t.Fatalf("after %s: reason %q, want %q", s.c.Op, res.Reason, s.want)
		}
	}
	m, _ := f.reg.Merchant(mid)
	if m.Tier != TierStandard || m.Limits != DemoLimitsStandard || m.Version != 6 {
		t.Errorf("merchant after changes = %+v", m)
	}
	// Closed is final.
	if _, err := f.reg.RequestChange(alice, Change{Op: OpTerminalResume, Target: "T0000042"}); !errors.Is(err, ErrConflict) {
		t.Errorf("resume of a closed terminal: err = %v, want ErrConflict", err)
	}
	if _, err := f.reg.RequestChange(alice, Change{Op: OpTerminalRegister, Terminal: &Terminal{ID: "T0000043", MerchantID: mid, Kind: KindPOS}}); !errors.Is(err, ErrConflict) {
		t.Errorf("terminal for a closed merchant: err = %v, want ErrConflict", err)
	}
}

func TestOplogContent(t *testing.T) {
	f := newFixture(t)
	before, _ := f.reg.Oplog(OplogFilter{Limit: 1})
	lastDemo := before[0].Seq
	f.clock.Advance(time.Hour)
	c, err := f.reg.RequestChange(alice, Change{Op: OpTerminalSuspend, Target: "T0000001", Reason: "reported stolen"})
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(5 * time.Minute)
	if _, err := f.reg.Approve(bob, c.ID, "confirmed by phone"); err != nil {
		t.Fatal(err)
	}
	es, err := f.reg.Oplog(OplogFilter{After: lastDemo})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 3 {
		t.Fatalf("oplog entries after the demo = %d, want 3", len(es))
	}
	req, app, fin := es[0], es[1], es[2]
	if req.Action != "change.request" || req.Actor != "alice" || req.Role != "operator" || req.Target != c.ID || !req.Time.Equal(t0.Add(time.Hour)) ||
		req.Reason != "reported stolen" || len(req.After) == 0 {
		t.Errorf("request entry = %+v", req)
	}
	if app.Action != "terminal.suspend" || app.Actor != "bob" || app.Role != "reviewer" || app.RequestedBy != "alice" || app.ChangeID != c.ID ||
		app.TargetType != "terminal" || app.Target != "T0000001" || !app.Time.Equal(t0.Add(65*time.Minute)) || app.Reason != "reported stolen" {
		t.Errorf("apply entry = %+v", app)
	}
	var b, a Terminal
	if err := json.Unmarshal(app.Before, &b); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(app.After, &a); err != nil {
		t.Fatal(err)
	}
	if b.Status != TerminalActive || a.Status != TerminalSuspended || a.Note != "reported stolen" || a.Version != b.Version+1 {
		t.Errorf("before %s v%d, after %s v%d %q", b.Status, b.Version, a.Status, a.Version, a.Note)
	}
	if fin.Action != "change.approve" || fin.Actor != "bob" || fin.Reason != "confirmed by phone" {
		t.Errorf("approve entry = %+v", fin)
	}
	// Filters.
	if got, _ := f.reg.Oplog(OplogFilter{Target: "T0000001", Action: "terminal."}); len(got) != 1 || got[0].Action != "terminal.suspend" {
		t.Errorf("oplog for T0000001 terminal.* = %d entries, want the suspension only", len(got))
	}
	if got, _ := f.reg.Oplog(OplogFilter{Target: "T0000001"}); len(got) != 2 || got[0].Action != "demo.load" {
		t.Errorf("oplog for T0000001 = %d entries, want the demo load and the suspension", len(got))
	}
	if got, _ := f.reg.Oplog(OplogFilter{Since: t0.Add(time.Hour)}); len(got) != 3 {
		t.Errorf("oplog since t0+1h = %d entries, want 3", len(got))
	}
	if got, _ := f.reg.Oplog(OplogFilter{Actor: "bob", Limit: 1}); len(got) != 1 || got[0].Action != "change.approve" {
		t.Errorf("newest bob entry = %+v", got)
	}

	// The chain verifies, and detects an edited entry.
	n, err := f.reg.VerifyOplog()
	if err != nil || uint64(n) != lastDemo+3 {
		t.Fatalf("VerifyOplog = %d, %v", n, err)
	}
	app.Actor = "mallory"
	if err := f.db.Update(func(txn *badger.Txn) error { return putJSON(txn, seqKey(pfxLog, app.Seq), app) }); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.VerifyOplog(); err == nil || !strings.Contains(err.Error(), "edited") {
		t.Errorf("VerifyOplog after tampering: %v, want an error", err)
	}
}
