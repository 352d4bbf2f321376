package config

import (
	"strings"
	"testing"
)

// TestCandidatesDir: risk.candidates_dir defaults to candidates beside rules_dir;
// a directory of its own is taken; the file system's root, and a directory that
// holds rules_dir or data_dir (whose subdirectories an analyst could then name
// for a backtest from the console), are refused naming the key.
func TestCandidatesDir(t *testing.T) {
	const base = "demo: true\nsecurity: {card_hash_key_hex: " + DemoCardHashKey + "}\nlisteners: [{addr: 127.0.0.1:1}]\n"
	for _, c := range []struct{ in, root string }{
		{"", "candidates"},
		{"rules_dir: /etc/switchyard/rules\n", "/etc/switchyard/candidates"},
		{"rules_dir: /etc/switchyard/rules/\n", "/etc/switchyard/candidates"},
		{"rules_dir: /etc/switchyard/rules\nrisk: {candidates_dir: /srv/candidates}\n", "/srv/candidates"},
		{"data_dir: /var/lib/switchyard\nrisk: {candidates_dir: /var/lib/switchyard/candidates}\n", "/var/lib/switchyard/candidates"},
	} {
		cfg, err := Parse([]byte(base+c.in), "test.yaml")
		if err != nil {
			t.Fatalf("%q: %v", c.in, err)
		}
		if got := cfg.CandidatesRoot(); got != c.root {
			t.Errorf("%q: candidates root %q, want %q", c.in, got, c.root)
		}
	}
	for _, c := range []struct{ in, want string }{
		{"risk: {candidates_dir: /}\n", "risk.candidates_dir: / is the file system's root"},
		{"risk: {candidates_dir: .}\n", "risk.candidates_dir: . holds rules_dir ./rules"},
		{"rules_dir: /etc/switchyard/rules\nrisk: {candidates_dir: /etc/switchyard}\n", "risk.candidates_dir: /etc/switchyard holds rules_dir /etc/switchyard/rules"},
		{"rules_dir: /etc/switchyard/rules\nrisk: {candidates_dir: /etc/switchyard/rules}\n", "holds rules_dir"},
		{"data_dir: /var/lib/switchyard\nrisk: {candidates_dir: /var/lib}\n", "risk.candidates_dir: /var/lib holds data_dir /var/lib/switchyard"},
	} {
		_, err := Parse([]byte(base+c.in), "test.yaml")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q:\n got %v\nwant %s", c.in, err, c.want)
		}
	}
}
