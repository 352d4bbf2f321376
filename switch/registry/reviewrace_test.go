package registry

import (
	"errors"
	"sync"
	"testing"

	"github.com/switchyard/switchyard/internal/statelog"
)

// TestReviewRaces: two reviewers deciding one change at once, on one node or on
// two nodes of a cluster (approve and approve, approve and reject), end with one
// decision: exactly one call succeeds, the other is refused with ErrConflict, the
// change's status and the terminal agree with the decision that won, and the
// oplog holds one decision.
func TestReviewRaces(t *testing.T) {
	type decide func(r *Registry, id string) (*Change, error)
	approve := func(p Actor) decide {
		return func(r *Registry, id string) (*Change, error) { return r.Approve(p, id, "") }
	}
	reject := func(p Actor) decide {
		return func(r *Registry, id string) (*Change, error) { return r.Reject(p, id, "") }
	}
	for _, tc := range []struct {
		name    string
		cluster bool
		x, y    decide
	}{
		{"one node, two approvals", false, approve(bob), approve(dave)},
		{"one node, approve and reject", false, approve(bob), reject(dave)},
		{"two nodes, two approvals", true, approve(bob), approve(dave)},
		{"two nodes, approve and reject", true, approve(bob), reject(dave)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ra, rb *Registry
			var mem *statelog.Memory
			if tc.cluster {
				mem = &statelog.Memory{}
				a, b := newNode(t, mem, mem), newNode(t, mem, mem)
				ra, rb = a.reg, b.reg
			} else {
				ra = newFixture(t).reg
				rb = ra
			}
			c, err := ra.RequestChange(alice, Change{Op: OpTerminalSuspend, Target: "T0000002", Reason: "lost"})
			if err != nil {
				t.Fatal(err)
			}
			if mem != nil {
				deliver(t, mem)
			}
			var wg sync.WaitGroup
			var errs [2]error
			var got [2]*Change
			start := make(chan struct{})
			for i, run := range []struct {
				r *Registry
				d decide
			}{{ra, tc.x}, {rb, tc.y}} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					got[i], errs[i] = run.d(run.r, c.ID)
				}()
			}
			close(start)
			wg.Wait()
			if mem != nil {
				deliver(t, mem)
			}
			won := -1
			for i, err := range errs {
				switch {
				case err == nil && won < 0:
					won = i
				case err == nil:
					t.Fatalf("both decisions succeeded: %s and %s", got[0].Status, got[1].Status)
				case !errors.Is(err, ErrConflict):
					t.Fatalf("decision %d: %v, want success or a conflict", i, err)
				}
			}
			if won < 0 {
				t.Fatalf("no decision succeeded: %v", errs)
			}
			for _, r := range []*Registry{ra, rb} {
				pv, err := r.GetChange(c.ID)
				if err != nil {
					t.Fatal(err)
				}
				if pv.Change.Status != got[won].Status || pv.Change.ReviewedBy != got[won].ReviewedBy {
					t.Fatalf("change %s by %s, want %s by %s", pv.Change.Status, pv.Change.ReviewedBy, got[won].Status, got[won].ReviewedBy)
				}
				tm, _ := r.Terminal("T0000002")
				if suspended := tm.Status == TerminalSuspended; suspended != (got[won].Status == ChangeApproved) {
					t.Fatalf("terminal %s after a change %s", tm.Status, got[won].Status)
				}
				n := 0
				for _, a := range []string{"change.approve", "change.reject"} {
					es, _ := r.Oplog(OplogFilter{Action: a, Target: c.ID})
					n += len(es)
				}
				if n != 1 {
					t.Fatalf("%d decisions in the oplog, want 1", n)
				}
			}
		})
	}
}
