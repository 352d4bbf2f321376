package state

import (
	"fmt"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// BenchmarkListLookups measures the lists' work on the transaction path (the
// lists.* flags and an in_list lookup) of the single-node switch: lists opened
// from Badger without a cluster Log, 1,000 entries.
func BenchmarkListLookups(b *testing.B) {
	db, err := badger.Open(badger.DefaultOptions(b.TempDir()).WithLogger(nil))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	l, err := NewLists(db)
	if err != nil {
		b.Fatal(err)
	}
	for i := range 1000 {
		e := ListEntry{List: ListDeny, Kind: KindCard, Value: fmt.Sprintf("cardhash%020d", i)}
		if i%2 == 1 {
			e = ListEntry{List: "watch", Kind: KindTerminal, Value: fmt.Sprintf("T%07d", i)}
		}
		if _, err := l.Add("bench", e); err != nil {
			b.Fatal(err)
		}
	}
	cards := make([]string, 2000) // half of them on the deny list
	for i := range cards {
		cards[i] = fmt.Sprintf("cardhash%020d", i)
	}
	now := time.Now()
	ns := now.UnixNano()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f := l.Flags("476173", cards[i%len(cards)], "T0000001", "000000000000001", "CN", ns)
		if l.Contains("watch", KindTerminal, "T0000003", now) == f.DenyBIN {
			b.Fatal("T0000003 is on the watch list")
		}
	}
}
