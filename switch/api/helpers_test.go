package api_test

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/switch/internal/testswitch"
	"github.com/switchyard/switchyard/switch/registry"
)

// fakeClock is a settable clock for tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock d forward.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var t0 = time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)

var honest = netip.MustParseAddr("10.1.2.3")

func openDB(t testing.TB, dir string) *badger.DB {
	t.Helper()
	opts := badger.DefaultOptions(dir).WithLogger(nil).WithMemTableSize(8 << 20).WithValueLogFileSize(16 << 20).
		WithNumCompactors(2).WithBlockCacheSize(8 << 20).WithIndexCacheSize(0)
	db, err := badger.Open(opts)
	if err != nil {
		t.Fatalf("open Badger in %s: %v", dir, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// fixture is a registry on a fresh Badger database with the demo fleet.
type fixture struct {
	reg   *registry.Registry
	clock *fakeClock
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	return newFixtureOpts(t, registry.Options{SeenFlushInterval: -1})
}

// newFixtureOpts is newFixture with the registry's options.
func newFixtureOpts(t testing.TB, opts registry.Options) *fixture {
	t.Helper()
	f := &fixture{clock: &fakeClock{t: t0}}
	db := openDB(t, t.TempDir())
	reg, err := registry.New(db, f.clock.Now, opts)
	if err != nil {
		t.Fatalf("registry.New: %v", err)
	}
	t.Cleanup(func() {
		if err := reg.Close(); err != nil {
			t.Errorf("registry Close: %v", err)
		}
	})
	f.reg = reg
	if _, err := registry.LoadDemoFleet(f.reg, testswitch.LoadTerminals); err != nil {
		t.Fatalf("LoadDemo: %v", err)
	}
	return f
}

// goodT1 is an honest request of demo terminal T0000001 at the current clock.
func (f *fixture) goodT1() registry.CheckRequest {
	return registry.CheckRequest{
		TerminalID: "T0000001", MerchantID: "000000000000001", SourceIP: honest,
		DeviceID: "SN-T0000001", SIM: "89860000000000000001", IMEI: "860000000000001",
		Location:   registry.GeoPoint{Lat: 39.9050, Lon: 116.4080, Present: true}, // about 100 m away
		Cell:       "460-00-1234-5678",
		AppVersion: "2.10.0",
		Now:        f.clock.Now(),
	}
}

func strp(s string) *string { return &s }
