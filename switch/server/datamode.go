package server

import (
	"errors"
	"fmt"
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
// Open records the way in the directory (keyDataMode) and refuses a directory
// recorded, or found (by what it holds, for directories written before the record),
// for another way.

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
	markRRNSeq     = "j/seq/rrn"         // the journal's RRN sequence; + "/N" on cluster node N
	markRegistry   = "reg/rev"           // the registry's revision in the cluster's state log
	markClusterLog = "c/journal/applied" // the cluster journal's applier position
)

// checkDataMode refuses a data directory made for another way of running than want,
// and records want in a directory that holds no record yet. dir names the directory
// in errors.
func checkDataMode(db *badger.DB, dir string, want dataMode) error {
	var (
		have     dataMode
		recorded bool
		found    bool // no record, but data: have is inferred from it
	)
	err := db.View(func(txn *badger.Txn) error {
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
		have, found, err = inferDataMode(txn)
		return err
	})
	if err != nil {
		return fmt.Errorf("data directory %s: read the way it runs: %w", dir, err)
	}
	if (recorded || found) && have != want && !(found && have.node == -1 && want.node > 0) {
		return dataModeError(dir, have, want)
	}
	if recorded {
		return nil
	}
	if err := db.Update(func(txn *badger.Txn) error {
		return txn.Set([]byte(keyDataMode), []byte(want.String()))
	}); err != nil {
		return fmt.Errorf("data directory %s: record the way it runs (%s): %w", dir, want, err)
	}
	return db.Sync()
}

// inferDataMode tells from what a directory without keyDataMode holds what it was
// made for: a cluster node (node -1 when its number is not known: it took no
// transaction), a single switch (it numbered a transaction, or has a registry not
// ordered by a cluster), or nothing either would have written (found false: a new
// directory, or one only a tool opened).
func inferDataMode(txn *badger.Txn) (have dataMode, found bool, err error) {
	has := func(prefix string) (string, bool) {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix)})
		defer it.Close()
		it.Rewind()
		if !it.Valid() {
			return "", false
		}
		return string(it.Item().Key()), true
	}
	if k, ok := has(markRRNSeq + "/"); ok {
		if n, err := strconv.Atoi(k[len(markRRNSeq)+1:]); err == nil && n >= 1 && n <= 9 {
			return dataMode{node: n}, true, nil
		}
	}
	for _, k := range []string{markRegistry, markClusterLog} {
		if _, ok := has(k); ok {
			return dataMode{node: -1}, true, nil
		}
	}
	if k, ok := has(markRRNSeq); ok && k == markRRNSeq {
		return dataMode{}, true, nil
	}
	if _, ok := has("reg/"); ok {
		return dataMode{}, true, nil
	}
	return dataMode{}, false, nil
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
