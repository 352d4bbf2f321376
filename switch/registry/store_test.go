package registry

import (
	"testing"
)

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
	if n := len(f.reg.Terminals(TerminalFilter{})); n != 4+testLoadTerminals {
		t.Errorf("terminals after reopen = %d, want %d", n, 4+testLoadTerminals)
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
