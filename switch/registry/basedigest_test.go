package registry

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestAlertRuleApprovalOverNewerRuleRefused: a suspending alert rule requested
// as new is refused at approval once a rule of that ID was created directly (a
// non-suspending rule, edited at once) since: the reviewer was shown a new rule,
// the approval would replace another's. So is one requested over a rule another
// reviewed change replaced since, and one over a rule deleted since; the preview
// says so before the approval.
func TestAlertRuleApprovalOverNewerRuleRefused(t *testing.T) {
	f := newFixture(t)
	suspending := func(id string, th time.Duration) *AlertRule {
		return &AlertRule{ID: id, Threshold: Duration(th), Filter: AlertFilter{Regions: []string{"CN-BJ"}},
			Actions: []AlertAction{{Type: ActionSuspend}}}
	}
	// Appeared since the request.
	chg, err := f.reg.RequestChange(alice, Change{Op: OpAlertRulePut, AlertRule: suspending("bj", time.Hour), Reason: "offline BJ"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.PutAlertRule(carol, AlertRule{ID: "bj", Threshold: Duration(3 * time.Hour), Filter: AlertFilter{Regions: []string{"CN-BJ"}}}); err != nil {
		t.Fatal(err)
	}
	if pv, err := f.reg.GetChange(chg.ID); err != nil || !strings.Contains(pv.Error, "alert-rule/bj was created since") {
		t.Errorf("preview after the rule appeared: %+v %v", pv, err)
	}
	if _, err := f.reg.Approve(bob, chg.ID, "ok"); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "alert-rule/bj was created since "+chg.ID) {
		t.Fatalf("approve over a rule created since: %v, want 409", err)
	}
	if r := f.reg.alerts.rules["bj"]; r.ChangesTerminals() {
		t.Fatalf("the refused approval put the suspending rule in force")
	}

	// Replaced since the request by another reviewed change.
	f.apply(t, Change{Op: OpAlertRulePut, AlertRule: suspending("sh", time.Hour), Reason: "offline SH"})
	f.clock.Advance(time.Minute)
	a, err := f.reg.RequestChange(alice, Change{Op: OpAlertRulePut, AlertRule: suspending("sh", 2*time.Hour), Reason: "2 h"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.reg.RequestChange(carol, Change{Op: OpAlertRulePut, AlertRule: suspending("sh", 30*time.Minute), Reason: "30 min"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Approve(dave, b.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Approve(bob, a.ID, "ok"); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "alert-rule/sh changed since") {
		t.Fatalf("approve over a rule replaced since: %v, want 409", err)
	}

	// Deleted since the request.
	c, err := f.reg.RequestChange(alice, Change{Op: OpAlertRulePut, AlertRule: suspending("sh", 4*time.Hour), Reason: "4 h"})
	if err != nil {
		t.Fatal(err)
	}
	off := *f.reg.alerts.rules["sh"]
	off.Disabled = true // a suspending rule is disabled by a reviewed change before its deletion
	f.apply(t, Change{Op: OpAlertRulePut, AlertRule: &off, Reason: "off"})
	if err := f.reg.DeleteAlertRule(carol, "sh"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Approve(bob, c.ID, "ok"); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "alert-rule/sh was removed since") {
		t.Fatalf("approve over a rule deleted since: %v, want 409", err)
	}
}

// TestExtApprovalOverNewerRecordRefused: another package's operation (a task, a
// webhook) is refused at approval once the record it puts was created or
// changed since the request, as its owner's Check shows it (ChangeEffect.Before).
func TestExtApprovalOverNewerRecordRefused(t *testing.T) {
	f := newFixture(t)
	const op Op = "widget.put"
	widgets := map[string]string{}
	f.reg.RegisterOp(op, ExtOp{
		Check: func(c *Change) (ChangeEffect, error) {
			ce := ChangeEffect{Type: "widget", ID: c.Target, After: c.Ext}
			if old, ok := widgets[c.Target]; ok {
				ce.Before = json.RawMessage(old)
			}
			return ce, nil
		},
		Apply: func(c *Change) { widgets[c.Target] = string(c.Ext) },
	})
	a, err := f.reg.RequestChange(alice, Change{Op: op, Target: "w1", Reason: "blue", Ext: json.RawMessage(`{"colour":"blue"}`)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.reg.RequestChange(carol, Change{Op: op, Target: "w1", Reason: "red", Ext: json.RawMessage(`{"colour":"red"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Approve(dave, b.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Approve(bob, a.ID, "ok"); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "widget/w1 was created since") {
		t.Fatalf("approve over a widget created since: %v, want 409", err)
	}
	if widgets["w1"] != `{"colour":"red"}` {
		t.Fatalf("widget w1 %s, want the red one approved first", widgets["w1"])
	}
	c, err := f.reg.RequestChange(alice, Change{Op: op, Target: "w1", Reason: "green", Ext: json.RawMessage(`{"colour":"green"}`)})
	if err != nil {
		t.Fatal(err)
	}
	widgets["w1"] = `{"colour":"black"}` // changed by its owner since
	if _, err := f.reg.Approve(bob, c.ID, "ok"); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "widget/w1 changed since") {
		t.Fatalf("approve over a widget changed since: %v, want 409", err)
	}
	widgets["w1"] = `{"colour":"red"}`
	if _, err := f.reg.Approve(bob, c.ID, "ok"); err != nil {
		t.Fatalf("approve over the widget as requested: %v", err)
	}
}
