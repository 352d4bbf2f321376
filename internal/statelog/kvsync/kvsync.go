// Package kvsync is the part a Badger store shares with the other stores that keep
// in step across a cluster through a statelog.Log (the key store, the rule lists,
// the review cases): it turns an operation into a statelog.Commit, orders it through
// the Log after the store's revision, applies it to Badger with the revision in the
// same transaction, catches up and re-runs the operation once on a conflict, and
// applies the other nodes' commits (statelog.Replica).
//
// Without a Log (the single-node switch) a commit is written to Badger alone, as the
// stores did before: no revision is stored and nothing waits.
package kvsync

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/internal/statelog"
)

// DefaultCatchUpTimeout bounds how long a store waits, after a conflict, for its
// replica side to apply the other nodes' newer commits before it re-runs the
// operation.
const DefaultCatchUpTimeout = 5 * time.Second

// Config describes the store a Sync serves.
type Config struct {
	// Name is the store's name in errors ("key store").
	Name string
	// RevKey is the Badger key of the store's revision, under its own prefix.
	RevKey string
	// Log orders the commits; nil means a single node.
	Log statelog.Log
	// Conflict is the store's error for an operation that conflicted twice (wrapped
	// together with statelog.ErrConflict).
	Conflict error
	// CatchUp, when set, waits after a conflict until the store (r) has applied
	// every commit the Log held (the cluster's StoreLog.CatchUp). Whether or not it
	// is set, the store then waits until its revision has moved past the one its
	// refused commit was based on.
	CatchUp func(ctx context.Context, r statelog.Replica) error
	// CatchUpTimeout bounds the wait after a conflict (default DefaultCatchUpTimeout).
	CatchUpTimeout time.Duration
	// Sync makes every commit durable with DB.Sync before it returns.
	Sync bool
	// Entry, when set, gives the Badger entry of a key set by a commit (a TTL, say);
	// nil from it deletes the key. Nil Entry sets the value as it is.
	Entry func(kv statelog.KV) *badger.Entry
	// Applied, when set, is called after another node's commit is written to Badger,
	// with the store's writer lock held: it updates the store's memory. It is given
	// the writes the commit made (an Intent commit's, as Resolve decided them).
	Applied func(c statelog.Commit)
	// Resolve decides the Intent commits the Log orders (statelog.Submitter): the
	// writes it returns are applied in the transaction it read the store in, with
	// the commit's revision. Nil: the store has no Intent commits, and one is
	// refused (not applied as plain writes).
	Resolve statelog.Resolver
	// Prepare, when set, is called before another node's commit is written (with
	// the writer lock held, Badger as it was): the function it returns is called
	// after the write, before Applied (the review cases count the cases a commit
	// opens or decides).
	Prepare func(c statelog.Commit) func()
}

// Sync runs a store's writes. It holds the store's writer lock: callers build
// their commit inside Do's op, under it.
type Sync struct {
	db  *badger.DB
	cfg Config

	mu  sync.Mutex // the store's writer lock
	rev atomic.Uint64

	waitMu  sync.Mutex
	changed chan struct{} // closed and replaced when rev advances
}

// New opens the sync of a store in db and reads its revision.
func New(db *badger.DB, cfg Config) (*Sync, error) {
	if cfg.CatchUpTimeout <= 0 {
		cfg.CatchUpTimeout = DefaultCatchUpTimeout
	}
	s := &Sync{db: db, cfg: cfg, changed: make(chan struct{})}
	if cfg.Log == nil || db == nil {
		return s, nil
	}
	err := db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(cfg.RevKey))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			rev, err := DecodeRevision(v)
			if err != nil {
				return fmt.Errorf("%s: %w", cfg.RevKey, err)
			}
			s.rev.Store(rev)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("%s: read its revision: %w", cfg.Name, err)
	}
	return s, nil
}

// Lock takes the store's writer lock (for writes that are not shared, and reads
// that must not interleave with a commit).
func (s *Sync) Lock() { s.mu.Lock() }

// Unlock releases the store's writer lock.
func (s *Sync) Unlock() { s.mu.Unlock() }

// Shared reports whether the store has a Log.
func (s *Sync) Shared() bool { return s.cfg.Log != nil }

// Op builds one commit under the writer lock, reading the store's state as it is.
// It returns the commit and a function that updates the store's memory once the
// commit is applied (nil for none). An empty commit is not written.
type Op func() (statelog.Commit, func(), error)

// Via writes a commit's Badger transaction: write is to be run inside it. Nil
// means s's DB.Update. (The review cases write theirs inside the registry's
// operation-log transaction.)
type Via func(write func(txn *badger.Txn) error) error

// Do runs op and writes its commit: with a Log, ordered after the store's revision
// first. On a conflict it waits (bounded) for the newer commits and runs op again
// from the top, once; a second conflict returns an error wrapping cfg.Conflict and
// statelog.ErrConflict. When the Log is unavailable nothing is applied and the error
// wraps statelog.ErrUnavailable (the commit may still be ordered, and then comes
// back through ApplyRemote).
func (s *Sync) Do(ctx context.Context, op Op, via Via) error {
	for attempt := 0; ; attempt++ {
		s.mu.Lock()
		c, done, err := op()
		if err != nil {
			s.mu.Unlock()
			return err
		}
		if len(c.Writes) == 0 {
			s.mu.Unlock()
			if done != nil {
				done()
			}
			return nil
		}
		if s.cfg.Log == nil {
			_, err = s.write(c, 0, via)
		} else {
			before := s.rev.Load()
			var rev uint64
			rev, err = s.cfg.Log.Append(ctx, c, before)
			switch {
			case errors.Is(err, statelog.ErrConflict):
				s.mu.Unlock()
				if attempt > 0 {
					return fmt.Errorf("%w: %s: %w", s.cfg.Conflict, s.cfg.Name, err)
				}
				if werr := s.waitAbove(ctx, before); werr != nil {
					return fmt.Errorf("%w: %s: %w (%w)", s.cfg.Conflict, s.cfg.Name, err, werr)
				}
				continue
			case err != nil:
				s.mu.Unlock()
				return fmt.Errorf("%s: the change was not applied: %w", s.cfg.Name, err)
			}
			_, err = s.write(c, rev, via)
		}
		if err == nil && done != nil {
			done()
		}
		s.mu.Unlock()
		return err
	}
}

// write applies c to Badger, with the revision when rev > 0, and returns the
// writes it made (an Intent commit's as Resolve decided them). Caller holds s.mu.
func (s *Sync) write(c statelog.Commit, rev uint64, via Via) (statelog.Commit, error) {
	fn := func(txn *badger.Txn) error {
		var err error
		if c, err = s.resolve(txn, c, rev); err != nil {
			return err
		}
		return s.apply(txn, c, rev)
	}
	var err error
	if via != nil {
		err = via(fn)
	} else {
		err = s.db.Update(fn)
	}
	if err == nil && s.cfg.Sync {
		if err = s.db.Sync(); err != nil {
			err = fmt.Errorf("sync: %w", err)
		}
	}
	if err != nil {
		return c, err
	}
	if rev > 0 {
		s.advance(rev)
	}
	return c, nil
}

// resolve returns the plain writes of c: c itself, or an Intent commit as
// cfg.Resolve decides it on the store as txn reads it.
func (s *Sync) resolve(txn *badger.Txn, c statelog.Commit, rev uint64) (statelog.Commit, error) {
	if !c.Intent {
		return c, nil
	}
	if s.cfg.Resolve == nil {
		return c, fmt.Errorf("an intent commit of %d requests, and the store decides none: %w", len(c.Writes), statelog.ErrNewerCommit)
	}
	get := func(key []byte) ([]byte, error) {
		item, err := txn.Get(key)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return item.ValueCopy(nil)
	}
	out, err := s.cfg.Resolve(rev, get, c)
	if err != nil {
		return c, fmt.Errorf("decide the intent commit: %w", err)
	}
	if out.Intent {
		return c, errors.New("decide the intent commit: the decision is an intent commit again")
	}
	return out, nil
}

func (s *Sync) apply(txn *badger.Txn, c statelog.Commit, rev uint64) error {
	for _, kv := range c.Writes {
		var err error
		if e := entryOf(kv, s.cfg.Entry); e != nil {
			err = txn.SetEntry(e)
		} else {
			err = txn.Delete(kv.Key)
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", kv.Key, err)
		}
	}
	if rev > 0 {
		return txn.Set([]byte(s.cfg.RevKey), EncodeRevision(rev))
	}
	return nil
}

func (s *Sync) advance(rev uint64) {
	s.rev.Store(rev)
	s.waitMu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.waitMu.Unlock()
}

// waitAbove waits until the store has caught up with the Log (cfg.CatchUp) and its
// revision is above rev, at most cfg.CatchUpTimeout.
func (s *Sync) waitAbove(ctx context.Context, rev uint64) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CatchUpTimeout)
	defer cancel()
	if s.cfg.CatchUp != nil {
		if err := s.cfg.CatchUp(ctx, s); err != nil {
			return fmt.Errorf("this node did not catch up: %w", err)
		}
	}
	for {
		s.waitMu.Lock()
		ch := s.changed
		s.waitMu.Unlock()
		if s.rev.Load() > rev {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("this node did not receive the newer change within %s: %w", s.cfg.CatchUpTimeout, ctx.Err())
		}
	}
}

// ApplyRemote implements statelog.Replica: it writes c and the revision to Badger
// in one transaction and then updates the store's memory (cfg.Applied).
func (s *Sync) ApplyRemote(rev uint64, c statelog.Commit) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rev <= s.rev.Load() {
		return nil
	}
	var after func()
	if s.cfg.Prepare != nil {
		after = s.cfg.Prepare(c)
	}
	made, err := s.write(c, rev, nil)
	if err != nil {
		return fmt.Errorf("%s: apply revision %d: %w", s.cfg.Name, rev, err)
	}
	if after != nil {
		after()
	}
	if s.cfg.Applied != nil {
		s.cfg.Applied(made)
	}
	return nil
}

// Revision implements statelog.Replica.
func (s *Sync) Revision() uint64 { return s.rev.Load() }

// Commit collects the writes of one commit, in order.
type Commit struct{ statelog.Commit }

// Set records key = value. An empty value is stored as such here, but a Log that
// encodes commits as JSON (statelog.KV's omitempty) delivers it to the other nodes
// as a deletion: the stores never write empty values.
func (c *Commit) Set(key, value []byte) {
	if value == nil {
		value = []byte{}
	}
	c.Writes = append(c.Writes, statelog.KV{Key: key, Value: value})
}

// Delete records the deletion of key.
func (c *Commit) Delete(key []byte) { c.Writes = append(c.Writes, statelog.KV{Key: key}) }

// entryOf is the Badger entry a commit's write kv sets (through entry, a store's
// Config.Entry, when not nil), or nil when it deletes its key.
func entryOf(kv statelog.KV, entry func(statelog.KV) *badger.Entry) *badger.Entry {
	switch {
	case kv.Value == nil:
		return nil
	case entry != nil:
		return entry(kv)
	default:
		return badger.NewEntry(kv.Key, kv.Value)
	}
}

// EncodeRevision is how a Sync stores its revision under Config.RevKey.
func EncodeRevision(rev uint64) []byte { return binary.BigEndian.AppendUint64(nil, rev) }

// DecodeRevision reads a revision EncodeRevision wrote.
func DecodeRevision(v []byte) (uint64, error) {
	if len(v) != 8 {
		return 0, fmt.Errorf("revision is %d bytes, want 8", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// Restore writes a snapshot of a shared store to db before the store opens (the
// store reads its memory from Badger as it opens): every key snap sets, every key
// it deletes, and then, last and on its own, revKey = revValue, the store's
// revision in the store's own encoding. A snapshot may be larger than one Badger
// transaction, so the keys go in batches: a crash before the revision is written
// leaves the old one, and the next start restores again (the writes are
// idempotent). Keys snap does not name (this node's own, never shared) are left
// as they are. entry, when not nil, is the store's Config.Entry: it gives the
// Badger entry of a key set (a TTL), nil to delete it instead. The writes are
// synced before Restore returns.
func Restore(db *badger.DB, snap statelog.Commit, revKey, revValue []byte, entry func(statelog.KV) *badger.Entry) error {
	wb := db.NewWriteBatch()
	defer wb.Cancel()
	for _, kv := range snap.Writes {
		var err error
		if e := entryOf(kv, entry); e != nil {
			err = wb.SetEntry(e)
		} else {
			err = wb.Delete(kv.Key)
		}
		if err != nil {
			return fmt.Errorf("restore: write %s: %w", kv.Key, err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("restore: write %d keys: %w", len(snap.Writes), err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set(revKey, revValue) }); err != nil {
		return fmt.Errorf("restore: write %s: %w", revKey, err)
	}
	if err := db.Sync(); err != nil {
		return fmt.Errorf("restore: sync: %w", err)
	}
	return nil
}

// rewriteAttempts bounds the tries of one chunk of Rewrite that met other nodes'
// commits (each Do already catches up and runs again once).
const rewriteAttempts = 5

// Rewrite goes through the store's keys under prefix, chunk keys at a time, and
// writes the values fn changes, each chunk in one commit through Do (ordered by
// the Log in a cluster, so that it is safe on every node at once: a chunk that
// meets another node's commit reads the keys again). fn returns the new value of
// key (nil: unchanged) and a count it adds up (the card numbers masked); a chunk
// run again counts again from zero. applied, when set, is given each commit
// written, to update the store's memory (as Config.Applied is for the other
// nodes' commits), with the writer lock held. Rewrite returns how many keys it
// rewrote and the sum of fn's counts for them.
func (s *Sync) Rewrite(ctx context.Context, prefix []byte, chunk int, fn func(key, val []byte) ([]byte, int, error), applied func(statelog.Commit)) (keys, count int, err error) {
	start := prefix
	for start != nil {
		var next []byte
		var k, n int
		op := func() (statelog.Commit, func(), error) {
			next, k, n = nil, 0, 0
			var c Commit
			err := s.db.View(func(txn *badger.Txn) error {
				it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 100})
				defer it.Close()
				i := 0
				for it.Seek(start); it.Valid(); it.Next() {
					if i == chunk {
						next = it.Item().KeyCopy(nil)
						return nil
					}
					i++
					v, err := it.Item().ValueCopy(nil)
					if err != nil {
						return fmt.Errorf("read %s: %w", it.Item().Key(), err)
					}
					nv, cnt, err := fn(it.Item().Key(), v)
					if err != nil {
						return fmt.Errorf("%s: %w", it.Item().Key(), err)
					}
					if nv != nil {
						c.Set(it.Item().KeyCopy(nil), nv)
						k, n = k+1, n+cnt
					}
				}
				return nil
			})
			var done func()
			if applied != nil && len(c.Writes) > 0 {
				done = func() { applied(c.Commit) }
			}
			return c.Commit, done, err
		}
		for range rewriteAttempts {
			if err = s.Do(ctx, op, nil); !errors.Is(err, statelog.ErrConflict) {
				break
			}
		}
		if err != nil {
			return keys, count, fmt.Errorf("%s: rewrite the keys under %s: %w", s.cfg.Name, prefix, err)
		}
		keys, count, start = keys+k, count+n, next
	}
	return keys, count, nil
}
