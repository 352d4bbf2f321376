package registry

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestRegisterOp: an operation registered by another package goes through the same
// review: requested with its payload, checked at the request and the approval,
// approved by a different reviewer only, logged with its effect in the oplog, and
// handed to the owner after the commit; its approved changes are listed for the
// owner's fold.
func TestRegisterOp(t *testing.T) {
	f := newFixture(t)
	const op Op = "widget.put"
	var applied []string
	allow := true
	f.reg.RegisterOp(op, ExtOp{
		Check: func(c *Change) (ChangeEffect, error) {
			if !allow {
				return ChangeEffect{}, conflictf("widget %s: not now", c.Target)
			}
			return ChangeEffect{Type: "widget", ID: c.Target, After: c.Ext}, nil
		},
		Apply: func(c *Change) { applied = append(applied, c.ID) },
	})
	for _, bad := range []Op{op, OpTerminalSuspend} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("RegisterOp(%s) again did not panic", bad)
				}
			}()
			f.reg.RegisterOp(bad, ExtOp{Check: func(*Change) (ChangeEffect, error) { return ChangeEffect{}, nil }})
		}()
	}
	c, err := f.reg.RequestChange(alice, Change{Op: op, Target: "w1", Reason: "blue", Ext: json.RawMessage(`{"colour":"blue"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if pv, err := f.reg.GetChange(c.ID); err != nil || len(pv.Effects) != 1 || string(pv.Effects[0].After) != `{"colour":"blue"}` {
		t.Fatalf("preview: %+v %v", pv, err)
	}
	if cs, err := f.reg.PendingChanges(op); err != nil || len(cs) != 1 || cs[0].ID != c.ID || string(cs[0].Ext) != `{"colour":"blue"}` {
		t.Fatalf("PendingChanges: %+v %v", cs, err)
	}
	if _, err := f.reg.Approve(alice, c.ID, ""); !errors.Is(err, ErrForbidden) {
		t.Fatalf("requester approves: %v", err)
	}
	allow = false
	if _, err := f.reg.Approve(bob, c.ID, ""); !errors.Is(err, ErrConflict) || len(applied) != 0 {
		t.Fatalf("approval the owner refuses: %v, applied %v", err, applied)
	}
	allow = true
	if _, err := f.reg.Approve(bob, c.ID, "ok"); err != nil || len(applied) != 1 || applied[0] != c.ID {
		t.Fatalf("approve: %v, applied %v", err, applied)
	}
	es, err := f.reg.Oplog(OplogFilter{Action: string(op)})
	if err != nil || len(es) != 1 || es[0].Target != "w1" || es[0].Actor != "bob" || es[0].RequestedBy != "alice" || !strings.Contains(string(es[0].After), "blue") {
		t.Fatalf("oplog: %+v %v", es, err)
	}
	if _, err := f.reg.VerifyOplog(); err != nil {
		t.Fatal(err)
	}
	cs, err := f.reg.ApprovedChanges(op)
	if err != nil || len(cs) != 1 || cs[0].ID != c.ID || string(cs[0].Ext) != `{"colour":"blue"}` {
		t.Fatalf("ApprovedChanges: %+v %v", cs, err)
	}
	if cs, err := f.reg.PendingChanges(op); err != nil || len(cs) != 0 {
		t.Fatalf("PendingChanges after the approval: %+v %v", cs, err)
	}
	// Rejected and cancelled changes are listed for the owner's cleanup.
	rej, err := f.reg.RequestChange(alice, Change{Op: op, Target: "w2", Ext: json.RawMessage(`{"colour":"red"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Reject(bob, rej.ID, "no"); err != nil {
		t.Fatal(err)
	}
	can, err := f.reg.RequestChange(alice, Change{Op: op, Target: "w3", Ext: json.RawMessage(`{"colour":"green"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if cs, err := f.reg.ClosedChanges(op); err != nil || len(cs) != 1 || cs[0].ID != rej.ID {
		t.Fatalf("ClosedChanges with one rejected and one pending: %+v %v", cs, err)
	}
	if _, err := f.reg.Cancel(alice, can.ID, ""); err != nil {
		t.Fatal(err)
	}
	if cs, err := f.reg.ClosedChanges(op); err != nil || len(cs) != 2 || cs[0].ID != rej.ID || cs[1].ID != can.ID || string(cs[1].Ext) != `{"colour":"green"}` {
		t.Fatalf("ClosedChanges: %+v %v", cs, err)
	}
	// An operation nobody registered is refused, and its payload never stored.
	if _, err := f.reg.RequestChange(alice, Change{Op: "gadget.put", Target: "g", Ext: json.RawMessage(`{}`)}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unregistered op: %v", err)
	}
}

// TestGroupMinimumNeverLowersOwn: SetGroupMinimums holds a terminal to the higher
// of its own minimum and its rollout group's: a group minimum above the own one
// raises it, one below leaves the own one in force (a floor set for a security fix
// is not undone by a rollout), and clearing the group's restores the own one.
func TestGroupMinimumNeverLowersOwn(t *testing.T) {
	f := newFixture(t)
	tid := "T0000001"
	req := func(av string) CheckResult {
		t.Helper()
		tm, _ := f.reg.Terminal(tid)
		r := CheckRequest{TerminalID: tid, MerchantID: tm.MerchantID, SourceIP: honest, AppVersion: av, Now: f.clock.Now(),
			DeviceID: tm.Binding.DeviceSerial, SIM: tm.Binding.ICCID, IMEI: tm.Binding.IMEI}
		if tm.Location != nil {
			r.Location = GeoPoint{Lat: tm.Location.Lat, Lon: tm.Location.Lon, Present: true}
		}
		return f.reg.Check(r)
	}
	if r := req("1.0.0"); r.Decline {
		t.Fatalf("baseline: %s", r.Reason)
	}
	f.reg.SetGroupMinimums(byTerminal(t, map[string]string{tid: "2.0"}))
	if r := req("1.9.9"); r.Reason != ReasonAppVersionLow || r.ResponseCode != "58" {
		t.Fatalf("under the group minimum, no own one: %+v", r)
	}
	if f.reg.GroupMinimum(tid, "") != "2.0" {
		t.Fatal("GroupMinimum")
	}
	// The terminal's own minimum, 3.0, above the group's 2.0: it holds.
	f.apply(t, Change{Op: OpTerminalChange, Target: tid, TerminalPatch: &TerminalPatch{MinAppVersion: strp("3.0")}})
	if r := req("2.5"); r.Reason != ReasonAppVersionLow {
		t.Fatalf("AV 2.5, own minimum 3.0, group minimum 2.0: %q, want %s", r.Reason, ReasonAppVersionLow)
	}
	if r := req("3.0"); r.Decline {
		t.Fatalf("AV 3.0, own minimum 3.0, group minimum 2.0: declined %s", r.Reason)
	}
	// A group minimum above the own one raises it.
	f.reg.SetGroupMinimums(byTerminal(t, map[string]string{tid: "3.1"}))
	if r := req("3.0.9"); r.Reason != ReasonAppVersionLow {
		t.Fatalf("AV 3.0.9, own minimum 3.0, group minimum 3.1: %q, want %s", r.Reason, ReasonAppVersionLow)
	}
	if r := req("3.1"); r.Decline {
		t.Fatalf("AV 3.1, group minimum 3.1: declined %s", r.Reason)
	}
	f.reg.SetGroupMinimums(nil)
	if r := req("3.0"); r.Decline {
		t.Fatalf("cleared, own minimum 3.0: %s", r.Reason)
	}
	if r := req("2.9"); r.Reason != ReasonAppVersionLow {
		t.Fatalf("cleared, AV 2.9 under the own minimum 3.0: %q", r.Reason)
	}
}

// byTerminal is a GroupMinimums of fixed minimums by terminal ID, whatever the
// application, parsed once (Check must not allocate).
type fixedMinimums map[string]struct {
	v     string
	parts []int
}

func byTerminal(t *testing.T, mins map[string]string) GroupMinimums {
	t.Helper()
	out := fixedMinimums{}
	for id, v := range mins {
		p, err := ParseVersion(v)
		if err != nil {
			t.Fatal(err)
		}
		out[id] = struct {
			v     string
			parts []int
		}{v, p}
	}
	return out
}

func (b fixedMinimums) GroupMinimum(t *Terminal, _ *Merchant, _ string) (string, []int) {
	e, ok := b[t.ID]
	if !ok {
		return "", nil
	}
	return e.v, e.parts
}
