// Package statelog is the seam between a store kept in Badger (the registry, the key
// store, the rule lists, the review cases) and a cluster. A store shared by the nodes
// of a cluster hands each of its commits to a Log before it applies the commit itself;
// the Log orders the commits of all nodes with a compare-and-set on the store's
// revision, so that two operators on two nodes never lose each other's update. The
// commits of the other nodes reach the store through its Replica side, in order. The
// single-node switch has no Log: its stores commit to Badger alone. A store whose
// commits are independent of each other but for the keys they touch (the QR orders)
// submits requests instead (Submitter, Commit.Intent), which every node decides in
// the Log's order as it applies them, and which therefore never conflict.
//
// The package holds only the contract and an in-memory Log for tests (Memory); the
// cluster's Log is on NATS JetStream (package switch/cluster), so that no store
// imports NATS.
package statelog

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// KV is one key written by a commit; a nil Value deletes the key.
type KV struct {
	Key   []byte `json:"k"`
	Value []byte `json:"v,omitempty"`
}

// Commit is one atomic write of a store: the keys it sets and deletes, in order.
type Commit struct {
	Writes []KV `json:"w"`
	// Intent marks a commit of requests rather than values (a Submitter's): each
	// write names a key and the store's request about it, which every node decides
	// as it applies the commit, from the store's state at that point of the order
	// (the store's Resolver). Applied or folded as plain writes it would be wrong:
	// the cluster's encoding of such a commit is one a node of an earlier version
	// refuses to read.
	Intent bool `json:"i,omitempty"`
}

// Resolver decides an Intent commit ordered at revision rev: it returns the plain
// writes the commit makes, reading the store's keys as they are at that point of
// the order through get (nil, nil for a key that is not set). It must depend on
// nothing else (no clock, no node), so that every node, and a compaction folding
// the commits into a snapshot, reaches the same state.
type Resolver func(rev uint64, get func(key []byte) ([]byte, error), c Commit) (Commit, error)

// ErrConflict is wrapped by Append when another node's commit to the store was
// ordered after the revision the caller gave: the caller's view is stale. The store
// catches up (its Replica side is given the other commit) and the operation is tried
// again, or refused with a clear error.
var ErrConflict = errors.New("another node changed the store first")

// ErrNewerCommit is wrapped when a store's commit cannot be read or decided by
// this version: an encoding it does not know, an intent commit on a store that
// decides none, a request it does not know (a newer version's, or a corrupt
// one). The node does not skip it (its copy would fork from the others'): it stops
// applying the store until it is upgraded (switch/cluster re-exports it).
var ErrNewerCommit = errors.New("a commit this version cannot read (a newer version's?)")

// ErrUnavailable is wrapped by Append when the commit could not be ordered (no
// quorum, no connection). Its outcome is unknown, not failed: the commit may still be
// ordered later, and then reaches the store through its Replica side like another
// node's. The store must not apply it itself.
var ErrUnavailable = errors.New("cluster unavailable: the change's outcome is unknown")

// ErrBusy is wrapped by a Replica's ApplyRemote when its store refused the write for
// a moment and the same write should succeed if tried again shortly: Badger refuses
// every write while a DropPrefix flushes its memtables (ErrBlockedWrites), which a
// start's clean-up does once. The follower tries the commit again at once, quietly,
// for a while before it reports the fault like any other.
var ErrBusy = errors.New("the store refused writes for a moment")

// Log orders the commits of one store across the nodes.
type Log interface {
	// Append orders c after revision after (the last revision this node's store
	// applied, 0 for none) and returns c's revision, which is higher. The store
	// applies c itself only when Append succeeds, and records the revision.
	Append(ctx context.Context, c Commit, after uint64) (uint64, error)
}

// Submitter is a Log that also orders commits without a compare-and-set: a store
// whose commits are decided as they are applied (Intent commits, see Resolver)
// needs no view of the store to be current, so its commits never conflict. The
// submitting node learns the outcome from its own copy once it has applied the
// commit (Await).
type Submitter interface {
	Log
	// Submit orders c (an Intent commit) after whatever the Log holds and returns
	// its revision. seen is the last revision the submitting node's store applied:
	// a lower bound of the commit's predecessor, by which a node that meets the
	// commit without having applied seen knows that commits are missing. Errors as
	// Append's, but never ErrConflict.
	Submit(ctx context.Context, c Commit, seen uint64) (uint64, error)
	// Await waits until r has applied revision rev (or ctx ends).
	Await(ctx context.Context, r Replica, rev uint64) error
}

// Replica is the side of a store that applies the commits of other nodes.
type Replica interface {
	// ApplyRemote applies c, ordered at revision rev, unless rev is not above the
	// last revision the store applied (its own commits come back this way too).
	ApplyRemote(rev uint64, c Commit) error
	// Revision returns the last revision the store applied.
	Revision() uint64
}

// Memory is an in-memory Log shared by several replicas of one store, for tests: it
// orders commits like the cluster's Log (a conflict when after is not the last
// revision) and hands each appended commit to every replica registered with Follow,
// in order, synchronously within Deliver.
type Memory struct {
	mu       sync.Mutex
	commits  []Commit
	replicas []Replica
	// Fail, when set, makes Append fail with its result (for tests of ErrUnavailable).
	Fail error
}

// Append implements Log.
func (m *Memory) Append(_ context.Context, c Commit, after uint64) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Fail != nil {
		return 0, m.Fail
	}
	if last := uint64(len(m.commits)); after != last {
		return 0, fmt.Errorf("statelog: append after revision %d, the store is at %d: %w", after, last, ErrConflict)
	}
	m.commits = append(m.commits, c)
	return uint64(len(m.commits)), nil
}

// Submit implements Submitter: c is ordered after the last commit, whatever it is.
func (m *Memory) Submit(_ context.Context, c Commit, _ uint64) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Fail != nil {
		return 0, m.Fail
	}
	m.commits = append(m.commits, c)
	return uint64(len(m.commits)), nil
}

// Await implements Submitter: it gives r alone the commits above its revision
// (DeliverTo) and fails when rev is not among them.
func (m *Memory) Await(_ context.Context, r Replica, rev uint64) error {
	if err := m.DeliverTo(r); err != nil {
		return err
	}
	if got := r.Revision(); got < rev {
		return fmt.Errorf("statelog: revision %d awaited, the log holds %d", rev, got)
	}
	return nil
}

// Follow registers r to be given the commits appended from now on by Deliver.
func (m *Memory) Follow(r Replica) {
	m.mu.Lock()
	m.replicas = append(m.replicas, r)
	m.mu.Unlock()
}

// Unfollow stops giving commits to r (a replica closed by a test's restart).
func (m *Memory) Unfollow(r Replica) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, x := range m.replicas {
		if x == r {
			m.replicas = append(m.replicas[:i], m.replicas[i+1:]...)
			return
		}
	}
}

// Deliver gives every registered replica the commits above its revision, in order,
// and returns the first error.
func (m *Memory) Deliver() error {
	m.mu.Lock()
	commits := append([]Commit(nil), m.commits...)
	replicas := append([]Replica(nil), m.replicas...)
	m.mu.Unlock()
	for _, r := range replicas {
		if err := deliver(r, commits); err != nil {
			return err
		}
	}
	return nil
}

// DeliverTo gives r alone the commits above its revision, in order (a node's
// follower catching up while the others' lag).
func (m *Memory) DeliverTo(r Replica) error {
	m.mu.Lock()
	commits := append([]Commit(nil), m.commits...)
	m.mu.Unlock()
	return deliver(r, commits)
}

func deliver(r Replica, commits []Commit) error {
	for rev := r.Revision() + 1; rev <= uint64(len(commits)); rev++ {
		if err := r.ApplyRemote(rev, commits[rev-1]); err != nil {
			return fmt.Errorf("statelog: apply revision %d: %w", rev, err)
		}
	}
	return nil
}
