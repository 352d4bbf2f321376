package server

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/switch/cluster"
	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/internal/testswitch"
	"github.com/switchyard/switchyard/switch/qrorder"
	"github.com/switchyard/switchyard/switch/registry"
)

// oneNodeCluster is the demo configuration in dir as node 1 of a cluster of one
// embedded JetStream server (R1) whose store is jsDir.
func oneNodeCluster(t *testing.T, dir, jsDir string) *config.Config {
	t.Helper()
	cfg := demoConfig(t, dir)
	cfg.Cluster = &cluster.Config{Mode: cluster.ModeEmbedded, Node: 1, Replicas: 1,
		Embedded: cluster.Embedded{ServerName: "n1", ClientAddr: "127.0.0.1:0", StoreDir: jsDir}}
	cfg.Cluster.ApplyDefaults(dir)
	return cfg
}

// TestRestoreCompacted: a node whose disk was lost starts on an empty data directory
// after the STATE stream was compacted (the commits that made its registry purged):
// before its stores open it restores every shared store's snapshot, and it has the
// registry as it was (a suspension made before the compaction is enforced), every
// store at the revision of the other copy, and each store's revision where the store
// reads it (a shared store missing from sharedStores, or listed with another
// store's key, fails here). The first start of the test also writes one commit to
// every shared store's subject, so that each has a revision to check. A QR order is
// made before the first compaction and paid before the second (requests decided at
// apply time, between the plain commits on the same subject): the snapshot folds
// them as the nodes decide them, and the restored node has the order paid.
func TestRestoreCompacted(t *testing.T) {
	base := t.TempDir()
	js := filepath.Join(base, "jetstream") // the cluster's JetStream store: it outlives the node's disk
	cfgFor := func(dir string) *config.Config { return oneNodeCluster(t, dir, js) }
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	s1 := start(t, cfgFor(filepath.Join(base, "a")), nil)
	op := registry.Actor{Name: "demo-operator", Role: registry.RoleOperator}
	rv := registry.Actor{Name: "demo-reviewer", Role: registry.RoleReviewer}
	ch, err := s1.Registry.RequestChange(op, registry.Change{Op: registry.OpTerminalSuspend, Target: "T0000002", Reason: "carried away"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s1.Registry.Approve(rv, ch.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	// A node of a version without snapshots holds compaction back.
	kv, err := s1.cl.node.LeaseKV(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// ghost(true) is a node of this version: its lease advertises QR requests too,
	// so that the order below is made and paid by requests.
	ghost := func(compacts bool) {
		t.Helper()
		b, _ := json.Marshal(cluster.LeaseValue{Node: 7, Server: "ghost", Incarnation: 3, Started: time.Now(), Refreshed: time.Now(), Compacts: compacts,
			DestroysKeys: compacts, QRRequests: compacts})
		if _, err := kv.Put(ctx, "node.7", b); err != nil {
			t.Fatal(err)
		}
		for {
			seen := false
			for _, h := range s1.cl.currentLease().Holders() {
				seen = seen || (h.Node == 7 && h.Compacts == compacts && h.Alive)
			}
			if seen && s1.cl.qrRequests()() == compacts {
				return
			}
			select {
			case <-ctx.Done():
				t.Fatal("node 1 did not see node 7's lease")
			case <-time.After(10 * time.Millisecond): // polling the lease watcher's view
			}
		}
	}
	ghost(false)
	for _, rep := range s1.cl.compact(ctx, 0, 0) {
		if rep.Compacted || !strings.Contains(rep.Error, "node(s) 7 run a version that does not restore") {
			t.Fatalf("compaction with node 7 of an older version: %+v", rep)
		}
	}
	if n := testutil.ToFloat64(s1.cl.metrics.Compactions.WithLabelValues("registry", "blocked")); n != 1 {
		t.Errorf("switchyard_cluster_compactions_total{store=registry,result=blocked} = %v, want 1", n)
	}
	ghost(true)

	// Three rounds of a commit on each shared store's subject (a key no store
	// reads, so that every store has commits of its own) and a compaction: the
	// third purges the commits below the second's snapshot, the first round's
	// among them.
	if len(s1.cl.followed) != len(sharedStores) {
		t.Fatalf("the node follows %d stores, sharedStores lists %d", len(s1.cl.followed), len(sharedStores))
	}
	lastRound := map[string]cluster.CompactReport{}
	orderAt := time.Now()
	if err := s1.orders.book.Create(ctx, qrorder.Order{ID: "100000000001", TID: "T0000001", Amount: 500, Created: orderAt, Expires: orderAt.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"x", "y", "z"} {
		if v == "y" {
			if o, out, err := s1.orders.book.Pay(ctx, "100000000001", qrorder.Payment{Network: "wechat", TransactionID: "TXR1", Amount: 500}); err != nil || out != qrorder.Taken {
				t.Fatalf("pay the order: %+v %v %v", o, out, err)
			}
		}
		for _, f := range s1.cl.followed {
			l := f.log
			for {
				_, err := l.Append(ctx, statelog.Commit{Writes: []statelog.KV{{Key: []byte("zz-test/" + l.Name()), Value: []byte(v)}}}, f.r.Revision())
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					t.Fatal(err)
				}
				if err := l.CatchUp(ctx, f.r); err != nil { // another commit of the node's came first
					t.Fatal(err)
				}
			}
			if err := l.CatchUp(ctx, f.r); err != nil {
				t.Fatal(err)
			}
		}
		for _, rep := range s1.cl.compact(ctx, 0, 0) {
			if rep.Error != "" || !rep.Compacted {
				t.Fatalf("compaction after %s: %+v", v, rep)
			}
			lastRound[rep.Store] = rep
		}
	}
	for _, st := range s1.cl.storeStates(ctx) {
		if st.Error != "" || st.Snapshot == nil || st.Snapshot.PurgedBelow == 0 {
			t.Fatalf("store %s after three compactions: %+v %+v; want a snapshot and commits purged", st.Store, st, st.Snapshot)
		}
		if n := testutil.ToFloat64(s1.cl.metrics.Compactions.WithLabelValues(st.Store, "compacted")); n != 3 {
			t.Errorf("switchyard_cluster_compactions_total{store=%s,result=compacted} = %v, want 3", st.Store, n)
		}
		rep := lastRound[st.Store]
		if n := testutil.ToFloat64(s1.cl.metrics.StateCommits.WithLabelValues(st.Store)); n != float64(rep.Held-rep.Purged) {
			t.Errorf("switchyard_cluster_state_commits{store=%s} = %v; the last compaction found %d and purged %d", st.Store, n, rep.Held, rep.Purged)
		}
	}
	terminals := len(s1.Registry.Terminals(registry.TerminalFilter{}))
	if err := s1.Drain(); err != nil {
		t.Fatal(err)
	}

	logs := &testswitch.SyncBuffer{}
	s2 := start(t, cfgFor(filepath.Join(base, "b")), logs)
	if tm, ok := s2.Registry.Terminal("T0000002"); !ok || tm.Status != registry.TerminalSuspended {
		t.Fatalf("T0000002 on the restored node: %+v", tm)
	}
	if n := len(s2.Registry.Terminals(registry.TerminalFilter{})); n != terminals {
		t.Fatalf("%d terminals on the restored node, %d before", n, terminals)
	}
	if o, err := s2.orders.book.Get("100000000001"); err != nil || o.State != qrorder.Paid || o.TransactionID != "TXR1" || o.Decided == 0 {
		t.Fatalf("the QR order on the restored node: %+v %v; want paid by TXR1", o, err)
	}
	for _, f := range s2.cl.followed {
		name := f.log.Name()
		st, _ := findShared(name)
		last, err := f.log.LastRevision(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.log.CatchUp(ctx, f.r); err != nil {
			t.Fatal(err)
		}
		// The node goes on committing to its registry (the offline monitor, say):
		// its revision in memory and the one in Badger, under the key sharedStores
		// names, agree once no commit is between them.
		for {
			stored, err := st.revision(s2.db)
			if err != nil {
				t.Fatal(err)
			}
			rev := f.r.Revision()
			if rev >= last && stored == rev {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("store %s on the restored node: revision %d, %d in Badger; the stream's last commit of it %d", name, rev, stored, last)
			case <-time.After(10 * time.Millisecond): // polling the store's revision
			}
		}
		if v := get(t, s2.db, "zz-test/"+name); v != "z" {
			t.Errorf("store %s: its test key is %q on the restored node, want z", name, v)
		}
	}
	if n := strings.Count(logs.String(), "restored its snapshot"); n != len(sharedStores) {
		t.Errorf("%d stores said they restored their snapshot, want %d:\n%s", n, len(sharedStores), logs.String())
	}
	if s2.cl.purgedFollower() != nil {
		t.Fatal(s2.cl.purgedFollower())
	}
}

func get(t *testing.T, db *badger.DB, key string) string {
	t.Helper()
	var v []byte
	err := db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(key))
		if err != nil {
			return err
		}
		v, err = item.ValueCopy(nil)
		return err
	})
	if err != nil {
		return ""
	}
	return string(v)
}
