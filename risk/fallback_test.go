package risk

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/rs/zerolog"
)

// TestFallbackPack: while the rules directory does not exist the engine runs the
// fallback pack and says so; without a fallback it refuses, naming the directory; a
// directory that exists wins, and creating it then reloading switches over to it.
func TestFallbackPack(t *testing.T) {
	pack := fstest.MapFS{
		"10-a.yaml":  {Data: []byte("rules:\n  - {id: packed, condition: \"txn.amount > 1\", action: alert}\n")},
		"README.txt": {Data: []byte("not a rule file")},
	}
	dir := filepath.Join(t.TempDir(), "rules")
	if _, err := New(dir, Options{}); err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("no directory, no fallback: %v", err)
	}
	var logs bytes.Buffer
	log := zerolog.New(&logs)
	e, err := New(dir, Options{Fallback: pack, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	rs := e.RuleSet()
	if rs.Dir != FallbackLabel || len(rs.Rules) != 1 || rs.Rules[0].ID != "packed" {
		t.Fatalf("fallback rules: dir %q, %d rules", rs.Dir, len(rs.Rules))
	}
	if !strings.Contains(logs.String(), "rules directory "+dir+" does not exist: using the default rule pack built into the binary") {
		t.Errorf("the start does not say which rules it used:\n%s", logs.String())
	}
	if err := e.Watch(t.Context()); err != nil {
		t.Errorf("Watch without a directory: %v", err)
	}

	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(dir, "20-b.yaml", "rules:\n  - {id: own, condition: \"txn.amount > 2\", action: alert}\n"); err != nil {
		t.Fatal(err)
	}
	rs, err = e.Reload()
	if err != nil {
		t.Fatal(err)
	}
	if rs.Dir != dir || len(rs.Rules) != 1 || rs.Rules[0].ID != "own" {
		t.Fatalf("after creating the directory: dir %q, rules %v", rs.Dir, rs.Rules)
	}

	// A directory that exists is used even when the fallback is there.
	e2, err := New(dir, Options{Fallback: pack})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	if got := e2.RuleSet().Dir; got != dir {
		t.Errorf("existing directory: rules from %q", got)
	}
}
