package cup

import (
	"fmt"
	"sync"
	"time"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/journal"
)

// session is what the switch remembers of a signed-in terminal between its messages:
// the batch it opened, the identity it sent at sign-in (the DE 48 tags of the binding
// checks) and the DE 7 given to each STAN, so that a resend is a duplicate and a
// reversal names its original. It lives in memory: after a restart the terminal is
// asked to sign in again (header processing requirement 3).
type session struct {
	mu       sync.Mutex
	batch    string
	tlv      string // DE 48 tags from the sign-in F62
	scheme   string // 60.3 of the sign-in
	signedIn time.Time
	// makVersion is the MAK version the last sign-in made (0: unknown, the current).
	makVersion int
	stans      map[string]stanEntry
	order      []string // STANs in arrival order, to bound stans
	// restored: the terminal's recent STANs were read back from the journal
	// (Adapter.restore), or are being.
	restored bool
	// since: stans holds every card request of the terminal the journal had from
	// this time on (the start of what restore read, moved on when a STAN received
	// later is dropped to bound stans). A request whose MAC key was made before it
	// cannot be told new from a replay by stans alone (Adapter.vouch).
	since time.Time
	// dropped: remember dropped a STAN to bound stans (a terminal of more than
	// maxSTANs requests): restore does not read further back, vouch looks up each
	// STAN it does not know instead.
	dropped bool
	// older indexes the terminal's requests the journal holds from its MAK's
	// making to where stans begins (Adapter.vouchOlder), for a terminal that
	// dropped STANs: read once and then only the part since moved on, so that
	// vouching for a request costs no journal scan of its own.
	older olderSTANs
	// full is when the MAK whose requests filled the index of older requests
	// (Config.MaxSTANsPerKey) was made (zero: none has): a request MAC'd under it
	// is refused A0 until the terminal signs in and gets new keys (Adapter.vouchOlder).
	full time.Time
	// made caches when the MAK version the terminal's requests verify under was
	// made (Config.KeyCreated), so that the lookup is not repeated per request.
	made struct {
		version int
		at      time.Time
	}
	// issued is what the terminal's last sign-in that made keys sent it (nil
	// before): a sign-in within Config.KeyLifetime gets the same keys again
	// (Adapter.reissue).
	issued *issuedKeys
	// conn is the connection on which the terminal last sent a request whose MAC
	// verified (never that of a sign-in, which carries no MAC): its echoes on it
	// make it seen (Adapter.network).
	conn connKey
}

// connKey names a terminal connection: its listener and its ID there.
type connKey struct {
	listener string
	id       uint64
}

// keyOf returns the key of connection c.
func keyOf(c *frontend.Conn) connKey { return connKey{listener: c.Listener, id: c.ID} }

// setConn makes c the session's proven connection (nil s: nothing).
func (s *session) setConn(c *frontend.Conn) {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.conn = keyOf(c)
	s.mu.Unlock()
}

// provenOn reports whether c is the session's proven connection (nil s: false).
func (s *session) provenOn(c *frontend.Conn) bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn != (connKey{}) && s.conn == keyOf(c)
}

// issuedKeys are the working keys a sign-in sent a terminal: the answer's F62 (the
// keys under the terminal's TMK with their check values; never the clear keys), the
// scheme (60.3) asked for, when, and the version of each key ID it made and of the
// TMK it sent them under.
type issuedKeys struct {
	f62      []byte
	scheme   string
	at       time.Time
	versions map[string]int
}

// olderSTANs is the index of a session's requests older than its memory (stans):
// the latest request of each STAN the journal holds received in [from, to). Its own
// mutex, not the session's, is held while the journal is read, so that the
// cluster's applier (Sessions.NoteRemote) and the terminal's other messages do not
// wait for the read. It holds one entry per STAN, and at most
// Config.MaxSTANsPerKey less maxSTANs of them (Adapter.vouchOlder): F11's 6 digits
// alone would allow 10^6, at about 230 bytes each (over 300 MB).
type olderSTANs struct {
	mu       sync.Mutex
	from, to time.Time
	stans    map[string]stanEntry
}

// trim drops the entries received before made (those of an earlier MAC key of the
// terminal, kept while no request needed the room) when the index began before made,
// and reports whether fewer than limit entries remain. It costs a pass over the
// index, once per key: from is made afterwards.
func (o *olderSTANs) trim(made time.Time, limit int) bool {
	if !o.from.Before(made) {
		return false
	}
	for stan, e := range o.stans {
		if e.at.Before(made) {
			delete(o.stans, stan)
		}
	}
	o.from = made
	return len(o.stans) < limit
}

// keyFull reports whether the index of s's older requests was filled by those sent
// under the MAK made at made (zero made: false).
func (s *session) keyFull(made time.Time) bool {
	if made.IsZero() {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.full.Equal(made)
}

// stanEntry is the DE 7 and MTI a STAN was mapped with, and when the switch received
// it.
type stanEntry struct {
	mti, proc, de7 string
	amount         string
	at             time.Time
	// entry is the request's POS entry mode (DE 22, 3 digits; "" unknown).
	entry string
	// sum is the fingerprint of the request's content (contentKey.sum; never the
	// clear card): a request of the STAN, MTI, processing code and amount with
	// another sum is another transaction (94), not a resend. An entry read from the
	// journal (restore, vouch, recall, NoteRemote) has the record's
	// (journal.Record.ContentSum, under Config.ContentKey), 0 for a record written
	// without one (by an earlier version): its entry mode is compared instead.
	sum uint64
	// journaled: the entry was read from the journal (entryOf), its sum made under
	// the stable key (compared only by an adapter that has it).
	journaled bool
}

// isSignedIn reports whether the terminal signed in since the switch started (false
// for a nil session).
func (s *session) isSignedIn() bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.signedIn.IsZero()
}

// maxSTANs bounds the STANs a session remembers (a terminal's batch rarely exceeds it).
const maxSTANs = 2048

// remember notes the DE 7 a STAN was mapped with. Past maxSTANs the oldest noted
// STAN is dropped, and since moves on to its time: the memory is no longer complete
// before it.
func (s *session) remember(stan string, e stanEntry) {
	if _, ok := s.stans[stan]; !ok {
		s.order = append(s.order, stan)
		if len(s.order) > maxSTANs {
			if old := s.stans[s.order[0]]; old.at.After(s.since) {
				s.since = old.at
			}
			s.dropped = true
			delete(s.stans, s.order[0])
			s.order = s.order[1:]
		}
	}
	s.stans[stan] = e
}

// Sessions are the terminals' sessions by terminal ID, shared by the cup listeners
// of one switch (a terminal may sign in over TCP and pay over HTTPS).
type Sessions struct {
	mu sync.Mutex
	m  map[string]*session
}

// NewSessions returns an empty session store.
func NewSessions() *Sessions { return &Sessions{m: map[string]*session{}} }

func (ss *Sessions) get(tid string) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.m[tid]
}

func (ss *Sessions) open(tid string) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.m[tid]
	if s == nil {
		s = &session{stans: map[string]stanEntry{}}
		ss.m[tid] = s
	}
	return s
}

// NoteRemote tells the session of rec's terminal, when this switch holds one, of a
// card request another node of a cluster journaled (the cluster journal's applier
// calls it through the server for each record of another node it applies): its STAN
// and DE 7 join the session's memory, so that the request replayed to this node is
// given the same DE 7 and answered as the pipeline's duplicate, not authorized again
// (Adapter.vouch). A STAN the session holds an older request of (a terminal whose
// STAN counter started again) takes the newer one, as restore keeps the latest: a
// replay of the newer request must be its duplicate. It never waits for a journal
// read (the session's mutex is held for map updates only). A record of another kind,
// or without STAN or DE 7, is ignored.
func (ss *Sessions) NoteRemote(rec *journal.Record) {
	if !stanRecord(rec) {
		return
	}
	s := ss.get(rec.TID)
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.stans[rec.STAN]; !ok || rec.Received.After(old.at) {
		s.remember(rec.STAN, entryOf(rec))
	}
}

// stanRecord reports whether journal record r is a card request (0100, 0200,
// 0220) that a terminal's STAN stands for: with a STAN and a DE 7, and owning its
// duplicate key. A request the pipeline answered 94 for reusing another's DE 41 +
// 11 + 7 with other content (journal.Record.OwnsDupKey) carries the first's DE 7
// but is not the STAN's request: taken as the latest of its STAN, its fingerprint
// would make the first's own resend a 94. One its issuer answered 94 is the
// STAN's request: its resend is the pipeline's duplicate.
func stanRecord(r *journal.Record) bool {
	return r.STAN != "" && r.DE7 != "" && (r.MTI == "0100" || r.MTI == "0200" || r.MTI == "0220") && r.OwnsDupKey()
}

// entryOf is the stanEntry of a journaled card request.
func entryOf(r *journal.Record) stanEntry {
	return stanEntry{mti: r.MTI, proc: r.ProcCode, de7: r.DE7, amount: fmt.Sprintf("%012d", r.RequestedAmount()), at: r.Received, entry: r.EntryMode,
		sum: r.ContentSum, journaled: true}
}

func (ss *Sessions) close(tid string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.m, tid)
}
