package kvsync

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/internal/statelog"
)

func openSync(t *testing.T, cfg Config) (*Sync, *badger.DB) {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := New(db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, db
}

func get(t *testing.T, db *badger.DB, key string) string {
	t.Helper()
	var v []byte
	err := db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(key))
		if err != nil {
			return err
		}
		v, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(v)
}

func set(key, value string) Op {
	return func() (statelog.Commit, func(), error) {
		var c Commit
		c.Set([]byte(key), []byte(value))
		return c.Commit, nil, nil
	}
}

// After a conflict the store calls Config.CatchUp (here it delivers the newer
// commit), re-runs the operation and lands it; a commit it already applied is
// skipped when it comes back.
func TestCatchUpThenRerun(t *testing.T) {
	mem := &statelog.Memory{}
	a, adb := openSync(t, Config{Name: "a", RevKey: "t/rev", Log: mem, Conflict: errors.New("changed")})
	calls := 0
	b, bdb := openSync(t, Config{Name: "b", RevKey: "t/rev", Log: mem, Conflict: errors.New("changed"),
		CatchUp: func(context.Context, statelog.Replica) error {
			calls++
			return mem.Deliver()
		}})
	mem.Follow(a)
	mem.Follow(b)
	if err := a.Do(context.Background(), set("t/x", "1"), nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Do(context.Background(), set("t/y", "2"), nil); err != nil {
		t.Fatalf("B after catching up: %v", err)
	}
	if calls != 1 {
		t.Fatalf("CatchUp called %d times, want 1", calls)
	}
	if err := mem.Deliver(); err != nil {
		t.Fatal(err)
	}
	for name, db := range map[string]*badger.DB{"A": adb, "B": bdb} {
		if get(t, db, "t/x") != "1" || get(t, db, "t/y") != "2" {
			t.Fatalf("node %s: x=%q y=%q", name, get(t, db, "t/x"), get(t, db, "t/y"))
		}
	}
	if a.Revision() != 2 || b.Revision() != 2 {
		t.Fatalf("revisions %d %d", a.Revision(), b.Revision())
	}
	// An old revision again (a redelivery) changes nothing.
	var c Commit
	c.Set([]byte("t/x"), []byte("stale"))
	if err := a.ApplyRemote(1, c.Commit); err != nil || get(t, adb, "t/x") != "1" {
		t.Fatalf("redelivered revision 1: %v, x=%q", err, get(t, adb, "t/x"))
	}
}

// Without a Log nothing but the commit is written: no revision key.
func TestSingleNodeWritesNoRevision(t *testing.T) {
	s, db := openSync(t, Config{Name: "one", RevKey: "t/rev"})
	if err := s.Do(context.Background(), set("t/x", "1"), nil); err != nil {
		t.Fatal(err)
	}
	if get(t, db, "t/x") != "1" || get(t, db, "t/rev") != "" || s.Revision() != 0 {
		t.Fatalf("x=%q rev key %q revision %d", get(t, db, "t/x"), get(t, db, "t/rev"), s.Revision())
	}
}

// TestRestore: a snapshot restored before a store opens sets and deletes its keys,
// leaves the node's own keys alone, and gives the store its revision; one larger
// than a Badger transaction is written too.
func TestRestore(t *testing.T) {
	_, db := openSync(t, Config{Name: "test"})
	if err := db.Update(func(txn *badger.Txn) error {
		for k, v := range map[string]string{"s/a": "1", "s/b": "2", "own/x": "mine", "s/rev": string(EncodeRevision(3))} {
			if err := txn.Set([]byte(k), []byte(v)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	snap := statelog.Commit{Writes: []statelog.KV{{Key: []byte("s/a")}, {Key: []byte("s/b"), Value: []byte("2b")}, {Key: []byte("s/c"), Value: []byte("3")}}}
	if err := Restore(db, snap, []byte("s/rev"), EncodeRevision(40), nil); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"s/a": "", "s/b": "2b", "s/c": "3", "own/x": "mine"} {
		if got := get(t, db, k); got != want {
			t.Errorf("%s = %q after the restore, want %q", k, got, want)
		}
	}
	s, err := New(db, Config{Name: "test", RevKey: "s/rev", Log: &statelog.Memory{}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Revision() != 40 {
		t.Errorf("the store opened at revision %d, want 40", s.Revision())
	}

	var big statelog.Commit
	val := make([]byte, 100)
	for i := range 150_000 {
		big.Writes = append(big.Writes, statelog.KV{Key: fmt.Appendf(nil, "s/big/%07d", i), Value: val})
	}
	if err := db.Update(func(txn *badger.Txn) error {
		for _, kv := range big.Writes {
			if err := txn.Set(kv.Key, kv.Value); err != nil {
				return err
			}
		}
		return nil
	}); !errors.Is(err, badger.ErrTxnTooBig) {
		t.Fatalf("one transaction of the big snapshot: %v; the test wants one too big for it", err)
	}
	if err := Restore(db, big, []byte("s/rev"), EncodeRevision(41), nil); err != nil {
		t.Fatal(err)
	}
	if got := get(t, db, "s/big/0149999"); got != string(val) {
		t.Errorf("the last key of the big snapshot: %q", got)
	}
	if v, _ := DecodeRevision([]byte(get(t, db, "s/rev"))); v != 41 {
		t.Errorf("revision %d after the big restore, want 41", v)
	}
	// The store's Entry: a TTL on one key, another not written (expired).
	withTTL := statelog.Commit{Writes: []statelog.KV{{Key: []byte("s/ttl"), Value: []byte("t")}, {Key: []byte("s/b"), Value: []byte("expired")}}}
	entry := func(kv statelog.KV) *badger.Entry {
		if string(kv.Key) == "s/b" {
			return nil
		}
		return badger.NewEntry(kv.Key, kv.Value).WithTTL(time.Hour)
	}
	if err := Restore(db, withTTL, []byte("s/rev"), EncodeRevision(42), entry); err != nil {
		t.Fatal(err)
	}
	if err := db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte("s/ttl"))
		if err != nil {
			return err
		}
		if item.ExpiresAt() == 0 {
			t.Error("s/ttl restored without its TTL")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := get(t, db, "s/b"); got != "" {
		t.Errorf("s/b = %q after a restore whose Entry refused it", got)
	}
	if _, err := DecodeRevision([]byte("abc")); err == nil {
		t.Error("a 3-byte revision decoded")
	}
}

// TestIntentResolved: an intent commit is applied as Config.Resolve decides it on
// the store as the applying transaction reads it (a request on a key a plain
// commit set before it), with its revision, and Applied is given the writes made;
// a store without Resolve refuses one (nothing written, the revision kept).
func TestIntentResolved(t *testing.T) {
	var applied []statelog.Commit
	double := func(rev uint64, get func([]byte) ([]byte, error), c statelog.Commit) (statelog.Commit, error) {
		var out statelog.Commit
		for _, w := range c.Writes {
			cur, err := get(w.Key)
			if err != nil {
				return out, err
			}
			out.Writes = append(out.Writes, statelog.KV{Key: w.Key, Value: fmt.Appendf(nil, "%s%s@%d", cur, cur, rev)})
		}
		return out, nil
	}
	s, db := openSync(t, Config{Name: "intents", RevKey: "t/rev", Log: &statelog.Memory{}, Resolve: double,
		Applied: func(c statelog.Commit) { applied = append(applied, c) }})
	if err := s.ApplyRemote(1, statelog.Commit{Writes: []statelog.KV{{Key: []byte("t/x"), Value: []byte("ab")}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.ApplyRemote(2, statelog.Commit{Intent: true, Writes: []statelog.KV{{Key: []byte("t/x"), Value: []byte("double it")}}}); err != nil {
		t.Fatal(err)
	}
	if got := get(t, db, "t/x"); got != "abab@2" || s.Revision() != 2 {
		t.Fatalf("t/x = %q at %d; want abab@2 at 2", got, s.Revision())
	}
	if len(applied) != 2 || string(applied[1].Writes[0].Value) != "abab@2" || applied[1].Intent {
		t.Fatalf("Applied was given %+v", applied)
	}

	plain, db2 := openSync(t, Config{Name: "plain", RevKey: "t/rev", Log: &statelog.Memory{}})
	err := plain.ApplyRemote(1, statelog.Commit{Intent: true, Writes: []statelog.KV{{Key: []byte("t/x"), Value: []byte("double it")}}})
	if !errors.Is(err, statelog.ErrNewerCommit) || get(t, db2, "t/x") != "" || plain.Revision() != 0 {
		t.Fatalf("an intent commit without Resolve: %v, t/x %q, revision %d", err, get(t, db2, "t/x"), plain.Revision())
	}
}
