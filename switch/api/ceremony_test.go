package api_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/kcv"
	"github.com/switchyard/switchyard/internal/cli/apiclient"
	"github.com/switchyard/switchyard/keys"
	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/api"
)

// productionKeysAPI is the keys API on a key store outside demo mode, with two key
// custodians (admins alice and carol).
func productionKeysAPI(t *testing.T) (alice, carol *apiclient.Client) {
	t.Helper()
	alice, carol, _ = productionKeysAPIOn(t)
	return alice, carol
}

// productionKeysAPIOn is productionKeysAPI, with the key store's database (closed
// when the test ends; a test may close it sooner).
func productionKeysAPIOn(t *testing.T) (alice, carol *apiclient.Client, db *badger.DB) {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	store, err := keys.NewStore(db, keys.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lmk := make([]byte, hsm.LMKLength)
	rand.Read(lmk)
	h, err := hsm.NewSoftware(context.Background(), store, lmk, hsm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := admin.NewAuthenticator([]admin.Token{
		{Token: "alice-token", Principal: admin.Principal{Name: "alice", Role: admin.RoleAdmin}},
		{Token: "carol-token", Principal: admin.Principal{Name: "carol", Role: admin.RoleAdmin}},
	})
	if err != nil {
		t.Fatal(err)
	}
	handler := api.New(api.Options{Auth: auth, Keys: store, HSM: h})
	return &apiclient.Client{Handler: handler, Token: "alice-token"}, &apiclient.Client{Handler: handler, Token: "carol-token"}, db
}

func component(t *testing.T) (string, string) {
	b := make([]byte, 16)
	rand.Read(b)
	k, _ := kcv.TDES(b)
	return strings.ToUpper(hex.EncodeToString(b)), k.String()
}

// TestDualControl: outside demo mode one custodian cannot enter both components of a
// ZMK (nor send both at once to /form); a component whose KCV does not match its form
// is not kept; a second custodian's component completes the key, whose audit actor
// names both.
func TestDualControl(t *testing.T) {
	alice, carol := productionKeysAPI(t)
	ctx := context.Background()
	c1, k1 := component(t)
	c2, k2 := component(t)
	spec := keys.SpecRequest{ID: "bank-a.ZMK", Type: "ZMK"}
	var resp keys.ComponentResponse
	if err := alice.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: spec, Components: 2, Component: c1, KCV: k1}, &resp); err != nil || resp.Entered != 1 || resp.Result != nil {
		t.Fatalf("alice's component: %+v, %v", resp, err)
	}
	err := alice.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: spec, Components: 2, Component: c2, KCV: k2}, &resp)
	if status(err) != 400 || !strings.Contains(err.Error(), "dual control") {
		t.Fatalf("alice's second component: %v, want 400 dual control", err)
	}
	if err := alice.Do(ctx, "POST", "/api/v1/keys/form", keys.FormRequest{SpecRequest: keys.SpecRequest{ID: "x.ZMK", Type: "ZMK"}, Components: []string{c1, c2}}, nil); status(err) != 400 {
		t.Fatalf("both components at once outside demo mode: %v, want 400", err)
	}
	if err := carol.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: spec, Components: 2, Component: c2, KCV: "000000"}, &resp); status(err) != 400 || !strings.Contains(err.Error(), "KCV") {
		t.Fatalf("carol's mistyped component: %v, want 400 KCV", err)
	}
	resp = keys.ComponentResponse{}
	if err := carol.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: spec, Components: 2, Component: c2, KCV: k2}, &resp); err != nil || resp.Result == nil {
		t.Fatalf("carol's component: %+v, %v", resp, err)
	}
	a, _ := hex.DecodeString(c1)
	b, _ := hex.DecodeString(c2)
	for i := range a {
		a[i] ^= b[i]
	}
	want, _ := kcv.TDES(a)
	if resp.Result.KCV != want.String() || strings.Join(resp.Custodians, ",") != "alice,carol" {
		t.Fatalf("formed %+v by %v, want KCV %s by alice,carol", resp.Result, resp.Custodians, want)
	}
	var audit keys.AuditList
	if err := alice.Do(ctx, "GET", "/api/v1/keys/audit", nil, &audit); err != nil {
		t.Fatal(err)
	}
	if last := audit.Entries[len(audit.Entries)-1]; last.Actor != "alice+carol" || last.KeyID != "bank-a.ZMK" {
		t.Fatalf("audit: %+v, want actor alice+carol", last)
	}
}

// TestDualControlDemo: in demo mode one person may enter every component.
func TestDualControlDemo(t *testing.T) {
	e := newAPIEnv(t)
	ctx := context.Background()
	spec := keys.SpecRequest{ID: "demo-b.ZMK", Type: "ZMK"}
	var resp keys.ComponentResponse
	for i := range 2 {
		c, k := component(t)
		if err := e.admin.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: spec, Components: 2, Component: c, KCV: k}, &resp); err != nil {
			t.Fatalf("component %d: %v", i+1, err)
		}
	}
	if resp.Result == nil {
		t.Fatalf("no key formed: %+v", resp)
	}
}

// TestDualControlExport: a key exported in components goes one component to each
// custodian; the same custodian asking twice is refused outside demo mode; the
// components combine to the key (its KCV).
func TestDualControlExport(t *testing.T) {
	alice, carol := productionKeysAPI(t)
	ctx := context.Background()
	c1, k1 := component(t)
	c2, k2 := component(t)
	spec := keys.SpecRequest{ID: "share.ZMK", Type: "ZMK"}
	var formed keys.ComponentResponse
	alice.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: spec, Components: 2, Component: c1, KCV: k1}, &formed)
	if err := carol.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: spec, Components: 2, Component: c2, KCV: k2}, &formed); err != nil || formed.Result == nil {
		t.Fatalf("form: %+v %v", formed, err)
	}
	var a, c keys.ExportComponentResponse
	if err := alice.Do(ctx, "POST", "/api/v1/keys/share.ZMK/export-components", keys.ExportComponentsRequest{Components: 2}, &a); err != nil || a.Index != 1 {
		t.Fatalf("alice's component: %+v %v", a, err)
	}
	if err := alice.Do(ctx, "POST", "/api/v1/keys/share.ZMK/export-components", keys.ExportComponentsRequest{Components: 2}, nil); status(err) != 400 || !strings.Contains(err.Error(), "dual control") {
		t.Fatalf("alice's second component: %v, want 400 dual control", err)
	}
	if err := carol.Do(ctx, "POST", "/api/v1/keys/share.ZMK/export-components", keys.ExportComponentsRequest{Components: 2}, &c); err != nil || c.Index != 2 {
		t.Fatalf("carol's component: %+v %v", c, err)
	}
	x, _ := hex.DecodeString(a.Component)
	y, _ := hex.DecodeString(c.Component)
	if a.Component == c.Component {
		t.Fatal("both custodians got the same component")
	}
	for i := range x {
		x[i] ^= y[i]
	}
	if k, _ := kcv.TDES(x); k.String() != formed.Result.KCV || a.KeyKCV != formed.Result.KCV {
		t.Fatalf("components combine to KCV %s, the key is %s", k, formed.Result.KCV)
	}
	// Who took which component is audited, with the component's KCV (never the
	// component).
	var audit keys.AuditList
	if err := alice.Do(ctx, "GET", "/api/v1/keys/audit", nil, &audit); err != nil {
		t.Fatal(err)
	}
	var took []string
	for _, e := range audit.Entries {
		if e.Action == "take-component" && e.KeyID == "share.ZMK" {
			took = append(took, e.Actor+": "+e.Detail)
		}
		if strings.Contains(e.Detail, a.Component) || strings.Contains(e.Detail, c.Component) {
			t.Errorf("audit entry %+v carries a component", e)
		}
	}
	if want := []string{"alice: component 1 of 2, KCV " + a.KCV, "carol: component 2 of 2, KCV " + c.KCV}; !slices.Equal(took, want) {
		t.Errorf("audited handouts %q, want %q", took, want)
	}
}

// xorKCV is the TDES KCV of the XOR of two hex components.
func xorKCV(t *testing.T, a, b string) string {
	t.Helper()
	x, err1 := hex.DecodeString(a)
	y, err2 := hex.DecodeString(b)
	if err1 != nil || err2 != nil || len(x) != len(y) {
		t.Fatalf("components %d and %d bytes: %v %v", len(x), len(y), err1, err2)
	}
	for i := range x {
		x[i] ^= y[i]
	}
	k, err := kcv.TDES(x)
	if err != nil {
		t.Fatal(err)
	}
	return k.String()
}
