// Package pipeline is the transaction path of the switch: it decodes a terminal
// request, runs the checks (terminal binding, device integrity, MAC), the risk rules and
// the PIN translation, routes the authorization to its issuer, journals every step
// durably, and builds the response. Around the authorization it keeps the books that
// make sure nothing is lost: duplicates, reversals and voids through a store-and-forward
// queue, refunds bounded by their original, stand-in when an issuer is unreachable,
// batch totals, and recovery after a crash. It depends only on small interfaces, so that
// the embedded stores can be replaced by distributed ones: in a cluster (cluster.go) it
// answers 91 rather than approve without a durable record, and treats a request first
// journaled on another node as a duplicate.
package pipeline

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moov-io/iso8583"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/metrics"
	"github.com/switchyard/switchyard/switch/registry"
	"github.com/switchyard/switchyard/switch/saf"
)

// The journal is where transactions are recorded. The pipeline uses it in several
// roles, each declared on its own so that a part of the pipeline (or a test fake, or a
// distributed store) can be reasoned about by the role it plays; Journal composes them
// for New, which needs them all.

// RRNSource hands out retrieval reference numbers (one per journaled request).
type RRNSource interface {
	// NextRRN returns a new, unique retrieval reference number.
	NextRRN() (string, error)
}

// RecordStore writes and reads transaction records: every step of a transaction, and
// the updates of an original (reversed, voided, refunded).
type RecordStore interface {
	// Write stores rec; with durable it returns once rec is on disk. first marks the
	// first write of a record (its indexes are written with it).
	Write(ctx context.Context, rec *journal.Record, first, durable bool) error
	// Get returns the record with the RRN (journal.ErrNotFound if none).
	Get(rrn string) (*journal.Record, error)
}

// DuplicateIndex finds the request already journaled under a duplicate key (resends,
// and the originals of reversals).
type DuplicateIndex interface {
	// LookupDuplicate returns the RRN of the request with the same DE 41, 11 and 7.
	LookupDuplicate(tid, stan, de7 string) (string, bool, error)
	// LookupDuplicateKey returns the RRN of the request held under a duplicate key
	// (journal.DupKey, or journal.CaptureDupKey of an offline approval's card).
	LookupDuplicateKey(key string) (string, bool, error)
}

// History reads the records in time order (batch totals, the duplicate filter's start).
type History interface {
	// Scan calls fn for the records matching q in time order.
	Scan(ctx context.Context, q journal.Query, fn func(*journal.Record) bool) error
	// LastReceived returns the receive time of the newest record (zero when empty).
	LastReceived() (time.Time, error)
}

// BatchBook keeps each terminal's batch boundary.
type BatchBook interface {
	LastBatch(tid string) (time.Time, error)
	CloseBatch(ctx context.Context, tid string, at time.Time) error
}

// DeliveryMarks records whether responses reached their terminals (recovery reverses
// an approval without a mark).
type DeliveryMarks interface {
	// MarkDelivery records whether a response reached the terminal (not waited for).
	MarkDelivery(rrn string, delivered bool, at time.Time) error
}

// RecoveryLog serves crash recovery: the checkpoint below which every record is final,
// the records from it on, and the records whose reversal advice a node owes.
type RecoveryLog interface {
	Checkpoint() (string, error)
	SetCheckpoint(ctx context.Context, rrn string) error
	ScanFrom(ctx context.Context, rrn string, fn func(*journal.Record) bool) error
	// Node names this node as journal.Record.OwedBy does: a cluster node's number
	// (its RRN prefix), "" on a single switch (whose records name no node: its
	// recovery scans them all from the checkpoint).
	Node() string
	// ScanOwed calls fn for every record, whichever node's, not reversed, whose
	// OwedBy is node: the reversal advices node owed when its memory went.
	ScanOwed(ctx context.Context, node string, fn func(*journal.Record) bool) error
}

// Journal is every role the pipeline needs of the journal (journal.Store is one).
type Journal interface {
	RRNSource
	RecordStore
	DuplicateIndex
	History
	BatchBook
	DeliveryMarks
	RecoveryLog
}

// HSM is the part of hsm.HSM the pipeline uses: MACs of terminal messages, PIN
// translation towards issuers and terminal key changes. Every hsm.HSM satisfies it.
type HSM interface {
	VerifyMAC(ctx context.Context, req hsm.MACRequest, mac []byte) error
	GenerateMAC(ctx context.Context, req hsm.MACRequest) ([]byte, error)
	TranslatePIN(ctx context.Context, req hsm.TranslatePINRequest) ([]byte, error)
	GenerateKey(ctx context.Context, req hsm.GenerateKeyRequest) (hsm.KeyResult, error)
}

// Queue is the store-and-forward queue of messages owed to issuers.
type Queue interface {
	Enqueue(it *saf.Item) error
}

// IssuerLink sends messages to one issuer.
type IssuerLink interface {
	ID() string
	NextSTAN() string
	AcquirerID() string
	// Up reports whether the link has a signed-on connection.
	Up() bool
	// Send sends m and waits for the answer up to timeout (0: the link's own timeout).
	Send(ctx context.Context, m *iso8583.Message, timeout time.Duration) (*iso8583.Message, error)
	// SendPacked sends a body already encoded, with stan in DE 11 and rrn in DE 37, and
	// waits for the answer like Send; it returns the answer's response and approval
	// codes.
	SendPacked(ctx context.Context, mti, stan, rrn string, body []byte, timeout time.Duration) (message.Answer, error)
}

// Routes finds the issuer of a PAN, and an issuer by ID.
type Routes interface {
	Route(pan string) (IssuerLink, bool)
	Issuer(id string) (IssuerLink, bool)
}

// Errors an IssuerLink returns, mapped to 91 (or stand-in).
var (
	ErrIssuerTimeout     = errors.New("issuer timeout")
	ErrIssuerUnavailable = errors.New("issuer unavailable") // the request was not sent
)

// StandInLimits bound the approvals the switch gives for an unreachable issuer.
type StandInLimits struct {
	Enabled      bool
	MaxAmount    int64 // per transaction, minor units
	PerCardCount int   // approvals per card per day
	PerCardSum   int64 // sum per card per day
}

// Config tunes the pipeline.
type Config struct {
	// CardHashKey keys the HMAC-SHA256 that identifies cards without their PAN.
	CardHashKey []byte
	// IsTimeout and IsUnavailable classify IssuerLink errors (defaults: errors.Is with
	// ErrIssuerTimeout / ErrIssuerUnavailable).
	IsTimeout, IsUnavailable func(error) bool
	// DupWindow is how far a request's DE 7 may be from now for duplicate detection to
	// trust the in-memory filter of recent requests; requests with an older DE 7, and
	// all requests in the first window after a start, are checked in the journal
	// (default 5 min).
	DupWindow time.Duration
	// DupWait bounds how long a duplicate of a request journaled first on another node
	// of a cluster waits for that request's answer to be final here (default 10 s);
	// then it is answered 91 (duplicate-in-flight) and the terminal tries again. It is
	// measured by the wall clock, not by Now.
	DupWait time.Duration
	// LeaseLost, if set (a cluster node), returns an error when this node may no
	// longer finish its transactions in flight: its lease lapsed while it lived (a
	// pause of the process) and another node claimed the recovery of its
	// incarnation, which settles them from their write-ahead records (91, reversed
	// at the issuer). It is asked for a transaction sent to its issuer once the
	// issuer has answered (or not), before its final version is written, and before
	// its answer goes to the terminal (handOver answers it otherwise); it must be
	// cheap while the lease is held.
	LeaseLost func(ctx context.Context) error
	// LeaseHeld, if set (a cluster node), returns nil while this node's lease is
	// known held now (cluster.Lease.Fresh), an error otherwise. The housekeeping
	// asks it before it queues the advices the queue did not take and writes the
	// records kept while the journal was unavailable (each tick, and at Stop), and
	// leaves them for a later tick when it errs: a node woken from a pause after
	// another node claimed its recovery must not queue a 0420 that node queued too,
	// nor write over what it settled (since 6 December 2026). It must be cheap.
	LeaseHeld func() error
	// RefundWindow is how old an original may be for a refund (default 30 days).
	RefundWindow time.Duration
	// Location is the acquirer's time zone: a void must be the same local day.
	Location *time.Location
	// StandIn holds the stand-in limits by issuer ID; absent means no stand-in.
	StandIn map[string]StandInLimits
	// StandIns keeps the day's stand-in counts per card across restarts (nil: in
	// memory only, a restart starting them afresh).
	StandIns StandInStore
	// Breaker tunes the issuers' circuit breakers (zero values take the defaults).
	Breaker BreakerConfig
	// ReversalMismatch is what a terminal reversal whose amount differs from its
	// original's gets: "reverse_full" reverses the original in full (answered 00);
	// anything else ("decline", the default) declines it 13 and reverses nothing.
	ReversalMismatch string
	// CompletionTolerance is how far above its pre-authorization a completion (0220)
	// may capture, as a fraction (0.15: 15 %); 0 takes DefaultCompletionTolerance, a
	// negative value allows nothing above (completion.go).
	CompletionTolerance float64
	// MerchantLockWithin is the margin, as a fraction of a limit, within which a
	// purchase's merchant's known usage plus its amount takes the merchant's lock
	// (MerchantLocks; cluster.merchant_lock_within): 0 to 1, never less than the
	// purchase's own amount (one purchase for the count).
	MerchantLockWithin float64
	// HSM does every cryptographic operation (nil: no MACs, no PINs).
	HSM HSM
	// Risk is the rules engine (nil: no rules).
	Risk Risk
	// Profiles give the rules each merchant's profile (merchant.profile.*); nil
	// gives every merchant its tier's built-in defaults.
	Profiles Profiles
	// Zones are the issuers' zone PIN keys (default "<issuer>.ZPK", format 0).
	Zones ZoneKeys
	// KeyGrace is how long a terminal's previous working keys stay valid after a key
	// change (default 10 min).
	KeyGrace time.Duration
	// KeyChangeInterval is the least time between two working-key changes
	// (0800/161) of one terminal (default 1 min): a change sooner is answered
	// with the last one's keys again, nothing generated.
	KeyChangeInterval time.Duration
	// QR routes payment codes to their connectors (nil: payments with a payment code
	// are declined 15 qr-no-route).
	QR QRRoutes
	// Orders makes merchant-presented QR orders (nil: order requests are declined 12).
	Orders QROrders
	// MerchantLimits checks a merchant's daily and monthly amount limits and its
	// daily count limit for an offline capture, which no rule decides (offline.go;
	// the server's, over the sums its merchant-presented QR payments are checked
	// against); nil checks only the per-transaction limit.
	MerchantLimits MerchantLimits
	// MerchantLocks takes a merchant's cluster-wide lock for a card purchase or
	// pre-authorization near one of its merchant's limits (merchantlock.go; the
	// server's cluster node); nil, a single switch, takes none. It needs a Risk
	// that reads its counters (VelocityReader).
	MerchantLocks MerchantLocker
	// Cases receives the transactions the rules send to review or alert (nil: they
	// are only logged).
	Cases Cases
	// Updates offers application updates at sign-on and echo (nil: none).
	Updates Updates
	// TxnPolicies are the void and refund policies by terminal kind and merchant
	// tier, tried before DefaultTxnPolicies (txnpolicy.go).
	TxnPolicies []TxnPolicy
	// Notices take the merchant notice of each approval, void and refund
	// (*notify.Outbox): a copy into memory, no I/O; nil sends none.
	Notices Notices
	// Ratings gives the rules each merchant's rating in force and lowers its limits
	// to those of the rating (*rating.Book); nil leaves the registry's.
	Ratings Ratings
	// Attestation verifies SoftPOS attestation tokens (DE 48 AJ); nil refuses every
	// token (attestation-unknown-key).
	Attestation Attestations
	// Now is the clock that stamps the transactions (default time.Now): tests whose
	// result depends on the day inject one, so that they cannot fail across midnight.
	Now func() time.Time
	// Logger receives a line per transaction and the pipeline's errors, tagged by the
	// wiring (component=pipeline); the zero value logs nothing.
	Logger zerolog.Logger
}

// Pipeline processes terminal requests. It is safe for concurrent use.
type Pipeline struct {
	cfg       Config
	journal   Journal
	queue     Queue
	routes    Routes
	terminals Terminals
	hsm       HSM
	risk      Risk
	profiles  Profiles
	attest    Attestations
	ratings   Ratings
	limits    MerchantLimits
	// mlocks, velocity and lockWithin take the merchant's lock of a purchase near
	// its limits (merchantlock.go); mlocks nil on a single switch.
	mlocks     MerchantLocker
	velocity   VelocityReader
	lockWithin float64
	notices    Notices
	zones      ZoneKeys
	keyGrace   time.Duration
	keyChanges *keyChangeTimes // the terminals' last key changes (security.go)
	metrics    *metrics.Metrics
	log        zerolog.Logger
	// unavailLog is log sampled to a burst of journalUnavailableBurst lines a
	// second, for the 91s of a journal that takes no new records (a cluster without
	// a quorum, a nearly full disk): every request meets it, and a line each would
	// fill the logs, maybe on the very disk that is full. The metric and the
	// journal (the records kept for its return) count every one.
	unavailLog zerolog.Logger
	// hsmLog and faultLog are log sampled to faultLogBurst lines every
	// faultLogPeriod, for the errors a fault makes every transaction meet: no HSM
	// answering (hsmLog), a journal that fails its writes (faultLog: the 96s of a
	// broken journal log). One Error line per request would bury the cause under
	// the traffic's volume; each transaction's own line (reason hsm-unavailable,
	// system-malfunction) and switchyard_transactions_total still count them all.
	hsmLog, faultLog zerolog.Logger
	now              func() time.Time
	hashers          sync.Pool
	seal             *sealer

	dups     *dupTable
	early    *earlyReversals
	recent   *recentKeys
	open     *inflight
	locks    [256]sync.Mutex // serialize updates of an original (by RRN)
	locker   RecordLocker    // the journal's, in a cluster (lockRecord)
	node     string          // the journal's Node: OwedBy of the reversal advices owed here
	breakers sync.Map        // issuer ID -> *breaker
	standIn  *standInBook
	admitter Admitter // the journal, when it may refuse new requests (nil: it never does)
	authSeq  atomic.Uint32
	lastRRN  atomic.Value // string
	stop     chan struct{}
	wg       sync.WaitGroup
	// heldLogged is when leaseHeld last said why the housekeeping waits (the
	// housekeeping goroutine's alone).
	heldLogged time.Time

	// unsettled keeps what the journal could not take for want of a quorum, and the
	// approvals of offline captures whose final write failed (cluster.go).
	unsettled settleBook
	// owedAdvices keeps the reversal advices the queue did not take (reversal.go).
	owedAdvices adviceBook
	// decisions is the gate a batch waits at for the decisions taken before its
	// close whose write has not returned yet (decisions.go).
	decisions *decisionGate
	// onBatchDrain, when set (by tests), is called when a batch starts waiting for
	// decisions still being written.
	onBatchDrain func()
}

// New returns a pipeline.
func New(cfg Config, j Journal, q Queue, routes Routes, terms Terminals, m *metrics.Metrics) (*Pipeline, error) {
	if len(cfg.CardHashKey) < 16 {
		return nil, errors.New("pipeline: card hash key must be at least 16 bytes")
	}
	if cfg.IsTimeout == nil {
		cfg.IsTimeout = func(err error) bool { return errors.Is(err, ErrIssuerTimeout) }
	}
	if cfg.IsUnavailable == nil {
		cfg.IsUnavailable = func(err error) bool { return errors.Is(err, ErrIssuerUnavailable) }
	}
	if cfg.DupWindow <= 0 {
		cfg.DupWindow = 5 * time.Minute
	}
	if cfg.DupWait <= 0 {
		cfg.DupWait = 10 * time.Second
	}
	if cfg.RefundWindow <= 0 {
		cfg.RefundWindow = 30 * 24 * time.Hour
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	cfg.Breaker.setDefaults()
	s, err := newSealer(cfg.CardHashKey)
	if err != nil {
		return nil, err
	}
	if cfg.KeyGrace <= 0 {
		cfg.KeyGrace = 10 * time.Minute
	}
	if cfg.KeyChangeInterval <= 0 {
		cfg.KeyChangeInterval = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Profiles == nil {
		cfg.Profiles = tierDefaults
	}
	p := &Pipeline{cfg: cfg, journal: j, queue: q, routes: routes, terminals: terms, metrics: m, log: cfg.Logger, now: cfg.Now, seal: s, decisions: newDecisionGate(),
		unavailLog: cfg.Logger.Sample(&zerolog.BurstSampler{Burst: journalUnavailableBurst, Period: time.Second}),
		hsmLog:     cfg.Logger.Sample(&zerolog.BurstSampler{Burst: faultLogBurst, Period: faultLogPeriod}),
		faultLog:   cfg.Logger.Sample(&zerolog.BurstSampler{Burst: faultLogBurst, Period: faultLogPeriod}),
		hsm:        cfg.HSM, risk: cfg.Risk, profiles: cfg.Profiles, attest: cfg.Attestation, ratings: cfg.Ratings, limits: cfg.MerchantLimits, notices: cfg.Notices, zones: cfg.Zones, keyGrace: cfg.KeyGrace,
		keyChanges: newKeyChangeTimes(cfg.KeyChangeInterval),
		dups:       newDupTable(), early: newEarlyReversals(cfg.DupWindow, 100_000), open: newInflight(), standIn: newStandInBook(), stop: make(chan struct{}),
		recent: newRecentKeys(cfg.DupWindow, 5_000_000, cfg.Now())}
	p.locker, _ = j.(RecordLocker)
	p.admitter, _ = j.(Admitter)
	if cfg.MerchantLocks != nil {
		if cfg.MerchantLockWithin < 0 || cfg.MerchantLockWithin > 1 {
			return nil, fmt.Errorf("pipeline: merchant lock margin %v is not a fraction from 0 to 1", cfg.MerchantLockWithin)
		}
		p.mlocks, p.lockWithin = cfg.MerchantLocks, cfg.MerchantLockWithin
		p.velocity, _ = cfg.Risk.(VelocityReader)
	}
	p.node = j.Node()
	p.standIn.store = cfg.StandIns
	if err := p.standIn.load(cfg.Now().In(cfg.Location).Format("2006-01-02")); err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	key := append([]byte(nil), cfg.CardHashKey...)
	p.hashers.New = func() any { return hmac.New(sha256.New, key) }
	// The filter of recent requests starts empty: until it has seen a whole window,
	// every request is checked in the journal, unless the journal holds nothing from
	// the last window (a first start, or a long stop).
	last, err := j.LastReceived()
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	if now := cfg.Now(); now.Sub(last) > cfg.DupWindow {
		p.recent.started = now.Add(-cfg.DupWindow - time.Second)
	}
	return p, nil
}

// Start runs the pipeline's housekeeping (recovery checkpoint, and the records kept
// while the journal was unavailable).
func (p *Pipeline) Start() {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-p.stop:
				p.retryAdvices()
				if n := p.owedAdvices.len(); n > 0 {
					p.log.Error().Int("advices", n).Msg("stopping with advices the queue did not take: NOT queued (recovery queues them at the next start)")
				}
				p.settle(context.Background())
				if n := p.unsettled.len(); n > 0 {
					p.log.Error().Int("records", n).Msg("stopping with records the journal did not take (while unavailable, or offline captures' approvals whose write failed): NOT written (recovery settles those written ahead)")
				}
				p.checkpoint()
				return
			case <-tick.C:
				p.retryAdvices()
				p.settle(context.Background())
				p.checkpoint()
			}
		}
	}()
}

// leaseHeld reports whether the housekeeping may queue owed advices and write kept
// records now (Config.LeaseHeld); it logs, once a minute, why not.
func (p *Pipeline) leaseHeld() bool {
	if p.cfg.LeaseHeld == nil {
		return true
	}
	err := p.cfg.LeaseHeld()
	if err == nil {
		return true
	}
	if n := p.owedAdvices.len() + p.unsettled.len(); n > 0 {
		if now := time.Now(); now.Sub(p.heldLogged) >= time.Minute {
			p.heldLogged = now
			p.log.Warn().Err(err).Int("waiting", n).
				Msg("lease not known held: owed advices and kept records wait (if it is lost, the node recovering this one settles them)")
		}
	}
	return false
}

// Stop ends the housekeeping and writes a last checkpoint.
func (p *Pipeline) Stop() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	p.wg.Wait()
}

// checkpoint moves the recovery checkpoint to the oldest transaction still open.
func (p *Pipeline) checkpoint() {
	ck := p.open.min()
	own, _ := p.lastRRN.Load().(string)
	if owed := p.owedAdvices.minRRN(own); owed != "" && (ck == "" || owed < ck) {
		ck = owed // an advice owed in memory: recovery must find its record
	}
	if ck == "" {
		last, _ := p.lastRRN.Load().(string)
		if last == "" {
			return
		}
		ck = last
	}
	if err := p.journal.SetCheckpoint(context.Background(), ck); err != nil {
		p.log.Warn().Err(err).Msg("recovery checkpoint not written")
	}
}

// CardHash returns the keyed hash that stands for a PAN in the journal and the risk
// engine: HMAC-SHA256 under the card hash key, first 16 bytes, hex.
func (p *Pipeline) CardHash(pan string) string {
	h := p.hashers.Get().(hash.Hash)
	h.Reset()
	h.Write([]byte(pan))
	var sum [32]byte
	out := hex.EncodeToString(h.Sum(sum[:0])[:16])
	p.hashers.Put(h)
	return out
}

// Notices take the merchant notices of answered transactions (notify.Outbox).
type Notices interface {
	Notice(rec *journal.Record, original string)
}

// txn is one transaction in progress.
type txn struct {
	req     *message.Request
	conn    *frontend.Conn
	rec     journal.Record
	start   time.Time
	issuer  string
	written bool // the record has been written once
	// offline: a purchase the card approved offline, uploaded to be captured
	// (CaptureOffline), not authorized.
	offline bool
	// dupAtSent: dup is finished once the answer's delivery is known (sent), not
	// when the outcome is journaled: an approval whose answer is not delivered is
	// reversed, and a duplicate told "approved" meanwhile would be told of an
	// approval taken back.
	dupAtSent bool
	dup       *dupEntry
	dupKey    string
	release   func()             // undoes what the caller of authorize reserved (a refund's amount)
	events    [8]journal.Event   // room for the record's events without growing
	term      *registry.Terminal // the registered terminal, when known
	kind      string             // the terminal's kind and its merchant's tier, when known
	tier      string             // (the void and refund policy)
	macKey    hsm.KeyRef         // MAC key of the terminal (responses are MAC'd under it)
	macOK     bool               // the request carried a valid MAC
	pin       []byte             // the PIN block translated to the issuer's ZPK
	risk      *risk.Input        // what the rules saw (observed and pooled at the end)
	decision  risk.Decision      // what the rules decided
	// undo is the original a void, reversal or refund takes back out of the velocity
	// counters (as undoBy says) once it is answered approved.
	undo   *journal.Record
	undoBy risk.Retraction
	stages stageTimes // what each stage took
	ready  time.Time  // the answer was ready (answer_written counts from here)
	// decided is the decision gate's generation t entered before its decision's
	// time was read (answered), left once the write carrying it returns (write, or
	// Process's end); nil outside the gate.
	decided *decisionGen
	// qr is what a QR request carries along (qr.go); nil for a card. One pointer, so
	// that txn stays in its allocation size class.
	qr *qrTxn
	// hold is the merchant's lock an offline capture holds from its limits' check
	// to its final write (MerchantLimits), or a card purchase near its merchant's
	// limits from before its rules run to its final record (purchaseLock); nil
	// otherwise.
	hold LimitHold
}

// Process implements frontend.Processor. The front-end cancels ctx when the drain
// starts; a request already read is still carried to its end (its journal lookups, its
// wait for a duplicate in flight, a reversal's wait for its original), because giving
// up half way would leave an approval standing or a terminal without its answer. Every
// such wait has its own bound (issuer timeout, 30 s, Config.DupWait), within the drain
// timeout.
func (p *Pipeline) Process(ctx context.Context, c *frontend.Conn, body []byte) (frontend.Response, error) {
	ctx = context.WithoutCancel(ctx)
	start := p.now()
	req, err := message.Decode(body, c.Dialect)
	if err != nil {
		return p.formatError(c, err)
	}
	t := &txn{req: req, conn: c, start: start}
	defer p.leaveDecision(t) // a decision whose final write never came (handOver)
	decoded := p.now().Sub(start)
	t.rec.Timings.Decode = decoded.Microseconds()
	t.stages.add(metrics.StageDecode, decoded)
	if reason := p.authenticate(ctx, t); reason != "" {
		return p.securityDecline(ctx, t, reason)
	}
	switch req.MTI {
	case "0800":
		return p.network(ctx, t)
	case "0100", "0200", "0220", "0400", "0500":
		if isOrderRequest(req) {
			return p.qrOrder(ctx, t)
		}
		return p.once(ctx, t)
	default:
		return p.unsupported(ctx, t)
	}
}

// once runs a request that must be processed at most once: a duplicate (same DE 41,
// DE 11, DE 7) gets the first one's answer, also while the first is in flight.
func (p *Pipeline) once(ctx context.Context, t *txn) (frontend.Response, error) {
	r := t.req
	t.dupKey = journal.DupKey(r.TID, r.STAN, r.DE7)
	payer := r.PAN
	if r.QR {
		payer = r.QRCode
	}
	captured := t.rec.CaptureKey != "" // an offline approval, keyed by its card (CaptureOffline)
	if captured {
		// The card's approval, whatever its STAN and time; the same one from
		// another terminal is other content (94), never the first one's answer.
		t.dupKey = journal.CaptureDupKey(t.rec.CaptureKey)
		payer = r.TID + "/" + r.PAN
	}
	content := dupContent{amount: r.Amount, proc: r.ProcCode, pan: p.dups.panSum(payer)}
	e, first := p.dups.claim(t.dupKey, t.start, content, false)
	if !first {
		if !e.hold && e.content != content {
			first := "" // in flight: not named yet
			if rrn := e.rrn.Load(); rrn != nil {
				first = *rrn // answered, its delivery not known yet
			}
			return p.duplicateMismatch(ctx, t, first)
		}
		select {
		case <-e.done:
		case <-ctx.Done():
			return frontend.Response{}, ctx.Err()
		}
		if e.out.rc == "" { // the first was not processed; process this one
			return p.once(ctx, t)
		}
		return p.repeat(t, e.out)
	}
	// A request first seen now needs no journal read: its DE 7 is recent, the switch
	// has run for a whole window, and the filter of recent requests has not seen it.
	now := p.now()
	mustLook := captured || !p.recent.complete(now) || p.recent.mayHave(t.dupKey)
	if !mustLook {
		if de7, err := message.ParseDE7(r.DE7, now); err != nil || absDuration(now.Sub(de7)) > p.cfg.DupWindow/2 {
			mustLook = true
		}
	}
	p.recent.add(t.dupKey, now)
	if !mustLook {
		// not seen: go on
	} else if rrn, found, err := p.lookupDuplicate(t, captured); err != nil {
		p.dups.forget(t.dupKey, e)
		return p.systemError(t, err)
	} else if found {
		// Its answer, at once if final; if not (in a cluster, a request in flight on
		// another node, or one not yet applied here), once it is.
		return p.answerAsDuplicate(ctx, t, e, rrn)
	}
	t.dup = e
	var resp frontend.Response
	var err error
	switch r.MTI {
	case "0400":
		resp, err = p.reversal(ctx, t)
	case "0500":
		resp, err = p.batch(ctx, t)
	default:
		// A reversal that came before its original named this request: it is
		// declined, never left standing (checked only while such reversals are kept).
		if rev, ok := p.early.take(t.dupKey, r.MTI, now); ok {
			resp, err = p.reversedBeforeArrival(ctx, t, rev)
		} else {
			resp, err = p.financial(ctx, t)
		}
	}
	if t.dup != nil && !t.dupAtSent { // not finished by respond (a system error)
		p.dups.forget(t.dupKey, t.dup)
		t.dup = nil
	}
	return resp, err
}

// lookupDuplicate looks t's duplicate key up in the journal: an offline approval's
// (captured) by its card's key, any other by its DE 41, 11 and 7.
func (p *Pipeline) lookupDuplicate(t *txn, captured bool) (string, bool, error) {
	if captured {
		return p.journal.LookupDuplicateKey(t.dupKey)
	}
	return p.journal.LookupDuplicate(t.req.TID, t.req.STAN, t.req.DE7)
}

// duplicateMismatch answers 94 to a request that reuses the DE 41 + 11 + 7 of another
// (first, when known, its RRN) with another amount, processing code or card: it is not
// a resend, so it neither gets the other's answer nor goes to the issuer. It is
// journaled (as a record that does not take over the key, see journal.Record.OwnsDupKey).
func (p *Pipeline) duplicateMismatch(ctx context.Context, t *txn, first string) (frontend.Response, error) {
	if err := p.newRecord(t); err != nil {
		return p.systemError(t, err)
	}
	t.rec.OriginalRRN = first
	return p.decline(ctx, t, message.RCDuplicate, "switch", "duplicate-key-other-content")
}

// repeat answers a duplicate with its first answer; nothing is forwarded.
func (p *Pipeline) repeat(t *txn, out outcome) (frontend.Response, error) {
	resp := message.NewResponseBuilderAmount(t.req, out.amount).Set(37, out.rrn).Set(39, out.rc)
	if message.Approved(out.rc) {
		resp.Set(38, out.auth)
		if out.balance != "" { // a balance inquiry's first answer's DE 54
			resp.Set(54, out.balance)
		}
	}
	if out.reason != "" {
		resp.Set(48, message.ReasonTLV(out.reason))
	}
	raw, err := resp.Bytes(p.macFunc(t))
	if err != nil {
		return frontend.Response{}, err
	}
	p.metrics.Transactions.WithLabelValues(t.req.MTI, out.rc, "", "duplicate").Inc()
	p.log.Info().Str("rrn", out.rrn).Str("mti", t.req.MTI).Str("tid", t.req.TID).Str("stan", t.req.STAN).
		Str("rc", out.rc).Msg("duplicate: first answer repeated, nothing forwarded")
	return frontend.Response{Body: raw}, nil
}

// network answers 0800: sign-on, sign-off and echo. Only a message that proves to
// be the terminal's makes it seen (networkSeen); a sign-on or key change is seen by
// its terminal checks.
func (p *Pipeline) network(ctx context.Context, t *txn) (frontend.Response, error) {
	if p.terminals != nil && p.networkSeen(t) {
		p.seen(t)
	}
	resp := message.NewResponseBuilder(t.req)
	rc := message.RCApproved
	// A sign-on and a key change make keys and offer updates: the terminal must be
	// the registered, active one, as for its transactions. Else anyone who knows a
	// terminal ID could rotate its working keys and break its PINs once their grace
	// ends. Echo and sign-off change nothing; an echo's AV and update offer
	// (echoMayOffer) need its MAC and the terminal's standing instead.
	var attestedApp string // the app claim of a verified, accepted AJ (checkNetwork)
	if code := t.req.NetCode; code == message.NMSignOn || code == message.NMKeyChange {
		var rc, reason string
		if rc, reason, attestedApp = p.checkNetwork(t); rc != "" {
			p.log.Warn().Str("tid", t.req.TID).Str("net_code", code).Str("rc", rc).Str("reason", reason).
				Str("remote", t.conn.Remote.String()).Msg("network management request refused by the terminal checks")
			raw, err := resp.Set(39, rc).Set(48, message.ReasonTLV(reason)).Bytes(p.macFunc(t))
			if err != nil {
				return frontend.Response{}, err
			}
			p.metrics.Transactions.WithLabelValues("0800", rc, "", "binding").Inc()
			return frontend.Response{Body: raw}, nil
		}
		// A dialect's sign-in (cup, frontend.Conn.UnMACdNetwork) that passed the
		// terminal checks does not make the terminal seen: it carries no MAC, and
		// its F62 identity and place travel in clear, so anyone on the network
		// path can send it again from anywhere. The terminal's first request whose
		// MAC verifies after it does (the terminal checks). (Until 6 December 2026
		// it did, and a replayed sign-in kept a stolen terminal looking online.)
	}
	switch t.req.NetCode {
	case message.NMSignOn:
		if u := p.cfg.Updates; u != nil {
			p.offerUpdate(u, t, resp, attestedApp)
		}
	case message.NMEcho:
		if u := p.cfg.Updates; u != nil && p.echoMayOffer(t) {
			p.offerUpdate(u, t, resp, "")
		}
	case message.NMSignOff:
	case message.NMKeyChange:
		var de48 string
		var err error
		rc, de48, err = p.keyChange(ctx, t)
		if err != nil {
			p.log.Error().Err(err).Str("tid", t.req.TID).Msg("key change failed")
			rc = message.RCSystemMalfunction
		}
		resp.Set(48, de48)
	default:
		rc = message.RCInvalidTransaction
	}
	raw, err := resp.Set(39, rc).Bytes(p.macFunc(t))
	if err != nil {
		return frontend.Response{}, err
	}
	p.metrics.Transactions.WithLabelValues("0800", rc, "", "switch").Inc()
	return frontend.Response{Body: raw}, nil
}

// seen records the terminal of network message t as seen now, from its source
// address and at the place its DE 48 GL reports.
func (p *Pipeline) seen(t *txn) {
	var loc registry.GeoPoint
	if g, err := message.ParseGeo(t.req.TLV.Geo); err == nil && t.req.TLV.Has&message.HasGeo != 0 {
		loc = registry.GeoPoint{Lat: g.Lat, Lon: g.Lon, Present: true}
	}
	p.terminals.Seen(t.req.TID, t.conn.Remote.Addr(), loc, t.start)
}

// networkSeen says whether a sign-off or echo, which do not go through the terminal
// checks, makes the terminal seen (its last-seen time, address and reported place,
// which the console shows and the offline alerts read): only with a MAC verified
// under the terminal's key (t.macOK), or, from a dialect adapter, on the connection
// on which the terminal last sent a verified MAC (frontend.Conn.SessionProven: the
// cup echo, which its dialect does not MAC). A sign-on and a key change are seen by
// their terminal checks (registry Check), when they pass them or their MAC verified,
// but a dialect's unMAC'd sign-in (cup) never is (checkNetwork: Unproven). A bare
// echo is answered as before and
// counted in switchyard_network_unproven_total, nothing else. Until 6 December 2026
// every 0800 naming a known terminal made it seen: whoever knew a stolen terminal's
// ID kept it looking online at its shop, and its offline alert silent.
func (p *Pipeline) networkSeen(t *txn) bool {
	switch t.req.NetCode {
	case message.NMSignOn, message.NMKeyChange:
		return false
	}
	if t.macOK || t.conn.SessionProven {
		return true
	}
	if p.metrics.NetworkUnproven != nil {
		p.metrics.NetworkUnproven.WithLabelValues(t.req.NetCode).Inc()
	}
	return false
}

// unsupported answers a message type the switch does not process with 12.
func (p *Pipeline) unsupported(ctx context.Context, t *txn) (frontend.Response, error) {
	if message.ResponseMTI(t.req.MTI) == "" {
		return frontend.Response{}, errors.New("unsupported message type " + t.req.MTI + " that is not a request")
	}
	return p.decline(ctx, t, message.RCInvalidTransaction, "switch", "unsupported-message")
}

// procDefined says whether DE 3 proc is one the terminal interface defines for a
// financial request of mti (docs/terminal-interface.md, Messages): an 0100 00xxxx
// (the merchant-presented QR codes never get here), an 0200 one of purchase, void,
// refund and balance inquiry. A completion's (0220) is checked with its original
// (completion-processing-code).
func procDefined(mti, proc string) bool {
	switch mti {
	case "0100":
		return strings.HasPrefix(proc, "00")
	case "0200":
		return TxnType(mti, proc) != "other"
	}
	return true
}

// TxnType names the transaction type of a request: "other" for an 0200 whose DE 3
// is none the switch defines (it is declined 12, procDefined).
func TxnType(mti, proc string) string {
	switch mti {
	case "0100":
		return "preauth"
	case "0200":
		switch proc {
		case message.PCPurchase:
			return "purchase"
		case message.PCVoid:
			return "void"
		case message.PCRefund:
			return "refund"
		case message.PCBalance:
			return "balance"
		}
		return "other"
	case "0220":
		return "completion"
	case "0400":
		return "reversal"
	case "0500":
		return "batch"
	case "0800":
		return "network"
	}
	return "other"
}

// maxLabel is the longest DE 48 LB label journaled; a longer one is dropped.
const maxLabel = 64

func (p *Pipeline) newRecord(t *txn) error {
	rrn, err := p.journal.NextRRN()
	if err != nil {
		return err
	}
	p.open.add(rrn)
	p.lastRRN.Store(rrn)
	r, rec := t.req, &t.rec
	rec.RRN = rrn
	rec.Received = t.start.UTC()
	rec.MTI, rec.ProcCode, rec.Type = r.MTI, r.ProcCode, TxnType(r.MTI, r.ProcCode)
	rec.TID, rec.MID, rec.STAN, rec.DE7 = r.TID, r.MID, r.STAN, r.DE7
	rec.Listener, rec.Remote = t.conn.Listener, t.conn.Remote.String()
	rec.Events = t.events[:0]
	if r.PAN != "" {
		rec.PANMasked = message.MaskPAN(r.PAN)
		rec.CardHash = p.CardHash(r.PAN)
	}
	if r.QR {
		p.newQRRecord(t)
	}
	rec.Amount, rec.Currency, rec.EntryMode = r.Amount, r.Currency, r.EntryMode
	rec.ContentSum = t.conn.ContentSum // a cup request's fingerprint (frontend.Conn.ContentSum)
	if l := r.TLV.Label; l != "" && len(l) <= maxLabel {
		rec.Label = l
	}
	if r.MTI == "0200" && (r.ProcCode == message.PCVoid || r.ProcCode == message.PCRefund) {
		rec.OriginalRRN = r.RRN
	}
	rec.AddEvent(journal.StateReceived, t.start.UTC(), "")
	return nil
}

func (p *Pipeline) breaker(issuer string) *breaker {
	if b, ok := p.breakers.Load(issuer); ok {
		return b.(*breaker)
	}
	gauge := p.metrics.IssuerBreaker.WithLabelValues(issuer)
	nb := newBreaker(p.cfg.Breaker, func(from, to BreakerState, why string) {
		gauge.Set(float64(to))
		// Warn for every change (rare), so that it shows with transaction lines off.
		p.log.Warn().Str("issuer", issuer).Str("from", from.String()).Str("to", to.String()).Str("why", why).Msg("issuer circuit breaker " + to.String())
	})
	nb.clock = p.now
	b, loaded := p.breakers.LoadOrStore(issuer, nb)
	if !loaded {
		gauge.Set(float64(BreakerClosed))
	}
	return b.(*breaker)
}

// checkFinancial runs the registry's checks of a financial request's terminal
// (checkTerminal) and notes the terminal's kind and its merchant's tier on t; a
// declined answer is returned as checkTerminal returns it.
func (p *Pipeline) checkFinancial(ctx context.Context, t *txn) (*registry.CheckResult, *frontend.Response, error) {
	res, declined, err := p.checkTerminal(ctx, t, t.macOK, registry.CheckFinancial)
	if declined != nil || err != nil {
		return res, declined, err
	}
	if res != nil && res.Terminal != nil {
		t.kind = string(res.Terminal.Kind)
	}
	if res != nil && res.Merchant != nil {
		t.tier = res.Merchant.Tier
	}
	return res, nil, nil
}

// financial processes 0100, 0200 and 0220.
func (p *Pipeline) financial(ctx context.Context, t *txn) (frontend.Response, error) {
	if err := p.newRecord(t); err != nil {
		return p.systemError(t, err)
	}
	if t.offline {
		return p.captureOffline(ctx, t)
	}
	// A processing code the terminal interface does not define for the MTI is no
	// transaction the switch knows how to carry out: before 7 December 2026 an 0200
	// with DE 3 020030 (a void from a credit account), 200030 or 999999 went to the
	// issuer as a purchase and charged the card again.
	if !procDefined(t.req.MTI, t.req.ProcCode) {
		return p.decline(ctx, t, message.RCInvalidTransaction, "switch", "unsupported-processing-code")
	}
	// Nor is a pre-authorization with a payment code (qrPreauth): until 8 December
	// 2026 (fifteenth release) the wallet's pay charged the payer, for a record no
	// batch, settlement or completion ever took.
	if qrPreauth(t.req) {
		return p.decline(ctx, t, message.RCInvalidTransaction, "switch", "qr-preauth-not-supported")
	}
	// Nor is an amount in a DE 49 that is no currency (999, 000, gold): before
	// 7 December 2026 it was approved and settled on a line of its own.
	if unpayable(t.req.Currency) {
		return p.declineUnpayable(ctx, t)
	}
	// A cluster node whose journal cannot keep up refuses it here, before its
	// checks and rules take the CPU its journal needs to catch up.
	if err := p.admit(t); err != nil {
		return p.systemError(t, err)
	}
	// The merchant's lock a purchase near its limits took (assess) is held until
	// its final record is durable and counted, whatever the path.
	defer unlockMerchant(t)
	res, declined, err := p.checkFinancial(ctx, t)
	if declined != nil || err != nil {
		return *declined, err
	}
	if t.req.MTI == "0220" { // a completion captures what its pre-authorization's rules passed
		return p.completion(ctx, t)
	}
	// A purchase or pre-authorization of nothing is not a transaction (balance
	// inquiries carry no amount; refunds and voids check theirs against the original).
	if typ := t.rec.Type; (typ == "purchase" || typ == "preauth") && t.req.Amount <= 0 {
		// A probe all the same (a card tested with nothing to pay): the counters see it.
		p.probe(t, res)
		return p.decline(ctx, t, message.RCInvalidAmount, "switch", "invalid-amount")
	}
	// Refunds show the rules the card and amount of their original.
	var orig *journal.Record
	if t.req.MTI == "0200" && t.req.ProcCode == message.PCRefund && t.req.RRN != "" {
		orig, _ = p.journal.Get(t.req.RRN)
		if reason := qrOriginal(t, orig); reason != "" {
			return p.decline(ctx, t, message.RCInvalidTransaction, "switch", reason)
		}
	}
	// A merchant that transacts in one currency takes no other: its limits
	// are in it (a string compare on the record the check loaded).
	if res != nil && wrongCurrency(res.Merchant, t.req.Currency) && currencyChecked(t, orig) {
		return p.declineCurrency(ctx, t, res.Merchant)
	}
	if declined := p.assess(ctx, t, res, orig); declined != nil {
		return *declined, nil
	}
	switch t.req.ProcCode {
	case message.PCVoid:
		if t.req.MTI == "0200" {
			return p.void(ctx, t)
		}
	case message.PCRefund:
		if t.req.MTI == "0200" {
			return p.refund(ctx, t)
		}
	}
	return p.authorize(ctx, t, nil)
}

// authorize routes the request to its issuer and answers with the issuer's decision,
// or stands in for an unreachable issuer. onDecline, if set, runs when the transaction
// is not approved (to release what the caller reserved).
func (p *Pipeline) authorize(ctx context.Context, t *txn, onDecline func()) (frontend.Response, error) {
	r := t.req
	declined := func() {
		if onDecline != nil {
			onDecline()
		}
	}
	t.release = onDecline
	var link IssuerLink
	var ok bool
	if r.QR {
		if link, ok = p.qrRoute(t); !ok {
			return p.qrNoRoute(ctx, t, declined)
		}
	} else if link, ok = p.routes.Route(r.PAN); !ok {
		declined()
		return p.decline(ctx, t, message.RCNoSuchIssuer, "switch", "no-route")
	}
	t.issuer = link.ID()
	t.rec.Issuer = t.issuer
	br := p.breaker(t.issuer)
	if !link.Up() {
		p.metrics.IssuerErrors.WithLabelValues(t.issuer, "unavailable").Inc()
		return p.standInOrDecline(ctx, t, "issuer-unavailable", declined)
	}
	ticket, ok := br.allow(p.now())
	if !ok {
		p.metrics.IssuerErrors.WithLabelValues(t.issuer, "unavailable").Inc()
		return p.standInOrDecline(ctx, t, "issuer-circuit-open", declined)
	}
	// Every path from here gives the ticket back once (a half-open breaker counts its
	// probes by them); notSent is for the paths that never reach the issuer.
	notSent := func() { br.done(ticket, outcomeNone, p.now()) }

	if r.HasPIN {
		block, rc, why := p.translatePIN(ctx, t, t.issuer)
		if block == nil {
			notSent()
			declined()
			return p.decline(ctx, t, rc, "hsm", why)
		}
		t.pin = block
	}
	stan := link.NextSTAN()
	wallet, isWallet := link.(WalletLink)
	isWallet = isWallet && r.QR
	var body []byte
	var err error
	// One instant for DE 7 and the "sent" event: the event keeps the DE 7 the issuer
	// got, which DE 90 of a reversal names (originalData).
	sentAt := p.now()
	if !isWallet {
		body, err = p.issuerRequest(t, link, stan, sentAt)
	}
	if err != nil {
		notSent()
		declined()
		return p.systemError(t, fmt.Errorf("issuer request: %w", err))
	}
	t.rec.IssuerSTAN = stan
	t.rec.AddEvent(journal.StateSent, sentAt.UTC(), "")
	// Write ahead: the record is on disk before the issuer can approve anything.
	if err := p.write(ctx, t, true); err != nil {
		notSent()
		declined()
		return p.journalFailed(ctx, t, err)
	}
	issuerStart := p.now()
	var rc, auth string
	var approved int64 // DE 4 of a partial approval (RC 10), or of an answer with one
	var hasAmount bool // the answer has a DE 4
	var balance string // DE 54 of the answer (a balance inquiry's balances)
	if isWallet {
		rc, auth, err = p.walletExchange(context.WithoutCancel(ctx), t, wallet)
	} else {
		var a message.Answer
		if a, err = link.SendPacked(context.WithoutCancel(ctx), r.MTI, stan, t.rec.RRN, body, 0); err == nil {
			rc, auth, approved, hasAmount, balance = a.RC, a.AuthCode, a.Amount, a.HasAmount, a.Balance
		}
	}
	if lerr := p.leaseLost(ctx, t); lerr != nil {
		notSent()
		return p.handOver(t, lerr)
	}
	issuerDur := p.now().Sub(issuerStart)
	t.rec.Timings.Issuer = issuerDur.Microseconds()
	t.stages.add(metrics.StageIssuer, issuerDur)
	p.metrics.IssuerLatency.WithLabelValues(t.issuer).Observe(issuerDur.Seconds())
	if err != nil {
		switch {
		case p.cfg.IsTimeout(err):
			if isWallet && errors.Is(err, ErrPayerNotConfirmed) {
				// The network answered; the payer did not confirm: not the
				// network's failure, so not the breaker's (a walk-away).
				p.metrics.IssuerErrors.WithLabelValues(t.issuer, "payer-not-confirmed").Inc()
				br.done(ticket, outcomeAnswered, p.now())
			} else {
				p.metrics.IssuerErrors.WithLabelValues(t.issuer, "timeout").Inc()
				br.done(ticket, outcomeTimedOut, p.now())
			}
			t.rec.AddEvent(journal.StateTimedOut, p.now().UTC(), "")
			// The issuer may have approved: reverse before the terminal hears of it.
			p.queueReversal(&t.rec, "switch:timeout")
			declined()
			return p.respond(ctx, t, message.RCIssuerUnavailable, "", "switch", "issuer-timeout")
		case p.cfg.IsUnavailable(err):
			notSent()
			p.metrics.IssuerErrors.WithLabelValues(t.issuer, "unavailable").Inc()
			t.rec.AddEvent(journal.StateDeclined, p.now().UTC(), err.Error())
			return p.standInOrDecline(ctx, t, "issuer-unavailable", declined)
		default:
			// Only "unavailable" means the request never left: after any other error
			// (the connection lost while the answer was awaited, a failed write) the
			// issuer may have approved, so the request is reversed like a timeout.
			notSent()
			p.metrics.IssuerErrors.WithLabelValues(t.issuer, "error").Inc()
			t.rec.AddEvent(journal.StateTimedOut, p.now().UTC(), err.Error())
			p.queueReversal(&t.rec, "switch:issuer-error")
			declined()
			return p.respond(ctx, t, message.RCIssuerUnavailable, "", "switch", "issuer-error")
		}
	}
	br.done(ticket, outcomeAnswered, p.now())
	if len(rc) != 2 {
		p.answered(t, "answer without a valid DE 39")
		p.queueReversal(&t.rec, "switch:invalid-answer")
		declined()
		return p.respond(ctx, t, message.RCSystemMalfunction, "", "switch", "issuer-answer-invalid")
	}
	if hasAmount && rc != message.RCPartialApproval && message.Approved(rc) && r.AmountRaw != "" && approved != r.Amount &&
		(t.rec.Type == "purchase" || t.rec.Type == "preauth" || t.rec.Type == "refund") {
		// Not the approval of what was asked (a partial approval not said as
		// one, an answer of another transaction): reversed, as one of RC 10 for
		// more than was asked is.
		p.answered(t,
			fmt.Sprintf("approval (%s) of %d for a request of %d: not the amount asked; reversed", rc, approved, r.Amount))
		p.queueReversal(&t.rec, "switch:amount-mismatch")
		declined()
		return p.respond(ctx, t, message.RCSystemMalfunction, "", "switch", "issuer-amount-mismatch")
	}
	if rc == message.RCPartialApproval {
		if rc, reason := p.partialApproval(t, approved); rc != "" {
			declined()
			return p.respond(ctx, t, rc, "", "switch", reason)
		}
	}
	p.answered(t, "")
	if !message.Approved(rc) {
		declined()
	}
	if balance != "" && r.ProcCode == message.PCBalance && message.Approved(rc) {
		// The issuer's balances go to the terminal as DE 54 (ISO 8583:1987's
		// layout, which the terminal interface follows where it is silent), never
		// to the journal or a log. One of another layout is left out.
		if message.ValidAdditionalAmounts(balance) {
			return p.respondWith(ctx, t, rc, auth, "issuer", "", balance)
		}
		p.log.Warn().Str("rrn", t.rec.RRN).Str("issuer", t.issuer).Int("de54_len", len(balance)).
			Msg("balance inquiry: the issuer's DE 54 is not of the ISO 8583:1987 layout (20-character amounts); answered without it")
	}
	return p.respond(ctx, t, rc, auth, "issuer", "")
}

// partialApproval takes an issuer's partial approval (RC 10) of approved (DE 4 of its
// answer, -1 without one). For a purchase or pre-authorization whose terminal accepts
// partial approvals (DE 48 PA = 1; the cup adapter sets it from 60.6), the record
// becomes an approval of the lesser amount: Amount is what the issuer approved (what
// settlement, refund ceilings, velocity sums and batch totals count), Requested what
// was asked, and the answer's DE 4 carries it (respond). Otherwise the approval the
// terminal cannot take is reversed at the issuer and the terminal declined: it returns
// the response code and reason of that decline ("" when the partial approval stands).
// An RC 10 for the whole amount is an approval of it.
func (p *Pipeline) partialApproval(t *txn, approved int64) (rc, reason string) {
	requested := t.req.Amount
	switch {
	case approved == requested:
		return "", ""
	case approved <= 0 || approved > requested:
		p.answered(t,
			fmt.Sprintf("partial approval of %d for a request of %d: not a lesser amount; reversed", approved, requested))
		p.queueReversal(&t.rec, "switch:partial-amount-invalid")
		return message.RCSystemMalfunction, "issuer-partial-amount-invalid"
	case t.rec.Type != "purchase" && t.rec.Type != "preauth", !t.req.TLV.AcceptsPartial():
		p.answered(t,
			fmt.Sprintf("partial approval of %d of %d, which the %s cannot accept; reversed", approved, requested, t.rec.Type))
		p.queueReversal(&t.rec, "switch:partial-not-accepted")
		return message.RCDoNotHonour, "partial-approval-not-accepted"
	}
	t.rec.Requested, t.rec.Amount = requested, approved
	if t.risk != nil { // the velocity sums count what was approved
		t.risk.Txn.Amount = int(approved)
	}
	return "", ""
}

// issuerRequest encodes the message to the issuer: the terminal's fields, with the
// link's own STAN, the switch's RRN and transmission time (at), and the PIN block
// under the issuer's zone key.
func (p *Pipeline) issuerRequest(t *txn, link IssuerLink, stan string, at time.Time) ([]byte, error) {
	r := t.req
	pan := r.PAN
	if r.QR {
		// An ISO 8583 link (UnionPay's) takes the payment code as the card number.
		if len(r.QRCode) > 19 {
			return nil, errQRCodeTooLong
		}
		pan = r.QRCode
	}
	b := message.NewBuilder(message.DialectASCII, r.MTI).
		Set(2, pan).Set(3, r.ProcCode).Set(4, r.AmountRaw).Set(7, message.FormatDE7(at)).Set(11, stan).
		Set(12, r.LocalTime).Set(13, r.LocalDate).Set(14, r.Expiry).Set(22, r.EntryMode).Set(25, r.CondCode).
		Set(32, link.AcquirerID()).Set(35, r.Track2).Set(37, t.rec.RRN).Set(41, r.TID).Set(42, r.MID).Set(49, r.Currency).Set(55, r.ICC)
	if t.pin != nil {
		b.SetBytes(52, t.pin)
	}
	return b.Bytes(nil)
}

// decline answers without the issuer.
func (p *Pipeline) decline(ctx context.Context, t *txn, rc, by, reason string) (frontend.Response, error) {
	if t.rec.RRN == "" {
		if err := p.newRecord(t); err != nil {
			return p.systemError(t, err)
		}
	}
	t.rec.AddEvent(journal.StateDeclined, p.now().UTC(), reason)
	return p.respond(ctx, t, rc, "", by, reason)
}

// respond journals the outcome durably, then builds the response.
func (p *Pipeline) respond(ctx context.Context, t *txn, rc, auth, by, reason string) (frontend.Response, error) {
	return p.respondWith(ctx, t, rc, auth, by, reason, "")
}

// respondWith is respond with DE 54 (additional amounts: an approved balance
// inquiry's balances, "" for none) in the answer. It is carried here rather than in
// txn, which stays in its allocation size class.
func (p *Pipeline) respondWith(ctx context.Context, t *txn, rc, auth, by, reason, de54 string) (frontend.Response, error) {
	rec := &t.rec
	rec.RC, rec.AuthCode, rec.DecidedBy, rec.Reason = rc, auth, by, reason
	if message.Approved(rc) && de54 != "" {
		// Journaled (never logged) so that a resend of the inquiry, answered
		// from this record (repeat), carries the balances the first answer did.
		rec.Balance = de54
	}
	// The record's total: up to its final write (a reader of the journal gets the
	// time up to the answer written once the delivery mark is merged in).
	rec.Timings.Total = max(1, p.now().Sub(t.start).Microseconds())
	if lerr := p.leaseLost(ctx, t); lerr != nil {
		return p.handOver(t, lerr)
	}
	if err := p.write(ctx, t, true); err != nil {
		if rec.Offline && t.written && rec.Approved() && !rec.Reversed() {
			// An offline capture is durable from its write ahead (the card
			// approved): not taken back (offlineNotFinal).
			return p.offlineNotFinal(t, err)
		}
		// Never an approval without its record: one given (by the issuer, a
		// stand-in whose advice is queued, or a completion whose advice is queued)
		// is taken back. A completion answered otherwise than approved leaves its
		// pre-authorization open to another, so its 0220 must be reversed.
		if reversibleApproval(rec) || rec.Type == "completion" && rec.Approved() && !rec.Reversed() {
			p.undoApproval(t, err)
		}
		return p.journalFailed(ctx, t, err)
	}
	if lerr := p.leaseLost(ctx, t); lerr != nil {
		// Lost while the final version was written (a pause then): that version
		// has no delivery mark, so whoever settles this incarnation reverses an
		// approval in it.
		return p.handOver(t, lerr)
	}
	// The record stays in the open set until its delivery mark is queued (sent), so
	// that the recovery checkpoint never passes an answer whose delivery is unknown.
	p.observe(t)
	if t.undo != nil {
		if message.Approved(rc) {
			p.retract(t.undo, t.undoBy)
		}
		t.undo = nil
	}
	if t.dup != nil {
		if reversibleApproval(rec) {
			t.dupAtSent = true
			rrn := rec.RRN
			t.dup.rrn.Store(&rrn)
		} else {
			p.dups.finish(t.dupKey, t.dup, recordOutcome(rec))
			t.dup = nil
		}
	}
	if p.notices != nil && message.Approved(rc) {
		orig := ""
		if t.req.ProcCode == message.PCVoid || t.req.ProcCode == message.PCRefund {
			orig = t.req.RRN
		}
		p.notices.Notice(rec, orig)
	}
	resp := message.NewResponseBuilderAmount(t.req, approvedDE4(rec)).Set(37, rec.RRN).Set(39, rc)
	if message.Approved(rc) {
		resp.Set(38, auth)
		if de54 != "" {
			resp.Set(54, de54)
		}
	}
	if reason != "" && by != "issuer" {
		resp.Set(48, message.ReasonTLV(reason))
	}
	raw, err := resp.Bytes(p.macFunc(t))
	if err != nil {
		// No answer can go (its MAC not made: no HSM answers): the terminal gets
		// none, as if it was not delivered. An approval is reversed (sent
		// marks the record undelivered, queues the reversal, gives the duplicates
		// their outcome and takes the record out of the open set); until 6 December
		// 2026 it stood, the cardholder charged for a sale the terminal never saw
		// approved.
		p.hsmLog.Error().Err(err).Str("rrn", rec.RRN).Str("tid", rec.TID).Str("rc", rc).
			Msg("answer not MAC'd: none sent, an approval reversed (at most 5 such lines every 10 s)")
		p.sent(t, false)
		return frontend.Response{}, fmt.Errorf("rrn %s: answer %s not MAC'd: %w", rec.RRN, rc, err)
	}
	t.ready = p.now()
	total := t.ready.Sub(t.start)
	rec.Timings.Total = total.Microseconds()
	p.observeStages(t)
	p.metrics.Transactions.WithLabelValues(t.req.MTI, rc, t.issuer, by).Inc()
	p.metrics.Latency.WithLabelValues(t.req.MTI, t.issuer).Observe(total.Seconds())
	p.logTxn(t)
	return frontend.Response{Body: raw, Sent: func(delivered bool) { p.sent(t, delivered) }}, nil
}

// sent records whether the response reached the terminal (not waited for: the outcome
// is already durable). An approval that could not be delivered is reversed. The
// duplicates of an approval waiting in the table get its outcome from here: approved
// once delivered, reversed (91) when not.
func (p *Pipeline) sent(t *txn, delivered bool) {
	rec := &t.rec
	var out outcome // the duplicates' outcome: the record's as it ends here
	if t.dupAtSent {
		e := t.dup
		t.dup, t.dupAtSent = nil, false
		out = recordOutcome(rec)
		defer func() { p.dups.finish(t.dupKey, e, out) }()
	}
	if delivered && !t.ready.IsZero() {
		p.metrics.Stages.Observe(metrics.StageAnswer, p.now().Sub(t.ready))
	}
	if err := p.journal.MarkDelivery(rec.RRN, delivered, p.now().UTC()); err != nil {
		p.faultLog.Error().Err(err).Str("rrn", rec.RRN).Msg("journal write of a delivery mark failed (at most 5 such lines every 10 s)")
	}
	// Out of the open set (so past the next checkpoint) once the delivery mark, and an
	// undelivered approval's reversal, are queued.
	defer p.open.remove(rec.RRN)
	if delivered {
		return
	}
	p.log.Warn().Str("rrn", rec.RRN).Str("tid", rec.TID).Str("rc", rec.RC).Msg("response could not be delivered to the terminal")
	if !reversibleApproval(rec) {
		return
	}
	// A reversed refund's amount goes back to its original once this record's lock
	// is released (one stripe at a time: two refunds whose originals sit on each
	// other's stripes must not wait for each other).
	var release *journal.Record
	defer func() {
		if release != nil {
			p.releaseRefund(release)
		}
	}()
	unlock, err := p.lockRecord(context.Background(), rec.RRN)
	if err != nil {
		// Not locked (no quorum, or held elsewhere too long: a void, refund or
		// reversal of it on another node): the reversal must go all the same. It is
		// queued now from this node's copy; its mark is owed, and settle writes it
		// under the lock once it can, unless another change reversed the record
		// meanwhile (the mark is not written over another node's change).
		p.log.Warn().Err(err).Str("rrn", rec.RRN).Msg("undelivered approval: record not locked across the cluster; reversal queued, its mark owed")
		cur, gerr := p.journal.Get(rec.RRN)
		if gerr != nil {
			p.log.Error().Err(gerr).Str("rrn", rec.RRN).Msg("undelivered approval: record not readable; NOT reversed")
			return
		}
		if cur.Reversed() {
			out = recordOutcome(cur)
			return
		}
		p.queueReversal(cur, "switch:undelivered")
		out = recordOutcome(cur)
		if cur.ReversedBy == "switch:undelivered" {
			p.retract(cur, risk.Retraction{Kind: risk.RetractReversal})
			p.oweReversal(cur.RRN, cur.ReversedBy, err)
		}
		return
	}
	defer unlock()
	cur, err := p.journal.Get(rec.RRN)
	if err != nil {
		p.log.Error().Err(err).Str("rrn", rec.RRN).Msg("undelivered approval: record not readable; NOT reversed")
		return
	}
	written := p.reverseOriginal(cur, "switch:undelivered")
	out = recordOutcome(cur) // reversed: 91
	if cur.ReversedBy == "switch:undelivered" {
		p.retract(cur, risk.Retraction{Kind: risk.RetractReversal})
		if written {
			release = cur
		}
	}
}

func (p *Pipeline) write(ctx context.Context, t *txn, durable bool) error {
	start := p.now()
	// The rules' facts go with the final write only (the write-ahead one need not
	// carry them twice).
	facts := t.rec.Facts
	if !t.rec.Final() {
		t.rec.Facts = nil
	}
	err := p.journal.Write(context.WithoutCancel(ctx), &t.rec, !t.written, durable)
	if durable {
		// The decision, if taken, is readable now (or never will be from here).
		p.leaveDecision(t)
	}
	t.rec.Facts = facts
	t.written = t.written || err == nil
	took := p.now().Sub(start)
	t.rec.Timings.Journal += took.Microseconds()
	if t.rec.Final() {
		t.stages.add(metrics.StageFinal, took)
	} else {
		t.stages.add(metrics.StageAhead, took)
	}
	if err != nil {
		p.metrics.JournalErrors.Inc()
	}
	return err
}

// journalUnavailableBurst is how many "journal unavailable" lines a second the
// pipeline logs (unavailLog).
const journalUnavailableBurst = 10

// faultLogBurst lines every faultLogPeriod is what hsmLog and faultLog let through.
const (
	faultLogBurst  = 5
	faultLogPeriod = 10 * time.Second
)

// systemError answers 96 when the journal or another internal part fails; nothing is
// forwarded after such a failure. A journal that cannot make records durable now (a
// cluster without a quorum, journal.ErrUnavailable) gets 91 journal-unavailable
// instead: the terminal may try again, on this node or another. One that refuses
// a new request at once because it cannot keep up (journal.ErrOverloaded: a cluster
// node whose applier is behind) gets 91 journal-overloaded, and its record is not
// kept for the journal's return.
func (p *Pipeline) systemError(t *txn, err error) (frontend.Response, error) {
	rc, reason, by := message.RCSystemMalfunction, "system-malfunction", "switch"
	owed := false
	switch {
	case errors.Is(err, journal.ErrOverloaded) && !t.written:
		rc, reason, by = message.RCIssuerUnavailable, "journal-overloaded", "journal"
		p.unavailLog.Warn().Err(err).Str("tid", t.req.TID).Str("stan", t.req.STAN).Str("mti", t.req.MTI).Str("rrn", t.rec.RRN).
			Msg("journal overloaded: answered 91 at once, nothing written or sent (at most 10 such lines a second; every transaction's line says journal-overloaded)")
		// Nothing of it is in the journal, nor will be: what the terminal was
		// answered is in its line.
		p.logAnswer(t, rc, by, reason)
	case errors.Is(err, journal.ErrUnavailable):
		rc, reason, by = message.RCIssuerUnavailable, "journal-unavailable", "journal"
		p.unavailLog.Warn().Err(err).Str("tid", t.req.TID).Str("stan", t.req.STAN).Str("mti", t.req.MTI).Str("rrn", t.rec.RRN).
			Msg("journal unavailable: answered 91, nothing approved (at most 10 such lines a second)")
		// Its record is written when the journal is back (and stays open until then).
		owed = p.oweRecord(t)
	default:
		p.faultLog.Error().Err(err).Str("tid", t.req.TID).Str("stan", t.req.STAN).Str("mti", t.req.MTI).Str("rrn", t.rec.RRN).
			Msg("system malfunction: answered 96 (at most 5 such lines every 10 s; every transaction's line says system-malfunction)")
		// The transaction's own line (log.txn_lines), which the sampled error may
		// leave out: what each terminal was answered stays in the log.
		p.logAnswer(t, rc, by, reason)
	}
	if t.rec.RRN != "" && !t.written && !owed {
		// Nothing of it is on disk, so recovery has nothing to settle: it must not
		// hold the recovery checkpoint back. A record written ahead stays open.
		p.open.remove(t.rec.RRN)
	}
	raw, perr := message.NewResponseBuilder(t.req).Set(37, t.rec.RRN).Set(39, rc).
		Set(48, message.ReasonTLV(reason)).Bytes(p.macFunc(t))
	if perr != nil {
		return frontend.Response{}, errors.Join(err, perr)
	}
	p.metrics.Transactions.WithLabelValues(t.req.MTI, rc, t.issuer, by).Inc()
	return frontend.Response{Body: raw}, nil
}

// logAnswer logs the transaction's line (log.txn_lines) of a request answered
// without a final record: what the terminal was answered stays in the log.
func (p *Pipeline) logAnswer(t *txn, rc, by, reason string) {
	p.log.Info().Str("rrn", t.rec.RRN).Str("mti", t.req.MTI).Str("tid", t.req.TID).Str("stan", t.req.STAN).
		Str("pan", t.rec.PANMasked).Str("issuer", t.issuer).Str("rc", rc).Str("decided_by", by).Str("reason", reason).
		Msg("txn")
}

func (p *Pipeline) logTxn(t *txn) {
	rec := &t.rec
	tm := rec.Timings
	p.log.Info().
		Str("rrn", rec.RRN).Str("mti", rec.MTI).Str("type", rec.Type).Str("tid", rec.TID).Str("mid", rec.MID).
		Str("stan", rec.STAN).Str("pan", rec.PANMasked).Int64("amount", rec.Amount).Str("issuer", rec.Issuer).
		Str("rc", rec.RC).Str("decided_by", rec.DecidedBy).Str("reason", rec.Reason).
		Int64("decode_us", tm.Decode).Int64("checks_us", tm.Checks).Int64("risk_us", tm.Risk).Int64("hsm_us", tm.HSM).
		Int64("issuer_us", tm.Issuer).Int64("journal_us", tm.Journal).Int64("total_us", tm.Total).
		Msg("txn")
}

// approvedDE4 is DE 4 of the answer to rec's request: the approved amount of a
// partial approval, "" (the request's DE 4 echoed) otherwise.
func approvedDE4(rec *journal.Record) string {
	if rec.Requested == 0 || !rec.Approved() {
		return ""
	}
	return fmt.Sprintf("%012d", rec.Amount)
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

func lockIndex(rrn string) int {
	h := 0
	for i := 0; i < len(rrn); i++ {
		h = h*31 + int(rrn[i])
	}
	return h & 255
}
