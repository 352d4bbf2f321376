package server

import (
	"errors"
	"fmt"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/internal/statelog"
)

// stubReplica fails every application with err.
type stubReplica struct{ err error }

func (s stubReplica) ApplyRemote(uint64, statelog.Commit) error { return s.err }
func (s stubReplica) Revision() uint64                          { return 0 }

// TestBadgerBusy: a store's write that Badger refused because it blocks writes
// for a moment (a DropPrefix flushing its memtables, as the start's clean-up of
// stored text does) reaches the follower as statelog.ErrBusy, still naming
// Badger's error; any other failure reaches it as it was.
func TestBadgerBusy(t *testing.T) {
	blocked := fmt.Errorf("registry: apply revision 30 (1 keys): %w", badger.ErrBlockedWrites)
	err := badgerBusy{stubReplica{blocked}}.ApplyRemote(30, statelog.Commit{})
	if !errors.Is(err, statelog.ErrBusy) || !errors.Is(err, badger.ErrBlockedWrites) {
		t.Fatalf("blocked writes: %v; want statelog.ErrBusy wrapping badger.ErrBlockedWrites", err)
	}
	other := fmt.Errorf("registry: apply revision 30 (1 keys): %w", badger.ErrTxnTooBig)
	if err := (badgerBusy{stubReplica{other}}).ApplyRemote(30, statelog.Commit{}); err != other {
		t.Fatalf("another failure: %v; want it unchanged", err)
	}
	if err := (badgerBusy{stubReplica{}}).ApplyRemote(30, statelog.Commit{}); err != nil {
		t.Fatalf("a success: %v", err)
	}
}
