package payshield

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/hsm"
)

// ClientOptions configure a Client.
type ClientOptions struct {
	// Addrs are the HSMs' host:port, in order of preference: commands go to the
	// first that is up, and fail over to the next.
	Addrs []string
	// HeaderLength is the length of the message header the HSMs are configured
	// with (default 4, at least 2: the header matches pipelined answers).
	HeaderLength int
	// Conns is the number of connections to each HSM (default 2).
	Conns int
	// Timeout bounds each attempt of a command on one HSM (default 2s); a command
	// that times out is tried on the next HSM while CommandDeadline and its caller's
	// context allow.
	Timeout time.Duration
	// CommandDeadline bounds a command across all its attempts, on every HSM it is
	// tried on (default: twice Timeout, so that a command whose first HSM is silent
	// still fails over to a second one, and with every HSM silent the 96 comes
	// within two attempts however many HSMs there are). Set it to Timeout for no
	// failover within a command after a silent HSM (that HSM is marked down: the
	// next commands go to the others first). An attempt never waits past it.
	CommandDeadline time.Duration
	// DialTimeout bounds a connection attempt (default 2s).
	DialTimeout time.Duration
	// HealthEvery is the period of the NC health checks (default 5s; negative: none).
	HealthEvery time.Duration
	// TLS, when set, wraps each connection in TLS.
	TLS *tls.Config
	// LMKScheme is the LMK scheme of the HSMs, for the keys the client creates
	// (A0, A6, FK): "keyblock" (default: S tokens) or "variant" (U/T tokens). Keys
	// already stored are sent with the key type fields their token's scheme needs.
	LMKScheme string
	// Store holds the key records; each record's Block is the key's LMK token.
	Store hsm.KeyStore
	// Policy is the PIN block format policy of TranslatePIN, the software HSM's
	// (hsm.Options.Policy): the client applies it before it sends CA, CC or G0, so
	// that a translation the switch refuses never reaches the HSM, whatever the
	// HSM's own PIN block format settings.
	Policy hsm.FormatPolicy
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Metrics, when set, receive latencies and errors.
	Metrics *Metrics
	// Logger receives failovers and key lifecycle events (never key material).
	Logger zerolog.Logger
}

// Client is an hsm.HSM on one or more payShield-compatible HSMs. It is safe for
// concurrent use; Close ends its connections and its health checks.
type Client struct {
	opts  ClientOptions
	store hsm.KeyStore
	nodes []*node
	hdr   atomic.Uint64
	stop  chan struct{}
	// life ends with Close: it bounds the dials made in the background.
	life    context.Context
	endLife context.CancelFunc
	once    sync.Once
	wg      sync.WaitGroup
}

var _ hsm.HSM = (*Client)(nil)

// NewClient returns a client over opts.Addrs. It starts the health checks and
// dials lazily: an HSM that is down at start is tried again by the checks.
func NewClient(opts ClientOptions) (*Client, error) {
	if len(opts.Addrs) == 0 {
		return nil, errors.New("payshield client: no HSM addresses")
	}
	if opts.Store == nil {
		return nil, errors.New("payshield client: no key store")
	}
	if opts.HeaderLength == 0 {
		opts.HeaderLength = DefaultHeaderLength
	}
	if opts.HeaderLength < 2 || opts.HeaderLength > 32 {
		return nil, fmt.Errorf("payshield client: header length %d out of range 2-32", opts.HeaderLength)
	}
	switch opts.LMKScheme {
	case "":
		opts.LMKScheme = LMKKeyBlock
	case LMKKeyBlock, LMKVariant:
	default:
		return nil, fmt.Errorf("payshield client: LMK scheme %q is not keyblock or variant", opts.LMKScheme)
	}
	if opts.Conns <= 0 {
		opts.Conns = 2
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.CommandDeadline <= 0 {
		opts.CommandDeadline = 2 * opts.Timeout
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 2 * time.Second
	}
	if opts.HealthEvery == 0 {
		opts.HealthEvery = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Client{opts: opts, store: opts.Store, stop: make(chan struct{})}
	c.life, c.endLife = context.WithCancel(context.Background())
	for _, a := range opts.Addrs {
		n := &node{addr: a, c: c}
		n.up.Store(true)
		c.nodes = append(c.nodes, n)
		if m := opts.Metrics; m != nil {
			m.Up.WithLabelValues(a).Set(1)
		}
	}
	if opts.HealthEvery > 0 {
		c.wg.Add(1)
		go c.healthLoop()
	}
	return c, nil
}

// Close stops the health checks and closes every connection.
func (c *Client) Close() error {
	c.once.Do(func() {
		close(c.stop)
		c.endLife()
		for _, n := range c.nodes {
			n.closeAll()
		}
	})
	c.wg.Wait()
	return nil
}

func (c *Client) healthLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.opts.HealthEvery)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.CheckHealth(context.Background())
		}
	}
}

// CheckHealth sends NC to every HSM and marks each up or down by its answer.
func (c *Client) CheckHealth(ctx context.Context) {
	for _, n := range c.nodes {
		cctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
		resp, err := n.call(cctx, "NC", nil)
		cancel()
		ok := err == nil && resp.ErrCode == CodeOK
		if ok != n.up.Load() {
			c.opts.Logger.Warn().Str("hsm", n.addr).Bool("up", ok).Err(err).Msg("HSM health changed")
		}
		c.setUp(n, ok)
	}
}

func (c *Client) setUp(n *node, up bool) {
	n.up.Store(up)
	if m := c.opts.Metrics; m != nil {
		v := 0.0
		if up {
			v = 1
		}
		m.Up.WithLabelValues(n.addr).Set(v)
	}
}

// Down is nil while at least one HSM is up (it answered its last command or NC
// check), else an error naming every HSM: no PIN translation or MAC can be done, and
// transactions needing one are answered 96. /readyz does not count it (every node
// shares the HSMs); switchyard_hsm_up has it for alerts.
func (c *Client) Down() error {
	addrs := make([]string, 0, len(c.nodes))
	for _, n := range c.nodes {
		if n.up.Load() {
			return nil
		}
		addrs = append(addrs, n.addr)
	}
	return fmt.Errorf("no HSM answers (%s): transactions needing a PIN translation or a MAC are answered 96", strings.Join(addrs, ", "))
}

// header returns a fresh header: a counter in base 36. With a short header it wraps
// soon (2 characters: every 1,296 commands), so a connection never gives a command a
// header whose answer may still come (see conn.overdue).
func (c *Client) header() string {
	const digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	v := c.hdr.Add(1)
	b := make([]byte, c.opts.HeaderLength)
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = digits[v%36]
		v /= 36
	}
	return string(b)
}

// errTimeout is a command that got no answer within the timeout.
var errTimeout = errors.New("no answer within the timeout")

// do sends a command to the first HSM that is up (then to the others) and returns its
// answer; an answer with a non-zero error code is returned as an *Error. The command,
// all its attempts together, takes at most CommandDeadline: until 6 December 2026 each
// attempt had its own Timeout, and a command waited up to the number of HSMs times
// Timeout before its 96.
func (c *Client) do(ctx context.Context, code string, body []byte) (Response, error) {
	start := c.opts.Now()
	ctx, cancelCmd := context.WithTimeout(ctx, c.opts.CommandDeadline)
	defer cancelCmd()
	order := make([]*node, 0, len(c.nodes))
	for _, n := range c.nodes {
		if n.up.Load() {
			order = append(order, n)
		}
	}
	for _, n := range c.nodes {
		if !n.up.Load() {
			order = append(order, n)
		}
	}
	var errs []error
	for i, n := range order {
		if ctx.Err() != nil {
			if len(errs) > 0 {
				errs = append(errs, fmt.Errorf("not tried on %d other HSM(s): command deadline %s reached", len(order)-i, c.opts.CommandDeadline))
			}
			break
		}
		cctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
		resp, err := n.call(cctx, code, body)
		cancel()
		if err == nil {
			// An answer, error code or not, is the HSM up: a HSM marked down by a
			// failure is back with its first answer, not only at the next NC check
			// (never, with the checks off).
			if !n.up.Load() {
				c.opts.Logger.Info().Str("hsm", n.addr).Str("command", code).Msg("HSM answers again; marking it up")
				c.setUp(n, true)
			}
			if m := c.opts.Metrics; m != nil {
				m.Latency.WithLabelValues(code).Observe(c.opts.Now().Sub(start).Seconds())
				if resp.ErrCode != CodeOK {
					m.Errors.WithLabelValues(code, resp.ErrCode).Inc()
				}
			}
			if resp.ErrCode != CodeOK {
				return resp, errorFor(code, resp.ErrCode)
			}
			return resp, nil
		}
		kind := "unavailable"
		if errors.Is(err, errTimeout) {
			kind = "timeout"
		}
		if m := c.opts.Metrics; m != nil {
			m.Errors.WithLabelValues(code, kind).Inc()
		}
		if n.up.Load() {
			c.opts.Logger.Warn().Str("hsm", n.addr).Str("command", code).Err(err).Msg("HSM failed; marking it down and failing over")
		}
		c.setUp(n, false)
		errs = append(errs, fmt.Errorf("%s: %w", n.addr, err))
	}
	if len(errs) == 0 {
		errs = append(errs, ctx.Err())
	}
	return Response{}, fmt.Errorf("%w: %s: %w", hsm.ErrUnavailable, code, errors.Join(errs...))
}

// node is one HSM address and its connections.
type node struct {
	addr  string
	c     *Client
	up    atomic.Bool
	mu    sync.Mutex
	conns []*conn
	rr    atomic.Uint32
	// dialing is closed when the dial in flight ends; nil when none is. dialErr is
	// the error of the last dial (nil when it connected).
	dialing chan struct{}
	dialErr error
}

func (n *node) closeAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, cn := range n.conns {
		cn.close(net.ErrClosed)
	}
	n.conns = nil
}

// get returns a connection. While there are fewer than Conns it has one dialed in
// the background (one dial at a time, bounded by DialTimeout): a command takes a
// live connection at once, and waits for the dial, no longer than its own
// deadline, only when there is none. Until 6 December 2026 the command dialed
// itself, holding the node, with its own deadline: with one connection up and new
// sessions stalled (a TLS handshake unanswered), each command spent its timeout
// in the dial, then wrote to the live connection with its deadline past, failed,
// and closed that connection too.
func (n *node) get(ctx context.Context) (*conn, error) {
	n.mu.Lock()
	select {
	case <-n.c.stop:
		n.mu.Unlock()
		return nil, errors.New("client closed")
	default:
	}
	n.prune()
	if len(n.conns) < n.c.opts.Conns && n.dialing == nil {
		n.dialing = make(chan struct{})
		n.c.wg.Add(1)
		go n.dial(n.dialing)
	}
	if len(n.conns) > 0 {
		cn := n.conns[int(n.rr.Add(1))%len(n.conns)]
		n.mu.Unlock()
		return cn, nil
	}
	wait := n.dialing
	n.mu.Unlock()
	select {
	case <-wait:
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("connecting: %w", errTimeout)
		}
		return nil, ctx.Err()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.prune()
	if len(n.conns) > 0 {
		return n.conns[int(n.rr.Add(1))%len(n.conns)], nil
	}
	if n.dialErr != nil {
		return nil, n.dialErr
	}
	return nil, errors.New("connection lost as soon as it was made")
}

// prune drops the dead connections; n.mu is held.
func (n *node) prune() {
	live := n.conns[:0]
	for _, cn := range n.conns {
		if !cn.isDead() {
			live = append(live, cn)
		}
	}
	clear(n.conns[len(live):])
	n.conns = live
}

// dial connects to the HSM within DialTimeout (or until Close), adds the connection
// and closes done.
func (n *node) dial(done chan struct{}) {
	defer n.c.wg.Done()
	ctx, cancel := context.WithTimeout(n.c.life, n.c.opts.DialTimeout)
	defer cancel()
	d := net.Dialer{}
	var nc net.Conn
	var err error
	if n.c.opts.TLS != nil {
		td := tls.Dialer{NetDialer: &d, Config: n.c.opts.TLS}
		nc, err = td.DialContext(ctx, "tcp", n.addr)
	} else {
		nc, err = d.DialContext(ctx, "tcp", n.addr)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.dialErr = err
	n.dialing = nil
	defer close(done)
	if err != nil {
		return
	}
	select {
	case <-n.c.stop:
		nc.Close()
		n.dialErr = errors.New("client closed")
		return
	default:
	}
	cn := &conn{nc: nc, pending: map[string]chan Response{}, done: make(chan struct{}), hl: n.c.opts.HeaderLength, wsem: make(chan struct{}, 1)}
	n.conns = append(n.conns, cn)
	n.c.wg.Add(1)
	go func() {
		defer n.c.wg.Done()
		cn.readLoop()
	}()
}

func (n *node) call(ctx context.Context, code string, body []byte) (Response, error) {
	cn, err := n.get(ctx)
	if err != nil {
		return Response{}, err
	}
	return cn.roundTrip(ctx, n.c.header, code, body)
}

// conn is one connection with pipelined commands, matched to answers by header.
type conn struct {
	nc net.Conn
	hl int
	// reads counts the answers read on the connection: a command that times out
	// with none read since it was sent finds the connection silent and closes it.
	reads atomic.Uint64
	// wsem is held by the command writing: one frame at a time, and a command
	// waits for it no longer than its deadline.
	wsem chan struct{}
	mu   sync.Mutex
	// pending holds the channel of each command waiting for its answer, by header,
	// and nil for a command that timed out on a connection that stays: its answer
	// may still come, and is dropped; until then no command gets its header.
	pending map[string]chan Response
	// overdue counts the nil entries of pending; past maxOverdue the connection
	// is closed (answers lost for good would otherwise fill it).
	overdue int
	done    chan struct{}
	err     error
}

// maxOverdue is the most answers to timed-out commands a connection waits for
// before it is closed.
const maxOverdue = 256

// maxHeaderTries is how many headers a command tries before it gives up on a
// connection whose headers are all taken (2 characters: all 1,296).
const maxHeaderTries = 36 * 36

func (cn *conn) isDead() bool {
	select {
	case <-cn.done:
		return true
	default:
		return false
	}
}

func (cn *conn) close(err error) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.err == nil {
		cn.err = err
		close(cn.done)
		cn.nc.Close()
	}
}

func (cn *conn) readLoop() {
	r := bufio.NewReaderSize(cn.nc, 4096)
	for {
		msg, err := ReadFrame(r, nil)
		if err != nil {
			cn.close(fmt.Errorf("connection lost: %w", err))
			return
		}
		resp, err := ParseResponse(msg, cn.hl)
		if err != nil {
			cn.close(err)
			return
		}
		cn.reads.Add(1)
		cn.mu.Lock()
		ch, ok := cn.pending[resp.Header]
		delete(cn.pending, resp.Header)
		if ok && ch == nil {
			cn.overdue--
		}
		cn.mu.Unlock()
		if !ok {
			// No command on this connection has that header: the HSM echoes
			// headers wrongly (hsm.header_length not the HSM's) or answered one
			// twice. Nothing it sends can be matched to a command any more; close
			// the connection, which fails its commands at once. Until 6 December
			// 2026 such an answer was dropped: each command waited out its timeout
			// (reported as one), on a connection kept open, and a repeated answer
			// could be taken for a later command's once its header came round.
			cn.close(fmt.Errorf("%w: answer %s with header %q, which no command waiting on this connection has (is hsm.header_length %d the HSM's?)", ErrFrame, resp.Code, clip(resp.Header), cn.hl))
			return
		}
		if ch != nil {
			ch <- resp
		} // else: a late answer to a command that timed out
	}
}

// roundTrip sends a command under the first header from next that is not pending
// on the connection and waits for its answer.
func (cn *conn) roundTrip(ctx context.Context, next func() string, code string, body []byte) (Response, error) {
	want, _ := ResponseCode(code)
	ch := make(chan Response, 1)
	cn.mu.Lock()
	if cn.err != nil {
		err := cn.err
		cn.mu.Unlock()
		return Response{}, err
	}
	header := next()
	for tries := 1; ; tries++ {
		if _, taken := cn.pending[header]; !taken {
			break
		}
		if tries == maxHeaderTries {
			cn.mu.Unlock()
			return Response{}, fmt.Errorf("%s: no free header among %d tried (%d commands pending or overdue)", code, tries, len(cn.pending))
		}
		header = next()
	}
	cn.pending[header] = ch
	cn.mu.Unlock()
	reads := cn.reads.Load()
	forget := func() {
		cn.mu.Lock()
		delete(cn.pending, header)
		cn.mu.Unlock()
	}
	frame, err := AppendRequest(nil, Request{Header: header, Code: code, Body: body})
	if err != nil {
		forget()
		return Response{}, err
	}
	defer clear(frame) // PIN blocks, FK's clear components
	select {
	case cn.wsem <- struct{}{}:
	case <-cn.done:
		forget()
		return Response{}, cn.err
	case <-ctx.Done():
		// Nothing written: the connection is as good as before.
		forget()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return Response{}, fmt.Errorf("waiting to write: %w", errTimeout)
		}
		return Response{}, ctx.Err()
	}
	if err := ctx.Err(); err != nil {
		<-cn.wsem
		forget()
		if errors.Is(err, context.DeadlineExceeded) {
			return Response{}, fmt.Errorf("waiting to write: %w", errTimeout)
		}
		return Response{}, err
	}
	if dl, ok := ctx.Deadline(); ok {
		cn.nc.SetWriteDeadline(dl)
	}
	_, err = cn.nc.Write(frame)
	<-cn.wsem
	if err != nil {
		forget()
		cn.close(err)
		return Response{}, err
	}
	select {
	case resp := <-ch:
		if resp.Code != want {
			return resp, fmt.Errorf("%w: answer code %s to %s, want %s", ErrFrame, resp.Code, code, want)
		}
		return resp, nil
	case <-cn.done:
		forget()
		return Response{}, cn.err
	case <-ctx.Done():
		// Sent: the answer may still come. Its header stays taken until it does.
		cn.mu.Lock()
		if _, ok := cn.pending[header]; ok {
			cn.pending[header] = nil
			cn.overdue++
		}
		overdue := cn.overdue
		cn.mu.Unlock()
		if overdue > maxOverdue {
			cn.close(fmt.Errorf("connection discarded: %d answers overdue", overdue))
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			if cn.reads.Load() == reads {
				// Nothing came back on the connection while this command waited:
				// it is silent (an HSM hung in its session, a firewall that dropped
				// the connection without a reset), and every later command sent on
				// it would time out too, the NC checks with them, for ever. Close
				// it: the next command dials a new one. An HSM that is merely slow
				// on this command (other answers came) keeps its connection, and
				// the late answer is dropped: its header is given to no other
				// command until it has come.
				cn.close(fmt.Errorf("connection discarded: %w", errTimeout))
			}
			return Response{}, errTimeout
		}
		return Response{}, ctx.Err()
	}
}
