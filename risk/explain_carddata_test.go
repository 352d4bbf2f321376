package risk

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestExplainAndBacktestMaskCardData: a card number (here track 2 data) a terminal
// sent in DE 48 DI, IF or AV reaches neither explain's record nor a run-time error that quotes
// it (int(device.id)), in explain or in a backtest's first error: masked first 6 /
// last 4, as the values the rules saw already were.
func TestExplainAndBacktestMaskCardData(t *testing.T) {
	rs, err := Load(writeRules(t, map[string]string{"a.yaml": "rules:\n  - {id: r, condition: 'int(device.id) > 5', action: review}\n"}), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const pan, track = "4761739001010119", "4761739001010119=25121010000000000" // Luhn-valid test card
	in := purchase(5000)
	in.Txn.RRN = "000000000001"
	in.Device.ID = track
	in.Device.Findings = []string{"root", "%B" + pan + "^DOE/JOHN^2512101"}
	in.Terminal.AppVersion = "v1 " + pan
	h := &memHistory{recs: []Record{{Time: in.Txn.Time, RRN: in.Txn.RRN, Input: *in}}}
	ex, err := Explain(context.Background(), h, rs, in.Txn.RRN, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ex.Decision.Errors) != 1 || len(ex.Rules) != 1 || ex.Rules[0].Error == "" {
		t.Fatalf("want the rule's run-time error: %+v %+v", ex.Decision.Errors, ex.Rules)
	}
	exJSON, err := json.Marshal(ex)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Backtest(context.Background(), h, rs, BacktestOptions{From: in.Txn.Time.Add(-time.Hour), To: in.Txn.Time.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rules[0].Errors != 1 {
		t.Fatalf("backtest: want the rule's run-time error: %+v", rep.Rules[0])
	}
	for what, out := range map[string]string{"explain": string(exJSON), "backtest first error": rep.Rules[0].FirstError} {
		if strings.Contains(out, pan) || strings.Contains(out, "2512101") || strings.Contains(out, "DOE") {
			t.Errorf("%s: card data in clear: %s", what, out)
		}
		if !strings.Contains(out, "476173******0119") {
			t.Errorf("%s: masked PAN missing: %s", what, out)
		}
	}
	if h.recs[0].Input.Device.ID != track || h.recs[0].Input.Device.Findings[1] != "%B"+pan+"^DOE/JOHN^2512101" {
		t.Errorf("the journal's record was changed: %+v", h.recs[0].Input.Device)
	}
}
