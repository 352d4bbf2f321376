package journal

import (
	"context"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// TestCloseJoinsItsGoroutines: when Close returns, no goroutine the journal started
// is left, also after the indexer failed and was waiting to try again.
func TestCloseJoinsItsGoroutines(t *testing.T) {
	dir := t.TempDir()
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, "db")).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(db, Options{Dir: filepath.Join(dir, "log"), IndexDelay: never})
	if err != nil {
		t.Fatal(err)
	}
	failures := make(chan error, 16)
	s.OnIndexError(func(err error) { failures <- err })
	defer db.Close()
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
	buf := make([]byte, 1<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	for _, g := range strings.Split(stacks, "\n\n") {
		if strings.Contains(g, "switch/journal.") && !strings.Contains(g, "TestCloseJoinsItsGoroutines") {
			t.Errorf("a goroutine of the journal outlived Close:\n%s", g)
		}
	}
}
