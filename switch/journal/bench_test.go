package journal

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// benchStore opens a journal with the switch's default settings (1 ms window, 50 µs
// gap) in a temporary directory.
func benchStore(b *testing.B, noSync bool) *Store {
	b.Helper()
	dir := b.TempDir()
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, "db")).WithLogger(nil).WithSyncWrites(false))
	if err != nil {
		b.Fatal(err)
	}
	s, err := Open(db, Options{Dir: filepath.Join(dir, "log"), Window: time.Millisecond, NoSync: noSync})
	if err != nil {
		db.Close()
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := s.Close(); err != nil {
			b.Error(err)
		}
		db.Close()
	})
	return s
}

// benchTxns journals transactions the way the pipeline does (RRN, write-ahead, durable
// outcome, delivery mark) from 16 goroutines a core: the group commit's path.
func benchTxns(b *testing.B, noSync bool) {
	s := benchStore(b, noSync)
	base := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			i := n.Add(1)
			rrn, err := s.NextRRN()
			if err != nil {
				b.Error(err)
				return
			}
			at := base.Add(time.Duration(i) * time.Millisecond)
			r := sample(rrn, at, fmt.Sprintf("T%07d", i%50))
			r.STAN = fmt.Sprintf("%06d", i%1000000)
			if err := s.Write(ctx, r, true, false); err != nil {
				b.Error(err)
				return
			}
			if err := s.Write(ctx, r, false, true); err != nil {
				b.Error(err)
				return
			}
			if err := s.MarkDelivery(rrn, true, at); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkTxn: a transaction's journal writes with fdatasync (disk-bound).
func BenchmarkTxn(b *testing.B) { benchTxns(b, false) }

// BenchmarkTxnNoSync: the same without the syncs: the journal's CPU per transaction.
func BenchmarkTxnNoSync(b *testing.B) { benchTxns(b, true) }

// BenchmarkGet reads indexed records by RRN (index entry, then the log).
func BenchmarkGet(b *testing.B) {
	s := benchStore(b, true)
	ctx := context.Background()
	base := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	var rrns []string
	for i := range 1000 {
		rrn, err := s.NextRRN()
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Write(ctx, sample(rrn, base.Add(time.Duration(i)*time.Millisecond), "T0000001"), true, i == 999); err != nil {
			b.Fatal(err)
		}
		rrns = append(rrns, rrn)
	}
	if err := s.Scan(ctx, Query{TID: "nobody"}, func(*Record) bool { return true }); err != nil { // index it all
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Get(rrns[i%len(rrns)]); err != nil {
			b.Fatal(err)
		}
	}
}
