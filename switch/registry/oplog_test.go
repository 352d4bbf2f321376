package registry

import (
	"fmt"
	"sync"
	"testing"
)

// TestOplogOneChainAcrossComponents writes the oplog from every component at once
// (review requests, alert rules, incident handling, LogOp for the review cases):
// they share the store's write lock, so the entries form one unbroken chain with
// consecutive sequence numbers. A component that appended under a lock of its own
// would fork the chain, and VerifyOplog would fail.
func TestOplogOneChainAcrossComponents(t *testing.T) {
	f := newFixture(t)
	const n = 20
	for i := 0; i < n; i++ { // incidents to handle below
		req := f.goodT1()
		req.IMEI = "860000000000999"
		if res := f.reg.Check(req); res.Reason != ReasonIMEIMismatch {
			t.Fatalf("Check with a foreign IMEI: %q, want %s", res.Reason, ReasonIMEIMismatch)
		}
	}
	f.reg.FlushIncidents()
	before, err := f.reg.Oplog(OplogFilter{Limit: 1})
	if err != nil || len(before) != 1 {
		t.Fatalf("last oplog entry: %v, %v", before, err)
	}
	last := before[0].Seq

	var wg sync.WaitGroup
	errs := make(chan error, 4*n)
	run := func(fn func(i int) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= n; i++ {
				if err := fn(i); err != nil {
					errs <- err
				}
			}
		}()
	}
	run(func(i int) error { // review
		name := fmt.Sprintf("Grocery %d", i)
		_, err := f.reg.RequestChange(alice, Change{Op: OpMerchantChange, Target: "000000000000001", MerchantPatch: &MerchantPatch{Name: &name}})
		return err
	})
	run(func(i int) error { // alerting
		_, err := f.reg.PutAlertRule(alice, AlertRule{ID: fmt.Sprintf("offline-%d", i), Threshold: Duration(DefaultOfflineThreshold), Actions: []AlertAction{{Type: ActionLog}}})
		return err
	})
	run(func(i int) error { // incidents
		_, err := f.reg.AcknowledgeIncident(alice, fmt.Sprintf("INC-%d", i), "looking")
		return err
	})
	run(func(i int) error { // store, for the review cases
		_, err := f.reg.LogOp(OpEntry{Actor: "erin", Action: "case.assign", TargetType: "case", Target: fmt.Sprintf("CASE-%d", i)}, nil)
		return err
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	es, err := f.reg.Oplog(OplogFilter{After: last, Limit: 10 * n})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 4*n {
		t.Fatalf("oplog entries written = %d, want %d", len(es), 4*n)
	}
	for i, e := range es {
		if e.Seq != last+uint64(i)+1 {
			t.Fatalf("entry %d has sequence %d, want %d", i, e.Seq, last+uint64(i)+1)
		}
	}
	if _, err := f.reg.VerifyOplog(); err != nil {
		t.Errorf("oplog chain after concurrent writers: %v", err)
	}
}
