package keys

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/hsm"
)

type tclock struct{ t time.Time }

func (c *tclock) Now() time.Time { return c.t }

func openDB(t *testing.T, dir string) *badger.DB {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func newTestStore(t *testing.T, demo bool) (*Store, *badger.DB, *tclock, string) {
	t.Helper()
	dir := t.TempDir()
	db := openDB(t, dir)
	t.Cleanup(func() { db.Close() })
	c := &tclock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	s, err := NewStore(db, Options{Demo: demo, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return s, db, c, dir
}

// rec is a synthetic record: the store does not look inside the LMK block.
func rec(id string, v int, t hsm.KeyType, kcv string, at time.Time) hsm.KeyRecord {
	return hsm.KeyRecord{ID: id, Version: v, Type: t, Algorithm: hsm.TDES2KEY, KCV: kcv, Status: hsm.StatusActive, ActivateAt: at, Block: "D0000-synthetic"}
}

var ctx = hsm.WithActor(context.Background(), "tester")

func TestDemoKeyTable(t *testing.T) {
	for _, d := range DemoKeys {
		if got := demoKCV(d); got != d.KCV {
			t.Errorf("%s: table KCV %s, computed %s", d.ID, d.KCV, got)
		}
		if n, ok := DemoKeyByKCV(strings.ToLower(d.KCV)); !ok || !strings.Contains(n, d.ID) {
			t.Errorf("%s not recognised by KCV (%q)", d.ID, n)
		}
	}
	if _, ok := DemoKeyByKCV("ABCDEF"); ok {
		t.Error("a random KCV is taken for a demo key")
	}
	if demoLMKKCV() != "03ADDE" {
		t.Errorf("demo LMK KCV %s, documented 03ADDE", demoLMKKCV())
	}
	for term, want := range map[string]string{"LT000001": "LT.TPK", "LT002000": "LT.TPK", "T0000003": "T0000003.TPK", "T0000001": "T0000001.TPK"} {
		ref, ok := DemoKeyFor(term, hsm.TPK)
		if !ok || ref.ID != want {
			t.Errorf("DemoKeyFor(%s) = %v %v, want %s", term, ref, ok, want)
		}
	}
	for _, term := range []string{"LT002001", "LT000000", "LTX00001", "T0000002"} {
		if ref, ok := DemoKeyFor(term, hsm.TPK); ok {
			t.Errorf("DemoKeyFor(%s) = %v", term, ref)
		}
	}
	if ref, ok := DemoKeyFor("T0000002", hsm.TAK); !ok || ref.ID != "T0000002.TAK" {
		t.Errorf("T0000002 TAK: %v", ref)
	}
}

func TestVersionsGraceAndSchedule(t *testing.T) {
	s, _, c, _ := newTestStore(t, false)
	now := c.Now()
	put := func(r hsm.KeyRecord, grace time.Time) error {
		return s.Put(ctx, hsm.PutRequest{Record: r, SupersedeGraceUntil: grace, Event: hsm.AuditEvent{Actor: "tester", Action: "generate", KeyID: r.ID, Version: r.Version, KCV: r.KCV}})
	}
	if err := put(rec("z.ZPK", 1, hsm.ZPK, "111111", now), time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := put(rec("z.ZPK", 1, hsm.ZPK, "111111", now), time.Time{}); !errors.Is(err, hsm.ErrKeyExists) {
		t.Fatalf("duplicate version: %v", err)
	}
	if err := put(rec("z.ZPK", 3, hsm.ZPK, "333333", now), time.Time{}); !errors.Is(err, hsm.ErrInput) {
		t.Fatalf("version gap: %v", err)
	}
	if err := put(rec("z.ZPK", 2, hsm.ZAK, "222222", now), time.Time{}); !errors.Is(err, hsm.ErrInput) {
		t.Fatalf("type change: %v", err)
	}
	if err := put(rec("z.ZPK", 2, hsm.ZPK, "222222", now), now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	cur, _ := s.Key(ctx, hsm.KeyRef{ID: "z.ZPK"})
	old, _ := s.Key(ctx, hsm.KeyRef{ID: "z.ZPK", Version: 1})
	if cur.Version != 2 || old.Status != hsm.StatusSuperseded || !old.GraceUntil.Equal(now.Add(time.Hour)) {
		t.Fatalf("current v%d, v1 %s until %s", cur.Version, old.Status, old.GraceUntil)
	}
	g, _ := s.GraceVersions(ctx, "z.ZPK")
	if len(g) != 1 || g[0].Version != 1 {
		t.Fatalf("grace versions %v", g)
	}
	// A version scheduled for later does not become current before its time.
	if err := put(rec("z.ZPK", 3, hsm.ZPK, "333333", now.Add(24*time.Hour)), now.Add(25*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if cur, _ := s.Key(ctx, hsm.KeyRef{ID: "z.ZPK"}); cur.Version != 2 {
		t.Fatalf("current before the schedule: v%d", cur.Version)
	}
	c.t = now.Add(2 * time.Hour)
	if g, _ := s.GraceVersions(ctx, "z.ZPK"); len(g) != 0 {
		t.Fatalf("grace after the window: %v", g)
	}
	c.t = now.Add(24*time.Hour + time.Second)
	if cur, _ := s.Key(ctx, hsm.KeyRef{ID: "z.ZPK"}); cur.Version != 3 {
		t.Fatalf("current after the schedule: v%d", cur.Version)
	}
	if g, _ := s.GraceVersions(ctx, "z.ZPK"); len(g) != 1 || g[0].Version != 2 {
		t.Fatalf("v2 in grace after v3 activates: %v", g)
	}
	// Revocation is final; all versions revoked leaves no current version.
	for v := 1; v <= 3; v++ {
		if _, err := s.SetStatus(ctx, hsm.KeyRef{ID: "z.ZPK", Version: v}, hsm.StatusRevoked, "compromise drill"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.SetStatus(ctx, hsm.KeyRef{ID: "z.ZPK", Version: 3}, hsm.StatusActive, ""); !errors.Is(err, hsm.ErrInput) {
		t.Fatalf("re-activating a revoked key: %v", err)
	}
	if _, err := s.Key(ctx, hsm.KeyRef{ID: "z.ZPK"}); !errors.Is(err, hsm.ErrKeyNotUsable) || !strings.Contains(err.Error(), "v3 revoked") {
		t.Fatalf("all revoked: %v", err)
	}
	if _, err := s.Key(ctx, hsm.KeyRef{ID: "nope"}); !errors.Is(err, hsm.ErrKeyNotFound) {
		t.Fatalf("unknown key: %v", err)
	}
	if _, err := s.Key(ctx, hsm.KeyRef{ID: "z.ZPK", Version: 9}); !errors.Is(err, hsm.ErrKeyNotFound) {
		t.Fatalf("unknown version: %v", err)
	}
	for _, id := range []string{"audit", "generate", "Import", "bad/id", ""} {
		if err := put(rec(id, 1, hsm.ZPK, "444444", now), time.Time{}); !errors.Is(err, hsm.ErrInput) {
			t.Errorf("ID %q: %v", id, err)
		}
	}
}

func TestBDKLongestPrefixAndOwners(t *testing.T) {
	s, db, _, dir := newTestStore(t, false)
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, r := range []hsm.KeyRecord{
		func() hsm.KeyRecord { r := rec("bdk.short", 1, hsm.BDK, "AAAAA1", now); r.Owner = "FFFF"; return r }(),
		func() hsm.KeyRecord {
			r := rec("bdk.long", 1, hsm.BDK, "AAAAA2", now)
			r.Owner = "FFFF9876543210E"
			return r
		}(),
		func() hsm.KeyRecord {
			r := rec("T0000007.TPK", 1, hsm.TPK, "AAAAA3", now)
			r.Owner = "T0000007"
			return r
		}(),
	} {
		if err := s.Put(ctx, hsm.PutRequest{Record: r}); err != nil {
			t.Fatal(err)
		}
	}
	clash := rec("bdk.clash", 1, hsm.BDK, "AAAAA4", now)
	clash.Owner = "FFFF"
	if err := s.Put(ctx, hsm.PutRequest{Record: clash}); !errors.Is(err, hsm.ErrInput) {
		t.Fatalf("second BDK with the same prefix: %v", err)
	}
	check := func() {
		for ksn, want := range map[string]string{"FFFF9876543210E00001": "bdk.long", "ffff9876543210e00001": "bdk.long", "FFFF9876543210F00001": "bdk.long", "FFFF9876543210FFF800": "bdk.long", "FFFF9876543210C00001": "bdk.short", "FFFF00000000000000000001": "bdk.short"} {
			r, err := s.BDKForKSN(ctx, ksn)
			if err != nil || r.ID != want {
				t.Errorf("BDK for %s: %s %v, want %s", ksn, r.ID, err, want)
			}
		}
		if _, err := s.BDKForKSN(ctx, "EEEE9876543210E00001"); !errors.Is(err, hsm.ErrKeyNotFound) {
			t.Errorf("no prefix: %v", err)
		}
		if r, err := s.FindByOwner(ctx, "T0000007", hsm.TPK); err != nil || r.ID != "T0000007.TPK" {
			t.Errorf("FindByOwner: %v %v", r.ID, err)
		}
	}
	check()
	// Everything survives a restart.
	db.Close()
	db2 := openDB(t, dir)
	defer db2.Close()
	var err error
	if s, err = NewStore(db2, Options{}); err != nil {
		t.Fatal(err)
	}
	check()
	if n, err := s.VerifyLog(ctx); err != nil || n != 3 {
		t.Fatalf("audit log after restart: %d %v", n, err)
	}
}

func TestDUKPTCounterPersists(t *testing.T) {
	s, db, _, dir := newTestStore(t, false)
	dev := "FFFF9876543210E00000"
	if err := s.AdvanceDUKPTCounter(ctx, dev, 5); err != nil {
		t.Fatal(err)
	}
	for _, c := range []uint32{5, 4, 0} {
		err := s.AdvanceDUKPTCounter(ctx, dev, c)
		if !errors.Is(err, hsm.ErrReplay) || !strings.Contains(err.Error(), dev) {
			t.Fatalf("counter %d: %v", c, err)
		}
	}
	if err := s.AdvanceDUKPTCounter(ctx, dev, 6); err != nil {
		t.Fatal(err)
	}
	if err := s.AdvanceDUKPTCounter(ctx, "OTHERDEVICE", 1); err != nil {
		t.Fatal(err)
	}
	s2 := reopenStore(t, db, dir)
	if err := s2.AdvanceDUKPTCounter(ctx, dev, 6); !errors.Is(err, hsm.ErrReplay) {
		t.Fatalf("replay after restart: %v", err)
	}
	if c, ok, err := s2.DUKPTCounter(dev); err != nil || !ok || c != 6 {
		t.Fatalf("counter %d %v %v", c, ok, err)
	}
	if err := s2.AdvanceDUKPTCounter(ctx, "", 1); !errors.Is(err, hsm.ErrInput) {
		t.Fatalf("empty device: %v", err)
	}
}

func TestAuditChainDetectsTampering(t *testing.T) {
	s, db, _, _ := newTestStore(t, false)
	for i := 1; i <= 6; i++ {
		if err := s.Audit(ctx, hsm.AuditEvent{Actor: "alice", Action: "export", KeyID: "k", Version: i, KCV: "08D7B4"}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.VerifyLog(ctx); err != nil || n != 6 {
		t.Fatalf("intact log: %d %v", n, err)
	}
	es, _ := s.AuditLog(1, 0)
	if len(es) != 6 || es[0].Prev != genesis || es[1].Prev != es[0].Hash || es[0].Actor != "alice" {
		t.Fatalf("entries %+v", es[:2])
	}
	if page, _ := s.AuditLog(3, 2); len(page) != 2 || page[0].Seq != 3 {
		t.Fatalf("page %v", page)
	}
	raw := func(seq uint64) []byte {
		var v []byte
		db.View(func(txn *badger.Txn) error {
			it, err := txn.Get(auditKey(seq))
			if err != nil {
				return err
			}
			v, err = it.ValueCopy(nil)
			return err
		})
		return v
	}
	set := func(k, v []byte) {
		if err := db.Update(func(txn *badger.Txn) error {
			if v == nil {
				return txn.Delete(k)
			}
			return txn.Set(k, v)
		}); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(name string, seq uint64, reason string) {
		t.Helper()
		_, err := s.VerifyLog(ctx)
		var le *LogError
		if !errors.As(err, &le) || le.Seq != seq || !strings.Contains(le.Reason, reason) {
			t.Fatalf("%s: err = %v, want broken at %d (%s)", name, err, seq, reason)
		}
		if !strings.Contains(err.Error(), "entry") {
			t.Fatalf("%s: error does not name the entry: %v", name, err)
		}
	}
	// 1. An entry altered in place.
	orig3 := raw(3)
	var e3 AuditEntry
	json.Unmarshal(orig3, &e3)
	e3.Actor = "mallory"
	altered, _ := json.Marshal(e3)
	set(auditKey(3), altered)
	expect("altered", 3, "altered")
	// 2. Altered and re-hashed: the next link breaks.
	e3.Hash = hashEntry(e3)
	rehashed, _ := json.Marshal(e3)
	set(auditKey(3), rehashed)
	expect("re-hashed", 4, "prev hash")
	set(auditKey(3), orig3)
	// 3. An entry removed.
	orig2 := raw(2)
	set(auditKey(2), nil)
	expect("removed", 2, "missing")
	set(auditKey(2), orig2)
	// 4. The tail cut off.
	orig6 := raw(6)
	set(auditKey(6), nil)
	expect("truncated", 6, "cut off")
	set(auditKey(6), orig6)
	if n, err := s.VerifyLog(ctx); err != nil || n != 6 {
		t.Fatalf("restored log: %d %v", n, err)
	}
}

func TestLMKLoading(t *testing.T) {
	dir := t.TempDir()
	good := "3C9A41D07E5B2F8816C4E3A95D720B6F8E1D4A3725C6B09F63E8D1527A4C0BF1"
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := write("lmk", good+"\n", 0o600)
	lmk, err := LoadLMK(LMKSource{File: p})
	if err != nil || len(lmk) != 32 || lmk[0] != 0x3C {
		t.Fatalf("good LMK file: %v", err)
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		p := write("lmk-"+mode.String(), good, mode)
		if _, err := LoadLMK(LMKSource{File: p}); err == nil || !strings.Contains(err.Error(), "group or others") {
			t.Errorf("mode %04o: %v", mode, err)
		}
	}
	for name, content := range map[string]string{"short": good[:62], "nothex": strings.Repeat("ZZ", 32), "long": good + "00"} {
		p := write(name, content, 0o600)
		_, err := LoadLMK(LMKSource{File: p})
		if err == nil || strings.Contains(err.Error(), good[:16]) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := LoadLMK(LMKSource{File: filepath.Join(dir, "missing")}); err == nil {
		t.Error("missing file accepted")
	}
	t.Setenv("SWITCHYARD_TEST_LMK", good)
	if lmk, err := LoadLMK(LMKSource{Env: "SWITCHYARD_TEST_LMK"}); err != nil || len(lmk) != 32 {
		t.Fatalf("env LMK: %v", err)
	}
	if _, err := LoadLMK(LMKSource{Env: "SWITCHYARD_TEST_LMK_UNSET"}); err == nil {
		t.Error("unset env accepted")
	}
	if _, err := LoadLMK(LMKSource{}); err == nil {
		t.Error("no LMK source accepted outside demo mode")
	}
	if lmk, err := LoadLMK(LMKSource{Demo: true}); err != nil || string(lmk) != string(DemoLMK()) {
		t.Fatalf("demo default: %v", err)
	}
	p = write("demo-lmk", DemoLMKHex, 0o600)
	if _, err := LoadLMK(LMKSource{File: p}); !errors.Is(err, hsm.ErrDemoKey) {
		t.Fatalf("demo LMK from a file outside demo mode: %v", err)
	}
	if _, err := LoadLMK(LMKSource{File: p, Demo: true}); err != nil {
		t.Fatalf("demo LMK from a file in demo mode: %v", err)
	}
}

func TestBindLMK(t *testing.T) {
	s, _, _, _ := newTestStore(t, false)
	if err := s.BindLMK(ctx, "ABCDEF"); err != nil {
		t.Fatal(err)
	}
	if err := s.BindLMK(ctx, "ABCDEF"); err != nil {
		t.Fatal(err)
	}
	if err := s.BindLMK(ctx, "123456"); !errors.Is(err, hsm.ErrKCVMismatch) {
		t.Fatalf("other LMK: %v", err)
	}
	if err := s.BindLMK(ctx, demoLMKKCV()); !errors.Is(err, hsm.ErrDemoKey) {
		t.Fatalf("demo LMK: %v", err)
	}
}

func TestDemoKeysRefusedOutsideDemo(t *testing.T) {
	s, _, c, _ := newTestStore(t, false)
	r := rec("x.TPK", 1, hsm.TPK, "2DAF03", c.Now())
	if err := s.Put(ctx, hsm.PutRequest{Record: r}); !errors.Is(err, hsm.ErrDemoKey) || !strings.Contains(err.Error(), "T0000001.TPK") {
		t.Fatalf("demo TPK KCV: %v", err)
	}
	if _, err := NewStore(nil, Options{}); err == nil {
		t.Fatal("nil DB accepted")
	}
}

// TestRaiseDUKPTCounter: a counter another node accepted raises the device's last
// counter (so that the same KSN here is a replay) at once, never lowers it, and
// persists (SyncDUKPT).
func TestRaiseDUKPTCounter(t *testing.T) {
	s, db, _, dir := newTestStore(t, false)
	dev := "FFFF9876543210E00000"
	if err := s.RaiseDUKPTCounter(dev, 7); err != nil {
		t.Fatal(err)
	}
	if err := s.AdvanceDUKPTCounter(ctx, dev, 7); !errors.Is(err, hsm.ErrReplay) {
		t.Fatalf("counter 7 after another node accepted 7: %v; want a replay", err)
	}
	if err := s.RaiseDUKPTCounter(dev, 3); err != nil {
		t.Fatalf("a lower counter: %v; want no error", err)
	}
	if c, ok, err := s.DUKPTCounter(dev); err != nil || !ok || c != 7 {
		t.Fatalf("after raising to 3: counter %d %v %v; want 7 kept", c, ok, err)
	}
	if err := s.AdvanceDUKPTCounter(ctx, dev, 8); err != nil {
		t.Fatal(err)
	}
	if err := s.RaiseDUKPTCounter(dev, 9); err != nil {
		t.Fatal(err)
	}
	if err := s.RaiseDUKPTCounter("", 1); !errors.Is(err, hsm.ErrInput) {
		t.Fatalf("empty device: %v", err)
	}
	if err := s.SyncDUKPT(); err != nil { // as the cluster journal's applier does before its position
		t.Fatal(err)
	}
	s2 := reopenStore(t, db, dir)
	if err := s2.AdvanceDUKPTCounter(ctx, dev, 9); !errors.Is(err, hsm.ErrReplay) {
		t.Fatalf("counter 9 after a restart: %v; want a replay", err)
	}
}

// reopenStore closes db and opens the store again on dir, as a restart does.
func reopenStore(t *testing.T, db *badger.DB, dir string) *Store {
	t.Helper()
	db.Close()
	db2 := openDB(t, dir)
	t.Cleanup(func() { db2.Close() })
	s, err := NewStore(db2, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A terminal signs in every day, each time storing new working keys: the versions
// past their grace window are destroyed when the next one is stored (deleted, audited
// "destroy"), so that neither the store nor its memory grows with the sign-ins. Keys
// of other types, and versions still usable inbound, are kept.
func TestWorkingKeysDestroyed(t *testing.T) {
	s, db, c, dir := newTestStore(t, false)
	var forgotten []hsm.KeyRef // the software HSM drops its unwrapped copies of these
	s.OnDestroy(func(ref hsm.KeyRef) { forgotten = append(forgotten, ref) })
	start := c.Now()
	put := func(r hsm.KeyRecord) error {
		return s.Put(ctx, hsm.PutRequest{Record: r, SupersedeGraceUntil: c.Now().Add(time.Hour),
			Event: hsm.AuditEvent{Actor: "terminal:T1", Action: "rotate", KeyID: r.ID, Version: r.Version, KCV: r.KCV}})
	}
	for day := range 30 {
		c.t = start.Add(time.Duration(day) * 24 * time.Hour)
		for _, k := range []struct {
			id string
			t  hsm.KeyType
		}{{"T1.TPK", hsm.TPK}, {"T1.TAK", hsm.TAK}, {"z.ZPK", hsm.ZPK}} {
			if err := put(rec(k.id, day+1, k.t, "ABCDEF", c.Now())); err != nil {
				t.Fatalf("day %d: %s: %v", day, k.id, err)
			}
		}
	}
	for _, id := range []string{"T1.TPK", "T1.TAK"} {
		vs, err := s.Versions(id)
		if err != nil || len(vs) != 2 || vs[0].Version != 29 || vs[1].Version != 30 {
			t.Fatalf("%s after 30 sign-ins: %d versions from v%d, %v; want v29 (its grace ended before v30) and v30", id, len(vs), vs[0].Version, err)
		}
		if _, err := s.Key(ctx, hsm.KeyRef{ID: id, Version: 3}); !errors.Is(err, hsm.ErrKeyNotFound) || !strings.Contains(err.Error(), "destroyed") {
			t.Fatalf("%s v3: %v; want not found, destroyed", id, err)
		}
		if n, _, _ := s.NextVersion(ctx, id); n != 31 {
			t.Fatalf("%s: next version %d", id, n)
		}
	}
	if vs, _ := s.Versions("z.ZPK"); len(vs) != 30 {
		t.Fatalf("a zone key kept %d versions, want all 30", len(vs))
	}
	// Within the grace window the superseded version stays: v29's ended an hour after
	// v30 was stored, v30's begins now.
	c.t = c.t.Add(2 * time.Hour)
	if err := put(rec("T1.TPK", 31, hsm.TPK, "ABCDEF", c.Now())); err != nil {
		t.Fatal(err)
	}
	if vs, _ := s.Versions("T1.TPK"); len(vs) != 2 || vs[0].Version != 30 {
		t.Fatalf("after v31: %v", vs)
	}
	if g, _ := s.GraceVersions(ctx, "T1.TPK"); len(g) != 1 || g[0].Version != 30 {
		t.Fatalf("v30 in its grace window: %v", g)
	}
	// Every destruction is in the chained audit log.
	n, err := s.VerifyLog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	log, _ := s.AuditLog(1, 0)
	destroyed := 0
	for _, e := range log {
		if e.Action == "destroy" {
			destroyed++
		}
	}
	if want := 90 + 1 + 2*28 + 1; n != want || destroyed != 2*28+1 {
		t.Fatalf("audit log: %d entries (%d destroy), want %d (%d)", n, destroyed, want, 2*28+1)
	}
	if len(forgotten) != 2*28+1 || forgotten[0] != (hsm.KeyRef{ID: "T1.TPK", Version: 1}) {
		t.Fatalf("OnDestroy told of %d versions (first %v), want %d from T1.TPK v1", len(forgotten), forgotten, 2*28+1)
	}
	// A restart loads versions that no longer start at 1.
	s2 := reopenStore(t, db, dir)
	if vs, err := s2.Versions("T1.TPK"); err != nil || len(vs) != 2 || vs[0].Version != 30 {
		t.Fatalf("reopened: %v %v", vs, err)
	}
	if n, _, _ := s2.NextVersion(ctx, "T1.TAK"); n != 31 {
		t.Fatalf("reopened: next TAK version %d", n)
	}
}

// TestWorkingKeysKeptWhileMayDestroySaysNo: a cluster destroys nothing while a node of
// an older version (which refuses a key store whose versions do not start at 1) holds
// a lease: Options.MayDestroy says no, and every version stays.
func TestWorkingKeysKeptWhileMayDestroySaysNo(t *testing.T) {
	db := openDB(t, t.TempDir())
	t.Cleanup(func() { db.Close() })
	c := &tclock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	s, err := NewStore(db, Options{Now: c.Now, MayDestroy: func() bool { return false }})
	if err != nil {
		t.Fatal(err)
	}
	for v := 1; v <= 5; v++ {
		if err := s.Put(ctx, hsm.PutRequest{Record: rec("T1.TAK", v, hsm.TAK, "ABCDEF", c.Now()), SupersedeGraceUntil: c.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		c.t = c.t.Add(24 * time.Hour)
	}
	if vs, _ := s.Versions("T1.TAK"); len(vs) != 5 {
		t.Fatalf("%d versions kept, want all 5", len(vs))
	}
}

// PutRequest.Unique (an ECB import): the store refuses a record whose KCV, standing
// for its value when no comparison is given (a payShield), is that of a version of
// another key ID, revoked ones included, and says so in its log with the actor;
// versions of the same ID are the same key re-sent.
func TestPutUniqueValue(t *testing.T) {
	db := openDB(t, t.TempDir())
	t.Cleanup(func() { db.Close() })
	var logs strings.Builder
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	s, err := NewStore(db, Options{Now: (&tclock{t: now}).Now, Logger: zerolog.New(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	if err := putRec(s, rec("T1.TPK", 1, hsm.TPK, "ABC123", now)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetStatus(ctx, hsm.KeyRef{ID: "T1.TPK", Version: 1}, hsm.StatusRevoked, "retired"); err != nil {
		t.Fatal(err)
	}
	unique := &hsm.UniqueValue{KCVs: []string{"ABC123"}}
	put := func(r hsm.KeyRecord) error {
		return s.Put(ctx, hsm.PutRequest{Record: r, Event: hsm.AuditEvent{Actor: "mallory", Action: "import", KeyID: r.ID, Version: r.Version, KCV: r.KCV}, Unique: unique})
	}
	if err := put(rec("T1.TAK", 1, hsm.TAK, "ABC123", now)); !errors.Is(err, hsm.ErrPolicy) || !strings.Contains(err.Error(), "T1.TPK v1") {
		t.Fatalf("the revoked TPK's value as a TAK: %v, want ErrPolicy naming T1.TPK v1", err)
	}
	if _, err := s.Versions("T1.TAK"); !errors.Is(err, hsm.ErrKeyNotFound) {
		t.Fatalf("refused record stored: %v", err)
	}
	if l := logs.String(); !strings.Contains(l, "ECB import refused") || !strings.Contains(l, `"actor":"mallory"`) || !strings.Contains(l, `"key":"T1.TAK v1"`) {
		t.Fatalf("the refusal is not in the log:\n%s", l)
	}
	if err := put(rec("T1.TPK", 2, hsm.TPK, "ABC123", now)); err != nil {
		t.Fatalf("the same key re-sent as T1.TPK v2: %v", err)
	}
	// A Same that says the values differ lets a KCV twin in.
	unique.Same = func(hsm.KeyRecord) (bool, error) { return false, nil }
	if err := put(rec("T2.TAK", 1, hsm.TAK, "ABC123", now)); err != nil {
		t.Fatalf("another key with the same KCV: %v", err)
	}
}

// TestExpiries: a key's expiry is its newest version's expires_at (a version
// scheduled for later counts: it will be current); a rotation to a version without
// one clears it, a revoked version not yet active is passed over, a revoked
// current version leaves the key without a current version and without an expiry,
// and keys without an expiry have none.
func TestExpiries(t *testing.T) {
	s, _, c, _ := newTestStore(t, false)
	now := c.Now()
	put := func(r hsm.KeyRecord) {
		t.Helper()
		if err := s.Put(ctx, hsm.PutRequest{Record: r, Event: hsm.AuditEvent{Actor: "tester", Action: "generate", KeyID: r.ID, Version: r.Version, KCV: r.KCV}}); err != nil {
			t.Fatal(err)
		}
	}
	expiring := func(r hsm.KeyRecord, at time.Time) hsm.KeyRecord { r.ExpiresAt = at; return r }
	put(expiring(rec("b.ZPK", 1, hsm.ZPK, "111111", now), now.Add(48*time.Hour)))
	put(rec("a.TAK", 1, hsm.TAK, "222222", now)) // no expiry
	put(expiring(rec("c.ZMK", 1, hsm.ZMK, "333333", now), now.Add(time.Hour)))
	put(expiring(rec("c.ZMK", 2, hsm.ZMK, "444444", now.Add(30*time.Minute)), now.Add(90*24*time.Hour))) // scheduled
	got := s.Expiries()
	want := []Expiry{{"b.ZPK", hsm.ZPK, now.Add(48 * time.Hour)}, {"c.ZMK", hsm.ZMK, now.Add(90 * 24 * time.Hour)}}
	if !slices.EqualFunc(got, want, func(a, b Expiry) bool { return a.ID == b.ID && a.Type == b.Type && a.ExpiresAt.Equal(b.ExpiresAt) }) {
		t.Fatalf("expiries %v, want %v", got, want)
	}
	// Revoking c.ZMK v2 leaves v1's; rotating b.ZPK to a version without one clears it.
	if _, err := s.SetStatus(ctx, hsm.KeyRef{ID: "c.ZMK", Version: 2}, hsm.StatusRevoked, "drill"); err != nil {
		t.Fatal(err)
	}
	put(rec("b.ZPK", 2, hsm.ZPK, "555555", now))
	got = s.Expiries()
	if len(got) != 1 || got[0].ID != "c.ZMK" || !got[0].ExpiresAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("after revoke and rotate: %v, want c.ZMK at v1's expiry", got)
	}
	// Revoking c.ZMK's current version v1: no current version, no expiry.
	if _, err := s.SetStatus(ctx, hsm.KeyRef{ID: "c.ZMK", Version: 1}, hsm.StatusRevoked, "drill"); err != nil {
		t.Fatal(err)
	}
	if got = s.Expiries(); len(got) != 0 {
		t.Fatalf("after revoking the current version: %v, want none", got)
	}
}

// TestLMKWeakRefused: outside demo mode LoadLMK refuses an LMK that is a pattern or
// a published test key (all zeros, one byte repeated, a short pattern repeated,
// equal halves, FIPS 197's 00..1F, reversed too), from a file and from the
// environment, without quoting it; demo mode still takes it, and a random key
// passes.
func TestLMKWeakRefused(t *testing.T) {
	dir := t.TempDir()
	weak := map[string]string{
		"all zeros":        strings.Repeat("00", 32),
		"one byte":         strings.Repeat("1F", 32),
		"short pattern":    strings.Repeat("A1B2C3", 11)[:64],
		"halves equal":     strings.Repeat("0123456789ABCDEFFEDCBA9876543210", 2),
		"fips 197":         "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
		"fips 197 reverse": "1F1E1D1C1B1A191817161514131211100F0E0D0C0B0A09080706050403020100",
		"sp 800-38a":       "603DEB1015CA71BE2B73AEF0857D77811F352C073B6108D72D9810A30914DFF4",
	}
	for name, h := range weak {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		if err := os.WriteFile(p, []byte(h), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadLMK(LMKSource{File: p})
		if !errors.Is(err, ErrWeakLMK) || strings.Contains(strings.ToUpper(err.Error()), h[:16]) {
			t.Errorf("%s from a file outside demo mode: %v", name, err)
		}
		t.Setenv("SWITCHYARD_TEST_WEAK_LMK", h)
		if _, err := LoadLMK(LMKSource{Env: "SWITCHYARD_TEST_WEAK_LMK"}); !errors.Is(err, ErrWeakLMK) {
			t.Errorf("%s from the environment outside demo mode: %v", name, err)
		}
		if lmk, err := LoadLMK(LMKSource{File: p, Demo: true}); err != nil || len(lmk) != 32 {
			t.Errorf("%s in demo mode: %v", name, err)
		}
	}
	random := make([]byte, 32)
	if _, err := rand.Read(random); err != nil {
		t.Fatal(err)
	}
	if why := WeakLMK(random); why != "" {
		t.Errorf("a random LMK is found weak: %s", why)
	}
	if why := WeakLMK(DemoLMK()); why != "" {
		t.Errorf("the demo LMK is found weak (demo mode loads it): %s", why)
	}
}

// A version stored pending (PendingActivation) is not current until Activate: the
// version before it stays current meanwhile, then is superseded with its grace; a
// revoked pending version, or one older than the current version, is not activated.
func TestActivatePending(t *testing.T) {
	s, _, clk, _ := newTestStore(t, false)
	now := clk.t
	put := func(r hsm.KeyRecord) {
		t.Helper()
		if err := s.Put(ctx, hsm.PutRequest{Record: r, Event: hsm.AuditEvent{Actor: "tester", Action: "generate"}}); err != nil {
			t.Fatal(err)
		}
	}
	put(rec("i.ZPK", 1, hsm.ZPK, "AAAAAA", now))
	put(rec("i.ZPK", 2, hsm.ZPK, "BBBBBB", PendingActivation))
	put(rec("i.ZPK", 3, hsm.ZPK, "CCCCCC", PendingActivation))
	if cur, err := s.Key(ctx, hsm.KeyRef{ID: "i.ZPK"}); err != nil || cur.Version != 1 {
		t.Fatalf("current with v2 and v3 pending: v%d, %v (want v1)", cur.Version, err)
	}
	if _, err := s.SetStatus(ctx, hsm.KeyRef{ID: "i.ZPK", Version: 2}, hsm.StatusRevoked, "issuer refused it"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Activate(ctx, hsm.KeyRef{ID: "i.ZPK", Version: 2}, time.Hour, ""); !errors.Is(err, hsm.ErrInput) {
		t.Errorf("activate a revoked version: %v, want ErrInput", err)
	}
	clk.t = now.Add(time.Minute)
	got, err := s.Activate(ctx, hsm.KeyRef{ID: "i.ZPK", Version: 3}, time.Hour, "issuer acknowledged it")
	if err != nil || !got.ActivateAt.Equal(clk.t) {
		t.Fatalf("activate v3: %+v, %v", got, err)
	}
	if cur, err := s.Key(ctx, hsm.KeyRef{ID: "i.ZPK"}); err != nil || cur.Version != 3 {
		t.Fatalf("current after activating v3: v%d, %v", cur.Version, err)
	}
	g, err := s.GraceVersions(ctx, "i.ZPK")
	if err != nil || len(g) != 1 || g[0].Version != 1 || !g[0].GraceUntil.Equal(clk.t.Add(time.Hour)) {
		t.Errorf("grace versions after activating v3: %+v, %v (want v1 until an hour after the activation)", g, err)
	}
	if _, err := s.Activate(ctx, hsm.KeyRef{ID: "i.ZPK", Version: 3}, time.Hour, ""); !errors.Is(err, hsm.ErrInput) {
		t.Errorf("activate v3 again: %v, want ErrInput", err)
	}
	put(rec("i.ZPK", 4, hsm.ZPK, "DDDDDD", PendingActivation))
	if _, err := s.Activate(ctx, hsm.KeyRef{ID: "i.ZPK", Version: 1}, time.Hour, ""); !errors.Is(err, hsm.ErrInput) {
		t.Errorf("activate the superseded v1: %v, want ErrInput", err)
	}
	if cur, err := s.Key(ctx, hsm.KeyRef{ID: "i.ZPK"}); err != nil || cur.Version != 3 {
		t.Errorf("current with v4 pending: v%d, %v (want v3)", cur.Version, err)
	}
}
