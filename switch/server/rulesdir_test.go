package server

import (
	"crypto/rand"
	"encoding/hex"
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
