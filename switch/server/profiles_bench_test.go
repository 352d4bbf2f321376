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
	j := benchJournal(b)
	end := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	ctx := context.Background()
	o := profile.Options{Window: 3 * 24 * time.Hour}
	// One build first: the journal's index catches up and Badger settles.
	if _, err := profile.Build(ctx, ProfileSource{j}, end, o); err != nil {
		b.Fatal(err)
	}
	b.Run("full", func(b *testing.B) {
		for range b.N {
			t, err := profile.Build(ctx, ProfileSource{j}, end, o)
			if err != nil || t.Records != benchRecords {
				b.Fatalf("build: %v, %d records", err, t.Records)
			}
		}
		b.ReportMetric(float64(benchRecords)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
	// A daily refresh after a full build of a 2-day window: it reads the day that
	// enters and re-reads the day that leaves.
	b.Run("incremental", func(b *testing.B) {
		o := profile.Options{Window: 2 * 24 * time.Hour, NewCardDays: 1}
		read := 0
		for range b.N {
			b.StopTimer()
			inc := profile.NewIncremental(o)
			if _, err := inc.Advance(ctx, ProfileSource{j}, end.Add(-24*time.Hour)); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			t, err := inc.Advance(ctx, ProfileSource{j}, end)
			if err != nil {
				b.Fatal(err)
			}
			read += t.Records
		}
		b.ReportMetric(float64(read)/b.Elapsed().Seconds(), "records/s")
		b.ReportMetric(float64(read)/float64(b.N), "records/refresh")
	})
}

const benchRecords = 200_000

// benchJournal is a journal of benchRecords records over the three days from
// 2026-11-20 00:00 UTC: 1,000 merchants, 20,000 cards.
func benchJournal(b *testing.B) *journal.Store {
	dir := b.TempDir()
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, "db")).WithLogger(nil).WithSyncWrites(false))
	if err != nil {
		b.Fatal(err)
	}
	j, err := journal.Open(db, journal.Options{Dir: filepath.Join(dir, "log"), NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { j.Close(); db.Close() })
	const n = benchRecords
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
	return j
}
