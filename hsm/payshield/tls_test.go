package payshield_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/payshield"
	"github.com/switchyard/switchyard/keys"
)

// selfSigned returns a server certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hsm"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// TestClientTLSAndMetrics: the client speaks to an HSM over TLS, checked against its
// CA; a client without TLS gets no answer from it (unavailable); the metrics count
// latencies by command and errors by code.
func TestClientTLSAndMetrics(t *testing.T) {
	cert, pool := selfSigned(t)
	srv, err := payshield.NewServer(keys.DemoLMK(), payshield.ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- srv.Serve(ctx, tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}}))
	}()
	t.Cleanup(func() { cancel(); <-done })
	reg := prometheus.NewRegistry()
	m, err := payshield.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, payshield.ClientOptions{Addrs: []string{ln.Addr().String()}, TLS: &tls.Config{RootCAs: pool}, Metrics: m})
	tak := hsm.MACRequest{Key: hsm.KeyRef{ID: "T0000002.TAK"}, Data: []byte("data")}
	mac, err := e.client.GenerateMAC(e.ctx, tak)
	if err != nil {
		t.Fatalf("M6 over TLS: %v", err)
	}
	mac[0] ^= 1
	if err := e.client.VerifyMAC(e.ctx, tak, mac); !errors.Is(err, hsm.ErrMACMismatch) {
		t.Fatalf("M8: %v", err)
	}
	var d dto.Metric
	if err := m.Errors.WithLabelValues("M8", "01").Write(&d); err != nil || d.GetCounter().GetValue() != 1 {
		t.Errorf("errors{M8,01} = %v, %v; want 1", d.GetCounter().GetValue(), err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := 0
	for _, mf := range mfs {
		if mf.GetName() == "switchyard_hsm_command_seconds" {
			series = len(mf.GetMetric())
		}
	}
	if series < 3 { // FK, M6, M8 at least
		t.Errorf("latency series by command: %d, want at least 3", series)
	}
	plain, err := payshield.NewClient(payshield.ClientOptions{Addrs: []string{ln.Addr().String()}, Store: e.store, Timeout: 300 * time.Millisecond, HealthEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := plain.GenerateMAC(e.ctx, tak); !errors.Is(err, hsm.ErrUnavailable) {
		t.Fatalf("a client without TLS to a TLS HSM: %v, want ErrUnavailable", err)
	}
}
