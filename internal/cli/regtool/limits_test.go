package regtool

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/switch/registry"
)

// TestLimitsInTheirCurrency: a merchant's amount limits are shown in the decimals
// of the currency they are shown in, followed by its code: 1000 yen as "1000",
// 1500 fils as "1.500", not "10.00" and "15.00" as every limit was. Merchants
// of no currency are shown by merchant show and merchant list in the acquirer's
// (currency.Acquirer, 156), naming it; the stored minor units are unchanged.
func TestLimitsInTheirCurrency(t *testing.T) {
	l := registry.Limits{PerTransaction: 100_000, Daily: 1_000_000, Monthly: 1500, DailyCount: 20}
	for _, c := range []struct{ cur, long, short string }{
		{"156", "1000.00 156 a transaction, 10000.00 156 a day, 15.00 156 a month, 20 transactions a day", "1000.00/10000.00/15.00"},
		{"392", "100000 392 a transaction, 1000000 392 a day, 1500 392 a month, 20 transactions a day", "100000/1000000/1500"},
		{"414", "100.000 414 a transaction, 1000.000 414 a day, 1.500 414 a month, 20 transactions a day", "100.000/1000.000/1.500"},
	} {
		if got := limitsLong(l, c.cur); got != c.long {
			t.Errorf("limitsLong in %s = %q, want %q", c.cur, got, c.long)
		}
		if got := limitsText(l, c.cur); got != c.short {
			t.Errorf("limitsText in %s = %q, want %q", c.cur, got, c.short)
		}
	}
	if got := limitsText(registry.Limits{Daily: 5}, "392"); got != "-/5/-" {
		t.Errorf("limitsText of a daily limit alone = %q", got)
	}
	if got := limitsLong(registry.Limits{DailyCount: 3}, "392"); got != "3 transactions a day" {
		t.Errorf("limitsLong of a count alone = %q", got)
	}

	e := newEnv(t)
	e.mustRun(t, op, "merchant", "register", "000000000000077", "--name", "Night Market", "--mcc", "5812", "--region", "CN-GZ",
		"--tier", "micro", "--limit-txn", "50000", "--limit-daily", "1000005", "--limit-count", "9")
	// The change previews show the stored minor units and the limits as people read them.
	if out := e.mustRun(t, rev, "change", "show", "CHG-1"); !strings.Contains(out, `"per_transaction": 50000`) ||
		!strings.Contains(out, "(txn/day/month in 156: 500.00/10000.05/-)") {
		t.Errorf("change show of the registration:\n%s", out)
	}
	e.mustRun(t, rev, "change", "approve", "CHG-1")
	if out := e.mustRun(t, an, "merchant", "show", "000000000000077"); !strings.Contains(out, "500.00 156 a transaction, 10000.05 156 a day, 9 transactions a day") {
		t.Errorf("merchant show:\n%s", out)
	}
	out := e.mustRun(t, an, "merchant", "list")
	if !strings.Contains(out, "CURRENCY") || !strings.Contains(out, "LIMITS (txn/day/month)") || !strings.Contains(out, "156 500.00/10000.05/-") {
		t.Errorf("merchant list:\n%s", out)
	}
	e.mustRun(t, op, "merchant", "change", "000000000000077", "--limit-txn", "100000", "--limit-daily", "1000005", "--limit-count", "9")
	if out := e.mustRun(t, rev, "change", "show", "CHG-2"); !strings.Contains(out, "(txn/day/month in 156: 500.00/10000.05/- -> 1000.00/10000.05/-)") {
		t.Errorf("change show of a change of the limits:\n%s", out)
	}
	if got := Diff(json.RawMessage(`{"name":"a"}`), json.RawMessage(`{"name":"b"}`)); len(got) != 1 || got[0] != `name: "a" -> "b"` {
		t.Errorf("Diff of another field: %q", got)
	}
}

// TestRatingLimitsInTheAcquirersCurrency: merchant rating shows the limits of the
// grade in force in the acquirer's currency, naming it ("single 500.00 156"); they
// were written with two decimals and no currency.
func TestRatingLimitsInTheAcquirersCurrency(t *testing.T) {
	var out bytes.Buffer
	tl := &tool{out: &out}
	tl.printRating(&ratingView{Merchant: "000000000000001", Grade: "C", Limits: map[string]int64{"single": 50_000, "daily": 1_000_005}})
	if !strings.Contains(out.String(), "limits of grade C: single 500.00 156, daily 10000.05 156\n") {
		t.Fatalf("merchant rating:\n%s", out.String())
	}
	// A merchant in yen: its grade's limits in yen, as the switch names the currency.
	out.Reset()
	tl.printRating(&ratingView{Merchant: "000000000000001", Grade: "C", Limits: map[string]int64{"single": 50_000}, Currency: "392"})
	if !strings.Contains(out.String(), "limits of grade C: single 50000 392\n") {
		t.Fatalf("merchant rating of a yen merchant:\n%s", out.String())
	}
}

// TestMerchantCurrencyCLI: merchant register --currency sets the merchant's
// currency through review (change show names it); merchant show, merchant list
// and change show then read its limits in it, yen with no decimals ("100000 392
// a transaction", not "1000.00 156"); a change of its currency alone says what
// its limits, kept in minor units, become; a bad code is refused by the command
// (a usage error naming the numeric code) and by the API (400, the same words).
func TestMerchantCurrencyCLI(t *testing.T) {
	e := newEnv(t)
	e.mustRun(t, op, "merchant", "register", "000000000000078", "--name", "Ginza Sushi", "--mcc", "5812", "--region", "CN-SH",
		"--tier", "micro", "--currency", "392", "--limit-txn", "100000", "--limit-daily", "1500000")
	if out := e.mustRun(t, rev, "change", "show", "CHG-1"); !strings.Contains(out, `currency: "392"`) ||
		!strings.Contains(out, "(txn/day/month in 392: 100000/1500000/-)") {
		t.Errorf("change show of the registration:\n%s", out)
	}
	e.mustRun(t, rev, "change", "approve", "CHG-1")
	out := e.mustRun(t, an, "merchant", "show", "000000000000078")
	if !strings.Contains(out, "392 (JPY)") || !strings.Contains(out, "100000 392 a transaction, 1500000 392 a day") {
		t.Errorf("merchant show:\n%s", out)
	}
	out = e.mustRun(t, an, "merchant", "list")
	var row, other string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "000000000000078") {
			row = l
		}
		if strings.Contains(l, "000000000000001") {
			other = l
		}
	}
	if !strings.Contains(row, "392") || !strings.HasSuffix(strings.TrimSpace(row), "392 100000/1500000/-") {
		t.Errorf("merchant list's row of the yen merchant: %q\n%s", row, out)
	}
	if !strings.Contains(other, " - ") || !strings.Contains(other, " 156 ") {
		t.Errorf("merchant list's row of a merchant of any currency: %q", other)
	}
	e.mustRun(t, op, "merchant", "change", "000000000000078", "--currency", "156")
	if out := e.mustRun(t, rev, "change", "show", "CHG-2"); !strings.Contains(out, `currency: "392" -> "156" (limits kept in minor units: txn/day/month 100000/1500000/- in 392 now 1000.00/15000.00/- in 156)`) {
		t.Errorf("change show of a change of the currency:\n%s", out)
	}
	e.mustRun(t, op, "merchant", "change", "000000000000078", "--currency", "156", "--limit-txn", "1000")
	if out := e.mustRun(t, rev, "change", "show", "CHG-3"); !strings.Contains(out, "(txn/day/month: 100000/1500000/- in 392 -> 10.00/-/- in 156)") {
		t.Errorf("change show of a change of the currency and the limits:\n%s", out)
	}

	for _, bad := range []string{"JPY", "999", "39"} {
		code, _, errs := e.run(t, op, "merchant", "change", "000000000000078", "--currency", bad)
		if code != ExitUsage || !strings.Contains(errs, `--currency: currency "`+bad+`"`) {
			t.Errorf("merchant change --currency %s: exit %d, %s", bad, code, errs)
		}
	}
	if code, _, errs := e.run(t, op, "merchant", "register", "000000000000079", "--name", "x", "--mcc", "5812", "--region", "CN-SH",
		"--tier", "micro", "--currency", "JPY"); code != ExitUsage || !strings.Contains(errs, "392 (JPY is the alphabetic one)") {
		t.Errorf("merchant register --currency JPY: exit %d, %s", code, errs)
	}
	req := httptest.NewRequest("PATCH", "/api/v1/merchants/000000000000078", strings.NewReader(`{"currency":"JPY","reason":"x"}`))
	req.Header.Set("Authorization", "Bearer "+op)
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	e.handler.ServeHTTP(w, req)
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), `currency \"JPY\": want its ISO 4217 numeric code, 392`) {
		t.Errorf("PATCH with currency JPY: %d %s", w.Code, w.Body.String())
	}
}
