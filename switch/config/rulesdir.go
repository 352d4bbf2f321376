package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// CheckRulesDir reports a rules_dir that is not a directory, outside demo mode. There
// the switch runs only the rules it is given: a rules_dir that does not exist (a
// mistyped path, a deployment that forgot the files) is refused at start and by
// `switchyard config check`, instead of running production on the default rule pack
// built into the binary. Demo mode (`make run`, `serve --demo` away from a checkout)
// keeps that fallback, and CheckRulesDir accepts anything there.
func (c *Config) CheckRulesDir() error {
	if c.Demo {
		return nil
	}
	fi, err := os.Stat(c.RulesDir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("rules_dir: %s does not exist: outside demo mode the switch does not fall back to the default rule pack built into the binary; correct rules_dir, or put the rule files there (the release's rules/ directory holds that pack)", c.RulesDir)
	case err != nil:
		return fmt.Errorf("rules_dir %s: %w", c.RulesDir, err)
	case !fi.IsDir():
		return fmt.Errorf("rules_dir: %s is not a directory", c.RulesDir)
	}
	return nil
}

// CandidatesRoot is the directory of candidate rule directories the console's
// backtest reads (risk.candidates_dir): by default candidates beside rules_dir
// (./candidates for ./rules), where an analyst copies the rules to change them:
// cp -r rules candidates/next.
func (c *Config) CandidatesRoot() string {
	if c.Risk.CandidatesDir != "" {
		return c.Risk.CandidatesDir
	}
	return filepath.Join(filepath.Dir(filepath.Clean(c.RulesDir)), "candidates")
}

// validateCandidatesDir refuses a risk.candidates_dir whose subdirectories are
// the switch's own files rather than candidates: the file system's root, or a
// directory that is or holds rules_dir or data_dir (a checkout's top, /etc/switchyard
// beside the configuration). Analysts name any directory under it from a browser.
func (c *Config) validateCandidatesDir(bad func(key, format string, args ...any)) {
	root, err := filepath.Abs(c.CandidatesRoot())
	if err != nil {
		bad("risk.candidates_dir", "%s: %v", c.CandidatesRoot(), err)
		return
	}
	if filepath.Dir(root) == root {
		bad("risk.candidates_dir", "%s is the file system's root: give a directory that holds only candidate rule directories", c.CandidatesRoot())
		return
	}
	for _, d := range []struct{ key, dir string }{{"rules_dir", c.RulesDir}, {"data_dir", c.DataDir}} {
		abs, err := filepath.Abs(d.dir)
		if err != nil || d.dir == "" {
			continue
		}
		if r, err := filepath.Rel(root, abs); err == nil && filepath.IsLocal(r) {
			bad("risk.candidates_dir", "%s holds %s %s: give a directory that holds only candidate rule directories (default: candidates beside rules_dir)", c.CandidatesRoot(), d.key, d.dir)
		}
	}
}
