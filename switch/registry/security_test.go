package registry

import (
	"strings"
	"testing"
	"time"
)

// TestAlertRuleZeroThresholdRefused: a threshold left out of the JSON body is the
// default; an explicit zero is refused instead of silently becoming 24 h.
func TestAlertRuleZeroThresholdRefused(t *testing.T) {
	a := newAPIFixture(t)
	for _, body := range []string{`{"threshold":"0s"}`, `{"threshold":0}`, `{"threshold":"-1h"}`, `{"threshold":"30s"}`} {
		st, out := a.raw(t, "PUT", "/api/v1/alert-rules/zero", DemoOperatorToken, "application/json", body)
		if st != 400 || !strings.Contains(out, "threshold") {
			t.Errorf("PUT %s: %d %s, want 400 naming the threshold", body, st, out)
		}
	}
	if st, out := a.raw(t, "PUT", "/api/v1/alert-rules/dflt", DemoOperatorToken, "application/json", `{"filter":{"merchants":["000000000000001"]}}`); st != 200 {
		t.Fatalf("rule without a threshold: %d %s", st, out)
	}
	for _, ar := range a.reg.AlertRules() {
		if ar.ID == "dflt" && time.Duration(ar.Threshold) != DefaultOfflineThreshold {
			t.Errorf("rule without a threshold got %v, want %v", time.Duration(ar.Threshold), DefaultOfflineThreshold)
		}
		if ar.ID == "zero" {
			t.Errorf("rule with a zero threshold was stored: %+v", ar)
		}
	}
}
