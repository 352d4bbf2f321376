package server

import (
	"path/filepath"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/switch/pipeline"
)

// TestStandInStore: the day's stand-in counts survive a reopening of the database;
// loading a day deletes the counts of the others.
func TestStandInStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	open := func() *badger.DB {
		db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	db := open()
	s := standInStore{db}
	for _, c := range []struct {
		day, card string
		n         int
		sum       int64
	}{{"2026-12-04", "aa", 2, 900}, {"2026-12-05", "aa", 1, 100}, {"2026-12-05", "bb", 3, 123456789}} {
		if err := s.SaveStandIn(c.day, c.card, pipeline.StandInCount{N: c.n, Sum: c.sum}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = open()
	defer db.Close()
	s = standInStore{db}
	got, err := s.LoadStandIns("2026-12-05")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["aa"] != (pipeline.StandInCount{N: 1, Sum: 100}) || got["bb"] != (pipeline.StandInCount{N: 3, Sum: 123456789}) {
		t.Fatalf("2026-12-05 after reopening: %+v", got)
	}
	if old, err := s.LoadStandIns("2026-12-04"); err != nil || len(old) != 0 {
		t.Fatalf("2026-12-04 after loading 2026-12-05: %+v, %v; want its counts deleted", old, err)
	}
}
