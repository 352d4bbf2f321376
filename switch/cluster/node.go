package cluster

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/switchyard/switchyard/internal/boundfile"
)

// Options are what Start takes besides the configuration.
type Options struct {
	// Logger receives this package's and the embedded nats-server's log.
	Logger zerolog.Logger
}

// Timeouts of the lifecycle. The ready timeout applies when Start's context
// has no deadline of its own.
const (
	defaultReadyTimeout = 30 * time.Second
	connectTimeout      = 5 * time.Second
	drainTimeout        = 5 * time.Second
	jsPollInterval      = 50 * time.Millisecond
	jsProbeTimeout      = 2 * time.Second
)

// ErrNoQuorum is wrapped by Publish when JetStream acknowledged nothing within
// the deadline: the stream has no leader for want of a quorum of its replicas
// (or, less likely in a configured cluster, no stream takes the subject). A
// node that gets it must not approve: the write is not known to be durable.
// Nor is it known to be lost: a surviving replica may hold it and commit it
// when the quorum returns (TestThreeNodes sees this), so a retry must carry
// the same Nats-Msg-Id for the stream to store it once.
var ErrNoQuorum = errors.New("no JetStream acknowledgement: the stream has no quorum (or no stream takes this subject)")

// Node is this process's place in the cluster: the embedded nats-server, if
// any, and the client connection with its JetStream context. Close releases
// both.
type Node struct {
	cfg Config
	log zerolog.Logger
	srv *server.Server // nil in external mode
	// srvOpts are the options srv started with (ReviveJetStream reloads them).
	srvOpts *server.Options
	// natsLog is srv's logger (nil in external mode): it notes the store's
	// failed writes (storeWriteError).
	natsLog *natsLogger
	// sysPass is the password of the embedded server's system account user,
	// given to no one, for RemovePeer ("" when client_addr is none).
	sysPass string
	nc      *nats.Conn
	js      jetstream.JetStream

	ncClosed  chan struct{} // closed by the connection's ClosedHandler
	closeOnce sync.Once
	closeErr  error

	metrics atomic.Pointer[Metrics] // SetMetrics's; nil records nothing
}

// SetMetrics makes the node's streams (the journal, the state log, the
// store-and-forward queue) report their publishes to m.
func (n *Node) SetMetrics(m *Metrics) { n.metrics.Store(m) }

// Metrics returns what SetMetrics set (nil: nothing is recorded; a nil
// *Metrics takes every call).
func (n *Node) Metrics() *Metrics { return n.metrics.Load() }

// Start validates cfg, starts the embedded server (mode embedded) and waits
// until it is ready for connections, then connects to it in process, or
// connects to the external cluster (mode external). It does not wait for
// JetStream's quorum: call WaitJetStream for that. On error nothing is left
// running.
func Start(ctx context.Context, cfg Config, opts Options) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: opts.Logger, ncClosed: make(chan struct{})}
	var err error
	switch cfg.Mode {
	case ModeEmbedded:
		if n.srv, err = n.startServer(ctx, cfg.Embedded); err != nil {
			return nil, err
		}
		// In process, the URL only names the server: nats:// even when the client
		// port takes TLS alone (ClientURL says tls:// then), since the server lets
		// an in-process connection go without it.
		url := strings.Replace(n.srv.ClientURL(), "tls://", "nats://", 1)
		copts := append(n.connOptions(), nats.InProcessServer(n.srv))
		if n.srvOpts.Authorization != "" { // client_addr: none
			copts = append(copts, nats.Token(n.srvOpts.Authorization))
		}
		n.nc, err = nats.Connect(url, copts...)
		if err != nil {
			n.srv.Shutdown()
			n.srv.WaitForShutdown()
			return nil, fmt.Errorf("cluster: connect in process to the embedded NATS server %s: %w", cfg.Embedded.ServerName, err)
		}
	case ModeExternal:
		copts, err := cfg.External.authOptions()
		if err != nil {
			return nil, err
		}
		urls := strings.Join(cfg.External.URLs, ",")
		n.nc, err = nats.Connect(urls, append(n.connOptions(), copts...)...)
		if err != nil {
			return nil, fmt.Errorf("cluster: connect to the external NATS cluster at %s (cluster.external.urls): %w", urls, err)
		}
	}
	if n.js, err = jetstream.New(n.nc); err != nil {
		n.Close()
		return nil, fmt.Errorf("cluster: JetStream context: %w", err)
	}
	n.log.Info().Str("mode", cfg.Mode).Str("server", n.nc.ConnectedServerName()).Msg("connected to NATS")
	return n, nil
}

// connOptions are the client options of both modes: reconnect forever (the
// node must resume by itself when its servers return), log the connection's
// events, and signal its end to Close.
func (n *Node) connOptions() []nats.Option {
	name := "switchyard"
	if n.cfg.Mode == ModeEmbedded {
		name += "-" + n.cfg.Embedded.ServerName
	}
	return []nats.Option{
		nats.Name(name),
		nats.Timeout(connectTimeout),
		nats.MaxReconnects(-1),
		nats.DrainTimeout(drainTimeout),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				n.log.Warn().Err(err).Msg("NATS connection lost; reconnecting")
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			n.log.Info().Str("server", c.ConnectedUrlRedacted()).Msg("NATS connection restored")
		}),
		nats.ErrorHandler(func(_ *nats.Conn, s *nats.Subscription, err error) {
			ev := n.log.Error().Err(err)
			if s != nil {
				ev = ev.Str("subject", s.Subject)
			}
			ev.Msg("NATS asynchronous error")
		}),
		nats.ClosedHandler(func(*nats.Conn) { close(n.ncClosed) }),
	}
}

// startServer starts the embedded nats-server and waits until it accepts
// client and route connections, or ctx ends.
func (n *Node) startServer(ctx context.Context, e Embedded) (*server.Server, error) {
	log := n.log
	so := &server.Options{
		ServerName: e.ServerName,
		JetStream:  true,
		StoreDir:   e.StoreDir,
		NoSigs:     true, // the process's signals belong to switchyard serve
	}
	var err error
	if e.ClientAddr == ClientAddrNone {
		// nats-server cannot route without its client listener (DontListen leaves
		// its routing waiting for it), so it listens on a loopback port of the
		// kernel's choosing and takes only a token made here, kept in memory and
		// given to the node's own in-process connection alone. (No system
		// account user: nats-server would then let anyone in as the global
		// account's user it adds; RemovePeer is asked of another node.)
		so.Host, so.Port = "127.0.0.1", server.RANDOM_PORT
		if so.Authorization, err = newPassword(); err != nil {
			return nil, err
		}
		// Nor do the peers hand that port to their own clients as a server to
		// fail over to.
		so.Cluster.NoAdvertise = true
	} else if so.Host, so.Port, err = hostPort(e.ClientAddr); err != nil {
		return nil, fmt.Errorf("cluster.embedded.client_addr: %w", err)
	} else {
		// A user of the system account, whose password is made here, kept in
		// memory and given to no one (RemovePeer's requests, which only the
		// system account may take). With the system account the only one
		// configured, nats-server adds a user of the global account, which holds
		// the streams, for everyone connecting without credentials (its
		// NoAuthUser), as before; JetStream stays the global account's alone.
		if n.sysPass, err = newPassword(); err != nil {
			return nil, err
		}
		// Held hashed (a plain one makes the server warn in its log).
		hash, err := bcrypt.GenerateFromPassword([]byte(n.sysPass), bcrypt.MinCost)
		if err != nil {
			return nil, fmt.Errorf("cluster: the embedded server's system password: %w", err)
		}
		sys := server.NewAccount(server.DEFAULT_SYSTEM_ACCOUNT)
		so.Accounts, so.SystemAccount = []*server.Account{sys}, server.DEFAULT_SYSTEM_ACCOUNT
		so.Users = []*server.User{{Username: sysUser, Password: string(hash), Account: sys}}
	}
	if len(e.Routes) > 0 {
		so.Cluster.Name = e.ClusterName
		if so.Cluster.Host, so.Cluster.Port, err = hostPort(e.ClusterAddr); err != nil {
			return nil, fmt.Errorf("cluster.embedded.cluster_addr: %w", err)
		}
		so.Cluster.Advertise = e.ClusterAdvertise
		for i, r := range e.Routes {
			u, err := parseRoute(r)
			if err != nil {
				return nil, fmt.Errorf("cluster.embedded.routes[%d]: %w", i, err)
			}
			so.Routes = append(so.Routes, u)
		}
	}
	if e.TLS.Enabled() {
		// A configuration each for the client port and the routes, as nats-server's
		// own configuration file gives them.
		if so.TLSConfig, err = e.TLS.serverConfig(); err != nil {
			return nil, err
		}
		// TLSConfig requires and verifies the client's certificate; TLS and TLSVerify
		// say so in the server's INFO, as its configuration file would.
		so.TLS, so.TLSVerify, so.TLSTimeout = true, true, tlsHandshakeTimeout.Seconds()
		if len(e.Routes) > 0 {
			if so.Cluster.TLSConfig, err = e.TLS.serverConfig(); err != nil {
				return nil, err
			}
			so.Cluster.TLSTimeout = tlsHandshakeTimeout.Seconds()
		}
	}
	if err := os.MkdirAll(e.StoreDir, 0o700); err != nil {
		return nil, fmt.Errorf("cluster.embedded.store_dir: %w", err)
	}
	n.srvOpts = so.Clone() // before NewServer sets its defaults in so
	s, err := server.NewServer(so)
	if err != nil {
		return nil, fmt.Errorf("cluster: embedded NATS server %s: %w", e.ServerName, err)
	}
	bridge := &natsLogger{l: log}
	n.natsLog = bridge
	// Debug lines only when this logger would write them (its own level and the
	// global one: a zerolog.New logger's own level is Trace until set). Never the
	// server's message trace: it formats every message routed (20-25% of a node's
	// CPU when on: docs/cluster.md) and would write the messages' payloads, journal
	// records, to the log.
	level := max(log.GetLevel(), zerolog.GlobalLevel())
	s.SetLoggerV2(bridge, level <= zerolog.DebugLevel, false, false)
	// Start returns once the listeners' loops and JetStream (its store
	// recovered) are started; those goroutines belong to the server, which
	// counts them and joins them in Shutdown.
	s.Start()
	for !s.ReadyForConnections(100 * time.Millisecond) {
		if ctx.Err() != nil || bridge.fatal.Load() != nil {
			s.Shutdown()
			s.WaitForShutdown()
			why := "context ended"
			if f := bridge.fatal.Load(); f != nil {
				why = *f
				// nats-server's words for its two listeners, as the keys that set them.
				switch {
				case strings.HasPrefix(why, "Error listening on router port"):
					why = "cluster.embedded.cluster_addr: " + why
				case strings.HasPrefix(why, "Error listening on port"):
					why = "cluster.embedded.client_addr: " + why
				}
			}
			return nil, fmt.Errorf("cluster: embedded NATS server %s (client %s, cluster %s) not ready for connections: %s",
				e.ServerName, e.ClientAddr, e.ClusterAddr, why)
		}
	}
	return s, nil
}

// sysUser is the embedded server's system account user (see startServer).
const sysUser = "switchyard-system"

// newPassword makes a password of 32 random bytes, in hex.
func newPassword() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("cluster: the embedded server's passwords: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// CheckFiles reads the files the configuration names as a node's start would,
// without starting anything (switchyard config check): the embedded server's TLS
// files (each present, the key not readable by others, the certificate and key a
// pair, a PEM certificate in the CA file), or an external cluster's TLS files and
// credential. Its errors name the key at fault, as the start's do.
func (c *Config) CheckFiles() error {
	switch c.Mode {
	case ModeEmbedded:
		if c.Embedded.TLS.Enabled() {
			_, err := c.Embedded.TLS.serverConfig()
			return err
		}
	case ModeExternal:
		_, err := c.External.authOptions()
		return err
	}
	return nil
}

// tlsHandshakeTimeout bounds the embedded server's TLS handshakes (routes and
// client port); nats-server's own default is 2 s.
const tlsHandshakeTimeout = 2 * time.Second

// serverConfig reads the embedded server's TLS files into a configuration that
// presents the node's certificate and requires and verifies the other end's (the
// same CA for the routes, both ways, and the client port). The key file must not
// be readable by others. Each file is read once, within boundfile.MaxPEMBytes (a
// device or a FIFO named by mistake is refused with its key), and the
// configuration is built from what was read: what nats-server's GenTLSConfig
// would build from the files (TLS 1.2 at least, Go's default suites and curves),
// without it reading them again unbounded.
func (t EmbeddedTLS) serverConfig() (*tls.Config, error) {
	data := make(map[string][]byte, 3)
	for _, f := range t.files() {
		fi, err := os.Stat(f.path)
		if err != nil {
			return nil, fmt.Errorf("cluster.embedded.tls.%s: %w", f.key, err)
		}
		if f.key == "key_file" && fi.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("cluster.embedded.tls.key_file: %s is readable by others (mode %v); chmod 600 it", f.path, fi.Mode().Perm())
		}
		if data[f.key], err = boundfile.Read(f.path, boundfile.MaxPEMBytes); err != nil {
			return nil, fmt.Errorf("cluster.embedded.tls.%s: %w", f.key, err)
		}
	}
	defer clear(data["key_file"])
	cert, err := tls.X509KeyPair(data["cert_file"], data["key_file"])
	if err != nil {
		return nil, fmt.Errorf("cluster.embedded.tls.cert_file and key_file (%s, %s): %w", t.CertFile, t.KeyFile, err)
	}
	if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
		return nil, fmt.Errorf("cluster.embedded.tls.cert_file: %s: %w", t.CertFile, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data["ca_file"]) {
		return nil, fmt.Errorf("cluster.embedded.tls.ca_file: %s holds no PEM certificate", t.CAFile)
	}
	// A route's node is client and server both: the CA also verifies the peer it
	// dials (nats-server's own cluster configuration does the same).
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, RootCAs: pool}, nil
}

// hostPort splits addr into nats-server's host and port; port 0 becomes
// nats-server's random port (its 0 means "the default port").
func hostPort(addr string) (string, int, error) {
	p, err := parseHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	host, _, _ := net.SplitHostPort(addr)
	if p == 0 {
		p = server.RANDOM_PORT
	}
	return host, p, nil
}

// authOptions reads the external mode's TLS and credential files.
func (x External) authOptions() ([]nats.Option, error) {
	var o []nats.Option
	// The TLS files are read at each connection (a renewed certificate is used
	// by the next reconnection), as nats.RootCAs and nats.ClientCert do, but
	// within boundfile.MaxPEMBytes, with errors that name the key; they are read
	// once here too, so that config check and a start with a bad file fail at once.
	var certCB nats.TLSCertHandler
	var casCB nats.RootCAsHandler
	if x.TLSCAFile != "" {
		casCB = func() (*x509.CertPool, error) {
			b, err := boundfile.Read(x.TLSCAFile, boundfile.MaxPEMBytes)
			if err != nil {
				return nil, fmt.Errorf("cluster.external.tls_ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(b) {
				return nil, fmt.Errorf("cluster.external.tls_ca_file: %s holds no PEM certificate", x.TLSCAFile)
			}
			return pool, nil
		}
	}
	if x.TLSCertFile != "" {
		certCB = func() (tls.Certificate, error) {
			cert, err := boundfile.KeyPair(x.TLSCertFile, x.TLSKeyFile)
			if err == nil {
				cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0])
			}
			if err != nil {
				return tls.Certificate{}, fmt.Errorf("cluster.external.tls_cert_file and tls_key_file (%s, %s): %w", x.TLSCertFile, x.TLSKeyFile, err)
			}
			return cert, nil
		}
	}
	if certCB != nil || casCB != nil {
		// Smoke test here: nats.Connect would only report the error on connecting.
		if casCB != nil {
			if _, err := casCB(); err != nil {
				return nil, err
			}
		}
		if certCB != nil {
			if _, err := certCB(); err != nil {
				return nil, err
			}
		}
		o = append(o, nats.ClientTLSConfig(certCB, casCB))
	}
	secret := func(key, f string) ([]byte, error) {
		fi, err := os.Stat(f)
		if err != nil {
			return nil, fmt.Errorf("cluster.external.%s: %w", key, err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("cluster.external.%s: %s is readable by others (mode %v); chmod 600 it", key, f, fi.Mode().Perm())
		}
		b, err := boundfile.Read(f, boundfile.MaxSecretBytes)
		if err != nil {
			return nil, fmt.Errorf("cluster.external.%s: %w", key, err)
		}
		return b, nil
	}
	switch {
	case x.CredentialsFile != "":
		if _, err := secret("credentials_file", x.CredentialsFile); err != nil {
			return nil, err
		}
		o = append(o, nats.UserCredentials(x.CredentialsFile))
	case x.NKeySeedFile != "":
		if _, err := secret("nkey_seed_file", x.NKeySeedFile); err != nil {
			return nil, err
		}
		opt, err := nats.NkeyOptionFromSeed(x.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("cluster.external.nkey_seed_file: %w", err)
		}
		o = append(o, opt)
	case x.TokenFile != "":
		b, err := secret("token_file", x.TokenFile)
		if err != nil {
			return nil, err
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return nil, fmt.Errorf("cluster.external.token_file: %s is empty", x.TokenFile)
		}
		o = append(o, nats.Token(tok))
	}
	return o, nil
}

// TryWait is how long the try'th (from 0) of a request repeated at a node's
// start waits for its answer: 2 s, then 4 s and 8 s, and 10 s from then on. At a
// cluster's start a request can go unanswered while a leader is elected (a stream
// created, a bucket): it is asked again soon instead of after a fixed 10 s. One
// that needs long (a catch-up of many records) gets longer each time.
func TryWait(try int) time.Duration {
	if try >= 3 {
		return tryWaitMax
	}
	return min(tryWaitFirst<<try, tryWaitMax)
}

const (
	tryWaitFirst = 2 * time.Second
	tryWaitMax   = 10 * time.Second
)

// WaitJetStream waits until JetStream answers on this node's connection, which
// in a cluster means the meta group has a leader (a quorum of its servers is
// up), and, in embedded mode, this server has caught up with it. It polls
// until ctx ends and then says what it last saw. Every waitReportEvery of the
// wait it logs at warn level what it last saw and how many peers this server
// is routed to, so that an operator whose node waits (its peers not started,
// or routes that reach none of them) learns why before the start gives up.
func (n *Node) WaitJetStream(ctx context.Context) error {
	t := time.NewTicker(jsPollInterval)
	defer t.Stop()
	start := time.Now()
	report := start.Add(waitReportEvery)
	var last error
	for {
		last = n.jetStreamReady(ctx)
		if last == nil {
			return nil
		}
		if now := time.Now(); now.After(report) {
			report = now.Add(waitReportEvery)
			n.log.Warn().Err(last).Dur("waited", now.Sub(start).Round(time.Second)).
				Msgf("still waiting for JetStream on %s%s", n.name(), n.routesSeen())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: JetStream not ready on %s when the wait ended: %w%s", n.name(), last, n.routesSeen())
		case <-t.C:
		}
	}
}

// waitReportEvery is how often WaitJetStream logs that it still waits (a
// variable for tests).
var waitReportEvery = 10 * time.Second

// routesSeen says, for an embedded server with routes, how many other servers it
// is routed to and what to check ("" otherwise).
func (n *Node) routesSeen() string {
	if n.srv == nil || len(n.cfg.Embedded.Routes) == 0 {
		return ""
	}
	return fmt.Sprintf(" (this server is routed to %d other servers of %d routes configured; check that a majority of them runs and that cluster.embedded.routes reach them)",
		n.srv.NumRemotes(), len(n.cfg.Embedded.Routes))
}

func (n *Node) jetStreamReady(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, jsProbeTimeout)
	defer cancel()
	if _, err := n.js.AccountInfo(pctx); err != nil {
		return fmt.Errorf("no meta leader answers (an election after a server was lost takes 4 to 9 s; for longer, the JetStream quorum is lost): %w", err)
	}
	if n.srv == nil {
		return nil
	}
	if !n.srv.JetStreamIsCurrent() {
		return errors.New("this server has not caught up with the meta leader")
	}
	if n.srv.JetStreamIsClustered() {
		if leader := n.metaLeader(); leader == "" {
			return errors.New("this server knows no meta leader")
		}
	}
	return nil
}

// metaLeader is the embedded server's view of the JetStream meta leader.
func (n *Node) metaLeader() string {
	if n.srv == nil {
		return ""
	}
	jsz, err := n.srv.Jsz(&server.JSzOptions{})
	if err != nil || jsz.Meta == nil {
		return ""
	}
	return jsz.Meta.Leader
}

func (n *Node) name() string {
	if n.srv != nil {
		return n.srv.Name()
	}
	if u, err := url.Parse(n.nc.ConnectedUrlRedacted()); err == nil && u.Host != "" {
		return u.Host
	}
	return "the external NATS cluster"
}

// Publish publishes data to subject and waits for JetStream's acknowledgement
// until ctx ends. msgID, when not empty, is the Nats-Msg-Id the stream
// deduplicates on. A publish nobody acknowledged wraps ErrNoQuorum.
func (n *Node) Publish(ctx context.Context, subject string, data []byte, msgID string) (*jetstream.PubAck, error) {
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	ack, err := n.js.Publish(ctx, subject, data, opts...)
	if err == nil {
		return ack, nil
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
		return nil, fmt.Errorf("cluster: publish to %q: %w: %w", subject, ErrNoQuorum, err)
	}
	return nil, fmt.Errorf("cluster: publish to %q: %w", subject, err)
}

// JetStream is the node's JetStream context, for the stores built on this
// package (journal, queues, buckets); the pipeline never sees it.
func (n *Node) JetStream() jetstream.JetStream { return n.js }

// Conn is the node's NATS connection.
func (n *Node) Conn() *nats.Conn { return n.nc }

// ServerName is this node's server name in embedded mode, or the name of the
// server its connection is on in external mode.
func (n *Node) ServerName() string {
	if n.srv != nil {
		return n.srv.Name()
	}
	return n.nc.ConnectedServerName()
}

// apiIdlePoll is how often waitAPIIdle looks at the server's API counter.
const apiIdlePoll = 5 * time.Millisecond

// waitAPIIdle waits, up to limit, until the embedded server has no JetStream API
// request in flight. nats-server v2.15.2 handles those requests on a pool of
// its own goroutines (server/jetstream_api.go, processJSAPIRoutedRequests), and
// a stream it creates is registered with its account last
// (Account.addStreamWithAssignmentAndMode: jsa.streams[cfg.Name] = mset after
// setupStore). Shutdown stops the streams its account holds when it gets there
// (shutdownJetStream, jsAccount.delete), so a stream whose creation is still
// running then keeps its file store and the store's goroutines (its state
// flush loop, the ats access-time ticker) for good. The connection's Drain has
// by now delivered this node's requests, including those whose caller gave up
// waiting (a try of LeaseKV that timed out), so once the counter is zero none
// of ours is left. The server offers no notification: polled.
func (n *Node) waitAPIIdle(limit time.Duration) {
	deadline := time.Now().Add(limit)
	for {
		jsz, err := n.srv.Jsz(&server.JSzOptions{})
		if err != nil || jsz.Disabled || jsz.API.Inflight == 0 {
			return
		}
		if time.Now().After(deadline) {
			n.log.Warn().Uint64("inflight", jsz.API.Inflight).Dur("waited", limit).
				Msg("JetStream API requests still in flight at shutdown; a stream they create may not be closed")
			return
		}
		time.Sleep(apiIdlePoll)
	}
}

// Close drains the connection (pending publishes and subscriptions finish, up
// to the drain timeout), waits (up to the drain timeout too) until the embedded
// server has answered every JetStream API request it holds, then shuts it down
// and waits until all its goroutines have ended. It is safe to call more than once.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		if n.nc != nil {
			if err := n.nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
				n.closeErr = fmt.Errorf("cluster: drain the NATS connection: %w", err)
				n.nc.Close()
			}
			<-n.ncClosed // Drain closes the connection when done or at its timeout
		}
		if n.srv != nil {
			n.waitAPIIdle(drainTimeout)
			n.srv.Shutdown()
			n.srv.WaitForShutdown()
		}
		n.log.Info().Str("server", n.name()).Msg("left the NATS cluster")
	})
	return n.closeErr
}
