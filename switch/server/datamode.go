package server

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// A data directory is made for one way of running: a single switch, or one node of a
// cluster (by its number). Its stores are kept in step with the cluster's streams only
// when it has been a cluster node from the start, and a node's journal numbers its
// RRNs and follows its own subjects by the node's number. So a directory is not moved
// between the two, nor between node numbers: a single switch's registry, keys and
// journal are not in the cluster's streams (the other nodes would never see them,
// and the node would serve terminals they do not know); a cluster node run alone
// would change its stores without the cluster ever hearing of it; and a node
// renumbered would take RRNs and subjects that are another node's.
//
// Open refuses a directory recorded (keyDataMode), or found (by what it holds, for
// directories written before the record), for another way, and records the way in a
// directory that has no record once it has opened: a first start that fails (a
// wrong node number, say) records nothing.

// keyDataMode is the Badger key of the way the data directory runs: "single", or
// "cluster node N".
const keyDataMode = "sy/mode"

// dataMode is a way of running: node 0 is a single switch, 1 to 9 a cluster node.
type dataMode struct{ node int }

func (m dataMode) String() string {
	if m.node == 0 {
		return "single"
	}
	return "cluster node " + strconv.Itoa(m.node)
}

// parseDataMode reads a recorded mode.
func parseDataMode(v string) (dataMode, error) {
	if v == "single" {
		return dataMode{}, nil
	}
	if n, ok := strings.CutPrefix(v, "cluster node "); ok {
		if i, err := strconv.Atoi(n); err == nil && i >= 1 && i <= 9 {
			return dataMode{node: i}, nil
		}
	}
	return dataMode{}, fmt.Errorf("%s holds %q, want \"single\" or \"cluster node N\"", keyDataMode, v)
}

// The keys that tell what a directory written before keyDataMode was made for.
const (
	markRRNSeq = "j/seq/rrn" // the journal's RRN sequence; + "/N" on cluster node N
)

// clusterMarks are keys only a cluster node writes: the stores' revisions in the
// cluster's state log, the cluster journal's applier position, the journal's KSN
// index (cluster only).
var clusterMarks = []string{"reg/rev", "c/journal/applied", "j/indexksn", "keys/rev", "risk/lists/rev",
	"case/rev", "notify/rev", "rating/rev"}

// checkDataMode refuses a data directory made for another way of running than want.
// It returns whether the directory holds no record of its way yet (recordDataMode
// writes it once the switch has opened). dir names the directory in errors.
func checkDataMode(db *badger.DB, dir string, want dataMode) (unrecorded bool, err error) {
	have, recorded, found, err := readDataMode(db, dir, want)
	if err != nil {
		return false, err
	}
	if (recorded || found) && have != want && !(found && have.node == -1 && want.node > 0) {
		return false, dataModeError(dir, have, want)
	}
	return !recorded, nil
}

// CheckSingleData refuses a data directory that holds a cluster node's data, for a
// tool that reads a stopped single switch's (switchyard cluster import).
func CheckSingleData(db *badger.DB, dir string) error {
	have, recorded, found, err := readDataMode(db, dir, dataMode{})
	if err != nil {
		return err
	}
	if (recorded || found) && have.node != 0 {
		return fmt.Errorf("data directory %s holds a cluster node's data, not a single switch's", dir)
	}
	return nil
}

// readDataMode reads the way the directory runs: recorded (keyDataMode), or else
// found by what it holds (inferDataMode, for want), or neither (a new directory).
func readDataMode(db *badger.DB, dir string, want dataMode) (have dataMode, recorded, found bool, err error) {
	err = db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(keyDataMode))
		if err == nil {
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if have, err = parseDataMode(string(v)); err != nil {
				return err
			}
			recorded = true
			return nil
		}
		if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		have, found, err = inferDataMode(txn, want)
		return err
	})
	if err != nil {
		err = fmt.Errorf("data directory %s: read the way it runs: %w", dir, err)
	}
	return have, recorded, found, err
}

// recordDataMode records in db the way the switch runs it, m.
func recordDataMode(db *badger.DB, dir string, m dataMode) error {
	if err := db.Update(func(txn *badger.Txn) error {
		return txn.Set([]byte(keyDataMode), []byte(m.String()))
	}); err != nil {
		return fmt.Errorf("data directory %s: record the way it runs (%s): %w", dir, m, err)
	}
	return db.Sync()
}

// inferDataMode tells from what a directory without keyDataMode holds what it was
// made for: a cluster node (node -1 when its number is not known: it took no
// transaction), a single switch (it numbered a transaction, or has a registry not
// ordered by a cluster), or nothing either would have written (found false: a new
// directory, or one only a tool opened). A node renumbered before the record holds
// the sequences of several numbers: any of them is taken for want's.
func inferDataMode(txn *badger.Txn, want dataMode) (have dataMode, found bool, err error) {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(markRRNSeq + "/")})
	var nodes []int
	for it.Rewind(); it.Valid(); it.Next() {
		k := string(it.Item().Key())
		if n, err := strconv.Atoi(k[len(markRRNSeq)+1:]); err == nil && n >= 1 && n <= 9 {
			nodes = append(nodes, n)
		}
	}
	it.Close()
	if len(nodes) > 0 {
		if slices.Contains(nodes, want.node) {
			return want, true, nil
		}
		return dataMode{node: nodes[len(nodes)-1]}, true, nil
	}
	has := func(key string) (bool, error) {
		_, err := txn.Get([]byte(key))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return false, nil
		}
		return err == nil, err
	}
	for _, k := range clusterMarks {
		if ok, err := has(k); err != nil || ok {
			return dataMode{node: -1}, ok, err
		}
	}
	if ok, err := has(markRRNSeq); err != nil || ok {
		return dataMode{}, ok, err
	}
	reg := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("reg/"), PrefetchValues: false})
	defer reg.Close()
	reg.Rewind()
	return dataMode{}, reg.Valid(), nil
}

// dataModeError says why a directory made for have is refused for want, and what to do.
func dataModeError(dir string, have, want dataMode) error {
	switch {
	case have.node == -1:
		return fmt.Errorf("data directory %s is a cluster node's, and this configuration has no cluster section: "+
			"start it with its cluster section, or run a single switch on another data directory", dir)
	case have.node == 0:
		return fmt.Errorf("data directory %s holds a single switch's data, and this configuration is %s: "+
			"its journal, registry and keys are not in the cluster's streams, so the other nodes would never see them; "+
			"a node joins a cluster on an empty data directory (docs/cluster.md, \"From a single switch to a cluster\")", dir, want)
	case want.node == 0:
		return fmt.Errorf("data directory %s is %s's, and this configuration has no cluster section: "+
			"run alone, its stores would change without the cluster hearing of it; "+
			"start it with its cluster section, or run a single switch on another data directory", dir, have)
	default:
		return fmt.Errorf("data directory %s is %s's, and this configuration is %s (cluster.node): "+
			"a node's number is stable (its RRNs and journal subjects carry it); "+
			"give this directory to node %d, or start node %d on an empty one", dir, have, want, have.node, want.node)
	}
}

// keyServerName is the Badger key of the name of the JetStream server that a cluster
// node in embedded mode ran with on this directory.
const keyServerName = "sy/server-name"

// checkServerName refuses a cluster node's data directory that ran with another
// embedded JetStream server name: JetStream knows its peers by their names, so a
// node renamed on its data joins as a new server, and the old name's replicas of
// every stream stay offline (an R3 cluster then runs on two copies without saying
// so). It returns whether the directory holds no name yet (recordServerName writes
// it once the switch has opened). name "" (mode external) checks nothing.
func checkServerName(db *badger.DB, dir, name string) (unrecorded bool, err error) {
	if name == "" {
		return false, nil
	}
	var have string
	err = db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(keyServerName))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		have = string(v)
		return err
	})
	switch {
	case err != nil:
		return false, fmt.Errorf("data directory %s: read its JetStream server name: %w", dir, err)
	case have == "":
		return true, nil
	case have != name:
		return false, fmt.Errorf("data directory %s ran with cluster.embedded.server_name %q, and this configuration names the server %q: "+
			"JetStream knows its peers by name, so the renamed server would join as a new one and leave %q's replicas of every stream offline; "+
			"keep server_name %q, or remove %q (switchyard cluster remove-peer --server %s) and start %q on an empty data directory",
			dir, have, name, have, have, have, have, name)
	}
	return false, nil
}

// recordServerName records in db the JetStream server name the node runs with.
func recordServerName(db *badger.DB, dir, name string) error {
	if err := db.Update(func(txn *badger.Txn) error {
		return txn.Set([]byte(keyServerName), []byte(name))
	}); err != nil {
		return fmt.Errorf("data directory %s: record its JetStream server name %q: %w", dir, name, err)
	}
	return db.Sync()
}
