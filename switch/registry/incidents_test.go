package registry

import (
	"testing"
)

func TestIncidentQueuedAndFlushedOnClose(t *testing.T) {
	f := newFixture(t)
	for i := 0; i < 50; i++ {
		req := f.goodT1()
		req.DeviceID = "SN-THIEF"
		f.reg.Check(req)
	}
	f.reopen(t) // Close drains the queue
	incs, err := f.reg.Incidents(IncidentFilter{Reason: ReasonDeviceMismatch})
	if err != nil || len(incs) != 50 {
		t.Errorf("incidents after close = %d, %v; want 50", len(incs), err)
	}
}

func TestIncidentQueueFullWritesSynchronously(t *testing.T) {
	f := &fixture{dir: t.TempDir(), clock: &fakeClock{t: t0}, opts: Options{SeenFlushInterval: -1, IncidentQueue: 1}}
	f.open(t)
	t.Cleanup(func() { f.close(t) })
	if _, err := LoadDemoFleet(f.reg, testLoadTerminals); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		req := f.goodT1()
		req.SIM = "89860000000000000999"
		f.reg.Check(req)
	}
	if incs, _ := f.reg.Incidents(IncidentFilter{}); len(incs) != 20 {
		t.Errorf("incidents = %d, want 20", len(incs))
	}
}
