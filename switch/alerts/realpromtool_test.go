package alerts

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// promtoolBinary finds promtool, Prometheus's own checker: on PATH, or where
// .ci/run unpacks Debian's prometheus package. Outside CI a machine without it
// skips the tests that need it (the Go runner above covers the same files); in
// CI they fail instead, as the browser tests do without chromium.
func promtoolBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("promtool is not installed: .ci/run unpacks it from Debian's prometheus package (apt-get download prometheus); the real promtool's checks never skip in CI")
	}
	t.Skip("promtool is not on PATH (Debian: apt-get install prometheus): real promtool checks skipped outside CI")
	return ""
}

// runPromtool runs promtool with args in dir and returns its combined output
// and whether it exited 0; any other failure to run it fails the test.
func runPromtool(t *testing.T, bin, dir string, args ...string) (string, bool) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), true
	case errors.As(err, &exit):
		return string(out), false
	default:
		t.Fatalf("promtool %s: %v", strings.Join(args, " "), err)
		return "", false
	}
}

// TestRealPromtool checks the rule file and runs its unit tests with the real
// promtool (`promtool check rules`, `promtool test rules`), so that the Go
// runner of promtool_test.go and promtool are known to agree on this file.
func TestRealPromtool(t *testing.T) {
	bin := promtoolBinary(t)
	dir, file := filepath.Split(rulesFile)
	if out, ok := runPromtool(t, bin, dir, "check", "rules", file); !ok {
		t.Errorf("promtool check rules %s failed:\n%s", rulesFile, out)
	}
	tdir, tfile := filepath.Split(rulesTestFile)
	if out, ok := runPromtool(t, bin, tdir, "test", "rules", tfile); !ok {
		t.Errorf("promtool test rules %s failed:\n%s", rulesTestFile, out)
	}
}

// TestRealPromtoolCanFail: the same promtool invocation reports a unit test
// whose alert is expected and does not fire, and a rule file that does not
// parse, so that TestRealPromtool's passes mean something.
func TestRealPromtoolCanFail(t *testing.T) {
	bin := promtoolBinary(t)
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("r.yml", `groups:
- name: g
  rules:
  - alert: Broken
    expr: switchyard_journal_broken == 1
    for: 2m
    labels: {severity: critical}
`)
	write("r.test.yml", `rule_files: [r.yml]
evaluation_interval: 1m
tests:
- interval: 1m
  input_series:
  - series: 'switchyard_journal_broken{instance="a"}'
    values: '0 0 0 0 0 0'
  alert_rule_test:
  - eval_time: 4m
    alertname: Broken
    exp_alerts:
    - exp_labels: {severity: critical, instance: a}
`)
	if out, ok := runPromtool(t, bin, dir, "test", "rules", "r.test.yml"); ok {
		t.Errorf("promtool passed a unit test whose alert never fires:\n%s", out)
	}
	write("bad.yml", "groups:\n- name: g\n  rules:\n  - alert: Broken\n    expr: switchyard_journal_broken ==\n")
	if out, ok := runPromtool(t, bin, dir, "check", "rules", "bad.yml"); ok {
		t.Errorf("promtool passed a rule whose expression does not parse:\n%s", out)
	}
}
