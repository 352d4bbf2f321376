package notify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/internal/statelog/kvsync/kvsynctest"
	"github.com/switchyard/switchyard/internal/syncbuf"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/registry"
)

// signedReceiver is a merchant's webhook receiver: it counts the notices whose
// signature checks under secret, and those whose does not.
type signedReceiver struct {
	secret string
	mu     sync.Mutex
	good   []Notice
	bad    int
	got    chan struct{}
}

func newSignedReceiver(t *testing.T, secret string) (*signedReceiver, *httptest.Server) {
	rv := &signedReceiver{secret: secret, got: make(chan struct{}, 16)}
	hs := httptest.NewServer(rv)
	t.Cleanup(hs.Close)
	return rv, hs
}

func (rv *signedReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	want := registry.SignWebhook([]byte(rv.secret), r.Header.Get(registry.WebhookTimestampHeader), body)
	rv.mu.Lock()
	defer func() { rv.mu.Unlock(); rv.got <- struct{}{} }()
	if r.Header.Get(registry.WebhookSignatureHeader) != want {
		rv.bad++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var n Notice
	json.Unmarshal(body, &n)
	rv.good = append(rv.good, n)
}

// counts returns how many notices were signed right and wrong.
func (rv *signedReceiver) counts() (good, bad int) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return len(rv.good), rv.bad
}

// deliverOne stores a purchase notice of merchant m and runs one delivery of m's
// notices, synchronously.
func deliverOne(t *testing.T, b *Outbox, m, rrn string) {
	t.Helper()
	b.Notice(&journal.Record{RRN: rrn, MID: m, TID: "T0000001", Type: "purchase", RC: "00", Amount: 100, PANMasked: "476173******0010", Received: time.Now()}, "")
	select {
	case n := <-b.in:
		if err := b.store([]Notice{*n}); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("no notice of %s queued (no webhook known)", m)
	}
	b.deliverMerchant(context.Background(), m)
}

// openSmallDB is openDB with small files, which the tests read whole.
func openSmallDB(t *testing.T) *badger.DB {
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil).WithValueLogFileSize(1 << 20).WithMemTableSize(8 << 20))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// stored returns every value of db with its key, every version of each.
func stored(t *testing.T, db *badger.DB) map[string][][]byte {
	t.Helper()
	out := map[string][][]byte{}
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{AllVersions: true, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			k := string(it.Item().Key())
			out[k] = append(out[k], v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// noSecretIn fails t if a secret's bytes are in a stored value or key of db, in
// a commit of the state log, or in any file of the database's directory.
func noSecretIn(t *testing.T, what string, db *badger.DB, commits []statelog.Commit, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if db == nil {
			db = openSmallDB(t) // the state log alone
		}
		for k, vs := range stored(t, db) {
			for _, v := range vs {
				if bytes.Contains(v, []byte(s)) || strings.Contains(k, s) {
					t.Errorf("%s: the secret %q is in the clear in the stored value of %s: %s", what, s, k, v)
				}
			}
		}
		for i, c := range commits {
			for _, kv := range c.Writes {
				if bytes.Contains(kv.Value, []byte(s)) {
					t.Errorf("%s: the secret %q is in the clear in commit %d of the state log, %s: %s", what, s, i+1, kv.Key, kv.Value)
				}
			}
		}
		if dir := db.Opts().Dir; dir != "" {
			files, _ := filepath.Glob(filepath.Join(dir, "*"))
			for _, f := range files {
				if b, err := os.ReadFile(f); err == nil && bytes.Contains(b, []byte(s)) {
					t.Errorf("%s: the secret %q is in the clear in the database file %s", what, s, filepath.Base(f))
				}
			}
		}
	}
}

// TestSecretsSealedAtRest: a webhook's secret, set at once or staged for review,
// is in no stored value (any version), no commit of the state log and no file of
// the database, on the node that wrote it or on another node that received it;
// the other node opens it (one card hash key) and signs with it; the change
// carries its keyed fingerprint only.
func TestSecretsSealedAtRest(t *testing.T) {
	const direct, reviewed = "direct-secret-0123456789", "reviewed-secret-0123456789"
	rv, hs := newSignedReceiver(t, direct)
	var mem statelog.Memory
	la, lb := kvsynctest.New(&mem), kvsynctest.New(&mem)
	dba, dbb := openSmallDB(t), openSmallDB(t)
	a, err := Open(dba, Options{CardHashKey: testKey, AllowPrivate: loopback, Log: la})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(dbb, Options{CardHashKey: testKey, AllowPrivate: loopback, Log: lb})
	if err != nil {
		t.Fatal(err)
	}
	mem.Follow(a)
	mem.Follow(b)
	reg := &fakeReview{}
	if err := a.UseReview(reg); err != nil {
		t.Fatal(err)
	}
	if err := a.SetEndpoint("M1", hs.URL, direct, "op", ""); err != nil {
		t.Fatal(err)
	}
	c, err := a.RequestEndpoint(registry.Actor{Name: "op", Role: "operator"}, "M2", "https://shop.example/n", reviewed, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := mem.Deliver(); err != nil {
		t.Fatal(err)
	}
	var w WebhookChange
	if err := json.Unmarshal(c.Ext, &w); err != nil || w.SecretFingerprint != a.fingerprint(reviewed) || w.SecretSHA256 != "" || strings.Contains(string(c.Ext), reviewed) {
		t.Fatalf("the change's payload: %s (%v)", c.Ext, err)
	}
	// Keyed: not the unsalted SHA-256 a reader could test guesses against, and
	// another card hash key gives another.
	sum := sha256.Sum256([]byte(reviewed))
	otherKey, err := Open(openDB(t), Options{CardHashKey: []byte("another card hash key 0123456789")})
	if err != nil {
		t.Fatal(err)
	}
	if fp := w.SecretFingerprint; len(fp) != 16 || fp == hex.EncodeToString(sum[:8]) || fp == otherKey.fingerprint(reviewed) {
		t.Fatalf("the fingerprint %s is not keyed", fp)
	}
	if len(la.Commits()) != 2 {
		t.Fatalf("%d commits in the state log, want 2", len(la.Commits()))
	}
	noSecretIn(t, "the writing node", dba, la.Commits(), direct, reviewed)
	noSecretIn(t, "the other node", dbb, lb.Commits(), direct, reviewed)

	// The other node opens what the first sealed: it signs M1's notices, and
	// its copy of the staged secret opens for the review.
	deliverOne(t, b, "M1", "000000000001")
	if good, bad := rv.counts(); good != 1 || bad != 0 {
		t.Fatalf("the other node's notice: %d signed right, %d wrong", good, bad)
	}
	if s, ok, err := b.staged(w); err != nil || !ok || s != reviewed {
		t.Fatalf("the other node's staged secret: ok %v, %v", ok, err)
	}
	// Nor in the files once the databases are closed (memtables written out).
	for _, db := range []*badger.DB{dba, dbb} {
		dir := db.Opts().Dir
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*"))
		for _, f := range files {
			if raw, err := os.ReadFile(f); err == nil && (bytes.Contains(raw, []byte(direct)) || bytes.Contains(raw, []byte(reviewed))) {
				t.Errorf("a secret is in the clear in %s", f)
			}
		}
	}
}

// TestClearSecretsMigrated: the webhooks and staged secrets that the version
// before sealing stored in the clear are accepted, and rewritten sealed at the
// start through the webhooks' commits (so the state log has the sealed form);
// the start logs how many, never a secret; the webhook still signs its notices
// with the same secret, also after a restart from the sealed form; a pending
// change of before still shows its SHA-256 fingerprint and is applied; a
// rejected change's clear secret is deleted.
func TestClearSecretsMigrated(t *testing.T) {
	const old, staged, rejected = "old-clear-secret-0123456789", "old-staged-secret-0123456789", "old-rejected-secret-0123456789"
	rv, hs := newSignedReceiver(t, old)
	db := openDB(t)
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	reg := &fakeReview{}
	// As the version before sealing wrote them.
	put := func(k, v string) {
		t.Helper()
		if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(k), []byte(v)) }); err != nil {
			t.Fatal(err)
		}
	}
	put(pfxEndpoint+"M1", `{"url":"`+hs.URL+`","secret":"`+old+`","by":"op","at":"2026-12-01T09:00:00Z"}`)
	put(pfxStaged+"ref-pending", `{"secret":"`+staged+`","at":"2026-12-01T09:00:00Z"}`)
	put(pfxStaged+"ref-rejected", `{"secret":"`+rejected+`","at":"2026-12-01T09:00:00Z"}`)
	reg.changes = []*registry.Change{
		{ID: "CHG-1", Seq: 1, Op: OpWebhookPut, Target: "M2", Status: registry.ChangePending, RequestedBy: "op",
			Ext: json.RawMessage(`{"merchant":"M2","url":"http://127.0.0.1:9/p","secret_ref":"ref-pending","secret_sha256":"0011223344556677"}`)},
		{ID: "CHG-2", Seq: 2, Op: OpWebhookPut, Target: "M3", Status: registry.ChangeRejected, RequestedBy: "op",
			Ext: json.RawMessage(`{"merchant":"M3","url":"http://127.0.0.1:9/r","secret_ref":"ref-rejected","secret_sha256":"8899aabbccddeeff"}`)},
	}
	var logs syncbuf.Buffer
	var mem statelog.Memory
	sl := kvsynctest.New(&mem)
	open := func() *Outbox {
		t.Helper()
		b, err := Open(db, Options{CardHashKey: testKey, AllowPrivate: loopback, Log: sl, Now: func() time.Time { return at.Add(time.Hour) },
			Logger: zerolog.New(&logs)})
		if err != nil {
			t.Fatal(err)
		}
		mem.Follow(b)
		if err := b.UseReview(reg); err != nil {
			t.Fatal(err)
		}
		return b
	}
	b := open()
	// Only the current values: Badger keeps the overwritten version until its
	// compaction.
	if err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, _ := it.Item().ValueCopy(nil)
			for _, s := range []string{old, staged, rejected} {
				if bytes.Contains(v, []byte(s)) {
					t.Errorf("after the start %s still holds a secret in the clear: %s", it.Item().Key(), v)
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := b.isStaged("ref-rejected"); ok {
		t.Error("the rejected change's clear secret is still staged")
	}
	noSecretIn(t, "the state log", nil, sl.Commits(), old, staged, rejected)
	if len(sl.Commits()) == 0 {
		t.Fatal("nothing rewritten through the state log")
	}
	out := logs.String()
	for _, s := range []string{old, staged, rejected} {
		if strings.Contains(out, s) {
			t.Fatalf("a secret is in the log: %s", out)
		}
	}
	if !strings.Contains(out, `"webhooks":1,"message":"webhook secrets stored in the clear (before sealing) rewritten sealed"`) ||
		!strings.Contains(out, `"secrets":1,"message":"staged webhook secrets stored in the clear (before sealing) rewritten sealed"`) {
		t.Fatalf("the start's log does not say how many were resealed:\n%s", out)
	}
	deliverOne(t, b, "M1", "000000000001")
	// A restart reads the sealed form.
	mem.Unfollow(b)
	b = open()
	deliverOne(t, b, "M1", "000000000002")
	if good, bad := rv.counts(); good != 2 || bad != 0 {
		t.Fatalf("the migrated webhook's notices: %d signed right, %d wrong", good, bad)
	}
	// The pending change from before: its old fingerprint shown, its (resealed)
	// secret put in force.
	ce := reg.decide(t, "CHG-1", true, false)
	if !strings.Contains(string(ce.After), `"secret_sha256":"0011223344556677"`) {
		t.Fatalf("the pending change of before shows %s", ce.After)
	}
	if ep := (*b.eps.Load())["M2"]; ep.Secret != staged || ep.URL != "http://127.0.0.1:9/p" {
		t.Fatalf("M2's webhook after the approval of the change of before: %q", ep.URL)
	}
	if strings.Contains(logs.String(), staged) {
		t.Fatal("a secret is in the log")
	}
}

// TestSealedSecretBoundToMerchant: a sealed webhook secret copied to another
// merchant's webhook does not open there (that webhook is held), nor does a
// staged secret given to another merchant's change.
func TestSealedSecretBoundToMerchant(t *testing.T) {
	const secret = "merchant-one-secret-0123456789"
	db := openDB(t)
	b, err := Open(db, Options{CardHashKey: testKey, AllowPrivate: loopback})
	if err != nil {
		t.Fatal(err)
	}
	reg := &fakeReview{}
	if err := b.UseReview(reg); err != nil {
		t.Fatal(err)
	}
	if err := b.SetEndpoint("M1", "http://127.0.0.1:9/one", secret, "op", ""); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(pfxEndpoint + "M1"))
		if err != nil {
			return err
		}
		v, _ := item.ValueCopy(nil)
		return txn.Set([]byte(pfxEndpoint+"M2"), v)
	}); err != nil {
		t.Fatal(err)
	}
	b, err = Open(db, Options{CardHashKey: testKey, AllowPrivate: loopback})
	if err != nil {
		t.Fatal(err)
	}
	eps := *b.eps.Load()
	if eps["M1"].Secret != secret || eps["M1"].held != "" {
		t.Fatalf("M1's own webhook: held %q", eps["M1"].held)
	}
	if eps["M2"].Secret != "" || !strings.Contains(eps["M2"].held, "merchant M2") {
		t.Fatalf("M1's sealed secret opened as M2's: held %q", eps["M2"].held)
	}

	if err := b.UseReview(reg); err != nil {
		t.Fatal(err)
	}
	c, err := b.RequestEndpoint(registry.Actor{Name: "op", Role: "operator"}, "M3", "http://127.0.0.1:9/three", secret, "")
	if err != nil {
		t.Fatal(err)
	}
	var w WebhookChange
	_ = json.Unmarshal(c.Ext, &w)
	w.Merchant = "M4"
	c.Target, c.Ext = "M4", mustJSON(t, w)
	if _, err := reg.decideErr(c.ID, true, false); err == nil || !strings.Contains(err.Error(), "merchant M4") {
		t.Fatalf("M3's staged secret approved as M4's: %v", err)
	}
	if _, ok := (*b.eps.Load())["M4"]; ok {
		t.Fatal("M4 has a webhook with M3's secret")
	}
}

// TestWrongCardHashKey: webhooks sealed under another card hash key do not stop
// the outbox from opening; each is held, logged at Error naming its merchant; its
// notices are kept (queued, not posted), the delivery log says why; other
// merchants' webhooks work.
func TestWrongCardHashKey(t *testing.T) {
	const secret, other = "merchant-one-secret-0123456789", "merchant-two-secret-0123456789"
	rv1, hs1 := newSignedReceiver(t, secret)
	rv2, hs2 := newSignedReceiver(t, other)
	db := openDB(t)
	b, err := Open(db, Options{CardHashKey: testKey, AllowPrivate: loopback})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetEndpoint("M1", hs1.URL, secret, "op", ""); err != nil {
		t.Fatal(err)
	}
	var logs syncbuf.Buffer
	wrong := []byte("another card hash key 0123456789")
	b, err = Open(db, Options{CardHashKey: wrong, AllowPrivate: loopback, RetryMin: time.Hour, Logger: zerolog.New(&logs)})
	if err != nil {
		t.Fatalf("a webhook sealed under another key stops the outbox: %v", err)
	}
	if out := logs.String(); !strings.Contains(out, `"level":"error"`) || !strings.Contains(out, "webhook of merchant M1 held") || strings.Contains(out, secret) {
		t.Fatalf("the log at the start:\n%s", out)
	}
	if err := b.SetEndpoint("M2", hs2.URL, other, "op", ""); err != nil {
		t.Fatal(err)
	}
	deliverOne(t, b, "M1", "000000000001")
	deliverOne(t, b, "M2", "000000000002")
	if good, bad := rv1.counts(); good+bad != 0 {
		t.Fatalf("M1's held webhook was posted to: %d, %d", good, bad)
	}
	if good, bad := rv2.counts(); good != 1 || bad != 0 {
		t.Fatalf("M2's webhook: %d signed right, %d wrong", good, bad)
	}
	l, err := b.Deliveries("M1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Pending) != 1 || !strings.Contains(l.Pending[0].LastError, "held") || !strings.Contains(l.Held, "card hash key") {
		t.Fatalf("M1's delivery log: %+v", l)
	}
	// Another node's webhook, sealed under the right key, arrives held on a
	// node with the wrong one; the node applies the commit and goes on.
	var mem statelog.Memory
	var clogs syncbuf.Buffer
	right, err := Open(openDB(t), Options{CardHashKey: testKey, AllowPrivate: loopback, Log: &mem})
	if err != nil {
		t.Fatal(err)
	}
	misconfigured, err := Open(openDB(t), Options{CardHashKey: wrong, AllowPrivate: loopback, Log: &mem, Logger: zerolog.New(&clogs)})
	if err != nil {
		t.Fatal(err)
	}
	mem.Follow(misconfigured)
	if err := right.SetEndpoint("M3", hs1.URL, secret, "op", ""); err != nil {
		t.Fatal(err)
	}
	if err := mem.Deliver(); err != nil {
		t.Fatalf("a webhook that does not open stops the node's replication: %v", err)
	}
	if ep := (*misconfigured.eps.Load())["M3"]; ep.URL != hs1.URL || ep.Secret != "" || ep.held == "" {
		t.Fatalf("another node's webhook on a node with the wrong key: %q, held %q", ep.URL, ep.held)
	}
	if out := clogs.String(); !strings.Contains(out, "webhook of merchant M3 held") || strings.Contains(out, secret) {
		t.Fatalf("the log of the node with the wrong key:\n%s", out)
	}

	// The right key again (a restart): the kept notice goes out.
	b, err = Open(db, Options{CardHashKey: testKey, AllowPrivate: loopback})
	if err != nil {
		t.Fatal(err)
	}
	b.deliverMerchant(context.Background(), "M1")
	if good, bad := rv1.counts(); good != 1 || bad != 0 {
		t.Fatalf("M1's kept notice with the right key: %d signed right, %d wrong", good, bad)
	}
}

// TestRejectedSecretDeleted: the staged secret of a rejected or cancelled change
// is deleted by the outbox's next pass (every 30 s), not a day later; a pending
// change's is kept; one that no change refers to is kept for a day.
func TestRejectedSecretDeleted(t *testing.T) {
	db := openDB(t)
	now := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	b, err := Open(db, Options{CardHashKey: testKey, AllowPrivate: loopback, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	reg := &fakeReview{}
	if err := b.UseReview(reg); err != nil {
		t.Fatal(err)
	}
	op := registry.Actor{Name: "op", Role: "operator"}
	request := func(m string) *registry.Change {
		t.Helper()
		c, err := b.RequestEndpoint(op, m, "http://127.0.0.1:9/"+m, "merchant-secret-0123456789", "")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	rej, can, pend := request("M1"), request("M2"), request("M3")
	reg.decide(t, rej.ID, false, false)
	can.Status = registry.ChangeCancelled
	orphan := WebhookChange{Merchant: "M4", SecretRef: "orphan"}
	restage(t, b, orphan, "merchant-secret-0123456789")
	b.tend()
	for c, want := range map[*registry.Change]bool{rej: false, can: false, pend: true} {
		if ok, err := b.isStaged(mustRef(t, c)); err != nil || ok != want {
			t.Errorf("change %s (%s): staged %v, want %v (%v)", c.ID, c.Status, ok, want, err)
		}
	}
	if ok, _ := b.isStaged("orphan"); !ok {
		t.Error("a secret no change refers to was deleted before a day had passed")
	}
	now = now.Add(25 * time.Hour)
	b.tend()
	if ok, _ := b.isStaged("orphan"); ok {
		t.Error("a secret no change refers to is still staged a day later")
	}
	if ok, _ := b.isStaged(mustRef(t, pend)); !ok {
		t.Error("the pending change's secret was deleted")
	}
}
