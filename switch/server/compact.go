package server

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/internal/statelog/kvsync"
	"github.com/switchyard/switchyard/keys"
	"github.com/switchyard/switchyard/risk/state"
	"github.com/switchyard/switchyard/switch/cases"
	"github.com/switchyard/switchyard/switch/cluster"
	"github.com/switchyard/switchyard/switch/merchantrisk"
	"github.com/switchyard/switchyard/switch/notify"
	"github.com/switchyard/switchyard/switch/qrorder"
	"github.com/switchyard/switchyard/switch/registry"
)

// The stores a cluster's nodes share through the STATE stream, and where each keeps
// its revision in Badger: a node restores a store's snapshot (docs/cluster.md,
// "Compacting the STATE stream") before the store opens, so it writes the revision
// as the store reads it. A store that is not listed here cannot be shared
// (clusterNode.storeLog refuses its name).
var sharedStores = []sharedStore{
	{name: "registry", revKey: registry.RevisionKey, decimal: true},
	{name: "keys", revKey: keys.RevisionKey},
	{name: "lists", revKey: state.ListsRevisionKey, entry: state.ListsRestoreEntry},
	{name: "ratings", revKey: merchantrisk.PinsRevisionKey},
	{name: "notices", revKey: notify.RevisionKey},
	{name: "cases", revKey: cases.RevisionKey},
	{name: "qrorders", revKey: qrorder.RevisionKey, resolve: qrorder.Resolve},
}

// sharedStore is one entry of sharedStores.
type sharedStore struct {
	name   string
	revKey string
	// decimal: the revision is stored in decimal (the registry's), else as
	// kvsync.EncodeRevision.
	decimal bool
	// entry is the store's kvsync.Config.Entry (TTLs), nil for none.
	entry func(statelog.KV) *badger.Entry
	// resolve decides the store's intent commits (kvsync.Config.Resolve), for the
	// compaction to fold them as the nodes apply them; nil for a store without.
	resolve statelog.Resolver
}

func findShared(name string) (sharedStore, bool) {
	for _, s := range sharedStores {
		if s.name == name {
			return s, true
		}
	}
	return sharedStore{}, false
}

func (s sharedStore) encode(rev uint64) []byte {
	if s.decimal {
		return []byte(strconv.FormatUint(rev, 10))
	}
	return kvsync.EncodeRevision(rev)
}

// revision reads the store's revision in db (0 for none).
func (s sharedStore) revision(db *badger.DB) (uint64, error) {
	var rev uint64
	err := db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(s.revKey))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if s.decimal {
				rev, err = strconv.ParseUint(string(v), 10, 64)
			} else {
				rev, err = kvsync.DecodeRevision(v)
			}
			return err
		})
	})
	if err != nil {
		return 0, fmt.Errorf("%s: read its revision (%s): %w", s.name, s.revKey, err)
	}
	return rev, nil
}

// restoreStores restores, before the stores open, each shared store whose next
// commits the STATE stream no longer holds (a node down while the stream was
// compacted, or a new node on an empty directory after the stream was compacted)
// from the store's snapshot.
func (c *clusterNode) restoreStores(db *badger.DB) error {
	for _, st := range sharedStores {
		l, err := c.state.Store(st.name)
		if err != nil {
			return err
		}
		local, err := st.revision(db)
		if err != nil {
			return err
		}
		var info *cluster.SnapshotInfo
		if err := c.retry("snapshot of "+st.name, func(ctx context.Context) (err error) {
			info, err = l.NeedsSnapshot(ctx, local)
			return err
		}); err != nil {
			return err
		}
		if info == nil {
			continue
		}
		// Its own deadline, by its size: a large snapshot on a slow link.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute+time.Duration(info.Bytes/(1<<20))*time.Second)
		snap, err := l.ReadSnapshot(ctx, info)
		cancel()
		if err != nil {
			return fmt.Errorf("%s: %w", st.name, err)
		}
		start := time.Now()
		if err := kvsync.Restore(db, snap, []byte(st.revKey), st.encode(info.Revision), st.entry); err != nil {
			return fmt.Errorf("%s: restore snapshot %s: %w", st.name, info.Object, err)
		}
		c.log.Warn().Str("store", st.name).Uint64("from", local).Uint64("to", info.Revision).Int("keys", info.Keys).
			Int("deleted", info.Deleted).Dur("took", time.Since(start)).
			Msg("the stream no longer holds this store's commits after its revision (compacted): restored its snapshot")
	}
	return nil
}

// compactEvery is how often a node looks whether a shared store holds more commits
// than cluster.state_compact_above; each node starts at a random point of the
// period, and of two nodes compacting one store at once one wins.
const compactEvery = 10 * time.Minute

// compactLoop compacts the shared stores that hold more commits than
// cluster.state_compact_above, every compactEvery, until ctx ends.
func (c *clusterNode) compactLoop(ctx context.Context) error {
	if c.cfg.StateCompactAbove < 0 {
		return nil
	}
	for _, st := range sharedStores {
		// At zero from the start, so that the alert on failed compactions
		// (increase() of this series) sees the first one.
		c.metrics.PrepareCompaction(st.name, "failed")
	}
	t := time.NewTimer(compactEvery/2 + rand.N(compactEvery))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		c.compact(ctx, uint64(c.cfg.StateCompactAbove), compactEvery)
		t.Reset(compactEvery)
	}
}

// compact compacts each shared store that holds more than above commits (0: every
// store with a commit since its snapshot) and whose snapshot is at least minAge
// old, logs what it did, and returns it. Nothing is compacted while a node of a
// version that does not restore snapshots holds a lease (compactBlocked).
func (c *clusterNode) compact(ctx context.Context, above uint64, minAge time.Duration) []cluster.CompactReport {
	blocked := c.compactBlocked()
	var out []cluster.CompactReport
	for _, st := range sharedStores {
		rep := cluster.CompactReport{Store: st.name}
		l, err := c.state.Store(st.name)
		if err == nil {
			rep.Held, err = held(ctx, l)
		}
		if err == nil {
			c.metrics.SetStateCommits(st.name, rep.Held)
		}
		tried := err == nil && (above == 0 || rep.Held > above)
		if tried && blocked != nil {
			err = blocked
		} else if tried {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			rep.CompactResult, err = l.Compact(cctx, cluster.CompactOptions{MinAge: minAge, Resolve: st.resolve})
			cancel()
		}
		result := ""
		switch {
		case errors.Is(err, statelog.ErrConflict):
			c.log.Info().Str("store", st.name).Msg("another node compacted this store at the same time")
			rep.Error, result = err.Error(), "conflict"
		case err != nil && err == blocked:
			c.log.Warn().Err(err).Str("store", st.name).Uint64("commits", rep.Held).Msg("a shared store not compacted")
			rep.Error, result = err.Error(), "blocked"
		case err != nil:
			c.log.Error().Err(err).Str("store", st.name).Msg("compacting a shared store failed; the next try is in " + compactEvery.String())
			rep.Error, result = err.Error(), "failed"
		case rep.Compacted:
			result = "compacted"
			c.metrics.SetStateCommits(st.name, rep.Held-min(rep.Held, rep.Purged))
			c.log.Info().Str("store", st.name).Uint64("revision", rep.Snapshot.Revision).Int("keys", rep.Snapshot.Keys).
				Int("deleted", rep.Snapshot.Deleted).Int("bytes", rep.Snapshot.Bytes).Int("commits", rep.Snapshot.Commits).
				Uint64("purged", rep.Purged).Msg("compacted a shared store into a snapshot")
		case rep.Note != "":
			result = "waited"
		}
		if result != "" {
			c.metrics.ObserveCompaction(st.name, result)
		}
		out = append(out, rep)
	}
	return out
}

// mayDestroyKeys is the key store's MayDestroy: nil alone (always), else whether
// every lease this node has seen (its own among them) is of a version that loads a
// key whose oldest versions were destroyed.
func (c *clusterNode) mayDestroyKeys() func() bool {
	if c == nil {
		return nil
	}
	return func() bool {
		l := c.currentLease()
		if l == nil {
			return false // the other nodes' versions are not known yet
		}
		for _, h := range l.Holders() {
			if !h.DestroysKeys {
				return false
			}
		}
		return true
	}
}

// qrRequests is the QR order book's Requests: nil alone (a single switch submits
// nothing), else whether every lease this node has seen (its own among them, and
// those of nodes that stopped since, for as long as this node runs: such a node
// may start again with its old version) is of a version that decides the book's
// requests. A node of an earlier version stops following state.qrorders at the
// first request, and cannot start again while the stream holds one, so until then
// the book commits with a compare-and-set as that version does. Before this node's
// watcher has seen its own lease it cannot tell the others' versions: false.
func (c *clusterNode) qrRequests() func() bool {
	if c == nil {
		return nil
	}
	return func() bool {
		l := c.currentLease()
		if l == nil {
			return false
		}
		self := false
		for _, h := range l.Holders() {
			if !h.QRRequests {
				return false
			}
			self = self || h.Node == c.cfg.Node
		}
		return self
	}
}

// compactBlocked says why the stores must not be compacted now: a node whose lease
// this node has seen runs a version without snapshots, which would replay across
// purged commits without noticing. Nil when every lease seen (this node's among
// them) is of a version that restores snapshots.
func (c *clusterNode) compactBlocked() error {
	l := c.currentLease()
	if l == nil {
		return errors.New("this node holds no lease yet, so it cannot tell the other nodes' versions")
	}
	var old []string
	for _, h := range l.Holders() {
		if !h.Compacts {
			old = append(old, strconv.Itoa(h.Node))
		}
	}
	if len(old) > 0 {
		return fmt.Errorf("node(s) %s run a version that does not restore the STATE stream's snapshots (a node of such a version would replay across purged commits without noticing): upgrade every node first", strings.Join(old, ", "))
	}
	return nil
}

func held(ctx context.Context, l *cluster.StoreLog) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return l.Held(ctx)
}

// compactFunc is the admin API's compaction (nil alone).
func (c *clusterNode) compactFunc() func(context.Context) (any, error) {
	if c == nil {
		return nil
	}
	return func(ctx context.Context) (any, error) { return c.compact(ctx, 0, compactEvery), nil }
}

// storeStates is each shared store's place in the stream, for the status.
func (c *clusterNode) storeStates(ctx context.Context) []cluster.StoreState {
	c.sharedMu.Lock()
	followed := append([]followed(nil), c.followed...)
	c.sharedMu.Unlock()
	var out []cluster.StoreState
	for _, f := range followed {
		st := f.log.State(ctx, f.r)
		has, since, err := f.f.Consumer()
		st.Following = has
		if !has {
			if !since.IsZero() {
				st.NoConsumerSince, st.NoConsumerFor = &since, time.Since(since)
			}
			if err != nil {
				st.FollowerError = err.Error()
			}
		}
		out = append(out, st)
	}
	return out
}

// purgedFollower returns the error of a follower that met commits purged before it
// applied them (nil: none): the node needs a restart to restore the store.
func (c *clusterNode) purgedFollower() error {
	c.sharedMu.Lock()
	defer c.sharedMu.Unlock()
	for _, f := range c.followed {
		if err := f.f.Err(); errors.Is(err, cluster.ErrCommitsPurged) {
			return fmt.Errorf("store %s: %w", f.log.Name(), err)
		}
	}
	return nil
}

// followed is a shared store this node follows.
type followed struct {
	log *cluster.StoreLog
	r   statelog.Replica
	f   *cluster.Follower
}
