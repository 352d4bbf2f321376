package kvjson

import (
	"fmt"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

type rec struct {
	N    int    `json:"n"`
	Kind string `json:"kind"`
}

func TestNewest(t *testing.T) {
	db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(txn *badger.Txn) error {
		for i := 1; i <= 10; i++ {
			kind := "odd"
			if i%2 == 0 {
				kind = "even"
			}
			if err := txn.Set(fmt.Appendf(nil, "r/%020d", i), fmt.Appendf(nil, `{"n":%d,"kind":%q}`, i, kind)); err != nil {
				return err
			}
		}
		// Another prefix that sorts after r/ must not be read.
		return txn.Set([]byte("s/1"), []byte(`{"n":99}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Newest(db, "r/", 3, "test: read", func(r *rec) bool { return r.Kind == "even" })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].N != 6 || got[1].N != 8 || got[2].N != 10 {
		t.Fatalf("newest three even, oldest first: %+v", got)
	}
	all, err := Newest(db, "r/", 0, "test: read", func(*rec) bool { return true })
	if err != nil || len(all) != 10 || all[0].N != 1 {
		t.Fatalf("all: %v %+v", err, all)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("r/x"), []byte("{")) }); err != nil {
		t.Fatal(err)
	}
	if _, err := Newest(db, "r/", 0, "test: read", func(*rec) bool { return true }); err == nil || !strings.Contains(err.Error(), "test: read r/x") {
		t.Fatalf("a bad value: %v", err)
	}
}
