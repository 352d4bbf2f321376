package console

import (
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/registry"
)

// TestExpiredChangeOffersNoApproval: a change older than registry.change_ttl
// shows "expired" and why on its page, offers reject but no approve button, and
// is listed under the expired filter, not the pending one.
func TestExpiredChangeOffersNoApproval(t *testing.T) {
	f := newFixture(t)
	c, err := f.reg.RequestChange(registry.Actor{Name: "operator", Role: registry.RoleOperator},
		registry.Change{Op: registry.OpTerminalSuspend, Target: "T0000002", Reason: "lost"})
	if err != nil {
		t.Fatal(err)
	}
	rev := f.client()
	f.login(t, rev, "reviewer", "reviewer-demo-pw")
	if _, page := get(t, rev, f.srv.URL+"/console/changes/"+c.ID); !strings.Contains(page, `id="approve"`) {
		t.Fatalf("a fresh change offers no approval:\n%s", page)
	}
	f.clock.Advance(registry.DefaultChangeTTL + time.Hour)
	rev = f.client() // the session has ended too
	f.login(t, rev, "reviewer", "reviewer-demo-pw")
	_, page := get(t, rev, f.srv.URL+"/console/changes/"+c.ID)
	if strings.Contains(page, `id="approve"`) || !strings.Contains(page, `id="reject"`) ||
		!strings.Contains(page, `id="change-status">expired`) || !strings.Contains(page, "expired: requested 7d1h ago") {
		t.Fatalf("the expired change's page:\n%s", page)
	}
	if _, list := get(t, rev, f.srv.URL+"/console/changes"); strings.Contains(list, c.ID) {
		t.Errorf("the pending queue lists the expired change %s", c.ID)
	}
	if _, list := get(t, rev, f.srv.URL+"/console/changes?status=expired"); !strings.Contains(list, c.ID) {
		t.Errorf("the expired filter does not list %s", c.ID)
	}
}
