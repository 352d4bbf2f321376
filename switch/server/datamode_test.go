package server

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/cluster"
)

// TestDataMode checks which way of running a data directory is taken for, recorded or
// found by what it holds, and what is refused.
func TestDataMode(t *testing.T) {
	single, node := dataMode{}, func(n int) dataMode { return dataMode{node: n} }
	cases := []struct {
		name    string
		keys    []string // written before the first check (a directory of an older version)
		first   dataMode // the first check's way
		firstOK string   // "" if the first check passes, else a part of its error
		then    dataMode // a second check's way
		thenErr string   // "" if it passes
	}{
		{name: "new single stays single", first: single, then: single},
		{name: "new single refused as a node", first: single, then: node(1), thenErr: "holds a single switch's data, and this configuration is cluster node 1"},
		{name: "new node stays itself", first: node(2), then: node(2)},
		{name: "node refused as another", first: node(2), then: node(3), thenErr: "is cluster node 2's, and this configuration is cluster node 3 (cluster.node)"},
		{name: "node refused alone", first: node(2), then: single, thenErr: "is cluster node 2's, and this configuration has no cluster section"},
		{name: "old single (a transaction)", keys: []string{"j/seq/rrn"}, first: node(1), firstOK: "holds a single switch's data"},
		{name: "old single (a registry)", keys: []string{"reg/m/000000000000001"}, first: node(1), firstOK: "holds a single switch's data"},
		{name: "old single kept single", keys: []string{"j/seq/rrn", "reg/m/000000000000001"}, first: single, then: node(1), thenErr: "single switch's data"},
		{name: "old node by its RRNs", keys: []string{"j/seq/rrn/4", "reg/rev"}, first: node(5), firstOK: "is cluster node 4's"},
		{name: "old node by its RRNs, same number", keys: []string{"j/seq/rrn/4", "reg/rev"}, first: node(4), then: node(5), thenErr: "cluster node 4's"},
		{name: "old node without a transaction takes the number", keys: []string{"reg/rev", "reg/m/000000000000001"}, first: node(5), then: node(6), thenErr: "cluster node 5's"},
		{name: "old node without a transaction refused alone", keys: []string{"c/journal/applied"}, first: single, firstOK: "is a cluster node's, and this configuration has no cluster section"},
		{name: "old node known by its review cases' revision", keys: []string{"case/rev"}, first: single, firstOK: "is a cluster node's"},
		{name: "old node known by its KSN index", keys: []string{"j/indexksn", "keys/k/x"}, first: single, firstOK: "is a cluster node's"},
		{name: "old node renumbered: either number", keys: []string{"j/seq/rrn/1", "j/seq/rrn/2"}, first: node(2), then: node(1), thenErr: "is cluster node 2's"},
		{name: "old node renumbered: no other", keys: []string{"j/seq/rrn/1", "j/seq/rrn/2"}, first: node(3), firstOK: "is cluster node 2's"},
		{name: "only a tool opened it", keys: []string{"j/applied"}, first: node(1), then: single, thenErr: "cluster node 1's"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			db, err := OpenDB(dir, zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if len(c.keys) > 0 {
				if err := db.Update(func(txn *badger.Txn) error {
					for _, k := range c.keys {
						if err := txn.Set([]byte(k), []byte("x")); err != nil {
							return err
						}
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			// check is what Open does: check, and record once the switch opened.
			check := func(m dataMode) error {
				unrecorded, err := checkDataMode(db, dir, m)
				if err == nil && unrecorded {
					err = recordDataMode(db, dir, m)
				}
				return err
			}
			err = check(c.first)
			if !matches(err, c.firstOK) {
				t.Fatalf("first check as %s: %v, want %q", c.first, err, c.firstOK)
			}
			if c.firstOK != "" {
				// Refused: nothing recorded, the same refusal again.
				if err := check(c.first); !matches(err, c.firstOK) {
					t.Fatalf("second refusal: %v", err)
				}
				return
			}
			if err := check(c.then); !matches(err, c.thenErr) {
				t.Fatalf("then as %s: %v, want %q", c.then, err, c.thenErr)
			}
			// The record holds whatever the data says: the first way is still taken.
			if err := check(c.first); err != nil {
				t.Fatalf("the first way again: %v", err)
			}
		})
	}
}

func matches(err error, want string) bool {
	if want == "" {
		return err == nil
	}
	return err != nil && strings.Contains(err.Error(), want)
}

// TestSingleDataNotANode starts a single switch, journals a purchase, stops it, and
// opens its data directory as a cluster node: refused before anything of the cluster
// starts, and the single switch starts on it again with its record.
func TestSingleDataNotANode(t *testing.T) {
	dir := t.TempDir()
	first := purchaseAndStop(t, dir)
	cfg := demoConfig(t, dir)
	cfg.Cluster = &cluster.Config{Mode: "embedded", Node: 1, Replicas: 1}
	if _, err := Open(cfg, zerolog.Nop(), testDemoIssuer); err == nil || !strings.Contains(err.Error(), "holds a single switch's data") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("a single switch's data opened as a cluster node: %v", err)
	}
	s2 := start(t, demoConfig(t, dir), nil)
	if rec, err := s2.Journal.Get(first.RRN); err != nil || rec.RC != "00" {
		t.Fatalf("the single switch's record after the refusal: %+v %v", rec, err)
	}
	if err := s2.Drain(); err != nil {
		t.Fatal(err)
	}

	// A directory of a version before the record: what the single switch wrote
	// tells it apart.
	db, err := OpenDB(dir, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Delete([]byte(keyDataMode)) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(cfg, zerolog.Nop(), testDemoIssuer); err == nil || !strings.Contains(err.Error(), "holds a single switch's data") {
		t.Fatalf("a single switch's data without its record opened as a cluster node: %v", err)
	}
}

// TestDataModeRecordedOnceOpen: a first start that fails (here its cluster section is
// wrong) records nothing, so that the corrected configuration starts on the directory.
func TestDataModeRecordedOnceOpen(t *testing.T) {
	dir := t.TempDir()
	cfg := demoConfig(t, dir)
	cfg.Cluster = &cluster.Config{Mode: "nonsense", Node: 2, Replicas: 1}
	if _, err := Open(cfg, zerolog.Nop(), testDemoIssuer); err == nil || strings.Contains(err.Error(), "data directory") {
		t.Fatalf("the failing first start: %v", err)
	}
	s := start(t, demoConfig(t, dir), nil) // the corrected configuration: a single switch
	if err := s.Drain(); err != nil {
		t.Fatal(err)
	}
	cfg.Cluster.Node = 3
	if _, err := Open(cfg, zerolog.Nop(), testDemoIssuer); err == nil || !strings.Contains(err.Error(), "holds a single switch's data") {
		t.Fatalf("recorded single, opened as node 3: %v", err)
	}
}

// TestServerNameKept: a cluster node's data directory keeps the JetStream server name
// it first ran with; started with another name it is refused before anything of the
// cluster starts (a trial renamed node 3's server on its data: it served, ready, while
// every stream's replica on "n3" stayed offline), and the old name starts again.
func TestServerNameKept(t *testing.T) {
	dir := t.TempDir()
	js := filepath.Join(t.TempDir(), "jetstream")
	s := start(t, oneNodeCluster(t, dir, js), nil)
	if err := s.Drain(); err != nil {
		t.Fatal(err)
	}
	renamed := oneNodeCluster(t, dir, js)
	renamed.Cluster.Embedded.ServerName = "n7"
	_, err := Open(renamed, zerolog.Nop(), testDemoIssuer)
	if err == nil || !strings.Contains(err.Error(), `ran with cluster.embedded.server_name "n1"`) || !strings.Contains(err.Error(), "remove-peer --server n1") {
		t.Fatalf("node 1's data opened with server name n7: %v", err)
	}
	s2 := start(t, oneNodeCluster(t, dir, js), nil)
	if err := s2.Drain(); err != nil {
		t.Fatal(err)
	}
}

// TestClusterStatusReadyIsReadyz: `cluster status` says not ready exactly when
// /readyz does, with its reason. A trial saw it say ready, exit 0, for 8 s while
// /readyz answered 503 (the node's lease not refreshed).
func TestClusterStatusReadyIsReadyz(t *testing.T) {
	s := start(t, oneNodeCluster(t, t.TempDir(), filepath.Join(t.TempDir(), "jetstream")), nil)
	status := func() string {
		t.Helper()
		r, err := s.clusterStatus()(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return r.(*cluster.Report).NotReady
	}
	if nr := status(); nr != "" || s.readiness() != nil {
		t.Fatalf("a started node: status says %q, /readyz %v", nr, s.readiness())
	}
	s.SetReadyCheck(func() error { return errors.New("node 1's lease not refreshed for 12s") })
	if nr := status(); !strings.Contains(nr, "lease not refreshed") {
		t.Fatalf("status says %q while /readyz says %v", nr, s.readiness())
	}
	if err := s.Drain(); err != nil {
		t.Fatal(err)
	}
	if nr := status(); !strings.Contains(nr, "draining") {
		t.Fatalf("status of a drained node says %q", nr)
	}
}
