package console

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/switch/registry"
)

// A card number in a console address (pasted into a search field, or typed
// into the address bar as a transaction's RRN) is masked by a redirect before
// any page, the login's next= included, can echo it; a merchant ID that passes
// the Luhn check is left alone. Before, the transactions, merchants, terminals,
// incidents and oplog pages showed it back in their search fields and in the
// language switch's links, and the login redirect carried it on.
func TestCardNumberInAddressMasked(t *testing.T) {
	f := newFixture(t)
	op := f.client()
	f.login(t, op, "operator", "operator-demo-pw")
	const pan = "4111111111111111"
	for _, p := range []string{
		"/console/transactions?rrn=" + pan,
		"/console/transactions?terminal=4111+1111+1111+1111",
		"/console/merchants?q=" + pan,
		"/console/terminals?q=4111-1111-1111-1111",
		"/console/incidents?terminal=" + pan,
		"/console/oplog?target=" + pan,
		"/console/transactions/" + pan,
		"/console/merchants/" + pan,
		// Full-width digits, as a Chinese input method in full-width mode types
		// them (until 7 December 2026 shown back and searched for).
		"/console/merchants?q=" + url.QueryEscape("４１１１１１１１１１１１１１１１"),
		"/console/transactions?terminal=" + url.QueryEscape("４１１１　１１１１　１１１１　１１１１"),
	} {
		resp, body := get(t, op, f.srv.URL+p)
		loc := resp.Header.Get("Location")
		wide := url.QueryEscape("１１１１")
		if resp.StatusCode != http.StatusSeeOther || strings.Contains(loc, "1111111111") || strings.Contains(body, "1111111111") || !strings.Contains(loc, "msg=card_masked") ||
			strings.Contains(loc, wide) || strings.Contains(body, "１１１１") {
			t.Fatalf("GET %s: %d, Location %q, body has the card number: %v", p, resp.StatusCode, loc, strings.Contains(body, "1111111111"))
		}
		resp, body = get(t, op, f.srv.URL+loc)
		if strings.Contains(body, "1111111111") || strings.Contains(body, "1111-1111") || strings.Contains(body, "1111 1111") {
			t.Fatalf("GET %s (from %s): the page holds the card number:\n%s", loc, p, body)
		}
		if resp.StatusCode != http.StatusNotFound && !strings.Contains(body, `id="msg"`) {
			t.Fatalf("GET %s (from %s): %d, no notice", loc, p, resp.StatusCode)
		}
	}
	// Not logged in: the login's next= does not carry it either.
	resp, _ := get(t, f.client(), f.srv.URL+"/console/transactions?rrn="+pan)
	if loc := resp.Header.Get("Location"); strings.Contains(loc, "1111111111") {
		t.Fatalf("not logged in: Location %s", loc)
	}

	// A 15-digit merchant ID that passes the Luhn check is an ID, not a card.
	const mid = "000000000000018"
	resp = f.postForm(t, op, "/console/merchants", "/console/merchants", url.Values{"id": {mid}, "name": {"Luhn Shop"},
		"mcc": {"5814"}, "region": {"CN-SH"}, "tier": {"micro"}, "rating": {"low"}})
	id := strings.TrimPrefix(strings.SplitN(resp.Header.Get("Location"), "?", 2)[0], "/console/changes/")
	if _, err := f.reg.Approve(registry.Actor{Name: "bob", Role: registry.RoleReviewer}, id, "ok"); err != nil {
		t.Fatalf("approve %s (%s): %v", id, resp.Header.Get("Location"), err)
	}
	for _, p := range []string{"/console/merchants/" + mid, "/console/transactions?merchant=" + mid, "/console/terminals?merchant=" + mid} {
		if resp, _ := get(t, op, f.srv.URL+p); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s, want the page", p, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
}
