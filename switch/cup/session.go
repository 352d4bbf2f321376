package cup

import (
	"sync"
	"time"

	"github.com/switchyard/switchyard/switch/frontend"
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

// stanEntry is the DE 7 and MTI a STAN was mapped with.
type stanEntry struct {
	mti, proc, de7 string
	amount         string
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

func (s *session) remember(stan string, e stanEntry) {
	if _, ok := s.stans[stan]; !ok {
		s.order = append(s.order, stan)
		if len(s.order) > maxSTANs {
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

func (ss *Sessions) close(tid string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.m, tid)
}
