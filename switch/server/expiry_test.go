package server

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/internal/devpki"
	"github.com/switchyard/switchyard/switch/cluster"
	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/internal/testswitch"
	"github.com/switchyard/switchyard/switch/metrics"
)

// TestExpiryMetrics: a switch with a TLS listener (its certificate, and a client CA
// file of two CAs) exports each certificate's NotAfter by use, listener, subject and
// serial, and a key generated with an expiry exports it by key ID and type, read at
// each scrape: a rotation to a version without an expiry removes the series.
func TestExpiryMetrics(t *testing.T) {
	dir := t.TempDir()
	ca, err := devpki.NewCA(dir, "terminal-ca")
	if err != nil {
		t.Fatal(err)
	}
	other, err := devpki.NewCA(dir, "terminal-ca-next")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := ca.Issue(dir, "switch.example")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "client-cas.pem")
	var both []byte
	for _, f := range []string{ca.File, other.File} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		both = append(both, b...)
	}
	if err := os.WriteFile(caFile, both, 0o600); err != nil {
		t.Fatal(err)
	}
	c := demoConfig(t, t.TempDir())
	l := c.Listeners[0] // its limits and timeouts
	l.Name, l.Addr, l.Kind, l.ProxyProtocol = "tls-terminals", "127.0.0.1:0", "", nil
	l.TLS = &config.TLS{CertFile: certFile, KeyFile: keyFile, ClientCAFile: caFile}
	c.Listeners = append(c.Listeners, l)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	s := start(t, c, nil)

	expires := time.Now().Add(10 * 24 * time.Hour).Truncate(time.Second)
	actx := hsm.WithActor(context.Background(), "tester")
	if _, err := s.HSM.GenerateKey(actx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: "expiry.ZMK", Type: hsm.ZMK, ExpiresAt: expires}}); err != nil {
		t.Fatal(err)
	}

	got := scrapeGauges(t, s)
	want := map[string]float64{}
	for _, f := range []struct{ use, file string }{{metrics.CertUseListener, certFile}, {metrics.CertUseListenerClientCA, ca.File}, {metrics.CertUseListenerClientCA, other.File}} {
		cert := readCert(t, f.file)
		want[`switchyard_tls_certificate_expiry_timestamp_seconds{listener="tls-terminals",serial="`+metrics.CertSerial(cert)+`",subject="`+cert.Subject.CommonName+`",use="`+f.use+`"}`] = float64(cert.NotAfter.Unix())
	}
	want[`switchyard_key_expiry_timestamp_seconds{key_id="expiry.ZMK",key_type="ZMK"}`] = float64(expires.Unix())
	for series, v := range want {
		if g, ok := got[series]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", series, g, ok, v)
		}
	}
	n := 0
	for series := range got {
		if strings.HasPrefix(series, "switchyard_tls_certificate_expiry_timestamp_seconds{") {
			n++
		}
	}
	if n != 3 {
		t.Errorf("%d certificate series, want 3 (the listener's and its two client CAs): %v", n, got)
	}

	// A new version without an expiry: the key no longer expires.
	if _, err := s.HSM.GenerateKey(actx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: "expiry.ZMK", Type: hsm.ZMK}}); err != nil {
		t.Fatal(err)
	}
	for series := range scrapeGauges(t, s) {
		if strings.HasPrefix(series, "switchyard_key_expiry_timestamp_seconds{") {
			t.Errorf("after a rotation without an expiry: %s still exported", series)
		}
	}
}

// scrapeGauges reads s's /metrics over HTTP and returns the switchyard gauges' and
// expiry series' values by their text form (labels sorted by name).
func scrapeGauges(t *testing.T, s *Server) map[string]float64 {
	t.Helper()
	fams := testswitch.Metrics(t, s.AdminAddr())
	out := map[string]float64{}
	for name, mf := range fams {
		if !strings.HasSuffix(name, "_expiry_timestamp_seconds") {
			continue
		}
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, lp := range m.GetLabel() { // sorted by name
				ls = append(ls, lp.GetName()+`="`+lp.GetValue()+`"`)
			}
			out[name+"{"+strings.Join(ls, ",")+"}"] = m.GetGauge().GetValue()
		}
	}
	return out
}

func readCert(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", file)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestClusterCertificates: the embedded server's certificate and CA, and an external
// cluster's client certificate and CA, are exported under their uses; a file gone
// since the start is logged, not fatal.
func TestClusterCertificates(t *testing.T) {
	dir := t.TempDir()
	ca, err := devpki.NewCA(dir, "cluster-ca")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := ca.Issue(dir, "node1")
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	s := &Server{Metrics: metrics.New(), log: zerolog.New(&logs)}
	s.clusterCertificates(cluster.Config{Mode: cluster.ModeEmbedded, Embedded: cluster.Embedded{TLS: cluster.EmbeddedTLS{CAFile: ca.File, CertFile: certFile, KeyFile: keyFile}}})
	s.clusterCertificates(cluster.Config{Mode: cluster.ModeExternal, External: cluster.External{TLSCAFile: ca.File, TLSCertFile: filepath.Join(dir, "gone.pem"), TLSKeyFile: keyFile}})
	node, root := readCert(t, certFile), readCert(t, ca.File)
	for _, w := range []struct {
		use  string
		cert *x509.Certificate
	}{{metrics.CertUseCluster, node}, {metrics.CertUseClusterCA, root}, {metrics.CertUseNATSCA, root}} {
		g := s.Metrics.CertExpiry.WithLabelValues(w.use, "", w.cert.Subject.CommonName, metrics.CertSerial(w.cert))
		if v := testutil.ToFloat64(g); v != float64(w.cert.NotAfter.Unix()) {
			t.Errorf("use %s: %v, want %d", w.use, v, w.cert.NotAfter.Unix())
		}
	}
	if n := testutil.CollectAndCount(s.Metrics.CertExpiry); n != 3 {
		t.Errorf("%d series, want 3 (no nats_client: its file is gone)", n)
	}
	if !strings.Contains(logs.String(), "gone.pem") || !strings.Contains(logs.String(), `"use":"nats_client"`) {
		t.Errorf("the unreadable file is not logged: %s", logs.String())
	}
}

// TestHSMCertificates: with hsm.tls, the payShield client certificate and the CA
// file's certificates are exported as hsm_client and hsm_ca.
func TestHSMCertificates(t *testing.T) {
	dir := t.TempDir()
	ca, err := devpki.NewCA(dir, "hsm-ca")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := ca.Issue(dir, "switch-hsm-client")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Metrics: metrics.New(), log: zerolog.Nop()}
	cl, err := s.openPayShield(config.HSM{Backend: "payshield", Addrs: []string{"127.0.0.1:1"}, HealthEvery: config.Duration(-1),
		TLS: true, CAFile: ca.File, CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	client, root := readCert(t, certFile), readCert(t, ca.File)
	for use, c := range map[string]*x509.Certificate{metrics.CertUseHSMClient: client, metrics.CertUseHSMCA: root} {
		g := s.Metrics.CertExpiry.WithLabelValues(use, "", c.Subject.CommonName, metrics.CertSerial(c))
		if v := testutil.ToFloat64(g); v != float64(c.NotAfter.Unix()) {
			t.Errorf("use %s: %v, want %d", use, v, c.NotAfter.Unix())
		}
	}
	if n := testutil.CollectAndCount(s.Metrics.CertExpiry); n != 2 {
		t.Errorf("%d series, want 2", n)
	}
}
