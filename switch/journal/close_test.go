package journal

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/goleak"
)

// TestCloseJoinsItsGoroutines: when Close returns, no goroutine the journal started
// is left, also after the indexer failed and was waiting to try again. Goroutines that
// ran before the Store was opened (Badger's, and stores other tests left open, as a
// crash leaves them) are not its Store's and are left out.
func TestCloseJoinsItsGoroutines(t *testing.T) {
	dir := t.TempDir()
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, "db")).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	before := goleak.IgnoreCurrent()
	s, err := Open(db, Options{Dir: filepath.Join(dir, "log"), IndexDelay: never})
	if err != nil {
		t.Fatal(err)
	}
	failures := make(chan error, 16)
	s.OnIndexError(func(err error) { failures <- err })
	writeTxn(t, s, 1, time.Now())
	// A record Badger cannot index (its terminal index key is longer than Badger's
	// 65000 bytes): the log takes it, the indexer fails and waits to try again.
	r := sample("000000000077", time.Now(), strings.Repeat("T", 70000))
	if err := s.Write(context.Background(), r, true, true); err != nil {
		t.Fatal(err)
	}
	if err := s.Scan(context.Background(), Query{TID: "T0000001"}, func(*Record) bool { return true }); err == nil {
		t.Fatal("a query succeeded with the index unwritable")
	}
	<-failures
	if err := s.Close(); err == nil {
		t.Fatal("Close reported no error with the index unwritable")
	}
	if err := goleak.Find(before); err != nil {
		t.Errorf("a goroutine outlived Close: %v", err)
	}
}
