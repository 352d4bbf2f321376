// Package frontend is the terminals' side of the switch: TCP (optionally TLS)
// listeners that frame messages, run many requests of one connection at once with
// bounded concurrency, write responses in any order, and close idle or misbehaving
// connections.
package frontend

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/message"
)

// Conn describes the connection a request came on.
type Conn struct {
	ID       uint64
	Listener string
	Dialect  message.Dialect
	Remote   netip.AddrPort
	// MACVerified is set by a dialect adapter in front of the pipeline (switch/cup)
	// on the copy of the Conn it hands the pipeline with one request: the adapter
	// verified that request's MAC in its dialect (cup F64 under the session's MAK), so
	// the pipeline takes the request as MAC-verified instead of asking its ASCII
	// rendering for a MAC under the terminal's TAK, which the adapter cannot make.
	// A listener never sets it: nothing a terminal sends can.
	MACVerified bool
	// UnMACdNetwork is set by a dialect adapter on the copy of the Conn with which
	// it hands the pipeline a network management message (0800) that its dialect
	// carries without a MAC (the cup sign-in, sign-off and echo): the pipeline does
	// not ask its ASCII rendering for a MAC under the terminal's TAK, and does not
	// take it as MAC-verified either (a terminal whose registry record requires a
	// MAC is still refused by the terminal checks). Without it a terminal registered
	// with a TAK could not sign in over cup. A listener never sets it.
	UnMACdNetwork bool
	// SessionProven is set by a dialect adapter on the copy of the Conn with which
	// it hands the pipeline such an unMAC'd network message (the cup echo) when it
	// came on the connection on which the terminal last sent a verified MAC (not
	// that of its sign-in, which carries none): the pipeline records the terminal
	// as seen (its last-seen), nothing more. A listener never sets it.
	SessionProven bool
	// ContentSum is set by a dialect adapter (switch/cup) on the copy of the Conn
	// with which it hands the pipeline one card request: the fingerprint of the
	// request's content, keyed so that it is the same on every node and after a
	// restart (never card data), which the pipeline writes in the request's
	// journal record (journal.Record.ContentSum) for the adapter to tell a resend
	// of it from another transaction reusing its STAN. 0: none. A listener never
	// sets it.
	ContentSum uint64
}

// Response is the answer to one request.
type Response struct {
	// Body is the message to send back; nil sends nothing.
	Body []byte
	// Sent, if not nil, is called once the response was written to the socket
	// (delivered = true) or could not be (false), so that an undeliverable approval
	// can be reversed.
	Sent func(delivered bool)
}

// Refuser is a Processor that can also answer a request it is not given to process,
// because a listener limit is reached (reason, such as ReasonSourceBusy): at once,
// from what the request says, without the journal, the issuer or the HSM, in the
// conventions of its dialect. An error means the request cannot be answered (as
// Process's). A Processor that is not one gets every request.
type Refuser interface {
	Refuse(c *Conn, body []byte, reason string) (Response, error)
}

// ReasonSourceBusy is the reason of a request refused because its source address
// has Config.MaxInFlightPerSource requests in progress on the listener.
const ReasonSourceBusy = "source-busy"

// Processor handles one request body. An error means the request cannot be answered:
// the connection is closed and the error logged. ctx is cancelled when the listener
// starts draining (or closes): a processor may give up work it can abandon safely, and
// an answer it still returns before the drain deadline is written out.
type Processor interface {
	Process(ctx context.Context, c *Conn, body []byte) (Response, error)
}

// Config configures one listener.
type Config struct {
	Name    string          // for logs and metrics
	Addr    string          // host:port
	Dialect message.Dialect // the encoding the terminals speak
	TLS     *tls.Config     // nil for plain TCP
	// IdleTimeout closes a connection that sent nothing for this long (default 5 min).
	IdleTimeout time.Duration
	// MaxInFlightPerConn bounds the requests of one connection in progress at once;
	// past it the switch stops reading that connection (default 256).
	MaxInFlightPerConn int
	// MaxBody is the frame limit (default message.MaxBody).
	MaxBody int
	// MaxConns bounds the open connections of the listener (default 10000): past it a
	// new connection is closed as soon as it is accepted, so that idle sockets cannot
	// use up the process's file descriptors (and lock out the admin listener).
	MaxConns int
	// MaxConnsPerSource bounds the open connections from one remote address (default
	// 1000), so that one host cannot take all of MaxConns.
	MaxConnsPerSource int
	// MaxInFlightPerSource bounds the requests in progress from one remote address
	// over all its connections (default 2000), so that one host cannot take all of
	// the switch's Limiter: a request past it is answered at once by the Processor's
	// Refuse (ReasonSourceBusy), and counted (Metrics.RequestRefused).
	MaxInFlightPerSource int
	// FirstFrameTimeout closes a connection whose first frame (and TLS handshake) has
	// not arrived within it (default 10 s, at most IdleTimeout): a terminal sends as
	// soon as it connects, a socket that sends nothing is not a terminal.
	FirstFrameTimeout time.Duration
	// HTTP serves the messages as HTTP POST bodies (Content-Type x-ISO-TPDU/x-auth),
	// over TLS when TLS is set: listener kind https.
	HTTP bool
	// ProxyProtocol, when set, takes the terminal's address from the PROXY protocol
	// header its trusted proxies open each connection with (proxy.go); nil: the
	// socket's peer is the terminal, and a header is a terminal's first bytes.
	ProxyProtocol *ProxyProtocol
	// Logger receives the listener's connection and refusal messages, tagged by the
	// wiring (component=frontend); the listener adds its name. The zero value logs
	// nothing.
	Logger zerolog.Logger

	// reapTick, in tests, replaces the request goroutines' reaper's ticker (workers).
	reapTick <-chan time.Time
}

// Limiter bounds the requests in progress over all listeners. A nil Limiter has no bound.
type Limiter chan struct{}

// NewLimiter returns a Limiter for n requests.
func NewLimiter(n int) Limiter { return make(Limiter, n) }

// Metrics receives the front-end's counts; all methods must be safe for concurrent use.
type Metrics interface {
	ConnOpened(listener string)
	ConnClosed(listener, reason string)
	ProtocolError(listener, reason string)
	// ConnRefused counts a connection closed at accept because of a limit (reason
	// "max-conns" or "per-source").
	ConnRefused(listener, reason string)
	// RequestRefused counts a request answered without processing because of a
	// limit (reason ReasonSourceBusy).
	RequestRefused(listener, reason string)
	// Turnaround returns the function that records, for each answer, the time from its
	// request's last byte read to the answer written to the socket (called once per
	// listener).
	Turnaround(listener string) func(seconds float64)
}

// Listener serves one terminal listening address.
type Listener struct {
	cfg     Config
	proc    Processor
	limit   Limiter
	log     zerolog.Logger
	metrics Metrics
	// turnaround records answer times (nil without metrics).
	turnaround func(seconds float64)

	// ctx is the parent of every request's context; stop cancels it when the drain
	// starts, so that the requests in progress learn that the listener is going away.
	ctx  context.Context
	stop context.CancelFunc

	ln      net.Listener
	httpSrv *http.Server // Config.HTTP only
	nextID  atomic.Uint64
	mu      sync.Mutex
	conns   map[*serverConn]struct{}
	closing bool
	wg      sync.WaitGroup // connections
	reqs    sync.WaitGroup // requests in progress
	// inProgress counts the requests in reqs, for the error of a drain that ends
	// at its deadline.
	inProgress atomic.Int64
	workers    *workers // the goroutines that handle requests

	// refuser is proc as a Refuser (nil if it is not one).
	refuser Refuser
	// reqRefusedUnlogged counts the requests refused since reqRefusedLogged (unix
	// ns), when the last line about them was logged: one per refusalLogEvery.
	reqRefusedUnlogged atomic.Int64
	reqRefusedLogged   atomic.Int64

	// Guarded by mu: the remote addresses with open connections, and the refusals
	// not yet logged and when they were last (a flood of connections past the
	// limits gives one line per refusalLogEvery, not one each).
	sources         map[netip.Addr]*source
	httpOpen        int // the HTTP server's open connections (Config.HTTP)
	refusedUnlogged int
	refusedLogged   time.Time
	// The connections refused for their PROXY header not yet logged, and when the
	// last line about them was (proxyRefused).
	proxyUnlogged int
	proxyLogged   time.Time
}

// source is one remote address with open connections on a listener: how many
// (under the listener's mu), and the requests in progress from it over all of them
// (an atomic: each request adds to it and takes off once, without a lock).
type source struct {
	conns    int
	inFlight atomic.Int64
}

// Listen opens the listening socket. Serve must be called to accept connections.
func Listen(cfg Config, proc Processor, limit Limiter, m Metrics) (*Listener, error) {
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 5 * time.Minute
	}
	if cfg.MaxInFlightPerConn <= 0 {
		cfg.MaxInFlightPerConn = 256
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = message.MaxBody
	}
	if cfg.Dialect == "" {
		cfg.Dialect = message.DialectASCII
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 10000
	}
	if cfg.MaxConnsPerSource <= 0 {
		cfg.MaxConnsPerSource = 1000
	}
	if cfg.MaxInFlightPerSource <= 0 {
		cfg.MaxInFlightPerSource = 2000
	}
	if cfg.FirstFrameTimeout <= 0 {
		cfg.FirstFrameTimeout = 10 * time.Second
	}
	cfg.FirstFrameTimeout = min(cfg.FirstFrameTimeout, cfg.IdleTimeout)
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", cfg.Name, err)
	}
	l := &Listener{cfg: cfg, proc: proc, limit: limit, log: cfg.Logger.With().Str("listener", cfg.Name).Logger(),
		metrics: m, conns: map[*serverConn]struct{}{}, sources: map[netip.Addr]*source{}, workers: newWorkers(cfg.reapTick)}
	l.refuser, _ = proc.(Refuser)
	if cfg.ProxyProtocol != nil {
		// Under the limits and TLS: the header comes before the TLS handshake, and
		// the limits count the socket's peer until the header names the terminal.
		ln = &proxyListener{Listener: ln, l: l}
	}
	if cfg.HTTP {
		// The HTTP server accepts its connections itself: the limits go under TLS,
		// on the sockets (http.go).
		ln = &limitedListener{Listener: ln, l: l}
	}
	if cfg.TLS != nil {
		ln = tls.NewListener(ln, cfg.TLS)
	}
	l.ln = ln
	l.ctx, l.stop = context.WithCancel(context.Background())
	if m != nil {
		l.turnaround = m.Turnaround(cfg.Name)
	}
	if cfg.HTTP {
		l.newHTTP()
	}
	return l, nil
}

// Addr is the address the listener is bound to.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Serve accepts connections until Close. Temporary accept errors (such as running out
// of file descriptors) are logged and retried with backoff; the listener survives them.
func (l *Listener) Serve() error {
	if l.httpSrv != nil {
		return l.serveHTTPConns()
	}
	var backoff time.Duration
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			if l.isClosing() {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.log.Error().Err(err).Dur("retry_in", backoff).Msg("accept failed")
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if tc, ok := nc.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
			_ = tc.SetKeepAlive(true)
		}
		c := &serverConn{l: l, nc: nc, out: make(chan outMsg, min(l.cfg.MaxInFlightPerConn, outQueue)),
			sem: make(chan struct{}, l.cfg.MaxInFlightPerConn)}
		// The socket's peer: with ProxyProtocol, until the header names the terminal
		// (readLoop), the proxy's address.
		c.info = Conn{ID: l.nextID.Add(1), Listener: l.cfg.Name, Dialect: l.cfg.Dialect, Remote: socketPeer(nc)}
		src := c.info.Remote.Addr()
		l.mu.Lock()
		if l.closing {
			l.mu.Unlock()
			nc.Close()
			return nil
		}
		if refused := l.refuse(src); refused != "" {
			l.mu.Unlock()
			l.refused(nc, refused)
			continue
		}
		l.conns[c] = struct{}{}
		c.src = l.addSource(src)
		l.wg.Add(1)
		l.mu.Unlock()
		if l.metrics != nil {
			l.metrics.ConnOpened(l.cfg.Name)
		}
		go c.serve()
	}
}

// refusalLogEvery is the least time between two log lines about refused connections
// (or requests).
const refusalLogEvery = 10 * time.Second

// refuse says which limit a new connection from src would pass ("" if none); the
// caller holds mu.
func (l *Listener) refuse(src netip.Addr) string {
	switch {
	case len(l.conns)+l.httpOpen >= l.cfg.MaxConns:
		return "max-conns"
	case l.sources[src] != nil && l.sources[src].conns >= l.cfg.MaxConnsPerSource:
		return "per-source"
	}
	return ""
}

// addSource counts a new connection from src and returns its source; the caller
// holds mu.
func (l *Listener) addSource(src netip.Addr) *source {
	s := l.sources[src]
	if s == nil {
		s = &source{}
		l.sources[src] = s
	}
	s.conns++
	return s
}

// dropSource counts a connection from src closed; the caller holds mu. A source
// without connections is forgotten (none of its requests is in progress then: a
// connection closes after its requests are answered).
func (l *Listener) dropSource(src netip.Addr) {
	if s := l.sources[src]; s != nil {
		if s.conns--; s.conns <= 0 {
			delete(l.sources, src)
		}
	}
}

// admit counts a request from src in progress and reports whether it is within the
// source's limit; one that is not is not counted. Each admitted request is given
// back with release.
func (l *Listener) admit(src *source) bool {
	if src.inFlight.Add(1) > int64(l.cfg.MaxInFlightPerSource) && l.refuser != nil {
		src.inFlight.Add(-1)
		return false
	}
	return true
}

// refuseRequest answers a request past the source's limit with the Processor's
// refusal, counts it and logs the refusals at most once per refusalLogEvery. An error
// is the Processor's: the request cannot be answered.
func (l *Listener) refuseRequest(info *Conn, body []byte) (Response, error) {
	if l.metrics != nil {
		l.metrics.RequestRefused(l.cfg.Name, ReasonSourceBusy)
	}
	n := l.reqRefusedUnlogged.Add(1)
	now, last := time.Now().UnixNano(), l.reqRefusedLogged.Load()
	if now-last >= int64(refusalLogEvery) && l.reqRefusedLogged.CompareAndSwap(last, now) {
		l.reqRefusedUnlogged.Add(-n)
		l.log.Warn().Str("remote", info.Remote.Addr().String()).Int64("refused", n).Int("max_in_flight_per_source", l.cfg.MaxInFlightPerSource).
			Msg("requests refused: their source address has max_in_flight_per_source requests in progress (answered at once; see max_in_flight_per_source)")
	}
	return l.refuser.Refuse(info, body, ReasonSourceBusy)
}

// refused closes a connection past a limit at once, with a reset (so that no socket
// lingers in TIME_WAIT on the switch's side), counts it and logs the refusals at most
// once per refusalLogEvery.
func (l *Listener) refused(nc net.Conn, reason string) {
	// Without I/O: a proxied connection's header is not read.
	remote := socketPeer(nc).String()
	if l.metrics != nil { // counted before the close that the peer sees
		l.metrics.ConnRefused(l.cfg.Name, reason)
	}
	raw := nc
	if tc, ok := nc.(*tls.Conn); ok {
		raw = tc.NetConn() // no handshake was made: close the socket under it
	}
	if pc, ok := raw.(*proxiedConn); ok {
		raw = pc.Conn // nor was the PROXY header read
	}
	if tc, ok := raw.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = raw.Close()
	l.logRefused(reason, remote)
}

// logRefused logs a connection refused past a limit, at most once per
// refusalLogEvery (each line says how many since the last).
func (l *Listener) logRefused(reason, remote string) {
	now := time.Now()
	l.mu.Lock()
	l.refusedUnlogged++
	n, open := l.refusedUnlogged, len(l.conns)
	logIt := now.Sub(l.refusedLogged) >= refusalLogEvery
	if logIt {
		l.refusedUnlogged, l.refusedLogged = 0, now
	}
	l.mu.Unlock()
	if logIt {
		l.log.Warn().Str("reason", reason).Str("remote", remote).Int("refused", n).Int("open", open).
			Int("max_conns", l.cfg.MaxConns).Int("max_conns_per_source", l.cfg.MaxConnsPerSource).
			Msg("connections refused: listener limit reached (see max_conns, max_conns_per_source)")
	}
}

func (l *Listener) isClosing() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closing
}

// StopAccepting closes the listening socket; open connections go on.
func (l *Listener) StopAccepting() {
	l.mu.Lock()
	l.closing = true
	l.mu.Unlock()
	_ = l.ln.Close()
}

// Drain stops accepting, stops reading new requests, cancels the context of the
// requests in progress, waits until they are answered or ctx ends, then closes every
// connection.
func (l *Listener) Drain(ctx context.Context) error {
	if l.httpSrv != nil {
		return l.drainHTTP(ctx)
	}
	l.StopAccepting()
	l.mu.Lock()
	for c := range l.conns {
		c.stopReading()
	}
	l.mu.Unlock()
	l.stop()
	// Every connection stops reading, answers what it has read, writes the answers
	// out and closes by itself; only at the deadline are the rest cut off.
	done := make(chan struct{})
	go func() { l.reqs.Wait(); l.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("listener %s: drain: %d requests still in progress on %d connections: %w", l.cfg.Name, l.inProgress.Load(), l.ConnCount(), ctx.Err())
	}
	l.Close()
	return err
}

// Close stops accepting and closes every connection at once.
func (l *Listener) Close() {
	if l.httpSrv != nil {
		l.StopAccepting()
		l.stop()
		_ = l.httpSrv.Close()
		// No request of an https listener runs on the pool, but its reaper runs
		// from Listen: it would outlive the listener, ticking.
		l.workers.stop()
		return
	}
	l.StopAccepting()
	l.stop()
	l.mu.Lock()
	for c := range l.conns {
		c.close("listener closed")
	}
	l.mu.Unlock()
	l.wg.Wait()
	l.workers.stop() // every connection has answered what it read
}

// ConnCount returns the number of open connections.
func (l *Listener) ConnCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns) + l.httpOpen
}

type serverConn struct {
	l    *Listener
	nc   net.Conn
	info Conn
	src  *source       // its remote address's
	out  chan outMsg   // framed responses for the writer
	sem  chan struct{} // requests of this connection in progress

	closeOnce sync.Once
	reason    string
	stopped   atomic.Bool
	// unanswerable is the error of a request that could not be answered: reading
	// stops, the answers already in flight still go out, then the connection closes
	// with it as the reason.
	unanswerable atomic.Pointer[string]
	// peerGone is set when the read side ended (end-of-file or a read error): the
	// terminal has closed its connection, so an answer written now would "succeed"
	// into a socket nobody reads. Answers still pending are reported undelivered and
	// not written, so that the pipeline reverses the approvals among them.
	peerGone atomic.Bool
	// watchRounds counts watchPeer's reads, each begun with the deadline cleared.
	watchRounds atomic.Int32

	// wmu is held while answers are written: by the writer goroutine, or by a
	// request's own goroutine writing its answer (writeNow). It guards w, broken and
	// deadlineSet.
	wmu         sync.Mutex
	w           *bufio.Writer // allocated with the first answer: an idle socket costs no buffer
	broken      bool
	deadlineSet time.Time
}

// outQueue bounds the answers waiting for a connection's writer (a request whose
// answer finds it full waits). The writer takes up to 64 at a time; a queue as deep
// as MaxInFlightPerConn (256 by default) cost 14 KB of pointer-holding buffer per
// connection, which every garbage collection scans: 140 MB for 10,000 terminals
// (issue 15).
const outQueue = 64

type outMsg struct {
	frame []byte
	sent  func(bool)
	read  time.Time // when the request was read (zero for unsolicited messages)
}

func (c *serverConn) stopReading() {
	c.stopped.Store(true)
	_ = c.nc.SetReadDeadline(time.Now())
}

// stopReason is why reading stopped once stopped is set: an unanswerable request's
// error, else the listener's drain.
func (c *serverConn) stopReason() string {
	if r := c.unanswerable.Load(); r != nil {
		return *r
	}
	return "draining"
}

func (c *serverConn) close(reason string) {
	c.closeOnce.Do(func() {
		c.reason = reason
		_ = c.nc.Close()
	})
}

func (c *serverConn) serve() {
	l := c.l
	var inflight sync.WaitGroup
	writerDone := make(chan struct{})
	go func() { c.writeLoop(); close(writerDone) }()
	ctx, cancel := context.WithCancel(l.ctx)

	reason := c.readLoop(ctx, &inflight)
	c.l.log.Debug().Uint64("conn", c.info.ID).Str("remote", c.info.Remote.String()).Str("reason", reason).Msg("connection reading stopped")
	var watched chan struct{}
	if c.unanswerable.Load() != nil {
		// Reading stopped at an unanswerable frame while answers are still to go out:
		// keep watching the read side, so that a terminal that closes meanwhile has
		// them reported undelivered (and its approvals reversed), as it would have.
		watched = make(chan struct{})
		go func() { c.watchPeer(); close(watched) }()
	}
	inflight.Wait() // answers of requests already read still go out
	cancel()
	close(c.out)
	<-writerDone
	c.close(reason)
	if watched != nil {
		<-watched // ends with the close
	}
	if l.metrics != nil {
		l.metrics.ConnClosed(l.cfg.Name, c.reason)
	}
	l.mu.Lock()
	delete(l.conns, c)
	l.dropSource(c.info.Remote.Addr())
	l.mu.Unlock()
	l.wg.Done()
}

// watchPeer reads and discards what the terminal sends after reading stopped, until
// its end-of-file or a read error (peerGone), or until serve closes the connection.
// A deadline (a drain's stopReading moves it to now) is no sign of the terminal: the
// watch clears it and goes on.
func (c *serverConn) watchPeer() {
	for {
		_ = c.nc.SetReadDeadline(time.Time{})
		c.watchRounds.Add(1)
		_, err := io.Copy(io.Discard, c.nc)
		switch {
		case errors.Is(err, net.ErrClosed):
			return
		case isTimeout(err):
			continue
		default:
			c.peerGone.Store(true) // nil is the end-of-file
			return
		}
	}
}

// readLoop reads frames and starts a request for each; it returns why it stopped.
func (c *serverConn) readLoop(ctx context.Context, inflight *sync.WaitGroup) string {
	l := c.l
	if pc := proxiedOf(c.nc); pc != nil {
		if reason := c.proxyHeader(pc); reason != "" {
			return reason
		}
	}
	r := bufio.NewReaderSize(c.nc, 8192)
	// Until the first frame, the (shorter) first-frame deadline applies.
	first := true
	_ = c.nc.SetReadDeadline(time.Now().Add(l.cfg.FirstFrameTimeout))
	var deadlineSet time.Time
	for {
		if c.stopped.Load() {
			return c.stopReason()
		}
		// The idle deadline is moved when a tenth of it has passed, not for every frame.
		if now := time.Now(); !first && now.After(deadlineSet.Add(l.cfg.IdleTimeout/10)) {
			_ = c.nc.SetReadDeadline(now.Add(l.cfg.IdleTimeout))
			deadlineSet = now
			// stopReading may have set its deadline just before this one replaced it.
			if c.stopped.Load() {
				return c.stopReason()
			}
		}
		body, err := ReadFrame(r, nil, l.cfg.MaxBody)
		read := time.Now()
		if err == nil && c.unanswerable.Load() != nil {
			return c.stopReason() // read behind an unanswerable frame: not started
		}
		if err != nil {
			switch {
			case c.stopped.Load():
				return c.stopReason()
			case errors.Is(err, io.EOF):
				c.peerGone.Store(true)
				return "closed by peer"
			case errors.Is(err, ErrFrameTooLong):
				l.log.Warn().Uint64("conn", c.info.ID).Str("remote", c.info.Remote.String()).Err(err).Msg("protocol error: closing connection")
				l.protoErr("frame-too-long")
				return "frame too long"
			case isTimeout(err) && first:
				// Debug only: a flood of silent sockets would flood the log too.
				l.log.Debug().Uint64("conn", c.info.ID).Str("remote", c.info.Remote.String()).Dur("first_frame_timeout", l.cfg.FirstFrameTimeout).Msg("connection sent no frame in time; closed")
				return "first frame timeout"
			case isTimeout(err):
				l.log.Info().Uint64("conn", c.info.ID).Str("remote", c.info.Remote.String()).Dur("idle", l.cfg.IdleTimeout).Msg("idle connection closed")
				return "idle timeout"
			case errors.Is(err, net.ErrClosed):
				return "closed"
			default:
				c.peerGone.Store(true) // reset, or closed half way through a frame
				l.log.Info().Uint64("conn", c.info.ID).Str("remote", c.info.Remote.String()).Err(err).Msg("connection read failed")
				return "read error"
			}
		}
		first = false
		if len(body) == 0 {
			l.log.Warn().Uint64("conn", c.info.ID).Str("remote", c.info.Remote.String()).Msg("protocol error: empty frame; closing connection")
			l.protoErr("empty-frame")
			return "empty frame"
		}
		// A source at its limit is answered at once: its requests do not take the
		// slots of the switch that every terminal shares.
		if !l.admit(c.src) {
			resp, err := l.refuseRequest(&c.info, body)
			if err != nil {
				l.log.Warn().Uint64("conn", c.info.ID).Str("remote", c.info.Remote.String()).Err(err).Msg("unanswerable request: closing connection")
				l.protoErr("unanswerable")
				reason := err.Error()
				c.unanswerable.CompareAndSwap(nil, &reason)
				return c.stopReason()
			}
			if resp.Body != nil {
				c.out <- outMsg{AppendFrame(make([]byte, 0, len(resp.Body)+2), resp.Body), resp.Sent, read}
			} else if resp.Sent != nil {
				resp.Sent(false)
			}
			continue
		}
		// Back-pressure: wait for a slot of this connection, then one of the switch.
		c.sem <- struct{}{}
		if l.limit != nil {
			l.limit <- struct{}{}
		}
		inflight.Add(1)
		l.reqs.Add(1)
		l.inProgress.Add(1)
		l.workers.run(job{c: c, ctx: ctx, body: body, read: read, inflight: inflight})
	}
}

func (l *Listener) protoErr(reason string) {
	if l.metrics != nil {
		l.metrics.ProtocolError(l.cfg.Name, reason)
	}
}

func (c *serverConn) handle(ctx context.Context, body []byte, read time.Time, inflight *sync.WaitGroup) {
	l := c.l
	slot := true // this request holds one of c.sem's slots
	defer func() {
		if p := recover(); p != nil {
			l.log.Error().Uint64("conn", c.info.ID).Interface("panic", p).Msg("request handler panicked; closing connection")
			c.close("handler panic")
		}
		if slot {
			<-c.sem
		}
		if l.limit != nil {
			<-l.limit
		}
		c.src.inFlight.Add(-1)
		l.inProgress.Add(-1)
		l.reqs.Done()
		inflight.Done()
	}()
	resp, err := l.proc.Process(ctx, &c.info, body)
	if err != nil {
		l.log.Warn().Uint64("conn", c.info.ID).Str("remote", c.info.Remote.String()).Err(err).Msg("unanswerable request: closing connection")
		l.protoErr("unanswerable")
		// Stop reading, but let the answers of the requests read before it go out
		// (serve closes the connection once they have): closing now would reverse
		// approvals the terminal was about to get.
		reason := err.Error()
		c.unanswerable.CompareAndSwap(nil, &reason)
		c.stopReading()
		return
	}
	if resp.Body != nil {
		m := outMsg{AppendFrame(make([]byte, 0, len(resp.Body)+2), resp.Body), resp.Sent, read}
		if written, err := c.writeNow(m); written {
			// The answer is out: free the connection's slot before the delivery's
			// report (as the writer path does), so that a terminal sending its next
			// request at once finds the connection idle and gets its answer written
			// directly too.
			<-c.sem
			slot = false
			notify(m, err == nil)
		} else {
			c.out <- m
		}
	} else if resp.Sent != nil {
		resp.Sent(false)
	}
}

// drain adds the answers already queued to batch, up to 64.
func (c *serverConn) drain(batch []outMsg) []outMsg {
	for len(batch) < 64 {
		select {
		case m, ok := <-c.out:
			if !ok {
				return batch
			}
			batch = append(batch, m)
		default:
			return batch
		}
	}
	return batch
}

// writeNow writes m from the request's own goroutine when it is the only request of
// the connection in progress and the writer has nothing queued; it reports whether
// it did, and the write's error (the caller reports the delivery). At an ordinary
// load (a request or less in flight per connection) this saves the hand-off to the
// writer goroutine, which on a busy machine is a wait in the run queue before the
// answer goes out. With other requests in progress their answers
// may come with the same group commit: those go to the writer, which coalesces them
// into one write.
func (c *serverConn) writeNow(m outMsg) (bool, error) {
	if len(c.sem) > 1 || len(c.out) > 0 || !c.wmu.TryLock() {
		return false, nil
	}
	one := [1]outMsg{m}
	err := c.write(one[:])
	c.wmu.Unlock()
	return true, err
}

// writeLoop writes responses, coalescing those that are ready into one write, and
// reports each one's delivery.
func (c *serverConn) writeLoop() {
	var batch []outMsg
	for m := range c.out {
		batch = c.drain(append(batch[:0], m))
		if len(batch) == 1 && len(c.sem) > 1 {
			// Other requests of this connection are in progress, and the group commit
			// that released this answer released theirs too: let them queue theirs
			// before the write, so that one write carries them all.
			runtime.Gosched()
			batch = c.drain(batch)
		}
		c.wmu.Lock()
		err := c.write(batch)
		c.wmu.Unlock()
		c.delivered(batch, err)
	}
}

// errNotWritten is write's answer for a connection whose peer is gone or whose
// socket broke before: the answers are reported undelivered, without a log line.
var errNotWritten = errors.New("not written")

// write writes the batch with one flush. The caller holds c.wmu.
func (c *serverConn) write(batch []outMsg) error {
	if c.broken || c.peerGone.Load() {
		return errNotWritten
	}
	if c.w == nil {
		c.w = bufio.NewWriterSize(c.nc, 16384)
	}
	var err error
	for _, m := range batch {
		if err == nil {
			_, err = c.w.Write(m.frame)
		}
	}
	if err == nil {
		// A write that blocks 20 to 30 s (a terminal that stopped reading) fails;
		// the deadline is moved only every 10 s, not for every flush.
		if now := time.Now(); now.After(c.deadlineSet.Add(10 * time.Second)) {
			_ = c.nc.SetWriteDeadline(now.Add(30 * time.Second))
			c.deadlineSet = now
		}
		err = c.w.Flush()
	}
	if err == nil && c.l.turnaround != nil {
		now := time.Now()
		for _, m := range batch {
			if !m.read.IsZero() {
				c.l.turnaround(now.Sub(m.read).Seconds())
			}
		}
	}
	if err != nil {
		c.broken = true
		c.l.log.Info().Uint64("conn", c.info.ID).Err(err).Msg("connection write failed")
		c.stopReading()
		c.close("write error")
	}
	return err
}

// delivered reports each answer of a batch written (err nil) or not; it runs
// without c.wmu, since the reports may take their time (a reversal).
func (c *serverConn) delivered(batch []outMsg, err error) {
	for _, m := range batch {
		notify(m, err == nil)
	}
}

func notify(m outMsg, delivered bool) {
	if m.sent != nil {
		m.sent(delivered)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
