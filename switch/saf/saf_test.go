package saf

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"
)

func openDB(t *testing.T, dir string) *badger.DB {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestRetriesAndSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	q, err := Open(db, Options{MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Poll: 10 * time.Millisecond}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	// No sender yet: items wait.
	for _, rrn := range []string{"000000000001", "000000000002", "000000000003"} {
		if err := q.Enqueue(&Item{Issuer: "demo", MTI: "0420", RRN: rrn, Fields: map[int]string{4: "000000001000"}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db = openDB(t, dir)
	defer db.Close()
	q, err = Open(db, Options{MinBackoff: 30 * time.Millisecond, MaxBackoff: 60 * time.Millisecond, Poll: 10 * time.Millisecond}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var mu sync.Mutex
	var got []string
	fails := 2
	q.Register("demo", func(_ context.Context, it *Item, repeat bool) error {
		mu.Lock()
		defer mu.Unlock()
		mti := it.MTI
		if repeat {
			mti = RepeatMTI(it.MTI)
		}
		got = append(got, it.RRN+"/"+mti)
		if it.RRN == "000000000001" && fails > 0 {
			fails--
			return errors.New("no answer")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := q.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	per := map[string][]string{}
	for _, g := range got {
		rrn, mti, _ := strings.Cut(g, "/")
		per[rrn] = append(per[rrn], mti)
	}
	want := map[string][]string{"000000000001": {"0420", "0421", "0421"}, "000000000002": {"0420"}, "000000000003": {"0420"}}
	if !reflect.DeepEqual(per, want) {
		t.Fatalf("deliveries %v, want %v", per, want)
	}
	// A failing advice does not hold up the others: 2 and 3 went before 1's last try.
	if got[len(got)-1] != "000000000001/0421" {
		t.Fatalf("the failing advice held up the queue: %v", got)
	}
	if p, _ := q.Pending(""); len(p) != 0 {
		t.Fatalf("still pending: %v", p)
	}
}
