package server

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/internal/testswitch"
)

// TestRulesDirMissingRefusedOutsideDemo: outside demo mode a rules_dir that does not
// exist (an analyst's typo) stops the start with an error naming the key and the
// path, instead of running production on the default pack built into the binary;
// a demo switch still falls back to that pack (the demo banner says so).
func TestRulesDirMissingRefusedOutsideDemo(t *testing.T) {
	dir := t.TempDir()
	lmk := make([]byte, 32)
	rand.Read(lmk)
	lmkFile := filepath.Join(dir, "lmk.hex")
	if err := os.WriteFile(lmkFile, []byte(hex.EncodeToString(lmk)), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "rulez")
	yaml := "data_dir: " + filepath.Join(dir, "data") + "\nrules_dir: " + missing + "\nlisteners: [{addr: 127.0.0.1:0}]\n" +
		"admin: {addr: 127.0.0.1:0, tokens: [{name: alice, role: admin, token: 3f9c2a7be41d8056c7e9a1b4d2f60835}]}\n" +
		"security: {lmk_file: " + lmkFile + ", card_hash_key_hex: " + hex.EncodeToString(lmk) + "}\n"
	c, err := config.Parse([]byte(yaml), "switch.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(c, zerolog.Nop())
	if err == nil {
		s.Close()
		t.Fatal("a switch outside demo mode started without its rules directory")
	}
	if msg := err.Error(); !strings.Contains(msg, "rules_dir: "+missing+" does not exist") {
		t.Errorf("error %q does not name rules_dir and its path", msg)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
		t.Error("the refused start made its data directory")
	}

	// A file where the directory should be is refused too.
	file := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(file, []byte("rules: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.RulesDir = file
	if s, err := New(c, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "rules_dir: "+file+" is not a directory") {
		if s != nil {
			s.Close()
		}
		t.Errorf("rules_dir a file: %v", err)
	}

	// Demo mode keeps the fallback.
	s = start(t, testswitch.DemoConfig(t, t.TempDir(), missing), nil)
	if got := s.Risk.RuleSet().Dir; got != risk.FallbackLabel {
		t.Errorf("demo rules from %q, want the built-in pack (%s)", got, risk.FallbackLabel)
	}
}

// TestEmptyRulesRefused: a rules_dir that exists but holds no rule (a deploy that
// wiped the files) stops the start with an error naming the directory and what it
// holds, demo mode or not, unless risk.allow_empty_rules is true; a reload (SIGHUP)
// to a set without a rule is refused, counted, and the rules in force stay.
func TestEmptyRulesRefused(t *testing.T) {
	empty := t.TempDir()
	c := testswitch.DemoConfig(t, t.TempDir(), empty)
	if s, err := New(c, zerolog.Nop(), testDemoIssuer); err == nil {
		s.Close()
		t.Fatal("a switch started on an empty rules directory")
	} else if !errors.Is(err, risk.ErrEmpty) || !strings.Contains(err.Error(), "rules directory "+empty+": no risk rule: found no rule files") ||
		!strings.Contains(err.Error(), "risk.allow_empty_rules") {
		t.Errorf("empty rules directory: %v", err)
	}
	c = testswitch.DemoConfig(t, t.TempDir(), empty)
	c.Risk.AllowEmptyRules = true
	if s := start(t, c, nil); len(s.Risk.RuleSet().Rules) != 0 {
		t.Errorf("allowed empty set has %d rules", len(s.Risk.RuleSet().Rules))
	}

	dir := t.TempDir()
	b, err := os.ReadFile("../../rules/00-deny.yaml")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "00-deny.yaml")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s := start(t, testswitch.DemoConfig(t, t.TempDir(), dir), nil)
	v1 := s.Risk.RuleSet().Version
	if err := os.Rename(file, filepath.Join(dir, "00-deny.YAML")); err != nil {
		t.Fatal(err)
	}
	res := s.Reload(nil)
	if len(res.Refused) != 1 || !errors.Is(res.Refused[0], risk.ErrEmpty) || !strings.Contains(res.Refused[0].Error(), "not read: 00-deny.YAML") {
		t.Errorf("reload to an empty set: refused %v", res.Refused)
	}
	if got := s.Risk.RuleSet(); got.Version != v1 || len(got.Rules) == 0 {
		t.Error("the empty set took effect")
	}
	if st := s.Risk.Stats(); st.ReloadsRefused != 1 {
		t.Errorf("reloads refused %d, want 1", st.ReloadsRefused)
	}
}
