package server

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync/atomic"

	"github.com/switchyard/switchyard/internal/boundfile"
	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/metrics"
)

// certFiles is a certificate the switch presents, read from its files at start and
// again by each reload (SIGHUP, Server.Reload): a terminal listener's (with the
// client CAs it verifies terminals with, when it has a client_ca_file) or the
// switch's client certificate to the payShield HSMs. The handshakes that begin
// after a reload present what the reload read (GetConfigForClient,
// GetClientCertificate); the connections already up keep theirs. A reload whose
// files do not load (missing, not PEM, a key that is not the certificate's, not a
// regular file or over boundfile.MaxPEMBytes) keeps the running certificate and
// says why.
type certFiles struct {
	what                      string // the configuration key, for the log and errors: "listener tls-terminals", "hsm"
	use                       string // metrics.CertUseListener or metrics.CertUseHSMClient
	listener                  string // the listener's name (listener use only)
	certFile, keyFile, caFile string
	m                         *metrics.Metrics
	cur                       atomic.Pointer[loadedCert]
}

// loadedCert is one load of a certFiles: what the handshakes use until the next.
type loadedCert struct {
	cert   tls.Certificate
	chain  []*x509.Certificate // cert's chain, parsed (leaf first)
	cas    []*x509.Certificate // the client CAs (listener with a client CA file only)
	server *tls.Config         // a listener's configuration for a handshake
}

// newListenerCert loads a listener's certificate and client CAs (t) and returns
// the listener's TLS configuration, which serves, to each handshake, what the
// last load (start or reload) read; the expiry gauge holds its certificates
// (switchyard_tls_certificate_expiry_timestamp_seconds, uses listener and
// listener_client_ca).
func newListenerCert(t *config.TLS, m *metrics.Metrics, listener string) (*certFiles, *tls.Config, error) {
	c := &certFiles{what: "listener " + listener, use: metrics.CertUseListener, listener: listener,
		certFile: t.CertFile, keyFile: t.KeyFile, caFile: t.ClientCAFile, m: m}
	if err := c.reload(); err != nil {
		return nil, nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12,
		// The whole configuration per handshake, not GetCertificate alone: the
		// client CAs are read again by a reload too.
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return c.cur.Load().server, nil },
	}
	return c, cfg, nil
}

// newClientCert loads a client certificate (the HSM link's: what, use) and sets
// GetClientCertificate in tc to present the last load's to each handshake.
func newClientCert(what, use, certFile, keyFile string, m *metrics.Metrics, tc *tls.Config) (*certFiles, error) {
	c := &certFiles{what: what, use: use, certFile: certFile, keyFile: keyFile, m: m}
	if err := c.reload(); err != nil {
		return nil, err
	}
	tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return &c.cur.Load().cert, nil
	}
	return c, nil
}

// reload reads the files again; on success the next handshakes use them and the
// expiry gauge holds their certificates (the replaced ones' series removed, so that
// a renewed certificate clears its expiry alert). On failure nothing changes.
func (c *certFiles) reload() error {
	cert, err := boundfile.KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("%s: tls cert_file %s, key_file %s: %w", c.what, c.certFile, c.keyFile, err)
	}
	chain, err := metrics.ParseCertificatesDER(cert.Certificate)
	if err != nil {
		return fmt.Errorf("%s: tls cert_file %s: %w", c.what, c.certFile, err)
	}
	l := &loadedCert{cert: cert, chain: chain}
	if c.use == metrics.CertUseListener {
		l.server = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if c.caFile != "" {
			pem, err := boundfile.Read(c.caFile, boundfile.MaxPEMBytes)
			if err != nil {
				return fmt.Errorf("%s: tls client_ca_file: %w", c.what, err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return fmt.Errorf("%s: tls client CA %s: no certificate found", c.what, c.caFile)
			}
			l.server.ClientCAs, l.server.ClientAuth = pool, tls.RequireAndVerifyClientCert
			l.cas = metrics.ParseCertificatesPEM(pem)
		}
	}
	c.cur.Store(l)
	c.m.CertificatesReplaced(c.use, c.listener, chain)
	if c.use == metrics.CertUseListener {
		c.m.CertificatesReplaced(metrics.CertUseListenerClientCA, c.listener, l.cas)
	}
	return nil
}

// leaf is the certificate in force (its chain's first).
func (c *certFiles) leaf() *x509.Certificate { return c.cur.Load().chain[0] }
