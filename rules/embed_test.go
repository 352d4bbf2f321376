package rules_test

import (
	"io/fs"
	"path/filepath"
	"slices"
	"testing"

	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/rules"
)

// TestEmbeddedPackIsTheDirectory: the pack built into the binary is every rule file of
// this directory (a .yml file would be left out of the embed), and it compiles to the
// same version as the directory.
func TestEmbeddedPackIsTheDirectory(t *testing.T) {
	var onDisk, embedded []string
	for _, pat := range []string{"*.yaml", "*.yml"} {
		m, _ := filepath.Glob(pat)
		onDisk = append(onDisk, m...)
	}
	entries, err := fs.ReadDir(rules.Files, ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		embedded = append(embedded, e.Name())
	}
	slices.Sort(onDisk)
	if !slices.Equal(onDisk, embedded) {
		t.Fatalf("embedded %v, directory %v", embedded, onDisk)
	}
	fromFS, err := risk.LoadFS(rules.Files, risk.FallbackLabel, risk.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fromDir, err := risk.Load(".", risk.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if fromFS.Version != fromDir.Version || len(fromFS.Rules) != len(fromDir.Rules) {
		t.Errorf("embedded version %s (%d rules), directory %s (%d rules)", fromFS.Version, len(fromFS.Rules), fromDir.Version, len(fromDir.Rules))
	}
}
