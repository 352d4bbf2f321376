package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
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
