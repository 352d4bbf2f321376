package issuer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moov-io/iso8583"
	connection "github.com/moov-io/iso8583-connection"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/lograte"
	"github.com/switchyard/switchyard/switch/message"
)

// Errors of Send.
var (
	// ErrTimeout: the issuer did not answer within the timeout.
	ErrTimeout = errors.New("issuer did not answer in time")
	// ErrUnavailable: no signed-on connection to the issuer; the request was not sent.
	ErrUnavailable = errors.New("issuer unavailable: no signed-on connection")
	// ErrConnectionLost: the connection closed after the request was handed to it, so
	// the issuer may have received it, and approved it, without its answer arriving.
	// The request is in doubt, like one that timed out.
	ErrConnectionLost = errors.New("issuer connection lost with the request sent")
)

// Config configures the link to one issuer.
type Config struct {
	ID        string
	Addrs     []string      // endpoints, host:port
	Timeout   time.Duration // per request (default 10 s)
	EchoEvery time.Duration // echo after this long without traffic (default 30 s)
	// Connections per endpoint (default 2).
	Connections int
	// ReconnectWait and MaxReconnectWait bound the reconnect backoff (defaults 100 ms
	// and 1 s): a lost connection is tried again after ReconnectWait, then after twice
	// as long each time, never more than MaxReconnectWait apart, so that an issuer that
	// comes back after an outage of any length is used again within about
	// MaxReconnectWait. Each try after the first waits up to a quarter of
	// MaxReconnectWait more, at random, so that the connections (and switches) do not
	// come back to a recovering issuer in step.
	ReconnectWait, MaxReconnectWait time.Duration
	// AcquirerID is sent in DE 32.
	AcquirerID string
	// STANPartition is the cluster node number (1 to 9; cluster.node) whose
	// share of the STANs this link hands out: only those ≡ STANPartition
	// (mod 9), 111111 of them, wrapping within the share. No two nodes of a
	// cluster then hand out the same STAN to an issuer, without asking each
	// other. 0 (a single switch): every STAN from 000001 to 999999.
	STANPartition int
	// Logger receives sign-ons, echo failures and reconnect warnings, tagged by the
	// wiring (component=issuer); the link adds its ID. The zero value logs nothing.
	Logger zerolog.Logger
	// OnLate and OnUnmatched are the link's fields of the same names, set before its
	// first connection (the link's goroutines read them from then on).
	OnLate, OnUnmatched func(m *iso8583.Message)
	// OnWrongAnswer is the link's field of that name, set likewise.
	OnWrongAnswer func(m *iso8583.Message, request string)
	// Now is the clock of the rate limit on the lines the issuer's stray
	// messages log (default time.Now): LogEvery.
	Now func() time.Time
}

// LogEvery spaces the link's log lines about messages the issuer can send at will
// (answers of the wrong MTI, late, unmatched, unexpected; the kinds of
// logKind): at most one line of each kind per link every LogEvery, with the count
// of those left out since the one before (field "suppressed"), so that a hostile
// or broken issuer cannot flood the log. The switch's handlers (OnLate and the
// others) limit their lines the same way; its metrics count every one.
const LogEvery = time.Second

// logKind is a kind of line the issuer's messages make the link log, each
// limited on its own (LogEvery).
type logKind int

const (
	logWrongMTI    logKind = iota // an answer of the wrong MTI for its request
	logLate                       // a late answer
	logLateNetwork                // a late answer to the link's own sign-on or echo
	logUnmatched                  // an answer matching no request
	logUnexpected                 // a message that is no answer nor 0800
	logKinds
)

// Reconnect defaults: an issuer outage that outlasts the backoff's growth must not
// keep approvals away for long after the issuer is back (a 30 s cap once did: 16.6 s).
const (
	DefaultReconnectWait    = 100 * time.Millisecond
	DefaultMaxReconnectWait = time.Second
)

// warnEvery spaces the link's warnings about failed reconnects.
const warnEvery = 30 * time.Second

// errLinkClosed ends a reconnect try that was waiting when the link closed.
var errLinkClosed = errors.New("issuer link closed")

// Link is the switch's connection pool to one issuer.
type Link struct {
	cfg  Config
	pool *connection.Pool
	log  zerolog.Logger
	stan atomic.Uint32

	dialed    atomic.Bool   // Dial's first connections are made: later ones are reconnects
	retries   sync.Map      // addr -> *atomic.Int32: reconnect tries since its last sign-on
	closed    chan struct{} // closed by Close: ends reconnect waits
	closeOnce sync.Once
	lastWarn  atomic.Int64 // unix ns of the last pool error logged as a warning

	// OnLate, if set, is called with an answer that arrived after its request timed
	// out (one of the last maxTimedOut such requests of its connection).
	OnLate func(m *iso8583.Message)
	// OnUnmatched, if set, is called with an answer that matches no request in
	// flight nor one that timed out: the issuer's second answer to a request (a
	// duplicate), or an answer to no request of this link. Without it such an
	// answer is logged.
	OnUnmatched func(m *iso8583.Message)
	// OnWrongAnswer, if set, is called with an answer whose DE 11 and DE 37 (or DE
	// 70) are those of a request in flight, or one that timed out, but whose MTI is
	// not an answer to that request's MTI (request): a 0410 to a 0200. It is not
	// the request's answer: the request goes on waiting for it and, without it,
	// times out (as after an answer that cannot be read). Without it such an answer
	// is logged.
	OnWrongAnswer func(m *iso8583.Message, request string)

	writers sync.Map // *connection.Connection -> its *coalescingWriter (direct.go)

	logGates [logKinds]lograte.Gate // one per kind of line the issuer can cause (LogEvery)
}

// limited returns an event of level lvl for a line of kind k, with the count of
// those of its kind left out since the last (suppressed), or nil (zerolog writes
// nothing for a nil event) when the line is one too many (LogEvery).
func (l *Link) limited(k logKind, lvl zerolog.Level) *zerolog.Event {
	n, ok := l.logGates[k].Allow(l.cfg.Now())
	if !ok {
		return nil
	}
	return l.log.WithLevel(lvl).Int64("suppressed", n)
}

// requestID matches answers to requests on DE 11 (the link's own STAN) plus DE 37 (the
// switch's RRN) or, for network management, DE 70: two in-flight requests never share it.
type requestID struct{}

func (requestID) GenerateRequestID(m *iso8583.Message) (string, error) {
	stan, err := m.GetString(11)
	if err != nil || stan == "" {
		return "", fmt.Errorf("message without DE 11")
	}
	if m.GetField(37) != nil {
		rrn, _ := m.GetString(37)
		return stan + "/" + rrn, nil
	}
	nm := ""
	if m.GetField(70) != nil {
		nm, _ = m.GetString(70)
	}
	return stan + "/N" + nm, nil
}

// Dial starts the link's pool. It does not fail when the issuer is down: the pool keeps
// reconnecting in the background, and Send answers ErrUnavailable meanwhile.
func Dial(cfg Config) (*Link, error) {
	if cfg.ID == "" || len(cfg.Addrs) == 0 {
		return nil, fmt.Errorf("issuer link: id and at least one address are required (got id %q, %d addresses)", cfg.ID, len(cfg.Addrs))
	}
	if cfg.STANPartition < 0 || cfg.STANPartition > stanPartitions {
		return nil, fmt.Errorf("issuer %s: STAN partition %d is not a cluster node number from 1 to %d (or 0 for a single switch)", cfg.ID, cfg.STANPartition, stanPartitions)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.EchoEvery <= 0 {
		cfg.EchoEvery = 30 * time.Second
	}
	if cfg.Connections <= 0 {
		cfg.Connections = 2
	}
	if cfg.ReconnectWait <= 0 {
		cfg.ReconnectWait = DefaultReconnectWait
	}
	if cfg.MaxReconnectWait <= 0 {
		cfg.MaxReconnectWait = DefaultMaxReconnectWait
	}
	cfg.MaxReconnectWait = max(cfg.MaxReconnectWait, cfg.ReconnectWait)
	if cfg.AcquirerID == "" {
		cfg.AcquirerID = "00000000001"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	l := &Link{cfg: cfg, log: cfg.Logger.With().Str("issuer", cfg.ID).Logger(), closed: make(chan struct{}),
		OnLate: cfg.OnLate, OnUnmatched: cfg.OnUnmatched, OnWrongAnswer: cfg.OnWrongAnswer}
	for i := range l.logGates {
		l.logGates[i].Every = LogEvery
	}
	factory := func(addr string) (*connection.Connection, error) {
		if err := l.jitter(addr); err != nil {
			return nil, err
		}
		cw := newCoalescingWriter()
		return connection.New(addr, message.SpecASCII, readLength, writeLength,
			connection.ConnectTimeout(3*time.Second),
			connection.SendTimeout(cfg.Timeout),
			connection.IdleTime(cfg.EchoEvery),
			connection.ReadTimeout(24*time.Hour),
			connection.PingHandler(l.echo),
			connection.InboundMessageHandler(l.inbound),
			connection.ErrorHandler(func(err error) { l.log.Debug().Err(err).Msg("issuer connection error") }),
			connection.OnConnect(func(c *connection.Connection) error {
				// Known to roundTrip once connected (not for every failed try).
				l.writers.Store(c, cw)
				err := l.signOn(c)
				if err != nil {
					l.writers.Delete(c)
				}
				return err
			}),
			func(o *connection.Options) error {
				o.RequestIDGenerator = requestID{}
				o.MessageWriter = cw
				o.MessageReader = lightReader{cw: cw, l: l}
				return nil
			},
			connection.WithConnectionFailedHandler(func(_ *connection.Connection, err error) { cw.fail(err) }),
			connection.ConnectionClosedHandler(func(c *connection.Connection) {
				cw.stop()
				cw.fail(errors.New("issuer connection closed"))
				l.writers.Delete(c)
			}),
		)
	}
	var addrs []string
	for _, a := range cfg.Addrs {
		for i := 0; i < cfg.Connections; i++ {
			addrs = append(addrs, a)
		}
	}
	pool, err := connection.NewPool(factory, addrs,
		connection.PoolMinConnections(0),
		connection.PoolReconnectWait(cfg.ReconnectWait),
		connection.PoolMaxReconnectWait(cfg.MaxReconnectWait),
		connection.PoolConnectionsFilter(func(c *connection.Connection) bool { return c.Status() == connection.StatusOnline }),
		connection.PoolErrorHandler(func(err error) {
			if errors.Is(err, errLinkClosed) {
				return
			}
			// Reconnect tries come every 2 s or so while an issuer is down: warn once
			// every warnEvery, the rest at debug level.
			now, last := time.Now().UnixNano(), l.lastWarn.Load()
			if now-last >= int64(warnEvery) && l.lastWarn.CompareAndSwap(last, now) {
				l.log.Warn().Err(err).Msg("issuer link")
			} else {
				l.log.Debug().Err(err).Msg("issuer link")
			}
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("issuer %s: pool: %w", cfg.ID, err)
	}
	l.pool = pool
	if err := pool.Connect(); err != nil {
		return nil, fmt.Errorf("issuer %s: connect: %w", cfg.ID, err)
	}
	l.dialed.Store(true)
	return l, nil
}

// jitter runs before the pool makes a connection to addr. The pool has already waited
// its backoff (ReconnectWait doubling up to MaxReconnectWait); a reconnect try after
// the first since addr's last sign-on waits a random part of a quarter of
// MaxReconnectWait more, so that the link's connections, and those of other switches,
// spread their tries instead of reaching a recovering issuer together. Dial's own
// first connections, and the first try after a connection is lost, do not wait: the
// issuer may be back at once.
func (l *Link) jitter(addr string) error {
	if !l.dialed.Load() {
		return nil
	}
	v, _ := l.retries.LoadOrStore(addr, new(atomic.Int32))
	if v.(*atomic.Int32).Add(1) <= int32(l.cfg.Connections) {
		return nil // the first try of each of addr's connections
	}
	d := rand.N(l.cfg.MaxReconnectWait/4 + 1)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-l.closed:
		return errLinkClosed
	}
}

// ID returns the issuer's ID.
func (l *Link) ID() string { return l.cfg.ID }

// Up reports whether at least one connection is signed on.
func (l *Link) Up() bool { return l.pool.IsUp() }

// Close closes every connection and stops reconnecting.
func (l *Link) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.pool.Close()
}

// stanPartitions is how many shares the STANs split into in a cluster: one per
// possible node number. 999999 = 9 × 111111, so every share is as large.
const stanPartitions = 9

// NextSTAN returns the link's next STAN, 000001 to 999999; with a STAN
// partition p, the next of p, p+9, p+18, ... 999990+p.
func (l *Link) NextSTAN() string {
	if p := uint32(l.cfg.STANPartition); p > 0 {
		k := (l.stan.Add(1) - 1) % (999999 / stanPartitions)
		return fmt.Sprintf("%06d", p+stanPartitions*k)
	}
	n := l.stan.Add(1)%999999 + 1
	return fmt.Sprintf("%06d", n)
}

// errSignOnRefused: the issuer answered a sign-on otherwise than 00.
var errSignOnRefused = errors.New("refused")

// minNetworkTimeout is the least a sign-on or an echo waits for its answer.
const minNetworkTimeout = 5 * time.Second

// networkTimeout is how long a sign-on or an echo waits for its answer: the link's
// request timeout, at least minNetworkTimeout. An issuer that answers within the
// timeout is one the switch signs on to and keeps: a fixed 5 s once left an issuer
// answering in 6 s (its timeout 10 s) without a connection for as long as it was
// slow, and closed its connections at every echo, every request in flight on them
// then in doubt (TestSlowIssuerKeepsItsConnections).
func (l *Link) networkTimeout() time.Duration {
	return max(l.cfg.Timeout, minNetworkTimeout)
}

func (l *Link) signOn(c *connection.Connection) error {
	m := iso8583.NewMessage(message.SpecASCII)
	m.MTI("0800")
	_ = m.Field(7, message.FormatDE7(time.Now()))
	_ = m.Field(11, l.NextSTAN())
	_ = m.Field(70, message.NMSignOn)
	resp, err := l.sendOn(nil, c, m, l.networkTimeout())
	if err != nil {
		return fmt.Errorf("sign-on to %s: %w", c.Addr(), err)
	}
	if rc, _ := resp.GetString(39); rc != message.RCApproved {
		return fmt.Errorf("sign-on to %s %w with %q", c.Addr(), errSignOnRefused, rc)
	}
	if v, ok := l.writers.Load(c); ok {
		v.(*coalescingWriter).signedOff.Store(false)
	}
	c.SetStatus(connection.StatusOnline)
	if v, ok := l.retries.Load(c.Addr()); ok {
		v.(*atomic.Int32).Store(0)
	}
	l.log.Info().Str("addr", c.Addr()).Msg("signed on to issuer")
	return nil
}

// echo checks that a connection without traffic still reaches the issuer, and closes
// it if not. iso8583-connection calls it every EchoEvery that its own write loop
// wrote nothing, which is always: the requests go through the coalescing writer
// (direct.go). So the link keeps the idle rule itself: a connection that read a
// message within EchoEvery is not echoed, one echo at a time waits per connection,
// and an echo unanswered in time closes the connection only if nothing at all came
// on it meanwhile: a connection that carries answers is alive, and closing it would
// put every request in flight on it in doubt.
func (l *Link) echo(c *connection.Connection) {
	v, ok := l.writers.Load(c)
	if !ok {
		return // closed, or not connected yet
	}
	cw := v.(*coalescingWriter)
	if cw.signedOff.Load() {
		l.signOnAgain(c, cw)
		return
	}
	if c.Status() != connection.StatusOnline {
		return // its sign-on not answered yet
	}
	start := time.Now()
	if start.Sub(cw.lastRead()) < l.cfg.EchoEvery || !cw.echoing.CompareAndSwap(false, true) {
		return
	}
	defer cw.echoing.Store(false)
	m := iso8583.NewMessage(message.SpecASCII)
	m.MTI("0800")
	_ = m.Field(7, message.FormatDE7(start))
	_ = m.Field(11, l.NextSTAN())
	_ = m.Field(70, message.NMEcho)
	_, err := l.sendOn(nil, c, m, l.networkTimeout())
	switch {
	case err == nil:
	case errors.Is(err, ErrTimeout) && cw.lastRead().After(start):
		l.log.Warn().Str("addr", c.Addr()).Err(err).Msg("echo to issuer unanswered, but the connection carries answers: kept")
	default:
		l.log.Warn().Str("addr", c.Addr()).Err(err).Msg("echo to issuer failed; closing connection")
		_ = c.Close()
	}
}

// signOnAgain sends a sign-on on a connection the issuer signed off (its 0800/002):
// the echo's turn, every EchoEvery until the issuer approves one (or signs on
// itself). A refusal leaves the connection signed off; no answer in time (and
// nothing else read meanwhile), or a lost connection, closes it, and the pool's new
// connection signs on as any does.
func (l *Link) signOnAgain(c *connection.Connection, cw *coalescingWriter) {
	if !cw.echoing.CompareAndSwap(false, true) {
		return // the last one still waits
	}
	defer cw.echoing.Store(false)
	start := time.Now()
	err := l.signOn(c)
	switch {
	case err == nil:
	case errors.Is(err, errSignOnRefused):
		l.log.Info().Str("addr", c.Addr()).Err(err).Msg("issuer still signed off")
	case errors.Is(err, ErrTimeout) && cw.lastRead().After(start):
		l.log.Warn().Str("addr", c.Addr()).Err(err).Msg("sign-on to a signed-off issuer unanswered, but the connection carries answers: kept")
	default:
		l.log.Warn().Str("addr", c.Addr()).Err(err).Msg("sign-on to a signed-off issuer failed; closing connection")
		_ = c.Close()
	}
}

// issuerNetwork acts on the issuer's own network management request nm, before it is
// answered: a sign-off (002) takes the connection out of use (Up false, Send
// ErrUnavailable: the requests get stand-in or 91, not sent to an issuer that said it
// takes none); a sign-on (001) on a connection it signed off puts it back.
func (l *Link) issuerNetwork(c *connection.Connection, nm string) {
	v, ok := l.writers.Load(c)
	if !ok {
		return
	}
	cw := v.(*coalescingWriter)
	switch nm {
	case message.NMSignOff:
		cw.signedOff.Store(true)
		c.SetStatus(connection.StatusOffline)
		l.log.Warn().Str("addr", c.Addr()).Msg("issuer signed off: connection not used until the issuer signs on, or approves the switch's sign-on (tried every echo_every)")
	case message.NMSignOn:
		if cw.signedOff.CompareAndSwap(true, false) {
			c.SetStatus(connection.StatusOnline)
			l.log.Info().Str("addr", c.Addr()).Msg("issuer signed on again")
		}
	}
}

// inbound handles issuer-initiated messages (0800 is answered, a sign-off and a
// sign-on acted on) and late answers.
func (l *Link) inbound(c *connection.Connection, m *iso8583.Message) {
	mti, _ := m.GetMTI()
	switch {
	case mti == "0800":
		nm, _ := m.GetString(70)
		l.issuerNetwork(c, nm)
		resp := iso8583.NewMessage(message.SpecASCII)
		resp.MTI("0810")
		for _, id := range []int{7, 11, 70} {
			if v, _ := m.GetString(id); v != "" {
				_ = resp.Field(id, v)
			}
		}
		_ = resp.Field(39, message.RCApproved)
		if err := c.Reply(resp); err != nil {
			l.log.Warn().Err(err).Msg("answering issuer 0800")
		}
	case len(mti) == 4 && (mti[2] == '1' || mti[2] == '3'):
		rrn, _ := m.GetString(37)
		late, wrong := false, [4]byte{}
		if id, err := (requestID{}).GenerateRequestID(m); err == nil {
			if v, ok := l.writers.Load(c); ok {
				late, wrong = v.(*coalescingWriter).wasTimedOut(id, mti)
			}
		}
		switch {
		case wrong != [4]byte{}:
			l.wrongAnswer(m, string(wrong[:]))
		case late && m.GetField(37) == nil:
			// An answer to the link's own sign-on or echo, after its wait: nothing
			// of a transaction.
			nm, _ := m.GetString(70)
			l.limited(logLateNetwork, zerolog.InfoLevel).Str("mti", mti).Str("net_code", nm).Msg("issuer answered a network management request after its timeout")
		case late && l.OnLate != nil:
			l.OnLate(m)
		case late:
			l.limited(logLate, zerolog.WarnLevel).Str("mti", mti).Str("rrn", rrn).Msg("late issuer answer dropped")
		case l.OnUnmatched != nil:
			l.OnUnmatched(m)
		default:
			l.limited(logUnmatched, zerolog.WarnLevel).Str("mti", mti).Str("rrn", rrn).Msg("issuer answer matching no request in flight or timed out (a duplicate?) dropped")
		}
	default:
		l.limited(logUnexpected, zerolog.WarnLevel).Str("mti", mti).Msg("unexpected message from issuer ignored")
	}
}

// wrongAnswer hands m, an answer of another MTI than the answer to its request's MTI
// request, to OnWrongAnswer, or logs it.
func (l *Link) wrongAnswer(m *iso8583.Message, request string) {
	if l.OnWrongAnswer != nil {
		l.OnWrongAnswer(m, request)
		return
	}
	mti, _ := m.GetMTI()
	rrn, _ := m.GetString(37)
	l.limited(logWrongMTI, zerolog.WarnLevel).Str("mti", mti).Str("request_mti", request).Str("rrn", rrn).
		Msg("issuer answer of the wrong message type for its request dropped; the request waits for its answer or times out")
}

// Send sends m (which must carry DE 11 from NextSTAN and, for financial messages,
// DE 37) and waits for the answer up to timeout (0: the link's timeout). The answer
// carries the fields the switch reads (DE 3, 4, 7, 11, 37, 38, 39, 41, 42, 48, 70).
func (l *Link) Send(ctx context.Context, m *iso8583.Message, timeout time.Duration) (*iso8583.Message, error) {
	if timeout <= 0 {
		timeout = l.cfg.Timeout
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl)
	}
	for tries := 1; ; tries++ {
		c, err := l.pool.Get()
		if err != nil {
			return nil, ErrUnavailable
		}
		a, err := l.sendOn(ctx.Done(), c, m, timeout)
		if errors.Is(err, errNotWritten) && tries < l.poolSize() {
			continue // as SendPacked
		}
		return a, err
	}
}

// sendOn sends m on connection c and waits up to timeout for its answer, or until
// done is closed (direct.go).
func (l *Link) sendOn(done <-chan struct{}, c *connection.Connection, m *iso8583.Message, timeout time.Duration) (*iso8583.Message, error) {
	id, err := requestID{}.GenerateRequestID(m)
	if err != nil {
		return nil, fmt.Errorf("issuer %s: %w", l.cfg.ID, err)
	}
	body, err := m.Pack()
	if err != nil {
		return nil, fmt.Errorf("issuer %s: packing %s: %w", l.cfg.ID, id, err)
	}
	a, err := l.roundTrip(done, c, id, body, func() (*iso8583.Message, error) { return m, nil }, true, timeout)
	if err != nil {
		return nil, err
	}
	return a.m, nil
}

// AcquirerID is the value the link puts in DE 32.
func (l *Link) AcquirerID() string { return l.cfg.AcquirerID }

// Timeout is the link's per-request timeout.
func (l *Link) Timeout() time.Duration { return l.cfg.Timeout }

func readLength(r io.Reader) (int, error) {
	var b [2]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, err
	}
	return int(b[0])<<8 | int(b[1]), nil
}

func writeLength(w io.Writer, n int) (int, error) {
	if n > 0xFFFF {
		return 0, fmt.Errorf("message of %d bytes does not fit a 2-byte length header", n)
	}
	return w.Write([]byte{byte(n >> 8), byte(n)})
}

// coalescingWriter packs messages into a buffer that one flusher goroutine writes to
// the connection: messages queued while a write is in progress go out together in the
// next write, so a busy link costs far fewer syscalls than one per message. A write
// error closes the connection, which fails its pending requests through the
// connection's read loop.
type coalescingWriter struct {
	mu      sync.Mutex
	buf     []byte
	spare   []byte
	w       io.Writer
	kick    chan struct{}
	err     error
	started bool
	// writing is set while a write of the buffer is in progress, by the flusher or
	// by a request on the direct path writing it itself (direct.go): one at a time.
	writing bool
	// gen counts the buffers handed to a write: a request's bytes are in buf while
	// its span's gen is gen. dropped are the spans of requests that timed out there
	// (abandon), taken out of buf before it is written.
	gen     uint64
	dropped []span
	pend    map[string]waiter // requests waiting for their answers (direct.go), by request ID

	// read is when the connection last read a message (unix ns), for echo's idle
	// rule; echoing is set while an echo, or a sign-on after the issuer's sign-off,
	// waits for its answer.
	read    atomic.Int64
	echoing atomic.Bool
	// signedOff is set while the issuer has signed the connection off (its 0800/002).
	signedOff atomic.Bool
	// timedOut holds the IDs of the last maxTimedOut requests that stopped waiting
	// unanswered (under mu), oldest first in timedOutOrder: an answer to one of them
	// is late; one to none is unmatched (direct.go, abandon).
	timedOut      map[string][4]byte // the request's MTI, by request ID
	timedOutOrder []string
}

// lastRead is when the connection last read a message (zero time: never).
func (c *coalescingWriter) lastRead() time.Time {
	if n := c.read.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

func newCoalescingWriter() *coalescingWriter {
	return &coalescingWriter{kick: make(chan struct{}, 1)}
}

func (c *coalescingWriter) WriteMessage(w io.Writer, m *iso8583.Message) error {
	body, err := m.Pack()
	if err != nil {
		return err
	}
	if len(body) > 0xFFFF {
		return fmt.Errorf("message of %d bytes does not fit a 2-byte length header", len(body))
	}
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	if !c.started {
		c.started, c.w = true, w
		go c.flushLoop()
	}
	c.buf = append(c.buf, byte(len(body)>>8), byte(len(body)))
	c.buf = append(c.buf, body...)
	select { // under the lock, so that stop cannot close kick meanwhile
	case c.kick <- struct{}{}:
	default:
	}
	c.mu.Unlock()
	return nil
}

func (c *coalescingWriter) flushLoop() {
	for range c.kick {
		c.mu.Lock()
		if c.writing || len(c.buf) == 0 {
			// A write in progress (it kicks again if bytes are left when it ends),
			// or a kick for bytes an earlier write already took.
			c.mu.Unlock()
			continue
		}
		ok := c.flush()
		c.mu.Unlock()
		if !ok {
			return
		}
	}
}

// flush writes the buffer out; the caller holds c.mu, which flush releases during
// the write and holds again when it returns. It reports false when the write
// failed: the connection is then closed, and c.err set.
func (c *coalescingWriter) flush() bool {
	if len(c.dropped) > 0 {
		c.dropTimedOut()
		if len(c.buf) == 0 {
			return true
		}
	}
	// Hand the filled buffer to the write and give writers the spare one; the two
	// never share a backing array.
	out := c.buf
	c.buf, c.spare = c.spare[:0], nil
	c.gen++
	c.writing = true
	c.mu.Unlock()
	_, err := c.w.Write(out)
	c.mu.Lock()
	c.writing = false
	c.spare = out[:0]
	if err != nil {
		if c.err == nil {
			c.err = fmt.Errorf("write to issuer: %w", err)
		}
		c.mu.Unlock()
		if cl, ok := c.w.(io.Closer); ok {
			_ = cl.Close()
		}
		c.mu.Lock()
		return false
	}
	return true
}

// dropTimedOut takes the bytes of the requests that timed out while queued (dropped)
// out of the buffer; the caller holds c.mu.
func (c *coalescingWriter) dropTimedOut() {
	slices.SortFunc(c.dropped, func(a, b span) int { return a.off - b.off })
	w, r := c.dropped[0].off, c.dropped[0].off
	for _, d := range c.dropped {
		w += copy(c.buf[w:], c.buf[r:d.off])
		r = d.off + d.n
	}
	w += copy(c.buf[w:], c.buf[r:])
	c.buf = c.buf[:w]
	c.dropped = c.dropped[:0]
}

// stop ends the flusher goroutine.
func (c *coalescingWriter) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = errors.New("issuer connection closed")
	}
	if c.kick != nil {
		close(c.kick)
		c.kick = nil
	}
}

// SendPacked sends a body the caller encoded (with the link's STAN in DE 11 and the
// RRN in DE 37) and waits for the answer, like Send.
func (l *Link) SendPacked(ctx context.Context, mti, stan, rrn string, body []byte, timeout time.Duration) (message.Answer, error) {
	if timeout <= 0 {
		timeout = l.cfg.Timeout
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl)
	}
	// A connection that had failed before the request was queued on it (the pool
	// hands it out until its close is handled) wrote nothing: the next is tried.
	for tries := 1; ; tries++ {
		c, err := l.pool.Get()
		if err != nil {
			return message.Answer{}, ErrUnavailable
		}
		// The pool hands out signed-on connections only, whose writers have their
		// sockets: no message for Reply is needed (mk nil).
		a, err := l.roundTrip(ctx.Done(), c, stan+"/"+rrn, body, nil, false, timeout)
		if errors.Is(err, errNotWritten) && tries < l.poolSize() {
			continue
		}
		return a.a, err
	}
}

// poolSize is how many connections the link keeps.
func (l *Link) poolSize() int { return len(l.cfg.Addrs) * l.cfg.Connections }

// answerFieldIDs are the fields of an issuer's message the switch reads, and
// answerFieldIndex their places in it plus one, by field number.
var (
	answerFieldIDs   = [...]int{3, 4, 7, 11, 37, 38, 39, 41, 42, 48, 54, 70}
	answerFieldIndex = func() (ix [129]int) {
		for i, id := range answerFieldIDs {
			ix[id] = i + 1
		}
		return ix
	}()
)

// lightReader reads an issuer's message and decodes only the fields the switch reads
// (the fast scanner walks the rest), instead of unpacking every field with moov-io. An
// answer to a waiting request (direct.go) goes straight to its waiter, and
// iso8583-connection sees nothing (a nil message). So does an answer with a waiting
// request's DE 11 and DE 37 but of the wrong MTI for it (answers): it is not the
// request's answer, and goes to the link's wrongAnswer (dropped when l is nil).
type lightReader struct {
	cw *coalescingWriter
	l  *Link
}

func (lr lightReader) ReadMessage(r io.Reader) (*iso8583.Message, error) {
	n, err := readLength(r)
	if err != nil {
		return nil, fmt.Errorf("failed to read message length: %w", err)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, fmt.Errorf("failed to read message from connection: %w", err)
	}
	if lr.cw != nil {
		lr.cw.read.Store(time.Now().UnixNano())
	}
	// One pass notes where the fields the switch reads are; an answer on the direct
	// path needs only DE 11, 37, 38 and 39 of them, and no moov-io message.
	var at [len(answerFieldIDs)][]byte
	var has uint16
	mti, err := message.Scan(body, message.DialectASCII, func(id int, v []byte) {
		if i := answerFieldIndex[id]; i > 0 {
			at[i-1], has = v, has|1<<(i-1)
		}
	})
	if err == nil {
		light := func() (*iso8583.Message, error) {
			m := iso8583.NewMessage(message.SpecASCII)
			for i, id := range answerFieldIDs {
				if has&(1<<i) != 0 {
					if err := m.Field(id, string(at[i])); err != nil {
						return nil, err
					}
				}
			}
			m.MTI(string(mti))
			return m, nil
		}
		field := func(id int) []byte { return at[answerFieldIndex[id]-1] }
		if lr.cw != nil && len(mti) == 4 && (mti[2] == '1' || mti[2] == '3') && len(field(11)) > 0 {
			// The request ID of requestID: DE 11 and DE 37, or DE 11 and DE 70.
			var id string
			if has&(1<<(answerFieldIndex[37]-1)) != 0 {
				id = string(field(11)) + "/" + string(field(37))
			} else {
				id = string(field(11)) + "/N" + string(field(70))
			}
			a := message.Answer{RC: string(field(39))}
			if has&(1<<(answerFieldIndex[38]-1)) != 0 {
				a.AuthCode = string(field(38))
			}
			if has&(1<<(answerFieldIndex[4]-1)) != 0 { // the amount approved
				a.Amount, a.HasAmount = message.ParseAmount(field(4)), true
			} else if a.RC == message.RCPartialApproval {
				a.Amount = -1
			}
			if has&(1<<(answerFieldIndex[54]-1)) != 0 { // a balance inquiry's balances
				a.Balance = string(field(54))
			}
			delivered, wrong := lr.cw.deliver(id, mti, a, light)
			if delivered {
				return nil, nil // to the request waiting for it
			}
			if wrong != [4]byte{} {
				// Not its answer: the request waits on (or times out).
				if m, err := light(); err == nil && lr.l != nil {
					lr.l.wrongAnswer(m, string(wrong[:]))
				}
				return nil, nil
			}
		}
		var m *iso8583.Message
		if m, err = light(); err == nil {
			return m, nil
		}
	}
	// Let moov-io say exactly what is wrong (the connection logs it and reads on).
	full := iso8583.NewMessage(message.SpecASCII)
	if uerr := full.Unpack(body); uerr != nil {
		return nil, uerr
	}
	return full, nil
}
