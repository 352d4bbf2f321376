package frontend

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pires/go-proxyproto"
)

// ProxyProtocol configures the PROXY protocol (versions 1 and 2) on a listener whose
// terminals come through a TCP load balancer or TLS terminator (HAProxy, AWS NLB,
// F5): the proxy opens each connection with a header naming the terminal's address,
// which then stands for the connection's remote address everywhere (Conn.Remote: the
// registry's allowed networks, the terminal's last-seen address, the journal, the
// logs and the per-source limits).
//
// The header is parsed by github.com/pires/go-proxyproto (its Read): it is read from
// the network before anything is authenticated, and a parser of the binary version
// 2 (address families, TLVs, lengths) is where a hand-written one goes wrong; that
// library is the one most Go proxies and servers use, and is fuzzed (v0.15.0: v0.16.0
// needs a newer Go than the switch's 1.26). Its Listener and Conn are not used: they
// read the header lazily, on the first Read, and take a header that does not
// complete in time for no header at all (a trusted proxy's half header would then be
// read as the terminal's first bytes); here the header is read once per connection,
// on the connection's own goroutine (never the accept loop), within
// FirstFrameTimeout of the accept (a version 1 header split across segments is
// waited for until then: wholeV1Line), and a header that fails in any way refuses
// the connection. A LOCAL header (version 2) or an UNKNOWN one (version 1) is the
// proxy's own connection: the socket's peer stays the remote address.
type ProxyProtocol struct {
	// Trusted are the networks of the proxies. Only a connection from one of them
	// may open with a header; a header from any other address is refused
	// (ReasonProxyUntrusted). A connection from elsewhere without a header is a
	// terminal's own, as without ProxyProtocol.
	Trusted []netip.Prefix
	// Required refuses a trusted proxy's connection that opens without a header
	// (ReasonProxyMissing); without it such a connection is the proxy's own, its
	// address the remote.
	Required bool
}

// Reasons of connections refused for their PROXY header (Metrics.ConnRefused).
const (
	// ReasonProxyUntrusted: a header from an address that is not a trusted proxy.
	ReasonProxyUntrusted = "proxy-untrusted"
	// ReasonProxyMissing: a trusted proxy's connection without a header, where one
	// is required.
	ReasonProxyMissing = "proxy-missing"
	// ReasonProxyInvalid: a header that does not parse.
	ReasonProxyInvalid = "proxy-invalid"
	// ReasonProxyTimeout: a header not complete within FirstFrameTimeout of the
	// accept (a silent or stalled proxy connection).
	ReasonProxyTimeout = "proxy-timeout"
)

// closedProxyRefused is the close reason (Metrics.ConnClosed) of a connection
// refused for its PROXY header.
const closedProxyRefused = "proxy header refused"

// trusts says whether the address a is one of the trusted proxies'.
func (p *ProxyProtocol) trusts(a netip.Addr) bool {
	for _, n := range p.Trusted {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// proxyListener wraps every accepted socket in a proxiedConn. It does no I/O: the
// header is read on the connection's goroutine (proxiedConn.header).
type proxyListener struct {
	net.Listener
	l *Listener
}

// Accept returns the next connection, wrapped.
func (pl *proxyListener) Accept() (net.Conn, error) {
	nc, err := pl.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
		_ = tc.SetKeepAlive(true)
	}
	pc := &proxiedConn{Conn: nc, l: pl.l, peer: addrPort(nc.RemoteAddr()), deadline: time.Now().Add(pl.l.cfg.FirstFrameTimeout)}
	pc.remote = pc.peer
	return pc, nil
}

// proxiedConn is a socket of a listener with ProxyProtocol: its first bytes may be
// a PROXY header, which header reads once. RemoteAddr is the terminal's address the
// header names; Read returns what follows the header.
type proxiedConn struct {
	net.Conn
	l        *Listener
	peer     netip.AddrPort // the socket's peer: a proxy's address, or a terminal's
	deadline time.Time      // the header's

	once sync.Once
	err  error         // the header's refusal (a *proxyRefusal)
	br   *bufio.Reader // what was read past the header, until drained; then nil
	// refusal is err when it is a *proxyRefusal, for closeReason: read without
	// the once, by whichever goroutine closes the connection.
	refusal atomic.Pointer[proxyRefusal]
	// remote is the terminal's address: the header's source, or peer without a
	// header (or with a LOCAL one: a proxy's health check).
	remote netip.AddrPort
}

// proxyRefusal is why a connection's PROXY header refused it.
type proxyRefusal struct {
	// reason is a ReasonProxy constant; "" for a connection that sent nothing by
	// the deadline and needed no header, closed as any silent one (first frame
	// timeout), not counted as a refusal.
	reason string
	err    error
}

func (e *proxyRefusal) Error() string {
	return fmt.Sprintf("PROXY protocol: %s: %v", e.reason, e.err)
}

func (e *proxyRefusal) Unwrap() error { return e.err }

// proxyBuffer is the size of the buffer the header is read through: a version 1
// header must fit in it (107 bytes at most), a version 2 one need not.
const proxyBuffer = 256

// header reads the PROXY header once, under its deadline, and returns its refusal
// (counted and logged) or nil.
func (c *proxiedConn) header() error {
	c.once.Do(func() {
		c.err = c.readHeader()
		if r, _ := c.err.(*proxyRefusal); r != nil {
			c.refusal.Store(r)
			if r.reason != "" {
				c.l.proxyRefused(c.peer, r)
			}
		}
	})
	return c.err
}

// readHeader reads the header, if any, and decides by the policy: a header only from
// a trusted proxy, always from one where Required.
func (c *proxiedConn) readHeader() error {
	pp := c.l.cfg.ProxyProtocol
	trusted := pp.trusts(c.peer.Addr())
	if err := c.Conn.SetReadDeadline(c.deadline); err != nil {
		return &proxyRefusal{ReasonProxyInvalid, err}
	}
	// A drain sets closing, then moves each connection's read deadline to now
	// (stopReading): one that did so before the line above had it replaced by the
	// header's, and the drain would wait for a silent socket up to that deadline.
	if c.l.isClosing() {
		_ = c.Conn.SetReadDeadline(time.Time{})
		return &proxyRefusal{"", fmt.Errorf("listener %s closing: the header of %s not read", c.l.cfg.Name, c.peer)}
	}
	c.br = bufio.NewReaderSize(c.Conn, proxyBuffer)
	required := trusted && pp.Required
	// Nothing at all first: silence, or a close without a byte.
	if _, err := c.br.Peek(1); err != nil {
		_ = c.Conn.SetReadDeadline(time.Time{})
		switch {
		case isTimeout(err) && required:
			return &proxyRefusal{ReasonProxyTimeout, fmt.Errorf("no header from %s within %s: %w", c.peer, c.l.cfg.FirstFrameTimeout, err)}
		case isTimeout(err):
			// From a sender that need not send a header: a socket that sends
			// nothing, as without the PROXY protocol.
			return &proxyRefusal{"", fmt.Errorf("nothing from %s within %s: %w", c.peer, c.l.cfg.FirstFrameTimeout, err)}
		}
		// Closed without a byte (a load balancer's TCP health check), or reset:
		// no refusal, the read loop sees the end of the connection.
		return nil
	}
	if !trusted {
		// A header from elsewhere is refused on its signature, not parsed: what
		// an untrusted sender wrote after it (an address, TLVs, a length) is
		// never read, nor waited for.
		header, err := proxySignature(c.br)
		_ = c.Conn.SetReadDeadline(time.Time{})
		switch {
		case header:
			return &proxyRefusal{ReasonProxyUntrusted, fmt.Errorf("header from %s, which is not a trusted proxy", c.peer)}
		case isTimeout(err):
			// A few bytes, then nothing: a silent socket, as without the PROXY
			// protocol (first frame timeout).
			return &proxyRefusal{"", fmt.Errorf("no whole frame from %s within %s: %w", c.peer, c.l.cfg.FirstFrameTimeout, err)}
		}
		return nil // a terminal's own bytes
	}
	if err := wholeV1Line(c.br); err != nil {
		_ = c.Conn.SetReadDeadline(time.Time{})
		if isTimeout(err) {
			return &proxyRefusal{ReasonProxyTimeout, fmt.Errorf("no complete header from %s within %s: %w", c.peer, c.l.cfg.FirstFrameTimeout, err)}
		}
		return &proxyRefusal{ReasonProxyInvalid, fmt.Errorf("header from %s cut short: %w", c.peer, err)}
	}
	h, err := proxyproto.Read(c.br)
	// The caller (the read loop, or the HTTP server) sets its own deadline next.
	_ = c.Conn.SetReadDeadline(time.Time{})
	switch {
	case errors.Is(err, proxyproto.ErrNoProxyProtocol):
		if required {
			return &proxyRefusal{ReasonProxyMissing, fmt.Errorf("trusted proxy %s sent no header, and one is required", c.peer)}
		}
		return nil
	case isTimeout(err):
		return &proxyRefusal{ReasonProxyTimeout, fmt.Errorf("no complete header from %s within %s: %w", c.peer, c.l.cfg.FirstFrameTimeout, err)}
	case err != nil:
		return &proxyRefusal{ReasonProxyInvalid, fmt.Errorf("header from %s: %w", c.peer, err)}
	}
	if h.Command.IsLocal() {
		return nil // the proxy's own connection (a health check): no client
	}
	src, ok := h.SourceAddr.(*net.TCPAddr)
	if !ok || src == nil {
		// A datagram or UNIX socket family. (A v1 UNKNOWN header comes back from
		// the library as LOCAL, above; a v2 PROXY one of family UNSPEC is its
		// error, invalid.)
		return &proxyRefusal{ReasonProxyInvalid, fmt.Errorf("header from %s names no TCP source address (%v)", c.peer, h.TransportProtocol)}
	}
	ap := src.AddrPort()
	c.remote = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	return nil
}

// proxySignature says whether br begins with the signature of a PROXY header,
// version 1 ("PROXY") or 2 (12 bytes), reading only as far as it takes to tell: a
// terminal's frame differs within its first bytes. It returns the read's error (a
// timeout at the deadline the caller set) when the bytes so far could begin
// either; an end of file then is no header.
func proxySignature(br *bufio.Reader) (bool, error) {
	agrees := func(b, sig []byte) bool { n := min(len(b), len(sig)); return bytes.Equal(b[:n], sig[:n]) }
	for {
		b, _ := br.Peek(br.Buffered())
		v1, v2 := agrees(b, proxyproto.SIGV1), agrees(b, proxyproto.SIGV2)
		switch {
		case !v1 && !v2:
			return false, nil
		case v1 && len(b) >= len(proxyproto.SIGV1), v2 && len(b) >= len(proxyproto.SIGV2):
			return true, nil
		}
		if _, err := br.Peek(len(b) + 1); err != nil {
			if errors.Is(err, io.EOF) {
				return false, nil
			}
			return false, err
		}
	}
}

// proxyV1 is the signature of a version 1 header.
const proxyV1 = "PROXY"

// proxyV1Max is the length of the longest version 1 header line, CRLF included.
const proxyV1Max = 107

// wholeV1Line waits until br buffers the whole line of a version 1 header (up to
// its LF, or proxyV1Max bytes), when what it buffers begins as one. The library
// refuses a version 1 header that its first read does not hold whole (its defence
// against a sender that trickles it, for servers without a deadline); the
// protocol asks receivers to tolerate a header split across TCP segments, and
// here the header's deadline, set by the caller, bounds the wait. It returns the
// read's error (a timeout at the deadline), nil when br holds the line or what it
// holds is no version 1 header.
func wholeV1Line(br *bufio.Reader) error {
	for {
		b, _ := br.Peek(br.Buffered())
		if n := min(len(b), len(proxyV1)); string(b[:n]) != proxyV1[:n] {
			return nil
		}
		if bytes.IndexByte(b, '\n') >= 0 || len(b) >= proxyV1Max {
			return nil
		}
		if _, err := br.Peek(len(b) + 1); err != nil {
			if errors.Is(err, io.EOF) {
				return nil // closed half way: the library says what is wrong
			}
			return err
		}
	}
}

// closeReason is why the connection closes when its header refused it, for the
// closed-connections counter of a listener of kind https (Metrics.ConnClosed), in
// the names a tcp listener's read loop gives (serverConn.proxyHeader):
// closedProxyRefused for a refusal, "first frame timeout" for a socket that sent
// nothing in time and needed no header; "" when the header passed or has not been
// read. It does no I/O.
func (c *proxiedConn) closeReason() string {
	switch r := c.refusal.Load(); {
	case r == nil:
		return ""
	case r.reason != "":
		return closedProxyRefused
	}
	return "first frame timeout"
}

// Read reads what follows the header (after reading the header the first time).
func (c *proxiedConn) Read(b []byte) (int, error) {
	if err := c.header(); err != nil {
		return 0, err
	}
	if c.br != nil {
		if c.br.Buffered() > 0 {
			return c.br.Read(b)
		}
		c.br = nil // drained: the socket's reads from now on
	}
	return c.Conn.Read(b)
}

// Write writes to the socket, unless the header refused the connection: then nothing
// goes back (the HTTP server's 400 to the bytes it could not read, say).
func (c *proxiedConn) Write(b []byte) (int, error) {
	if err := c.header(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

// RemoteAddr is the terminal's address the header names (the socket's peer without
// one). It reads the header first: the HTTP server asks for it on the connection's
// goroutine before reading a request.
func (c *proxiedConn) RemoteAddr() net.Addr {
	_ = c.header()
	return net.TCPAddrFromAddrPort(c.remote)
}

// addrPort is a's IP address (IPv4-mapped ones unmapped) and port; the zero
// AddrPort when a is not an IP address.
func addrPort(a net.Addr) netip.AddrPort {
	if a == nil {
		return netip.AddrPort{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// proxiedOf returns the proxiedConn under nc (a TLS connection's), or nil.
func proxiedOf(nc net.Conn) *proxiedConn {
	if tc, ok := nc.(interface{ NetConn() net.Conn }); ok {
		nc = tc.NetConn()
	}
	pc, _ := nc.(*proxiedConn)
	return pc
}

// socketPeer is the address of nc's peer at the socket, read without I/O: for a
// proxied connection the proxy's (RemoteAddr would wait for the header).
func socketPeer(nc net.Conn) netip.AddrPort {
	if pc := proxiedOf(nc); pc != nil {
		return pc.peer
	}
	return addrPort(nc.RemoteAddr())
}

// proxyRefused counts a connection refused for its PROXY header and logs the
// refusals at most once per refusalLogEvery (each line names the last one and how
// many since the last line). A refusal while the listener closes (its drain cut the
// header's read short) is neither.
func (l *Listener) proxyRefused(peer netip.AddrPort, r *proxyRefusal) {
	if l.isClosing() {
		return
	}
	if l.metrics != nil {
		l.metrics.ConnRefused(l.cfg.Name, r.reason)
	}
	now := time.Now()
	l.mu.Lock()
	l.proxyUnlogged++
	n := l.proxyUnlogged
	logIt := now.Sub(l.proxyLogged) >= refusalLogEvery
	if logIt {
		l.proxyUnlogged, l.proxyLogged = 0, now
	}
	l.mu.Unlock()
	if logIt {
		l.log.Warn().Str("reason", r.reason).Str("remote", peer.String()).Err(r.err).Int("refused", n).
			Msg("connections refused for their PROXY protocol header (see listeners[].proxy_protocol; switchyard_terminal_connections_refused_total counts them all)")
	}
}

// proxyHeader reads a proxied connection's header before its first frame and makes
// the terminal's address it names the connection's remote address: the connection
// then counts under it for the per-source limits, no longer under the proxy's (one
// past max_conns_per_source from that address is refused, as at accept). It returns
// why the connection closes, or "".
func (c *serverConn) proxyHeader(pc *proxiedConn) string {
	l := c.l
	err := pc.header()
	var r *proxyRefusal
	switch {
	case c.stopped.Load() || l.isClosing():
		return c.stopReason()
	case errors.As(err, &r) && r.reason == "":
		l.log.Debug().Uint64("conn", c.info.ID).Str("remote", c.info.Remote.String()).Dur("first_frame_timeout", l.cfg.FirstFrameTimeout).Msg("connection sent no frame in time; closed")
		return "first frame timeout"
	case err != nil:
		return closedProxyRefused
	case pc.remote == c.info.Remote:
		return ""
	}
	remote := pc.remote
	l.mu.Lock()
	if s := l.sources[remote.Addr()]; s != nil && s.conns >= l.cfg.MaxConnsPerSource {
		l.mu.Unlock()
		if l.metrics != nil {
			l.metrics.ConnRefused(l.cfg.Name, "per-source")
		}
		l.logRefused("per-source", remote.String()+" (through "+pc.peer.String()+")")
		return "per-source"
	}
	l.dropSource(c.info.Remote.Addr())
	c.src = l.addSource(remote.Addr())
	c.info.Remote = remote
	l.mu.Unlock()
	return ""
}
