package server

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/registry"
)

// BenchmarkMerchantLimitCheck is the daily-limit sum of one notification of a
// merchant with 50 terminals and 20,000 records in the last 24 hours (approved
// purchases, some reversed or refunded): scan reads them from the journal as every
// check did before; sums reads the desk's sums (read from the journal once).
func BenchmarkMerchantLimitCheck(b *testing.B) {
	dir := b.TempDir()
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, "db")).WithLogger(nil).WithSyncWrites(false))
	if err != nil {
		b.Fatal(err)
	}
	j, err := journal.Open(db, journal.Options{Dir: filepath.Join(dir, "log"), NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = j.Close(); _ = db.Close() })
	reg := &fakeRegistry{terminals: map[string]*registry.Terminal{}, merchants: map[string]*registry.Merchant{
		"M1": {ID: "M1", Status: registry.MerchantActive, Limits: registry.Limits{Daily: 1 << 40}}}}
	for i := range 50 {
		id := fmt.Sprintf("T%07d", i)
		reg.terminals[id] = &registry.Terminal{ID: id, MerchantID: "M1", Status: registry.TerminalActive}
	}
	sums := newMerchantSums(reg, j)
	j.OnVersion(sums.observe)
	ctx := context.Background()
	now := time.Now().UTC()
	const n = 20_000
	for i := range n {
		r := &journal.Record{RRN: fmt.Sprintf("4%011d", i), TID: fmt.Sprintf("T%07d", i%50), STAN: fmt.Sprintf("%06d", i%1_000_000),
			DE7: fmt.Sprintf("12%08d", i), Type: "purchase", RC: "00", Amount: int64(1000 + i%5000), Received: now.Add(-24*time.Hour + time.Duration(i)*(24*time.Hour/n))}
		switch i % 20 {
		case 0:
			r.ReversedBy = "switch:test"
		case 1:
			r.Refunded = 500
		}
		if err := j.Write(ctx, r, true, i == n-1); err != nil { // the last waits for all
			b.Fatal(err)
		}
	}
	at := now.Add(time.Second)
	want, err := scanMerchantSum(ctx, reg, j, "M1", at.Add(-dailyLimitWindow), at)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("scan", func(b *testing.B) {
		for b.Loop() {
			if got, err := scanMerchantSum(ctx, reg, j, "M1", at.Add(-dailyLimitWindow), at); err != nil || got != want {
				b.Fatalf("sum %d %v, want %d", got, err, want)
			}
		}
	})
	b.Run("sums", func(b *testing.B) {
		for b.Loop() {
			h := sums.acquire("M1", at)
			got, _, err := sums.sum(ctx, h, "M1", "", at.Add(-dailyLimitWindow), at.Add(-dailyLimitWindow), at)
			sums.release(h)
			if err != nil || got != want {
				b.Fatalf("sum %d %v, want %d", got, err, want)
			}
		}
	})
}
