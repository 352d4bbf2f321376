package registry

import (
	"errors"
	"strings"
	"testing"
)

// Users: only an admin adds or disables one; the hash never leaves the registry;
// a wrong password, an unknown name and a disabled user get the one ErrBadLogin;
// each change and each recorded event is in the oplog, and the chain verifies.
func TestUsers(t *testing.T) {
	f := newFixture(t)
	r := f.reg
	if _, err := r.AddUser(alice, "zoe", RoleOperator, "long enough pw"); !errors.Is(err, ErrForbidden) {
		t.Fatalf("operator adds a user: %v, want ErrForbidden", err)
	}
	if _, err := r.AddUser(root, "zoe", RoleOperator, "short"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("short password: %v, want ErrInvalid", err)
	}
	if _, err := r.AddUser(root, "zoe", "boss", "long enough pw"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown role: %v, want ErrInvalid", err)
	}
	u, err := r.AddUser(root, "zoe", RoleReviewer, "long enough pw")
	if err != nil || u.Hash != "" || u.Role != RoleReviewer {
		t.Fatalf("AddUser: %+v, %v (want a reviewer without its hash)", u, err)
	}
	if _, err := r.AddUser(root, "zoe", RoleReviewer, "long enough pw"); !errors.Is(err, ErrConflict) {
		t.Fatalf("second add: %v, want ErrConflict", err)
	}
	if got, err := r.CheckPassword("zoe", "long enough pw"); err != nil || got.Name != "zoe" || got.Hash != "" {
		t.Fatalf("CheckPassword: %+v, %v", got, err)
	}
	for _, c := range [][2]string{{"zoe", "wrong password"}, {"nobody", "long enough pw"}} {
		if _, err := r.CheckPassword(c[0], c[1]); !errors.Is(err, ErrBadLogin) {
			t.Fatalf("CheckPassword(%s, %s): %v, want ErrBadLogin", c[0], c[1], err)
		}
	}
	if err := r.SetPassword(alice, "zoe", "another password"); !errors.Is(err, ErrForbidden) {
		t.Fatalf("operator sets zoe's password: %v", err)
	}
	if err := r.SetPassword(Actor{Name: "zoe", Role: RoleReviewer}, "zoe", "another password"); err != nil {
		t.Fatalf("zoe sets her own password: %v", err)
	}
	if err := r.DisableUser(root, "zoe", true); err != nil {
		t.Fatal(err)
	}
	if _, err := r.CheckPassword("zoe", "another password"); !errors.Is(err, ErrBadLogin) {
		t.Fatalf("disabled user logs in: %v", err)
	}
	if err := r.RecordEvent(Actor{Name: "zoe", Role: RoleReviewer}, "console.logout", "user", "zoe", "from 127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	es, err := r.Oplog(OplogFilter{Target: "zoe"})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range es {
		actions = append(actions, e.Action)
		if strings.Contains(string(e.After)+string(e.Before), "argon2") {
			t.Fatalf("oplog entry %d carries the hash: %s", e.Seq, e.After)
		}
	}
	if got := strings.Join(actions, " "); got != "user.add user.passwd user.disable console.logout" {
		t.Fatalf("oplog actions: %s", got)
	}
	if _, err := r.VerifyOplog(); err != nil {
		t.Fatal(err)
	}
	us, err := r.Users()
	if err != nil || len(us) != 1 || us[0].Hash != "" || !us[0].Disabled {
		t.Fatalf("Users: %+v, %v", us, err)
	}
}

// TestApproverNotRequestersPuppet: two-person review binds people, not names. An
// admin who requests a change cannot approve it through a console user whose password
// he set (created it, or reset another's), until that user sets its own.
func TestApproverNotRequestersPuppet(t *testing.T) {
	f := newFixture(t)
	r := f.reg
	request := func(op Op) *Change {
		t.Helper()
		c, err := r.RequestChange(root, Change{Op: op, Target: "T0000002", Reason: "stolen, then found"})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	eve := Actor{Name: "eve", Role: RoleReviewer}
	if _, err := r.AddUser(root, "eve", RoleReviewer, "eve's long password"); err != nil {
		t.Fatal(err)
	}
	c := request(OpTerminalSuspend)
	_, err := r.Approve(eve, c.ID, "")
	if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "who set the password of eve") {
		t.Fatalf("approval by the requester's new user: %v, want forbidden", err)
	}
	// Once eve chose her own password, root no longer knows it.
	if err := r.SetPassword(eve, "eve", "eve's own password"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Approve(eve, c.ID, ""); err != nil {
		t.Fatalf("approval after eve set her own password: %v", err)
	}
	// A reset by the requester takes the account over again.
	if err := r.SetPassword(root, "eve", "root knows this one"); err != nil {
		t.Fatal(err)
	}
	c = request(OpTerminalResume)
	if _, err := r.Approve(eve, c.ID, ""); !errors.Is(err, ErrForbidden) {
		t.Fatalf("approval after the requester reset eve's password: %v, want forbidden", err)
	}
	// Names that are not console users (API tokens) are judged by name alone.
	if _, err := r.Approve(dave, c.ID, ""); err != nil {
		t.Fatal(err)
	}
}
