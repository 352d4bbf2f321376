package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

func TestDemoFleet(t *testing.T) {
	f := newFixture(t)
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
	if lt == nil || lt.Bound() || lt.Keys.TPK != "T0000001.TPK" || lt.Status != TerminalActive {
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

// TestRootedSoftPOS: a finding suspends the terminal at once, durably; it stays
// suspended (across a restart) until a reviewed resume.
func TestRootedSoftPOS(t *testing.T) {
	f := newFixture(t)
	req := f.goodT2()
	req.Findings = []string{"root", "hook"}
	res := f.reg.Check(req)
	if !res.Decline || res.ResponseCode != "59" || res.Reason != ReasonDeviceCompromised {
		t.Fatalf("rooted SoftPOS: %v %s %s, want 59 device-compromised", res.Decline, res.ResponseCode, res.Reason)
	}
	if tt, _ := f.reg.Terminal("T0000002"); tt.Status != TerminalSuspended || !strings.Contains(tt.Note, "root,hook") {
		t.Fatalf("T0000002 after finding = %s %q, want suspended", tt.Status, tt.Note)
	}
	// The next transaction, even a clean one, is refused.
	if res := f.reg.Check(f.goodT2()); res.Reason != ReasonTerminalSuspended || res.ResponseCode != "58" {
		t.Errorf("clean request after suspension: %s %s, want 58 terminal-suspended", res.ResponseCode, res.Reason)
	}
	// Oplog: actor system.
	es, _ := f.reg.Oplog(OplogFilter{Target: "T0000002", Action: "terminal.suspend"})
	if len(es) != 1 || es[0].Actor != SystemActor || !strings.Contains(string(es[0].Before), `"status":"active"`) ||
		!strings.Contains(string(es[0].After), `"status":"suspended"`) {
		t.Errorf("oplog of automatic suspension = %+v", es)
	}
	// Incident with the device data at that moment.
	incs, err := f.reg.Incidents(IncidentFilter{TerminalID: "T0000002"})
	if err != nil || len(incs) != 1 {
		t.Fatalf("incidents = %+v, %v", incs, err)
	}
	inc := incs[0]
	if inc.Reason != ReasonDeviceCompromised || inc.Action != "terminal-suspended" || inc.Status != IncidentOpen ||
		strings.Join(inc.Device.Findings, ",") != "root,hook" || inc.Device.IMEI != "860000000000002" || inc.Device.Location == nil ||
		inc.Device.SourceIP != "10.1.2.3" || inc.Merchant == nil || inc.Merchant.ID != "000000000000002" ||
		inc.Terminal == nil || inc.Terminal.Status != TerminalActive || inc.Facts.DistanceM <= 0 || !inc.Device.MACVerified {
		t.Errorf("incident = %+v", inc)
	}

	// Durable: survives a restart.
	f.reopen(t)
	if res := f.reg.Check(f.goodT2()); res.Reason != ReasonTerminalSuspended {
		t.Fatalf("after restart: %q, want terminal-suspended", res.Reason)
	}
	// Resume needs review: the requester cannot approve it.
	c, err := f.reg.RequestChange(alice, Change{Op: OpTerminalResume, Target: "T0000002", Reason: "device replaced"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Approve(alice, c.ID, ""); !errors.Is(err, ErrForbidden) {
		t.Errorf("self-approval of resume: %v", err)
	}
	if res := f.reg.Check(f.goodT2()); res.Reason != ReasonTerminalSuspended {
		t.Errorf("before approval of resume: %q, want terminal-suspended", res.Reason)
	}
	if _, err := f.reg.Approve(dave, c.ID, ""); err != nil {
		t.Fatal(err)
	}
	if res := f.reg.Check(f.goodT2()); res.Decline {
		t.Errorf("after approved resume: %s", res.Reason)
	}
	// Incident handling.
	if _, err := f.reg.ResolveIncident(erin, inc.ID, ""); !errors.Is(err, ErrForbidden) {
		t.Errorf("analyst resolving: %v", err)
	}
	if got, err := f.reg.AcknowledgeIncident(alice, inc.ID, "looking"); err != nil || got.Status != IncidentAcknowledged || got.AckBy != "alice" {
		t.Errorf("ack = %+v, %v", got, err)
	}
	if _, err := f.reg.AcknowledgeIncident(carol, inc.ID, ""); !errors.Is(err, ErrConflict) {
		t.Errorf("second ack: %v", err)
	}
	if got, err := f.reg.ResolveIncident(carol, inc.ID, "device wiped"); err != nil || got.Status != IncidentResolved || got.ResolvedBy != "carol" {
		t.Errorf("resolve = %+v, %v", got, err)
	}
	if es, _ := f.reg.Oplog(OplogFilter{Target: inc.ID}); len(es) != 2 {
		t.Errorf("oplog of incident = %+v", es)
	}
}

// A non-SoftPOS terminal's IF is not trusted and not acted on.
func TestFindingsIgnoredForPOS(t *testing.T) {
	f := newFixture(t)
	req := f.goodT1()
	req.Findings = []string{"root"}
	if res := f.reg.Check(req); res.Decline {
		t.Errorf("POS with IF: %s, want accepted", res.Reason)
	}
	if tt, _ := f.reg.Terminal("T0000001"); tt.Status != TerminalActive {
		t.Errorf("POS suspended for IF: %s", tt.Status)
	}
}

func TestPersistenceAcrossReopen(t *testing.T) {
	f := newFixture(t)
	f.apply(t, Change{Op: OpMerchantFreeze, Target: "000000000000002"})
	pend, _ := f.reg.RequestChange(alice, Change{Op: OpTerminalSuspend, Target: "LT000001"})
	bad := f.goodT1()
	bad.IMEI = "860000000000999"
	f.reg.Check(bad)
	logBefore, _ := f.reg.Oplog(OplogFilter{Limit: 100000})
	f.reopen(t)

	if m, _ := f.reg.Merchant("000000000000002"); m.Status != MerchantFrozen {
		t.Errorf("merchant 2 after reopen = %s", m.Status)
	}
	if n := len(f.reg.Terminals(TerminalFilter{})); n != 2004 {
		t.Errorf("terminals after reopen = %d", n)
	}
	if res := f.reg.Check(f.goodT2()); res.Reason != ReasonMerchantFrozen {
		t.Errorf("T0000002 after reopen: %q, want merchant-frozen", res.Reason)
	}
	if pv, err := f.reg.GetChange(pend.ID); err != nil || pv.Change.Status != ChangePending {
		t.Errorf("pending change after reopen = %+v, %v", pv, err)
	}
	// The pending change can still be approved after the restart.
	if _, err := f.reg.Approve(bob, pend.ID, ""); err != nil {
		t.Errorf("approve after reopen: %v", err)
	}
	incs, _ := f.reg.Incidents(IncidentFilter{})
	if len(incs) != 1 || incs[0].Reason != ReasonIMEIMismatch || incs[0].ID != "INC-1" {
		t.Errorf("incidents after reopen = %+v", incs)
	}
	// Sequences continue.
	c, err := f.reg.RequestChange(alice, Change{Op: OpMerchantUnfreeze, Target: "000000000000002"})
	if err != nil || c.ID != "CHG-3" {
		t.Errorf("next change ID = %v, %v; want CHG-3", c, err)
	}
	f.reg.Check(bad)
	if incs, _ := f.reg.Incidents(IncidentFilter{}); len(incs) != 2 || incs[1].ID != "INC-2" {
		t.Errorf("incidents after another violation = %+v", incs)
	}
	logAfter, _ := f.reg.Oplog(OplogFilter{Limit: 100000})
	if len(logAfter) != len(logBefore)+3 {
		t.Errorf("oplog entries %d -> %d, want +3", len(logBefore), len(logAfter))
	}
	if _, err := f.reg.VerifyOplog(); err != nil {
		t.Errorf("oplog chain after reopen: %v", err)
	}
}

func TestIncidentQueuedAndFlushedOnClose(t *testing.T) {
	f := newFixture(t)
	for i := 0; i < 50; i++ {
		req := f.goodT1()
		req.DeviceID = "SN-THIEF"
		f.reg.Check(req)
	}
	f.reopen(t) // Close drains the queue
	incs, err := f.reg.Incidents(IncidentFilter{Reason: ReasonDeviceMismatch})
	if err != nil || len(incs) != 50 {
		t.Errorf("incidents after close = %d, %v; want 50", len(incs), err)
	}
}

func TestIncidentQueueFullWritesSynchronously(t *testing.T) {
	f := &fixture{dir: t.TempDir(), clock: &fakeClock{t: t0}, opts: Options{SeenFlushInterval: -1, IncidentQueue: 1}}
	f.open(t)
	t.Cleanup(func() { f.close(t) })
	if _, err := LoadDemo(f.reg); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		req := f.goodT1()
		req.SIM = "89860000000000000999"
		f.reg.Check(req)
	}
	if incs, _ := f.reg.Incidents(IncidentFilter{}); len(incs) != 20 {
		t.Errorf("incidents = %d, want 20", len(incs))
	}
}

func TestCSVImport(t *testing.T) {
	f := newFixture(t)
	csv := strings.Join([]string{
		"terminal_id,merchant_id,kind,status,device_serial,iccid,imei,lat,lon,radius_m,networks,min_app_version,missing_policy,pin_mode,tpk",
		"T1000001,000000000000001,pos,active,SN-1,89860000000000001001,860000000001001,39.9,116.4,500,10.0.0.0/8;192.168.0.0/16,2.1,decline,tpk,T1000001/TPK",
		"T1000002,000000000000002,softpos,,SP-2,,860000000001002,,,,,,flag,,",
		"T1000003,000000000000077,pos,,,,,,,,,,,,",           // line 4: unknown merchant
		"T1000004,000000000000001,toaster,,,,,,,,,,,,",       // line 5: bad kind
		"T1000001,000000000000001,pos,,,,,,,,,,,,",           // line 6: duplicate in file
		"T0000001,000000000000001,pos,,,,,,,,,,,,",           // line 7: exists
		"T1000007,000000000000001,pos,,,12345,,,,,,,,,",      // line 8: bad ICCID
		"T1000008,000000000000001,pos",                       // line 9: too few fields
		"T1000009,000000000000001,pos,,,,,91,0,100,,,,,",     // line 10: bad latitude
		"T1000010,000000000000001,pos,,,,,,,,10.0.0.1/8,,,,", // line 11: host bits
		"T1000011,000000000000001,mpos,pending,,,,,,,,,,,",
	}, "\n")
	rep, err := f.reg.ImportTerminals(alice, strings.NewReader(csv), "", false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Accepted != 3 || rep.Rejected != 8 || len(rep.Rows) != 11 {
		t.Errorf("report accepted %d rejected %d rows %d, want 3, 8, 11", rep.Accepted, rep.Rejected, len(rep.Rows))
	}
	wantErr := map[int]string{4: "does not exist", 5: "kind", 6: "line 2", 7: "already exists", 8: "ICCID", 9: "fields", 10: "latitude", 11: "host bits"}
	for _, row := range rep.Rows {
		w, bad := wantErr[row.Line]
		switch {
		case bad && (row.OK || !strings.Contains(row.Error, w)):
			t.Errorf("line %d: ok=%v error %q, want an error mentioning %q", row.Line, row.OK, row.Error, w)
		case !bad && !row.OK:
			t.Errorf("line %d: error %q, want accepted", row.Line, row.Error)
		}
	}
	if rep.Change == nil || rep.Change.Op != OpTerminalImport || len(rep.Change.Terminals) != 3 {
		t.Fatalf("import change = %+v", rep.Change)
	}
	// Nothing exists before approval.
	if _, ok := f.reg.Terminal("T1000001"); ok {
		t.Fatal("imported terminal exists before approval")
	}
	if _, err := f.reg.Approve(alice, rep.Change.ID, ""); !errors.Is(err, ErrForbidden) {
		t.Errorf("importer approving own import: %v", err)
	}
	if _, err := f.reg.Approve(bob, rep.Change.ID, ""); err != nil {
		t.Fatal(err)
	}
	t1, _ := f.reg.Terminal("T1000001")
	if t1 == nil || t1.Status != TerminalActive || t1.Location.RadiusM != 500 || len(t1.AllowedNetworks) != 2 || t1.MinAppVersion != "2.1" || t1.Keys.TPK != "T1000001/TPK" {
		t.Errorf("T1000001 = %+v", t1)
	}
	t2, _ := f.reg.Terminal("T1000002")
	if t2 == nil || t2.Status != TerminalPending || !t2.Keys.MACRequired || t2.MissingPolicy != PolicyFlag {
		t.Errorf("T1000002 = %+v", t2)
	}
	if es, _ := f.reg.Oplog(OplogFilter{Action: string(OpTerminalImport)}); len(es) != 3 || es[0].RequestedBy != "alice" || es[0].Actor != "bob" {
		t.Errorf("import oplog = %+v", es)
	}
	// An imported active terminal transacts at once.
	res := f.reg.Check(CheckRequest{TerminalID: "T1000001", MerchantID: "000000000000001", SourceIP: honest, DeviceID: "SN-1",
		SIM: "89860000000000001001", IMEI: "860000000001001", Location: GeoPoint{Lat: 39.9, Lon: 116.4, Present: true}, AppVersion: "2.1"})
	if res.Decline {
		t.Errorf("imported terminal declined: %s", res.Reason)
	}

	// Whole-file errors.
	for _, bad := range []string{"", "terminal_id,merchant_id\nT1,0", "terminal_id,merchant_id,kind,colour\n", "terminal_id,merchant_id,kind,kind\n"} {
		if _, err := f.reg.ImportTerminals(alice, strings.NewReader(bad), "", false); !errors.Is(err, ErrInvalid) {
			t.Errorf("import of %q: err = %v, want ErrInvalid", bad, err)
		}
	}
	// Dry run: report, no change.
	rep, err = f.reg.ImportTerminals(alice, strings.NewReader("terminal_id,merchant_id,kind\nT2000001,000000000000001,pos\n"), "", true)
	if err != nil || rep.Accepted != 1 || rep.Change != nil {
		t.Errorf("dry run = %+v, %v", rep, err)
	}
	if _, err := f.reg.ImportTerminals(bob, strings.NewReader("terminal_id,merchant_id,kind\n"), "", false); !errors.Is(err, ErrForbidden) {
		t.Errorf("reviewer importing: %v", err)
	}
}

func TestLargeImportChunks(t *testing.T) {
	f := newFixture(t)
	var b strings.Builder
	b.WriteString("terminal_id,merchant_id,kind,status\n")
	const n = 1200
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "B%07d,000000000000003,pos,active\n", i)
	}
	rep, err := f.reg.ImportTerminals(alice, strings.NewReader(b.String()), "bulk", false)
	if err != nil || rep.Accepted != n {
		t.Fatalf("import = %d accepted, %v", rep.Accepted, err)
	}
	if _, err := f.reg.Approve(bob, rep.Change.ID, ""); err != nil {
		t.Fatal(err)
	}
	f.reopen(t)
	if got := len(f.reg.Terminals(TerminalFilter{MerchantID: "000000000000003"})); got != 2000+n {
		t.Errorf("terminals of merchant 3 after reopen = %d, want %d", got, 2000+n)
	}
	if _, err := f.reg.VerifyOplog(); err != nil {
		t.Error(err)
	}
}
