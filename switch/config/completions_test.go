package config

import (
	"strings"
	"testing"
)

// TestCompletionsTolerance: absent takes the pipeline's default (0), 0 allows nothing
// above (negative), a percent becomes a fraction, and one outside [0, 100] is refused
// with its key.
func TestCompletionsTolerance(t *testing.T) {
	base := "demo: true\nlisteners: [{addr: 127.0.0.1:1}]\nsecurity: {card_hash_key_hex: " + DemoCardHashKey + "}\n"
	for in, want := range map[string]float64{"": 0, "completions: {tolerance_percent: 0}": -1, "completions: {tolerance_percent: 20}": 0.2} {
		c, err := Parse([]byte(base+in), "test.yaml")
		if err != nil {
			t.Errorf("%q: %v", in, err)
		} else if got := c.Completions.Tolerance(); got != want {
			t.Errorf("%q: tolerance %v, want %v", in, got, want)
		}
	}
	_, err := Parse([]byte(base+"completions: {tolerance_percent: 150}"), "test.yaml")
	if err == nil || !strings.Contains(err.Error(), "completions.tolerance_percent: 150 is not between 0 and 100") {
		t.Errorf("tolerance 150: %v", err)
	}
}
