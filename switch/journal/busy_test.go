package journal

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// TestIndexBlockedWritesQuiet: Badger refusing the index's writes for a moment
// (badger.ErrBlockedWrites, as while a DropPrefix flushes its memtables: the
// server's clean-up of stored text at a start) is tried again soon, is not
// reported as an index failure, and a query waits for it instead of failing.
func TestIndexBlockedWritesQuiet(t *testing.T) {
	var s *Store
	var attempts atomic.Int32
	db, opened := openOpts(t, t.TempDir(), Options{IndexDelay: never, indexWrite: func(items []ixItem) error {
		if attempts.Add(1) <= 3 {
			return fmt.Errorf("write batch: %w", badger.ErrBlockedWrites)
		}
		return s.index(items)
	}})
	s = opened
	defer db.Close()
	defer s.Close()
	var reported atomic.Int32
	s.OnIndexError(func(error) { reported.Add(1) })
	r := writeTxn(t, s, 1, time.Now())
	found := 0
	if err := s.Scan(context.Background(), Query{TID: r.TID}, func(*Record) bool { found++; return true }); err != nil {
		t.Fatalf("a query while Badger blocked writes for a moment: %v; want it to wait", err)
	}
	if found != 1 || attempts.Load() != 4 {
		t.Fatalf("found %d records after %d index attempts; want 1 after 4 (3 blocked)", found, attempts.Load())
	}
	if n := reported.Load(); n != 0 {
		t.Fatalf("blocked writes reported %d times as an index failure; want none", n)
	}
}

// TestIndexBlockedWritesTooLong: Badger blocking the index's writes past the quiet
// time (busyQuiet, here 100 ms) is reported as any index failure, and a waiting
// query fails with it instead of waiting on (it waited for ever in a first version,
// the retry gathering more work for IndexDelay).
func TestIndexBlockedWritesTooLong(t *testing.T) {
	var blocked atomic.Bool
	blocked.Store(true)
	var s *Store
	db, opened := openOpts(t, t.TempDir(), Options{IndexDelay: never, busyQuiet: 100 * time.Millisecond, indexWrite: func(items []ixItem) error {
		if blocked.Load() {
			return fmt.Errorf("write batch: %w", badger.ErrBlockedWrites)
		}
		return s.index(items)
	}})
	s = opened
	defer db.Close()
	defer s.Close()
	reported := make(chan error, 64)
	s.OnIndexError(func(err error) { reported <- err })
	r := writeTxn(t, s, 1, time.Now())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := s.Scan(ctx, Query{TID: r.TID}, func(*Record) bool { return true })
	if !errors.Is(err, badger.ErrBlockedWrites) {
		t.Fatalf("a query while Badger blocked writes past the quiet time: %v; want its error", err)
	}
	if got := <-reported; !errors.Is(got, badger.ErrBlockedWrites) {
		t.Fatalf("reported %v; want the blocked writes", got)
	}
	// Once Badger takes writes again, the index's next try succeeds (here the
	// one Close makes: it reports the index's last error).
	blocked.Store(false)
	if err := s.Close(); err != nil {
		t.Fatalf("Close after the block ended: %v; want the index written", err)
	}
}
