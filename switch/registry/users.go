package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/alexedwards/argon2id"
	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/internal/actorname"
	"github.com/switchyard/switchyard/internal/carddata"
)

// The console's users (switch/console) live in the registry, beside the
// merchants and terminals they manage: a user is written with the same commit as
// its oplog entry, and in a cluster that commit goes through the registry's state
// log like any other registry write, so every node knows every user. Only the
// password's argon2id hash is stored (PHC string), never the password.
//
// The roles are the admin API's (operator, reviewer, analyst, admin): a console
// user acts in the registry exactly as a bearer token of the same role would.

// pfxUser is where the users are: + name -> User JSON.
const pfxUser = "reg/user/"

// RoleAnalyst is the risk analyst's role (the registry itself gives it nothing to
// change; the console and the API let it edit rules and lists).
const RoleAnalyst = "analyst"

// MinPasswordLen is the shortest password a user may be given.
const MinPasswordLen = 10

// passwordParams are argon2id's parameters: OWASP's recommended minimum (19 MiB,
// two passes, one lane), so that a login costs tens of milliseconds on the
// switch's machine and a stolen hash costs an attacker the same per guess.
var passwordParams = &argon2id.Params{Memory: 19 * 1024, Iterations: 2, Parallelism: 1, SaltLength: 16, KeyLength: 32}

// dummyHash is compared against when a login names nobody, so that an unknown
// name takes as long to refuse as a wrong password.
var dummyHash, _ = argon2id.CreateHash("no such user, no such password", passwordParams)

// ErrBadLogin is the answer to a login with an unknown name, a wrong password or
// a disabled user: one error for all three, so that a caller learns nothing about
// which names exist.
var ErrBadLogin = errors.New("wrong user name or password, or the user is disabled")

// User is a console user. Hash is the argon2id hash of the password; Users and
// the API leave it out.
type User struct {
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	Hash      string    `json:"hash,omitempty"`
	Disabled  bool      `json:"disabled,omitempty"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Controllers are the others who have held the user's account: its creator and
	// every admin who reset its password. One of them may have kept the password (a
	// change by the user itself does not prove otherwise: it needs the old one), so
	// two accounts one person has held, directly or through accounts it created,
	// may not request and approve the same change (checkIndependent).
	Controllers []string `json:"controllers,omitempty"`
	// Version counts the writes of the record (a new password, a disable, an
	// enable): the console ends a session whose user's Version moved since the
	// login. Records before 5 December 2026 start at 0.
	Version int64 `json:"version,omitempty"`
}

// controllers is who has held u's account besides u (records before Controllers:
// the creator).
func (u *User) controllers() []string {
	if len(u.Controllers) > 0 {
		return u.Controllers
	}
	if u.CreatedBy != "" && u.CreatedBy != u.Name {
		return []string{u.CreatedBy}
	}
	return nil
}

// maxControlDepth bounds the walk of holders (a chain of users creating users):
// an account held through a longer chain than this cannot be shown independent of
// another, and its approvals are refused (checkIndependent) rather than passed.
const maxControlDepth = 16

// holding is one account that has held another's (holders): how many links up
// the chain it is and the account it held on the way, one link closer to the
// account the walk started from.
type holding struct {
	depth int    // 0 for the account itself, 1 for its creator or a resetter, ...
	held  string // the account it held on the way ("" at depth 0)
}

// holdings are the accounts that have held one account's (holders), by name.
type holdings map[string]holding

// holders returns every account that has held name's: name itself and,
// transitively, the controllers of each (a created or reset c, c created name),
// each with how it held name's. SystemActor is left out: the switch creating the
// demo or configured users is no person, and "system" as name gives no holders
// at all (a change the switch requests, such as a suspension the wave limit holds,
// may be approved by any reviewer). A name that is no user (a bearer token of the
// configuration, or an account that is gone) has no controllers. deep reports a
// chain longer than maxControlDepth: there may be holders the walk did not reach.
func (r *store) holders(name string) (h holdings, deep bool, err error) {
	h = holdings{}
	if name == SystemActor {
		return h, false, nil
	}
	h[name] = holding{}
	next := []string{name}
	for depth := 0; len(next) > 0; depth++ {
		var more []string
		for _, acct := range next {
			u, err := r.readUser(acct)
			if errors.Is(err, ErrNotFound) {
				continue // a token's name, or an account that is gone
			}
			if err != nil {
				return nil, false, fmt.Errorf("accounts that have held %s's: read user %s: %w", name, acct, err)
			}
			for _, c := range u.controllers() {
				if c == SystemActor || c == "" {
					continue
				}
				if _, seen := h[c]; seen {
					continue // a cycle (b reset the password of its creator), or two paths
				}
				if depth == maxControlDepth {
					return h, true, nil
				}
				h[c] = holding{depth: depth + 1, held: acct}
				more = append(more, c)
			}
		}
		next = more
	}
	return h, false, nil
}

// chain is how holder came to hold the account h was walked from: "a -> c -> b",
// each account having created the next or reset its password.
func (h holdings) chain(holder string) string {
	parts := []string{holder}
	for at := h[holder]; at.held != "" && len(parts) <= maxControlDepth+1; at = h[at.held] {
		parts = append(parts, at.held)
	}
	return strings.Join(parts, " -> ")
}

// maxHoldersShown is how many of the requester's holders a refusal names.
const maxHoldersShown = 8

// names lists the accounts of h, nearest first ("olga, ada, cole"), at most
// maxHoldersShown of them.
func (h holdings) names() string {
	ns := make([]string, 0, len(h))
	for n := range h {
		ns = append(ns, n)
	}
	sort.Slice(ns, func(i, j int) bool {
		if h[ns[i]].depth != h[ns[j]].depth {
			return h[ns[i]].depth < h[ns[j]].depth
		}
		return ns[i] < ns[j]
	})
	if len(ns) > maxHoldersShown {
		return strings.Join(ns[:maxHoldersShown], ", ") + fmt.Sprintf(" and %d more", len(ns)-maxHoldersShown)
	}
	return strings.Join(ns, ", ")
}

// dependence is how accounts a and b may be one person's (holders): the account
// that has held both, nearest first, and the chains by which it did, as "olga has
// held the account of both alice and carol (olga -> alice; olga -> carol" (the
// caller closes the parenthesis after saying what a link is); "" when no account
// has held both. ha is a's holders, for the caller's advice; deep names a or b
// when its holders go back more than maxControlDepth links, so that an
// independence the walk found cannot be trusted.
func (r *store) dependence(a, b string) (how string, ha holdings, deep string, err error) {
	ha, deepA, err := r.holders(a)
	if err != nil {
		return "", nil, "", fmt.Errorf("%s: %w", a, err)
	}
	hb, deepB, err := r.holders(b)
	if err != nil {
		return "", nil, "", fmt.Errorf("%s: %w", b, err)
	}
	common, best := "", -1
	for name, q := range ha {
		if v, ok := hb[name]; ok {
			if d := q.depth + v.depth; best < 0 || d < best || (d == best && name < common) {
				common, best = name, d
			}
		}
	}
	switch {
	case common == "":
	case common == a:
		how = fmt.Sprintf("%s has held the account of %s (%s", common, b, hb.chain(common))
	case common == b:
		how = fmt.Sprintf("%s has held the account of %s (%s", common, a, ha.chain(common))
	default:
		how = fmt.Sprintf("%s has held the account of both %s and %s (%s; %s", common, a, b, ha.chain(common), hb.chain(common))
	}
	switch {
	case deepA:
		deep = a
	case deepB:
		deep = b
	}
	return how, ha, deep, nil
}

// checkIndependent refuses reviewer's approval of change id, which requester
// asked for, unless the two accounts are independent: no account has held both
// (holders: created them or reset their passwords, directly or through accounts
// it created). The requester holding the reviewer's account, or the reviewer the
// requester's, are the cases where that account is one of the two. The answer
// names the account that held both, how, and what to do.
func (r *store) checkIndependent(id, requester, reviewer string) error {
	how, hq, deep, err := r.dependence(requester, reviewer)
	if err != nil {
		return fmt.Errorf("approve %s: requester and reviewer: %w", id, err)
	}
	if how != "" {
		return forbiddenf("change %s was requested by %s and may not be approved by %s: %s: each account created the next or reset its password), "+
			"so one person may have held both; two-person review needs a reviewer whose account none of %s (who have held %s's) has held: "+
			"ask another reviewer, or have an admin none of them has held create a new account for %s (a password reset does not lift it: who has held an account stays on it)",
			id, requester, reviewer, how, hq.names(), requester, reviewer)
	}
	if deep != "" {
		return forbiddenf("change %s was requested by %s and may not be approved by %s: the accounts that have held %s's go back more than %d links (users creating users), "+
			"so the registry cannot tell whether one person has held both; ask a reviewer whose account an admin of the configuration (or one it created) created",
			id, requester, reviewer, deep, maxControlDepth)
	}
	return nil
}

// checkRequesterEnabled refuses the approval of change c when its requester is a
// console user an admin has disabled since (someone who left, or whose account
// was taken), or, with Options.TokenRoles, a name that is no console user and
// holds no admin token that may request changes any more (the token removed
// from the configuration, or given another role): the review approves a request
// of someone entitled to make it, not one its requester can no longer stand
// behind. A rejection is not refused, and an approval passes again once the
// account is enabled or the token back. The switch's own requests
// (SystemActor) are not checked.
//
// may says whether a role may request c's operation (review.canRequestOp).
func (r *store) checkRequesterEnabled(c *Change, may func(Actor, Op) bool) error {
	u, err := r.readUser(c.RequestedBy)
	if errors.Is(err, ErrNotFound) {
		if c.RequestedBy == SystemActor || r.opts.TokenRoles == nil {
			return nil
		}
		roles := r.opts.TokenRoles(c.RequestedBy)
		for _, role := range roles {
			if may(Actor{Name: c.RequestedBy, Role: role}, c.Op) {
				return nil
			}
		}
		held := "no admin token of the configuration has that name any more"
		if len(roles) > 0 {
			held = fmt.Sprintf("its token's role is now %s, which may not request changes", strings.Join(roles, ", "))
		}
		return forbiddenf("change %s was requested by %s, and %s: a change is applied only at the request of someone "+
			"who may still make it; reject it, and have another operator request it again if it is still wanted", c.ID, c.RequestedBy, held)
	}
	if err != nil {
		return fmt.Errorf("approve %s: read its requester %s: %w", c.ID, c.RequestedBy, err)
	}
	if u.Disabled {
		return forbiddenf("change %s was requested by %s, and %s's account is disabled: a change is applied only at the request of someone "+
			"who may still make it; reject it, and have another operator request it again if it is still wanted", c.ID, c.RequestedBy, c.RequestedBy)
	}
	return nil
}

// HeldBoth says whether accounts a and b may be one person's, for the key
// ceremonies' dual control (switch/api, keys/ceremony.go) as for the two-person
// review (checkIndependent): "" when they are independent, else why not, as a
// sentence for an error: "olga has held the account of both alice and carol (olga
// -> alice; olga -> carol: each account created the next or reset its password),
// so one person may have held both". A name that is no account (a bearer token
// of the configuration) has no holders but itself: only the same name is caught.
// err is a failure to read the accounts.
func (r *store) HeldBoth(a, b string) (string, error) {
	if a != b && actorname.Same(a, b) {
		return sameNameText(a, b), nil
	}
	how, ha, deep, err := r.dependence(a, b)
	if err != nil {
		return "", fmt.Errorf("accounts %s and %s: %w", a, b, err)
	}
	if how != "" {
		return fmt.Sprintf("%s: each account created the next or reset its password), so one person may have held both (%s have held %s's)",
			how, ha.names(), a), nil
	}
	if deep != "" {
		return fmt.Sprintf("the accounts that have held %s's go back more than %d links (users creating users), so the registry cannot tell whether one person has held both %s's and %s's",
			deep, maxControlDepth, a, b), nil
	}
	return "", nil
}

// sameNameText says why names a and b, different strings, are one person's for
// the review and dual control (actorname.Same).
func sameNameText(a, b string) string {
	return fmt.Sprintf("the names %s and %s read as one (they differ only in case, '-', '_', '.' or look-alike characters), "+
		"and the review and the oplog know people by name, so one person may hold both", a, b)
}

// validRole reports whether role is one of the API's four.
func validRole(role string) bool {
	switch role {
	case RoleOperator, RoleReviewer, RoleAnalyst, RoleAdmin:
		return true
	}
	return false
}

// ValidUserName reports whether name can be a console user's name: 1 to 64
// letters, digits, '-', '_' or '.' (AddUser refuses any other), and not
// SystemActor, the switch's own name in the oplog: a user of that name would act
// as the switch (cancel the changes it requests, such as the suspensions the wave
// limit holds, and pass for its automatic actions). The console's login checks
// it before anything else, so that a name no user can have costs no password
// hash and leaves nothing of itself in the oplog or in memory. Nor is a name that
// reads as SystemActor ("System", "SYSTEM": actorname.Same). A name that holds a
// card number (carddata.MaskText finds one: a PAN pasted into the login's name
// field) is no user's either, so that it never reaches the oplog in clear.
func ValidUserName(name string) bool {
	if !isIdent(name, 64) || actorname.Same(name, SystemActor) {
		return false
	}
	_, n := carddata.MaskText(name)
	return n == 0
}

func canManageUsers(p Actor) bool { return p.Role == RoleAdmin || p.Name == "system" }

// AddUser creates user name with role and password, as admin p. The password is
// hashed here; it is never stored or logged.
func (r *store) AddUser(p Actor, name, role, password string) (*User, error) {
	return retry(r, func() (*User, error) { return r.addUser(p, name, role, password) })
}

func (r *store) addUser(p Actor, name, role, password string) (*User, error) {
	if err := r.checkNewUser(p, name, role); err != nil {
		return nil, err
	}
	hash, err := hashPassword(name, password)
	if err != nil {
		return nil, err
	}
	return r.addUserHashed(p, name, role, hash)
}

// checkNewUser checks, before the password is hashed, that p may add users
// and that name and role are valid.
func (r *store) checkNewUser(p Actor, name, role string) error {
	if !canManageUsers(p) {
		return forbiddenf("%s (%s) may not add users: admin role needed", p.Name, p.Role)
	}
	if !ValidUserName(name) {
		shown := carddata.MaskField(name) // the error reaches the API's answer and the logs
		return invalidf("user name %q: want 1 to 64 letters, digits, '-', '_' or '.', not %q (the switch's own name) or a name that reads as it, and no card number", shown, SystemActor)
	}
	if !validRole(role) {
		return invalidf("user %s: role %q: want operator, reviewer, analyst or admin", name, role)
	}
	return nil
}

// addUserHashed stores a new user whose password hash is hash, once
// checkNewUser passed.
func (r *store) addUserHashed(p Actor, name, role, hash string) (*User, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.readUser(name); err == nil {
		return nil, conflictf("user %s exists (use passwd to change the password)", name)
	} else if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if other, err := r.lookAlikeUser(name); err != nil {
		return nil, err
	} else if other != "" {
		return nil, conflictf("user %s: the name reads as user %s (they differ only in case, '-', '_', '.' or look-alike characters), "+
			"and the review and the oplog know people by name: give the new user a name no one could take for %s's (one name, one person)", name, other, other)
	}
	now := r.now()
	u := &User{Name: name, Role: role, Hash: hash, CreatedBy: p.Name, CreatedAt: now, UpdatedAt: now, Controllers: []string{p.Name}}
	if err := r.writeUser(p, u, "user.add", nil, map[string]any{"role": role}); err != nil {
		return nil, err
	}
	return u.public(), nil
}

// lookAlikeUser returns the existing user whose name reads as name
// (actorname.Same) but is not name, "" when there is none.
func (r *store) lookAlikeUser(name string) (string, error) {
	key, found := actorname.Key(name), ""
	err := r.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfxUser)})
		defer it.Close()
		for it.Rewind(); it.Valid() && found == ""; it.Next() {
			if other := strings.TrimPrefix(string(it.Item().Key()), pfxUser); other != name && actorname.Key(other) == key {
				found = other
			}
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("registry: read the users' names: %w", err)
	}
	return found, nil
}

// SetPassword gives user name a new password, as admin p (or as the user
// himself, p.Name == name).
func (r *store) SetPassword(p Actor, name, password string) error {
	_, err := retry(r, func() (*User, error) {
		if !canManageUsers(p) && p.Name != name {
			return nil, forbiddenf("%s (%s) may not change the password of %s: admin role needed", p.Name, p.Role, name)
		}
		hash, err := hashPassword(name, password)
		if err != nil {
			return nil, err
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		u, err := r.readUser(name)
		if err != nil {
			return nil, err
		}
		u.Hash, u.UpdatedAt = hash, r.now()
		if p.Name != name && !slices.Contains(u.controllers(), p.Name) {
			u.Controllers = append(slices.Clone(u.controllers()), p.Name) // an admin's reset
		}
		return u, r.writeUser(p, u, "user.passwd", nil, nil)
	})
	return err
}

// DisableUser disables user name (it can no longer log in; its sessions end at
// their next request), as admin p. enable reverses it.
func (r *store) DisableUser(p Actor, name string, disable bool) error {
	_, err := retry(r, func() (*User, error) {
		if !canManageUsers(p) {
			return nil, forbiddenf("%s (%s) may not disable users: admin role needed", p.Name, p.Role)
		}
		if disable && p.Name == name {
			// An admin who disabled their own account by a slip could not undo it:
			// the console would refuse their next request. Another admin must.
			return nil, forbiddenf("%s may not disable their own account: another admin must", p.Name)
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		u, err := r.readUser(name)
		if err != nil {
			return nil, err
		}
		before := map[string]any{"disabled": u.Disabled}
		u.Disabled, u.UpdatedAt = disable, r.now()
		action := "user.disable"
		if !disable {
			action = "user.enable"
		}
		return u, r.writeUser(p, u, action, before, map[string]any{"disabled": u.Disabled})
	})
	return err
}

// User returns user name without its hash.
func (r *store) User(name string) (*User, error) {
	u, err := r.readUser(name)
	if err != nil {
		return nil, err
	}
	return u.public(), nil
}

// Users returns every user, by name, without their hashes.
func (r *store) Users() ([]*User, error) {
	var out []*User
	err := r.db.View(func(txn *badger.Txn) error {
		return iterate(txn, pfxUser, func(_, v []byte) error {
			u := new(User)
			if err := json.Unmarshal(v, u); err != nil {
				return err
			}
			out = append(out, u.public())
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// CheckPassword returns user name if password is its password and the user is
// not disabled, ErrBadLogin otherwise. It takes about as long either way.
func (r *store) CheckPassword(name, password string) (*User, error) {
	u, err := r.readUser(name)
	if err != nil {
		_, _ = argon2id.ComparePasswordAndHash(password, dummyHash)
		if errors.Is(err, ErrNotFound) {
			return nil, ErrBadLogin
		}
		return nil, err
	}
	ok, err := argon2id.ComparePasswordAndHash(password, u.Hash)
	if err != nil {
		return nil, fmt.Errorf("registry: user %s: stored hash unreadable: %w", name, err)
	}
	if !ok || u.Disabled {
		return nil, ErrBadLogin
	}
	return u.public(), nil
}

// RecordEvent appends an entry to the operation log for something done outside
// the registry's records, such as a console login or logout: who (p), what
// (action), to what (targetType, target) and why or how (reason).
func (r *store) RecordEvent(p Actor, action, targetType, target, reason string) error {
	_, err := retry(r, func() (struct{}, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		b := r.ops()
		b.add(OpEntry{Time: r.now(), Actor: p.Name, Role: p.Role, Action: action, TargetType: targetType, Target: target, Reason: reason})
		if err := r.commitLocked(func(txn *wtx) error { return b.write(txn) }); err != nil {
			return struct{}{}, fmt.Errorf("registry: record %s of %s: %w", action, target, err)
		}
		b.done()
		return struct{}{}, nil
	})
	return err
}

func hashPassword(name, password string) (string, error) {
	if len(password) < MinPasswordLen {
		return "", invalidf("user %s: password too short: want at least %d characters", name, MinPasswordLen)
	}
	if strings.EqualFold(password, name) {
		return "", invalidf("user %s: the password may not be the user name", name)
	}
	h, err := argon2id.CreateHash(password, passwordParams)
	if err != nil {
		return "", fmt.Errorf("registry: hash the password of %s: %w", name, err)
	}
	return h, nil
}

func (r *store) readUser(name string) (*User, error) {
	u := new(User)
	err := r.db.View(func(txn *badger.Txn) error { return getJSON(txn, []byte(pfxUser+name), u) })
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, notFoundf("user %s does not exist", name)
	}
	if err != nil {
		return nil, err
	}
	return u, nil
}

// writeUser stores u, its Version one up, with its oplog entry. r.mu must be held.
func (r *store) writeUser(p Actor, u *User, action string, before, after any) error {
	u.Version++
	b := r.ops()
	b.add(OpEntry{Time: u.UpdatedAt, Actor: p.Name, Role: p.Role, Action: action, TargetType: "user", Target: u.Name,
		Before: rawJSON(before), After: rawJSON(after)})
	if err := r.commitLocked(func(txn *wtx) error {
		if err := putJSON(txn, []byte(pfxUser+u.Name), u); err != nil {
			return err
		}
		return b.write(txn)
	}); err != nil {
		return fmt.Errorf("registry: store user %s: %w", u.Name, err)
	}
	b.done()
	return nil
}

func (u *User) public() *User {
	c := *u
	c.Hash = ""
	return &c
}

// DemoUser is a demo console user and its public password.
type DemoUser struct {
	Name, Role, Password string
	// Hash is Password's argon2id hash with the parameters every password
	// gets (passwordParams), made once and kept here: a demo start does not
	// spend six hashes (some 20 MiB and a few tens of milliseconds each, ten
	// times that under the race detector) on passwords that are public.
	// TestDemoUserHashes checks each against its password and parameters.
	Hash string
}

// DemoUsers are the console users of demo mode, with public passwords: two
// operators and two reviewers (to show the two-person review), an analyst and
// an admin, as the demo tokens.
func DemoUsers() []DemoUser {
	return []DemoUser{
		{"operator", RoleOperator, "operator-demo-pw", "$argon2id$v=19$m=19456,t=2,p=1$JCT1Rbba8DyPI9id1Z0qPA$a3hOPrHSbrJvoIab7cwgdMApfD1vLilfti9yxefi2mQ"},
		{"operator2", RoleOperator, "operator2-demo-pw", "$argon2id$v=19$m=19456,t=2,p=1$RmOL7TuYX4clBo0YdriaRQ$kwkgE6b4/AacDqABHnN2bA7i3dxRA7Z6fY/NCT59IHc"},
		{"reviewer", RoleReviewer, "reviewer-demo-pw", "$argon2id$v=19$m=19456,t=2,p=1$bXA/RqOk89ZXxKC1iOvqbw$t10NmN+S000i0inUFraIbJWThw39PIxxaIQiWw6aIC4"},
		{"reviewer2", RoleReviewer, "reviewer2-demo-pw", "$argon2id$v=19$m=19456,t=2,p=1$6q9YHHaIiIhUUdJJAzQfrA$0f0qNrCzfraa5+68bIxljBUrylgh5+tiCnuVSKoaLic"},
		{"analyst", RoleAnalyst, "analyst-demo-pw", "$argon2id$v=19$m=19456,t=2,p=1$dPD6uQep7DXprmvQfu82ug$/Nx1LOHzk4VyIpn47J5queLq8CDxu0lGF3HIQHJ5ftM"},
		{"admin", RoleAdmin, "admin-demo-pw", "$argon2id$v=19$m=19456,t=2,p=1$GobKMbssd9mjawzLPFMI1Q$HecgCEEdwXqg0gV2kedlJr60U4qULTPPZAmMYoZJ/LQ"},
	}
}

// LoadDemoUsers adds the demo users that are missing (as "system") and returns
// how many it added. A demo user whose password was changed keeps it; one that
// another node of a cluster added first is left as it is.
func LoadDemoUsers(r *Registry) (int, error) {
	n := 0
	for _, u := range DemoUsers() {
		if _, err := r.User(u.Name); err == nil {
			continue
		}
		if _, err := r.addDemoUser(u); errors.Is(err, ErrConflict) {
			continue // another node of a demo cluster added it meanwhile
		} else if err != nil {
			return n, fmt.Errorf("demo user %s: %w", u.Name, err)
		}
		n++
	}
	return n, nil
}

// addDemoUser adds demo user u, as "system", with its kept hash.
func (r *store) addDemoUser(u DemoUser) (*User, error) {
	p := Actor{Name: "system"}
	if err := r.checkNewUser(p, u.Name, u.Role); err != nil {
		return nil, err
	}
	return retry(r, func() (*User, error) { return r.addUserHashed(p, u.Name, u.Role, u.Hash) })
}
