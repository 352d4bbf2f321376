package cases

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/internal/statelog/kvsync"
	"github.com/switchyard/switchyard/internal/statelog/kvsync/kvsynctest"
)

// TestCasesMaskStoredText: a decision note a version before masking stored with a
// PAN in clear (through the cases' own commit, so on both nodes) is masked by the
// clean-up run on both nodes at once, in Badger and in what Get returns; a second
// run writes nothing.
func TestCasesMaskStoredText(t *testing.T) {
	const pan = "4761739001010119"
	mem := &statelog.Memory{}
	open := func() *casesNode {
		n := &casesNode{e: newEnv(t), log: kvsynctest.New(mem)}
		n.e.opts.Log = n.log
		n.e.opts.CatchUp = func(context.Context, statelog.Replica) error { return mem.Deliver() }
		n.s = n.e.store(t)
		mem.Follow(n.s)
		return n
	}
	a, b := open(), open()
	<-a.openAsync(t, "000000000001")
	deliverCases(t, mem)
	if _, err := a.s.Assign(analyst2, "CASE-1", "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := a.s.Decide(analyst2, "CASE-1", VerdictCleared, "fine"); err != nil {
		t.Fatal(err)
	}
	deliverCases(t, mem)
	// As an older version: the note in clear, through the cases' commit.
	if err := a.s.sync.Do(context.Background(), func() (statelog.Commit, func(), error) {
		c, err := a.s.Get("CASE-1")
		if err != nil {
			return statelog.Commit{}, nil, err
		}
		c.Decision.Note = "cardholder read " + pan + " to us"
		var kc kvsync.Commit
		v, _ := json.Marshal(c)
		kc.Set(seqKey(c.Seq), v)
		return kc.Commit, nil, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	deliverCases(t, mem)

	var wg sync.WaitGroup
	counts := make([]int, 2)
	errs := make([]error, 2)
	for i, n := range []*casesNode{a, b} {
		wg.Go(func() {
			r, err := n.s.MaskStoredText(context.Background())
			counts[i], errs[i] = r.CardNumbers, err
		})
	}
	wg.Wait()
	deliverCases(t, mem)
	if errs[0] != nil || errs[1] != nil || counts[0]+counts[1] != 1 {
		t.Fatalf("clean-up: %v %v, %d + %d card numbers masked (want 1 in all)", errs[0], errs[1], counts[0], counts[1])
	}
	for i, n := range []*casesNode{a, b} {
		c, err := n.s.Get("CASE-1")
		if err != nil || c.Decision.Note != "cardholder read 476173******0119 to us" {
			t.Errorf("node %d: note %q %v", i, c.Decision.Note, err)
		}
		_ = n.e.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("case/"), PrefetchValues: true})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				if v, _ := it.Item().ValueCopy(nil); bytes.Contains(v, []byte(pan)) {
					t.Errorf("node %d: clear PAN under %s", i, it.Item().Key())
				}
			}
			return nil
		})
		if r, err := n.s.MaskStoredText(context.Background()); err != nil || r.Records != 0 {
			t.Errorf("node %d: second run %+v %v", i, r, err)
		}
	}
}
