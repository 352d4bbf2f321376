package registry

import (
	"errors"
	"strings"
	"sync"
	"testing"
)

// TestApprovalByLookAlikeNameRefused: a change requested as "alice" (an admin
// token's name, say) is not approved by "Alice", "a1ice" or "alice." (a console
// account an admin made for the same person, or one that predates the name
// check): the oplog would show two names a reader takes for one, and one
// person would have requested and approved. Before, only the identical name was
// refused. Another reviewer still approves.
func TestApprovalByLookAlikeNameRefused(t *testing.T) {
	f := newFixture(t)
	r := f.reg
	c, err := r.RequestChange(alice, Change{Op: OpTerminalSuspend, Target: "T0000002", Reason: "lost"})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"Alice", "ALICE", "a1ice", "alice.", "al-ice"} {
		_, err := r.Approve(Actor{Name: name, Role: RoleReviewer}, c.ID, "")
		if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "read as one") {
			t.Fatalf("approval by %q of alice's change: %v, want refused as the same name", name, err)
		}
	}
	if pv, _ := r.GetChange(c.ID); pv.Change.Status != ChangePending {
		t.Fatalf("after the refused approvals: %s, want pending", pv.Change.Status)
	}
	if _, err := r.Approve(bob, c.ID, ""); err != nil {
		t.Fatalf("bob's approval: %v", err)
	}
	// The key ceremonies' dual control asks the same question.
	if how, err := r.HeldBoth("alice", "Alice"); err != nil || !strings.Contains(how, "read as one") {
		t.Fatalf("HeldBoth(alice, Alice) = %q, %v, want the names' sameness", how, err)
	}
	if how, err := r.HeldBoth("alice", "bob"); err != nil || how != "" {
		t.Fatalf("HeldBoth(alice, bob) = %q, %v, want independent", how, err)
	}
}

// TestUserNameLookAlikeRefused: an admin cannot add a console user whose name
// reads as an existing user's ("Bob" beside "bob") or as the switch's own
// ("SYSTEM"): one name, one person. Before, both were added.
func TestUserNameLookAlikeRefused(t *testing.T) {
	f := newFixture(t)
	r := f.reg
	if _, err := r.AddUser(root, "bob", RoleOperator, "bob's long password"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"Bob", "B0B", "bob.", "b_ob"} {
		if _, err := r.AddUser(root, name, RoleReviewer, "a long password for "+name); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "reads as user bob") {
			t.Fatalf("add %q beside bob: %v, want refused", name, err)
		}
	}
	for _, name := range []string{"System", "SYSTEM", "sy.stem"} {
		if _, err := r.AddUser(root, name, RoleReviewer, "a long password for "+name); !errors.Is(err, ErrInvalid) {
			t.Fatalf("add %q: %v, want refused as the switch's name", name, err)
		}
	}
	if _, err := r.AddUser(root, "bobby", RoleReviewer, "bobby's long password"); err != nil {
		t.Fatalf("another name: %v", err)
	}
}

// TestApprovalOfDisabledRequesterRefused: a change requested by a console user
// whose account an admin has since disabled (someone who left, or whose
// account was taken) is not applied by a reviewer's approval: the review
// approves a request of someone entitled to make it. It can still be rejected;
// once the account is enabled again it can be approved. Before, the approval
// applied it.
func TestApprovalOfDisabledRequesterRefused(t *testing.T) {
	f := newFixture(t)
	r := f.reg
	sys := Actor{Name: SystemActor, Role: RoleAdmin}
	if _, err := r.AddUser(sys, "olga", RoleOperator, "olga's long password"); err != nil {
		t.Fatal(err)
	}
	olga := Actor{Name: "olga", Role: RoleOperator}
	c, err := r.RequestChange(olga, Change{Op: OpTerminalSuspend, Target: "T0000002", Reason: "lost"})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.DisableUser(root, "olga", true); err != nil {
		t.Fatal(err)
	}
	_, err = r.Approve(bob, c.ID, "")
	if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "olga's account is disabled") {
		t.Fatalf("approval of a disabled user's change: %v, want refused", err)
	}
	if pv, _ := r.GetChange(c.ID); pv.Change.Status != ChangePending {
		t.Fatalf("after the refused approval: %s, want pending", pv.Change.Status)
	} else if !strings.Contains(pv.Error, "disabled") {
		t.Fatalf("the preview's error %q does not say the requester is disabled", pv.Error)
	}
	if err := r.DisableUser(root, "olga", false); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Approve(bob, c.ID, ""); err != nil {
		t.Fatalf("approval once olga is enabled again: %v", err)
	}
	// A rejection needs no entitled requester.
	c2, err := r.RequestChange(olga, Change{Op: OpTerminalResume, Target: "T0000002", Reason: "found"})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.DisableUser(root, "olga", true); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reject(bob, c2.ID, "olga left"); err != nil {
		t.Fatalf("rejection of a disabled user's change: %v", err)
	}
}

// TestApprovalOfRevokedTokenRefused: with Options.TokenRoles (the switch gives
// its admin tokens), a change requested by a token's holder is not approved once
// no token of that name may request changes (removed from the configuration, or
// its role changed to analyst); the preview says why; it passes again once the
// token is back. Before, a removed token's pending changes were approved.
func TestApprovalOfRevokedTokenRefused(t *testing.T) {
	var mu sync.Mutex
	tokens := map[string][]string{"alice": {RoleOperator}, "bob": {RoleReviewer}}
	f := newFixtureOpts(t, Options{SeenFlushInterval: -1, TokenRoles: func(name string) []string {
		mu.Lock()
		defer mu.Unlock()
		return tokens[name]
	}})
	set := func(roles ...string) {
		mu.Lock()
		tokens["alice"] = roles
		mu.Unlock()
	}
	r := f.reg
	c, err := r.RequestChange(alice, Change{Op: OpTerminalSuspend, Target: "T0000002", Reason: "lost"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		roles []string
		want  string
	}{
		{nil, "no admin token of the configuration has that name any more"},
		{[]string{RoleAnalyst}, "its token's role is now analyst"},
	} {
		set(tc.roles...)
		_, err := r.Approve(bob, c.ID, "")
		if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("approval with alice's token roles %v: %v, want refused with %q", tc.roles, err, tc.want)
		}
		if pv, _ := r.GetChange(c.ID); pv.Change.Status != ChangePending || !strings.Contains(pv.Error, tc.want) {
			t.Fatalf("preview with alice's token roles %v: %s, %q", tc.roles, pv.Change.Status, pv.Error)
		}
	}
	set(RoleAnalyst, RoleOperator)
	if _, err := r.Approve(bob, c.ID, ""); err != nil {
		t.Fatalf("approval once alice holds an operator token again: %v", err)
	}
}

// TestPreviewWarnsOfLookAlikeIDs: the preview of a merchant's registration whose
// ID reads as an existing merchant's (00000000000000I beside 000000000000001),
// and of an import holding a terminal whose ID reads as an existing one's and
// two rows that read as each other, carries a warning naming both and the
// differing character; a plain registration carries none. Before, nothing told
// the reviewer.
func TestPreviewWarnsOfLookAlikeIDs(t *testing.T) {
	f := newFixture(t)
	r := f.reg
	m, _ := r.Merchant("000000000000001")
	twin := *m
	twin.ID, twin.Status = "00000000000000I", ""
	c, err := r.RequestChange(alice, Change{Op: OpMerchantRegister, Merchant: &twin, Reason: "new shop"})
	if err != nil {
		t.Fatal(err)
	}
	pv, err := r.GetChange(c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(pv.Warnings) != 1 || !strings.Contains(pv.Warnings[0], "new merchant 00000000000000I reads as existing merchant 000000000000001 (U+0049 'I' where the other has U+0031 '1' (character 15))") {
		t.Fatalf("warnings %q", pv.Warnings)
	}
	plain := *m
	plain.ID, plain.Status = "000000000000777", ""
	c, err = r.RequestChange(alice, Change{Op: OpMerchantRegister, Merchant: &plain, Reason: "new shop"})
	if err != nil {
		t.Fatal(err)
	}
	if pv, _ := r.GetChange(c.ID); len(pv.Warnings) != 0 {
		t.Fatalf("a plain registration warns: %q", pv.Warnings)
	}
	tm, _ := r.Terminal("T0000001")
	row := func(id string) Terminal {
		n := Terminal{ID: id, MerchantID: tm.MerchantID, Kind: KindPOS}
		return n
	}
	c, err = r.RequestChange(alice, Change{Op: OpTerminalImport, Terminals: []Terminal{row("TO000001"), row("NEW00001"), row("NEW0000I"), row("NEW00002")}, Reason: "batch"})
	if err != nil {
		t.Fatal(err)
	}
	pv, _ = r.GetChange(c.ID)
	got := strings.Join(pv.Warnings, "\n")
	for _, want := range []string{"new terminal TO000001 reads as existing terminal T0000001", "new terminal NEW0000I reads as new terminal of the same change NEW00001"} {
		if !strings.Contains(got, want) {
			t.Fatalf("import warnings lack %q:\n%s", want, got)
		}
	}
	if len(pv.Warnings) != 2 {
		t.Fatalf("import warnings:\n%s", got)
	}
}
