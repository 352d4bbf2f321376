package registry

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

// TestSeenShare: a flush hands the seen sink the terminals seen on this node, not
// those merged from another node; MergeSeen moves a terminal's last-seen forward only,
// keeps an earlier location when the entry has none, ignores unknown terminals, and
// what it merged is written to Badger like the rest.
func TestSeenShare(t *testing.T) {
	f := newFixture(t)
	var sunk [][]SeenEntry
	f.reg.SetSeenSink(func(es []SeenEntry) { sunk = append(sunk, es) })
	here := netip.MustParseAddr("10.0.0.1")
	f.reg.Seen("LT000001", here, GeoPoint{Lat: 39.9, Lon: 116.4, Present: true}, t0)
	if err := f.reg.FlushSeen(); err != nil {
		t.Fatal(err)
	}
	if len(sunk) != 1 || len(sunk[0]) != 1 || sunk[0][0].ID != "LT000001" || !sunk[0][0].Time.Equal(t0) || sunk[0][0].Address != here {
		t.Fatalf("sink after a local sighting: %+v", sunk)
	}

	there := netip.MustParseAddr("10.9.9.9")
	f.reg.MergeSeen([]SeenEntry{
		{ID: "LT000001", LastSeen: LastSeen{Time: t0.Add(time.Minute), Address: there}},
		{ID: "LT000002", LastSeen: LastSeen{Time: t0.Add(2 * time.Minute), Address: there, Location: &GeoPoint{Lat: 31.2, Lon: 121.5}}},
		{ID: "NOSUCHTM", LastSeen: LastSeen{Time: t0}},
	})
	f.reg.MergeSeen([]SeenEntry{{ID: "LT000002", LastSeen: LastSeen{Time: t0, Address: here}}}) // earlier: ignored
	ls, ok := f.reg.LastSeen("LT000001")
	if !ok || !ls.Time.Equal(t0.Add(time.Minute)) || ls.Address != there || ls.Location == nil || ls.Location.Lat != 39.9 {
		t.Fatalf("LT000001 after a later sighting elsewhere: %+v %v; want its time and address, the earlier location kept", ls, ok)
	}
	ls, ok = f.reg.LastSeen("LT000002")
	if !ok || !ls.Time.Equal(t0.Add(2*time.Minute)) || ls.Address != there || ls.Location == nil || ls.Location.Lat != 31.2 {
		t.Fatalf("LT000002 merged: %+v %v", ls, ok)
	}
	if _, ok := f.reg.LastSeen("NOSUCHTM"); ok {
		t.Fatal("an unknown terminal was merged")
	}
	if err := f.reg.FlushSeen(); err != nil {
		t.Fatal(err)
	}
	if len(sunk) != 1 {
		t.Fatalf("merged sightings were handed to the sink (they would echo between nodes): %+v", sunk[1:])
	}
	f.reopen(t)
	if ls, ok := f.reg.LastSeen("LT000002"); !ok || !ls.Time.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("LT000002 after a restart: %+v %v; want the merged sighting written", ls, ok)
	}
}

// TestMonitorInactive: a monitor whose Active says no raises nothing, where the same
// monitor active raises the alert.
func TestMonitorInactive(t *testing.T) {
	f := newFixture(t)
	f.apply(t, Change{Op: OpAlertRulePut, AlertRule: &AlertRule{ID: "all-1h", Threshold: Duration(time.Hour),
		Actions: []AlertAction{{Type: ActionLog}}}})
	f.reg.Seen("LT000001", netip.MustParseAddr("10.0.0.1"), GeoPoint{}, t0)
	active := false
	mon := NewMonitor(f.reg, f.clock.Now, MonitorOptions{Active: func() bool { return active }})
	ctx := context.Background()
	if got, err := mon.RunOnce(ctx, t0.Add(2*time.Hour)); err != nil || len(got) != 0 {
		t.Fatalf("inactive monitor: %d alerts, %v; want none", len(got), err)
	}
	active = true
	got, err := mon.RunOnce(ctx, t0.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, a := range got {
		found = found || a.TerminalID == "LT000001"
	}
	if !found {
		t.Fatalf("active monitor: alerts %+v; want one for LT000001", got)
	}
}
