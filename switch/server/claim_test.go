package server

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/cluster"
	"github.com/switchyard/switchyard/switch/sched"
)

// TestClusterRunsASlotOnOneNode: two nodes' schedulers (each with its own
// database) that claim through the cluster's KV bucket run a slot once between
// them.
func TestClusterRunsASlotOnOneNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	cfg := cluster.Config{Mode: cluster.ModeEmbedded, Node: 1, Embedded: cluster.Embedded{ServerName: "solo", ClientAddr: "127.0.0.1:0"}}
	cfg.ApplyDefaults(dir)
	n, err := cluster.Start(ctx, cfg, cluster.Options{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.WaitJetStream(ctx); err != nil {
		t.Fatal(err)
	}
	clock := &stepClock{t: time.Date(2026, 5, 1, 9, 59, 0, 0, time.UTC)}
	var runs atomic.Int32
	var scheds []*sched.Scheduler
	for i := 1; i <= 2; i++ {
		c := cfg
		c.Node = i
		cn := &clusterNode{cfg: c, node: n}
		db, err := OpenDB(filepath.Join(dir, "db", string(rune('0'+i))), zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		s, err := sched.New(db, sched.Options{Now: clock.now, Claim: cn.claimSlot})
		if err != nil {
			t.Fatal(err)
		}
		s.Register("k", func(context.Context, map[string]string) (string, error) { runs.Add(1); return "", nil })
		if err := s.Define(sched.Task{Name: "hourly", Kind: "k", Schedule: "0 * * * *"}); err != nil {
			t.Fatal(err)
		}
		s.Tick(ctx)
		scheds = append(scheds, s)
	}
	for _, slot := range []time.Time{time.Date(2026, 5, 1, 10, 0, 5, 0, time.UTC), time.Date(2026, 5, 1, 11, 0, 5, 0, time.UTC)} {
		clock.set(slot)
		for _, s := range scheds {
			s.Tick(ctx)
		}
	}
	if got := runs.Load(); got != 2 {
		t.Fatalf("two slots on two nodes ran %d times, want 2 (one node each)", got)
	}
}
