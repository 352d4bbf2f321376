package registry

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/alexedwards/argon2id"
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
	if err := r.DisableUser(Actor{Name: "zoe", Role: RoleAdmin}, "zoe", true); !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "own account") {
		t.Fatalf("an admin disables their own account: %v, want ErrForbidden", err)
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

// TestApproverIndependentOfRequester: two-person review needs two accounts no one
// has held both of. An admin who created an operator and a reviewer (and so knew
// both first passwords) could request and approve alone, though neither account
// held the other: refused, and the answer names the admin and says what to do.
// Accounts made by two admins the switch or the configuration made are
// independent; a chain of admins, an admin's password reset and a cycle of
// resets are followed; a chain longer than maxControlDepth is refused, not passed.
func TestApproverIndependentOfRequester(t *testing.T) {
	f := newFixture(t)
	r := f.reg
	sys := Actor{Name: SystemActor, Role: RoleAdmin}
	add := func(by Actor, name, role string) Actor {
		t.Helper()
		if _, err := r.AddUser(by, name, role, name+"'s long password"); err != nil {
			t.Fatal(err)
		}
		return Actor{Name: name, Role: role}
	}
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
	refused := func(what string, c *Change, by Actor, want ...string) {
		t.Helper()
		_, err := r.Approve(by, c.ID, "")
		if !errors.Is(err, ErrForbidden) {
			t.Fatalf("%s: %v, want forbidden", what, err)
		}
		for _, w := range append(want, "has held the account", "ask another reviewer, or have an admin none of them has held create a new account for "+by.Name) {
			if !strings.Contains(err.Error(), w) {
				t.Fatalf("%s: %q lacks %q", what, err, w)
			}
		}
	}
	approved := func(what string, c *Change, by Actor) {
		t.Helper()
		if _, err := r.Approve(by, c.ID, ""); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	// One admin (a console user the switch created) makes both accounts.
	ada := add(sys, "ada", RoleAdmin)
	olga := add(ada, "olga", RoleOperator)
	rita := add(ada, "rita", RoleReviewer)
	c := request(olga)
	refused("a reviewer made by the admin who made the requester", c, rita,
		"requested by olga and may not be approved by rita: ada has held the account of both olga and rita (ada -> olga; ada -> rita: each account created the next")
	// The same with a configuration token as that admin.
	rosa := add(root, "rosa", RoleReviewer)
	otto := add(root, "otto", RoleOperator)
	c2, err := r.RequestChange(otto, Change{Op: OpTerminalSuspend, Target: "T0000009", Reason: "lost"})
	if err != nil {
		t.Fatal(err)
	}
	refused("a reviewer made by the token that made the requester", c2, rosa, "root has held the account of both otto and rosa (root -> otto; root -> rosa:", "none of otto, root (who have held otto's)")
	approved("a token reviewer", c2, dave)

	// Another admin the switch made makes the reviewer: independent.
	bea := add(sys, "bea", RoleAdmin)
	rolf := add(bea, "rolf", RoleReviewer)
	approved("a reviewer made by another admin", c, rolf)

	// A chain: ada makes an admin, who makes a reviewer.
	cole := add(ada, "cole", RoleAdmin)
	ravi := add(cole, "ravi", RoleReviewer)
	c = request(olga)
	refused("a reviewer made through an admin the requester's admin made", c, ravi, "ada has held the account of both olga and ravi (ada -> olga; ada -> cole -> ravi:")

	// A password reset makes a controller: bea's reviewer, reset by ada.
	rhea := add(bea, "rhea", RoleReviewer)
	approved("bea's reviewer before ada's reset", c, rhea)
	if err := r.SetPassword(ada, "rhea", "ada knows this one"); err != nil {
		t.Fatal(err)
	}
	c = request(olga)
	refused("after ada reset the reviewer's password", c, rhea, "ada has held the account of both olga and rhea (ada -> olga; ada -> rhea:")
	// Her own new password does not lift it.
	if err := r.SetPassword(rhea, "rhea", "rhea's very own password"); err != nil {
		t.Fatal(err)
	}
	refused("after rhea set her own password", c, rhea, "ada -> rhea")

	// A cycle: cole resets ada's password (ada and cole have held each other's);
	// the walk ends, and ada still held both.
	if err := r.SetPassword(cole, "ada", "cole knows this one"); err != nil {
		t.Fatal(err)
	}
	refused("through a cycle of resets", c, ravi, "ada -> cole -> ravi")
	approved("rolf, still independent", c, rolf)

	// The direct cases keep their answers: the requester made the reviewer.
	c = request(cole)
	refused("the requester's own reviewer", c, ravi, "cole has held the account of ravi (cole -> ravi:")
	approved("rolf for cole", c, rolf)

	// A chain of maxControlDepth+1 admins from the switch: a reviewer maxControlDepth
	// links below its top is judged; one a link further cannot be, and is refused.
	prev := add(sys, "link1", RoleAdmin)
	var chain []Actor
	for i := 2; i <= maxControlDepth+1; i++ {
		prev = add(prev, fmt.Sprintf("link%d", i), RoleAdmin)
		chain = append(chain, prev)
	}
	shallow := add(chain[len(chain)-2], "shallow", RoleReviewer)
	deep := add(chain[len(chain)-1], "deep", RoleReviewer)
	c = request(olga)
	_, err = r.Approve(deep, c.ID, "")
	if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), fmt.Sprintf("the accounts that have held deep's go back more than %d links", maxControlDepth)) {
		t.Fatalf("a reviewer %d links below the switch's admin: %v, want refused", maxControlDepth+1, err)
	}
	approved("a reviewer at the depth bound", c, shallow)
}

// The demo users' kept hashes are their passwords' under the parameters every
// password gets, each with its own salt, and a demo start logs each in.
func TestDemoUserHashes(t *testing.T) {
	salts := map[string]string{}
	for _, u := range DemoUsers() {
		ok, err := argon2id.ComparePasswordAndHash(u.Password, u.Hash)
		if err != nil || !ok {
			t.Errorf("%s: kept hash does not match the password (%v)", u.Name, err)
		}
		params, salt, _, err := argon2id.DecodeHash(u.Hash)
		if err != nil {
			t.Fatalf("%s: %v", u.Name, err)
		}
		if *params != *passwordParams {
			t.Errorf("%s: hashed with %+v, want %+v", u.Name, *params, *passwordParams)
		}
		if other, dup := salts[string(salt)]; dup {
			t.Errorf("%s and %s share a salt", u.Name, other)
		}
		salts[string(salt)] = u.Name
	}
	r := newFixture(t).reg
	if n, err := LoadDemoUsers(r); err != nil || n != len(DemoUsers()) {
		t.Fatalf("LoadDemoUsers = %d, %v; want %d", n, err, len(DemoUsers()))
	}
	for _, u := range DemoUsers() {
		got, err := r.CheckPassword(u.Name, u.Password)
		if err != nil || got.Role != u.Role {
			t.Errorf("%s logs in: %+v, %v", u.Name, got, err)
		}
		if _, err := r.CheckPassword(u.Name, u.Password+"x"); !errors.Is(err, ErrBadLogin) {
			t.Errorf("%s with a wrong password: %v, want ErrBadLogin", u.Name, err)
		}
	}
	if n, err := LoadDemoUsers(r); err != nil || n != 0 {
		t.Errorf("LoadDemoUsers again = %d, %v; want 0", n, err)
	}
}
