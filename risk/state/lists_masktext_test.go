package state

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/internal/statelog/kvsync"
)

// plantClearNote stores, through l's own commit (ordered by the Log in a
// cluster), a list entry and its audit entry whose note holds a PAN in clear, as a
// version before masking stored them.
func plantClearNote(t *testing.T, l *Lists, value, note string) {
	t.Helper()
	e := ListEntry{List: "deny", Kind: KindCard, Value: value, Note: note, AddedBy: "alice", AddedAt: time.Now().UTC()}
	err := l.sync.Do(context.Background(), func() (statelog.Commit, func(), error) {
		var c kvsync.Commit
		v, _ := json.Marshal(e)
		c.Set(entryKey(listKey{e.List, e.Kind, e.Value}), v)
		l.writeAudit(&c, AuditEntry{Time: e.AddedAt, Who: "alice", Op: "add", Entry: e})
		return c.Commit, func() { l.applied(c.Commit) }, nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
}

// clearKeys returns the keys of db whose values hold pan in clear.
func clearKeys(t *testing.T, db *badger.DB, pan string) []string {
	t.Helper()
	var keys []string
	if err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			if bytes.Contains(v, []byte(pan)) {
				keys = append(keys, string(it.Item().Key()))
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestListsMaskStoredText: notes an older version stored with a PAN in clear, on
// two nodes of a cluster that run the clean-up at once, end masked in Badger, in
// the entries the rules read and in the audit, on both nodes; an entry added on
// one node meanwhile is kept; a second run writes nothing.
func TestListsMaskStoredText(t *testing.T) {
	const pan = "4761739001010119"
	mem := &statelog.Memory{}
	var nodes []*Lists
	var dbs []*badger.DB
	for range 2 {
		db := openDB(t, t.TempDir())
		t.Cleanup(func() { db.Close() })
		l, err := OpenLists(db, ListsOptions{Log: mem, CatchUp: func(context.Context, statelog.Replica) error { return mem.Deliver() }})
		if err != nil {
			t.Fatal(err)
		}
		mem.Follow(l)
		nodes, dbs = append(nodes, l), append(dbs, db)
	}
	a, b := nodes[0], nodes[1]
	for i := range 5 {
		plantClearNote(t, a, "card-hash-000000000000000"+string(rune('a'+i)), "stolen card "+pan+" reported by phone")
	}
	if err := mem.Deliver(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var ta, tb int
	var errA, errB, errAdd error
	wg.Go(func() { r, err := a.MaskStoredText(context.Background()); ta, errA = r.CardNumbers, err })
	wg.Go(func() { r, err := b.MaskStoredText(context.Background()); tb, errB = r.CardNumbers, err })
	wg.Go(func() {
		// An analyst's add that collides with the clean-ups' commits is refused
		// ErrListsConflict ("retry"), as any change colliding twice; it is tried
		// again, as the CLI's user would.
		for range 20 {
			if _, errAdd = b.Add("bob", ListEntry{List: "deny", Kind: KindCard, Value: "card-hash-meanwhile-0000", Note: "meanwhile"}); !errors.Is(errAdd, ErrListsConflict) {
				return
			}
		}
	})
	wg.Wait()
	if errA != nil || errB != nil || errAdd != nil {
		t.Fatalf("clean-up on A: %v; on B: %v; an add meanwhile: %v", errA, errB, errAdd)
	}
	if err := mem.Deliver(); err != nil {
		t.Fatal(err)
	}
	if ta+tb < 10 {
		t.Errorf("masked %d + %d card numbers, want at least 10 (5 entries, 5 audit entries)", ta, tb)
	}
	for i, l := range nodes {
		if keys := clearKeys(t, dbs[i], pan); len(keys) > 0 {
			t.Errorf("node %d: clear PAN under %v", i, keys)
		}
		es := l.Entries()
		if len(es) != 6 {
			t.Errorf("node %d: %d entries, want 6", i, len(es))
		}
		for _, e := range es {
			if e.Note != "stolen card 476173******0119 reported by phone" && e.Note != "meanwhile" {
				t.Errorf("node %d: entry %s note %q", i, e.Value, e.Note)
			}
		}
		if r, err := l.MaskStoredText(context.Background()); err != nil || r.Records != 0 {
			t.Errorf("node %d: second run %+v %v", i, r, err)
		}
	}
}
