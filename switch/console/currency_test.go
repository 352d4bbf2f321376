package console

import (
	"encoding/json"
	"maps"
	"net/url"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/switch/registry"
)

// TestMerchantCurrencyPages: the console's registration form takes the merchant's
// currency into the change it requests (a bad code is refused with the registry's
// error); once approved, the merchant's page shows the currency and its limits in
// it, yen without decimals ("100000 392", not "1000.00 156"); a change of its
// currency shows, on the change's page, each amount limit read before and after
// in its currency ("100000 392 → 1000.00 156").
func TestMerchantCurrencyPages(t *testing.T) {
	f := newFixture(t)
	op := f.client()
	f.login(t, op, "operator", "operator-demo-pw")
	form := url.Values{"id": {"000000000000093"}, "name": {"すし処 銀座"}, "mcc": {"5814"}, "region": {"CN-SH"}, "tier": {"micro"},
		"rating": {"low"}, "currency": {"JPY"}}
	resp := f.postForm(t, op, "/console/merchants", "/console/merchants", form)
	if loc := resp.Header.Get("Location"); !strings.Contains(loc, "err=") || !strings.Contains(loc, "392") {
		t.Fatalf("registration in currency JPY went to %q, want refused naming 392", loc)
	}
	form.Set("currency", "392")
	resp = f.postForm(t, op, "/console/merchants", "/console/merchants", form)
	loc := resp.Header.Get("Location")
	id := strings.TrimPrefix(strings.SplitN(loc, "?", 2)[0], "/console/changes/")
	c, err := f.reg.GetChange(id)
	if err != nil || c.Change.Merchant == nil || c.Change.Merchant.Currency != "392" {
		t.Fatalf("the form's request (%s): %+v, %v", loc, c, err)
	}
	bob := registry.Actor{Name: "bob", Role: registry.RoleReviewer}
	alice := registry.Actor{Name: "alice", Role: registry.RoleOperator}
	if _, err := f.reg.Approve(bob, id, "ok"); err != nil {
		t.Fatal(err)
	}
	ch, err := f.reg.RequestChange(alice, registry.Change{Op: registry.OpMerchantChange, Target: "000000000000093",
		MerchantPatch: &registry.MerchantPatch{Limits: &registry.Limits{PerTransaction: 100000, Daily: 1500000}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Approve(bob, ch.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	_, page := get(t, op, f.srv.URL+"/console/merchants/000000000000093")
	if !strings.Contains(page, `id="merchant-currency">392 (JPY)<`) ||
		!strings.Contains(page, `id="merchant-limits">per transaction 100000 392 · daily 1500000 392 · monthly 0 392</span>`) {
		i := strings.Index(page, "merchant-currency")
		t.Fatalf("the merchant's page does not show its currency and its limits in yen:\n%s", page[max(i, 0):min(max(i, 0)+400, len(page))])
	}
	if _, page := get(t, op, f.srv.URL+"/console/merchants/000000000000001"); !strings.Contains(page, `id="merchant-currency">any<`) {
		t.Errorf("the page of a merchant of any currency does not say so")
	}

	ch, err = f.reg.RequestChange(alice, registry.Change{Op: registry.OpMerchantChange, Target: "000000000000093",
		MerchantPatch: &registry.MerchantPatch{Currency: new("156")}})
	if err != nil {
		t.Fatal(err)
	}
	_, page = get(t, op, f.srv.URL+"/console/changes/"+ch.ID)
	if !strings.Contains(page, `<p class="limit-amount">100000 392 → 1000.00 156</p>`) {
		t.Fatalf("the change's page does not read the limits in both currencies:\n%s", page)
	}

	lines := diff(json.RawMessage(`{"currency":"392","limits":{"per_transaction":100000}}`),
		json.RawMessage(`{"currency":"392","limits":{"per_transaction":200000,"daily":5}}`))
	got := map[string]string{}
	for _, l := range lines {
		got[l.Field] = l.Amount
	}
	if want := map[string]string{"currency": "", "limits.per_transaction": "100000 → 200000 392", "limits.daily": "- → 5 392"}; !maps.Equal(got, want) {
		t.Errorf("diff's amounts of a yen merchant: %v, want %v", got, want)
	}
	got = map[string]string{}
	for _, l := range diff(nil, json.RawMessage(`{"currency":"392","limits":{"per_transaction":100000}}`)) {
		got[l.Field] = l.Amount
	}
	if got["limits.per_transaction"] != "- → 100000 392" {
		t.Errorf("diff's amount of a new yen merchant: %q", got["limits.per_transaction"])
	}
}
