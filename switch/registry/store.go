package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/statelog"
)

// Badger key prefixes. Everything the registry stores is under "reg/".
const (
	pfxMerchant = "reg/m/"        // + merchant ID -> Merchant JSON
	pfxTerminal = "reg/t/"        // + terminal ID -> Terminal JSON
	pfxSeen     = "reg/seen/"     // + terminal ID -> LastSeen JSON
	pfxChange   = "reg/chg/"      // + 20-digit sequence -> Change JSON
	pfxLog      = "reg/log/"      // + 20-digit sequence -> OpEntry JSON (append-only)
	pfxIncident = "reg/inc/"      // + 20-digit sequence -> Incident JSON
	pfxAlert    = "reg/alr/"      // + 20-digit sequence -> Alert JSON
	pfxRule     = "reg/rule/"     // + rule ID -> AlertRule JSON
	pfxIncCase  = "reg/inccase/"  // + review case ID -> the ID of its confirmed fraud's incident
	pfxIncSpill = "reg/incspill/" // + origin -> Incident JSON not yet ordered (cluster; this node only)
	// keyRevision is the revision of the cluster's state log this node's registry
	// last applied (decimal), written in the same transaction as the commit.
	keyRevision = "reg/rev"
	// keyAlive is when this node last flushed its last-seen data (RFC 3339, UTC):
	// the monitor takes it, after a restart, as when the switch stopped seeing
	// terminals (Monitor, the switch's downtime). This node's only.
	keyAlive = "reg/alive"
	// RevisionKey is keyRevision for a restore of the registry's snapshot before
	// it opens (its value: the revision in decimal).
	RevisionKey = keyRevision
)

// store is the registry's storage: merchants and terminals in Badger under "reg/"
// and in the in-memory snapshot Check reads, their last-seen data (seen.go) and the
// hash-chained operation log (oplog.go). It also carries what every component
// shares: the clock, the logger, the options and the counters.
//
// Its write lock mu serialises every write to Badger except new incidents and
// last-seen data. The review workflow, alerting and incident handling take it for
// their own records too: each of those writes appends to the one oplog chain, whose
// order must be the commit order (TestOplogOneChainAcrossComponents).
type store struct {
	db    *badger.DB
	clock func() time.Time
	log   zerolog.Logger
	opts  Options
	m     *metrics
	// hookKey keys the fingerprints of alert rules' webhook URLs (hookurl.go):
	// Options.WebhookURLKey, or a random key of this process's own without it.
	hookKey []byte

	snap atomic.Pointer[snapshot]
	// groupMins is the rollout groups' minimum application versions
	// (SetGroupMinimums); Check applies the higher of it and the terminal's own.
	groupMins atomic.Pointer[groupMins]
	// refs indexes the terminals' key references, DUKPT devices, device serials,
	// SIMs and IMEIs (refs.go):
	// replaced with the snapshot's terminals, under mu.
	refs atomic.Pointer[refIndex]

	mu      sync.Mutex    // serialises writes to Badger (see above)
	logSeq  uint64        // last oplog sequence; guarded by mu
	logHash string        // hash of the last oplog entry; guarded by mu
	rev     atomic.Uint64 // the state log revision applied (cluster); written under mu

	replica statelog.Replica // the Registry, for Options.CatchUp

	seenMu   sync.Mutex        // serialises FlushSeen
	seenSink func([]SeenEntry) // SetSeenSink's; guarded by seenMu
	// aliveAt is keyAlive as the registry opened: its previous run's last flush
	// of last-seen data (zero when none was recorded).
	aliveAt time.Time
	stop    chan struct{}
	wg      sync.WaitGroup // the last-seen flusher
}

type snapshot struct {
	merchants map[string]*merchantSlot
	terminals map[string]*terminalSlot
}

type merchantSlot struct {
	rec atomic.Pointer[Merchant]
}

type terminalSlot struct {
	rec atomic.Pointer[Terminal]

	mu    sync.Mutex // guards the fields below; per terminal, so never contended by writers
	seen  seenState
	dirty bool // seen changed since the last flush to Badger
	share bool // seen changed here (not merged from another node) since the last flush
}

type seenState struct {
	t      time.Time
	addr   netip.Addr
	loc    GeoPoint
	hasLoc bool
}

func (r *store) now() time.Time { return r.clock().UTC() }

func seqKey(prefix string, n uint64) []byte {
	return []byte(prefix + fmt.Sprintf("%020d", n))
}

// load reads merchants, terminals, their last-seen data and the end of the oplog
// chain into memory.
func (r *store) load(txn *badger.Txn) error {
	s := &snapshot{merchants: map[string]*merchantSlot{}, terminals: map[string]*terminalSlot{}}
	if err := iterate(txn, pfxMerchant, func(k, v []byte) error {
		m := new(Merchant)
		if err := json.Unmarshal(v, m); err != nil {
			return fmt.Errorf("registry: decode merchant %s: %w", k, err)
		}
		sl := &merchantSlot{}
		sl.rec.Store(m)
		s.merchants[m.ID] = sl
		return nil
	}); err != nil {
		return err
	}
	if err := iterate(txn, pfxTerminal, func(k, v []byte) error {
		t := new(Terminal)
		if err := json.Unmarshal(v, t); err != nil {
			return fmt.Errorf("registry: decode terminal %s: %w", k, err)
		}
		t.prepare()
		sl := &terminalSlot{}
		sl.rec.Store(t)
		s.terminals[t.ID] = sl
		return nil
	}); err != nil {
		return err
	}
	if err := iterate(txn, pfxSeen, func(k, v []byte) error {
		var ls LastSeen
		if err := json.Unmarshal(v, &ls); err != nil {
			return fmt.Errorf("registry: decode last-seen %s: %w", k, err)
		}
		if sl := s.terminals[strings.TrimPrefix(string(k), pfxSeen)]; sl != nil {
			sl.seen = seenState{t: ls.Time, addr: ls.Address}
			if ls.Location != nil {
				sl.seen.loc, sl.seen.hasLoc = GeoPoint{Lat: ls.Location.Lat, Lon: ls.Location.Lon, Present: true}, true
			}
		}
		return nil
	}); err != nil {
		return err
	}
	item, err := txn.Get([]byte(keyRevision))
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
	case err != nil:
		return fmt.Errorf("registry: read %s: %w", keyRevision, err)
	default:
		if err := item.Value(func(v []byte) error {
			n, err := strconv.ParseUint(string(v), 10, 64)
			r.rev.Store(n)
			return err
		}); err != nil {
			return fmt.Errorf("registry: read %s: %w", keyRevision, err)
		}
	}
	if item, err := txn.Get([]byte(keyAlive)); err == nil {
		// Unreadable: no downtime known, as before the key existed.
		_ = item.Value(func(v []byte) error {
			r.aliveAt, _ = time.Parse(time.RFC3339Nano, string(v))
			return nil
		})
	}
	var last []byte
	if r.logSeq, last, err = lastSeq(txn, pfxLog); err != nil {
		return err
	}
	if last != nil {
		var e OpEntry
		if err := json.Unmarshal(last, &e); err != nil {
			return fmt.Errorf("registry: decode last oplog entry %d: %w", r.logSeq, err)
		}
		r.logHash = e.Hash
	}
	r.refs.Store(buildRefs(s))
	r.snap.Store(s)
	return nil
}

// iterate calls fn for every key under prefix, in key order.
func iterate(txn *badger.Txn, prefix string, fn func(k, v []byte) error) error {
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 100, Prefix: []byte(prefix)})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		v, err := item.ValueCopy(nil)
		if err != nil {
			return fmt.Errorf("registry: read %s: %w", item.Key(), err)
		}
		if err := fn(item.KeyCopy(nil), v); err != nil {
			return err
		}
	}
	return nil
}

// lastSeq returns the highest sequence number under prefix and its value.
func lastSeq(txn *badger.Txn, prefix string) (uint64, []byte, error) {
	it := txn.NewIterator(badger.IteratorOptions{Reverse: true, Prefix: []byte(prefix)})
	defer it.Close()
	it.Seek([]byte(prefix + "\xff"))
	if !it.Valid() {
		return 0, nil, nil
	}
	k := it.Item().Key()
	n, err := strconv.ParseUint(string(bytes.TrimPrefix(k, []byte(prefix))), 10, 64)
	if err != nil {
		return 0, nil, fmt.Errorf("registry: bad sequence key %q: %w", k, err)
	}
	v, err := it.Item().ValueCopy(nil)
	if err != nil {
		return 0, nil, fmt.Errorf("registry: read %s: %w", k, err)
	}
	return n, v, nil
}

// wtx is the Badger transaction of a registry write. In a cluster (Options.Log) it
// records what it sets and deletes into the commit the other nodes apply (a write
// through the embedded Txn itself stays on this node).
type wtx struct {
	*badger.Txn
	rec *statelog.Commit // nil in the single-node mode: nothing is recorded
}

// Set writes key in the transaction and, in a cluster, in the shared commit.
func (t *wtx) Set(key, val []byte) error {
	if err := t.Txn.Set(key, val); err != nil {
		return err
	}
	if t.rec != nil {
		t.rec.Writes = append(t.rec.Writes, statelog.KV{Key: key, Value: val})
	}
	return nil
}

// Delete deletes key in the transaction and, in a cluster, in the shared commit.
func (t *wtx) Delete(key []byte) error {
	if err := t.Txn.Delete(key); err != nil {
		return err
	}
	if t.rec != nil {
		t.rec.Writes = append(t.rec.Writes, statelog.KV{Key: key})
	}
	return nil
}

// commitLocked runs fn in a read-write transaction and syncs the database so the
// write is durable. r.mu must be held. In a cluster (Options.Log) the writes fn
// records are first ordered by the Log after the registry's revision; only then
// are they committed, with the new revision, in the same Badger transaction. An
// error wrapping statelog.ErrConflict (another node wrote first) or
// statelog.ErrUnavailable (outcome unknown) leaves Badger untouched: the caller
// must not update its memory (see retry).
func (r *store) commitLocked(fn func(txn *wtx) error) error {
	if r.opts.Log == nil {
		if err := r.db.Update(func(txn *badger.Txn) error { return fn(&wtx{Txn: txn}) }); err != nil {
			return err
		}
		if err := r.db.Sync(); err != nil {
			return fmt.Errorf("registry: sync Badger: %w", err)
		}
		return nil
	}
	txn := r.db.NewTransaction(true)
	defer txn.Discard()
	w := &wtx{Txn: txn, rec: &statelog.Commit{}}
	committed := false
	if err := fn(w); err != nil {
		return err
	}
	if len(w.rec.Writes) > 0 {
		after := r.rev.Load()
		ctx, cancel := context.WithTimeout(context.Background(), r.opts.LogTimeout)
		rev, err := r.opts.Log.Append(ctx, *w.rec, after)
		cancel()
		if err != nil {
			return fmt.Errorf("registry: order a commit of %d keys after revision %d: %w", len(w.rec.Writes), after, err)
		}
		if err := txn.Set([]byte(keyRevision), []byte(strconv.FormatUint(rev, 10))); err != nil {
			return err
		}
		// A failed Badger commit below leaves the revision where it was: the
		// follower then delivers this commit to ApplyRemote like another node's.
		defer func() {
			if committed {
				r.rev.Store(rev)
			}
		}()
	}
	if err := txn.Commit(); err != nil {
		return err
	}
	committed = true
	if err := r.db.Sync(); err != nil {
		return fmt.Errorf("registry: sync Badger: %w", err)
	}
	return nil
}

// setter is a Badger transaction or a registry write (wtx).
type setter interface{ Set(key, val []byte) error }

func putJSON(txn setter, key []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("registry: encode %s: %w", key, err)
	}
	if err := txn.Set(key, b); err != nil {
		return fmt.Errorf("registry: write %s: %w", key, err)
	}
	return nil
}

func getJSON(txn *badger.Txn, key []byte, v any) error {
	item, err := txn.Get(key)
	if err != nil {
		return err
	}
	return item.Value(func(b []byte) error {
		if err := json.Unmarshal(b, v); err != nil {
			return fmt.Errorf("registry: decode %s: %w", key, err)
		}
		return nil
	})
}

// publishMerchant makes m visible to Check. r.mu must be held.
func (r *store) publishMerchant(m *Merchant) {
	s := r.snap.Load()
	if sl := s.merchants[m.ID]; sl != nil {
		sl.rec.Store(m)
		return
	}
	ns := &snapshot{merchants: make(map[string]*merchantSlot, len(s.merchants)+1), terminals: s.terminals}
	for k, v := range s.merchants {
		ns.merchants[k] = v
	}
	sl := &merchantSlot{}
	sl.rec.Store(m)
	ns.merchants[m.ID] = sl
	r.snap.Store(ns)
}

// publishTerminals makes ts visible to Check, copying the terminal map once for all
// new terminals, and updates the index of their key references and claims (DUKPT
// device, device serial, SIM, IMEI) when one of them changes it. r.mu must be held.
func (r *store) publishTerminals(ts ...*Terminal) {
	s := r.snap.Load()
	var fresh []*Terminal
	var chs []refChange
	for _, t := range ts {
		t.prepare()
		var before *Terminal
		if sl := s.terminals[t.ID]; sl != nil {
			before = sl.rec.Swap(t)
		} else {
			fresh = append(fresh, t)
		}
		if !sameRefs(before, t) {
			chs = append(chs, refChange{before: before, after: t})
		}
	}
	if len(chs) > 0 {
		r.refs.Store(r.refs.Load().with(chs))
	}
	if len(fresh) == 0 {
		return
	}
	ns := &snapshot{merchants: s.merchants, terminals: make(map[string]*terminalSlot, len(s.terminals)+len(fresh))}
	for k, v := range s.terminals {
		ns.terminals[k] = v
	}
	for _, t := range fresh {
		sl := &terminalSlot{}
		sl.rec.Store(t)
		ns.terminals[t.ID] = sl
	}
	r.snap.Store(ns)
}

// Merchant returns the current record of merchant id (an immutable snapshot).
func (r *store) Merchant(id string) (*Merchant, bool) {
	if sl := r.snap.Load().merchants[id]; sl != nil {
		return sl.rec.Load(), true
	}
	return nil, false
}

// Terminal returns the current record of terminal id (an immutable snapshot), for
// example to find its key references.
func (r *store) Terminal(id string) (*Terminal, bool) {
	if sl := r.snap.Load().terminals[id]; sl != nil {
		return sl.rec.Load(), true
	}
	return nil, false
}

// MerchantFilter selects merchants; empty fields match everything.
type MerchantFilter struct {
	Status MerchantStatus
	Region string
	Tier   string
}

// Merchants returns the merchants that match f, ordered by ID.
func (r *store) Merchants(f MerchantFilter) []*Merchant {
	var out []*Merchant
	for _, sl := range r.snap.Load().merchants {
		m := sl.rec.Load()
		if (f.Status == "" || m.Status == f.Status) && (f.Region == "" || m.Region == f.Region) && (f.Tier == "" || m.Tier == f.Tier) {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// TerminalFilter selects terminals; empty fields match everything.
type TerminalFilter struct {
	MerchantID string
	Status     TerminalStatus
	Kind       TerminalKind
}

// Terminals returns the terminals that match f, ordered by ID.
func (r *store) Terminals(f TerminalFilter) []*Terminal {
	var out []*Terminal
	for _, sl := range r.snap.Load().terminals {
		t := sl.rec.Load()
		if (f.MerchantID == "" || t.MerchantID == f.MerchantID) && (f.Status == "" || t.Status == f.Status) && (f.Kind == "" || t.Kind == f.Kind) {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
