package api

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/switch/registry"
)

// conflicting is a Log on which every write meets another node's commit.
type conflicting struct{}

func (conflicting) Append(context.Context, statelog.Commit, uint64) (uint64, error) {
	return 0, fmt.Errorf("test: %w", statelog.ErrConflict)
}

// TestRegistryStatusCluster: a registry write another node's commits beat twice is
// 409 with the registry's reload-and-retry message; one whose ordering is unknown
// (no quorum) is 503.
func TestRegistryStatusCluster(t *testing.T) {
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil).WithMemTableSize(8 << 20).WithValueLogFileSize(16 << 20))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	reg, err := registry.New(db, nil, registry.Options{SeenFlushInterval: -1, Log: conflicting{}, CatchUpTimeout: 1,
		CatchUp: func(context.Context, statelog.Replica) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	_, err = reg.PutAlertRule(registry.Actor{Name: "alice", Role: registry.RoleOperator},
		registry.AlertRule{ID: "R1", Threshold: registry.Duration(3600e9), Actions: []registry.AlertAction{{Type: registry.ActionLog}}})
	if got := registryStatus(err); got != http.StatusConflict {
		t.Errorf("%v: status %d, want 409", err, got)
	}
	if got := registryStatus(fmt.Errorf("registry: order a commit: %w", statelog.ErrUnavailable)); got != http.StatusServiceUnavailable {
		t.Errorf("unavailable: status %d, want 503", got)
	}
}
