package server

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/risk/profile"
	"github.com/switchyard/switchyard/switch/journal"
)

// BenchmarkProfileBuildFromJournal is the refresh's real cost: profile.Build over
// ProfileSource on a journal of 200,000 records (1,000 merchants, 20,000 cards,
// three days), the journal's reading and decoding included. It reports records/s.
func BenchmarkProfileBuildFromJournal(b *testing.B) {
	dir := b.TempDir()
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, "db")).WithLogger(nil).WithSyncWrites(false))
	if err != nil {
		b.Fatal(err)
	}
	j, err := journal.Open(db, journal.Options{Dir: filepath.Join(dir, "log"), NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	defer j.Close()
	const n = 200_000
	start := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	step := 3 * 24 * time.Hour / n
	ctx := context.Background()
	types := []string{"purchase", "purchase", "purchase", "purchase", "preauth", "balance", "refund", "void"}
	rcs := []string{"00", "00", "00", "00", "00", "00", "51", "14", "05"}
	for i := range n {
		rrn, err := j.NextRRN()
		if err != nil {
			b.Fatal(err)
		}
		r := &journal.Record{RRN: rrn, Received: start.Add(time.Duration(i) * step), MTI: "0200", Type: types[i%len(types)],
			TID: fmt.Sprintf("T%07d", i%3000), MID: fmt.Sprintf("%015d", i%1000), STAN: fmt.Sprintf("%06d", i%999999+1),
			PANMasked: "476173******0119", CardHash: fmt.Sprintf("%016x%016x", uint64(i%20000)*0x9E3779B97F4A7C15, i%20000),
			Amount: int64(1000 + i%7919), Currency: "156", RC: rcs[i%len(rcs)], DecidedBy: "issuer", State: journal.StateAnswered}
		if err := j.Write(ctx, r, true, i == n-1); err != nil {
			b.Fatal(err)
		}
	}
	end := start.Add(3 * 24 * time.Hour)
	// One build first: the journal's index catches up and Badger settles.
	if _, err := profile.Build(ctx, ProfileSource{j}, end, profile.Options{Window: 3 * 24 * time.Hour}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		t, err := profile.Build(ctx, ProfileSource{j}, end, profile.Options{Window: 3 * 24 * time.Hour})
		if err != nil || t.Records != n {
			b.Fatalf("build: %v, %d records", err, t.Records)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
