package registry

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestChangeExpires checks that a change waiting longer than Options.ChangeTTL
// cannot be approved (ErrExpired, naming its age), reads as expired (GetChange
// and Changes; a "pending" filter leaves it out), and can still be rejected; and
// that its expiry is the one stamped when it was requested, so that a node with
// another change_ttl (here the same registry reopened with one) judges it alike.
func TestChangeExpires(t *testing.T) {
	f := newFixtureOpts(t, Options{SeenFlushInterval: -1, ChangeTTL: 48 * time.Hour})
	old, err := f.reg.RequestChange(alice, Change{Op: OpTerminalSuspend, Target: "T0000001", Reason: "lost"})
	if err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(48 * time.Hour); !old.ExpiresAt.Equal(want) {
		t.Fatalf("ExpiresAt %v, want %v", old.ExpiresAt, want)
	}
	f.clock.Advance(47 * time.Hour)
	fresh, err := f.reg.RequestChange(alice, Change{Op: OpMerchantFreeze, Target: "000000000000001", Reason: "audit"})
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(2 * time.Hour) // old is 49 h old, fresh 2 h

	// Another node's (here: the next start's) configuration says 30 days: the
	// expiry stamped at the request still rules.
	f.opts.ChangeTTL = 30 * 24 * time.Hour
	f.reopen(t)

	_, err = f.reg.Approve(bob, old.ID, "ok")
	if !errors.Is(err, ErrExpired) || !strings.Contains(err.Error(), "requested 2d1h ago by alice") {
		t.Fatalf("approve of a 49 h old change: %v, want ErrExpired naming its age", err)
	}
	if tm, _ := f.reg.Terminal("T0000001"); tm.Status != TerminalActive {
		t.Fatalf("terminal %s after a refused approval, want active", tm.Status)
	}
	pv, err := f.reg.GetChange(old.ID)
	if err != nil {
		t.Fatal(err)
	}
	if pv.Change.Status != ChangeExpired || !strings.Contains(pv.Error, "expired") {
		t.Errorf("preview of the expired change: status %s, error %q", pv.Change.Status, pv.Error)
	}
	pending, err := f.reg.Changes(ChangeFilter{Status: ChangePending})
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 || pending[0].ID != fresh.ID {
		t.Errorf("pending changes: %v, want only %s", ids(pending), fresh.ID)
	}
	expired, err := f.reg.Changes(ChangeFilter{Status: ChangeExpired})
	if err != nil {
		t.Fatal(err)
	}
	if len(expired) != 1 || expired[0].ID != old.ID || expired[0].Status != ChangeExpired {
		t.Errorf("expired changes: %v, want only %s", ids(expired), old.ID)
	}
	if _, err := f.reg.Approve(bob, fresh.ID, "ok"); err != nil {
		t.Errorf("approve of a 2 h old change: %v", err)
	}
	rej, err := f.reg.Reject(bob, old.ID, "too old")
	if err != nil || rej.Status != ChangeRejected {
		t.Fatalf("reject of the expired change: %v %v", rej, err)
	}
}

// TestChangeExpiresWithoutStamp checks that a change stored before changes
// carried ExpiresAt expires Options.ChangeTTL after it was requested.
func TestChangeExpiresWithoutStamp(t *testing.T) {
	f := newFixture(t)
	c, err := f.reg.RequestChange(alice, Change{Op: OpTerminalSuspend, Target: "T0000001", Reason: "lost"})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := f.reg.loadChange(c.ID)
	if err != nil {
		t.Fatal(err)
	}
	stored.ExpiresAt = time.Time{}
	f.reg.mu.Lock()
	err = f.reg.commitLocked(func(txn *wtx) error { return putJSON(txn, seqKey(pfxChange, stored.Seq), stored) })
	f.reg.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(DefaultChangeTTL + time.Minute)
	if _, err := f.reg.Approve(bob, c.ID, "ok"); !errors.Is(err, ErrExpired) {
		t.Fatalf("approve of an unstamped change 7 days old: %v, want ErrExpired", err)
	}
}

func ids(cs []*Change) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.ID+":"+string(c.Status))
	}
	return out
}
