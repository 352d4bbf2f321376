package registry

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
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

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var t0 = time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)

var (
	alice  = Actor{Name: "alice", Role: RoleOperator}
	carol  = Actor{Name: "carol", Role: RoleOperator}
	bob    = Actor{Name: "bob", Role: RoleReviewer}
	dave   = Actor{Name: "dave", Role: RoleReviewer}
	erin   = Actor{Name: "erin", Role: "analyst"}
	root   = Actor{Name: "root", Role: RoleAdmin}
	honest = netip.MustParseAddr("10.1.2.3")
)

func openDB(t testing.TB, dir string) *badger.DB {
	t.Helper()
	opts := badger.DefaultOptions(dir).WithLogger(nil).WithMemTableSize(8 << 20).WithValueLogFileSize(16 << 20).
		WithNumCompactors(2).WithBlockCacheSize(8 << 20).WithIndexCacheSize(0)
	db, err := badger.Open(opts)
	if err != nil {
		t.Fatalf("open Badger in %s: %v", dir, err)
	}
	return db
}

// testLoadTerminals is how many load terminals the fixtures' demo fleet has. The full
// fleet's 2,000 made up most of this package's time under -race; TestDemoFleet and
// TestSharedDemoLoadedTogether load all of them.
const testLoadTerminals = 200

type fixture struct {
	dir   string
	db    *badger.DB
	reg   *Registry
	clock *fakeClock
	opts  Options
}

// newFixture opens a registry on a fresh Badger database with the demo fleet.
func newFixture(t testing.TB) *fixture {
	t.Helper()
	return newFixtureOpts(t, Options{SeenFlushInterval: -1})
}

// newFixtureOpts is newFixture with the registry's options.
func newFixtureOpts(t testing.TB, opts Options) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), clock: &fakeClock{t: t0}, opts: opts}
	f.open(t)
	if _, err := LoadDemoFleet(f.reg, testLoadTerminals); err != nil {
		t.Fatalf("LoadDemoFleet: %v", err)
	}
	t.Cleanup(func() { f.close(t) })
	return f
}

func (f *fixture) open(t testing.TB) {
	t.Helper()
	f.db = openDB(t, f.dir)
	reg, err := New(f.db, f.clock.Now, f.opts)
	if err != nil {
		t.Fatalf("registry.New: %v", err)
	}
	f.reg = reg
}

func (f *fixture) close(t testing.TB) {
	t.Helper()
	if f.reg != nil {
		if err := f.reg.Close(); err != nil {
			t.Errorf("registry Close: %v", err)
		}
		f.reg = nil
	}
	if f.db != nil {
		if err := f.db.Close(); err != nil {
			t.Errorf("Badger Close: %v", err)
		}
		f.db = nil
	}
}

// reopen closes the registry and the database and opens both again.
func (f *fixture) reopen(t testing.TB) {
	t.Helper()
	f.close(t)
	f.open(t)
}

// apply requests c as alice and approves it as bob, failing the test on error.
func (f *fixture) apply(t testing.TB, c Change) *Change {
	t.Helper()
	req, err := f.reg.RequestChange(alice, c)
	if err != nil {
		t.Fatalf("request %s %s: %v", c.Op, c.Target, err)
	}
	done, err := f.reg.Approve(bob, req.ID, "ok")
	if err != nil {
		t.Fatalf("approve %s (%s %s): %v", req.ID, c.Op, c.Target, err)
	}
	return done
}

// goodT1 is an honest request of demo terminal T0000001 at the current clock.
func (f *fixture) goodT1() CheckRequest {
	return CheckRequest{
		TerminalID: "T0000001", MerchantID: "000000000000001", SourceIP: honest,
		DeviceID: "SN-T0000001", SIM: "89860000000000000001", IMEI: "860000000000001",
		Location:   GeoPoint{Lat: 39.9050, Lon: 116.4080, Present: true}, // about 100 m away
		Cell:       "460-00-1234-5678",
		AppVersion: "2.10.0",
		Now:        f.clock.Now(),
	}
}

// goodT2 is an honest SoftPOS request of demo terminal T0000002.
func (f *fixture) goodT2() CheckRequest {
	now := f.clock.Now()
	return CheckRequest{
		TerminalID: "T0000002", MerchantID: "000000000000002", SourceIP: honest,
		DeviceID: "SP-T0000002", IMEI: "860000000000002",
		Location:           GeoPoint{Lat: 31.2310, Lon: 121.4740, Present: true},
		AppVersion:         "5.1",
		AttestationPresent: true, AttestationTime: now.Add(-30 * time.Second), AttestationOK: true, AttestationSigned: true, AttestedDevice: "SP-T0000002",
		MACVerified: true,
		Now:         now,
	}
}

func strp(s string) *string { return &s }
