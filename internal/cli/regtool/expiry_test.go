package regtool

import (
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/registry"
)

// TestCLIExpiredChange: change approve of a change older than
// registry.change_ttl exits non-zero with the 410 naming its age; change list
// --status expired lists it and the default (pending) does not; change reject
// still closes it.
func TestCLIExpiredChange(t *testing.T) {
	e := newEnv(t)
	e.mustRun(t, op, "terminal", "suspend", "T0000001", "--reason", "lost")
	e.clock.mu.Lock()
	e.clock.t = e.clock.t.Add(registry.DefaultChangeTTL + 2*time.Hour)
	e.clock.mu.Unlock()
	code, out, errs := e.run(t, rev, "change", "approve", "CHG-1")
	if code == ExitOK || !strings.Contains(errs, "410") || !strings.Contains(errs, "expired: requested 7d2h ago by demo-operator") {
		t.Fatalf("approve of an expired change: exit %d\n%s%s", code, out, errs)
	}
	if out := e.mustRun(t, rev, "change", "list"); strings.Contains(out, "CHG-1") {
		t.Errorf("change list (pending) lists the expired change:\n%s", out)
	}
	if out := e.mustRun(t, rev, "change", "list", "--status", "expired"); !strings.Contains(out, "CHG-1") || !strings.Contains(out, "expired") {
		t.Errorf("change list --status expired:\n%s", out)
	}
	if out := e.mustRun(t, rev, "change", "reject", "CHG-1", "--note", "stale"); !strings.Contains(out, "rejected") {
		t.Errorf("change reject of the expired change:\n%s", out)
	}
}
