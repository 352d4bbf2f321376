package regtool

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/cli/apiclient"
	"github.com/switchyard/switchyard/switch/notify"
	"github.com/switchyard/switchyard/switch/registry"
)

// isJSON reports whether out reads as a JSON document.
func isJSON(out string) bool {
	var v any
	return json.Unmarshal([]byte(out), &v) == nil
}

// TestShowIsForPeople: merchant, terminal, incident and alert show print the record
// for people by default (labelled lines, times in the acquirer's zone with their
// offset), and with --json the API's record, which scripts parse (they printed JSON
// whatever was asked).
func TestShowIsForPeople(t *testing.T) {
	e := newEnv(t)
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	e.loc = shanghai
	created := "2026-05-01 18:00:00.000 +08:00" // t0, 10:00 UTC, in Asia/Shanghai

	// An incident (T0000001 used with another merchant) and an alert (the SoftPOS
	// phones never seen, 2 h after activation).
	req := t1Request()
	req.MerchantID = "000000000000002"
	if res := e.reg.Check(req); res.Reason != registry.ReasonMerchantMismatch {
		t.Fatalf("swap: %q", res.Reason)
	}
	// A request that passes the checks makes the terminal seen (the swap, refused,
	// does not: it proves nothing of the terminal).
	if res := e.reg.Check(t1Request()); res.Decline {
		t.Fatalf("T0000001 at its shop: %+v", res)
	}
	e.mustRun(t, op, "alert-rule", "set", "off-1h", "--threshold", "1h", "--kind", "softpos", "--action", "log")
	if _, err := registry.NewMonitor(e.reg, nil, registry.MonitorOptions{}).RunOnce(context.Background(), t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	var alerts []registry.Alert
	if err := json.Unmarshal([]byte(e.mustRun(t, an, "alert", "list", "--json")), &alerts); err != nil || len(alerts) == 0 {
		t.Fatalf("alert list --json: %d alerts, %v", len(alerts), err)
	}
	alertID := alerts[0].ID

	for _, c := range []struct {
		args []string
		want []string // in the output for people
		into any      // what --json decodes into
	}{
		{[]string{"merchant", "show", "000000000000001"},
			[]string{"Merchant:", "000000000000001", "Name:", "Demo Grocery", "Status:", "active", "Limits:", "Created:", created},
			&registry.Merchant{}},
		{[]string{"terminal", "show", "T0000001"},
			[]string{"Terminal:", "T0000001", "Merchant:", "000000000000001", "Binding:", "device serial SN-T0000001", "Last seen:", created + " from 10.0.0.9", "Created:", created},
			&registry.TerminalView{}},
		{[]string{"incident", "show", "INC-1"},
			[]string{"Incident:", "INC-1", "Reason:", "merchant-mismatch", "Sent DE 42:", "000000000000002", "Status:", "open", "Time:", created},
			&registry.Incident{}},
		{[]string{"alert", "show", alertID},
			[]string{"Alert:", alertID, "Rule:", "off-1h (after 1h0m0s of silence)", "Last seen:", "never", "Offline for:", "2h0m0s", "Actions:", "log ok", "Time:", "2026-05-01 20:00:00.000 +08:00"},
			&registry.Alert{}},
	} {
		line := strings.Join(c.args, " ")
		out := e.mustRun(t, an, c.args...)
		if isJSON(out) || strings.HasPrefix(strings.TrimSpace(out), "{") {
			t.Errorf("%s prints JSON by default:\n%s", line, out)
		}
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s lacks %q:\n%s", line, w, out)
			}
		}
		js := e.mustRun(t, an, append(c.args, "--json")...)
		if err := json.Unmarshal([]byte(js), c.into); err != nil {
			t.Errorf("%s --json does not parse: %v\n%s", line, err, js)
		}
		if !strings.Contains(js, `"id": "`+c.args[2]+`"`) {
			t.Errorf("%s --json is not the record:\n%s", line, js)
		}
	}
}

// TestMerchantNoticesForPeople: merchant notices prints the webhook and the delivery
// log as labelled lines and tables, PANs as masked as the switch sent them; --json
// prints the switch's answer as it always did.
func TestMerchantNoticesForPeople(t *testing.T) {
	at := time.Date(2026, 12, 1, 17, 30, 0, 0, time.UTC)
	last := at.Add(time.Minute)
	n := notify.Notice{ID: "000000000000001-7", Seq: 7, Merchant: "000000000000001", Terminal: "T0000001", Event: "purchase", RRN: "000000000042",
		Amount: 12345, Currency: "156", PAN: "476173******0119", AuthCode: "000042", Time: at}
	// A notice in yen (no minor unit) shows its amount as yen: 5000, not 50.00
	// (as before the third release of 6 December 2026).
	yen := n
	yen.Seq, yen.RRN, yen.Amount, yen.Currency = 8, "000000000043", 5000, "392"
	answer, err := json.Marshal(&notify.Log{Merchant: "000000000000001", Webhook: "https://shop.example/notices",
		Pending:   []notify.Delivery{{Notice: n, Status: "pending", Attempts: 3, LastError: "HTTP 503", LastAttempt: &last}},
		Delivered: []notify.Delivery{{Notice: yen, Status: "delivered", Attempts: 1, DeliveredAt: &last}}})
	if err != nil {
		t.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/merchants/000000000000001/notices" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(answer)
	})
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := Run(context.Background(), "merchant", args, &apiclient.Client{Handler: h}, shanghai, &out, &errb); code != ExitOK {
			t.Fatalf("merchant %s: exit %d: %s", strings.Join(args, " "), code, errb.String())
		}
		return out.String()
	}
	out := run("notices", "000000000000001")
	if isJSON(out) {
		t.Errorf("merchant notices prints JSON by default:\n%s", out)
	}
	for _, w := range []string{"Merchant:", "Webhook:", "https://shop.example/notices", "Pending:", "1", "SEQ", "476173******0119", "123.45",
		"2026-12-02 01:30:00.000 +08:00", "HTTP 503", "Delivered:", " 5000 "} {
		if !strings.Contains(out, w) {
			t.Errorf("merchant notices lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "50.00") {
		t.Errorf("merchant notices shows 5000 yen as 50.00:\n%s", out)
	}
	var v map[string]any
	js := run("notices", "000000000000001", "--json")
	if err := json.Unmarshal([]byte(js), &v); err != nil || v["webhook"] != "https://shop.example/notices" || !strings.Contains(js, `"pending"`) {
		t.Errorf("merchant notices --json (%v):\n%s", err, js)
	}
}

// The lists (change, oplog, incident, alert) and change show print their times as the
// show commands do, in the acquirer's zone with the offset; before, they printed UTC
// in RFC 3339 ("2026-05-01T10:00:00Z").
func TestListsShowTimesInTheAcquirersZone(t *testing.T) {
	e := newEnv(t)
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	e.loc = shanghai
	at := "2026-05-01 18:00:00.000 +08:00" // t0, 10:00 UTC, in Asia/Shanghai
	req := t1Request()
	req.MerchantID = "000000000000002"
	if res := e.reg.Check(req); res.Reason != registry.ReasonMerchantMismatch {
		t.Fatalf("swap: %q", res.Reason)
	}
	e.mustRun(t, op, "alert-rule", "set", "off-1h", "--threshold", "1h", "--kind", "softpos", "--action", "log")
	if _, err := registry.NewMonitor(e.reg, nil, registry.MonitorOptions{}).RunOnce(context.Background(), t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	e.mustRun(t, op, "merchant", "freeze", "000000000000001", "--reason", "AML review")
	e.mustRun(t, rev, "change", "approve", "CHG-1", "--note", "confirmed")
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"change", "list", "--status", "all"}, []string{"demo-operator  " + at + "  demo-reviewer"}},
		{[]string{"change", "show", "CHG-1"}, []string{"requested by demo-operator at " + at, "approved by demo-reviewer at " + at + " confirmed"}},
		{[]string{"oplog", "--action", "change."}, []string{"  " + at + "  demo-operator  "}}, // (the values of a diff are the record's JSON)
		{[]string{"incident", "list"}, []string{"INC-1  " + at + "  merchant-mismatch"}},
		{[]string{"alert", "list"}, []string{"  2026-05-01 20:00:00.000 +08:00  off-1h"}},
	} {
		out := e.mustRun(t, an, c.args...)
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("%q lacks %q:\n%s", c.args, w, out)
			}
		}
		if strings.Contains(out, "T10:00:00Z") || strings.Contains(out, "T12:00:00Z") {
			t.Errorf("%q shows UTC:\n%s", c.args, out)
		}
		if out := e.mustRun(t, an, append(c.args, "--json")...); !strings.Contains(out, "T10:00:00Z") && !strings.Contains(out, "T12:00:00Z") {
			t.Errorf("%q --json lost the API's times:\n%s", c.args, out)
		}
	}
}

// TestMerchantReportAmountsByCurrency: merchant report shows a merchant's
// approved amounts by currency, each with its decimals: 125.00 yuan and 1000
// yen, not 135.00 of nothing (their sum in two decimals, before the third
// release of 6 December 2026); from a switch that sends only the sum, the sum.
func TestMerchantReportAmountsByCurrency(t *testing.T) {
	answer := `{"merchant":"000000000000001","days":1,"time_zone":"Asia/Shanghai","transactions":3,"approved":3,
		"by_type":{"purchase":{"count":3,"approved":3,"approved_amount":13500,"approved_amounts":{"156":12500,"392":1000}},
		           "refund":{"count":1,"approved":1,"approved_amount":700}}}`
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(answer))
	})
	var out, errb bytes.Buffer
	if code := Run(context.Background(), "merchant", []string{"report", "000000000000001"}, &apiclient.Client{Handler: h}, time.UTC, &out, &errb); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if s := out.String(); !strings.Contains(s, "125.00 156, 1000 392") || strings.Contains(s, "135.00") || !strings.Contains(s, "7.00") {
		t.Errorf("merchant report:\n%s", s)
	}
}
