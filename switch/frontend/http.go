package frontend

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// ContentTypeTPDU is the content type of terminal messages carried over HTTPS, as
// some acquirers front their UnionPay-style terminals.
const ContentTypeTPDU = "x-ISO-TPDU/x-auth"

// httpWriteTimeout bounds the write of an answer over HTTP (a terminal that stopped
// reading), as the TCP listener's write deadline does.
const httpWriteTimeout = 30 * time.Second

// newHTTP makes the listener serve terminal messages as HTTP(S) POST bodies
// (Config.HTTP): one message per request, the answer in the response body. A body
// may carry the 2-byte length of the TCP framing or not; the answer does the same.
func (l *Listener) newHTTP() {
	l.httpSrv = &http.Server{
		Handler:           http.HandlerFunc(l.serveHTTP),
		ReadHeaderTimeout: l.cfg.FirstFrameTimeout,
		ReadTimeout:       l.cfg.FirstFrameTimeout,
		WriteTimeout:      httpWriteTimeout, // moved on when the answer is ready (serveHTTP)
		IdleTimeout:       l.cfg.IdleTimeout,
		MaxHeaderBytes:    8 << 10,
		// The server's own errors (a TLS handshake that failed: a scanner, a
		// terminal with the wrong CA) go to the listener's log, sampled; with nil
		// they went to the standard logger, one unthrottled line each.
		ErrorLog: log.New(httpErrorLog{l.log.Sample(&zerolog.BurstSampler{Burst: httpErrorBurst, Period: time.Second})}, "", 0),
		// Each request finds its connection's source (MaxInFlightPerSource) in
		// its context: set once per connection, not looked up per request.
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if tc, ok := c.(*tls.Conn); ok {
				c = tc.NetConn()
			}
			if lc, ok := c.(*limitedConn); ok {
				return context.WithValue(ctx, sourceKey{}, lc)
			}
			return ctx
		},
	}
}

// httpErrorBurst is how many of the HTTP server's own error lines a listener logs a
// second.
const httpErrorBurst = 5

// httpErrorLog writes the HTTP server's error lines (http.Server.ErrorLog) to the
// listener's zerolog logger, at warn.
type httpErrorLog struct{ log zerolog.Logger }

func (w httpErrorLog) Write(p []byte) (int, error) {
	w.log.Warn().Str("error", strings.TrimSpace(string(p))).Msg("https listener: connection failed")
	return len(p), nil
}

// sourceKey is the context key of an HTTP connection's *limitedConn.
type sourceKey struct{}

func (l *Listener) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST a terminal message", http.StatusMethodNotAllowed)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != ContentTypeTPDU {
		l.protoErr("http-content-type")
		http.Error(w, fmt.Sprintf("Content-Type %q, want %s", ct, ContentTypeTPDU), http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(l.cfg.MaxBody)+3))
	if err != nil {
		http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
		return
	}
	framed := len(body) >= 2 && int(binary.BigEndian.Uint16(body)) == len(body)-2
	if framed {
		body = body[2:]
	}
	if len(body) == 0 || len(body) > l.cfg.MaxBody {
		l.protoErr("frame-too-long")
		http.Error(w, fmt.Sprintf("message of %d bytes (at most %d)", len(body), l.cfg.MaxBody), http.StatusRequestEntityTooLarge)
		return
	}
	read := time.Now()
	info := Conn{ID: l.nextID.Add(1), Listener: l.cfg.Name, Dialect: l.cfg.Dialect}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		info.Remote = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	var resp Response
	var src *source
	if lc, _ := r.Context().Value(sourceKey{}).(*limitedConn); lc != nil {
		src = lc.source()
	}
	if src != nil && !l.admit(src) {
		resp, err = l.refuseRequest(&info, body)
	} else {
		if src != nil {
			defer src.inFlight.Add(-1)
		}
		if l.limit != nil {
			l.limit <- struct{}{}
			defer func() { <-l.limit }()
		}
		l.reqs.Add(1)
		l.inProgress.Add(1)
		defer func() {
			l.inProgress.Add(-1)
			l.reqs.Done()
		}()
		resp, err = l.proc.Process(l.ctx, &info, body)
	}
	if err != nil {
		l.log.Warn().Uint64("conn", info.ID).Str("remote", info.Remote.String()).Err(err).Msg("unanswerable request over HTTP")
		l.protoErr("unanswerable")
		http.Error(w, "unanswerable message", http.StatusBadRequest)
		return
	}
	if resp.Body == nil {
		if resp.Sent != nil {
			resp.Sent(false)
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	out := resp.Body
	if framed {
		out = AppendFrame(make([]byte, 0, len(out)+2), out)
	}
	// The delivery reported is the write's: a terminal already gone (net/http cancels
	// the request's context when its connection closes) is not written to, and the
	// flush's error counts, which http.Flusher drops (an answer in net/http's buffer
	// was reported delivered whatever became of it, and an approval the terminal
	// never got stood). The write gets 30 s from now, not from the request's arrival:
	// the server's WriteTimeout counts from there, and a request may take longer
	// (an issuer's timeout may be up to 2 minutes).
	rc := http.NewResponseController(w)
	if err = r.Context().Err(); err == nil {
		_ = rc.SetWriteDeadline(time.Now().Add(httpWriteTimeout))
		w.Header().Set("Content-Type", ContentTypeTPDU)
		if _, err = w.Write(out); err == nil {
			err = rc.Flush()
		}
	}
	if err != nil {
		l.log.Info().Uint64("conn", info.ID).Str("remote", info.Remote.String()).Err(err).Msg("answer over HTTP not delivered")
	}
	if l.turnaround != nil && err == nil {
		l.turnaround(time.Since(read).Seconds())
	}
	if resp.Sent != nil {
		resp.Sent(err == nil)
	}
}

// limitedListener applies the listener's connection limits (MaxConns,
// MaxConnsPerSource) to the connections the HTTP server accepts, as Serve does to
// its own: one past a limit is closed at once, and counted. Without it a listener of
// kind https kept neither limit, and one host could use up the process's file
// descriptors (TestHTTPListenerConnectionLimits).
type limitedListener struct {
	net.Listener
	l *Listener
}

// Accept returns the next connection within the limits.
func (ll *limitedListener) Accept() (net.Conn, error) {
	l := ll.l
	for {
		nc, err := ll.Listener.Accept()
		if err != nil {
			return nil, err
		}
		// The socket's peer, without I/O: with ProxyProtocol the header is read on
		// the connection's goroutine (the HTTP server's RemoteAddr), and the
		// connection moves to the terminal's address then (limitedConn.move).
		src := socketPeer(nc).Addr()
		l.mu.Lock()
		if reason := l.refuse(src); reason != "" {
			l.mu.Unlock()
			l.refused(nc, reason)
			continue
		}
		l.httpOpen++
		s := l.addSource(src)
		l.mu.Unlock()
		if l.metrics != nil {
			l.metrics.ConnOpened(l.cfg.Name)
		}
		return &limitedConn{Conn: nc, l: l, src: src, s: s}, nil
	}
}

// limitedConn gives its place back under the limits when it is closed.
type limitedConn struct {
	net.Conn
	l *Listener
	// src and s are the address it counts under and its source: the socket's peer
	// from the accept, then the terminal's a PROXY header named (move). src and
	// closed are guarded by the listener's mu.
	src    netip.Addr
	s      *source
	closed bool
	once   sync.Once
	moved  sync.Once
	// refused is set when the terminal a PROXY header named already has
	// MaxConnsPerSource connections: nothing is read from or written to the
	// connection, which the HTTP server then closes.
	refused atomic.Bool
}

// errPerSource is the error of reads and writes on a connection refused for its
// terminal's per-source limit once its PROXY header named the terminal.
var errPerSource = errors.New("connection refused: its terminal has max_conns_per_source connections already")

// move reads a proxied connection's PROXY header (once) and moves the connection
// from the socket peer's (the proxy's) source to that of the terminal the header
// names, under the per-source limit as at accept: one past max_conns_per_source
// from the terminal's address is refused (counted and logged as per-source, as
// on a tcp listener). Without the check (the limit counted at accept only,
// against the proxy's address) a terminal behind a proxy could hold any number of
// connections.
func (c *limitedConn) move() {
	c.moved.Do(func() {
		pc, _ := c.Conn.(*proxiedConn)
		if pc == nil || pc.header() != nil {
			return
		}
		remote := pc.remote.Addr()
		l := c.l
		l.mu.Lock()
		if c.closed || !remote.IsValid() || remote == c.src {
			l.mu.Unlock()
			return
		}
		if s := l.sources[remote]; s != nil && s.conns >= l.cfg.MaxConnsPerSource {
			l.mu.Unlock()
			c.refused.Store(true)
			if l.metrics != nil {
				l.metrics.ConnRefused(l.cfg.Name, "per-source")
			}
			l.logRefused("per-source", pc.remote.String()+" (through "+pc.peer.String()+")")
			return
		}
		l.dropSource(c.src)
		c.src, c.s = remote, l.addSource(remote)
		l.mu.Unlock()
	})
}

// RemoteAddr is the connection's remote address: with ProxyProtocol the
// terminal's, its header read, and the connection moved to it under the limits
// (move). The HTTP server asks for it first, on the connection's goroutine.
func (c *limitedConn) RemoteAddr() net.Addr {
	a := c.Conn.RemoteAddr()
	c.move()
	return a
}

// Read reads from the connection, unless move refused it.
func (c *limitedConn) Read(b []byte) (int, error) {
	if c.move(); c.refused.Load() {
		return 0, errPerSource
	}
	return c.Conn.Read(b)
}

// Write writes to the connection, unless move refused it (then nothing goes back,
// not even the HTTP server's 400 to the request it could not read).
func (c *limitedConn) Write(b []byte) (int, error) {
	if c.move(); c.refused.Load() {
		return 0, errPerSource
	}
	return c.Conn.Write(b)
}

// source returns the connection's source, that of the terminal a PROXY header
// named (move), for the per-source limit of requests in flight.
func (c *limitedConn) source() *source {
	c.move()
	return c.s
}

// Close closes the connection and, the first time, counts it closed, with the
// reason a tcp listener gives for the same close (closeReason).
func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		l := c.l
		l.mu.Lock()
		l.httpOpen--
		l.dropSource(c.src)
		c.closed = true
		l.mu.Unlock()
		if l.metrics != nil {
			l.metrics.ConnClosed(l.cfg.Name, c.closeReason())
		}
	})
	return err
}

// closeReason is the reason the closed-connections counter gives a connection: as
// on a tcp listener, "per-source" for one its terminal's per-source limit refused
// (move), the PROXY header's refusal (proxiedConn.closeReason: "proxy header
// refused", or "first frame timeout" for a silent socket), and "closed" for any
// other (the HTTP server does not say why it closes a connection), a drain's
// included. Before, every close was "closed", the PROXY refusals too.
func (c *limitedConn) closeReason() string {
	if c.refused.Load() {
		return "per-source"
	}
	if pc, _ := c.Conn.(*proxiedConn); pc != nil && !c.l.isClosing() {
		if r := pc.closeReason(); r != "" {
			return r
		}
	}
	return "closed"
}

// serveHTTPConns runs the HTTP server on the listening socket until Close or Drain.
func (l *Listener) serveHTTPConns() error {
	err := l.httpSrv.Serve(l.ln)
	if errors.Is(err, http.ErrServerClosed) || l.isClosing() {
		return nil
	}
	return err
}

// drainHTTP stops accepting and waits for the requests in progress, up to ctx.
func (l *Listener) drainHTTP(ctx context.Context) error {
	l.mu.Lock()
	l.closing = true
	l.mu.Unlock()
	l.stop()
	defer l.workers.stop() // its reaper (Close)
	if err := l.httpSrv.Shutdown(ctx); err != nil {
		_ = l.httpSrv.Close()
		return fmt.Errorf("listener %s: drain: %w", l.cfg.Name, err)
	}
	return nil
}
