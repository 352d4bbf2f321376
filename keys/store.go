// Package keys is the switch's key store: every key version is kept in Badger as a
// TR-31 version D key block under the local master key (LMK, AES-256) with its
// metadata (ID, type, purpose, owner, version, KCV, dates, status), together with
// the per-device DUKPT transaction counters and a hash-chained, append-only audit log
// of every key event. Store implements hsm.KeyStore; the software HSM unwraps keys.
//
// It also loads the LMK (from a file that only its owner can read, or from an
// environment variable), loads the demo fleet's public test keys in demo mode and
// refuses them otherwise, and defines the requests and answers of the
// key-management admin API (served by switch/api).
//
// Everything is stored under the Badger key prefix "keys/".
package keys

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/dukpt"
	"github.com/switchyard/switchyard/internal/carddata"
	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/internal/statelog/kvsync"
)

// Badger keys, all under "keys/".
const (
	prefix       = "keys/"
	recPrefix    = prefix + "rec/"       // keys/rec/<id>/<version %010d> -> JSON hsm.KeyRecord
	dukptPrefix  = prefix + "dukpt/"     // keys/dukpt/<device> -> uint32 big endian
	auditPrefix  = prefix + "audit/e/"   // keys/audit/e/<seq %016d> -> JSON AuditEntry
	auditHeadKey = prefix + "audit/head" // JSON {seq, hash} of the last entry
	lmkKCVKey    = prefix + "meta/lmk-kcv"
	revKey       = prefix + "rev" // the statelog revision last applied (cluster only)
	// RevisionKey is revKey for a restore of the key store's snapshot before it
	// opens (its value: kvsync.EncodeRevision).
	RevisionKey = revKey
)

// ErrConflict is returned (wrapping statelog.ErrConflict) when a change to the key
// store conflicted twice with changes made on other nodes of the cluster.
var ErrConflict = errors.New("the key store changed on another node; retry")

// reservedIDs are path words of the admin API that cannot be key IDs.
var reservedIDs = map[string]bool{"audit": true, "generate": true, "form": true, "import": true, CardHashKeyLabel: true}

// Options configure a Store.
type Options struct {
	// Demo allows the public demo test keys (and the demo LMK). Outside demo mode the
	// store refuses to open when it holds one and refuses to store one.
	Demo bool
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Logger receives key events (never key bytes); the zero value logs nothing.
	// The caller tags it (component=keys).
	Logger zerolog.Logger
	// Log, when set, shares the store with the other nodes of a cluster: every
	// change (key records, the LMK binding, audit entries: LMK key blocks and
	// metadata, never a clear key) is ordered through it before it is applied, and
	// the other nodes' changes arrive through the Store's statelog.Replica methods.
	// Nil is a single node. DUKPT counters stay local.
	Log statelog.Log
	// CatchUp, when set with Log, waits after a conflict until the store has
	// applied every commit the Log held (the cluster's StoreLog.CatchUp).
	CatchUp func(ctx context.Context, r statelog.Replica) error
	// CatchUpTimeout bounds the wait after a conflict (default
	// kvsync.DefaultCatchUpTimeout, 5 s).
	CatchUpTimeout time.Duration
	// MayDestroy, when set, says whether working-key versions past their grace may
	// be destroyed now (see prunable); nil: always. A cluster destroys them only
	// once every node runs a version that loads a key whose oldest versions are
	// gone (an older one refuses to open such a store).
	MayDestroy func() bool
}

// Store is the Badger key store. It keeps all key records in memory too, so that
// the hot path's lookups (Key, BDKForKSN) touch no disk and do not allocate. It is
// safe for concurrent use; it assumes it is the only writer of "keys/" in the DB.
type Store struct {
	db   *badger.DB
	demo bool
	now  func() time.Time
	log  zerolog.Logger

	mu   sync.RWMutex
	recs map[string][]hsm.KeyRecord // by ID, versions first..n in order (see at)
	bdks map[string]string          // KSN prefix (upper-case hex) -> BDK ID

	sync       *kvsync.Sync // its lock serialises record and audit writes (one chain head)
	mayDestroy func() bool
	// onDestroy, set by OnDestroy, is told of each version destroyed here or by
	// another node, after the store has dropped it.
	onDestroy atomic.Pointer[func(hsm.KeyRef)]
	dukptMu   sync.Mutex // serialises DUKPT counter updates
	// dukptUnsynced: RaiseDUKPTCounter raised a counter since the last SyncDUKPT.
	dukptUnsynced atomic.Bool
}

var (
	_ hsm.KeyStore     = (*Store)(nil)
	_ statelog.Replica = (*Store)(nil)
)

// NewStore opens the key store in db (opened by the caller, shared with other
// subsystems) and loads its records. Outside demo mode it fails if the store holds
// a public demo key.
func NewStore(db *badger.DB, opts Options) (*Store, error) {
	if db == nil {
		return nil, errors.New("key store: nil Badger DB")
	}
	s := &Store{db: db, demo: opts.Demo, now: opts.Now, mayDestroy: opts.MayDestroy, recs: map[string][]hsm.KeyRecord{}, bdks: map[string]string{}}
	if s.now == nil {
		s.now = time.Now
	}
	s.log = opts.Logger
	var err error
	s.sync, err = kvsync.New(db, kvsync.Config{Name: "key store", RevKey: revKey, Log: opts.Log, Conflict: ErrConflict,
		CatchUp: opts.CatchUp, CatchUpTimeout: opts.CatchUpTimeout, Sync: true, Applied: s.applied})
	if err != nil {
		return nil, err
	}
	err = db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(recPrefix), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var r hsm.KeyRecord
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &r) }); err != nil {
				return fmt.Errorf("key record %s: %w", it.Item().Key(), err)
			}
			s.recs[r.ID] = append(s.recs[r.ID], r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("key store: load: %w", err)
	}
	for id, vs := range s.recs {
		slices.SortFunc(vs, func(a, b hsm.KeyRecord) int { return a.Version - b.Version })
		for i, r := range vs {
			if r.Version != vs[0].Version+i {
				return nil, fmt.Errorf("key store: key %s: versions are not %d..%d without gaps (found v%d at position %d)", id, vs[0].Version, vs[0].Version+len(vs)-1, r.Version, i+1)
			}
			if !s.demo {
				if name, ok := DemoKeyByKCV(r.KCV); ok && r.Status != hsm.StatusRevoked {
					return nil, fmt.Errorf("key store: %w: %s holds KCV %s of the public demo key %s; refusing to open outside demo mode (revoke it or use a data directory of its own for demo mode)", hsm.ErrDemoKey, r.Ref(), r.KCV, name)
				}
			}
		}
		s.indexBDK(vs[len(vs)-1])
	}
	return s, nil
}

// Demo reports whether the store is in demo mode.
func (s *Store) Demo() bool { return s.demo }

func recKey(id string, version int) []byte {
	return fmt.Appendf(nil, "%s%s/%010d", recPrefix, id, version)
}

// indexBDK records a BDK's KSN prefix (its owner). Caller holds s.mu (or owns s).
func (s *Store) indexBDK(r hsm.KeyRecord) {
	if r.Type != hsm.BDK {
		return
	}
	for p, id := range s.bdks {
		if id == r.ID {
			delete(s.bdks, p)
		}
	}
	if r.Owner != "" {
		s.bdks[dukpt.NormalizePrefix(r.Owner, r.Algorithm.IsAES())] = r.ID
	}
}

// at returns the index of version v in vs (the versions of one ID, first..n without
// gaps: older ones may have been destroyed, see prunable), or -1.
func at(vs []hsm.KeyRecord, v int) int {
	if len(vs) == 0 || v < vs[0].Version || v > vs[len(vs)-1].Version {
		return -1
	}
	return v - vs[0].Version
}

// span describes the versions vs holds, for errors.
func span(vs []hsm.KeyRecord) string {
	if vs[0].Version == 1 {
		return fmt.Sprintf("the key has versions 1 to %d", len(vs))
	}
	return fmt.Sprintf("the key has versions %d to %d; older ones were destroyed", vs[0].Version, vs[len(vs)-1].Version)
}

// newest returns the index of the newest version in vs that has activated, -1 if
// none: it supersedes every older version for good.
func newest(vs []hsm.KeyRecord, now time.Time) int {
	for i := len(vs) - 1; i >= 0; i-- {
		if !now.Before(vs[i].ActivateAt) {
			return i
		}
	}
	return -1
}

// current returns the index of the current version in vs: the newest activated one
// (newest), unless it is revoked or expired; -1 then, or if none has activated. An
// older version is not brought back when its successor is revoked or expires: it
// was superseded (its grace window, GraceVersions, may be over, and a retired key
// stays retired); the key has no current version until a new one activates.
// (Before 5 December 2026 the newest usable version was current: revoking a ZPK's
// v2 made v1 encrypt PINs again, past its grace window.)
func current(vs []hsm.KeyRecord, now time.Time) int {
	i := newest(vs, now)
	if i < 0 {
		return -1
	}
	if r := vs[i]; r.Status == hsm.StatusRevoked || (!r.ExpiresAt.IsZero() && !now.Before(r.ExpiresAt)) {
		return -1
	}
	return i
}

// Key implements hsm.KeyStore. A version older than the current one is returned
// with status superseded.
func (s *Store) Key(_ context.Context, ref hsm.KeyRef) (hsm.KeyRecord, error) {
	now := s.now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	vs := s.recs[ref.ID]
	if len(vs) == 0 {
		return hsm.KeyRecord{}, fmt.Errorf("%w: %s", hsm.ErrKeyNotFound, ref.ID)
	}
	cur := current(vs, now)
	if ref.Version == 0 {
		if cur < 0 {
			return hsm.KeyRecord{}, fmt.Errorf("%w: key %s has no current version (%s)", hsm.ErrKeyNotUsable, ref.ID, describe(vs, now))
		}
		return vs[cur], nil
	}
	i := at(vs, ref.Version)
	if i < 0 {
		return hsm.KeyRecord{}, fmt.Errorf("%w: %s (%s)", hsm.ErrKeyNotFound, ref, span(vs))
	}
	r := vs[i]
	if r.Status == hsm.StatusActive && i < newest(vs, now) {
		r.Status = hsm.StatusSuperseded
	}
	return r, nil
}

// describe summarises why versions are not current, for errors.
func describe(vs []hsm.KeyRecord, now time.Time) string {
	var parts []string
	for _, r := range vs {
		switch {
		case r.Status == hsm.StatusRevoked:
			parts = append(parts, fmt.Sprintf("v%d revoked", r.Version))
		case r.ActivateAt.Equal(PendingActivation):
			parts = append(parts, fmt.Sprintf("v%d pending activation", r.Version))
		case now.Before(r.ActivateAt):
			parts = append(parts, fmt.Sprintf("v%d active from %s", r.Version, r.ActivateAt.UTC().Format(time.RFC3339)))
		default:
			parts = append(parts, fmt.Sprintf("v%d expired %s", r.Version, r.ExpiresAt.UTC().Format(time.RFC3339)))
		}
	}
	return strings.Join(parts, ", ")
}

// GraceVersions implements hsm.KeyStore.
func (s *Store) GraceVersions(_ context.Context, id string) ([]hsm.KeyRecord, error) {
	now := s.now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	vs := s.recs[id]
	if len(vs) == 0 {
		return nil, fmt.Errorf("%w: %s", hsm.ErrKeyNotFound, id)
	}
	var out []hsm.KeyRecord
	for i := newest(vs, now) - 1; i >= 0; i-- {
		r := vs[i]
		if r.Status == hsm.StatusActive && now.Before(r.GraceUntil) {
			r.Status = hsm.StatusSuperseded
			out = append(out, r)
		}
	}
	return out, nil
}

// BDKForKSN implements hsm.KeyStore: the BDK whose KSN prefix is the longest prefix
// of ksn, comparing the key set ID bits only (never the counter's: see
// dukpt.AppendKSNPrefix).
func (s *Store) BDKForKSN(ctx context.Context, ksn string) (hsm.KeyRecord, error) {
	if len(ksn) > 24 {
		return hsm.KeyRecord{}, fmt.Errorf("%w: no BDK has a KSN prefix matching KSN %s (more than 24 hex digits)", hsm.ErrKeyNotFound, ksn)
	}
	var buf [24]byte
	k := dukpt.AppendKSNPrefix(buf[:0], ksn)
	s.mu.RLock()
	id := ""
	for l := len(k); l > 0 && id == ""; l-- {
		id = s.bdks[string(k[:l])]
	}
	s.mu.RUnlock()
	if id == "" {
		return hsm.KeyRecord{}, fmt.Errorf("%w: no BDK has a KSN prefix matching KSN %s", hsm.ErrKeyNotFound, ksn)
	}
	return s.Key(ctx, hsm.KeyRef{ID: id})
}

// NextVersion implements hsm.KeyStore.
func (s *Store) NextVersion(_ context.Context, id string) (int, hsm.KeyType, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	vs := s.recs[id]
	if len(vs) == 0 {
		return 1, "", nil
	}
	return vs[len(vs)-1].Version + 1, vs[0].Type, nil
}

// Put implements hsm.KeyStore.
func (s *Store) Put(ctx context.Context, req hsm.PutRequest) error {
	r := req.Record
	if err := hsm.CheckKeyID(r.ID); err != nil {
		return err
	}
	if reservedIDs[strings.ToLower(r.ID)] {
		return fmt.Errorf("%w: key ID %q is reserved by the admin API", hsm.ErrInput, r.ID)
	}
	if !r.Type.Valid() || r.Block == "" || r.KCV == "" {
		return fmt.Errorf("%w: key record %s is incomplete (type %q, KCV %q)", hsm.ErrInput, r.Ref(), r.Type, r.KCV)
	}
	if !s.demo {
		if name, ok := DemoKeyByKCV(r.KCV); ok {
			return fmt.Errorf("%w: %s has KCV %s, that of the public demo key %s; refusing outside demo mode", hsm.ErrDemoKey, r.Ref(), r.KCV, name)
		}
	}
	err := s.sync.Do(ctx, func() (statelog.Commit, func(), error) {
		s.mu.RLock()
		vs := slices.Clone(s.recs[r.ID])
		var bdkClash string
		if r.Type == hsm.BDK && r.Owner != "" {
			if id, ok := s.bdks[dukpt.NormalizePrefix(r.Owner, r.Algorithm.IsAES())]; ok && id != r.ID {
				bdkClash = id
			}
		}
		s.mu.RUnlock()
		next := 1
		if len(vs) > 0 {
			next = vs[len(vs)-1].Version + 1
		}
		if r.Version != next {
			if r.Version < next {
				return statelog.Commit{}, nil, fmt.Errorf("%w: %s (someone stored it first?)", hsm.ErrKeyExists, r.Ref())
			}
			return statelog.Commit{}, nil, fmt.Errorf("%w: %s: the next version of %s is %d", hsm.ErrInput, r.Ref(), r.ID, next)
		}
		if len(vs) > 0 && vs[0].Type != r.Type {
			return statelog.Commit{}, nil, fmt.Errorf("%w: %s is a %s, a new version cannot be a %s", hsm.ErrInput, r.ID, vs[0].Type, r.Type)
		}
		if bdkClash != "" {
			return statelog.Commit{}, nil, fmt.Errorf("%w: BDK %s already uses KSN prefix %s", hsm.ErrInput, bdkClash, r.Owner)
		}
		if req.Unique != nil {
			// Under the writer lock: no other Put, here or applied from another
			// node, lands between this check and the write.
			if err := req.Unique.Clash(r, s.sameKCV(r.ID, req.Unique)); err != nil {
				return statelog.Commit{}, nil, err
			}
		}
		now := s.now()
		var prev *hsm.KeyRecord
		if cur := current(vs, now); cur >= 0 && !req.SupersedeGraceUntil.IsZero() {
			p := vs[cur]
			p.GraceUntil = req.SupersedeGraceUntil.UTC()
			prev = &p
			vs[cur] = p
		}
		dead := prunable(append(vs, r), now)
		if dead > 0 && s.mayDestroy != nil && !s.mayDestroy() {
			dead = 0
		}
		var c kvsync.Commit
		if err := setJSON(&c, recKey(r.ID, r.Version), r); err != nil {
			return c.Commit, nil, err
		}
		if prev != nil {
			if err := setJSON(&c, recKey(prev.ID, prev.Version), prev); err != nil {
				return c.Commit, nil, err
			}
		}
		evs := []hsm.AuditEvent{req.Event}
		for _, d := range vs[:dead] {
			c.Delete(recKey(d.ID, d.Version))
			evs = append(evs, hsm.AuditEvent{Actor: req.Event.Actor, Action: "destroy", KeyID: d.ID, Version: d.Version, KeyType: string(d.Type), KCV: d.KCV,
				Detail: fmt.Sprintf("working key past its grace window, destroyed when %s was stored", r.Ref())})
		}
		if err := s.appendAudit(&c, evs...); err != nil {
			return c.Commit, nil, err
		}
		return c.Commit, func() {
			s.mu.Lock()
			vs := s.recs[r.ID]
			if prev != nil {
				vs[at(vs, prev.Version)] = *prev
			}
			destroyed := slices.Clone(vs[:dead])
			s.recs[r.ID] = append(vs[dead:], r)
			s.indexBDK(r)
			s.mu.Unlock()
			for _, d := range destroyed {
				s.forget(d.Ref())
			}
		}, nil
	}, nil)
	if err != nil {
		if req.Unique != nil && errors.Is(err, hsm.ErrPolicy) {
			// An ECB form (or components) of a key already held here, offered as
			// another key: a mistake, or someone trying to give one key value a
			// second purpose.
			msg := "ECB import refused: its value is stored under another key ID"
			if req.Unique.Formed {
				msg = "key formed from components refused: its value is stored under another key ID"
			}
			s.log.Warn().Str("key", r.Ref().String()).Str("type", string(r.Type)).Str("kcv", r.KCV).Str("actor", req.Event.Actor).
				Str("reason", err.Error()).Msg(msg)
		}
		if errors.Is(err, hsm.ErrKeyExists) || errors.Is(err, hsm.ErrInput) || errors.Is(err, hsm.ErrPolicy) {
			return err
		}
		return fmt.Errorf("store key %s: %w", r.Ref(), err)
	}
	s.log.Info().Str("key", r.Ref().String()).Str("type", string(r.Type)).Str("kcv", r.KCV).Str("actor", req.Event.Actor).Str("action", req.Event.Action).Msg("key version stored")
	return nil
}

// sameKCV returns every stored version, whatever its status, of the key IDs other
// than id whose KCV u matches (the candidates of UniqueValue.Clash).
func (s *Store) sameKCV(id string, u *hsm.UniqueValue) []hsm.KeyRecord {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []hsm.KeyRecord
	for other, vs := range s.recs {
		if other == id {
			continue
		}
		for _, r := range vs {
			if u.Matches(r) {
				out = append(out, r)
			}
		}
	}
	slices.SortFunc(out, func(a, b hsm.KeyRecord) int { return strings.Compare(a.Ref().String(), b.Ref().String()) })
	return out
}

// prunable returns how many of the oldest versions in vs (one ID's, oldest first,
// the one being stored last) are working keys (TPK, TAK, TDK) that can never be used
// again: older than the current version and revoked, or superseded and past their
// grace window. Put destroys them (deletes their key blocks, audited "destroy"):
// a terminal signs in every day and would otherwise leave a version a day of each of
// its working keys in the store and in memory for good. The current version and every
// version newer than it are kept, and so is anything older that is still usable
// inbound; only a run from the oldest is destroyed, so that versions stay contiguous.
func prunable(vs []hsm.KeyRecord, now time.Time) int {
	if len(vs) == 0 || (vs[0].Type != hsm.TPK && vs[0].Type != hsm.TAK && vs[0].Type != hsm.TDK) {
		return 0
	}
	cur := current(vs, now)
	n := 0
	for n < cur {
		r := vs[n]
		if r.Status != hsm.StatusRevoked && now.Before(r.GraceUntil) {
			break
		}
		n++
	}
	return n
}

// applied updates the in-memory records with the key records of another node's
// commit (already in Badger). Called with the writer lock held.
func (s *Store) applied(c statelog.Commit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, kv := range c.Writes {
		if !bytes.HasPrefix(kv.Key, []byte(recPrefix)) {
			continue
		}
		if kv.Value == nil {
			s.destroyed(string(kv.Key))
			continue
		}
		var r hsm.KeyRecord
		if err := json.Unmarshal(kv.Value, &r); err != nil || r.Version < 1 {
			s.log.Error().Str("badger_key", string(kv.Key)).Msg("key record from another node cannot be decoded; restart the node to reload the key store")
			continue
		}
		vs := s.recs[r.ID]
		switch i := at(vs, r.Version); {
		case i >= 0:
			vs[i] = r
		case len(vs) == 0 || r.Version == vs[len(vs)-1].Version+1:
			s.recs[r.ID] = append(vs, r)
		default:
			s.log.Error().Str("key", r.Ref().String()).Int("versions", len(vs)).Msg("key record from another node skips a version; restart the node to reload the key store")
			continue
		}
		if vs := s.recs[r.ID]; r.Version == vs[len(vs)-1].Version {
			s.indexBDK(r)
		}
		s.log.Info().Str("key", r.Ref().String()).Str("type", string(r.Type)).Str("kcv", r.KCV).Msg("key version applied from another node")
	}
}

// destroyed drops the version that Badger key k (keys/rec/<id>/<version>) names
// from memory: another node destroyed it (see prunable). Caller holds s.mu.
func (s *Store) destroyed(k string) {
	rest := strings.TrimPrefix(k, recPrefix)
	slash := strings.LastIndexByte(rest, '/')
	v, err := strconv.Atoi(rest[slash+1:])
	if slash < 0 || err != nil {
		s.log.Error().Str("badger_key", k).Msg("key record deleted by another node has no version in its name; restart the node to reload the key store")
		return
	}
	id := rest[:slash]
	vs := s.recs[id]
	if len(vs) == 0 || vs[0].Version != v || len(vs) == 1 {
		s.log.Error().Str("key", fmt.Sprintf("%s/v%d", id, v)).Msg("another node destroyed a key version that is not this node's oldest; restart the node to reload the key store")
		return
	}
	s.recs[id] = vs[1:]
	s.forget(vs[0].Ref())
	s.log.Info().Str("key", fmt.Sprintf("%s/v%d", id, v)).Msg("key version destroyed by another node")
}

// OnDestroy sets fn to be told of each key version destroyed (the software HSM
// drops its unwrapped copy). fn must not call back into the store.
func (s *Store) OnDestroy(fn func(hsm.KeyRef)) { s.onDestroy.Store(&fn) }

func (s *Store) forget(ref hsm.KeyRef) {
	if fn := s.onDestroy.Load(); fn != nil {
		(*fn)(ref)
	}
}

// ApplyRemote implements statelog.Replica: it applies another node's commit to the
// key store (Badger and memory), so that a key stored there is usable here at once.
func (s *Store) ApplyRemote(rev uint64, c statelog.Commit) error { return s.sync.ApplyRemote(rev, c) }

// Revision implements statelog.Replica.
func (s *Store) Revision() uint64 { return s.sync.Revision() }

// update runs fn in a read-write transaction and syncs the DB so the write is durable.
func (s *Store) update(fn func(txn *badger.Txn) error) error {
	if err := s.db.Update(fn); err != nil {
		return err
	}
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}

func setJSON(c *kvsync.Commit, key []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	c.Set(key, b)
	return nil
}

// SetStatus changes the status of one key version (revoke, or re-activate a version
// that is not revoked) and audits it.
func (s *Store) SetStatus(ctx context.Context, ref hsm.KeyRef, st hsm.Status, detail string) (hsm.KeyRecord, error) {
	// detail is the reason a person typed: a pasted card number is masked
	// (carddata.MaskText) before it reaches the key audit log.
	if m, n := carddata.MaskText(detail); n > 0 {
		detail = m
		s.log.Info().Str("object", "key "+ref.ID).Str("field", "reason").Int("card_numbers", n).
			Msg("card number masked in free text")
	}
	if st != hsm.StatusActive && st != hsm.StatusRevoked {
		return hsm.KeyRecord{}, fmt.Errorf("%w: status %q cannot be set (want active or revoked)", hsm.ErrInput, st)
	}
	if ref.Version == 0 {
		return hsm.KeyRecord{}, fmt.Errorf("%w: give the version of %s to change", hsm.ErrInput, ref.ID)
	}
	var out hsm.KeyRecord
	err := s.sync.Do(ctx, func() (statelog.Commit, func(), error) {
		s.mu.RLock()
		vs := s.recs[ref.ID]
		i := at(vs, ref.Version)
		if i < 0 {
			s.mu.RUnlock()
			if len(vs) == 0 {
				return statelog.Commit{}, nil, fmt.Errorf("%w: %s", hsm.ErrKeyNotFound, ref)
			}
			return statelog.Commit{}, nil, fmt.Errorf("%w: %s (%s)", hsm.ErrKeyNotFound, ref, span(vs))
		}
		r := vs[i]
		s.mu.RUnlock()
		if r.Status == hsm.StatusRevoked && st == hsm.StatusActive {
			return statelog.Commit{}, nil, fmt.Errorf("%w: %s is revoked; revocation is final", hsm.ErrInput, ref)
		}
		if !s.demo && st == hsm.StatusActive {
			if name, ok := DemoKeyByKCV(r.KCV); ok {
				return statelog.Commit{}, nil, fmt.Errorf("%w: %s is the public demo key %s", hsm.ErrDemoKey, ref, name)
			}
		}
		action := "revoke"
		if st == hsm.StatusActive {
			action = "activate"
		}
		r.Status = st
		ev := hsm.AuditEvent{Actor: hsm.ActorFrom(ctx), Action: action, KeyID: r.ID, Version: r.Version, KeyType: string(r.Type), KCV: r.KCV, Detail: detail}
		c, apply, err := s.recordsCommit(ev, r)
		if err != nil {
			return c, nil, err
		}
		return c, func() { apply(); out = r }, nil
	}, nil)
	if err != nil {
		if errors.Is(err, hsm.ErrKeyNotFound) || errors.Is(err, hsm.ErrInput) || errors.Is(err, hsm.ErrDemoKey) {
			return hsm.KeyRecord{}, err
		}
		return hsm.KeyRecord{}, fmt.Errorf("set status of %s: %w", ref, err)
	}
	return out, nil
}

// PendingActivation is the activation time of a version stored pending: it never
// becomes current by the clock, only when Activate activates it (a zone PIN key
// once the issuer acknowledged it). Until then the version before it stays current,
// and a pending version that is never activated is revoked or stays unused.
var PendingActivation = time.Date(9999, time.December, 31, 0, 0, 0, 0, time.UTC)

// Activate makes version ref.Version, stored with an activation time still to come
// (PendingActivation, or a scheduled one), current at once, and audits it
// ("activate", detail). The version current until then is superseded, and stays
// usable for decryption and verification for grace (0: not at all). It fails with
// hsm.ErrInput when the version is revoked, already activated, or older than the
// current version.
func (s *Store) Activate(ctx context.Context, ref hsm.KeyRef, grace time.Duration, detail string) (hsm.KeyRecord, error) {
	if ref.Version == 0 {
		return hsm.KeyRecord{}, fmt.Errorf("%w: give the version of %s to activate", hsm.ErrInput, ref.ID)
	}
	var out hsm.KeyRecord
	err := s.sync.Do(ctx, func() (statelog.Commit, func(), error) {
		now := s.now()
		s.mu.RLock()
		vs := slices.Clone(s.recs[ref.ID])
		s.mu.RUnlock()
		i := at(vs, ref.Version)
		if i < 0 {
			if len(vs) == 0 {
				return statelog.Commit{}, nil, fmt.Errorf("%w: %s", hsm.ErrKeyNotFound, ref)
			}
			return statelog.Commit{}, nil, fmt.Errorf("%w: %s (%s)", hsm.ErrKeyNotFound, ref, span(vs))
		}
		r := vs[i]
		switch cur := current(vs, now); {
		case r.Status == hsm.StatusRevoked:
			return statelog.Commit{}, nil, fmt.Errorf("%w: %s is revoked; revocation is final", hsm.ErrInput, ref)
		case !now.Before(r.ActivateAt):
			return statelog.Commit{}, nil, fmt.Errorf("%w: %s is active already (since %s)", hsm.ErrInput, ref, r.ActivateAt.UTC().Format(time.RFC3339))
		case cur > i:
			return statelog.Commit{}, nil, fmt.Errorf("%w: %s is older than the current version %d", hsm.ErrInput, ref, vs[cur].Version)
		}
		var prev *hsm.KeyRecord
		if cur := current(vs, now); cur >= 0 {
			p := vs[cur]
			p.GraceUntil = now.Add(grace).UTC()
			prev = &p
		}
		r.ActivateAt = now.UTC()
		ev := hsm.AuditEvent{Actor: hsm.ActorFrom(ctx), Action: "activate", KeyID: r.ID, Version: r.Version, KeyType: string(r.Type), KCV: r.KCV, Detail: detail}
		rs := []hsm.KeyRecord{r}
		if prev != nil {
			rs = append(rs, *prev)
		}
		c, apply, err := s.recordsCommit(ev, rs...)
		if err != nil {
			return c, nil, err
		}
		return c, func() { apply(); out = r }, nil
	}, nil)
	if err != nil {
		if errors.Is(err, hsm.ErrKeyNotFound) || errors.Is(err, hsm.ErrInput) {
			return hsm.KeyRecord{}, err
		}
		return hsm.KeyRecord{}, fmt.Errorf("activate %s: %w", ref, err)
	}
	s.log.Info().Str("key", out.Ref().String()).Str("type", string(out.Type)).Str("kcv", out.KCV).Str("actor", hsm.ActorFrom(ctx)).Msg("key version activated")
	return out, nil
}

// recordsCommit is a commit that writes the key records rs and the audit event
// ev, and the function that puts the records in memory once it is taken.
func (s *Store) recordsCommit(ev hsm.AuditEvent, rs ...hsm.KeyRecord) (statelog.Commit, func(), error) {
	var c kvsync.Commit
	for _, r := range rs {
		if err := setJSON(&c, recKey(r.ID, r.Version), r); err != nil {
			return c.Commit, nil, err
		}
	}
	if err := s.appendAudit(&c, ev); err != nil {
		return c.Commit, nil, err
	}
	return c.Commit, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, r := range rs {
			vs := s.recs[r.ID]
			vs[at(vs, r.Version)] = r
		}
	}, nil
}

// List returns every version of every key, sorted by ID and version. The records
// include their LMK key blocks: callers that show them strip the block.
func (s *Store) List() []hsm.KeyRecord {
	now := s.now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []hsm.KeyRecord
	ids := make([]string, 0, len(s.recs))
	for id := range s.recs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		vs := s.recs[id]
		n := newest(vs, now)
		for i, r := range vs {
			if r.Status == hsm.StatusActive && i < n {
				r.Status = hsm.StatusSuperseded
			}
			out = append(out, r)
		}
	}
	return out
}

// Expiry is when a key stops having a usable version unless a new one is made:
// the expires_at of the version that is, or will be once it activates, its
// current version.
type Expiry struct {
	ID        string
	Type      hsm.KeyType
	ExpiresAt time.Time
}

// Expiries returns the expiry of every key whose newest version not revoked has
// one (expires_at), sorted by ID: that version is, or will be once it activates,
// the key's current version, and an older one is never current again (current),
// so its expiry ends the key's use. A rotation to a version without an expiry, or
// with a later one, moves or clears it. A key whose newest activated version is
// revoked has no current version already, and no expiry here; a revoked version
// not yet activated is passed over until it activates, and a pending one
// (PendingActivation) for good. It holds no key material.
func (s *Store) Expiries() []Expiry {
	now := s.now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Expiry
	for id, vs := range s.recs {
		for i := len(vs) - 1; i >= 0; i-- {
			r := vs[i]
			if r.ActivateAt.Equal(PendingActivation) {
				continue // may never be current (a zone key the issuer has not taken yet)
			}
			if r.Status == hsm.StatusRevoked {
				if now.Before(r.ActivateAt) {
					continue
				}
				break
			}
			if !r.ExpiresAt.IsZero() {
				out = append(out, Expiry{ID: id, Type: r.Type, ExpiresAt: r.ExpiresAt})
			}
			break
		}
	}
	slices.SortFunc(out, func(a, b Expiry) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Versions returns every version of one key.
func (s *Store) Versions(id string) ([]hsm.KeyRecord, error) {
	var out []hsm.KeyRecord
	for _, r := range s.List() {
		if r.ID == id {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %s", hsm.ErrKeyNotFound, id)
	}
	return out, nil
}

// FindByOwner returns the current version of the key of type t owned by owner (a
// terminal ID or issuer ID), e.g. the TPK of a terminal.
func (s *Store) FindByOwner(ctx context.Context, owner string, t hsm.KeyType) (hsm.KeyRecord, error) {
	s.mu.RLock()
	id := ""
	for k, vs := range s.recs {
		if vs[0].Type == t && vs[len(vs)-1].Owner == owner {
			if id != "" {
				s.mu.RUnlock()
				return hsm.KeyRecord{}, fmt.Errorf("%w: %s has more than one %s (%s, %s)", hsm.ErrInput, owner, t, id, k)
			}
			id = k
		}
	}
	s.mu.RUnlock()
	if id == "" {
		return hsm.KeyRecord{}, fmt.Errorf("%w: no %s for %s", hsm.ErrKeyNotFound, t, owner)
	}
	return s.Key(ctx, hsm.KeyRef{ID: id})
}

// AdvanceDUKPTCounter implements hsm.KeyStore: the counter of a device must strictly
// increase; the new value is synced to disk before it returns.
func (s *Store) AdvanceDUKPTCounter(_ context.Context, device string, counter uint32) error {
	if device == "" {
		return fmt.Errorf("%w: empty DUKPT device ID", hsm.ErrInput)
	}
	s.dukptMu.Lock()
	defer s.dukptMu.Unlock()
	return s.update(func(txn *badger.Txn) error {
		last, found, err := dukptCounter(txn, device)
		if err != nil {
			return err
		}
		if found && counter <= last {
			return fmt.Errorf("%w: device %s sent counter %d (%#x), not above the last accepted %d (%#x)", hsm.ErrReplay, device, counter, counter, last, last)
		}
		return txn.Set([]byte(dukptPrefix+device), binary.BigEndian.AppendUint32(nil, counter))
	})
}

// CheckDUKPTCounter implements hsm.KeyStore: it fails with hsm.ErrReplay when
// counter is not above the last accepted counter of device, and records nothing.
func (s *Store) CheckDUKPTCounter(_ context.Context, device string, counter uint32) error {
	if device == "" {
		return fmt.Errorf("%w: empty DUKPT device ID", hsm.ErrInput)
	}
	last, found, err := s.DUKPTCounter(device)
	if err != nil {
		return err
	}
	if found && counter <= last {
		return fmt.Errorf("%w: device %s sent counter %d (%#x), not above the last accepted %d (%#x)", hsm.ErrReplay, device, counter, counter, last, last)
	}
	return nil
}

// RaiseDUKPTCounter records that another node of a cluster accepted counter for a
// device: the device's last accepted counter becomes counter when that is higher, so
// that a replay of the same KSN on this node is refused as AdvanceDUKPTCounter
// refuses one it saw itself. A counter not above the last is no error (the node may
// have seen a later one, or this one before). The raise is seen at once (a replay
// arriving next is refused) but is durable only once SyncDUKPT returns: its caller,
// the cluster journal's applier, syncs before it writes the stream position that
// covers the records it raised for (a group of records, one sync).
func (s *Store) RaiseDUKPTCounter(device string, counter uint32) error {
	if device == "" {
		return fmt.Errorf("%w: empty DUKPT device ID", hsm.ErrInput)
	}
	s.dukptMu.Lock()
	defer s.dukptMu.Unlock()
	raised := false
	err := s.db.Update(func(txn *badger.Txn) error {
		last, found, err := dukptCounter(txn, device)
		switch {
		case errors.Is(err, errDUKPTRecord): // overwritten by the counter
		case err != nil:
			return err
		case found && counter <= last:
			return nil
		}
		raised = true
		return txn.Set([]byte(dukptPrefix+device), binary.BigEndian.AppendUint32(nil, counter))
	})
	if raised {
		s.dukptUnsynced.Store(true)
	}
	return err
}

// SyncDUKPT makes the raises of RaiseDUKPTCounter durable (a sync of the store, if
// any was made since the last).
func (s *Store) SyncDUKPT() error {
	if !s.dukptUnsynced.Swap(false) {
		return nil
	}
	if err := s.db.Sync(); err != nil {
		s.dukptUnsynced.Store(true)
		return fmt.Errorf("keys: sync the DUKPT counters raised: %w", err)
	}
	return nil
}

// DUKPTCounter returns the last accepted counter of a device and whether there is one.
func (s *Store) DUKPTCounter(device string) (uint32, bool, error) {
	var c uint32
	found := false
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		c, found, err = dukptCounter(txn, device)
		if errors.Is(err, errDUKPTRecord) {
			return nil // reported as found, counter 0
		}
		return err
	})
	return c, found, err
}

// errDUKPTRecord marks a stored DUKPT counter that is not 4 bytes.
var errDUKPTRecord = errors.New("DUKPT counter record is not 4 bytes")

// dukptCounter reads the last accepted counter of device in txn; found is false when
// there is none. A record that is not 4 bytes is found, counter 0, with an error
// wrapping errDUKPTRecord.
func dukptCounter(txn *badger.Txn, device string) (last uint32, found bool, err error) {
	item, err := txn.Get([]byte(dukptPrefix + device))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	err = item.Value(func(v []byte) error {
		if len(v) != 4 {
			return fmt.Errorf("%w: the record of %s is %d bytes", errDUKPTRecord, device, len(v))
		}
		last = binary.BigEndian.Uint32(v)
		return nil
	})
	return last, true, err
}

// BindLMK implements hsm.KeyStore.
func (s *Store) BindLMK(ctx context.Context, kcv string) error {
	if kcv == "" {
		return fmt.Errorf("%w: empty LMK KCV", hsm.ErrInput)
	}
	if !s.demo && kcv == demoLMKKCV() {
		return fmt.Errorf("%w: the LMK is the public demo LMK (KCV %s); refusing outside demo mode", hsm.ErrDemoKey, kcv)
	}
	return s.sync.Do(ctx, func() (statelog.Commit, func(), error) {
		var stored []byte
		err := s.db.View(func(txn *badger.Txn) error {
			item, err := txn.Get([]byte(lmkKCVKey))
			if errors.Is(err, badger.ErrKeyNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			stored, err = item.ValueCopy(nil)
			return err
		})
		if err != nil {
			return statelog.Commit{}, nil, fmt.Errorf("read LMK KCV: %w", err)
		}
		if stored != nil {
			if !bytes.Equal(stored, []byte(kcv)) {
				return statelog.Commit{}, nil, fmt.Errorf("%w: the key store was written under the LMK with KCV %s, this LMK has KCV %s", hsm.ErrKCVMismatch, stored, kcv)
			}
			return statelog.Commit{}, nil, nil
		}
		ev := hsm.AuditEvent{Actor: "system", Action: "bind-lmk", KCV: kcv, Detail: "first use of the key store"}
		var c kvsync.Commit
		c.Set([]byte(lmkKCVKey), []byte(kcv))
		if err := s.appendAudit(&c, ev); err != nil {
			return c.Commit, nil, err
		}
		return c.Commit, nil, nil
	}, nil)
}
