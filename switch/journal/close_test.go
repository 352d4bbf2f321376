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
// is left, also after the indexer failed and was waiting to try again. Goroutines of
// the journal that ran before the test (stores other tests left open, as a crash
// leaves them) are not its Store's and are left out.
func TestCloseJoinsItsGoroutines(t *testing.T) {
	before := journalGoroutines()
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
	for id, g := range journalGoroutines() {
		if _, ok := before[id]; !ok && !strings.Contains(g, "TestCloseJoinsItsGoroutines") {
			t.Errorf("a goroutine of the journal outlived Close:\n%s", g)
		}
	}
}

// journalGoroutines returns the stacks of the goroutines running the journal's code,
// by goroutine ID (IDs are never reused).
func journalGoroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	gs := make(map[string]string)
	for _, g := range strings.Split(string(buf), "\n\n") {
		if !strings.Contains(g, "switch/journal.") {
			continue
		}
		id, _, _ := strings.Cut(strings.TrimPrefix(g, "goroutine "), " ")
		gs[id] = g
	}
	return gs
}
