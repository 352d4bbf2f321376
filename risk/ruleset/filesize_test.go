package ruleset

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A rule file over MaxFileSize (a stray dump named *.yaml) is refused with its
// name before it is read whole; the rules in force would stay on a reload.
func TestRuleFileSizeBound(t *testing.T) {
	dir := writeRules(t, map[string]string{"a.yaml": "rules: []\n"})
	big := "# " + strings.Repeat("x", MaxFileSize) + "\nrules: []\n"
	if err := os.WriteFile(filepath.Join(dir, "b.yaml"), []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(dir, LoadOptions{})
	if err == nil || !strings.Contains(err.Error(), "b.yaml is 1048589 bytes, more than the 1048576 bytes allowed") {
		t.Fatalf("err %v, want b.yaml refused for its size", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "b.yaml"), []byte(big[:MaxFileSize-20]+"\nrules: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir, LoadOptions{}); err != nil {
		t.Fatalf("a file under the bound: %v", err)
	}
}
