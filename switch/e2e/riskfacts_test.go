package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/risk"
)

// TestRulesSeeReportedLocation: the location a terminal reports in DE 48 GL reaches the
// rules as binding.lat and binding.lon. They stayed 0, so the shadow rule
// device-geo-mismatch (reported position more than 10 km from the registered one) hit
// every transaction that reported a location, the terminal's own at home included.
func TestRulesSeeReportedLocation(t *testing.T) {
	f := startDemo(t, nil)
	r := f.send(pos(1000)) // T0000001 at its registered place, GL 39.904200,116.407400
	if r.RC != "00" {
		t.Fatalf("purchase at home: %+v", r)
	}
	out, code := f.cli(tokAnalyst, "journal", "--rrn", r.RRN, "--json")
	if code != 0 {
		t.Fatalf("journal --rrn %s: %d %s", r.RRN, code, out)
	}
	var rec struct {
		RuleHits []struct {
			ID string `json:"id"`
		} `json:"rule_hits"`
		Facts []byte `json:"facts"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &rec); err != nil {
		t.Fatalf("journal --rrn %s: %v: %s", r.RRN, err, out)
	}
	for _, h := range rec.RuleHits {
		if h.ID == "device-geo-mismatch" {
			t.Fatalf("device-geo-mismatch hit a terminal at its registered place: %s", out)
		}
	}
	var in risk.Input
	if err := in.UnmarshalBinary(rec.Facts); err != nil {
		t.Fatalf("the journal's facts: %v", err)
	}
	if b := in.Binding; !b.LocationKnown || b.Lat != 39.9042 || b.Lon != 116.4074 {
		t.Fatalf("the rules saw binding %+v, want location_known and lat,lon 39.9042,116.4074 from GL", b)
	}
}
