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
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Badger key prefixes. Everything the registry stores is under "reg/".
const (
	pfxMerchant = "reg/m/"    // + merchant ID -> Merchant JSON
	pfxTerminal = "reg/t/"    // + terminal ID -> Terminal JSON
	pfxSeen     = "reg/seen/" // + terminal ID -> LastSeen JSON
	pfxChange   = "reg/chg/"  // + 20-digit sequence -> Change JSON
	pfxLog      = "reg/log/"  // + 20-digit sequence -> OpEntry JSON (append-only)
	pfxIncident = "reg/inc/"  // + 20-digit sequence -> Incident JSON
	pfxAlert    = "reg/alr/"  // + 20-digit sequence -> Alert JSON
	pfxRule     = "reg/rule/" // + rule ID -> AlertRule JSON
)

// SystemActor is the principal name recorded for changes the switch makes by itself
// (a SoftPOS suspended for a device-integrity finding, a suspend alert action).
const SystemActor = "system"

// DefaultMaxAttestationAge is the default for Options.MaxAttestationAge.
const DefaultMaxAttestationAge = 120 * time.Second

// Options tune a Registry. The zero value is usable.
type Options struct {
	// Logger receives audit-relevant events (suspensions, incidents, alerts). The zero
	// value logs nothing. Nothing the registry logs contains card data.
	Logger zerolog.Logger
	// Metrics, when set, receives the registry's counters. Registration fails if
	// another registry's counters are already on it.
	Metrics *prometheus.Registry
	// MaxAttestationAge is how old a SoftPOS attestation (DE 48 AT) may be; an
	// attestation dated further in the future than this is refused too. Default 120 s.
	MaxAttestationAge time.Duration
	// SeenFlushInterval is how often last-seen data is written to Badger. Default
	// 10 s; a negative value disables the background flush (FlushSeen and Close
	// still write it).
	SeenFlushInterval time.Duration
	// IncidentQueue is the capacity of the queue of incidents waiting to be written.
	// Default 1024. When it is full, Check writes the incident itself.
	IncidentQueue int
	// Persist, when set, stores incidents durably (returning once they are on disk),
	// in place of a Badger transaction and sync of the registry's own: the switch
	// hands them to the journal's group commit.
	Persist func(ctx context.Context, kvs [][2][]byte) error
	// Keys, when set, looks a key of the key store up by ID, so that the key
	// references of imported terminals can be checked: it returns an error when the
	// key does not exist or has no usable version. Nil skips the check.
	Keys func(id string) (KeyInfo, error)
	// WebhookAllow lists the URLs alert rules' webhook actions may post to (see
	// alerts.webhook_allow in the configuration); empty allows none.
	WebhookAllow []string
}

// KeyInfo is what the registry needs to know of a key of the key store.
type KeyInfo struct {
	Type  string // TMK, TPK, TAK, BDK, ZPK, ...
	Owner string // terminal ID, issuer ID, or KSN prefix (BDK)
}

// Registry holds merchants and terminals, their lifecycle (changes under two-person
// review and the operation log), incidents and offline alerts. All its methods are
// safe for concurrent use. Check, Seen, Terminal and Merchant read an in-memory
// snapshot and never touch Badger or a lock shared with writers.
type Registry struct {
	db    *badger.DB
	clock func() time.Time
	log   zerolog.Logger
	opts  Options
	m     *metrics

	snap atomic.Pointer[snapshot]

	// mu serialises every write to Badger except incidents and last-seen data.
	mu       sync.Mutex
	logSeq   uint64 // last oplog sequence
	logHash  string // hash of the last oplog entry
	chgSeq   uint64
	alrSeq   uint64
	rules    map[string]*AlertRule
	alertIdx map[string]alertRef // rule ID + "/" + terminal ID -> latest alert

	incSeq   atomic.Uint64
	incQ     chan incItem
	qmu      sync.RWMutex // guards the switch from queued to synchronous incidents
	qclosed  bool
	seenMu   sync.Mutex // serialises FlushSeen
	stop     chan struct{}
	wg       sync.WaitGroup
	closeErr error
	once     sync.Once
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
	dirty bool
}

type seenState struct {
	t      time.Time
	addr   netip.Addr
	loc    GeoPoint
	hasLoc bool
}

// New loads the registry stored under "reg/" in db (an open database shared with
// other subsystems) and starts its background writers. clock is the time source for
// everything the registry stamps (nil means time.Now). Call Close before closing db.
func New(db *badger.DB, clock func() time.Time, opts Options) (*Registry, error) {
	if db == nil {
		return nil, errors.New("registry: nil Badger database")
	}
	if clock == nil {
		clock = time.Now
	}
	if opts.MaxAttestationAge <= 0 {
		opts.MaxAttestationAge = DefaultMaxAttestationAge
	}
	if opts.SeenFlushInterval == 0 {
		opts.SeenFlushInterval = 10 * time.Second
	}
	if opts.IncidentQueue <= 0 {
		opts.IncidentQueue = 1024
	}
	r := &Registry{
		db:       db,
		clock:    clock,
		log:      opts.Logger,
		opts:     opts,
		rules:    map[string]*AlertRule{},
		alertIdx: map[string]alertRef{},
		incQ:     make(chan incItem, opts.IncidentQueue),
		stop:     make(chan struct{}),
	}
	m, err := newMetrics(opts.Metrics)
	if err != nil {
		return nil, err
	}
	r.m = m
	if err := r.load(); err != nil {
		return nil, err
	}
	r.wg.Add(1)
	go r.incidentWriter()
	if opts.SeenFlushInterval > 0 {
		r.wg.Add(1)
		go r.seenFlusher(opts.SeenFlushInterval)
	}
	return r, nil
}

// Close stops the background writers, writes queued incidents and last-seen data,
// and returns the first error. It does not close the Badger database.
func (r *Registry) Close() error {
	r.once.Do(func() {
		r.qmu.Lock()
		r.qclosed = true
		r.qmu.Unlock()
		close(r.stop)
		r.wg.Wait()
		if err := r.FlushSeen(); err != nil && r.closeErr == nil {
			r.closeErr = err
		}
	})
	return r.closeErr
}

func (r *Registry) now() time.Time { return r.clock().UTC() }

func seqKey(prefix string, n uint64) []byte {
	return []byte(prefix + fmt.Sprintf("%020d", n))
}

// load reads everything under reg/ into memory.
func (r *Registry) load() error {
	s := &snapshot{merchants: map[string]*merchantSlot{}, terminals: map[string]*terminalSlot{}}
	err := r.db.View(func(txn *badger.Txn) error {
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
		if err := iterate(txn, pfxRule, func(k, v []byte) error {
			ar := new(AlertRule)
			if err := json.Unmarshal(v, ar); err != nil {
				return fmt.Errorf("registry: decode alert rule %s: %w", k, err)
			}
			r.rules[ar.ID] = ar
			return nil
		}); err != nil {
			return err
		}
		if err := iterate(txn, pfxAlert, func(k, v []byte) error {
			a := new(Alert)
			if err := json.Unmarshal(v, a); err != nil {
				return fmt.Errorf("registry: decode alert %s: %w", k, err)
			}
			r.indexAlert(a)
			if a.Seq > r.alrSeq {
				r.alrSeq = a.Seq
			}
			return nil
		}); err != nil {
			return err
		}
		var err error
		if r.chgSeq, _, err = lastSeq(txn, pfxChange); err != nil {
			return err
		}
		n, _, err := lastSeq(txn, pfxIncident)
		if err != nil {
			return err
		}
		r.incSeq.Store(n)
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
		return nil
	})
	if err != nil {
		return err
	}
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

// commitLocked runs fn in a read-write transaction and syncs the database so the
// write is durable. r.mu must be held.
func (r *Registry) commitLocked(fn func(txn *badger.Txn) error) error {
	if err := r.db.Update(fn); err != nil {
		return err
	}
	if err := r.db.Sync(); err != nil {
		return fmt.Errorf("registry: sync Badger: %w", err)
	}
	return nil
}

func putJSON(txn *badger.Txn, key []byte, v any) error {
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
func (r *Registry) publishMerchant(m *Merchant) {
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
// new terminals. r.mu must be held.
func (r *Registry) publishTerminals(ts ...*Terminal) {
	s := r.snap.Load()
	var fresh []*Terminal
	for _, t := range ts {
		t.prepare()
		if sl := s.terminals[t.ID]; sl != nil {
			sl.rec.Store(t)
		} else {
			fresh = append(fresh, t)
		}
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
func (r *Registry) Merchant(id string) (*Merchant, bool) {
	if sl := r.snap.Load().merchants[id]; sl != nil {
		return sl.rec.Load(), true
	}
	return nil, false
}

// Terminal returns the current record of terminal id (an immutable snapshot), for
// example to find its key references.
func (r *Registry) Terminal(id string) (*Terminal, bool) {
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
func (r *Registry) Merchants(f MerchantFilter) []*Merchant {
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
func (r *Registry) Terminals(f TerminalFilter) []*Terminal {
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

// --- last seen ---

// Seen records that terminal id sent a message at now from addr (and, when loc is
// present, at loc). Check calls it for every known terminal; call it yourself for
// messages that do not go through Check (0800 sign-on, echo). It takes only a
// per-terminal lock and does not allocate; the data reach Badger on the next flush.
func (r *Registry) Seen(id string, addr netip.Addr, loc GeoPoint, now time.Time) {
	if sl := r.snap.Load().terminals[id]; sl != nil {
		sl.touch(addr, loc, now)
	}
}

func (sl *terminalSlot) touch(addr netip.Addr, loc GeoPoint, now time.Time) {
	sl.mu.Lock()
	if !now.Before(sl.seen.t) {
		sl.seen.t = now
		if addr.IsValid() {
			sl.seen.addr = addr
		}
		if loc.valid() {
			sl.seen.loc, sl.seen.hasLoc = loc, true
		}
		sl.dirty = true
	}
	sl.mu.Unlock()
}

func (sl *terminalSlot) lastSeen() (LastSeen, bool) {
	sl.mu.Lock()
	s := sl.seen
	sl.mu.Unlock()
	if s.t.IsZero() {
		return LastSeen{}, false
	}
	ls := LastSeen{Time: s.t, Address: s.addr}
	if s.hasLoc {
		l := s.loc
		ls.Location = &l
	}
	return ls, true
}

// LastSeen returns when and from where terminal id was last seen; false when it is
// unknown or has never been seen.
func (r *Registry) LastSeen(id string) (LastSeen, bool) {
	if sl := r.snap.Load().terminals[id]; sl != nil {
		return sl.lastSeen()
	}
	return LastSeen{}, false
}

// FlushSeen writes the last-seen data that changed since the previous flush.
func (r *Registry) FlushSeen() error {
	r.seenMu.Lock()
	defer r.seenMu.Unlock()
	type item struct {
		sl *terminalSlot
		id string
		ls LastSeen
	}
	var items []item
	for id, sl := range r.snap.Load().terminals {
		sl.mu.Lock()
		d := sl.dirty
		sl.dirty = false
		sl.mu.Unlock()
		if d {
			ls, _ := sl.lastSeen()
			items = append(items, item{sl, id, ls})
		}
	}
	if len(items) == 0 {
		return nil
	}
	wb := r.db.NewWriteBatch()
	defer wb.Cancel()
	var err error
	for _, it := range items {
		ls := it.ls
		ls.Time = ls.Time.UTC()
		b, _ := json.Marshal(ls)
		if err = wb.Set([]byte(pfxSeen+it.id), b); err != nil {
			break
		}
	}
	if err == nil {
		err = wb.Flush()
	}
	if err != nil {
		for _, it := range items { // try again on the next flush
			it.sl.mu.Lock()
			it.sl.dirty = true
			it.sl.mu.Unlock()
		}
		return fmt.Errorf("registry: write last-seen of %d terminals: %w", len(items), err)
	}
	return nil
}

func (r *Registry) seenFlusher(every time.Duration) {
	defer r.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			if err := r.FlushSeen(); err != nil {
				r.log.Error().Err(err).Msg("registry: last-seen flush failed")
			}
		}
	}
}
