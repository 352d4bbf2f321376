package server

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/switch/journal"
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

// TestStandInsBeforeThePipeline: the cluster journal's applier catches up with the
// stream before the pipeline exists (a start after downtime), and the other nodes'
// stand-in approvals it applies then must still count in the day's book, or a card
// they stood in for while this node was down gets its stand-in limits afresh here.
// They are kept until the pipeline exists, then counted once; one that arrives after
// counts at once.
func TestStandInsBeforeThePipeline(t *testing.T) {
	cfg := demoConfig(t, t.TempDir())
	s := start(t, cfg, nil)
	loc, err := time.LoadLocation(cfg.Timezone)
	if err != nil {
		t.Fatal(err)
	}
	p := s.remotePipe.Swap(nil) // as during a start's catch-up
	card := s.Pipeline.CardHash("6222020000000000008")
	now := time.Now()
	standIn := func(rrn string, amount int64) *journal.Record {
		return &journal.Record{RRN: rrn, Type: "purchase", StandIn: true, RC: "00", CardHash: card, Received: now, Amount: amount}
	}
	s.onRemoteRecord(standIn("000000000101", 5000), nil, nil)
	s.onRemoteRecord(standIn("000000000102", 2500), nil, nil)
	s.attachPipeline(p)
	s.onRemoteRecord(standIn("000000000103", 1000), nil, nil)
	got, err := standInStore{s.db}.LoadStandIns(now.In(loc).Format("2006-01-02"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (pipeline.StandInCount{N: 3, Sum: 8500}); got[card] != want {
		t.Fatalf("the card's stand-in count %+v, want %+v: the approvals applied before the pipeline existed were dropped", got[card], want)
	}
}
