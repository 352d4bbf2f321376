package api_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/kcv"
	"github.com/switchyard/switchyard/hsm/tr31"
	"github.com/switchyard/switchyard/internal/cli/apiclient"
	"github.com/switchyard/switchyard/keys"
	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/api"
)

type apiEnv struct {
	store  *keys.Store
	hsm    *hsm.Software
	h      http.Handler
	admin  *apiclient.Client
	op     *apiclient.Client
	noauth *apiclient.Client
}

func newAPIEnv(t *testing.T) *apiEnv {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	store, err := keys.NewStore(db, keys.Options{Demo: true})
	if err != nil {
		t.Fatal(err)
	}
	h, err := hsm.NewSoftware(context.Background(), store, keys.DemoLMK(), hsm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.LoadDemo(context.Background(), store, h); err != nil {
		t.Fatal(err)
	}
	auth, err := admin.NewAuthenticator([]admin.Token{
		{Token: "admin-token", Principal: admin.Principal{Name: "alice", Role: admin.RoleAdmin}},
		{Token: "op-token", Principal: admin.Principal{Name: "bob", Role: admin.RoleOperator}},
	})
	if err != nil {
		t.Fatal(err)
	}
	handler := api.New(api.Options{Auth: auth, Keys: store, HSM: h})
	return &apiEnv{store: store, hsm: h, h: handler,
		admin:  &apiclient.Client{Handler: handler, Token: "admin-token"},
		op:     &apiclient.Client{Handler: handler, Token: "op-token"},
		noauth: &apiclient.Client{Handler: handler}}
}

func status(err error) int {
	var ae *apiclient.APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

func TestAPIAuth(t *testing.T) {
	e := newAPIEnv(t)
	ctx := context.Background()
	if err := e.noauth.Do(ctx, "GET", "/api/v1/keys", nil, nil); status(err) != 401 {
		t.Fatalf("no token: %v", err)
	}
	if err := e.op.Do(ctx, "GET", "/api/v1/keys", nil, nil); status(err) != 403 {
		t.Fatalf("operator: %v", err)
	}
	if err := e.op.Do(ctx, "POST", "/api/v1/keys/generate", keys.GenerateRequest{SpecRequest: keys.SpecRequest{ID: "x.ZPK", Type: "ZPK"}}, nil); status(err) != 403 {
		t.Fatalf("operator generate: %v", err)
	}
	var l keys.KeyList
	if err := e.admin.Do(ctx, "GET", "/api/v1/keys", nil, &l); err != nil || len(l.Keys) != len(keys.DemoKeys) {
		t.Fatalf("admin list: %d keys, %v", len(l.Keys), err)
	}
}

func TestAPIKeyLifecycle(t *testing.T) {
	e := newAPIEnv(t)
	ctx := context.Background()
	// Generate a TPK for a terminal, delivered under its TMK as HEXKEY:KCV.
	var res hsm.KeyResult
	err := e.admin.Do(ctx, "POST", "/api/v1/keys/generate", keys.GenerateRequest{
		SpecRequest: keys.SpecRequest{ID: "T0000001.TPK2", Type: "tpk", Owner: "T0000001"},
		Export:      &keys.ExportTarget{KEK: "T0000001.TMK", Format: "ecb"},
	}, &res)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ref.Version != 1 || !strings.HasSuffix(res.Exported, ":"+res.KCV) {
		t.Fatalf("generate: %+v", res)
	}
	// Rotate with a grace window, then export the new version under the ZMK.
	var rot hsm.KeyResult
	if err := e.admin.Do(ctx, "POST", "/api/v1/keys/T0000001.TPK2/rotate", keys.RotateRequest{Grace: "12h"}, &rot); err != nil {
		t.Fatal(err)
	}
	if rot.Ref.Version != 2 || rot.Type != hsm.TPK || rot.KCV == res.KCV {
		t.Fatalf("rotate: %+v", rot)
	}
	var one keys.KeyList
	if err := e.admin.Do(ctx, "GET", "/api/v1/keys/T0000001.TPK2", nil, &one); err != nil || len(one.Keys) != 2 {
		t.Fatalf("versions: %v %v", one, err)
	}
	if one.Keys[0].Status != hsm.StatusSuperseded || one.Keys[0].GraceUntil.IsZero() || one.Keys[1].Status != hsm.StatusActive {
		t.Fatalf("after rotation: %+v", one.Keys)
	}
	var ex keys.ExportResponse
	if err := e.admin.Do(ctx, "POST", "/api/v1/keys/demo.ZPK/export", keys.ExportRequest{ExportTarget: keys.ExportTarget{KEK: "demo.ZMK"}}, &ex); err != nil {
		t.Fatal(err)
	}
	zmk, _ := hex.DecodeString("9BB091DF6B6162D3947AA46EDCFB312A")
	_, k, err := tr31.Unwrap(zmk, ex.Block)
	if err != nil || strings.ToUpper(hex.EncodeToString(k)) != "0DCE67517CFD3467CD514FFD137AEA20" {
		t.Fatalf("exported ZPK: %v", err)
	}
	// Import that block back as another key, with its KCV.
	var imp hsm.KeyResult
	err = e.admin.Do(ctx, "POST", "/api/v1/keys/import", keys.ImportRequest{SpecRequest: keys.SpecRequest{ID: "partner.ZPK", Type: "ZPK", Owner: "partner"}, KEK: "demo.ZMK", TR31: ex.Block, KCV: "782780"}, &imp)
	if err != nil || imp.KCV != "782780" {
		t.Fatalf("import: %+v %v", imp, err)
	}
	// Form from components (the ceremony path).
	var formed hsm.KeyResult
	err = e.admin.Do(ctx, "POST", "/api/v1/keys/form", keys.FormRequest{SpecRequest: keys.SpecRequest{ID: "cer.ZMK", Type: "ZMK", Owner: "acq"},
		Components: []string{"0123456789ABCDEF0123456789ABCDEF", "1111111111111111EEEEEEEEEEEEEEEE"}}, &formed)
	if err != nil || len(formed.ComponentKCVs) != 2 {
		t.Fatalf("form: %+v %v", formed, err)
	}
	var chk hsm.KeyCheck
	if err := e.admin.Do(ctx, "GET", "/api/v1/keys/cer.ZMK/kcv", nil, &chk); err != nil || chk.KCV != formed.KCV || chk.Method != kcv.MethodTDES {
		t.Fatalf("kcv: %+v %v", chk, err)
	}
	// Revoke; errors map to statuses.
	var info keys.KeyInfo
	if err := e.admin.Do(ctx, "POST", "/api/v1/keys/cer.ZMK/status", keys.StatusRequest{Version: 1, Status: "revoked", Reason: "test"}, &info); err != nil || info.Status != hsm.StatusRevoked {
		t.Fatalf("revoke: %+v %v", info, err)
	}
	// A ZMK of the importer's choice under a terminal's TMK (since 8 December 2026).
	tmk, _ := hex.DecodeString("2315208C9110AD40F5B83C4A6E1D7F92")
	evilZMK, err := tr31.Wrap(tmk, tr31.Header{Version: tr31.VersionB, Usage: tr31.UsageKEK, Algorithm: tr31.AlgTDES, ModeOfUse: tr31.ModeEncDec,
		KeyVersion: "00", Exportability: tr31.ExportNone}, []byte("0123456789ABCDEF"), nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		method, path string
		body         any
		want         int
	}{
		{"GET", "/api/v1/keys/nope", nil, 404},
		{"POST", "/api/v1/keys/import", keys.ImportRequest{SpecRequest: keys.SpecRequest{ID: "evil.ZMK", Type: "ZMK", Owner: "T0000001"}, KEK: "T0000001.TMK", TR31: evilZMK}, 400},
		// A block whose header was changed (exportability N to E: its MAC fails): bad
		// input, not a 500.
		{"POST", "/api/v1/keys/import", keys.ImportRequest{SpecRequest: keys.SpecRequest{ID: "z.ZPK", Type: "ZPK"}, KEK: "demo.ZMK", TR31: ex.Block[:11] + "E" + ex.Block[12:]}, 400},
		{"POST", "/api/v1/keys/generate", keys.GenerateRequest{SpecRequest: keys.SpecRequest{ID: "demo.ZPK", Type: "TAK"}}, 400},
		{"POST", "/api/v1/keys/generate", keys.GenerateRequest{SpecRequest: keys.SpecRequest{ID: "x", Type: "BOGUS"}}, 400},
		{"POST", "/api/v1/keys/generate", map[string]any{"id": "x", "type": "ZPK", "unknown": 1}, 400},
		{"POST", "/api/v1/keys/generate", keys.GenerateRequest{SpecRequest: keys.SpecRequest{ID: "x", Type: "ZPK", Grace: "soon"}}, 400},
		{"POST", "/api/v1/keys/demo.ZPK/export", keys.ExportRequest{ExportTarget: keys.ExportTarget{KEK: "T0000001.TPK"}}, 400},
		{"POST", "/api/v1/keys/BDK.FFFF9876543210E/export", keys.ExportRequest{ExportTarget: keys.ExportTarget{KEK: "demo.ZMK", Format: "ecb"}}, 400},
		{"POST", "/api/v1/keys/import", keys.ImportRequest{SpecRequest: keys.SpecRequest{ID: "y.ZPK", Type: "ZPK"}, KEK: "demo.ZMK", TR31: ex.Block, KCV: "000000"}, 400},
		{"POST", "/api/v1/keys/form", keys.FormRequest{SpecRequest: keys.SpecRequest{ID: "y.ZMK", Type: "ZMK"}, Components: []string{"zz", "00"}}, 400},
		{"GET", "/api/v1/keys/cer.ZMK/kcv", nil, 409},
		{"GET", "/api/v1/keys/cer.ZMK/kcv?version=x", nil, 400},
		{"POST", "/api/v1/keys/cer.ZMK/status", keys.StatusRequest{Version: 1, Status: "active"}, 400},
		// A reason with a zero-width space is refused before the status changes.
		{"POST", "/api/v1/keys/demo.ZPK/status", keys.StatusRequest{Version: 1, Status: "revoked", Reason: "compromised​"}, 400},
	}
	for _, c := range cases {
		if err := e.admin.Do(ctx, c.method, c.path, c.body, nil); status(err) != c.want {
			t.Errorf("%s %s: %v, want %d", c.method, c.path, err, c.want)
		}
	}
	// The list never shows key material, and the audit log verifies and names alice.
	rr := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/api/v1/keys", nil)
	req.Header.Set("Authorization", "Bearer admin-token")
	e.h.ServeHTTP(rr, req)
	body := rr.Body.String()
	for _, d := range keys.DemoKeys {
		if strings.Contains(strings.ToUpper(body), d.Hex) {
			t.Fatalf("list shows the key of %s", d.ID)
		}
	}
	// A TR-31 block starts "D" and its 4-digit length, its header 16 characters; a
	// check value (6 hex digits) may start "D0" too.
	if strings.Contains(body, `"block"`) || regexp.MustCompile(`"D\d{4}[0-9A-Z]{11}`).MatchString(body) {
		t.Fatal("list shows LMK key blocks")
	}
	var vr keys.VerifyLogResponse
	if err := e.admin.Do(ctx, "GET", "/api/v1/keys/audit/verify", nil, &vr); err != nil || !vr.OK || vr.Entries < 15 {
		t.Fatalf("verify-log: %+v %v", vr, err)
	}
	var al keys.AuditList
	if err := e.admin.Do(ctx, "GET", "/api/v1/keys/audit?from=1&limit=500", nil, &al); err != nil {
		t.Fatal(err)
	}
	actions := map[string]bool{}
	for _, en := range al.Entries {
		if en.Actor == "alice" {
			actions[en.Action] = true
		}
	}
	for _, a := range []string{"generate", "rotate", "export", "import", "form", "revoke"} {
		if !actions[a] {
			t.Errorf("no %q event by alice in the audit log", a)
		}
	}
	raw, _ := json.Marshal(al)
	if strings.Contains(string(raw), "0DCE67517CFD3467CD514FFD137AEA20") {
		t.Fatal("audit log holds a clear key")
	}
}

// The path operators use (switchyard keys import, POST /api/v1/keys/import): a
// terminal's TPK exported in ECB form does not come back as a TAK (MAC generation
// under it would encipher chosen PIN blocks under the TPK), nor the zone PIN key as
// a ZAK; the answer is a 400 that names the key holding the value. The TPK re-sent
// as a new version of its own ID comes in.
func TestAPIECBImportOfAStoredValue(t *testing.T) {
	e := newAPIEnv(t)
	ctx := context.Background()
	var gen hsm.KeyResult
	if err := e.admin.Do(ctx, "POST", "/api/v1/keys/generate", keys.GenerateRequest{
		SpecRequest: keys.SpecRequest{ID: "T0000010.TPK", Type: "TPK", Owner: "T0000001"},
		Export:      &keys.ExportTarget{KEK: "T0000001.TMK", Format: "ecb"},
	}, &gen); err != nil {
		t.Fatal(err)
	}
	var zpk keys.ExportResponse
	if err := e.admin.Do(ctx, "POST", "/api/v1/keys/demo.ZPK/export", keys.ExportRequest{ExportTarget: keys.ExportTarget{KEK: "demo.ZMK", Format: "ecb"}}, &zpk); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		req   keys.ImportRequest
		clash string
	}{
		{keys.ImportRequest{SpecRequest: keys.SpecRequest{ID: "T0000010.TAK", Type: "TAK", Owner: "T0000001"}, KEK: "T0000001.TMK", ECB: gen.Exported}, "T0000010.TPK"},
		{keys.ImportRequest{SpecRequest: keys.SpecRequest{ID: "demo.ZAK", Type: "ZAK", Owner: "demo"}, KEK: "demo.ZMK", ECB: zpk.Block}, "demo.ZPK"},
	} {
		var res hsm.KeyResult
		err := e.admin.Do(ctx, "POST", "/api/v1/keys/import", c.req, &res)
		var ae *apiclient.APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || !strings.Contains(ae.Message, c.clash) {
			t.Errorf("import %s's ECB form as %s %s: %+v, %v; want 400 naming %s", c.clash, c.req.Type, c.req.ID, res, err, c.clash)
		}
	}
	var re hsm.KeyResult
	if err := e.admin.Do(ctx, "POST", "/api/v1/keys/import", keys.ImportRequest{SpecRequest: keys.SpecRequest{ID: "T0000010.TPK", Type: "TPK", Owner: "T0000001"}, KEK: "T0000001.TMK", ECB: gen.Exported}, &re); err != nil || re.Ref.Version != 2 || re.KCV != gen.KCV {
		t.Fatalf("the TPK re-sent as a new version of T0000010.TPK: %+v, %v", re, err)
	}
}

// TestRotateGraceBounded: the admin API takes a grace window of 0s to 720h
// (keys.MaxGrace) on a rotation, and refuses with 400 a longer one (876000h was
// taken: the old version valid for a century) and a negative one ("must be
// positive"; it said "not a duration like 24h"), rotating nothing.
func TestRotateGraceBounded(t *testing.T) {
	e := newAPIEnv(t)
	ctx := context.Background()
	before, err := e.store.Versions("demo.ZPK")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ grace, want string }{
		{"876000h", `grace "876000h": at most 720h (30 days)`},
		{"720h1s", `grace "720h1s": at most 720h (30 days)`},
		{"-1h", `grace "-1h": must be positive`},
	} {
		err := e.admin.Do(ctx, "POST", "/api/v1/keys/demo.ZPK/rotate", keys.RotateRequest{Grace: c.grace}, nil)
		var ae *apiclient.APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || !strings.Contains(ae.Message, c.want) {
			t.Errorf("grace %s: %v; want 400 saying %q", c.grace, err, c.want)
		}
	}
	if after, _ := e.store.Versions("demo.ZPK"); len(after) != len(before) {
		t.Fatalf("a refused grace rotated demo.ZPK: %d versions, had %d", len(after), len(before))
	}
	var rot hsm.KeyResult
	if err := e.admin.Do(ctx, "POST", "/api/v1/keys/demo.ZPK/rotate", keys.RotateRequest{Grace: "720h"}, &rot); err != nil || rot.Ref.Version != len(before)+1 {
		t.Fatalf("grace 720h: %+v %v", rot, err)
	}
}
