package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/switch/registry"
)

// TestAPIMerchantNameLatin: POST /api/v1/merchants and PATCH /api/v1/merchants/{id}
// take name_latin and name_language (JSON the API refused as unknown fields
// before), a reviewer approves, and GET returns them; a bad value is a 400 that
// names the field.
func TestAPIMerchantNameLatin(t *testing.T) {
	a := newAPIFixture(t)
	approve := func(body string) {
		t.Helper()
		var c registry.Change
		if err := json.Unmarshal([]byte(body), &c); err != nil || c.ID == "" {
			t.Fatalf("change %s: %v", body, err)
		}
		if st, b := a.raw(t, "POST", "/api/v1/changes/"+c.ID+"/approve", registry.DemoReviewerToken, "application/json", "{}"); st != http.StatusOK {
			t.Fatalf("approve %s: %d %s", c.ID, st, b)
		}
	}
	st, body := a.raw(t, "POST", "/api/v1/merchants", registry.DemoOperatorToken, "application/json",
		`{"id":"000000000000091","name":"すし処 銀座","name_latin":"Sushi Ginza","name_language":"ja",`+
			`"mcc":"5814","region":"CN-SH","tier":"micro","rating":"low","reason":"new shop"}`)
	if st != http.StatusAccepted {
		t.Fatalf("register: %d %s", st, body)
	}
	approve(body)
	get := func() registry.Merchant {
		t.Helper()
		st, body := a.raw(t, "GET", "/api/v1/merchants/000000000000091", registry.DemoReviewerToken, "", "")
		var m registry.Merchant
		if err := json.Unmarshal([]byte(body), &m); st != http.StatusOK || err != nil {
			t.Fatalf("get: %d %s %v", st, body, err)
		}
		return m
	}
	if m := get(); m.NameLatin != "Sushi Ginza" || m.NameLanguage != "ja" {
		t.Fatalf("registered merchant %+v", m)
	}
	st, body = a.raw(t, "PATCH", "/api/v1/merchants/000000000000091", registry.DemoOperatorToken, "application/json",
		`{"name_latin":"Sushi Ginza 2","reason":"renamed"}`)
	if st != http.StatusAccepted {
		t.Fatalf("change: %d %s", st, body)
	}
	approve(body)
	if m := get(); m.NameLatin != "Sushi Ginza 2" || m.NameLanguage != "ja" {
		t.Fatalf("changed merchant %+v", m)
	}
	st, body = a.raw(t, "PATCH", "/api/v1/merchants/000000000000091", registry.DemoOperatorToken, "application/json",
		`{"name_language":"jp"}`)
	if st != http.StatusBadRequest || !strings.Contains(body, `name_language) \"jp\"`) {
		t.Fatalf("language jp: %d %s, want 400 naming the field", st, body)
	}
}

// TestAPINotesRefuseBidi: a suspension's reason and a review note with a bidi
// override or a zero-width space are a 400 naming the code point and the field; a
// reason in Chinese is taken.
func TestAPINotesRefuseBidi(t *testing.T) {
	a := newAPIFixture(t)
	st, body := a.raw(t, "POST", "/api/v1/terminals/T0000001/suspend", registry.DemoOperatorToken, "application/json",
		`{"reason":"stolen \u202edevoba"}`)
	if st != http.StatusBadRequest || !strings.Contains(body, "U+202E") || !strings.Contains(body, "reason") {
		t.Fatalf("suspension with a bidi override: %d %s, want 400 naming U+202E and the reason", st, body)
	}
	st, body = a.raw(t, "POST", "/api/v1/terminals/T0000001/suspend", registry.DemoOperatorToken, "application/json",
		`{"reason":"终端被盗，商户已报案"}`)
	if st != http.StatusAccepted {
		t.Fatalf("suspension with a Chinese reason: %d %s", st, body)
	}
	var c registry.Change
	if err := json.Unmarshal([]byte(body), &c); err != nil {
		t.Fatal(err)
	}
	st, body = a.raw(t, "POST", "/api/v1/changes/"+c.ID+"/approve", registry.DemoReviewerToken, "application/json", `{"note":"ok\u200b"}`)
	if st != http.StatusBadRequest || !strings.Contains(body, "U+200B") || !strings.Contains(body, "review note") {
		t.Fatalf("approval with a zero-width space: %d %s, want 400 naming U+200B and the review note", st, body)
	}
}

// TestAPIChangeOfNothingRefused: a PATCH of a merchant or terminal whose every
// field is what it already has is a 400 naming the fields, not a change request a
// reviewer would approve for nothing; one that changes a field is taken, with only
// that field in its patch.
func TestAPIChangeOfNothingRefused(t *testing.T) {
	a := newAPIFixture(t)
	st, body := a.raw(t, "PATCH", "/api/v1/merchants/000000000000001", registry.DemoOperatorToken, "application/json",
		`{"mcc":"5411","region":"CN-BJ","reason":"same"}`)
	if st != http.StatusBadRequest || !strings.Contains(body, "merchant 000000000000001: nothing to change: mcc is already 5411, region is already CN-BJ") {
		t.Fatalf("merchant change of nothing: %d %s, want 400 naming the fields", st, body)
	}
	st, body = a.raw(t, "PATCH", "/api/v1/terminals/T0000001", registry.DemoOperatorToken, "application/json",
		`{"device_serial":"SN-T0000001"}`)
	if st != http.StatusBadRequest || !strings.Contains(body, "terminal T0000001: nothing to change: device_serial is already SN-T0000001") {
		t.Fatalf("terminal change of nothing: %d %s, want 400 naming the field", st, body)
	}
	st, body = a.raw(t, "PATCH", "/api/v1/merchants/000000000000001", registry.DemoOperatorToken, "application/json",
		`{"mcc":"5812","region":"CN-BJ"}`)
	var c registry.Change
	if err := json.Unmarshal([]byte(body), &c); st != http.StatusAccepted || err != nil || c.MerchantPatch == nil ||
		c.MerchantPatch.Region != nil || c.MerchantPatch.MCC == nil {
		t.Fatalf("change of the MCC beside the same region: %d %s, want accepted with the MCC alone", st, body)
	}
}
