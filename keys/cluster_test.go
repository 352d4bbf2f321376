package keys

import (
	"bytes"
	"crypto/des"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/kcv"
	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/internal/statelog/kvsync/kvsynctest"
)

// clusterNode is one node's key store on its own Badger directory, sharing a
// statelog.Memory with the other nodes.
type clusterNode struct {
	db    *badger.DB
	store *Store
	log   *kvsynctest.Log
	hsm   *hsm.Software
}

func newClusterNode(t *testing.T, mem *statelog.Memory, now func() time.Time) *clusterNode {
	t.Helper()
	db := openDB(t, t.TempDir())
	t.Cleanup(func() { db.Close() })
	n := &clusterNode{db: db, log: kvsynctest.New(mem)}
	var err error
	n.store, err = NewStore(db, Options{Now: now, Log: n.log})
	if err != nil {
		t.Fatal(err)
	}
	mem.Follow(n.store)
	return n
}

func twoKeyNodes(t *testing.T) (a, b *clusterNode, mem *statelog.Memory) {
	t.Helper()
	mem = &statelog.Memory{}
	c := &tclock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	return newClusterNode(t, mem, c.Now), newClusterNode(t, mem, c.Now), mem
}

func putRec(s *Store, r hsm.KeyRecord) error {
	return s.Put(ctx, hsm.PutRequest{Record: r, Event: hsm.AuditEvent{Actor: "tester", Action: "generate", KeyID: r.ID, Version: r.Version, KCV: r.KCV}})
}

func deliver(t *testing.T, mem *statelog.Memory) {
	t.Helper()
	if err := mem.Deliver(); err != nil {
		t.Fatal(err)
	}
}

// A key formed and one imported on node A are usable by node B's HSM once B is
// given A's commits; the commits hold LMK key blocks, never a clear key or component.
func TestClusterKeyFromAUsableOnBWithoutClearKeyInCommits(t *testing.T) {
	a, b, mem := twoKeyNodes(t)
	lmk := make([]byte, hsm.LMKLength)
	rand.Read(lmk)
	hopts := hsm.Options{Now: (&tclock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}).Now}
	var err error
	if a.hsm, err = hsm.NewSoftware(ctx, a.store, lmk, hopts); err != nil {
		t.Fatal(err)
	}
	deliver(t, mem) // B learns the LMK binding, so its own binding finds it
	if b.hsm, err = hsm.NewSoftware(ctx, b.store, lmk, hopts); err != nil {
		t.Fatal(err)
	}

	comp := func(seed byte) []byte {
		c := make([]byte, 16)
		for i := range c {
			c[i] = seed + byte(i)*7
		}
		return c
	}
	c1, c2 := comp(0x11), comp(0x5a)
	tmkRes, err := a.hsm.FormKey(ctx, hsm.FormKeyRequest{KeySpec: hsm.KeySpec{ID: "T1.TMK", Type: hsm.TMK}, Components: [][]byte{c1, c2}})
	if err != nil {
		t.Fatal(err)
	}
	tmk := make([]byte, 16)
	for i := range tmk {
		tmk[i] = c1[i] ^ c2[i]
	}
	setOddParity(tmk)
	// A TPK imported under the TMK in the ECB form: its clear value is known here.
	tpk := comp(0x33)
	setOddParity(tpk)
	blk, err := des.NewTripleDESCipher(append(append([]byte{}, tmk...), tmk[:8]...))
	if err != nil {
		t.Fatal(err)
	}
	enc := make([]byte, 16)
	blk.Encrypt(enc[:8], tpk[:8])
	blk.Encrypt(enc[8:], tpk[8:])
	tpkKCV, _ := kcv.TDES(tpk)
	imp, err := a.hsm.ImportKey(ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "T1.TPK", Type: hsm.TPK, Owner: "T1"},
		KEK: tmkRes.Ref, ECB: strings.ToUpper(hex.EncodeToString(enc)) + ":" + tpkKCV.String()})
	if err != nil {
		t.Fatal(err)
	}
	tak, err := a.hsm.GenerateKey(ctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: "T1.TAK", Type: hsm.TAK, Owner: "T1"}})
	if err != nil {
		t.Fatal(err)
	}

	commits := a.log.Commits()
	if len(commits) < 4 {
		t.Fatalf("node A appended %d commits, want the LMK binding and three keys", len(commits))
	}
	for _, c := range commits {
		for _, kv := range c.Writes {
			for name, secret := range map[string][]byte{"TMK": tmk, "TMK component 1": c1, "TMK component 2": c2, "imported TPK": tpk} {
				for _, form := range [][]byte{secret, []byte(hex.EncodeToString(secret)), []byte(strings.ToUpper(hex.EncodeToString(secret))),
					[]byte(base64.StdEncoding.EncodeToString(secret)), secret[:8], []byte(strings.ToUpper(hex.EncodeToString(secret[:8])))} {
					if bytes.Contains(kv.Value, form) || bytes.Contains(kv.Key, form) {
						t.Fatalf("commit write %s holds the clear %s", kv.Key, name)
					}
				}
			}
		}
	}

	data := []byte("0200 amount 1000 terminal T1")
	mac, err := a.hsm.GenerateMAC(ctx, hsm.MACRequest{Key: tak.Ref, Data: data})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.hsm.VerifyMAC(ctx, hsm.MACRequest{Key: tak.Ref, Data: data}, mac); !errors.Is(err, hsm.ErrKeyNotFound) {
		t.Fatalf("B before delivery: %v, want key not found", err)
	}
	deliver(t, mem)
	if err := b.hsm.VerifyMAC(ctx, hsm.MACRequest{Key: tak.Ref, Data: data}, mac); err != nil {
		t.Fatalf("B verifies A's MAC with A's new TAK: %v", err)
	}
	if chk, err := b.hsm.KCV(ctx, imp.Ref); err != nil || chk.KCV != tpkKCV.String() {
		t.Fatalf("B's KCV of the imported TPK: %v %v, want %s", chk, err, tpkKCV)
	}
	if got, err := b.store.FindByOwner(ctx, "T1", hsm.TPK); err != nil || got.KCV != imp.KCV {
		t.Fatalf("B finds T1's TPK: %v %v", got, err)
	}
	for _, n := range []*clusterNode{a, b} {
		if k, err := n.store.VerifyLog(ctx); err != nil || k != 4 {
			t.Fatalf("audit log: %d entries, %v (want the same 4 on both nodes)", k, err)
		}
	}
	if a.store.Revision() != b.store.Revision() || a.store.Revision() == 0 {
		t.Fatalf("revisions A %d, B %d", a.store.Revision(), b.store.Revision())
	}
}

func setOddParity(k []byte) {
	for i, b := range k {
		n := 0
		for x := b >> 1; x != 0; x &= x - 1 {
			n++
		}
		k[i] = b&0xfe | byte(1-n%2)
	}
}

// Two operators store different keys on two nodes at once: B's append conflicts,
// B catches up with A's key and stores its own after it; both nodes end with both,
// and a restarted node keeps its revision.
func TestClusterUnrelatedKeyChangesBothLand(t *testing.T) {
	a, b, mem := twoKeyNodes(t)
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	if err := putRec(a.store, rec("x.ZPK", 1, hsm.ZPK, "111111", now)); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- putRec(b.store, rec("y.ZPK", 1, hsm.ZPK, "222222", now)) }()
	<-b.log.Conflicts
	deliver(t, mem)
	if err := <-errc; err != nil {
		t.Fatalf("B's key after catching up: %v", err)
	}
	deliver(t, mem)
	for name, n := range map[string]*clusterNode{"A": a, "B": b} {
		for _, id := range []string{"x.ZPK", "y.ZPK"} {
			if _, err := n.store.Key(ctx, hsm.KeyRef{ID: id}); err != nil {
				t.Errorf("node %s: %s: %v", name, id, err)
			}
		}
		if k, err := n.store.VerifyLog(ctx); err != nil || k != 2 {
			t.Errorf("node %s audit log: %d entries, %v", name, k, err)
		}
	}
	if a.store.Revision() != 2 || b.store.Revision() != 2 {
		t.Fatalf("revisions A %d, B %d, want 2", a.store.Revision(), b.store.Revision())
	}
	// The revision is stored with the keys: a restarted node resumes from it.
	s2, err := NewStore(b.db, Options{Log: b.log})
	if err != nil || s2.Revision() != 2 || len(s2.List()) != 2 {
		t.Fatalf("reopened B: revision %d, %d keys, %v", s2.Revision(), len(s2.List()), err)
	}
}

// Two operators store the same key version on two nodes: the second learns it was
// stored first (ErrKeyExists). A change that conflicts again after catching up gets
// ErrConflict (409 in the admin API).
func TestClusterConflictingKeyChanges(t *testing.T) {
	a, b, mem := twoKeyNodes(t)
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	if err := putRec(a.store, rec("x.ZPK", 1, hsm.ZPK, "111111", now)); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- putRec(b.store, rec("x.ZPK", 1, hsm.ZPK, "222222", now)) }()
	<-b.log.Conflicts
	deliver(t, mem)
	if err := <-errc; !errors.Is(err, hsm.ErrKeyExists) {
		t.Fatalf("B stores x.ZPK v1 after A did: %v, want ErrKeyExists", err)
	}
	if r, _ := b.store.Key(ctx, hsm.KeyRef{ID: "x.ZPK"}); r.KCV != "111111" {
		t.Fatalf("B holds x.ZPK with KCV %s, want A's", r.KCV)
	}

	// A commits again while B re-runs its change: B's second append conflicts too.
	b.log.Before = func(n int) {
		if n == 3 { // B's second try at y.ZPK
			if err := putRec(a.store, rec("z.ZPK", 1, hsm.ZPK, "333333", now)); err != nil {
				t.Error(err)
			}
		}
	}
	if err := putRec(a.store, rec("w.ZPK", 1, hsm.ZPK, "444444", now)); err != nil {
		t.Fatal(err)
	}
	go func() { errc <- putRec(b.store, rec("y.ZPK", 1, hsm.ZPK, "555555", now)) }()
	<-b.log.Conflicts
	deliver(t, mem)
	err := <-errc
	if !errors.Is(err, ErrConflict) || !errors.Is(err, statelog.ErrConflict) {
		t.Fatalf("second conflict: %v, want keys.ErrConflict", err)
	}
	if !strings.Contains(err.Error(), "changed on another node; retry") {
		t.Fatalf("error %q does not say what to do", err)
	}
	if _, err := b.store.Key(ctx, hsm.KeyRef{ID: "y.ZPK"}); !errors.Is(err, hsm.ErrKeyNotFound) {
		t.Fatalf("y.ZPK after the refused change: %v", err)
	}
}

// When the cluster cannot confirm a change, nothing is applied on the node; when
// the change turns out to have been ordered, it arrives like another node's.
func TestClusterKeyChangeUnavailable(t *testing.T) {
	a, b, mem := twoKeyNodes(t)
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	a.log.SetUnknown(true)
	err := putRec(a.store, rec("x.ZPK", 1, hsm.ZPK, "111111", now))
	if !errors.Is(err, statelog.ErrUnavailable) {
		t.Fatalf("put while unavailable: %v", err)
	}
	if _, err := a.store.Key(ctx, hsm.KeyRef{ID: "x.ZPK"}); !errors.Is(err, hsm.ErrKeyNotFound) {
		t.Fatalf("A uses a key whose change was not confirmed: %v", err)
	}
	if k, _ := a.store.VerifyLog(ctx); k != 0 || a.store.Revision() != 0 {
		t.Fatalf("A's audit log has %d entries, revision %d, want nothing applied", k, a.store.Revision())
	}
	a.log.SetUnknown(false)
	deliver(t, mem)
	for name, n := range map[string]*clusterNode{"A": a, "B": b} {
		if r, err := n.store.Key(ctx, hsm.KeyRef{ID: "x.ZPK"}); err != nil || r.KCV != "111111" {
			t.Fatalf("node %s after delivery: %v %v", name, r, err)
		}
	}
}

// A working key version destroyed on node A (see prunable) is dropped on node B when
// B applies A's commit, and B's next version follows on.
func TestClusterDestroyedVersionApplied(t *testing.T) {
	mem := &statelog.Memory{}
	c := &tclock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	a, b := newClusterNode(t, mem, c.Now), newClusterNode(t, mem, c.Now)
	for v := 1; v <= 3; v++ {
		r := rec("T1.TAK", v, hsm.TAK, "ABCDEF", c.Now())
		if err := a.store.Put(ctx, hsm.PutRequest{Record: r, SupersedeGraceUntil: c.Now().Add(time.Hour),
			Event: hsm.AuditEvent{Actor: "terminal:T1", Action: "rotate", KeyID: r.ID, Version: v}}); err != nil {
			t.Fatal(err)
		}
		c.t = c.t.Add(2 * time.Hour)
	}
	deliver(t, mem)
	for name, n := range map[string]*clusterNode{"A": a, "B": b} {
		vs, err := n.store.Versions("T1.TAK")
		if err != nil || len(vs) != 2 || vs[0].Version != 2 {
			t.Fatalf("node %s: %d versions from v%d, %v; want v2 and v3", name, len(vs), vs[0].Version, err)
		}
		if k, err := n.store.VerifyLog(ctx); err != nil || k != 4 {
			t.Errorf("node %s audit log: %d entries, %v; want 3 rotations and 1 destruction", name, k, err)
		}
	}
	r := rec("T1.TAK", 4, hsm.TAK, "ABCDEF", c.Now())
	if err := b.store.Put(ctx, hsm.PutRequest{Record: r, SupersedeGraceUntil: c.Now().Add(time.Hour)}); err != nil {
		t.Fatalf("v4 on B: %v", err)
	}
	deliver(t, mem)
	if vs, _ := a.store.Versions("T1.TAK"); len(vs) != 2 || vs[0].Version != 3 || vs[1].Version != 4 {
		t.Fatalf("A after B's v4: %v", vs)
	}
}

// An ECB import is refused when its value is stored under another key ID (see
// hsm.UniqueValue), and in a cluster that includes a key another node stored a
// moment ago: node A imports a TPK from its ECB form, node B, not yet given A's
// commit, imports the same ECB form as a TAK. B's append conflicts, B catches up and
// runs its check again with A's TPK in its store: the TAK is refused, on both nodes.
func TestClusterECBValueImportedOnTwoNodesAtOnce(t *testing.T) {
	a, b, mem := twoKeyNodes(t)
	lmk := make([]byte, hsm.LMKLength)
	rand.Read(lmk)
	hopts := hsm.Options{Now: (&tclock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}).Now}
	var err error
	if a.hsm, err = hsm.NewSoftware(ctx, a.store, lmk, hopts); err != nil {
		t.Fatal(err)
	}
	deliver(t, mem)
	if b.hsm, err = hsm.NewSoftware(ctx, b.store, lmk, hopts); err != nil {
		t.Fatal(err)
	}
	tmk, _ := hex.DecodeString("1F2E3D4C5B6A79880F1E2D3C4B5A6978")
	c1, _ := hex.DecodeString("0123456789ABCDEF0123456789ABCDEF")
	c2 := make([]byte, 16)
	for i := range c2 {
		c2[i] = tmk[i] ^ c1[i]
	}
	tmkRes, err := a.hsm.FormKey(ctx, hsm.FormKeyRequest{KeySpec: hsm.KeySpec{ID: "T1.TMK", Type: hsm.TMK}, Components: [][]byte{c1, c2}})
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, mem) // both nodes hold the TMK
	tpk, _ := hex.DecodeString("A1B2C3D4E5F60718293A4B5C6D7E8F90")
	blk, err := des.NewTripleDESCipher(append(append([]byte{}, tmk...), tmk[:8]...))
	if err != nil {
		t.Fatal(err)
	}
	enc := make([]byte, 16)
	blk.Encrypt(enc[:8], tpk[:8])
	blk.Encrypt(enc[8:], tpk[8:])
	tpkKCV, _ := kcv.TDES(tpk)
	ecb := strings.ToUpper(hex.EncodeToString(enc)) + ":" + tpkKCV.String()
	if _, err := a.hsm.ImportKey(ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "T1.TPK", Type: hsm.TPK, Owner: "T1"}, KEK: tmkRes.Ref, ECB: ecb}); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := b.hsm.ImportKey(ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "T1.TAK", Type: hsm.TAK, Owner: "T1"}, KEK: tmkRes.Ref, ECB: ecb})
		errc <- err
	}()
	<-b.log.Conflicts
	deliver(t, mem)
	if err := <-errc; !errors.Is(err, hsm.ErrPolicy) || !strings.Contains(err.Error(), "T1.TPK") {
		t.Fatalf("node B imports node A's TPK's ECB form as a TAK: %v, want ErrPolicy naming T1.TPK", err)
	}
	deliver(t, mem)
	for name, n := range map[string]*clusterNode{"A": a, "B": b} {
		if _, err := n.store.Versions("T1.TAK"); !errors.Is(err, hsm.ErrKeyNotFound) {
			t.Errorf("node %s holds T1.TAK: %v", name, err)
		}
	}
}
