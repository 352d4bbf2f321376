package registry

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// badNotes are notes with a character that reorders or hides text, each with the
// code point the error must name; and one too long, with what its error must say.
var badNotes = []struct{ text, code string }{
	{"stolen \u202eon approved", "U+202E"}, // right-to-left override
	{"终端\u2066丢失\u2069", "U+2066"},         // left-to-right isolate
	{"lost\u200b", "U+200B"},               // zero-width space
	{"\ufeff丢失", "U+FEFF"},
	{"丢失\u200f", "U+200F"},
	{"lost\x1b[2K", "U+001B"},
	{"lost\u2028found", "U+2028"},
	{"丢失\ufe0f", "U+FE0F"}, // variation selector
	// Too long: 4,800 bytes (a 6 MB reason was taken until 8 December 2026).
	{strings.Repeat("终端丢失", 400), "4800 bytes long, over the 4096 bytes"},
}

// goodNotes are ordinary notes, in Chinese too, over several lines: taken.
var goodNotes = []string{strings.Repeat("丢", 1365) + "a", "", "device replaced", "终端丢失，商户已报案（派出所编号 123）", "商户说：\n1. 设备已找回\n2. 请恢复\tOK", "星巴克　南京西路店 "}

// TestNotesRefuseBidiAndInvisible: a change request's reason (a suspension's too),
// a review note (approve, reject, cancel), an incident's and an alert's note and an
// alert rule's description are refused when they hold a control (other than a tab
// or line break), bidi, zero-width or invisible character: ErrInvalid naming the
// code point and the field, without the character, and nothing stored. Ordinary
// text in Chinese, over several lines, is taken.
func TestNotesRefuseBidiAndInvisible(t *testing.T) {
	f := newFixture(t)
	check := func(what, code string, err error) {
		t.Helper()
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), code) || !strings.Contains(err.Error(), what) {
			t.Errorf("%s: error %v, want ErrInvalid naming %s and %q", what, err, code, what)
			return
		}
		if strings.ContainsAny(err.Error(), "\u202e\u2066\u200b\ufeff\u200f\x1b\u2028\ufe0f") {
			t.Errorf("%s: error %q carries the character", what, err)
		}
	}
	// A suspension whose reason reorders text is refused; no change is requested.
	before, _ := f.reg.Changes(ChangeFilter{})
	for _, n := range badNotes {
		_, err := f.reg.RequestChange(alice, Change{Op: OpTerminalSuspend, Target: "T0000001", Reason: n.text})
		check("reason", n.code, err)
	}
	if after, _ := f.reg.Changes(ChangeFilter{}); len(after) != len(before) {
		t.Fatalf("%d changes requested with refused reasons", len(after)-len(before))
	}
	for _, n := range goodNotes {
		c, err := f.reg.RequestChange(alice, Change{Op: OpTerminalSuspend, Target: "T0000001", Reason: n})
		if err != nil {
			t.Errorf("reason %q: %v, want taken", n, err)
			continue
		}
		if got, _ := f.reg.GetChange(c.ID); got.Change.Reason != strings.TrimSpace(n) {
			t.Errorf("reason %q stored as %q", n, got.Change.Reason)
		}
		if _, err := f.reg.Cancel(alice, c.ID, n); err != nil {
			t.Errorf("cancel with note %q: %v, want taken", n, err)
		}
	}
	// Incident notes.
	req := f.goodT1()
	req.DeviceID = "SN-THIEF"
	f.reg.Check(req)
	f.reopen(t) // writes the queued incident
	incs, err := f.reg.Incidents(IncidentFilter{Reason: ReasonDeviceMismatch})
	if err != nil || len(incs) != 1 {
		t.Fatalf("incidents %+v, %v", incs, err)
	}
	for _, n := range badNotes {
		_, err := f.reg.AcknowledgeIncident(alice, incs[0].ID, n.text)
		check("note", n.code, err)
		_, err = f.reg.ResolveIncident(alice, incs[0].ID, n.text)
		check("note", n.code, err)
	}
	if got, _ := f.reg.Incidents(IncidentFilter{Reason: ReasonDeviceMismatch}); got[0].Status != IncidentOpen {
		t.Fatalf("incident after refused notes: %s, want open", got[0].Status)
	}
	if _, err := f.reg.AcknowledgeIncident(alice, incs[0].ID, "已联系商户"); err != nil {
		t.Fatalf("acknowledgement with a Chinese note: %v", err)
	}
	// Review notes.
	c, err := f.reg.RequestChange(alice, Change{Op: OpMerchantFreeze, Target: "000000000000001", Reason: "AML 审查"})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range badNotes {
		_, err := f.reg.Approve(bob, c.ID, n.text)
		check("review note", n.code, err)
		_, err = f.reg.Reject(bob, c.ID, n.text)
		check("review note", n.code, err)
		_, err = f.reg.Cancel(alice, c.ID, n.text)
		check("review note", n.code, err)
	}
	if got, _ := f.reg.GetChange(c.ID); got.Change.Status != ChangePending {
		t.Fatalf("change after refused review notes: %s, want pending", got.Change.Status)
	}
	if _, err := f.reg.Approve(bob, c.ID, "同意：\n已核实"); err != nil {
		t.Fatalf("approval with a Chinese note over two lines: %v", err)
	}
	// Alert notes and alert rule descriptions.
	for _, n := range badNotes {
		_, err := f.reg.AcknowledgeAlert(carol, "ALR-1", n.text)
		check("note", n.code, err)
		_, err = f.reg.PutAlertRule(alice, AlertRule{ID: "pos", Description: n.text, Threshold: Duration(time.Hour)})
		check("description", n.code, err)
	}
	for _, r := range f.reg.AlertRules() {
		if r.ID == "pos" {
			t.Fatalf("alert rule stored with a refused description: %+v", r)
		}
	}
	if _, err := f.reg.PutAlertRule(alice, AlertRule{ID: "pos", Description: "离线一小时的终端", Threshold: Duration(time.Hour)}); err != nil {
		t.Fatalf("alert rule with a Chinese description: %v", err)
	}
}
