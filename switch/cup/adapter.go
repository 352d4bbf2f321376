package cup

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/moov-io/iso8583"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/pinblock"
	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/registry"
)

// HSM is what the adapter needs of the HSM: working keys at sign-in, the MAC, track
// decryption under the TDK, and re-binding a PIN block formed without the PAN.
// *hsm.Software satisfies it.
type HSM interface {
	GenerateKey(ctx context.Context, req hsm.GenerateKeyRequest) (hsm.KeyResult, error)
	GenerateMAC(ctx context.Context, req hsm.MACRequest) ([]byte, error)
	VerifyMAC(ctx context.Context, req hsm.MACRequest, mac []byte) error
	DecryptData(ctx context.Context, ref hsm.KeyRef, data []byte) ([]byte, error)
	TranslatePIN(ctx context.Context, req hsm.TranslatePINRequest) ([]byte, error)
}

// Terminals finds a registered terminal (its TMK and working-key IDs), and the
// terminals that use a key (*registry.Registry's KeyUsers: the terminals, not
// closed, whose TMK, TPK or TAK is key ID id), asked for every request: it must be
// cheap.
type Terminals interface {
	Terminal(id string) (*registry.Terminal, bool)
	KeyUsers(id string) []string
}

// MACAlgorithm is the MAC a terminal computes over MTI to F63.
type MACAlgorithm string

// The MAC algorithms of the dialect.
const (
	MACECB  MACAlgorithm = "ecb"  // the CUP "ECB" algorithm (the default)
	MACX919 MACAlgorithm = "x919" // ANSI X9.19 retail MAC
)

// ParseMAC checks a configured MAC algorithm name ("" is ecb).
func ParseMAC(s string) (MACAlgorithm, error) {
	switch MACAlgorithm(s) {
	case "", MACECB:
		return MACECB, nil
	case MACX919:
		return MACX919, nil
	}
	return "", fmt.Errorf("unknown cup MAC algorithm %q (want %q or %q)", s, MACECB, MACX919)
}

// DefaultKeyLifetime is Config.KeyLifetime when not set.
const DefaultKeyLifetime = 12 * time.Hour

// DefaultOfflineMaxAmount is Config.OfflineMaxAmount when not set: 5,000,000 minor
// units (50,000.00 CNY), the largest single limit of the default rule pack's tiers
// (standard, rules/10-limits.yaml). A merchant without a per-transaction limit of its
// own is not paid more for one offline approval than the default rules would let a
// merchant of any limited tier take online, while the honest offline approvals,
// bounded by the terminals' floor limits (UnionPay electronic cash holds at most
// 1,000.00), stay far below it.
const DefaultOfflineMaxAmount = 5_000_000

// RCMACFailure is the UnionPay response code of a MAC failure.
const RCMACFailure = "A0"

// DefaultMaxSTANsPerKey is Config.MaxSTANsPerKey when not set. A countertop terminal
// sends a few thousand requests a day, and a MAC key serves at most 7 days
// (replayMemory; a day for a terminal that signs in daily): 50,000 leaves a busy
// lane at 7,000 a day its whole week, while a session's STAN entries (about 230
// bytes each) stay under 12 MB, where F11's 10^6 STANs took over 300 MB.
const DefaultMaxSTANsPerKey = 50_000

// The refusals (A0) of a request MAC'd under a key the terminal must renew by a
// sign-in (Config.KeyRefused; the journal's reason).
const (
	// KeyTooOld: the MAK was made more than replayMemory (7 days) ago.
	KeyTooOld = "mac-key-too-old"
	// KeyTooManySTANs: the terminal's STANs under the MAK filled its session's
	// index (Config.MaxSTANsPerKey).
	KeyTooManySTANs = "mac-key-too-many-stans"
)

// DefaultSignInMaxAge is how long a sign-in's identity stands by default
// (Config.SignInMaxAge): UnionPay terminals sign in daily.
const DefaultSignInMaxAge = 24 * time.Hour

// Response codes of the sign-in the pipeline has no word for.
const (
	RCTerminalUnknown = "97" // terminal not registered
	RCNoMasterKey     = "A7" // security processing failed: no TMK to send the keys under
)

// Config configures an Adapter.
type Config struct {
	HSM       HSM
	Terminals Terminals
	// MAC is the listener's MAC algorithm; MACByTerminal overrides it per terminal ID.
	MAC           MACAlgorithm
	MACByTerminal map[string]MACAlgorithm
	// KeyGrace keeps a terminal's previous working keys valid after a sign-in
	// (default 10 minutes).
	KeyGrace time.Duration
	// KeyLifetime: a sign-in less than this after the terminal's last sign-in that
	// made keys (on this adapter's sessions), asking for the same scheme, while none
	// of those keys nor the TMK has a newer version, gets the same keys again
	// instead of new ones (default 12 hours; negative: every sign-in makes new
	// keys). The sign-in carries no MAC: without this, anyone could rotate a
	// terminal's keys at will and deny it service (Adapter.reissue).
	KeyLifetime time.Duration
	// AcquirerID is F32 of the answers (default none).
	AcquirerID string
	// SingleLengthPIN allows the sign-in scheme 001 (single-length PIK and MAK; the
	// MAK needs SingleLengthMAC too); without it such a sign-in is refused 63
	// single-length-pin-key-refused (PCI PIN: PIN keys double-length TDES at least).
	SingleLengthPIN bool
	// SingleLengthMAC allows the sign-in schemes that issue a single-length (56-bit
	// DES) MAK: 001 and 003 (singleLengthMAK); without it such a sign-in is refused
	// 63 single-length-mac-key-refused, before any key is made, as SingleLengthPIN
	// refuses a single-length PIK. 004 issues a double-length MAK and needs neither.
	// (Until 6 December 2026 001 and 003 issued single-length MAKs unasked.)
	SingleLengthMAC bool
	// SignInMaxAge is how long a sign-in's identity (F62: device, SIM, IMEI,
	// location) stands for the terminal's transactions (default 24 hours). Past
	// three quarters of it the answers ask the terminal to sign in again (header
	// processing requirement 3); past it the session no longer vouches for the
	// terminal: its transactions carry only what their F59 says, and are asked to
	// sign in, as after a restart. A terminal carried off its place after its
	// sign-in is then judged where it is, not where it signed in.
	SignInMaxAge time.Duration
	Now          func() time.Time
	Logger       zerolog.Logger
	// Sessions is the store of signed-in terminals, shared by the listeners of one
	// switch (nil: the adapter's own).
	Sessions *Sessions
	// Journal, when set, is searched for the original of a reversal that the
	// terminal's session does not remember (after a restart).
	Journal Journal
	// Answered, when set, counts each answer the adapter gives itself (sign-in,
	// sign-off, echo, batch upload, A0 and the other refusals) by request MTI and
	// response code; the pipeline counts the rest.
	Answered func(mti, rc string)
	// NextRRN, when set, gives the sign-in's answer (0810) its F37: a retrieval
	// reference number of the switch's (the journal's sequence), as its other answers
	// carry. Without it, or when it fails, the 0810 goes without F37.
	NextRRN func() (string, error)
	// UploadUnmatched, when set, counts each batch upload (0320) answered other than
	// 00 by reason (UploadOfflineNotCaptured, UploadNotInJournal, UploadUnreadable,
	// UploadJournalError, UploadOfflineOverLimit, ...): the transactions the
	// terminal keeps and an operator reconciles.
	UploadUnmatched func(reason string)
	// Offline, when set, captures the EMV offline approvals that batch uploads carry
	// (upload.go); without it they are answered 96 offline-not-captured, and the
	// terminal keeps them.
	Offline OfflineCapturer
	// OfflineMaxAmount is the most one offline approval's upload may capture, in
	// minor units of its currency (F4): one above it is refused 61
	// offline-over-limit and kept by the terminal, whatever the merchant's own limit
	// (which the pipeline applies too). 0: DefaultOfflineMaxAmount; negative: no
	// ceiling. The switch cannot check the card's certificate (the issuer does, and
	// charges back what it refuses): this bounds what a terminal's MAK alone can
	// have a merchant paid.
	OfflineMaxAmount int64
	// Refusals, when set, journals the card transactions the adapter refuses itself
	// (A0, 30, 55, 63, 12), as the pipeline journals its own declines (refusal.go).
	Refusals Refusals
	// Requirement, when set, chooses the header's processing requirement of an
	// answer (the hook for parameter and application downloads); the default
	// answers ReqSignIn to a terminal without a session or whose MAC failed, else
	// ReqNone.
	Requirement func(r Situation) int
	// KeyCreated, when set, returns when version of key id was made (the key
	// store's created_at). With it (and KeyVersion) a request is told from a replay
	// by the terminal's STANs since its MAK was made, read back from the journal as
	// far as that (Adapter.vouch), and one whose MAK was made more than 7 days ago
	// (replayMemory: the journal's least retention) is refused A0 so that the
	// terminal signs in for new keys. nil: by the STANs of the last day only.
	KeyCreated func(id string, version int) (time.Time, error)
	// KeyVersion, when set, returns the current version of a key (the key store's),
	// so that a terminal whose MAK was rotated since its sign-in is asked to sign in
	// again; nil notices only the rotations its own sign-ins make.
	KeyVersion func(id string) (int, error)
	// MaxSTANsPerKey bounds the STAN entries a terminal's session holds for the
	// requests under one MAK: its latest maxSTANs (2048), and for a terminal of more
	// requests under the key, the index of the older ones read from the journal
	// (Adapter.vouchOlder), one entry per STAN. A request that would take the index
	// past it is refused A0 (KeyTooManySTANs), and so is every later one under that
	// key, until the terminal signs in and gets new keys: forgetting STANs instead
	// would let their requests be replayed. 0 (or less): DefaultMaxSTANsPerKey; at
	// most maxSTANs: no index at all.
	MaxSTANsPerKey int
	// KeyRefused, when set, counts each request refused A0 because its MAC key must
	// be renewed, by reason (KeyTooOld, KeyTooManySTANs).
	KeyRefused func(reason string)
	// Currencies are the currencies (F49, ISO 4217 numeric) the listener takes in
	// the requests that move new money: sales, pre-authorizations, balance
	// inquiries and offline approvals' uploads (a request without F49 is 156). One
	// in another is refused 12 currency-not-accepted, nothing forwarded. Voids,
	// refunds, completions and reversals are not checked: they are in their
	// original's currency (the pipeline refuses a refund or completion in another).
	// nil: DefaultCurrencies.
	Currencies []string
	// ContentKey keys the fingerprint of each card request's content (the first 64
	// bits of an HMAC-SHA256 over the fields that tell one transaction from
	// another; contentKey.sum), which the session keeps by STAN and the pipeline
	// journals with the request (journal.Record.ContentSum), so that a request
	// reusing a STAN, type and amount with other content is answered 94 whether
	// the earlier request is in the session's memory or read back from the journal
	// (after a restart, from another node). The switch derives it from its card
	// hash key (pipeline.DerivedKey with ContentKeyLabel): the same on every node
	// and after a restart. nil: a key of the process's, and no fingerprint is
	// journaled (a STAN read back from the journal is compared by entry mode).
	ContentKey []byte
	// CardHash, when set, is the pipeline's keyed hash of a card (the journal's
	// CardHash): a pre-authorization void that names its pre-authorization by
	// reference (61.2 zeros) must be of the same card (preauthByReference). nil:
	// compared by the masked PAN.
	CardHash func(pan string) string
	// TestMode is what the listener does with the card messages of a terminal in
	// test status (the header's terminal status digit 1): TestReject (the default)
	// refuses them 58 terminal-test-mode, TestAnswer answers them 00 itself;
	// neither forwards them (testTraffic). Reversals go on to the pipeline.
	TestMode TestMode
	// TestTraffic, when set, counts each test-status message by what was done
	// with it: "rejected" or "answered".
	TestTraffic func(action string)
}

// DefaultCurrencies is Config.Currencies when not set: 156 (CNY), the only F49 the
// UnionPay terminal specification has a POS send. The merchants' limits, the
// offline ceiling (Config.OfflineMaxAmount) and the rules' amounts are minor units
// of no currency, meant as fen: a terminal free to name its currency would have them
// read as cents or pence (about 7 to 9 times as much) by sending 840 or 826.
var DefaultCurrencies = []string{"156"}

// acceptsCurrency reports whether F49 value cur ("" is 156) is one of the
// listener's currencies (Config.Currencies).
func (a *Adapter) acceptsCurrency(cur string) bool {
	if cur == "" {
		cur = "156"
	}
	for _, c := range a.cfg.Currencies {
		if c == cur {
			return true
		}
	}
	return false
}

// replayMemory is how far back the adapter reads the journal for the STANs a
// terminal sent under its MAC key (restore, vouch): the journal keeps at least 7
// days (the journal.retention task's minimum). A request MAC'd under a key made
// longer ago is refused A0 (the terminal signs in and gets new keys): a replay of it
// could not be told from a new request.
const replayMemory = 7 * 24 * time.Hour

// keyMade returns when the MAK version a request verified under was made (version
// as verifyMAC returns it: 0 the current one, -1 the one before it, in its grace),
// zero when unknown (no Config.KeyCreated or KeyVersion, or the key store does not
// say). The answer is cached in the session: the key store is asked again only
// when the version changes.
func (a *Adapter) keyMade(s *session, id string, version int) time.Time {
	if a.cfg.KeyCreated == nil {
		return time.Time{}
	}
	if version <= 0 {
		if a.cfg.KeyVersion == nil {
			return time.Time{}
		}
		cur, err := a.cfg.KeyVersion(id)
		if err != nil {
			return time.Time{}
		}
		if version < 0 {
			cur-- // a version in its grace: at most that old
		}
		if version = cur; version <= 0 {
			return time.Time{}
		}
	}
	s.mu.Lock()
	if s.made.version == version {
		at := s.made.at
		s.mu.Unlock()
		return at
	}
	s.mu.Unlock()
	at, err := a.cfg.KeyCreated(id, version)
	if err != nil {
		a.log.Warn().Err(err).Str("key", id).Int("version", version).Msg("cup: when the MAC key was made is unknown; its requests are vouched for by the last day's STANs only")
		return time.Time{}
	}
	s.mu.Lock()
	s.made.version, s.made.at = version, at
	s.mu.Unlock()
	return at
}

// restoreFrom is how far back restore reads the journal: the last day (recallWindow),
// or further, to when the request's MAC key was made (made; never more than
// replayMemory).
func (a *Adapter) restoreFrom(made time.Time) time.Time {
	from := a.cfg.Now().Add(-recallWindow)
	if !made.IsZero() && made.Before(from) {
		from = made
	}
	return from
}

// vouch makes sure that the session knows STAN stan if the journal holds a request
// of it since the request's MAC key was made (made): a MAC'd request sent again,
// however late while its key is in force, is then given its first DE 7 and
// answered as the pipeline's duplicate, never authorized again. The session knows
// every request since its memory began (since, restore); only a terminal of more
// requests than it keeps (maxSTANs), whose memory starts after its key was made,
// has its STAN looked up in the journal's records from the key's making to where
// its memory begins (vouchOlder: an index of them read once, then only the part the
// memory moved on by). Zero made (the key's age unknown) vouches by the session
// alone, as before 6 December 2026.
func (a *Adapter) vouch(ctx context.Context, s *session, tid, stan string, made time.Time) error {
	s.mu.Lock()
	_, known := s.stans[stan]
	since := s.since
	s.mu.Unlock()
	if known || made.IsZero() || !since.After(made) {
		return nil
	}
	return a.vouchOlder(ctx, s, tid, stan, made, since.Add(time.Second)) // what it holds is newer
}

// errKeySTANsFull is vouchOlder's error when the terminal's STANs under its MAC key
// fill the session's index (Config.MaxSTANsPerKey).
var errKeySTANsFull = errors.New("its STANs under its MAC key fill the session's index (max_stans_per_key)")

// vouchOlder puts into session s the latest request of STAN stan the journal holds
// of terminal tid received from made (its MAC key's making) until to (where the
// session's memory begins), if any. It reads the journal into the session's index of
// older requests (session.older) only for the part of [made, to) the index does not
// cover yet (with a second of overlap for a record written late): once for a
// terminal's key, then what the memory moved on by. Until the second release of 6
// December 2026 each request of a terminal that had dropped STANs (a busy one) read
// the terminal's journal since its key was made, up to 7 days of it, for its own
// STAN: every new request paid a full scan.
//
// The index holds at most Config.MaxSTANsPerKey less maxSTANs entries (the
// session's own memory). A STAN that would take it past that, once the entries of
// an earlier key are dropped, ends the read: the index is freed, the key is marked
// full in the session (session.full; every request under it is refused A0 until a
// sign-in, which makes new keys, since issued is forgotten) and the error is
// errKeySTANsFull. Forgetting STANs instead would let their requests be replayed.
// (In the second release of 6 December 2026 the index had no bound but F11's 10^6
// STANs, over 300 MB a session.)
func (a *Adapter) vouchOlder(ctx context.Context, s *session, tid, stan string, made, to time.Time) error {
	if a.cfg.Journal == nil {
		return nil
	}
	limit := max(a.cfg.MaxSTANsPerKey-maxSTANs, 0)
	o := &s.older
	o.mu.Lock()
	defer o.mu.Unlock()
	if s.keyFull(made) { // filled while this request waited for the index
		return fmt.Errorf("cup: terminal %s, STAN %s: %w", tid, stan, errKeySTANsFull)
	}
	if o.stans == nil || made.Before(o.from) {
		o.stans, o.from, o.to = map[string]stanEntry{}, made, made
	}
	if to.After(o.to) {
		from := o.to
		if from.After(o.from) {
			from = from.Add(-time.Second)
		}
		full := false
		err := a.cfg.Journal.Scan(ctx, journal.Query{TID: tid, From: from, To: to}, func(r *journal.Record) bool {
			if !stanRecord(r) || r.Received.Before(o.from) {
				return true
			}
			if old, ok := o.stans[r.STAN]; !ok || r.Received.After(old.at) {
				if !ok && len(o.stans) >= limit && !o.trim(made, limit) {
					full = true
					return false
				}
				o.stans[r.STAN] = entryOf(r)
			}
			return true
		})
		if err != nil {
			return fmt.Errorf("cup: looking up %s STAN %s in the journal since its MAC key was made: %w", tid, stan, err)
		}
		if full {
			o.stans, o.from, o.to = nil, time.Time{}, time.Time{}
			s.mu.Lock()
			s.full, s.issued = made, nil
			s.mu.Unlock()
			return fmt.Errorf("cup: terminal %s, STAN %s: more than %d STANs under its MAC key made %s: %w",
				tid, stan, a.cfg.MaxSTANsPerKey, made.UTC().Format(time.RFC3339), errKeySTANsFull)
		}
		o.to = to
	}
	e, ok := o.stans[stan]
	if !ok || e.at.Before(made) || !e.at.Before(to) {
		return nil
	}
	s.mu.Lock()
	if _, known := s.stans[stan]; !known {
		s.remember(stan, e)
	}
	s.mu.Unlock()
	return nil
}

// renewKey refuses a request MAC'd under a key the terminal must renew (reason:
// KeyTooOld, KeyTooManySTANs): A0 without F64, nothing forwarded, journaled as a
// refusal and counted (Config.KeyRefused). The answer asks the terminal to sign in,
// and that sign-in makes new keys.
func (a *Adapter) renewKey(ctx context.Context, c *frontend.Conn, f, ans *Frame, sit Situation, reason string) (frontend.Response, error) {
	if a.cfg.KeyRefused != nil {
		a.cfg.KeyRefused(reason)
	}
	return a.refused(ctx, c, f, ans, sit, RCMACFailure, nil, reason, reason)
}

// Situation is what the processing-requirement hook sees of an answer.
type Situation struct {
	TID      string
	Header   Header // the request's
	SignedIn bool   // the terminal has a session since the switch started
	// SignInDue: the terminal's sign-in is past three quarters of its maximum age
	// (Config.SignInMaxAge): it is asked to sign in again before its identity
	// lapses.
	SignInDue bool
	MACOK     bool // the request's MAC verified (false for unMAC'd messages)
	// PreviousKeys: the MAC verified only under the terminal's previous MAK, still
	// in its grace period (the terminal missed its last sign-in's answer).
	PreviousKeys bool
	// Update: the answer carries an application update offer in F63 (docs/apps.md).
	Update bool
	// forwarded: the pipeline saw the message (and counted it).
	forwarded bool
	RC        string // the answer's F39
}

// Adapter is the frontend.Processor of a `cup` listener: it decodes the dialect,
// answers sign-in, sign-off and echo, checks the MAC, and hands every card
// transaction to the pipeline (next) as the ASCII request of the same meaning, then
// writes the pipeline's answer back in the dialect.
type Adapter struct {
	cfg  Config
	next frontend.Processor
	sess *Sessions
	log  zerolog.Logger
	// content keys the requests' content fingerprints (Config.ContentKey).
	content *contentKey
}

// NewAdapter returns the adapter in front of next (the pipeline).
func NewAdapter(cfg Config, next frontend.Processor) *Adapter {
	if cfg.KeyGrace <= 0 {
		cfg.KeyGrace = 10 * time.Minute
	}
	if cfg.KeyLifetime == 0 {
		cfg.KeyLifetime = DefaultKeyLifetime
	}
	if cfg.SignInMaxAge <= 0 {
		cfg.SignInMaxAge = DefaultSignInMaxAge
	}
	if cfg.OfflineMaxAmount == 0 {
		cfg.OfflineMaxAmount = DefaultOfflineMaxAmount
	}
	if cfg.MaxSTANsPerKey <= 0 {
		cfg.MaxSTANsPerKey = DefaultMaxSTANsPerKey
	}
	if cfg.MAC == "" {
		cfg.MAC = MACECB
	}
	if cfg.TestMode == "" {
		cfg.TestMode = TestReject
	}
	if len(cfg.Currencies) == 0 {
		cfg.Currencies = DefaultCurrencies
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sessions == nil {
		cfg.Sessions = NewSessions()
	}
	return &Adapter{cfg: cfg, next: next, sess: cfg.Sessions, log: cfg.Logger, content: newContentKey(cfg.ContentKey)}
}

// decodeAnswerable decodes a message and the terminal and STAN an answer needs; a
// message without them cannot be answered. bad, when not nil, is a request that
// can be answered but not processed: a field after F42 that does not decode (the
// frame is the fields before it, decode), a secondary bitmap, bytes after the last
// field, or a numeric field that is not digits (checkNumeric); it is answered 30,
// the field named.
func decodeAnswerable(body []byte) (f *Frame, tid, stan string, bad *mapError, err error) {
	f, partial, err := decode(body)
	if err != nil {
		var fe *FieldError
		if partial == nil || !errors.As(err, &fe) || fe.at > 0 && fe.at <= 42 {
			return nil, "", "", nil, fmt.Errorf("cup: undecodable message: %w", err)
		}
		f, bad = partial, frameErr(fe)
	}
	if message.ResponseMTI(f.MTI()) == "" {
		// An answer's MTI (0210, 0810) or none of a request's class (0190): its
		// answer would be another request's MTI (0220, the refund; 0820) or no MTI
		// at all. Until 7 December 2026 it was answered so.
		return nil, "", "", nil, fmt.Errorf("cup: MTI %s is not a request's: not answered", f.MTI())
	}
	tid, stan = f.Str(41), f.Str(11)
	if tid == "" || stan == "" {
		return nil, "", "", nil, fmt.Errorf("cup: message %s without F41 and F11 cannot be answered", f.MTI())
	}
	if bad == nil {
		bad = checkNumeric(f)
	}
	return f, tid, stan, bad, nil
}

// frameErr is the format error (30) of a frame decode read only in part (an
// answerable *FieldError): the field that did not decode, a secondary bitmap
// (format-error-F1) or bytes after the last field (format-error-trailing-bytes).
func frameErr(fe *FieldError) *mapError {
	switch {
	case fe.Field == 0:
		me := formatErr(0, "%v", fe.Err)
		me.token = "format-error-trailing-bytes"
		return me
	case fe.Field == 1:
		return formatErr(1, "%v", fe.Err)
	}
	return formatErr(fe.Field, "does not decode: %v", fe.Err)
}

// numericFields are the fields of Spec read with their hex nibbles (NumBCD,
// NumLBCD) that must be digits.
var numericFields = []int{3, 4, 12, 13, 14, 15, 22, 23, 25, 26, 32, 48, 53}

// checkNumeric checks that the numeric fields read with their hex nibbles are
// decimal digits; the error names the first that is not, never its content. (Until
// 6 December 2026 a nibble A-F in one failed the decoding and the connection was
// closed without an answer.)
func checkNumeric(f *Frame) *mapError {
	for _, id := range numericFields {
		if f.Has(id) && !isDigits(f.Str(id)) {
			return formatErr(id, "not numeric (a nibble A-F), the spec has it n")
		}
	}
	return nil
}

// dropBad removes the field bad names from the request f before its answer is
// made: a field that did not decode or is not digits is neither journaled nor
// echoed (F64, the MAC, stays: it is verified over the body).
func dropBad(f *Frame, bad *mapError) {
	if bad.field > 1 && bad.field != 64 { // F1, the bitmap, names a secondary bitmap
		f.Msg.UnsetField(bad.field)
	}
}

// Process implements frontend.Processor. A body that does not decode (or names no
// terminal and STAN) cannot be answered: the error closes that one connection.
func (a *Adapter) Process(ctx context.Context, c *frontend.Conn, body []byte) (frontend.Response, error) {
	f, tid, stan, badField, err := decodeAnswerable(body)
	if err != nil {
		return frontend.Response{}, err
	}
	badPrivate := checkPrivate(f)
	if badField != nil { // a field that does not decode or is not digits comes first
		badPrivate = badField
		dropBad(f, badField)
	}
	badPAN := checkPAN(f) // F2 without its pad from here on (refusals journal it masked)
	switch f.MTI() {
	case "0800", "0820":
		if badPrivate != nil {
			return a.reply(a.answer(f), Situation{TID: tid, Header: f.Header, SignedIn: a.signedIn(tid)}, badPrivate.rc, nil, f.MTI()+": "+badPrivate.Error())
		}
	}
	switch f.MTI() {
	case "0800":
		return a.signIn(ctx, c, f)
	case "0820":
		return a.network(ctx, c, f, body)
	}
	term, _ := a.cfg.Terminals.Terminal(tid)
	ans := a.answer(f)
	sit := Situation{TID: tid, Header: f.Header}
	// A session is opened only for a terminal whose MAC verified, so that messages
	// naming made-up terminals cannot fill the memory; one without a sign-in since
	// the start is asked for one (header).
	s := a.sess.get(tid)
	sit.SignedIn = s.isSignedIn()
	mak := a.makRef(tid, term)
	scheme := a.scheme(tid)
	if !f.Has(64) {
		return a.refused(ctx, c, f, ans, sit, RCMACFailure, nil, "mac-missing", "mac-missing")
	}
	grace, version, err := a.verifyMAC(ctx, s, mak, scheme, MACInput(body, f), f.Bytes(64))
	if err != nil {
		if !errors.Is(err, hsm.ErrMACMismatch) && !errors.Is(err, hsm.ErrKeyNotFound) {
			a.log.Error().Err(err).Str("tid", tid).Msg("cup: MAC could not be verified")
		}
		a.log.Warn().Str("tid", tid).Str("stan", stan).Str("mti", f.MTI()).Str("remote", c.Remote.String()).Msg("cup: bad MAC: answered A0, nothing forwarded")
		return a.refused(ctx, c, f, ans, sit, RCMACFailure, nil, "mac-invalid", "mac-invalid")
	}
	if !grace && s != nil && a.cfg.KeyVersion != nil {
		// Verified under the MAK of the terminal's sign-in, but that key was
		// rotated since (keys.rotate, an operator): as for a grace version, only
		// the current MAK may MAC, so the answer goes without F64 and asks the
		// terminal to sign in again, which gives it the new keys.
		s.mu.Lock()
		sv := s.makVersion
		s.mu.Unlock()
		if cur, err := a.cfg.KeyVersion(mak.ID); err == nil && sv != 0 && cur != sv {
			grace = true
		}
	}
	sit.MACOK, sit.PreviousKeys = true, grace
	if s == nil {
		s = a.sess.open(tid)
	}
	s.setConn(c)
	made := a.keyMade(s, mak.ID, version)
	if !made.IsZero() && a.cfg.Now().Sub(made) > replayMemory {
		// A replay of a request MAC'd under this key could not be told from a new
		// one: the journal may no longer hold the first (vouch). The terminal signs
		// in again (A0) and gets new keys.
		a.log.Warn().Str("tid", tid).Str("stan", stan).Str("mti", f.MTI()).Time("mak_made", made).
			Msg("cup: request MAC'd under a key older than the journal's memory of the terminal's STANs: answered A0, nothing forwarded; the terminal signs in for new keys")
		return a.renewKey(ctx, c, f, ans, sit, KeyTooOld)
	}
	if s.keyFull(made) {
		// The terminal's STANs under this key filled its session's index
		// (vouchOlder): a request under it could no longer be told from a replay
		// without reading more than the bound. The terminal signs in again (A0).
		a.log.Warn().Str("tid", tid).Str("stan", stan).Str("mti", f.MTI()).Time("mak_made", made).Int("max_stans_per_key", a.cfg.MaxSTANsPerKey).
			Msg("cup: request MAC'd under a key the terminal sent more STANs under than max_stans_per_key: answered A0, nothing forwarded; the terminal signs in for new keys")
		return a.renewKey(ctx, c, f, ans, sit, KeyTooManySTANs)
	}
	macf := func(data []byte) ([]byte, error) {
		return a.cfg.HSM.GenerateMAC(context.WithoutCancel(ctx), hsm.MACRequest{Key: mak, Data: data, Scheme: scheme})
	}
	if grace {
		// Only the current MAK may MAC, and the terminal does not hold it: the
		// answer goes without F64 and asks the terminal to sign in again.
		macf = nil
	}
	if badPrivate != nil {
		return a.refused(ctx, c, f, ans, sit, badPrivate.rc, macf, f.MTI()+": "+badPrivate.Error(), refusalReason(badPrivate))
	}
	if badPAN != nil {
		return a.refused(ctx, c, f, ans, sit, badPAN.rc, macf, f.MTI()+": "+badPAN.Error(), refusalReason(badPAN))
	}
	if resp, handled, err := a.testTraffic(ctx, c, f, ans, sit, macf); handled {
		// A terminal in test status (header): never a real authorization.
		return resp, err
	}
	identity := a.identity(s, &sit, stan)
	if f.MTI() == "0320" { // batch upload: 00 only for what the journal holds (upload.go)
		return a.batchUpload(ctx, c, f, ans, sit, macf, s, identity)
	}
	k, ok := KindOf(f)
	if !ok {
		return a.refused(ctx, c, f, ans, sit, message.RCInvalidTransaction, macf, "unsupported-transaction", "unsupported-transaction")
	}
	if f3 := f.Str(3); k.Proc != "" && f3 != "" && f3[:2] != k.Proc {
		// F3 and 60.1 name two transactions (a refund's 20 under a sale's 22, a
		// balance inquiry's 31): which one the terminal meant is unknown, and
		// guessing from 60.1 alone could charge a card the terminal credits.
		return a.refused(ctx, c, f, ans, sit, message.RCInvalidTransaction, macf,
			fmt.Sprintf("%s: processing code (F3) %s is not the %s's %s0000 (60.1 %s)", k.Name, f3, k.Name, k.Proc, k.Type), "processing-code-mismatch")
	}
	if cur := f.Str(49); k.Original == "" && k.Name != "settlement" && (cur == "" || isDigits(cur)) && !a.acceptsCurrency(cur) {
		// New money in a currency the listener does not take: the limits and
		// ceilings it would be checked against are amounts of the listener's.
		// (An F49 not of digits is the pipeline's format error, 30.)
		return a.refused(ctx, c, f, ans, sit, message.RCInvalidTransaction, macf,
			k.Name+": currency (F49) "+f.Str(49)+" is not one the listener takes (cup.currencies)", "currency-not-accepted")
	}
	// Errors from here on are answered (a mapError's code) without the pipeline.
	refuse := func(err error) (frontend.Response, error) {
		var me *mapError
		if errors.As(err, &me) {
			return a.refused(ctx, c, f, ans, sit, me.rc, macf, k.Name+": "+me.Error(), refusalReason(me))
		}
		return frontend.Response{}, err
	}
	track2, err := a.track2(ctx, f, tid)
	if err != nil {
		return refuse(err)
	}
	pin, err := a.pinBlock(ctx, f, tid, track2)
	if err != nil {
		return refuse(err)
	}
	if err := a.restore(ctx, s, tid, a.restoreFrom(made)); err != nil {
		a.log.Error().Err(err).Msg("cup: session not restored; a resend from before the restart is taken as a new request")
	}
	if k.Original == "" || k.Original == "rrn" {
		if err := a.vouch(ctx, s, tid, stan, made); errors.Is(err, errKeySTANsFull) {
			a.log.Warn().Err(err).Str("tid", tid).Str("stan", stan).Str("mti", f.MTI()).Time("mak_made", made).Int("max_stans_per_key", a.cfg.MaxSTANsPerKey).
				Msg("cup: the terminal's STANs under its MAC key reached max_stans_per_key: answered A0, nothing forwarded, and so is every later request under that key; the terminal signs in for new keys")
			return a.renewKey(ctx, c, f, ans, sit, KeyTooManySTANs)
		} else if err != nil {
			a.log.Error().Err(err).Str("tid", tid).Str("stan", stan).Msg("cup: STAN not looked up in the journal; taken as a new request")
		}
	}
	var pre *original // a pre-authorization void's pre-authorization, named by reference
	if k.Original == "stan61" && f61STAN(f) == zeroSTAN && a.cfg.Journal != nil {
		if pre, err = a.preauthByReference(ctx, f, tid, track2); err != nil {
			return refuse(err)
		}
		a.log.Info().Str("tid", tid).Str("stan", stan).Str("preauth_rrn", pre.rrn).Str("preauth_stan", pre.stan).
			Msg("cup: pre-authorization void with 61.2 zeros: its pre-authorization found by reference (F37, or F38, card and amount)")
	} else if k.Original == "stan" || k.Original == "stan61" {
		cands, err := originalCandidates(f, k)
		if err != nil {
			return refuse(err)
		}
		for _, orig := range cands {
			if err := a.recall(ctx, s, tid, orig, a.cfg.Now().Add(-recallWindow), time.Time{}); err != nil {
				a.log.Error().Err(err).Msg("cup: reversal's original not looked up; sent as one of an unknown original")
			}
		}
	}
	if identity == "" && (k.Original == "stan" || k.Original == "stan61") {
		// A reversal before the sign-in after a restart (the sign-in's identity
		// lived in memory): its MAC verified under this terminal's MAK, which only
		// the terminal holds, so it stands for the registered identity. Its other
		// requests wait for the sign-in the header asks for.
		identity = boundIdentity(term)
	}
	m, err := toPipeline(f, k, s, identity, track2, pin, a.cfg.Now(), a.content, pre)
	if err != nil {
		return refuse(err)
	}
	inner := *c
	inner.Dialect = message.DialectASCII
	inner.MACVerified = true // F64 verified above, under the MAK (its grace version included)
	inner.ContentSum = m.sum // journaled with the request (its first record)
	resp, err := a.next.Process(ctx, &inner, m.body)
	if err != nil {
		return frontend.Response{}, err
	}
	pr, err := parseASCII(resp.Body)
	if err != nil {
		if resp.Sent != nil {
			resp.Sent(false)
		}
		return frontend.Response{}, fmt.Errorf("cup: the pipeline's answer: %w", err)
	}
	ans.Set(37, pr.Str(37)).Set(38, pr.Str(38))
	if amt := pr.Str(4); amt != "" && amt != f.Str(4) && message.Approved(pr.Str(39)) && f.Has(4) {
		// A partial approval: F4 is the amount approved, which the terminal prints
		// and settles (the pipeline's DE 4; it approves a lesser amount only for a
		// terminal whose 60.6 said it accepts that).
		ans.Set(4, amt)
	}
	if k.Name == "settlement" {
		if f48, ok := settlementAnswer(f.Str(48), pr.Str(39)); ok {
			ans.Set(48, f48)
		}
	}
	if k.Name == "balance" && message.Approved(pr.Str(39)) {
		// The issuer's balances (the pipeline's DE 54): F54, never logged.
		ans.Set(54, balanceF54(pr.Str(54)))
	}
	if message.Approved(pr.Str(39)) && k.Name != "settlement" {
		ans.Set(63, "CUP")
	}
	out, err := a.replyFrame(ans, sit, pr.Str(39), macf)
	if err != nil {
		if resp.Sent != nil {
			resp.Sent(false)
		}
		return frontend.Response{}, err
	}
	return frontend.Response{Body: out, Sent: resp.Sent}, nil
}

// Refuse answers a message that the front end does not process because a listener
// limit is reached (frontend.Refuser; reason: frontend.ReasonSourceBusy): the
// dialect's answer with F39 91 (the switch cannot take it now; the terminal tries
// again), without F64 and without journal, HSM or pipeline, as the adapter's own
// refusals of an unverified message go. One that does not decode, or names no
// terminal and STAN, cannot be answered (as in Process).
func (a *Adapter) Refuse(c *frontend.Conn, body []byte, reason string) (frontend.Response, error) {
	f, tid, _, _, err := decodeAnswerable(body)
	if err != nil {
		return frontend.Response{}, err
	}
	sit := Situation{TID: tid, Header: f.Header, SignedIn: a.signedIn(tid)}
	out, err := a.replyFrame(a.answer(f), sit, message.RCIssuerUnavailable, nil)
	if err != nil {
		return frontend.Response{}, fmt.Errorf("cup: %s refused (%s): %w", f.MTI(), reason, err)
	}
	return frontend.Response{Body: out}, nil
}

// answer starts the answer to f: TPDU swapped, the request's header, the answer's
// MTI and the echoed fields.
func (a *Adapter) answer(f *Frame) *Frame {
	mti := f.MTI()
	ans := NewFrame(f.TPDU.Answer(), f.Header, mti[:2]+string(mti[2]+1)+mti[3:])
	now := a.cfg.Now()
	for _, id := range []int{2, 3, 4, 11, 14, 22, 25, 41, 42, 49, 53, 60, 61} {
		if f.Has(id) {
			ans.Set(id, f.Str(id))
		}
	}
	ans.Set(12, now.Format("150405")).Set(13, now.Format("0102")).Set(32, a.cfg.AcquirerID)
	if mti != "0800" && mti != "0820" {
		ans.Set(15, now.Format("0102"))
	}
	return ans
}

// reply finishes an answer the adapter gives itself (no pipeline).
func (a *Adapter) reply(ans *Frame, sit Situation, rc string, macf MACFunc, why string) (frontend.Response, error) {
	out, err := a.replyFrame(ans, sit, rc, macf)
	if err != nil {
		return frontend.Response{}, err
	}
	if a.cfg.Answered != nil && !sit.forwarded {
		mti := ans.MTI()
		a.cfg.Answered(mti[:2]+string(mti[2]-1)+mti[3:], rc)
	}
	if why != "" {
		a.log.Info().Str("tid", sit.TID).Str("mti", ans.MTI()).Str("stan", ans.Str(11)).Str("rc", rc).Str("reason", why).Msg("cup: answered by the adapter")
	}
	return frontend.Response{Body: out}, nil
}

func (a *Adapter) replyFrame(ans *Frame, sit Situation, rc string, macf MACFunc) ([]byte, error) {
	sit.RC = rc
	ans.Set(39, rc)
	ans.Header = ans.Header.WithProcessingRequirement(a.requirement(sit))
	return ans.Encode(macf)
}

// requirement is the processing requirement of an answer's header: the hook, or by
// default "sign in again" to a terminal the switch has no session with or whose MAC
// failed (its working keys are not the current ones).
func (a *Adapter) requirement(sit Situation) int {
	if a.cfg.Requirement != nil {
		return a.cfg.Requirement(sit)
	}
	if sit.RC == RCMACFailure || sit.PreviousKeys || !sit.SignedIn && sit.MACOK || sit.SignInDue && sit.MACOK {
		return ReqSignIn
	}
	if sit.Update {
		return ReqTMSDownload
	}
	return ReqNone
}

// verifyMAC checks F64 under the MAK version the terminal's last sign-in made (the
// current one when the switch has no session), then, failing that, under the current
// version, and then under the versions in their grace period: grace reports that only
// a previous version matched.
//
// The current version is tried on its own because it may be newer than the session's
// and the terminal's own: the terminal signed in on another node of a cluster (each
// node has its sessions, the key store is shared), or two sign-ins of it at once were
// stored in the other order. A MAC under it is no grace, and the session takes that
// version. version is the version that verified: 0 when the current one was asked
// for without a number (no session), -1 for one in its grace. (Until 5 December 2026 it was taken for a previous version: the answer
// went without F64, which a terminal takes for a MAC failure and reverses, and asked
// for another sign-in, which made the other node's session stale in turn.)
func (a *Adapter) verifyMAC(ctx context.Context, s *session, mak hsm.KeyRef, scheme hsm.MACScheme, data, sum []byte) (grace bool, version int, err error) {
	if s != nil {
		s.mu.Lock()
		mak.Version = s.makVersion
		s.mu.Unlock()
	}
	err = a.cfg.HSM.VerifyMAC(ctx, hsm.MACRequest{Key: mak, Data: data, Scheme: scheme}, sum)
	if err == nil || mak.Version == 0 || !errors.Is(err, hsm.ErrMACMismatch) {
		return false, mak.Version, err
	}
	if a.cfg.KeyVersion != nil {
		if cur, verr := a.cfg.KeyVersion(mak.ID); verr == nil && cur > 0 && cur != mak.Version {
			sv := mak.Version
			mak.Version = cur
			err := a.cfg.HSM.VerifyMAC(ctx, hsm.MACRequest{Key: mak, Data: data, Scheme: scheme}, sum)
			if err == nil {
				s.mu.Lock()
				if s.makVersion == sv {
					s.makVersion = cur
				}
				s.mu.Unlock()
				return false, cur, nil
			}
			if !errors.Is(err, hsm.ErrMACMismatch) {
				return false, 0, err
			}
		}
	}
	mak.Version = 0
	if err := a.cfg.HSM.VerifyMAC(ctx, hsm.MACRequest{Key: mak, Data: data, Scheme: scheme}, sum); err != nil {
		return false, 0, err
	}
	return true, -1, nil
}

func (a *Adapter) signedIn(tid string) bool { return a.sess.get(tid).isSignedIn() }

func (a *Adapter) scheme(tid string) hsm.MACScheme {
	alg := a.cfg.MAC
	if v, ok := a.cfg.MACByTerminal[tid]; ok {
		alg = v
	}
	if alg == MACX919 {
		return ""
	}
	return hsm.MACSchemeCUPECB
}

// The working-key IDs of a terminal: its registered TPK is the PIK when it is its own
// (ownKey: the pipeline translates its PIN blocks under it), its registered TAK the
// MAK when it is its own, else TID.TPK and TID.TAK, or, when another terminal uses
// that key too, TID.PIK and TID.MAK (ownKeyID); TID.TDK the TDK. A sign-in makes a
// new version of each and sends it to the terminal under its TMK, so a key of
// another terminal's, or one several terminals share, must never be one of them.
func (a *Adapter) pikID(tid string, term *registry.Terminal) string {
	// A TPK the terminal shares with others (the demo load terminals share
	// LT.TPK) is not rotated by its sign-in: it gets a PIK of its own, and its
	// PIN blocks cannot be translated until the registry names that key.
	var reg string
	if term != nil {
		reg = term.Keys.TPK
	}
	return a.ownKeyID(tid, reg, "TPK", "PIK")
}

// makRef is the terminal's MAK: its registered TAK when that is its own (ownKey),
// else TID.TAK, or TID.MAK when another terminal uses TID.TAK (ownKeyID). A TAK it
// shares with others (a fleet registered with one key, another terminal's TAK, or
// its own TID.* key that the registry gives other terminals too) is neither rotated
// by its sign-in nor sent to it under its TMK: its sign-in makes a key of its own,
// under which the adapter then verifies and makes its MACs. (Until 6 December 2026
// a registered TAK was the MAK whatever its ID: one terminal's sign-in rotated a MAC
// key other terminals used, and sent it in the terminal's F62, under a TMK only that
// terminal holds; until later that day a TID.* key was the terminal's own even when
// other terminals' records named it.)
func (a *Adapter) makRef(tid string, term *registry.Terminal) hsm.KeyRef {
	var reg string
	if term != nil {
		reg = term.Keys.TAK
	}
	return hsm.KeyRef{ID: a.ownKeyID(tid, reg, "TAK", "MAK")}
}

// ownKeyID is the ID of terminal tid's working key that its sign-ins make and send
// it, of the registered ID reg (its TPK or TAK, "" for none): reg when it is the
// terminal's own (ownKey), else the first of TID.<conventional> and TID.<alternate>
// (TID.TPK, TID.PIK) that is; "" when each is another terminal's too (a registry
// that names them so: the sign-in is refused, and a MAC or PIN under no key fails).
func (a *Adapter) ownKeyID(tid, reg, conventional, alternate string) string {
	if a.ownKey(tid, reg) {
		return reg
	}
	if id := tid + "." + conventional; a.ownKey(tid, id) {
		return id
	}
	if id := tid + "." + alternate; a.ownKey(tid, id) {
		return id
	}
	return ""
}

// ownKey reports whether key ID id is terminal tid's own: its ID is TID.* (as TID.TPK
// and TID.TAK) and no other terminal (not closed) uses it (Terminals.KeyUsers). Only
// such a key may be rotated by the terminal's sign-in and sent to it.
func (a *Adapter) ownKey(tid, id string) bool {
	if len(id) <= len(tid) || id[len(tid)] != '.' || id[:len(tid)] != tid {
		return false
	}
	for _, u := range a.cfg.Terminals.KeyUsers(id) {
		if u != tid {
			return false
		}
	}
	return true
}

func tdkID(tid string) string { return tid + ".TDK" }

// track2 returns the clear track 2 of f in the pipeline's form, decrypting it under
// the terminal's TDK when 53.3 says it is encrypted, without a trailing F pad
// (cleanTrack2); one that is not digits with one separator is a format error (30,
// F35). The clear track exists only in the request to the pipeline, never in a log.
func (a *Adapter) track2(ctx context.Context, f *Frame, tid string) (string, error) {
	t := f.Str(35)
	if t == "" {
		return "", nil
	}
	if parseF53(f.Str(53)).trackEnc == '1' {
		clear, err := decryptTrack(ctx, a.cfg.HSM, hsm.KeyRef{ID: tdkID(tid)}, t)
		if err != nil {
			return "", &mapError{rc: message.RCSecurityViolation, field: 35, reason: "track 2 not decryptable: " + err.Error()}
		}
		t = clear
	}
	clean, err := cleanTrack2(t)
	if err != nil {
		return "", formatErr(35, "%v", err)
	}
	return clean, nil
}

// zeroPAN binds a PIN block formed "without PAN" (53.1 = 1): its PAN field is zeros.
const zeroPAN = "0000000000000"

// pinBlock returns F52 as the pipeline takes it: ISO format 0 bound to the card's PAN
// under the PIK. A block the terminal formed without the PAN (53.1 = 1) is re-bound
// to the PAN in the HSM (the PIN never leaves it); with 53.1 = 2 it goes as sent.
func (a *Adapter) pinBlock(ctx context.Context, f *Frame, tid, track2 string) ([]byte, error) {
	block := f.Bytes(52)
	if len(block) != 8 || parseF53(f.Str(53)).pinFormat != '1' {
		return block, nil
	}
	pan := f.Str(2)
	if pan == "" {
		pan, _, _ = strings.Cut(track2, "=")
	}
	term, _ := a.cfg.Terminals.Terminal(tid)
	pik := hsm.KeyRef{ID: a.pikID(tid, term)}
	out, err := a.cfg.HSM.TranslatePIN(ctx, hsm.TranslatePINRequest{Source: pik, SourceFormat: pinblock.Format0, PINBlock: block,
		SourcePAN: zeroPAN, Dest: pik, DestFormat: pinblock.Format0, PAN: pan})
	switch {
	case err == nil:
		return out, nil
	case errors.Is(err, hsm.ErrInput):
		return nil, &mapError{rc: message.RCIncorrectPIN, field: 52, reason: "PIN block (without PAN) does not decode"}
	default:
		return nil, &mapError{rc: message.RCSecurityViolation, field: 52, reason: "PIN block (without PAN) not translatable: " + err.Error()}
	}
}

// decryptTrack decrypts a track by the UnionPay TDB rule: the track's nibbles packed
// two per byte (an odd count padded with 0), the 8 bytes that end one byte before the
// last are ECB-encrypted under the TDK; the rest is clear.
func decryptTrack(ctx context.Context, h HSM, tdk hsm.KeyRef, nib string) (string, error) {
	packed, _ := Nibbles.Encode([]byte(nib))
	if len(packed) < 9 {
		return "", fmt.Errorf("track of %d digits is too short to hold an encrypted block", len(nib))
	}
	n := len(packed)
	clear, err := h.DecryptData(ctx, tdk, packed[n-9:n-1])
	if err != nil {
		return "", err
	}
	copy(packed[n-9:n-1], clear)
	out, _, _ := Nibbles.Decode(packed, len(nib))
	return string(out), nil
}

// EncryptTrack is the terminal side of decryptTrack, under the clear TDK block c.
func EncryptTrack(encrypt func(dst, src []byte), nib string) (string, error) {
	packed, err := Nibbles.Encode([]byte(nib))
	if err != nil {
		return "", err
	}
	if len(packed) < 9 {
		return "", fmt.Errorf("track of %d digits is too short to hold an encrypted block", len(nib))
	}
	n := len(packed)
	encrypt(packed[n-9:n-1], packed[n-9:n-1])
	out, _, _ := Nibbles.Decode(packed, len(nib))
	return string(out), nil
}

// settlementAnswer is F48 of an 0510: the terminal's totals with the settlement code
// (the 31st digit, and the 62nd when foreign totals are present) set to 1 when the
// switch's journal agrees (F39 00) and 2 when it does not (95), the two answers of a
// settlement the switch compared and closed its batch on. Any other F39 is a
// settlement refused before it was compared (58 terminal-suspended, 59, 63, 03, 30
// batch-totals-missing, 91 journal-behind, 96): the switch's batch stays open, and
// the answer carries no F48 (ok false), so that no terminal takes a settlement code
// for a batch the switch did not settle. Terminal code reads the code only after
// F39 00 and takes 1, 2 and 3 alike as the host's settlement, which closes the
// terminal's batch; a missing code is an error that keeps it (docs/cup-dialect.md,
// Settlement). (Until the third release of 6 December 2026 every refusal carried
// code 2, unbalanced.)
func settlementAnswer(f48, rc string) (string, bool) {
	var code byte
	switch rc {
	case message.RCApproved:
		code = '1'
	case message.RCReconciliationError:
		code = '2'
	default:
		return "", false
	}
	b := []byte(f48)
	// Totals sent without their code digit (30 or 61 digits, which
	// settlementTotals reads) get it added: a terminal reads the code at digit 31
	// (and 62), and one missing is a settlement error that keeps its batch while
	// the switch closed its own. (Until 6 December 2026 such an F48 was echoed
	// without a code.)
	if len(b) == 30 || len(b) == 61 {
		b = append(b, '0')
	}
	if len(b) >= 31 {
		b[30] = code
	}
	if len(b) >= 62 {
		b[61] = code
	}
	return string(b), true
}

// asciiAnswer is the pipeline's answer, unpacked.
type asciiAnswer struct{ m *iso8583.Message }

func parseASCII(body []byte) (asciiAnswer, error) {
	m := iso8583.NewMessage(message.SpecASCII)
	if err := m.Unpack(body); err != nil {
		return asciiAnswer{}, err
	}
	return asciiAnswer{m}, nil
}

func (p asciiAnswer) Str(id int) string {
	if p.m.GetField(id) == nil || !p.m.Bitmap().IsSet(id) {
		return ""
	}
	s, _ := p.m.GetString(id)
	return s
}

// identity returns the DE 48 identity tags of the terminal's sign-in (session s)
// while the sign-in is younger than Config.SignInMaxAge. Past three quarters of the
// age it sets sit.SignInDue (the answer asks for a sign-in); past the age it returns
// "" and counts the terminal as not signed in: the place and identity it reported
// then no longer vouch for it, since it may have been carried off after. (Until 6
// December 2026 a sign-in stood until the next one, however old.)
func (a *Adapter) identity(s *session, sit *Situation, stan string) string {
	s.mu.Lock()
	identity, signedIn := s.tlv, s.signedIn
	s.mu.Unlock()
	if signedIn.IsZero() {
		return identity
	}
	switch age := a.cfg.Now().Sub(signedIn); {
	case age > a.cfg.SignInMaxAge:
		a.log.Warn().Str("tid", sit.TID).Str("stan", stan).Dur("sign_in_age", age).Dur("max_age", a.cfg.SignInMaxAge).
			Msg("cup: sign-in older than its maximum age: its identity is not used; the terminal is asked to sign in again")
		sit.SignedIn = false
		return ""
	case age > a.cfg.SignInMaxAge/4*3:
		sit.SignInDue = true
	}
	return identity
}

// boundIdentity is the DE 48 identity tags of terminal term's registration (its
// device, SIM, IMEI and deployment point), "" when unknown.
func boundIdentity(term *registry.Terminal) string {
	if term == nil {
		return ""
	}
	var b []byte
	add := func(tag, v string) {
		if v != "" {
			b, _ = message.AppendTLV(b, tag, v)
		}
	}
	add(message.TagDevice, term.Binding.DeviceSerial)
	add(message.TagSIM, term.Binding.ICCID)
	add(message.TagIMEI, term.Binding.IMEI)
	if l := term.Location; l != nil {
		add(message.TagGeo, strconv.FormatFloat(l.Lat, 'f', 6, 64)+","+strconv.FormatFloat(l.Lon, 'f', 6, 64))
	}
	return string(b)
}
