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
// admin who requests a change cannot approve it through a console user whose account
// he has held (created it, or reset its password), even after that user chose its own
// password, nor through a chain of users created by such users; nor can a user
// approve the changes of an account it created.
func TestApproverNotRequestersPuppet(t *testing.T) {
	f := newFixture(t)
	r := f.reg
	ops := []Op{OpTerminalSuspend, OpTerminalResume}
	n := 0
	request := func(by Actor) *Change {
		t.Helper()
		c, err := r.RequestChange(by, Change{Op: ops[n%2], Target: "T0000002", Reason: "stolen, then found"})
		if err != nil {
			t.Fatal(err)
		}
		n++
		return c
	}
	refused := func(what string, c *Change, by Actor) {
		t.Helper()
		if _, err := r.Approve(by, c.ID, ""); !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "has held the account") {
			t.Fatalf("%s: %v, want forbidden", what, err)
		}
	}
	add := func(by Actor, name, role string) Actor {
		t.Helper()
		if _, err := r.AddUser(by, name, role, name+"'s long password"); err != nil {
			t.Fatal(err)
		}
		return Actor{Name: name, Role: role}
	}
	eve := add(root, "eve", RoleReviewer)
	c := request(root)
	refused("the requester's new user", c, eve)
	// Eve's own password does not prove root forgot hers.
	if err := r.SetPassword(eve, "eve", "eve's own password"); err != nil {
		t.Fatal(err)
	}
	refused("after eve set her own password", c, eve)
	// A chain: root creates an admin, who creates a reviewer.
	mallory := add(root, "mallory", RoleAdmin)
	trent := add(mallory, "trent", RoleReviewer)
	refused("a user created by the requester's user", c, trent)
	// The other way: a user the reviewer created requests.
	puppet := add(mallory, "puppet", RoleOperator)
	if _, err := r.Approve(dave, c.ID, ""); err != nil { // clear the terminal's pending change
		t.Fatal(err)
	}
	c = request(puppet)
	refused("the change of a user the reviewer created", c, Actor{Name: "mallory", Role: RoleAdmin})
	if _, err := r.Approve(dave, c.ID, ""); err != nil {
		t.Fatal(err)
	}
	// A reset of an existing reviewer's password takes the account over too.
	victor := add(Actor{Name: "system", Role: RoleAdmin}, "victor", RoleReviewer)
	c = request(carol)
	if err := r.SetPassword(Actor{Name: "carol-admin", Role: RoleAdmin}, "victor", "carol-admin knows this"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Approve(victor, c.ID, ""); err != nil {
		t.Fatalf("victor, reset by another admin, approving carol's change: %v", err)
	}
	c = request(Actor{Name: "carol-admin", Role: RoleOperator})
	refused("after the requester reset victor's password", c, victor)
	// Names that are not console users (API tokens) are judged by name alone.
	if _, err := r.Approve(dave, c.ID, ""); err != nil {
		t.Fatal(err)
	}
}

// "system" is the switch's own name: no user may take it (it would cancel the
// changes the switch requests and pass for its actions), and the users the
// switch created (the demo's) may approve a change it requested, such as a
// suspension the wave limit held.
func TestSystemNameReserved(t *testing.T) {
	f := newFixture(t)
	r := f.reg
	if _, err := r.AddUser(root, SystemActor, RoleOperator, "long enough pw"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a user named %s: %v, want ErrInvalid", SystemActor, err)
	}
	if _, err := LoadDemoUsers(r); err != nil {
		t.Fatal(err)
	}
	c, err := r.RequestChange(Actor{Name: SystemActor, Role: RoleOperator}, Change{Op: OpTerminalSuspend, Target: "T0000001", Reason: "held by the wave limit"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Approve(Actor{Name: "reviewer", Role: RoleReviewer}, c.ID, "checked"); err != nil {
		t.Fatalf("the demo reviewer approves the switch's held suspension: %v", err)
	}
}
