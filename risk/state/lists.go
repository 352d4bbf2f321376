package state

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/internal/carddata"
	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/internal/statelog/kvsync"
)

const (
	listsPrefix     = KeyPrefix + "lists/"
	listEntryPrefix = listsPrefix + "e/"
	listAuditPrefix = listsPrefix + "audit/"
	listsRevKey     = listsPrefix + "rev" // the statelog revision last applied (cluster only)
	// ListsRevisionKey is listsRevKey for a restore of the lists' snapshot before
	// they open (its value: kvsync.EncodeRevision).
	ListsRevisionKey = listsRevKey
	maxAuditReturned = 10000
)

// The list kinds: what a list entry's value is.
const (
	KindBIN      = "bin"
	KindCard     = "card"
	KindTerminal = "terminal"
	KindMerchant = "merchant"
	KindCountry  = "country"
)

// The two lists the lists.* flags read. Other list names are allowed and read
// with in_list.
const (
	ListDeny  = "deny"
	ListAllow = "allow"
)

var listKinds = []string{KindBIN, KindCard, KindTerminal, KindMerchant, KindCountry}

// ValidListKind reports whether k is one of the list kinds.
func ValidListKind(k string) bool {
	for _, x := range listKinds {
		if x == k {
			return true
		}
	}
	return false
}

// ListEntry is one value on a list.
type ListEntry struct {
	// List is the list's name: deny, allow, or another name read with in_list.
	List string `json:"list"`
	// Kind is bin, card, terminal, merchant or country.
	Kind string `json:"kind"`
	// Value is a 6-digit BIN, a card hash (never a PAN), a terminal ID (DE 41),
	// a merchant ID (DE 42) or an ISO 3166 alpha-2 country code.
	Value string `json:"value"`
	// ExpiresAt ends the entry; zero means never.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// Note says why the entry is there.
	Note string `json:"note,omitempty"`
	// AddedBy is the principal who added the entry.
	AddedBy string `json:"added_by,omitempty"`
	// AddedAt is when the entry was added.
	AddedAt time.Time `json:"added_at,omitzero"`
}

// AuditEntry records one change to the lists.
type AuditEntry struct {
	Time  time.Time `json:"time"`  // when
	Who   string    `json:"who"`   // the principal
	Op    string    `json:"op"`    // add or remove
	Entry ListEntry `json:"entry"` // what
}

var (
	listNamePattern = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)
	binPattern      = regexp.MustCompile(`^[0-9]{6}$`)
	cardHashPattern = regexp.MustCompile(`^[A-Za-z0-9_+=-]{16,128}$`)
	idValuePattern  = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,32}$`)
	countryPattern  = regexp.MustCompile(`^[A-Z]{2}$`)
)

// Normalize checks e and puts its value into canonical form (country codes in
// upper case). It refuses a value that looks like a clear PAN, and masks the card
// numbers in the note (carddata.MaskText): a note is free text a person typed, kept
// rather than refused.
func (e *ListEntry) Normalize() error {
	e.Note, _ = carddata.MaskText(e.Note)
	e.List = strings.TrimSpace(e.List)
	e.Kind = strings.TrimSpace(e.Kind)
	e.Value = strings.TrimSpace(e.Value)
	if !listNamePattern.MatchString(e.List) {
		return fmt.Errorf("list name %q: want lower-case letters, digits, _ and - (at most 32), like deny or allow", e.List)
	}
	if !ValidListKind(e.Kind) {
		return fmt.Errorf("list kind %q: want bin, card, terminal, merchant or country", e.Kind)
	}
	// A merchant ID has 15 digits, as some card numbers do: for kind merchant only
	// runs that read as a card number (carddata.InID) are refused, such as a PAN
	// of 16 digits (until 7 December 2026 kind merchant took any value).
	if e.Kind != KindMerchant && carddata.Like(e.Value) || e.Kind == KindMerchant && carddata.InID(e.Value) {
		return fmt.Errorf("list value for kind %s looks like a card number: give the card hash, never a PAN", e.Kind)
	}
	ok := false
	switch e.Kind {
	case KindBIN:
		ok = binPattern.MatchString(e.Value)
	case KindCard:
		ok = cardHashPattern.MatchString(e.Value)
	case KindTerminal, KindMerchant:
		ok = idValuePattern.MatchString(e.Value)
	case KindCountry:
		e.Value = strings.ToUpper(e.Value)
		ok = countryPattern.MatchString(e.Value)
	}
	if !ok {
		want := map[string]string{KindBIN: "6 digits", KindCard: "a card hash (16-128 letters, digits, _ + = -)",
			KindTerminal: "a terminal ID", KindMerchant: "a merchant ID", KindCountry: "an ISO 3166 alpha-2 code like CN"}[e.Kind]
		return fmt.Errorf("list value %q for kind %s: want %s", e.Value, e.Kind, want)
	}
	return nil
}

// CardHashHexLen is the length of a card hash as the switch writes it
// (pipeline's CardHash, the journal's card_hash, a case's card): the first 16
// bytes of an HMAC-SHA256 of the PAN, in lower-case hex.
const CardHashHexLen = 32

// CheckNew refuses e, a normalized entry, as a new entry (an addition) when it
// could never match: a card value of hex digits only that is not a card hash as
// the switch writes it (CardHashHexLen lower-case hex digits), such as one cut
// short to 16 characters, or the whole 64 of the HMAC, or in upper case. Until the
// fifteenth release of 8 December 2026 such a value was taken and never matched
// a card, silently. A card value with other characters (a test's placeholder,
// "card-hash-0001") is taken as before. A removal does not check this: an entry
// added before can still be removed.
func (e *ListEntry) CheckNew() error {
	if e.Kind != KindCard || strings.Trim(e.Value, "0123456789abcdefABCDEF") != "" {
		return nil
	}
	if len(e.Value) == CardHashHexLen && strings.ToLower(e.Value) == e.Value {
		return nil
	}
	what := fmt.Sprintf("%d hex digits", len(e.Value))
	if len(e.Value) == CardHashHexLen {
		what = "in upper case"
	}
	return fmt.Errorf("list value %q for kind card: want the card hash as the switch writes it, %d lower-case hex digits (the card_hash of journal --rrn RRN --json); this one is %s and would never match a card",
		e.Value, CardHashHexLen, what)
}

type listKey struct{ list, kind, value string }

// listSnapshot is an immutable view of the lists: transactions read it
// without locks while writers build the next one.
type listSnapshot struct {
	entries map[listKey]ListEntry
	// flag maps for the lists.* flags: deny then allow, each by listKinds order.
	flag [10]map[string]int64 // value -> expiry unix ns, 0 = never
}

func buildSnapshot(entries map[listKey]ListEntry) *listSnapshot {
	s := &listSnapshot{entries: entries}
	for i := range s.flag {
		s.flag[i] = map[string]int64{}
	}
	for k, e := range entries {
		li := -1
		switch k.list {
		case ListDeny:
			li = 0
		case ListAllow:
			li = 5
		}
		if li < 0 {
			continue
		}
		for ki, kind := range listKinds {
			if kind == k.kind {
				var exp int64
				if !e.ExpiresAt.IsZero() {
					exp = e.ExpiresAt.UnixNano()
				}
				s.flag[li+ki][k.value] = exp
			}
		}
	}
	return s
}

func (s *listSnapshot) has(i int, v string, now int64) bool {
	if v == "" {
		return false
	}
	exp, ok := s.flag[i][v]
	return ok && (exp == 0 || exp > now)
}

// ErrListsConflict is returned (wrapping statelog.ErrConflict) when a change to the
// lists conflicted twice with changes made on other nodes of the cluster.
var ErrListsConflict = errors.New("the rule lists changed on another node; retry")

// ListsOptions configure lists kept in Badger.
type ListsOptions struct {
	// Log, when set, shares the lists with the other nodes of a cluster: every
	// change is ordered through it before it is applied, and the other nodes'
	// changes arrive through the Lists' statelog.Replica methods and are used by the
	// next transaction. Nil is a single node.
	Log statelog.Log
	// CatchUp, when set with Log, waits after a conflict until the store has
	// applied every commit the Log held (the cluster's StoreLog.CatchUp).
	CatchUp func(ctx context.Context, r statelog.Replica) error
	// CatchUpTimeout bounds the wait after a conflict (default
	// kvsync.DefaultCatchUpTimeout, 5 s).
	CatchUpTimeout time.Duration
}

// Lists holds the deny, allow and other lists, persisted in Badger under
// risk/lists/ with every change audited. Reads are lock-free.
type Lists struct {
	db   *badger.DB
	sync *kvsync.Sync // with a DB: serializes writers, and shares them in a cluster
	mu   sync.Mutex   // without a DB: serializes writers
	snap atomic.Pointer[listSnapshot]
	seq  atomic.Uint64
	// audit is the in-memory audit trail when there is no DB.
	audit []AuditEntry
	now   func() time.Time
}

// NewLists loads the lists from db. A nil db gives in-memory lists (tests, tools).
func NewLists(db *badger.DB) (*Lists, error) { return OpenLists(db, ListsOptions{}) }

// OpenLists loads the lists from db with options (a cluster's Log). A nil db gives
// in-memory lists, which cannot be shared.
func OpenLists(db *badger.DB, opts ListsOptions) (*Lists, error) {
	l := &Lists{db: db, now: time.Now}
	entries := map[listKey]ListEntry{}
	if db == nil && opts.Log != nil {
		return nil, errors.New("risk lists: a cluster's Log needs the lists in Badger")
	}
	if db != nil {
		var err error
		l.sync, err = kvsync.New(db, kvsync.Config{Name: "risk lists", RevKey: listsRevKey, Log: opts.Log,
			Conflict: ErrListsConflict, CatchUp: opts.CatchUp, CatchUpTimeout: opts.CatchUpTimeout, Entry: l.entry, Applied: l.applied})
		if err != nil {
			return nil, err
		}
		err = db.View(func(txn *badger.Txn) error {
			opts := badger.DefaultIteratorOptions
			opts.Prefix = []byte(listEntryPrefix)
			it := txn.NewIterator(opts)
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				var e ListEntry
				if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &e) }); err != nil {
					return fmt.Errorf("list entry %s: %w", it.Item().Key(), err)
				}
				entries[listKey{e.List, e.Kind, e.Value}] = e
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("load risk lists from Badger: %w", err)
		}
	}
	l.snap.Store(buildSnapshot(entries))
	return l, nil
}

// ListsOf returns read-only in-memory lists that hold entries as given (a running
// switch's, read through its API): what the risk tools (backtest, explain) evaluate
// rules with. Nothing is audited or stored.
func ListsOf(entries []ListEntry) *Lists {
	m := make(map[listKey]ListEntry, len(entries))
	for _, e := range entries {
		m[listKey{e.List, e.Kind, e.Value}] = e
	}
	l := &Lists{now: time.Now}
	l.snap.Store(buildSnapshot(m))
	return l
}

// Contains reports whether value is on list with the given kind and not
// expired at t. A nil Lists contains nothing.
func (l *Lists) Contains(list, kind, value string, t time.Time) bool {
	if l == nil || value == "" {
		return false
	}
	e, ok := l.snap.Load().entries[listKey{list, kind, value}]
	return ok && (e.ExpiresAt.IsZero() || e.ExpiresAt.After(t))
}

// Flags computes the lists.* flags at t (unix ns) of a transaction with these
// BIN, card hash, terminal ID, merchant ID and issuer country.
func (l *Lists) Flags(bin, card, terminal, merchant, country string, t int64) ListFlags {
	s := l.snap.Load()
	if len(s.entries) == 0 {
		return ListFlags{}
	}
	vals := [5]string{bin, card, terminal, merchant, country}
	return ListFlags{
		DenyBIN: s.has(0, vals[0], t), DenyCard: s.has(1, vals[1], t), DenyTerminal: s.has(2, vals[2], t),
		DenyMerchant: s.has(3, vals[3], t), DenyCountry: s.has(4, vals[4], t),
		AllowBIN: s.has(5, vals[0], t), AllowCard: s.has(6, vals[1], t), AllowTerminal: s.has(7, vals[2], t),
		AllowMerchant: s.has(8, vals[3], t), AllowCountry: s.has(9, vals[4], t),
	}
}

// ListFlags tells whether this transaction's BIN, card, terminal, merchant and
// issuer country are on the deny and allow lists (entries not expired).
type ListFlags struct {
	DenyBIN      bool `json:"deny_bin" yaml:"deny_bin" expr:"deny_bin"`                // txn.bin is on list deny, kind bin
	DenyCard     bool `json:"deny_card" yaml:"deny_card" expr:"deny_card"`             // txn.card_hash is on list deny, kind card
	DenyTerminal bool `json:"deny_terminal" yaml:"deny_terminal" expr:"deny_terminal"` // terminal.id is on list deny, kind terminal
	DenyMerchant bool `json:"deny_merchant" yaml:"deny_merchant" expr:"deny_merchant"` // merchant.id is on list deny, kind merchant
	DenyCountry  bool `json:"deny_country" yaml:"deny_country" expr:"deny_country"`    // txn.country is on list deny, kind country

	AllowBIN      bool `json:"allow_bin" yaml:"allow_bin" expr:"allow_bin"`                // txn.bin is on list allow, kind bin
	AllowCard     bool `json:"allow_card" yaml:"allow_card" expr:"allow_card"`             // txn.card_hash is on list allow, kind card
	AllowTerminal bool `json:"allow_terminal" yaml:"allow_terminal" expr:"allow_terminal"` // terminal.id is on list allow, kind terminal
	AllowMerchant bool `json:"allow_merchant" yaml:"allow_merchant" expr:"allow_merchant"` // merchant.id is on list allow, kind merchant
	AllowCountry  bool `json:"allow_country" yaml:"allow_country" expr:"allow_country"`    // txn.country is on list allow, kind country
}

// Entries returns the entries not expired, sorted by list, kind and value.
func (l *Lists) Entries() []ListEntry {
	now := l.now()
	var out []ListEntry
	for _, e := range l.snap.Load().entries {
		if e.ExpiresAt.IsZero() || e.ExpiresAt.After(now) {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.List != b.List {
			return a.List < b.List
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.Value < b.Value
	})
	return out
}

// Entry returns the entry of value on list with kind, expired or not, and
// whether there is one (the value given as Normalize leaves it).
func (l *Lists) Entry(list, kind, value string) (ListEntry, bool) {
	e, ok := l.snap.Load().entries[listKey{list, kind, value}]
	return e, ok
}

func entryKey(k listKey) []byte {
	return []byte(listEntryPrefix + k.list + "/" + k.kind + "/" + k.value)
}

// Add puts e on its list (replacing an entry with the same list, kind and
// value) and audits the change as done by who. e must be a valid new entry
// (Normalize, CheckNew).
func (l *Lists) Add(who string, e ListEntry) (ListEntry, error) {
	if err := e.Normalize(); err != nil {
		return e, err
	}
	if err := e.CheckNew(); err != nil {
		return e, err
	}
	if who == "" {
		return e, errors.New("list change without a principal: who made it must be audited")
	}
	now := l.now().UTC()
	if !e.ExpiresAt.IsZero() && !e.ExpiresAt.After(now) {
		return e, fmt.Errorf("list entry %s/%s/%s: expiry %s is in the past", e.List, e.Kind, e.Value, e.ExpiresAt.Format(time.RFC3339))
	}
	e.AddedBy, e.AddedAt = who, now
	k := listKey{e.List, e.Kind, e.Value}
	a := AuditEntry{Time: now, Who: who, Op: "add", Entry: e}
	put := func() {
		cur := l.snap.Load().entries
		next := make(map[listKey]ListEntry, len(cur)+1)
		for kk, vv := range cur {
			next[kk] = vv
		}
		next[k] = e
		l.snap.Store(buildSnapshot(next))
	}
	if l.db == nil {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.audit = append(l.audit, a)
		put()
		return e, nil
	}
	err := l.sync.Do(context.Background(), func() (statelog.Commit, func(), error) {
		var c kvsync.Commit
		v, _ := json.Marshal(e)
		c.Set(entryKey(k), v)
		l.writeAudit(&c, a)
		return c.Commit, put, nil
	}, nil)
	if err != nil {
		return e, fmt.Errorf("add list entry %s/%s/%s: %w", e.List, e.Kind, e.Value, err)
	}
	return e, nil
}

// entry gives the Badger entry of a key a commit sets: a list entry that expires
// is kept a minute past its expiry; one already past that is not written.
func (l *Lists) entry(kv statelog.KV) *badger.Entry { return listsEntry(kv, l.now()) }

// ListsRestoreEntry is the Badger entry of a key of the lists' snapshot restored
// before they open (kvsync.Restore): a list entry expires as when its commit was
// applied, and one already expired is not written (nil).
func ListsRestoreEntry(kv statelog.KV) *badger.Entry { return listsEntry(kv, time.Now()) }

// listsEntry is the Badger entry of a key the lists' commits set, at now.
func listsEntry(kv statelog.KV, now time.Time) *badger.Entry {
	ent := badger.NewEntry(kv.Key, kv.Value)
	if !bytes.HasPrefix(kv.Key, []byte(listEntryPrefix)) {
		return ent
	}
	var e ListEntry
	if err := json.Unmarshal(kv.Value, &e); err != nil || e.ExpiresAt.IsZero() {
		return ent
	}
	ttl := e.ExpiresAt.Sub(now) + time.Minute
	if ttl <= 0 {
		return nil
	}
	return ent.WithTTL(ttl)
}

// applied puts the list entries of another node's commit (already in Badger) into
// the snapshot the transactions read.
func (l *Lists) applied(c statelog.Commit) {
	cur := l.snap.Load().entries
	next := make(map[listKey]ListEntry, len(cur)+1)
	for kk, vv := range cur {
		next[kk] = vv
	}
	for _, kv := range c.Writes {
		rest, ok := bytes.CutPrefix(kv.Key, []byte(listEntryPrefix))
		if !ok {
			continue
		}
		parts := strings.SplitN(string(rest), "/", 3)
		if len(parts) != 3 {
			continue
		}
		k := listKey{parts[0], parts[1], parts[2]}
		if kv.Value == nil {
			delete(next, k)
			continue
		}
		var e ListEntry
		if err := json.Unmarshal(kv.Value, &e); err != nil {
			continue // Badger has it; a restart reports it
		}
		next[k] = e
	}
	l.snap.Store(buildSnapshot(next))
}

// ApplyRemote implements statelog.Replica: it applies another node's change to the
// lists (Badger, then the snapshot the next transaction reads).
func (l *Lists) ApplyRemote(rev uint64, c statelog.Commit) error {
	if l.sync == nil {
		return errors.New("risk lists: in-memory lists cannot apply another node's change")
	}
	return l.sync.ApplyRemote(rev, c)
}

// Revision implements statelog.Replica.
func (l *Lists) Revision() uint64 {
	if l.sync == nil {
		return 0
	}
	return l.sync.Revision()
}

// Remove takes a value off a list and audits the change as done by who. It
// reports whether the value was there.
func (l *Lists) Remove(who, list, kind, value string) (bool, error) {
	e := ListEntry{List: list, Kind: kind, Value: value}
	if err := e.Normalize(); err != nil {
		return false, err
	}
	if who == "" {
		return false, errors.New("list change without a principal: who made it must be audited")
	}
	k := listKey{e.List, e.Kind, e.Value}
	found := false
	op := func() (statelog.Commit, func(), error) {
		cur := l.snap.Load().entries
		old, ok := cur[k]
		found = ok
		if !ok {
			return statelog.Commit{}, nil, nil
		}
		var c kvsync.Commit
		c.Delete(entryKey(k))
		a := AuditEntry{Time: l.now().UTC(), Who: who, Op: "remove", Entry: old}
		if l.db == nil {
			l.audit = append(l.audit, a)
		} else {
			l.writeAudit(&c, a)
		}
		return c.Commit, func() {
			next := make(map[listKey]ListEntry, len(cur))
			for kk, vv := range cur {
				if kk != k {
					next[kk] = vv
				}
			}
			l.snap.Store(buildSnapshot(next))
		}, nil
	}
	if l.db == nil {
		l.mu.Lock()
		defer l.mu.Unlock()
		_, done, _ := op()
		if done != nil {
			done()
		}
		return found, nil
	}
	if err := l.sync.Do(context.Background(), op, nil); err != nil {
		return false, fmt.Errorf("remove list entry %s/%s/%s: %w", list, kind, value, err)
	}
	return found, nil
}

func (l *Lists) writeAudit(c *kvsync.Commit, a AuditEntry) {
	v, _ := json.Marshal(a)
	key := fmt.Sprintf("%s%020d-%06d", listAuditPrefix, a.Time.UnixNano(), l.seq.Add(1)%1000000)
	c.Set([]byte(key), v)
}

// Audit returns the audit trail from since on, oldest first, at most limit
// entries (0 = up to 10,000).
func (l *Lists) Audit(since time.Time, limit int) ([]AuditEntry, error) {
	if limit <= 0 || limit > maxAuditReturned {
		limit = maxAuditReturned
	}
	var out []AuditEntry
	if l.db == nil {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, a := range l.audit {
			if !a.Time.Before(since) && len(out) < limit {
				out = append(out, a)
			}
		}
		return out, nil
	}
	start := []byte(fmt.Sprintf("%s%020d", listAuditPrefix, max(since.UnixNano(), 0)))
	err := l.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte(listAuditPrefix)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(start); it.Valid() && len(out) < limit; it.Next() {
			var a AuditEntry
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &a) }); err != nil {
				return fmt.Errorf("audit entry %s: %w", it.Item().Key(), err)
			}
			out = append(out, a)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read risk list audit from Badger: %w", err)
	}
	return out, nil
}

// maskChunk is how many keys one commit of MaskStoredText reads.
const maskChunk = 256

// MaskStoredText rewrites masked (carddata.MaskText) the card numbers in the notes
// of the list entries and of the lists' audit that a version before masking
// (5 December 2026) stored in clear. Each chunk is one commit of the lists (shared
// with the other nodes like any change, so safe on every node at once); an entry
// without a card number is not written, so a second run writes nothing. Lists
// without a DB have nothing stored.
func (l *Lists) MaskStoredText(ctx context.Context) (carddata.Tally, error) {
	var t carddata.Tally
	if l == nil || l.db == nil {
		return t, nil
	}
	for _, k := range []struct {
		prefix string
		path   string
	}{{listEntryPrefix, "note"}, {listAuditPrefix, "entry.note"}} {
		n, c, err := l.sync.Rewrite(ctx, []byte(k.prefix), maskChunk, func(_, v []byte) ([]byte, int, error) {
			m, c, err := carddata.MaskJSON(v, k.path)
			if err != nil || c == 0 {
				return nil, 0, err
			}
			return m, c, nil
		}, l.applied)
		t.Records, t.CardNumbers = t.Records+n, t.CardNumbers+c
		if err != nil {
			return t, fmt.Errorf("risk lists: mask the card numbers in stored notes: %w", err)
		}
	}
	return t, nil
}
