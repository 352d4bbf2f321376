package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/keys"
	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/cases"
)

// conflictLog refuses every commit as stale, as when other nodes keep changing
// the store.
type conflictLog struct{}

func (conflictLog) Append(context.Context, statelog.Commit, uint64) (uint64, error) {
	return 0, fmt.Errorf("test: %w", statelog.ErrConflict)
}

// The cluster's refusals reach the admin API as 409 (changed on another node) and
// 503 (the cluster could not order the change), from the stores' own errors.
func TestClusterRefusalStatuses(t *testing.T) {
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, c := range []struct {
		log  statelog.Log
		want int
	}{{conflictLog{}, http.StatusConflict}, {&statelog.Memory{Fail: statelog.ErrUnavailable}, http.StatusServiceUnavailable}} {
		ks, err := keys.NewStore(db, keys.Options{Log: c.log, CatchUpTimeout: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		r := hsm.KeyRecord{ID: "x.ZPK", Version: 1, Type: hsm.ZPK, Algorithm: hsm.TDES2KEY, KCV: "111111", Status: hsm.StatusActive, Block: "D0000-synthetic"}
		err = ks.Put(context.Background(), hsm.PutRequest{Record: r, Event: hsm.AuditEvent{Actor: "t", Action: "generate"}})
		if got := keysStatus(err); got != c.want {
			t.Errorf("key store: %v -> %d, want %d", err, got, c.want)
		}
		l, err := risk.OpenLists(db, risk.ListsOptions{Log: c.log, CatchUpTimeout: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		_, err = l.Add("t", risk.ListEntry{List: risk.ListDeny, Kind: risk.KindBIN, Value: "476173"})
		if got := listsStatus(err); got != c.want {
			t.Errorf("lists: %v -> %d, want %d", err, got, c.want)
		}
	}
	for err, want := range map[error]int{
		fmt.Errorf("cases: case.assign of CASE-1: %w: %w", cases.ErrChanged, statelog.ErrConflict): http.StatusConflict,
		fmt.Errorf("cases: case.assign of CASE-1: review cases: %w", statelog.ErrUnavailable):      http.StatusServiceUnavailable,
	} {
		if got := casesStatus(err); got != want {
			t.Errorf("cases: %v -> %d, want %d", err, got, want)
		}
	}
	if !errors.Is(cases.ErrChanged, cases.ErrConflict) {
		t.Error("cases.ErrChanged is not a conflict")
	}
}
