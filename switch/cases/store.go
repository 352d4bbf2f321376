package cases

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/carddata"
	"github.com/switchyard/switchyard/internal/kvjson"
	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/internal/statelog/kvsync"
	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/registry"
)

// Badger keys. Everything the store keeps is under "case/".
const (
	pfxCase = "case/c/"   // + 20-digit sequence -> Case JSON
	pfxRRN  = "case/rrn/" // + RRN -> 20-digit sequence (one case per transaction)
	revKey  = "case/rev"  // the statelog revision last applied (cluster only)
)

// RevisionKey is the Badger key of the cases' statelog revision, for a restore
// of their snapshot before they open (its value: kvsync.EncodeRevision).
const RevisionKey = revKey

// DefaultQueue is the default capacity of the queue of cases waiting to be written.
const DefaultQueue = 4096

// writeBatch is the most cases the writer stores with one transaction and one sync.
const writeBatch = 256

// Snapshotter captures a transaction as the rules saw it (*risk.Engine).
type Snapshotter interface {
	Snapshot(in *risk.Input) *risk.Snapshot
}

// Lists is the deny list that a confirmed fraud adds the card to (*risk.Lists).
type Lists interface {
	Add(who string, e risk.ListEntry) (risk.ListEntry, error)
	// Entry returns the entry of value on list with kind, if any.
	Entry(list, kind, value string) (risk.ListEntry, bool)
}

// Registry opens the merchant's incident for a confirmed fraud and keeps the
// operation log (*registry.Registry).
type Registry interface {
	OpenFraudIncident(caseID, merchantID, terminalID string) (*registry.Incident, error)
	LogOp(e registry.OpEntry, write func(txn *badger.Txn) error) (registry.OpEntry, error)
}

// Options tune a Store. Lists and Registry are needed to decide cases; Rules to
// show the values the rules saw.
type Options struct {
	Rules    Snapshotter
	Lists    Lists
	Registry Registry
	// Queue is the capacity of the queue between Open and the writer (default
	// DefaultQueue). When it is full, Open drops the case (see the package comment).
	Queue int
	// DenyTTL bounds a confirmed-fraud card's deny-list entry; zero means no expiry.
	DenyTTL time.Duration
	// Metrics, when set, receives the store's metrics.
	Metrics *prometheus.Registry
	// Logger receives case events; nothing it logs holds card data beyond the masked PAN.
	Logger zerolog.Logger
	// Clock stamps the cases and decisions (default time.Now).
	Clock func() time.Time
	// Log, when set, shares the cases with the other nodes of a cluster: every case
	// opened, assigned or decided is ordered through it before it is stored (so
	// two nodes never hand out the same case ID, and two analysts never decide one
	// case twice), and the other nodes' cases arrive through the Store's
	// statelog.Replica methods. Nil is a single node.
	Log statelog.Log
	// CatchUp, when set with Log, waits after a conflict until the store has
	// applied every commit the Log held (the cluster's StoreLog.CatchUp).
	CatchUp func(ctx context.Context, r statelog.Replica) error
	// CatchUpTimeout bounds the wait after a conflict (default
	// kvsync.DefaultCatchUpTimeout, 5 s).
	CatchUpTimeout time.Duration
}

// item is a case waiting for the writer, or a flush barrier when c is nil.
type item struct {
	c    *Case
	d    risk.Decision
	snap *risk.Snapshot
	done chan struct{}
}

// Store keeps the review cases. Its methods are safe for concurrent use.
type Store struct {
	db   *badger.DB
	opts Options
	log  zerolog.Logger

	q        chan item
	qmu      sync.RWMutex // guards closed against sends on q
	closed   bool
	dropping atomic.Bool // the queue overflowed and the drop was logged
	stop     chan struct{}
	wg       sync.WaitGroup
	once     sync.Once

	mu   sync.Mutex   // serializes assignments and decisions
	sync *kvsync.Sync // serializes every write, and shares it in a cluster
	seq  uint64       // last case sequence; written under the sync's lock
	open atomic.Int64

	opened   *prometheus.CounterVec
	dropped  prometheus.Counter
	deduped  prometheus.Counter
	decided  *prometheus.CounterVec
	failures prometheus.Counter
}

// New loads the cases stored in db and starts the writer. Call Close before
// closing db.
func New(db *badger.DB, opts Options) (*Store, error) {
	s, err := newStore(db, opts)
	if err != nil {
		return nil, err
	}
	s.start()
	return s, nil
}

// start starts the writer.
func (s *Store) start() {
	s.wg.Add(1)
	go s.writer()
}

// newStore loads the cases; the writer is not started (tests fill its queue first).
func newStore(db *badger.DB, opts Options) (*Store, error) {
	if db == nil {
		return nil, errors.New("cases: nil Badger database")
	}
	if opts.Queue <= 0 {
		opts.Queue = DefaultQueue
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	s := &Store{db: db, opts: opts, log: opts.Logger, q: make(chan item, opts.Queue), stop: make(chan struct{}),
		opened: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_cases_opened_total",
			Help: "Review cases opened, by the rules' action (review, alert)."}, []string{"action"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "switchyard_cases_dropped_total",
			Help: "Review cases not opened because the queue to the case writer was full (the transactions are in the journal)."}),
		deduped: prometheus.NewCounter(prometheus.CounterOpts{Name: "switchyard_cases_deduplicated_total",
			Help: "Review cases not opened because the transaction (RRN) already has one."}),
		decided: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_cases_decided_total",
			Help: "Review cases decided, by verdict."}, []string{"verdict"}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "switchyard_cases_write_errors_total",
			Help: "Batches of review cases the writer could not store."}),
	}
	for _, a := range []risk.Action{risk.ActionReview, risk.ActionAlert} {
		s.opened.WithLabelValues(string(a))
	}
	for _, v := range []Verdict{VerdictFraud, VerdictCleared} {
		s.decided.WithLabelValues(string(v))
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	var err error
	s.sync, err = kvsync.New(db, kvsync.Config{Name: "review cases", RevKey: revKey, Log: opts.Log,
		Conflict: ErrChanged, CatchUp: opts.CatchUp, CatchUpTimeout: opts.CatchUpTimeout, Sync: true, Prepare: s.prepareRemote})
	if err != nil {
		return nil, err
	}
	if opts.Metrics != nil {
		gauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "switchyard_cases_open",
			Help: "Review cases not yet decided (open or assigned)."}, func() float64 { return float64(s.open.Load()) })
		for _, c := range []prometheus.Collector{gauge, s.opened, s.dropped, s.deduped, s.decided, s.failures} {
			if err := opts.Metrics.Register(c); err != nil {
				return nil, fmt.Errorf("cases: register metrics: %w", err)
			}
		}
	}
	return s, nil
}

// load finds the last sequence and counts the undecided cases.
func (s *Store) load() error {
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfxCase), PrefetchValues: true, PrefetchSize: 100})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var c Case
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &c) }); err != nil {
				return fmt.Errorf("cases: read %s: %w", it.Item().Key(), err)
			}
			s.seq = max(s.seq, c.Seq)
			if c.Status != StatusDecided {
				s.open.Add(1)
			}
		}
		return nil
	})
}

// Close stops taking cases, writes those queued and stops the writer. It does not
// close the database.
func (s *Store) Close() error {
	s.once.Do(func() {
		s.qmu.Lock()
		s.closed = true
		s.qmu.Unlock()
		close(s.stop)
		s.wg.Wait()
	})
	return nil
}

// Open queues a case for a transaction the rules sent to review (or alert), and
// returns at once: it never waits for the disk. It copies what the case needs from
// in, d and rec, which the caller may reuse afterwards. Call it after Evaluate and
// before Observe, so that the counter values are those the rules saw.
func (s *Store) Open(_ context.Context, in *risk.Input, d *risk.Decision, rec *journal.Record) {
	c := &Case{Status: StatusOpen, Action: string(d.Action), Rule: d.Rule, Reason: d.Reason, Score: d.Score, RuleSet: d.Version,
		RRN: rec.RRN, Time: rec.Received.UTC(), MTI: rec.MTI, Type: rec.Type, TID: rec.TID, MID: rec.MID, STAN: rec.STAN,
		PANMasked: rec.PANMasked, CardHash: rec.CardHash, Amount: rec.Amount, Currency: rec.Currency}
	if c.MID == "" {
		c.MID = in.Merchant.ID
	}
	it := item{c: c, d: risk.Decision{Hits: append([]risk.Hit(nil), d.Hits...)}}
	if s.opts.Rules != nil {
		it.snap = s.opts.Rules.Snapshot(in)
	}
	s.qmu.RLock()
	defer s.qmu.RUnlock()
	if s.closed {
		s.dropped.Inc()
		return
	}
	select {
	case s.q <- it:
	default:
		s.dropped.Inc()
		if s.dropping.CompareAndSwap(false, true) {
			s.log.Error().Str("rrn", c.RRN).Str("tid", c.TID).Str("rule", c.Rule).Int("queue", cap(s.q)).
				Msg("review case queue full: cases are not opened until it drains (counted in switchyard_cases_dropped_total; the transactions and their rule hits are in the journal)")
		}
	}
}

// Flush waits until every case queued so far is stored.
func (s *Store) Flush() {
	done := make(chan struct{})
	s.qmu.RLock()
	if s.closed {
		s.qmu.RUnlock()
		return
	}
	s.q <- item{done: done}
	s.qmu.RUnlock()
	<-done
}

// writer stores queued cases: whatever is waiting is written together.
func (s *Store) writer() {
	defer s.wg.Done()
	var batch []item
	gather := func() {
		for len(batch) < writeBatch {
			select {
			case it := <-s.q:
				batch = append(batch, it)
			default:
				return
			}
		}
	}
	for {
		select {
		case it := <-s.q:
			batch = append(batch[:0], it)
			gather()
			s.write(batch)
		case <-s.stop:
			for { // nothing is queued after closed is set
				batch = batch[:0]
				gather()
				if len(batch) == 0 {
					return
				}
				s.write(batch)
			}
		}
	}
}

// write stores a batch of new cases with one transaction and one sync, skipping
// transactions that already have a case, and releases the flush barriers.
func (s *Store) write(batch []item) {
	var cs []*Case
	seen := map[string]bool{}
	for _, it := range batch {
		if it.c == nil || seen[it.c.RRN] {
			if it.c != nil {
				s.deduped.Inc()
			}
			continue
		}
		seen[it.c.RRN] = true
		it.c.Hits = it.snap.HitValues(&it.d)
		if it.c.Hits == nil {
			it.c.Hits = hitsOnly(it.d.Hits)
		}
		cs = append(cs, it.c)
	}
	if len(cs) > 0 {
		if err := s.store(cs); err != nil {
			s.failures.Inc()
			s.log.Error().Err(err).Int("cases", len(cs)).Str("first_rrn", cs[0].RRN).Msg("review cases not stored")
		}
	}
	if len(s.q) == 0 {
		// Drained: log the next overflow again. Before the barriers are released, so
		// that a Flush returns with the flag cleared.
		s.dropping.Store(false)
	}
	for _, it := range batch {
		if it.done != nil {
			close(it.done)
		}
	}
}

// hitsOnly turns the bare hits into traces without values (no rules engine given).
func hitsOnly(hits []risk.Hit) []risk.RuleTrace {
	out := make([]risk.RuleTrace, 0, len(hits))
	for _, h := range hits {
		out = append(out, risk.RuleTrace{Rule: h.Rule, Mode: h.Mode, Action: h.Action, Hit: true, Score: h.Score, Reason: h.Reason})
	}
	return out
}

func (s *Store) store(cs []*Case) error {
	var stored []*Case
	deduped := 0
	err := s.sync.Do(context.Background(), func() (statelog.Commit, func(), error) {
		seq := s.seq
		now := s.opts.Clock().UTC()
		stored, deduped = stored[:0], 0
		var kc kvsync.Commit
		err := s.db.View(func(txn *badger.Txn) error {
			for _, c := range cs {
				if _, err := txn.Get(rrnKey(c.RRN)); err == nil {
					deduped++
					continue
				} else if !errors.Is(err, badger.ErrKeyNotFound) {
					return fmt.Errorf("look up case of RRN %s: %w", c.RRN, err)
				}
				seq++
				c.Seq, c.ID, c.OpenedAt = seq, caseID(seq), now
				if err := putJSON(&kc, seqKey(seq), c); err != nil {
					return err
				}
				kc.Set(rrnKey(c.RRN), []byte(fmt.Sprintf("%020d", seq)))
				stored = append(stored, c)
			}
			return nil
		})
		return kc.Commit, func() { s.seq = seq }, err
	}, nil)
	if err != nil {
		return fmt.Errorf("cases: store %d case(s) from RRN %s: %w", len(cs), cs[0].RRN, err)
	}
	s.deduped.Add(float64(deduped))
	for _, c := range stored {
		s.open.Add(1)
		s.opened.WithLabelValues(c.Action).Inc()
		s.log.Info().Str("case", c.ID).Str("rrn", c.RRN).Str("tid", c.TID).Str("mid", c.MID).Str("pan", c.PANMasked).
			Int64("amount", c.Amount).Str("action", c.Action).Str("rule", c.Rule).Msg("review case opened")
	}
	return nil
}

// prepareRemote reads the cases another node's commit changes, before it is
// written, and returns what to count after: the last sequence, the open cases.
func (s *Store) prepareRemote(c statelog.Commit) func() {
	var delta int64
	seq := s.seq
	_ = s.db.View(func(txn *badger.Txn) error {
		for _, kv := range c.Writes {
			if kv.Value == nil || !bytes.HasPrefix(kv.Key, []byte(pfxCase)) {
				continue
			}
			var nc Case
			if json.Unmarshal(kv.Value, &nc) != nil {
				continue
			}
			seq = max(seq, nc.Seq)
			wasOpen := false
			if item, err := txn.Get(kv.Key); err == nil {
				var old Case
				if item.Value(func(v []byte) error { return json.Unmarshal(v, &old) }) == nil {
					wasOpen = old.Status != StatusDecided
				}
			}
			switch isOpen := nc.Status != StatusDecided; {
			case isOpen && !wasOpen:
				delta++
			case !isOpen && wasOpen:
				delta--
			}
		}
		return nil
	})
	return func() {
		s.seq = seq
		s.open.Add(delta)
	}
}

// ApplyRemote implements statelog.Replica: it stores another node's cases and
// changes to cases, so that they are listed, assigned and decided here too.
func (s *Store) ApplyRemote(rev uint64, c statelog.Commit) error { return s.sync.ApplyRemote(rev, c) }

// Revision implements statelog.Replica.
func (s *Store) Revision() uint64 { return s.sync.Revision() }

func seqKey(n uint64) []byte   { return []byte(pfxCase + fmt.Sprintf("%020d", n)) }
func rrnKey(rrn string) []byte { return []byte(pfxRRN + rrn) }

func putJSON(kc *kvsync.Commit, key []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	kc.Set(key, b)
	return nil
}

// Filter selects cases; empty fields match everything.
type Filter struct {
	Status     Status
	Action     string // review or alert
	AssignedTo string
	TID, MID   string
	Limit      int // the newest this many; 0 means 1000
}

// List returns the matching cases, oldest first, after the queued ones are stored.
func (s *Store) List(f Filter) ([]*Case, error) {
	s.Flush()
	return kvjson.Newest(s.db, pfxCase, f.Limit, "cases: read", func(c *Case) bool {
		return (f.Status == "" || c.Status == f.Status) && (f.Action == "" || c.Action == f.Action) &&
			(f.AssignedTo == "" || c.AssignedTo == f.AssignedTo) && (f.TID == "" || c.TID == f.TID) && (f.MID == "" || c.MID == f.MID)
	})
}

// Get returns case id (CASE-n), after the queued ones are stored.
func (s *Store) Get(id string) (*Case, error) {
	n, err := parseID(id)
	if err != nil {
		return nil, err
	}
	s.Flush()
	return s.get(n)
}

// ByRRN returns the case of transaction rrn.
func (s *Store) ByRRN(rrn string) (*Case, error) {
	s.Flush()
	var n uint64
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(rrnKey(rrn))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			var perr error
			n, perr = strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
			return perr
		})
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, kindErrorf(ErrNotFound, "RRN %s has no review case", rrn)
	}
	if err != nil {
		return nil, fmt.Errorf("cases: look up RRN %s: %w", rrn, err)
	}
	return s.get(n)
}

func (s *Store) get(n uint64) (*Case, error) {
	c := new(Case)
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(seqKey(n))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error { return json.Unmarshal(v, c) })
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, kindErrorf(ErrNotFound, "case %s does not exist", caseID(n))
	}
	if err != nil {
		return nil, fmt.Errorf("cases: read %s: %w", caseID(n), err)
	}
	return c, nil
}

// Actor is who assigns or decides a case: the name recorded on the case and in the
// operations log, and the role it acts in (the admin API's roles: analysts assign
// and decide, admin may do all, even decide a case assigned to another analyst).
type Actor struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// The roles the case checks know.
const (
	RoleAnalyst = "analyst"
	RoleAdmin   = "admin"
)

// maskText masks the card numbers in s, free text p typed into field of object
// (carddata.MaskText), so that a PAN pasted into a note is not stored in clear
// (the cases' Badger files, the operation log, in a cluster the STATE stream). It
// logs that it did, never the number; the note is kept, masked.
func (s *Store) maskText(p Actor, object, field, text string) string {
	m, n := carddata.MaskText(text)
	if n > 0 {
		s.log.Info().Str("object", object).Str("field", field).Str("by", p.Name).Int("card_numbers", n).
			Msg("card number masked in free text")
	}
	return m
}

// mayHandle: analysts assign and decide cases; admin may do all.
func mayHandle(p Actor) bool {
	return p.Role == RoleAnalyst || p.Role == RoleAdmin
}

// Assign gives case id to analyst to (p itself when to is empty). An open case or
// one assigned to someone else may be assigned; a decided case may not.
func (s *Store) Assign(p Actor, id, to, note string) (*Case, error) {
	if !mayHandle(p) {
		return nil, kindErrorf(ErrForbidden, "%s (%s) may not assign review cases: analyst or admin role needed", p.Name, p.Role)
	}
	to = strings.TrimSpace(to)
	if to == "" {
		to = p.Name
	}
	n, err := parseID(id)
	if err != nil {
		return nil, err
	}
	if pr := registry.NoteProblem(note); pr != "" {
		return nil, kindErrorf(ErrInvalid, "case %s: note: %s; free text takes any script, tabs and line breaks, "+
			"not characters that reorder or hide text", id, pr)
	}
	note = s.maskText(p, "case "+id, "note", strings.TrimSpace(note))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Flush()
	c, err := s.change(p, n, "case.assign", note, func(c *Case, now time.Time) error {
		if c.Status == StatusDecided {
			return kindErrorf(ErrConflict, "case %s is decided (%s by %s): it cannot be assigned", c.ID, c.Decision.Verdict, c.Decision.By)
		}
		c.Status, c.AssignedTo, c.AssignedBy, c.AssignedAt = StatusAssigned, to, p.Name, &now
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.log.Info().Str("case", c.ID).Str("rrn", c.RRN).Str("assigned_to", to).Str("by", p.Name).Msg("review case assigned")
	return c, nil
}

// Decide records p's verdict on case id. The case must be assigned, to p unless p
// is an admin, and not yet decided. Confirmed fraud puts the card hash on the deny
// list and opens an incident for the merchant before the decision is stored; when
// storing fails after that, deciding again is safe (the deny entry is replaced, a
// second incident opened).
func (s *Store) Decide(p Actor, id string, v Verdict, note string) (*Case, error) {
	if !mayHandle(p) {
		return nil, kindErrorf(ErrForbidden, "%s (%s) may not decide review cases: analyst or admin role needed", p.Name, p.Role)
	}
	if v != VerdictFraud && v != VerdictCleared {
		return nil, kindErrorf(ErrInvalid, "verdict %q: want %s or %s", v, VerdictFraud, VerdictCleared)
	}
	if s.opts.Registry == nil || (v == VerdictFraud && s.opts.Lists == nil) {
		return nil, errors.New("cases: this store cannot decide (no registry or deny list)")
	}
	if pr := registry.NoteProblem(note); pr != "" {
		return nil, kindErrorf(ErrInvalid, "case %s: decision note: %s; free text takes any script, tabs and line breaks, "+
			"not characters that reorder or hide text", id, pr)
	}
	note = s.maskText(p, "case "+id, "decision note", strings.TrimSpace(note))
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.Get(id)
	if err != nil {
		return nil, err
	}
	switch {
	case c.Status == StatusDecided:
		return nil, kindErrorf(ErrConflict, "case %s is already decided (%s by %s at %s)", c.ID, c.Decision.Verdict, c.Decision.By, c.Decision.At.Format(time.RFC3339))
	case c.Status == StatusOpen:
		return nil, kindErrorf(ErrConflict, "case %s is open: assign it first (switchyard case assign %s)", c.ID, c.ID)
	case c.AssignedTo != p.Name && p.Role != RoleAdmin:
		return nil, kindErrorf(ErrForbidden, "case %s is assigned to %s, not %s: reassign it to decide it", c.ID, c.AssignedTo, p.Name)
	}
	now := s.opts.Clock().UTC()
	d := &Decision{Verdict: v, By: p.Name, At: now, Note: note}
	if v == VerdictFraud {
		e := risk.ListEntry{List: risk.ListDeny, Kind: risk.KindCard, Value: c.CardHash,
			Note: fmt.Sprintf("%s confirmed fraud (RRN %s): %s", c.ID, c.RRN, note)}
		if s.opts.DenyTTL > 0 {
			e.ExpiresAt = now.Add(s.opts.DenyTTL)
		}
		// A card already denied for longer (or for good) keeps its longer entry:
		// the verdict replacing it with DenyTTL's would end it sooner, a
		// deny-list removal nobody reviewed (switch/listreview).
		if cur, ok := s.opts.Lists.Entry(e.List, e.Kind, e.Value); ok && !e.ExpiresAt.IsZero() &&
			(cur.ExpiresAt.IsZero() || cur.ExpiresAt.After(e.ExpiresAt)) {
			e.ExpiresAt = cur.ExpiresAt
		}
		if _, err := s.opts.Lists.Add(p.Name, e); err != nil {
			return nil, fmt.Errorf("case %s: put the card on the deny list: %w", c.ID, err)
		}
		d.DenyListed = true
		inc, err := s.opts.Registry.OpenFraudIncident(c.ID, c.MID, c.TID)
		if err != nil {
			return nil, fmt.Errorf("case %s: card deny-listed, but the merchant's incident not opened (decide again): %w", c.ID, err)
		}
		d.Incident = inc.ID
	} else {
		d.Counters = counters(c.Hits)
	}
	c, err = s.change(p, c.Seq, "case.decide", note, func(c *Case, _ time.Time) error {
		// Checked again: another node may have decided the case meanwhile.
		if c.Status == StatusDecided {
			return kindErrorf(ErrConflict, "case %s is already decided (%s by %s at %s)", c.ID, c.Decision.Verdict, c.Decision.By, c.Decision.At.Format(time.RFC3339))
		}
		c.Status, c.Decision = StatusDecided, d
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.open.Add(-1)
	s.decided.WithLabelValues(string(v)).Inc()
	s.log.Warn().Str("case", c.ID).Str("rrn", c.RRN).Str("tid", c.TID).Str("mid", c.MID).Str("pan", c.PANMasked).
		Str("verdict", string(v)).Str("by", p.Name).Str("incident", d.Incident).Msg("review case decided")
	return c, nil
}

// change reads case n, lets edit change it and stores it with its operation log
// entry in one transaction; in a cluster, ordered first through the Log (edit runs
// again on the newer case after a conflict). Callers hold s.mu and flushed the queue.
//
// In a cluster the case is ordered through the cases' Log and the operation log
// entry through the registry's: when the registry refuses its commit after the
// case's was ordered, this node reports the error but the change to the case still
// arrives through ApplyRemote, without its operation log entry.
func (s *Store) change(p Actor, n uint64, action, note string, edit func(c *Case, now time.Time) error) (*Case, error) {
	if s.opts.Registry == nil {
		return nil, errors.New("cases: no operation log to record the change in")
	}
	var c *Case
	var entry registry.OpEntry
	err := s.sync.Do(context.Background(), func() (statelog.Commit, func(), error) {
		var err error
		if c, err = s.get(n); err != nil {
			return statelog.Commit{}, nil, err
		}
		before := summary(c)
		now := s.opts.Clock().UTC()
		if err := edit(c, now); err != nil {
			return statelog.Commit{}, nil, err
		}
		entry = registry.OpEntry{Time: now, Actor: p.Name, Role: p.Role, Action: action,
			TargetType: "case", Target: c.ID, Reason: note, Before: before, After: summary(c)}
		var kc kvsync.Commit
		err = putJSON(&kc, seqKey(c.Seq), c)
		return kc.Commit, nil, err
	}, func(write func(txn *badger.Txn) error) error {
		_, err := s.opts.Registry.LogOp(entry, write)
		return err
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) || (errors.Is(err, ErrConflict) && !errors.Is(err, ErrChanged)) {
			return nil, err
		}
		return nil, fmt.Errorf("cases: %s of %s: %w", action, caseID(n), err)
	}
	return c, nil
}

// MaskStoredText rewrites masked (carddata.MaskText) the card numbers in the
// decision notes that a version before masking (5 December 2026) stored in clear
// in the cases. Each chunk of cases is one commit of the cases (shared with the
// other nodes like any, so safe on every node at once); a case without a card
// number is not written, so a second run writes nothing. The notes' copies in the
// operation log are the registry's (registry.MaskStoredText).
func (s *Store) MaskStoredText(ctx context.Context) (carddata.Tally, error) {
	n, c, err := s.sync.Rewrite(ctx, []byte(pfxCase), 256, func(_, v []byte) ([]byte, int, error) {
		m, c, err := carddata.MaskJSON(v, "decision.note")
		if err != nil || c == 0 {
			return nil, 0, err
		}
		return m, c, nil
	}, nil)
	t := carddata.Tally{Records: n, CardNumbers: c}
	if err != nil {
		return t, fmt.Errorf("cases: mask the card numbers in stored decision notes: %w", err)
	}
	return t, nil
}
