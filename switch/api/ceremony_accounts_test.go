package api_test

import (
	"context"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/internal/cli/apiclient"
	"github.com/switchyard/switchyard/keys"
	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/api"
	"github.com/switchyard/switchyard/switch/registry"
)

// custodianEnv is the keys API with the registry's accounts, served on loopback:
// admin tokens olga, alice, carol, erin and dave; olga (a token of the
// configuration, no account) has created the console accounts alice and carol,
// and alice the account erin (accounts of tokens' names, from before the API
// refused them). dave is no account: nobody has held it. alice has a
// second token.
type custodianEnv struct {
	keys                           *keys.Store
	olga, alice, carol, erin, dave *apiclient.Client
	alice2                         *apiclient.Client // alice's other token
}

func newCustodianEnv(t *testing.T, demo bool) *custodianEnv {
	return newCustodianEnvWith(t, demo, func(o api.Options) http.Handler { return api.New(o) })
}

// newCustodianEnvWith is newCustodianEnv with the API built by build.
func newCustodianEnvWith(t *testing.T, demo bool, build func(api.Options) http.Handler) *custodianEnv {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	reg, err := registry.New(db, nil, registry.Options{SeenFlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	store, err := keys.NewStore(db, keys.Options{Demo: demo})
	if err != nil {
		t.Fatal(err)
	}
	lmk := make([]byte, hsm.LMKLength)
	rand.Read(lmk)
	h, err := hsm.NewSoftware(context.Background(), store, lmk, hsm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var tokens []admin.Token
	for _, n := range []string{"olga", "alice", "carol", "erin", "dave"} {
		tokens = append(tokens, admin.Token{Token: n + "-token", Principal: admin.Principal{Name: n, Role: admin.RoleAdmin}})
	}
	// alice's second token (a rotation's overlap, say): the same person.
	tokens = append(tokens, admin.Token{Token: "alice-2-token", Principal: admin.Principal{Name: "alice", Role: admin.RoleAdmin}})
	auth, err := admin.NewAuthenticator(tokens)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(build(api.Options{Auth: auth, Keys: store, HSM: h, Registry: reg}))
	t.Cleanup(srv.Close)
	c := func(n string) *apiclient.Client { return &apiclient.Client{BaseURL: srv.URL, Token: n + "-token"} }
	e := &custodianEnv{keys: store, olga: c("olga"), alice: c("alice"), carol: c("carol"), erin: c("erin"), dave: c("dave"), alice2: c("alice-2")}
	// The accounts are added to the registry directly: since 6 December 2026 the
	// API refuses a console user a token's name (TestUserNameOfATokenRefused), so
	// these are accounts kept from before that, which the switch warns about.
	for _, u := range []struct{ by, name string }{{"olga", "alice"}, {"olga", "carol"}, {"alice", "erin"}} {
		if _, err := reg.AddUser(registry.Actor{Name: u.by, Role: string(admin.RoleAdmin)}, u.name, "admin", u.name+"'s first password"); err != nil {
			t.Fatalf("add user %s: %v", u.name, err)
		}
	}
	return e
}

// auditLen is how many entries the key audit log has.
func auditLen(t *testing.T, c *apiclient.Client) int {
	t.Helper()
	var audit keys.AuditList
	if err := c.Do(context.Background(), "GET", "/api/v1/keys/audit", nil, &audit); err != nil {
		t.Fatal(err)
	}
	return len(audit.Entries)
}

// TestCeremonyCustodiansIndependent: outside demo mode a component from a custodian
// whose account an account of an earlier custodian's has held (olga created both
// alice's and carol's; alice created erin's) is refused with who and how, leaves no
// audit entry and does not end the ceremony; a custodian nobody has held (dave)
// completes it, and the key's audit actor is unchanged (alice+dave).
func TestCeremonyCustodiansIndependent(t *testing.T) {
	e := newCustodianEnv(t, false)
	ctx := context.Background()
	c1, k1 := component(t)
	c2, k2 := component(t)
	spec := keys.SpecRequest{ID: "bank-a.ZMK", Type: "ZMK"}
	var resp keys.ComponentResponse
	if err := e.alice.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: spec, Components: 2, Component: c1, KCV: k1}, &resp); err != nil || resp.Entered != 1 {
		t.Fatalf("alice's component: %+v, %v", resp, err)
	}
	before := auditLen(t, e.olga)
	for _, tc := range []struct {
		who  *apiclient.Client
		name string
		want []string
	}{
		{e.carol, "carol", []string{"dual control: alice entered component 1 of 2 of bank-a.ZMK and carol may not enter component 2",
			"olga has held the account of both alice and carol (olga -> alice; olga -> carol: each account created the next or reset its password), so one person may have held both"}},
		{e.erin, "erin", []string{"erin may not enter component 2", "alice has held the account of erin (alice -> erin"}},
	} {
		err := tc.who.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: spec, Components: 2, Component: c2, KCV: k2}, &resp)
		if status(err) != 400 {
			t.Fatalf("%s's component after alice's: %v, want 400", tc.name, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Fatalf("%s's refusal %q lacks %q", tc.name, err, w)
			}
		}
		if strings.Contains(err.Error(), c2) || strings.Contains(err.Error(), k2) {
			t.Fatalf("%s's refusal shows the component or its KCV: %q", tc.name, err)
		}
	}
	if n := auditLen(t, e.olga); n != before {
		t.Fatalf("the refusals wrote %d audit entries", n-before)
	}
	resp = keys.ComponentResponse{}
	if err := e.dave.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: spec, Components: 2, Component: c2, KCV: k2}, &resp); err != nil || resp.Result == nil {
		t.Fatalf("dave's component: %+v, %v", resp, err)
	}
	var audit keys.AuditList
	if err := e.olga.Do(ctx, "GET", "/api/v1/keys/audit", nil, &audit); err != nil {
		t.Fatal(err)
	}
	if n, last := len(audit.Entries), audit.Entries[len(audit.Entries)-1]; n != before+1 || last.Actor != "alice+dave" || last.KeyID != "bank-a.ZMK" {
		t.Fatalf("audit: %d entries after %d, last %+v; want one, actor alice+dave", n, before, last)
	}
}

// TestExportCustodiansIndependent: the same holds for a key exported in
// components: carol, whose account olga has held as she held alice's, does not get
// component 2 after alice took component 1; dave does.
func TestExportCustodiansIndependent(t *testing.T) {
	e := newCustodianEnv(t, false)
	ctx := context.Background()
	c1, k1 := component(t)
	c2, k2 := component(t)
	spec := keys.SpecRequest{ID: "share.ZMK", Type: "ZMK"}
	if err := e.alice.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: spec, Components: 2, Component: c1, KCV: k1}, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.dave.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: spec, Components: 2, Component: c2, KCV: k2}, nil); err != nil {
		t.Fatal(err)
	}
	var a, d keys.ExportComponentResponse
	if err := e.alice.Do(ctx, "POST", "/api/v1/keys/share.ZMK/export-components", keys.ExportComponentsRequest{Components: 2}, &a); err != nil || a.Index != 1 {
		t.Fatalf("alice's component: %+v %v", a, err)
	}
	before := auditLen(t, e.olga)
	err := e.carol.Do(ctx, "POST", "/api/v1/keys/share.ZMK/export-components", keys.ExportComponentsRequest{Components: 2}, nil)
	for _, w := range []string{"dual control: alice took component 1 of 2 of share.ZMK v1 and carol may not take component 2", "olga has held the account of both alice and carol"} {
		if status(err) != 400 || !strings.Contains(err.Error(), w) {
			t.Fatalf("carol's component after alice's: %v, want 400 with %q", err, w)
		}
	}
	if n := auditLen(t, e.olga); n != before {
		t.Fatalf("carol's refusal wrote %d audit entries", n-before)
	}
	if err := e.dave.Do(ctx, "POST", "/api/v1/keys/share.ZMK/export-components", keys.ExportComponentsRequest{Components: 2}, &d); err != nil || d.Index != 2 || strings.Join(d.Custodians, ",") != "alice,dave" {
		t.Fatalf("dave's component: %+v %v", d, err)
	}
	if n := auditLen(t, e.olga); n != before+1 {
		t.Fatalf("handing out dave's component wrote %d audit entries, want 1 (take-component)", n-before)
	}
}

// TestCeremonyCustodiansDemo: demo mode still lets custodians whose accounts one
// person has held (and one person alone) enter every component.
func TestCeremonyCustodiansDemo(t *testing.T) {
	e := newCustodianEnv(t, true)
	ctx := context.Background()
	spec := keys.SpecRequest{ID: "demo-c.ZMK", Type: "ZMK"}
	var resp keys.ComponentResponse
	for i, who := range []*apiclient.Client{e.alice, e.carol, e.carol} {
		c, k := component(t)
		if err := who.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: spec, Components: 3, Component: c, KCV: k}, &resp); err != nil {
			t.Fatalf("component %d: %v", i+1, err)
		}
	}
	if resp.Result == nil {
		t.Fatalf("no key formed: %+v", resp)
	}
}

// TestCeremonyExpiresUnattended: a ceremony nobody completes is dropped, and its
// components wiped, when its time is up, without waiting for another call
// (before, they stayed in memory until the next ceremony call); the next
// custodian then starts a new ceremony (import) or a new split (export).
func TestCeremonyExpiresUnattended(t *testing.T) {
	expired := make(chan string, 4)
	e := newCustodianEnvWith(t, false, func(o api.Options) http.Handler {
		// 1 s, not less: each new ceremony below must outlive the HSM's split and the
		// next custodian's call, and 200 ms did not on a loaded machine under -race
		// (dave's export found its new split dropped while the HSM made it).
		return api.NewWithCeremonyTimeout(o, time.Second, func(what string) { expired <- what })
	})
	ctx := context.Background()
	c1, k1 := component(t)
	c2, k2 := component(t)
	spec := keys.SpecRequest{ID: "late.ZMK", Type: "ZMK"}
	if err := e.alice.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: spec, Components: 2, Component: c1, KCV: k1}, nil); err != nil {
		t.Fatal(err)
	}
	wait := func(want string) {
		t.Helper()
		select {
		case got := <-expired:
			if got != want {
				t.Fatalf("expired %q, want %q", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: not dropped 10 s after its 1 s timeout", want)
		}
	}
	wait("import late.ZMK")
	var resp keys.ComponentResponse
	if err := e.dave.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: spec, Components: 2, Component: c2, KCV: k2}, &resp); err != nil || resp.Entered != 1 || resp.Result != nil {
		t.Fatalf("dave's component after the timeout: %+v %v, want the first of a new ceremony", resp, err)
	}
	if err := e.alice.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: spec, Components: 2, Component: c1, KCV: k1}, &resp); err != nil || resp.Result == nil {
		t.Fatalf("alice's component: %+v %v", resp, err)
	}
	var a keys.ExportComponentResponse
	if err := e.alice.Do(ctx, "POST", "/api/v1/keys/late.ZMK/export-components", keys.ExportComponentsRequest{Components: 2}, &a); err != nil || a.Index != 1 {
		t.Fatalf("alice's export component: %+v %v", a, err)
	}
	wait("export late.ZMK")
	if err := e.dave.Do(ctx, "POST", "/api/v1/keys/late.ZMK/export-components", keys.ExportComponentsRequest{Components: 2}, &a); err != nil || a.Index != 1 {
		t.Fatalf("dave's export component after the timeout: %+v %v, want component 1 of a new split", a, err)
	}
}

// TestCeremonySameKeyForEveryCustodian: a component asked for a key with another
// expiry (or activation, or grace) than the ceremony's is refused (409) and not
// kept, instead of going into the first custodian's key; the one asked for the
// same key completes it, with the expiry both asked for.
func TestCeremonySameKeyForEveryCustodian(t *testing.T) {
	e := newCustodianEnv(t, false)
	ctx := context.Background()
	c1, k1 := component(t)
	c2, k2 := component(t)
	expires := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	spec := keys.SpecRequest{ID: "exp.ZMK", Type: "ZMK", ExpiresAt: expires}
	if err := e.alice.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: spec, Components: 2, Component: c1, KCV: k1}, nil); err != nil {
		t.Fatal(err)
	}
	for _, other := range []keys.SpecRequest{
		{ID: "exp.ZMK", Type: "ZMK"},
		{ID: "exp.ZMK", Type: "ZMK", ExpiresAt: expires, ActivateAt: expires.Add(-time.Hour)},
		{ID: "exp.ZMK", Type: "ZMK", ExpiresAt: expires, Grace: "1h"},
	} {
		err := e.dave.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: other, Components: 2, Component: c2, KCV: k2}, nil)
		if status(err) != 409 || !strings.Contains(err.Error(), "expiry "+expires.Format(time.RFC3339)) {
			t.Fatalf("dave's component for %+v: %v, want 409 naming the ceremony's expiry", other, err)
		}
	}
	var resp keys.ComponentResponse
	if err := e.dave.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: spec, Components: 2, Component: c2, KCV: k2}, &resp); err != nil || resp.Result == nil {
		t.Fatalf("dave's component for the same key: %+v %v", resp, err)
	}
	var list keys.KeyList
	if err := e.olga.Do(ctx, "GET", "/api/v1/keys/exp.ZMK", nil, &list); err != nil || len(list.Keys) != 1 || !list.Keys[0].ExpiresAt.Equal(expires) {
		t.Fatalf("the key: %+v %v, want one version expiring %s", list, err, expires)
	}
}

// TestCeremonyTwoTokensOnePerson: two tokens of one name are one custodian: the
// second token's component, or its component taken, is refused.
func TestCeremonyTwoTokensOnePerson(t *testing.T) {
	e := newCustodianEnv(t, false)
	ctx := context.Background()
	c1, k1 := component(t)
	c2, k2 := component(t)
	spec := keys.SpecRequest{ID: "two.ZMK", Type: "ZMK"}
	if err := e.alice.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: spec, Components: 2, Component: c1, KCV: k1}, nil); err != nil {
		t.Fatal(err)
	}
	err := e.alice2.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: spec, Components: 2, Component: c2, KCV: k2}, nil)
	if status(err) != 400 || !strings.Contains(err.Error(), "alice already entered a component of two.ZMK") {
		t.Fatalf("alice's second token's component: %v, want 400", err)
	}
	if err := e.dave.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: spec, Components: 2, Component: c2, KCV: k2}, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.alice2.Do(ctx, "POST", "/api/v1/keys/two.ZMK/export-components", keys.ExportComponentsRequest{Components: 2}, nil); err != nil {
		t.Fatal(err)
	}
	err = e.alice.Do(ctx, "POST", "/api/v1/keys/two.ZMK/export-components", keys.ExportComponentsRequest{Components: 2}, nil)
	if status(err) != 400 || !strings.Contains(err.Error(), "alice already took a component of two.ZMK v1") {
		t.Fatalf("alice's first token's component after her second's: %v, want 400", err)
	}
}

// TestExportDroppedWhenRevoked: a key revoked after the split of an export in
// components hands out no further component, to a custodian naming its version or
// the current one: the export is dropped, and a new one is refused by the HSM.
func TestExportDroppedWhenRevoked(t *testing.T) {
	for _, version := range []int{1, 0} {
		e := newCustodianEnv(t, false)
		ctx := context.Background()
		c1, k1 := component(t)
		c2, k2 := component(t)
		spec := keys.SpecRequest{ID: "gone.ZMK", Type: "ZMK"}
		if err := e.alice.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: spec, Components: 2, Component: c1, KCV: k1}, nil); err != nil {
			t.Fatal(err)
		}
		if err := e.dave.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: spec, Components: 2, Component: c2, KCV: k2}, nil); err != nil {
			t.Fatal(err)
		}
		if err := e.alice.Do(ctx, "POST", "/api/v1/keys/gone.ZMK/export-components", keys.ExportComponentsRequest{Components: 2}, nil); err != nil {
			t.Fatal(err)
		}
		if err := e.olga.Do(ctx, "POST", "/api/v1/keys/gone.ZMK/status", keys.StatusRequest{Version: 1, Status: "revoked", Reason: "compromised"}, nil); err != nil {
			t.Fatal(err)
		}
		var d keys.ExportComponentResponse
		err := e.dave.Do(ctx, "POST", "/api/v1/keys/gone.ZMK/export-components", keys.ExportComponentsRequest{Version: version, Components: 2}, &d)
		if status(err) != 409 || d.Component != "" || !strings.Contains(err.Error(), "dropped") {
			t.Fatalf("version %d: dave's component of the revoked key: %+v %v, want 409, the export dropped", version, d, err)
		}
		if err := e.dave.Do(ctx, "POST", "/api/v1/keys/gone.ZMK/export-components", keys.ExportComponentsRequest{Version: 1, Components: 2}, &d); status(err) != 409 || !strings.Contains(err.Error(), "revoked") {
			t.Fatalf("version %d: a new export of the revoked key: %+v %v, want 409 revoked", version, d, err)
		}
	}
}
