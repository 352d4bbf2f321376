package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/cli/apiclient"
	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/api"
	"github.com/switchyard/switchyard/switch/internal/testswitch"
	"github.com/switchyard/switchyard/switch/registry"
)

type apiFixture struct {
	*fixture
	srv *httptest.Server
}

func newAPIFixture(t *testing.T) *apiFixture {
	t.Helper()
	return newAPIFixtureOn(t, newFixture(t))
}

// newAPIFixtureOn serves the API over fixture f.
func newAPIFixtureOn(t *testing.T, f *fixture) *apiFixture {
	t.Helper()
	auth, err := admin.NewAuthenticator(api.DemoTokens())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Options{Auth: auth, Registry: f.reg}))
	t.Cleanup(srv.Close)
	return &apiFixture{fixture: f, srv: srv}
}

func (a *apiFixture) client(token string) *apiclient.Client {
	return &apiclient.Client{BaseURL: a.srv.URL, Token: token}
}

// raw sends a request with an arbitrary body and returns the status and body.
func (a *apiFixture) raw(t *testing.T, method, path, token, contentType, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, a.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func apiStatus(err error) int {
	var ae *apiclient.APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	if err == nil {
		return 200
	}
	return -1
}

func TestAPIAuthAndRoles(t *testing.T) {
	a := newAPIFixture(t)
	routes := []struct{ method, path string }{
		{"GET", "/api/v1/merchants"}, {"POST", "/api/v1/merchants"}, {"GET", "/api/v1/merchants/000000000000001"},
		{"PATCH", "/api/v1/merchants/000000000000001"}, {"POST", "/api/v1/merchants/000000000000001/freeze"},
		{"GET", "/api/v1/terminals"}, {"POST", "/api/v1/terminals"}, {"POST", "/api/v1/terminals/import"},
		{"GET", "/api/v1/terminals/T0000001"}, {"PATCH", "/api/v1/terminals/T0000001"}, {"POST", "/api/v1/terminals/T0000001/suspend"},
		{"GET", "/api/v1/changes"}, {"GET", "/api/v1/changes/CHG-1"}, {"POST", "/api/v1/changes/CHG-1/approve"},
		{"POST", "/api/v1/changes/CHG-1/reject"}, {"POST", "/api/v1/changes/CHG-1/cancel"},
		{"GET", "/api/v1/oplog"}, {"GET", "/api/v1/oplog/verify"},
		{"GET", "/api/v1/incidents"}, {"GET", "/api/v1/incidents/INC-1"}, {"POST", "/api/v1/incidents/INC-1/ack"},
		{"GET", "/api/v1/alerts"}, {"GET", "/api/v1/alerts/ALR-1"}, {"POST", "/api/v1/alerts/ALR-1/ack"},
		{"GET", "/api/v1/alert-rules"}, {"POST", "/api/v1/alert-rules"}, {"PUT", "/api/v1/alert-rules/x"}, {"DELETE", "/api/v1/alert-rules/x"},
		{"GET", "/api/v1/reasons"},
	}
	for _, r := range routes {
		if st, body := a.raw(t, r.method, r.path, "", "", ""); st != http.StatusUnauthorized {
			t.Errorf("%s %s without token: %d %s, want 401", r.method, r.path, st, body)
		}
		if st, _ := a.raw(t, r.method, r.path, "not-a-token", "", ""); st != http.StatusUnauthorized {
			t.Errorf("%s %s with an unknown token: %d, want 401", r.method, r.path, st)
		}
	}
	// Wrong roles: 403.
	forbidden := []struct{ method, path, token string }{
		{"POST", "/api/v1/merchants/000000000000001/freeze", registry.DemoAnalystToken},
		{"POST", "/api/v1/merchants/000000000000001/freeze", registry.DemoReviewerToken},
		{"POST", "/api/v1/terminals/T0000001/suspend", registry.DemoAnalystToken},
		{"POST", "/api/v1/terminals/import", registry.DemoReviewerToken},
		{"POST", "/api/v1/changes/CHG-1/approve", registry.DemoOperatorToken},
		{"POST", "/api/v1/changes/CHG-1/approve", registry.DemoAnalystToken},
		{"POST", "/api/v1/changes/CHG-1/reject", registry.DemoOperatorToken},
		{"POST", "/api/v1/incidents/INC-1/ack", registry.DemoAnalystToken},
		{"POST", "/api/v1/incidents/INC-1/resolve", registry.DemoReviewerToken},
		{"POST", "/api/v1/alerts/ALR-1/ack", registry.DemoAnalystToken},
		{"PUT", "/api/v1/alert-rules/x", registry.DemoReviewerToken},
	}
	for _, r := range forbidden {
		if st, body := a.raw(t, r.method, r.path, r.token, "", ""); st != http.StatusForbidden {
			t.Errorf("%s %s as %s: %d %s, want 403", r.method, r.path, r.token, st, body)
		}
	}
	// Reading is open to every role.
	for _, tok := range []string{registry.DemoOperatorToken, registry.DemoReviewerToken, registry.DemoAnalystToken, registry.DemoAdminToken} {
		var ms []registry.Merchant
		if err := a.client(tok).Do(context.Background(), "GET", "/api/v1/merchants", nil, &ms); err != nil || len(ms) != 4 {
			t.Errorf("GET merchants as %s: %d merchants, %v", tok, len(ms), err)
		}
	}
}

func TestAPITwoPersonReview(t *testing.T) {
	a := newAPIFixture(t)
	ctx := context.Background()
	op, op2, rev, adm := a.client(registry.DemoOperatorToken), a.client(registry.DemoOperator2Token), a.client(registry.DemoReviewerToken), a.client(registry.DemoAdminToken)
	var c registry.Change
	if err := op.Do(ctx, "POST", "/api/v1/merchants/000000000000001/freeze", registry.ReasonRequest{Reason: "AML review"}, &c); err != nil {
		t.Fatal(err)
	}
	if c.Status != registry.ChangePending || c.RequestedBy != "demo-operator" || c.Op != registry.OpMerchantFreeze || c.Reason != "AML review" {
		t.Fatalf("change = %+v", c)
	}
	// The other operator cannot approve (role), the admin requesting his own cannot.
	if err := op2.Do(ctx, "POST", "/api/v1/changes/"+c.ID+"/approve", nil, nil); apiStatus(err) != 403 {
		t.Errorf("operator approving: %v, want 403", err)
	}
	var own registry.Change
	if err := adm.Do(ctx, "POST", "/api/v1/terminals/T0000001/suspend", nil, &own); err != nil {
		t.Fatal(err)
	}
	err := adm.Do(ctx, "POST", "/api/v1/changes/"+own.ID+"/approve", nil, nil)
	if apiStatus(err) != 403 || !strings.Contains(err.Error(), "different reviewer") {
		t.Errorf("admin approving own change: %v, want 403", err)
	}
	// Preview shows before and after.
	var pv registry.ChangePreview
	if err := rev.Do(ctx, "GET", "/api/v1/changes/"+c.ID, nil, &pv); err != nil {
		t.Fatal(err)
	}
	if len(pv.Effects) != 1 || !strings.Contains(string(pv.Effects[0].Before), `"active"`) || !strings.Contains(string(pv.Effects[0].After), `"frozen"`) {
		t.Errorf("preview = %+v", pv)
	}
	var pending []registry.Change
	if err := rev.Do(ctx, "GET", "/api/v1/changes?status=pending", nil, &pending); err != nil || len(pending) != 2 {
		t.Errorf("pending = %d, %v", len(pending), err)
	}
	// A reviewer approves; the switch sees it at once.
	if res := a.reg.Check(a.goodT1()); res.Decline {
		t.Fatalf("declined before approval: %s", res.Reason)
	}
	var done registry.Change
	if err := rev.Do(ctx, "POST", "/api/v1/changes/"+c.ID+"/approve", registry.ReasonRequest{Note: "ok"}, &done); err != nil {
		t.Fatal(err)
	}
	if done.Status != registry.ChangeApproved || done.ReviewedBy != "demo-reviewer" {
		t.Errorf("approved = %+v", done)
	}
	if res := a.reg.Check(a.goodT1()); res.Reason != registry.ReasonMerchantFrozen {
		t.Errorf("after approval: %q, want merchant-frozen", res.Reason)
	}
	if err := rev.Do(ctx, "POST", "/api/v1/changes/"+c.ID+"/approve", nil, nil); apiStatus(err) != 409 {
		t.Errorf("approving twice: %v, want 409", err)
	}
	if err := rev.Do(ctx, "POST", "/api/v1/changes/CHG-999/approve", nil, nil); apiStatus(err) != 404 {
		t.Errorf("approving unknown change: %v, want 404", err)
	}
	// Reject and cancel.
	if err := rev.Do(ctx, "POST", "/api/v1/changes/"+own.ID+"/reject", registry.ReasonRequest{Note: "no"}, &done); err != nil || done.Status != registry.ChangeRejected {
		t.Errorf("reject = %+v, %v", done, err)
	}
	var c2 registry.Change
	_ = op.Do(ctx, "POST", "/api/v1/merchants/000000000000001/unfreeze", nil, &c2)
	if err := op2.Do(ctx, "POST", "/api/v1/changes/"+c2.ID+"/cancel", nil, nil); apiStatus(err) != 403 {
		t.Errorf("cancel by another operator: %v, want 403", err)
	}
	if err := op.Do(ctx, "POST", "/api/v1/changes/"+c2.ID+"/cancel", nil, &done); err != nil || done.Status != registry.ChangeCancelled {
		t.Errorf("cancel = %+v, %v", done, err)
	}
	// Bad input.
	if err := op.Do(ctx, "POST", "/api/v1/merchants/000000000000001/explode", nil, nil); apiStatus(err) != 404 {
		t.Errorf("unknown action: %v, want 404", err)
	}
	if err := op.Do(ctx, "POST", "/api/v1/terminals/T0000001/resume", nil, nil); apiStatus(err) != 409 {
		t.Errorf("resume of an active terminal: %v, want 409", err)
	}
	if st, _ := a.raw(t, "PATCH", "/api/v1/merchants/000000000000001", registry.DemoOperatorToken, "application/json", `{"colour":"red"}`); st != 400 {
		t.Errorf("unknown field: %d, want 400", st)
	}
	// A second value after the body's JSON is refused, not dropped unread.
	if st, body := a.raw(t, "PATCH", "/api/v1/merchants/000000000000001", registry.DemoOperatorToken, "application/json", `{"reason":"x"}{"x":1}`); st != 400 || !strings.Contains(body, "more after its JSON value") {
		t.Errorf("trailing JSON: %d %s, want 400", st, body)
	}
	// A name in GBK is refused, not stored as U+FFFD (encoding/json's reading of it).
	if st, body := a.raw(t, "PATCH", "/api/v1/merchants/000000000000001", registry.DemoOperatorToken, "application/json", "{\"name\":\"\xb1\xb1\xbe\xa9\",\"reason\":\"x\"}"); st != 400 || !strings.Contains(body, "not UTF-8") {
		t.Errorf("a name in GBK: %d %s, want 400", st, body)
	}
	if st, body := a.raw(t, "PATCH", "/api/v1/merchants/000000000000001", registry.DemoOperatorToken, "application/json", "{\"reason\":\"x\"} \n"); strings.Contains(body, "more after") {
		t.Errorf("a body with a trailing newline: %d %s, want it read", st, body)
	}
}

func TestAPITerminalRegisterChangeAndView(t *testing.T) {
	a := newAPIFixture(t)
	ctx := context.Background()
	op, rev := a.client(registry.DemoOperatorToken), a.client(registry.DemoReviewerToken)
	body := `{"id":"T0000077","merchant_id":"000000000000002","kind":"pos","status":"active",
		"binding":{"device_serial":"SN-77"},"location":{"lat":31.23,"lon":121.47,"radius_m":300},
		"allowed_networks":["10.0.0.0/8"],"min_app_version":"3.0","missing_policy":"flag","reason":"new shop"}`
	st, out := a.raw(t, "POST", "/api/v1/terminals", registry.DemoOperatorToken, "application/json", body)
	if st != 202 {
		t.Fatalf("register: %d %s", st, out)
	}
	var c registry.Change
	_ = json.Unmarshal([]byte(out), &c)
	if err := rev.Do(ctx, "POST", "/api/v1/changes/"+c.ID+"/approve", nil, nil); err != nil {
		t.Fatal(err)
	}
	req := registry.CheckRequest{TerminalID: "T0000077", MerchantID: "000000000000002", SourceIP: honest, DeviceID: "SN-77",
		Location: registry.GeoPoint{Lat: 31.2301, Lon: 121.4701, Present: true}, AppVersion: "3.0.1", Now: t0.Add(time.Minute)}
	if res := a.reg.Check(req); res.Decline {
		t.Fatalf("new terminal declined: %s", res.Reason)
	}
	var v registry.TerminalView
	if err := op.Do(ctx, "GET", "/api/v1/terminals/T0000077", nil, &v); err != nil {
		t.Fatal(err)
	}
	if v.Terminal == nil || v.Status != registry.TerminalActive || v.LastSeen == nil || !v.LastSeen.Time.Equal(t0.Add(time.Minute)) ||
		v.LastSeen.Address != honest || len(v.AllowedNetworks) != 1 || v.Location.RadiusM != 300 {
		t.Errorf("terminal view = %+v", v)
	}
	// registry.Change the minimum version through PATCH.
	if err := op.Do(ctx, "PATCH", "/api/v1/terminals/T0000077", registry.TerminalPatchRequest{TerminalPatch: registry.TerminalPatch{MinAppVersion: strp("4.0")}, Reason: "CVE fix"}, &c); err != nil {
		t.Fatal(err)
	}
	if err := rev.Do(ctx, "POST", "/api/v1/changes/"+c.ID+"/approve", nil, nil); err != nil {
		t.Fatal(err)
	}
	if res := a.reg.Check(req); res.Reason != registry.ReasonAppVersionLow {
		t.Errorf("after minimum version 4.0: %q, want app-version-low", res.Reason)
	}
	var ts []registry.TerminalView
	if err := op.Do(ctx, "GET", "/api/v1/terminals?merchant=000000000000003&limit=10&after=LT000100", nil, &ts); err != nil || len(ts) != 10 || ts[0].ID != "LT000101" {
		t.Errorf("paged terminals = %d, %v", len(ts), err)
	}
	if err := op.Do(ctx, "GET", "/api/v1/terminals/T1234567", nil, nil); apiStatus(err) != 404 {
		t.Errorf("unknown terminal: %v, want 404", err)
	}
	if st, out := a.raw(t, "POST", "/api/v1/terminals", registry.DemoOperatorToken, "application/json", `{"id":"T0000078","merchant_id":"000000000000002","kind":"pos","allowed_networks":["10.0.0.1/8"]}`); st != 400 {
		t.Errorf("host bits in network: %d %s, want 400", st, out)
	}
}

func TestAPIImport(t *testing.T) {
	a := newAPIFixture(t)
	ctx := context.Background()
	csv := "terminal_id,merchant_id,kind,device_serial\n" +
		"T3000001,000000000000001,pos,SN-3001\n" +
		"T3000002,000000000000001,fridge,SN-3002\n" +
		"T3000003,000000000000088,pos,SN-3003\n"
	st, body := a.raw(t, "POST", "/api/v1/terminals/import?reason=batch+7", registry.DemoOperatorToken, "text/csv", csv)
	if st != 202 {
		t.Fatalf("import: %d %s", st, body)
	}
	var rep registry.ImportReport
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Accepted != 1 || rep.Rejected != 2 || rep.Change == nil || rep.Change.Reason != "batch 7" ||
		rep.Rows[1].Line != 3 || !strings.Contains(rep.Rows[1].Error, "kind") || rep.Rows[2].Line != 4 || !strings.Contains(rep.Rows[2].Error, "000000000000088") {
		t.Errorf("report = %s", body)
	}
	// JSON form (what the CLI sends), all rows bad: 200 and no change.
	var rep2 registry.ImportReport
	if err := a.client(registry.DemoOperatorToken).Do(ctx, "POST", "/api/v1/terminals/import", registry.ImportRequest{CSV: "terminal_id,merchant_id,kind\nbad,000000000000001,pos\n"}, &rep2); err != nil {
		t.Fatal(err)
	}
	if rep2.Accepted != 0 || rep2.Rejected != 1 || rep2.Change != nil || !strings.Contains(rep2.Rows[0].Error, "8 letters") {
		t.Errorf("all-bad report = %+v", rep2)
	}
	if st, body := a.raw(t, "POST", "/api/v1/terminals/import", registry.DemoOperatorToken, "text/csv", "id,kind\n"); st != 400 {
		t.Errorf("bad header: %d %s, want 400", st, body)
	}
	var c registry.Change
	if err := a.client(registry.DemoReviewer2Token).Do(ctx, "POST", "/api/v1/changes/"+rep.Change.ID+"/approve", nil, &c); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.reg.Terminal("T3000001"); !ok {
		t.Error("imported terminal missing after approval")
	}
}

func TestAPIIncidentsAlertsOplog(t *testing.T) {
	a := newAPIFixture(t)
	ctx := context.Background()
	op, an := a.client(registry.DemoOperatorToken), a.client(registry.DemoAnalystToken)
	req := a.goodT1()
	req.Location.Lat += 1 // about 111 km away
	if res := a.reg.Check(req); res.Reason != registry.ReasonLocationRange {
		t.Fatalf("far away: %q", res.Reason)
	}
	var incs []registry.Incident
	if err := an.Do(ctx, "GET", "/api/v1/incidents?status=open&terminal=T0000001", nil, &incs); err != nil || len(incs) != 1 {
		t.Fatalf("incidents = %+v, %v", incs, err)
	}
	if incs[0].Facts.DistanceM < 100_000 || incs[0].Device.Location == nil || incs[0].Merchant.Name != "Demo Grocery" {
		t.Errorf("incident = %+v", incs[0])
	}
	var inc registry.Incident
	if err := op.Do(ctx, "POST", "/api/v1/incidents/"+incs[0].ID+"/ack", registry.ReasonRequest{Note: "calling merchant"}, &inc); err != nil || inc.Status != registry.IncidentAcknowledged {
		t.Errorf("ack = %+v, %v", inc, err)
	}
	if err := op.Do(ctx, "POST", "/api/v1/incidents/"+incs[0].ID+"/resolve", registry.ReasonRequest{Note: "terminal moved, binding updated"}, &inc); err != nil || inc.Status != registry.IncidentResolved {
		t.Errorf("resolve = %+v, %v", inc, err)
	}
	if err := op.Do(ctx, "POST", "/api/v1/incidents/"+incs[0].ID+"/explode", nil, nil); apiStatus(err) != 404 {
		t.Errorf("unknown incident action: %v", err)
	}
	if err := op.Do(ctx, "GET", "/api/v1/incidents/INC-99", nil, nil); apiStatus(err) != 404 {
		t.Errorf("unknown incident: %v", err)
	}

	// registry.Alert rules and alerts.
	var ar registry.AlertRule
	if err := op.Do(ctx, "PUT", "/api/v1/alert-rules/quick", registry.AlertRule{Threshold: registry.Duration(2 * time.Hour), Filter: registry.AlertFilter{Merchants: []string{"000000000000002"}}}, &ar); err != nil {
		t.Fatal(err)
	}
	if ar.ID != "quick" || ar.UpdatedBy != "demo-operator" {
		t.Errorf("rule = %+v", ar)
	}
	if st, body := a.raw(t, "PUT", "/api/v1/alert-rules/quick", registry.DemoOperatorToken, "application/json", `{"threshold":"2h","actions":[{"type":"page"}]}`); st != 400 {
		t.Errorf("bad action: %d %s", st, body)
	}
	mon := registry.NewMonitor(a.reg, nil, registry.MonitorOptions{})
	if _, err := mon.RunOnce(ctx, t0.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	var als []registry.Alert
	if err := an.Do(ctx, "GET", "/api/v1/alerts?rule=quick", nil, &als); err != nil || len(als) != 1 || als[0].TerminalID != "T0000002" {
		t.Fatalf("alerts = %+v, %v", als, err)
	}
	var al registry.Alert
	if err := op.Do(ctx, "POST", "/api/v1/alerts/"+als[0].ID+"/ack", nil, &al); err != nil || al.Status != registry.AlertAcknowledged {
		t.Errorf("alert ack = %+v, %v", al, err)
	}
	if err := op.Do(ctx, "DELETE", "/api/v1/alert-rules/quick", nil, nil); err != nil {
		t.Errorf("delete rule: %v", err)
	}
	var rules []registry.AlertRule
	if err := an.Do(ctx, "GET", "/api/v1/alert-rules", nil, &rules); err != nil || len(rules) != 1 {
		t.Errorf("rules after delete = %+v, %v", rules, err)
	}

	// Oplog over the API.
	var es []registry.OpEntry
	if err := an.Do(ctx, "GET", "/api/v1/oplog?actor=demo-operator", nil, &es); err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range es {
		actions = append(actions, e.Action)
	}
	if got := strings.Join(actions, ","); got != "incident.ack,incident.resolve,alert-rule.put,alert.ack,alert-rule.delete" {
		t.Errorf("operator's oplog actions = %s", got)
	}
	if err := an.Do(ctx, "GET", "/api/v1/oplog?since=2026-05-01T10:00:00Z&limit=3", nil, &es); err != nil || len(es) != 3 {
		t.Errorf("oplog since = %d, %v", len(es), err)
	}
	if err := an.Do(ctx, "GET", "/api/v1/oplog?since=yesterday", nil, &es); apiStatus(err) != 400 {
		t.Errorf("bad since: %v, want 400", err)
	}
	var vr registry.VerifyResult
	if err := an.Do(ctx, "GET", "/api/v1/oplog/verify", nil, &vr); err != nil || !vr.OK || vr.Entries < testswitch.LoadTerminals {
		t.Errorf("verify = %+v, %v", vr, err)
	}
	var reasons []registry.ReasonInfo
	if err := an.Do(ctx, "GET", "/api/v1/reasons", nil, &reasons); err != nil || len(reasons) != len(registry.Reasons) {
		t.Errorf("reasons = %d, %v", len(reasons), err)
	}
}

// TestAPIRefusesUnboundSoftPOS: registering a SoftPOS without its device serial is a
// 400 that says what to set, before any reviewer sees it.
func TestAPIRefusesUnboundSoftPOS(t *testing.T) {
	a := newAPIFixture(t)
	body := `{"id":"T0000079","merchant_id":"000000000000002","kind":"softpos","status":"active","binding":{"imei":"860000000000079"},"reason":"new phone"}`
	st, out := a.raw(t, "POST", "/api/v1/terminals", registry.DemoOperatorToken, "application/json", body)
	if st != 400 || !strings.Contains(out, "device serial") {
		t.Fatalf("register an unbound softpos: %d %s, want 400 naming the device serial", st, out)
	}
	body = strings.Replace(body, `"binding":{`, `"binding":{"device_serial":"SP-79",`, 1)
	if st, out := a.raw(t, "POST", "/api/v1/terminals", registry.DemoOperatorToken, "application/json", body); st != 202 {
		t.Fatalf("register a bound softpos: %d %s, want 202", st, out)
	}
}
