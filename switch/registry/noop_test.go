package registry

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestChangeOfNothingRefused: a merchant or terminal change whose every field is
// what the record already has is refused when it is requested (ErrInvalid naming
// the fields and their values), and no change request is stored; a change that
// changes at least one field is kept with only the fields it changes. A name
// language is stored in lower case, so "ZH" over "zh" changes nothing.
func TestChangeOfNothingRefused(t *testing.T) {
	f := newFixture(t)
	const mid = "000000000000001"
	before, _ := f.reg.Changes(ChangeFilter{})
	_, err := f.reg.RequestChange(alice, Change{Op: OpMerchantChange, Target: mid, MerchantPatch: &MerchantPatch{MCC: strp("5411")}})
	if !errors.Is(err, ErrInvalid) || err.Error() != "merchant 000000000000001: nothing to change: mcc is already 5411" {
		t.Fatalf("change of the MCC to the one it has: %v", err)
	}
	_, err = f.reg.RequestChange(alice, Change{Op: OpMerchantChange, Target: mid,
		MerchantPatch: &MerchantPatch{Region: strp("CN-BJ"), Group: strp(""), Limits: &DemoLimitsStandard}})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "region is already CN-BJ, group is already none, limits is already {") {
		t.Fatalf("change of region, group and limits to theirs: %v", err)
	}
	if after, _ := f.reg.Changes(ChangeFilter{}); len(after) != len(before) {
		t.Fatalf("%d change requests after refusals, want %d", len(after), len(before))
	}

	// A change of one field among unchanged ones keeps only that field (in the
	// stored request; the caller's patch is left as it was).
	sent := &MerchantPatch{MCC: strp("5812"), Region: strp("CN-BJ"), NameLanguage: strp(" ZH ")}
	req, err := f.reg.RequestChange(alice, Change{Op: OpMerchantChange, Target: mid, MerchantPatch: sent})
	if err != nil {
		t.Fatal(err)
	}
	p := req.MerchantPatch
	if p.MCC == nil || *p.MCC != "5812" || p.Region != nil || p.NameLanguage == nil || *p.NameLanguage != "zh" {
		t.Fatalf("stored patch %+v, want the MCC and the language (zh), not the region", p)
	}
	if sent.Region == nil || *sent.NameLanguage != " ZH " {
		t.Fatalf("the caller's patch was changed: %+v", sent)
	}
	if stored, err := f.reg.GetChange(req.ID); err != nil || stored.Change.MerchantPatch.Region != nil {
		t.Fatalf("the change as stored: %+v, %v", stored, err)
	}
	if _, err := f.reg.Approve(bob, req.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	if m, _ := f.reg.Merchant(mid); m.MCC != "5812" || m.NameLanguage != "zh" {
		t.Fatalf("merchant after the change: MCC %s, language %q", m.MCC, m.NameLanguage)
	}
	_, err = f.reg.RequestChange(alice, Change{Op: OpMerchantChange, Target: mid, MerchantPatch: &MerchantPatch{NameLanguage: strp("ZH")}})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "name_language is already zh") {
		t.Fatalf("change of the language to the same in upper case: %v", err)
	}
	_, err = f.reg.RequestChange(alice, Change{Op: OpMerchantChange, Target: mid, MerchantPatch: &MerchantPatch{}})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "nothing to change") {
		t.Fatalf("change with no field: %v", err)
	}

	// Terminals: binding, policy and keys (the default TAK reference counts as set).
	tm, _ := f.reg.Terminal("T0000001")
	pol, keys := tm.MissingPolicy, tm.Keys
	_, err = f.reg.RequestChange(alice, Change{Op: OpTerminalChange, Target: "T0000001",
		TerminalPatch: &TerminalPatch{DeviceSerial: strp("SN-T0000001"), MissingPolicy: &pol, Keys: &keys, ClearLocation: tm.Location == nil}})
	if !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), "terminal T0000001: nothing to change: device_serial is already SN-T0000001") {
		t.Fatalf("terminal change of nothing: %v", err)
	}
	req, err = f.reg.RequestChange(alice, Change{Op: OpTerminalChange, Target: "T0000001",
		TerminalPatch: &TerminalPatch{DeviceSerial: strp("SN-T0000001"), Model: strp("PAX-A920")}})
	if err != nil {
		t.Fatal(err)
	}
	if tp := req.TerminalPatch; tp.DeviceSerial != nil || tp.Model == nil {
		t.Fatalf("stored terminal patch %+v, want the model alone", tp)
	}
}

// TestAlertRulePutOfNothingRefused: requesting a suspending alert rule that is
// already exactly in force is refused (a reviewer would approve nothing); the same
// rule with another threshold is requested.
func TestAlertRulePutOfNothingRefused(t *testing.T) {
	f := newFixture(t)
	rule := func(th time.Duration) *AlertRule {
		return &AlertRule{ID: "all-1h", Threshold: Duration(th), Filter: AlertFilter{Regions: []string{"CN-BJ"}},
			Actions: []AlertAction{{Type: ActionSuspend}}}
	}
	f.apply(t, Change{Op: OpAlertRulePut, AlertRule: rule(time.Hour)})
	f.clock.Advance(time.Minute)
	_, err := f.reg.RequestChange(alice, Change{Op: OpAlertRulePut, AlertRule: rule(time.Hour)})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "alert rule all-1h: nothing to change") {
		t.Fatalf("the same rule again: %v", err)
	}
	if _, err := f.reg.RequestChange(alice, Change{Op: OpAlertRulePut, AlertRule: rule(2 * time.Hour)}); err != nil {
		t.Fatalf("the rule with another threshold: %v", err)
	}
}
