package keys

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/internal/statelog"
)

// TestKeysMaskStoredText: status reasons an older version wrote into the key
// audit log with a PAN in clear (through the store's own commit, so on both
// nodes) are masked by the clean-up run on both nodes at once; the chain still
// verifies, re-chained, with one closing entry; a second run writes nothing.
func TestKeysMaskStoredText(t *testing.T) {
	const pan = "4761739001010119"
	mem := &statelog.Memory{}
	now := func() time.Time { return time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC) }
	var nodes []*Store
	var dbs []*badger.DB
	for range 2 {
		db := openDB(t, t.TempDir())
		t.Cleanup(func() { db.Close() })
		s, err := NewStore(db, Options{Now: now, Log: mem, CatchUp: func(context.Context, statelog.Replica) error { return mem.Deliver() }})
		if err != nil {
			t.Fatal(err)
		}
		mem.Follow(s)
		nodes, dbs = append(nodes, s), append(dbs, db)
	}
	a := nodes[0]
	for i, d := range []string{"rotation", "revoked: card " + pan + " seen in the log", "ok", "after"} {
		if err := a.Audit(ctx, hsm.AuditEvent{Actor: "alice", Action: "revoke", KeyID: "k", Version: i + 1, Detail: d}); err != nil {
			t.Fatal(err)
		}
	}
	if err := mem.Deliver(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	counts := make([]int, 2)
	errs := make([]error, 2)
	for i, s := range nodes {
		wg.Go(func() {
			tl, err := s.MaskStoredText(ctx)
			counts[i], errs[i] = tl.CardNumbers, err
		})
	}
	wg.Wait()
	if err := mem.Deliver(); err != nil {
		t.Fatal(err)
	}
	if errs[0] != nil || errs[1] != nil || counts[0]+counts[1] != 1 {
		t.Fatalf("clean-up: %v %v, %d + %d card numbers masked (want 1 in all)", errs[0], errs[1], counts[0], counts[1])
	}
	for i, s := range nodes {
		n, err := s.VerifyLog(ctx)
		if err != nil || n != 5 {
			t.Errorf("node %d: %d entries, %v", i, n, err)
		}
		es, _ := s.AuditLog(1, 0)
		if len(es) != 5 || es[1].Detail != "revoked: card 476173******0119 seen in the log" || es[4].Action != ActionAuditMask ||
			!strings.Contains(es[4].Detail, "1 masked in 1 entries from entry 2 on") {
			t.Errorf("node %d: %+v", i, es)
		}
		_ = dbs[i].View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix), PrefetchValues: true})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				if v, _ := it.Item().ValueCopy(nil); bytes.Contains(v, []byte(pan)) {
					t.Errorf("node %d: clear PAN under %s", i, it.Item().Key())
				}
			}
			return nil
		})
		if tl, err := s.MaskStoredText(ctx); err != nil || tl.Records+tl.Rechained != 0 {
			t.Errorf("node %d: second run %+v %v", i, tl, err)
		}
	}
}
