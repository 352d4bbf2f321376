package api_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/api"
	"github.com/switchyard/switchyard/switch/registry"
)

var (
	errMRNotFound = errors.New("not found")
	errMRInvalid  = errors.New("invalid")
)

type fakeMerchantRisk struct{ pinnedBy string }

func (f *fakeMerchantRisk) Rating(_ context.Context, m string) (any, error) {
	if m != "M1" {
		return nil, fmt.Errorf("merchant %s: %w", m, errMRNotFound)
	}
	return map[string]string{"grade": "B"}, nil
}
func (f *fakeMerchantRisk) PinRating(_ context.Context, m, grade, reason, by string, days int) (any, error) {
	if grade == "F" {
		return nil, fmt.Errorf("grade F: %w", errMRInvalid)
	}
	f.pinnedBy = by
	return map[string]string{"grade": grade}, nil
}
func (f *fakeMerchantRisk) UnpinRating(context.Context, string, string, string) (any, error) {
	return nil, nil
}
func (f *fakeMerchantRisk) RecomputeRatings(context.Context) (any, error) { return nil, nil }
func (f *fakeMerchantRisk) Report(_ context.Context, m string, days int) (any, error) {
	return map[string]int{"days": days}, nil
}
func (f *fakeMerchantRisk) SetWebhook(context.Context, string, api.WebhookRequest, registry.Actor) (any, error) {
	return nil, nil
}
func (f *fakeMerchantRisk) Notices(context.Context, string, int) (any, error) { return nil, nil }

// TestMerchantRiskRoutes: every route needs a token; pins are the analysts', the
// webhook and the recomputation the operators'; the services' errors answer 404 and
// 400; the report's days default to 1.
func TestMerchantRiskRoutes(t *testing.T) {
	auth, err := admin.NewAuthenticator(api.DemoTokens())
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeMerchantRisk{}
	o := api.Options{Auth: auth, MerchantRisk: f, MerchantRiskErrors: api.MerchantRiskErrors{NotFound: errMRNotFound, Invalid: errMRInvalid}}
	srv := httptest.NewServer(api.New(o))
	defer srv.Close()
	do := func(method, path, token, body string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 512)
		n, _ := resp.Body.Read(buf)
		b.Write(buf[:n])
		return resp.StatusCode, b.String()
	}
	for _, p := range api.RoutePatterns(o) {
		method, path, _ := strings.Cut(p, " ")
		if st, _ := do(method, strings.ReplaceAll(path, "{id}", "M1"), "", "{}"); st != http.StatusUnauthorized {
			t.Errorf("%s without a token: %d", p, st)
		}
	}
	for _, c := range []struct {
		method, path, token, body string
		want                      int
	}{
		{"GET", "/api/v1/merchants/M1/rating", "demo-operator-7Kq2", "", 200},
		{"GET", "/api/v1/merchants/M9/rating", "demo-operator-7Kq2", "", 404},
		{"POST", "/api/v1/merchants/M1/rating/pin", "demo-operator-7Kq2", `{"grade":"B","reason":"x"}`, 403},
		{"POST", "/api/v1/merchants/M1/rating/pin", "demo-analyst-8Rt5", `{"grade":"F","reason":"x"}`, 400},
		{"POST", "/api/v1/merchants/M1/rating/pin", "demo-analyst-8Rt5", `{"grade":"B","reason":"x","bogus":1}`, 400},
		{"POST", "/api/v1/merchants/M1/rating/pin", "demo-analyst-8Rt5", `{"grade":"B","reason":"x"}`, 200},
		{"PUT", "/api/v1/merchants/M1/webhook", "demo-analyst-8Rt5", `{"url":"https://x"}`, 403},
		{"POST", "/api/v1/risk/ratings/recompute", "demo-analyst-8Rt5", "", 403},
		{"GET", "/api/v1/merchants/M1/report?days=x", "demo-operator-7Kq2", "", 400},
	} {
		if st, body := do(c.method, c.path, c.token, c.body); st != c.want {
			t.Errorf("%s %s as %s: %d %s, want %d", c.method, c.path, c.token, st, body, c.want)
		}
	}
	if _, body := do("GET", "/api/v1/merchants/M1/report", "demo-operator-7Kq2", ""); !strings.Contains(body, `"days": 1`) {
		t.Errorf("report without days: %s", body)
	}
	if f.pinnedBy != "demo-analyst" {
		t.Errorf("pinned by %q, want the principal's name", f.pinnedBy)
	}
}
