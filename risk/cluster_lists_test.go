package risk

import (
	"errors"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/internal/statelog/kvsync/kvsynctest"
)

// listsNode is one node's risk engine on its own Badger directory, its lists
// shared with the other nodes through a statelog.Memory.
type listsNode struct {
	e   *Engine
	log *kvsynctest.Log
}

func twoListsNodes(t *testing.T) (a, b *listsNode, mem *statelog.Memory) {
	t.Helper()
	mem = &statelog.Memory{}
	open := func() *listsNode {
		db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
		if err != nil {
			t.Fatal(err)
		}
		n := &listsNode{log: kvsynctest.New(mem)}
		if n.e, err = New("../rules", Options{DB: db, ListsLog: n.log}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.e.Close(); db.Close() })
		mem.Follow(n.e.Lists())
		return n
	}
	return open(), open(), mem
}

func deliverLists(t *testing.T, mem *statelog.Memory) {
	t.Helper()
	if err := mem.Deliver(); err != nil {
		t.Fatal(err)
	}
}

// A card deny-listed on node A is declined by node B's next evaluation once B is
// given A's change; taken off on B, A allows it again.
func TestClusterListEntryOnABlocksOnB(t *testing.T) {
	a, b, mem := twoListsNodes(t)
	in := purchase(1200)
	if _, err := a.e.Lists().Add("alice", ListEntry{List: ListDeny, Kind: KindCard, Value: in.Txn.CardHash}); err != nil {
		t.Fatal(err)
	}
	if d := b.e.Evaluate(in); d.Action != ActionAllow {
		t.Fatalf("B before delivery: %s", d.Summary())
	}
	deliverLists(t, mem)
	if d := b.e.Evaluate(in); d.Rule != "deny-card" || d.ResponseCode != "05" {
		t.Fatalf("B after delivery: %s, want deny-card", d.Summary())
	}
	if au, err := b.e.Lists().Audit(in.Txn.Time.AddDate(-1, 0, 0), 0); err != nil || len(au) != 1 || au[0].Who != "alice" {
		t.Fatalf("B's audit trail: %v %v", au, err)
	}
	if ok, err := b.e.Lists().Remove("bob", ListDeny, KindCard, in.Txn.CardHash); err != nil || !ok {
		t.Fatalf("B removes: %v %v", ok, err)
	}
	deliverLists(t, mem)
	if d := a.e.Evaluate(in); d.Action != ActionAllow {
		t.Fatalf("A after B's removal: %s", d.Summary())
	}
	if a.e.Lists().Revision() != 2 || b.e.Lists().Revision() != 2 {
		t.Fatalf("revisions A %d, B %d", a.e.Lists().Revision(), b.e.Lists().Revision())
	}
}

// Entries added on two nodes at once both land on both; a remove of an entry
// another node removed first finds nothing; a second conflict is refused with
// ErrListsConflict.
func TestClusterListChangesConcurrentAndConflicting(t *testing.T) {
	a, b, mem := twoListsNodes(t)
	add := func(n *listsNode, kind, value string) error {
		_, err := n.e.Lists().Add("op", ListEntry{List: ListDeny, Kind: kind, Value: value})
		return err
	}
	if err := add(a, KindTerminal, "T0000001"); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- add(b, KindMerchant, "000000000000009") }()
	<-b.log.Conflicts
	deliverLists(t, mem)
	if err := <-errc; err != nil {
		t.Fatalf("B's entry after catching up: %v", err)
	}
	deliverLists(t, mem)
	for name, n := range map[string]*listsNode{"A": a, "B": b} {
		if got := len(n.e.Lists().Entries()); got != 2 {
			t.Fatalf("node %s has %d entries, want both", name, got)
		}
	}

	// Both remove the terminal; B has not seen A's removal.
	if ok, err := a.e.Lists().Remove("op", ListDeny, KindTerminal, "T0000001"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	okc := make(chan bool, 1)
	go func() {
		ok, err := b.e.Lists().Remove("op", ListDeny, KindTerminal, "T0000001")
		okc <- ok
		errc <- err
	}()
	<-b.log.Conflicts
	deliverLists(t, mem)
	if ok, err := <-okc, <-errc; ok || err != nil {
		t.Fatalf("B's stale removal: removed %v, %v; want nothing to remove", ok, err)
	}

	// A changes the lists again while B re-runs its change.
	calls := len(b.log.Commits())
	b.log.Before = func(n int) {
		if n == calls+2 {
			if err := add(a, KindCountry, "KP"); err != nil {
				t.Error(err)
			}
		}
	}
	if err := add(a, KindCountry, "IR"); err != nil {
		t.Fatal(err)
	}
	go func() { errc <- add(b, KindBIN, "999999") }()
	<-b.log.Conflicts
	deliverLists(t, mem)
	err := <-errc
	if !errors.Is(err, ErrListsConflict) || !errors.Is(err, statelog.ErrConflict) || !strings.Contains(err.Error(), "retry") {
		t.Fatalf("second conflict: %v, want ErrListsConflict", err)
	}
	if b.e.Lists().Contains(ListDeny, KindBIN, "999999", purchase(1).Txn.Time) {
		t.Fatal("the refused entry is on B's list")
	}
}

// A change the cluster could not confirm is not used on the node; when it turns
// out to have been ordered it arrives like another node's.
func TestClusterListChangeUnavailable(t *testing.T) {
	a, b, mem := twoListsNodes(t)
	in := purchase(1200)
	a.log.SetUnknown(true)
	_, err := a.e.Lists().Add("alice", ListEntry{List: ListDeny, Kind: KindCard, Value: in.Txn.CardHash})
	if !errors.Is(err, statelog.ErrUnavailable) {
		t.Fatalf("add while unavailable: %v", err)
	}
	if d := a.e.Evaluate(in); d.Action != ActionAllow {
		t.Fatalf("A uses an entry whose change was not confirmed: %s", d.Summary())
	}
	if au, _ := a.e.Lists().Audit(in.Txn.Time.AddDate(-1, 0, 0), 0); len(au) != 0 {
		t.Fatalf("A audited an unconfirmed change: %v", au)
	}
	a.log.SetUnknown(false)
	deliverLists(t, mem)
	for name, n := range map[string]*listsNode{"A": a, "B": b} {
		if d := n.e.Evaluate(in); d.Rule != "deny-card" {
			t.Fatalf("node %s after delivery: %s", name, d.Summary())
		}
	}
}
