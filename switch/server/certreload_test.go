package server

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/devpki"
	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/internal/testswitch"
	"github.com/switchyard/switchyard/switch/metrics"
)

// TestListenerCertificateReload: a TLS listener's certificate renewed in place
// (new files at the configured paths) is presented to the handshakes after a
// reload, and the expiry gauge holds the new certificate's series only; the client
// CA file is read again too. A reload whose key file is not the certificate's
// keeps the running certificate, and says so in its result and the log.
func TestListenerCertificateReload(t *testing.T) {
	dir := t.TempDir()
	ca, err := devpki.NewCA(dir, "terminal-ca")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := ca.Issue(dir, "switch")
	if err != nil {
		t.Fatal(err)
	}
	// Terminals' certificates: one of the first client CA, one of the next.
	tca1, err := devpki.NewCA(dir, "terminals-1")
	if err != nil {
		t.Fatal(err)
	}
	tca2, err := devpki.NewCA(dir, "terminals-2")
	if err != nil {
		t.Fatal(err)
	}
	term1 := issuePair(t, tca1, filepath.Join(dir, "t1"), "T0000001")
	term2 := issuePair(t, tca2, filepath.Join(dir, "t2"), "T0000002")
	clientCAFile := filepath.Join(dir, "client-ca.pem")
	copyFile(t, tca1.File, clientCAFile)

	c := demoConfig(t, t.TempDir())
	l := c.Listeners[0]
	l.Name, l.Addr, l.Kind, l.ProxyProtocol = "tls-terminals", "127.0.0.1:0", "", nil
	l.TLS = &config.TLS{CertFile: certFile, KeyFile: keyFile, ClientCAFile: clientCAFile}
	c.Listeners = append(c.Listeners, l)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &testswitch.SyncBuffer{}
	s := start(t, c, logs)
	addr := s.ListenerAddr("tls-terminals")
	roots := x509.NewCertPool()
	roots.AddCert(readCert(t, ca.File))

	first := readCert(t, certFile)
	if got, err := handshake(addr, roots, term1); err != nil || !got.Equal(first) {
		t.Fatalf("before the reload: %v, serial %s; want the first certificate (%s)", err, serialOf(got), metrics.CertSerial(first))
	}
	if _, err := handshake(addr, roots, term2); err == nil {
		t.Fatal("before the reload: a terminal of the second CA was let in")
	}

	// Renewed in place, and the client CAs changed to the second CA.
	if _, _, err := ca.Issue(dir, "switch"); err != nil {
		t.Fatal(err)
	}
	copyFile(t, tca2.File, clientCAFile)
	second := readCert(t, certFile)
	if res := s.Reload(nil); len(res.Refused) != 0 {
		t.Fatalf("reload of good files refused: %v", res.Refused)
	}
	if got, err := handshake(addr, roots, term2); err != nil || !got.Equal(second) {
		t.Fatalf("after the reload: %v, serial %s; want the renewed certificate (%s)", err, serialOf(got), metrics.CertSerial(second))
	}
	if _, err := handshake(addr, roots, term1); err == nil {
		t.Fatal("after the reload: a terminal of the client CA no longer configured was let in")
	}
	series := certSeries(t, s)
	if want := "listener/" + metrics.CertSerial(second); !series[want] || series["listener/"+metrics.CertSerial(first)] {
		t.Errorf("expiry series after the renewal: %v, want %s and not the first certificate's", series, want)
	}
	if !series["listener_client_ca/"+metrics.CertSerial(readCert(t, tca2.File))] || len(series) != 2 {
		t.Errorf("expiry series after the renewal: %v, want the listener's and the second client CA's only", series)
	}

	// A key that is not the certificate's: refused, the running one stays.
	issuePair(t, ca, filepath.Join(dir, "other"), "switch")
	copyFile(t, filepath.Join(dir, "other", "switch.key"), keyFile)
	res := s.Reload(nil)
	if len(res.Refused) != 1 || !strings.Contains(res.Refused[0].Error(), keyFile) || !strings.Contains(res.Refused[0].Error(), "tls-terminals") {
		t.Fatalf("reload with a mismatched key: refused %v, want one error naming the listener and %s", res.Refused, keyFile)
	}
	if !strings.Contains(logs.String(), "reload: certificate refused; the running one stays") {
		t.Errorf("the log does not say the certificate was refused:\n%s", logs.String())
	}
	if got, err := handshake(addr, roots, term2); err != nil || !got.Equal(second) {
		t.Fatalf("after the refused reload: %v, serial %s; want the running certificate (%s)", err, serialOf(got), metrics.CertSerial(second))
	}
	if now := certSeries(t, s); len(now) != len(series) || !now["listener/"+metrics.CertSerial(second)] {
		t.Errorf("expiry series after the refused reload: %v, want unchanged %v", now, series)
	}
}

// TestClientCertificateReload: the HSM link's client certificate (GetClientCertificate)
// is read again by a reload: the next handshake presents the renewed one; a
// certificate file that does not load keeps the running one.
func TestClientCertificateReload(t *testing.T) {
	dir := t.TempDir()
	ca, err := devpki.NewCA(dir, "hsm-ca")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := ca.Issue(dir, "switch-client")
	if err != nil {
		t.Fatal(err)
	}
	srvCert := issuePair(t, ca, filepath.Join(dir, "hsm"), "hsm")
	pool := x509.NewCertPool()
	pool.AddCert(readCert(t, ca.File))
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	seen := make(chan *x509.Certificate)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			tc := nc.(*tls.Conn)
			var leaf *x509.Certificate
			if tc.Handshake() == nil {
				leaf = tc.ConnectionState().PeerCertificates[0]
			}
			nc.Close()
			seen <- leaf
		}
	}()
	m := metrics.New()
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, ServerName: "localhost"}
	cf, err := newClientCert("hsm", metrics.CertUseHSMClient, certFile, keyFile, m, tc)
	if err != nil {
		t.Fatal(err)
	}
	dial := func() *x509.Certificate {
		t.Helper()
		c, err := tls.Dial("tcp", ln.Addr().String(), tc)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.Close()
		select {
		case leaf := <-seen:
			return leaf
		case <-time.After(10 * time.Second):
			t.Fatal("no handshake seen by the server")
			return nil
		}
	}
	first := readCert(t, certFile)
	if got := dial(); got == nil || !got.Equal(first) {
		t.Fatalf("before the reload the server saw %s, want %s", serialOf(got), metrics.CertSerial(first))
	}
	if _, _, err := ca.Issue(dir, "switch-client"); err != nil {
		t.Fatal(err)
	}
	second := readCert(t, certFile)
	if err := cf.reload(); err != nil {
		t.Fatal(err)
	}
	if got := dial(); got == nil || !got.Equal(second) {
		t.Fatalf("after the reload the server saw %s, want the renewed %s", serialOf(got), metrics.CertSerial(second))
	}
	if err := os.WriteFile(certFile, []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cf.reload(); err == nil || !strings.Contains(err.Error(), certFile) {
		t.Fatalf("reload of a certificate file that is not PEM: %v, want an error naming %s", err, certFile)
	}
	if got := dial(); got == nil || !got.Equal(second) {
		t.Fatalf("after the refused reload the server saw %s, want the running %s", serialOf(got), metrics.CertSerial(second))
	}
}

// handshake makes a TLS connection to addr as a terminal presenting client, and
// returns the switch's certificate. TLS 1.2: the server checks the client's
// certificate before its Finished, so a refused terminal's handshake fails (TLS
// 1.3 would tell it only at its first read).
func handshake(addr string, roots *x509.CertPool, client tls.Certificate) (*x509.Certificate, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{RootCAs: roots, ServerName: "localhost", Certificates: []tls.Certificate{client}, MaxVersion: tls.VersionTLS12})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

// certSeries names the expiry gauge's series of s as "use/serial".
func certSeries(t *testing.T, s *Server) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for series := range scrapeGauges(t, s) {
		if !strings.HasPrefix(series, "switchyard_tls_certificate_expiry_timestamp_seconds{") {
			continue
		}
		var use, serial string
		for _, kv := range strings.Split(strings.TrimSuffix(strings.SplitN(series, "{", 2)[1], "}"), ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "use":
				use = strings.Trim(v, `"`)
			case "serial":
				serial = strings.Trim(v, `"`)
			}
		}
		out[use+"/"+serial] = true
	}
	return out
}

// issuePair issues a certificate of ca for name into dir and loads it.
func issuePair(t *testing.T, ca *devpki.CA, dir, name string) tls.Certificate {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cf, kf, err := ca.Issue(dir, name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.LoadX509KeyPair(cf, kf)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func serialOf(c *x509.Certificate) string {
	if c == nil {
		return "none"
	}
	return metrics.CertSerial(c)
}

// TestReloadReportsExitOnBrokenLog: journal.exit_on_broken_log is read by serve
// once, before it serves: a reload that changes it says, in its result and the
// log, that it takes effect at the next restart (it used to say nothing).
func TestReloadReportsExitOnBrokenLog(t *testing.T) {
	c := demoConfig(t, t.TempDir())
	logs := &testswitch.SyncBuffer{}
	s := start(t, c, logs)
	same := *c
	if res := s.Reload(&same); slices.Contains(res.Restart, "journal.exit_on_broken_log") {
		t.Fatalf("unchanged: restart keys %v", res.Restart)
	}
	next := *c
	next.Journal.ExitOnBrokenLog = new(!exitOnBrokenLog(c))
	res := s.Reload(&next)
	if !slices.Contains(res.Restart, "journal.exit_on_broken_log") || len(res.Refused) != 0 {
		t.Fatalf("changed: restart keys %v, refused %v; want journal.exit_on_broken_log and nothing refused", res.Restart, res.Refused)
	}
	if !strings.Contains(logs.String(), `"key":"journal.exit_on_broken_log"`) {
		t.Errorf("the log does not name journal.exit_on_broken_log:\n%s", logs.String())
	}
}
