package metrics

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The uses of switchyard_tls_certificate_expiry_timestamp_seconds: which TLS
// configuration of the switch loaded the certificate (docs/alerts.md,
// SwitchyardCertificateExpiringSoon).
const (
	CertUseListener         = "listener"           // a terminal listener's certificate (listeners[].tls.cert_file)
	CertUseListenerClientCA = "listener_client_ca" // the CAs a listener verifies terminals' certificates with (tls.client_ca_file)
	CertUseHSMClient        = "hsm_client"         // the switch's client certificate to the payShield HSMs (hsm.cert_file)
	CertUseHSMCA            = "hsm_ca"             // the CAs the HSMs' certificates are verified with (hsm.ca_file)
	CertUseCluster          = "cluster"            // the embedded NATS server's certificate, routes and client port (cluster.embedded.tls.cert_file)
	CertUseClusterCA        = "cluster_ca"         // the CAs of the cluster's routes and client port (cluster.embedded.tls.ca_file)
	CertUseNATSClient       = "nats_client"        // the client certificate to an external NATS cluster (cluster.external.tls_cert_file)
	CertUseNATSCA           = "nats_ca"            // the CAs an external NATS cluster's servers are verified with (cluster.external.tls_ca_file)
)

// newCertExpiry makes the certificate expiry gauge (Metrics.CertExpiry).
func newCertExpiry() *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "switchyard_tls_certificate_expiry_timestamp_seconds",
		Help: "NotAfter (Unix seconds) of each X.509 certificate the switch loaded, set when it loads it (at start; a reload, SIGHUP, reads the listener and hsm_client certificates and the listener client CAs again and replaces their series), by use (listener, listener_client_ca, hsm_client, hsm_ca, cluster, cluster_ca, nats_client, nats_ca), listener name (listener uses only), subject common name and serial number (hex). A certificate file's chain and a CA file's every certificate count.",
	}, []string{"use", "listener", "subject", "serial"})
}

// CertificatesLoaded sets switchyard_tls_certificate_expiry_timestamp_seconds for
// each of certs, loaded for use (CertUse*) by listener (empty for the other uses).
func (m *Metrics) CertificatesLoaded(use, listener string, certs []*x509.Certificate) {
	for _, c := range certs {
		m.CertExpiry.WithLabelValues(use, listener, CertSubject(c), CertSerial(c)).Set(float64(c.NotAfter.Unix()))
	}
}

// CertificatesReplaced is CertificatesLoaded for a reload: the series of use and
// listener that the certificates loaded before set are removed first, so that a
// renewed certificate's old series (and its expiry alert) go.
func (m *Metrics) CertificatesReplaced(use, listener string, certs []*x509.Certificate) {
	m.CertExpiry.DeletePartialMatch(prometheus.Labels{"use": use, "listener": listener})
	m.CertificatesLoaded(use, listener, certs)
}

// CertSubject is a certificate's subject label: its common name, or the whole
// subject when it has none.
func CertSubject(c *x509.Certificate) string {
	if c.Subject.CommonName != "" {
		return c.Subject.CommonName
	}
	return c.Subject.String()
}

// CertSerial is a certificate's serial label: its serial number in upper-case hex,
// as `openssl x509 -serial` prints it (less its leading zeros).
func CertSerial(c *x509.Certificate) string {
	if c.SerialNumber == nil {
		return ""
	}
	return fmt.Sprintf("%X", c.SerialNumber)
}

// ParseCertificatesDER parses a certificate chain as tls.Certificate holds it (leaf
// first).
func ParseCertificatesDER(chain [][]byte) ([]*x509.Certificate, error) {
	out := make([]*x509.Certificate, 0, len(chain))
	for i, der := range chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("certificate %d of the chain: %w", i+1, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// ParseCertificatesPEM parses every CERTIFICATE block of data (a CA file), as
// x509.CertPool.AppendCertsFromPEM takes them: other blocks and certificates that
// do not parse are skipped.
func ParseCertificatesPEM(data []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for len(data) > 0 {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" || len(b.Headers) != 0 {
			continue
		}
		if c, err := x509.ParseCertificate(b.Bytes); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// KeyExpiry is the expiry of one key of the key store: the expires_at of the
// version that is, or will be once it activates, its current one
// (keys.Store.Expiries). Never key material.
type KeyExpiry struct {
	ID        string    // key ID
	Type      string    // key type (ZPK, TAK, BDK...)
	ExpiresAt time.Time // not zero
}

// KeyExpiryCollector exports switchyard_key_expiry_timestamp_seconds, read from the
// key store at each scrape (so that a rotation, a revocation or another node's
// change shows at the next scrape): one series per key whose current (or
// scheduled) version has an expiry (expires_at); keys without one have none.
func KeyExpiryCollector(read func() []KeyExpiry) prometheus.Collector {
	return keyExpiryCollector{read}
}

type keyExpiryCollector struct{ read func() []KeyExpiry }

var keyExpiry = prometheus.NewDesc("switchyard_key_expiry_timestamp_seconds",
	"Expiry (expires_at, Unix seconds) of each key of the key store whose current version, or the version scheduled to replace it, has one, by key ID and key type; past it the key has no usable version until a new one is made (switchyard keys rotate). Keys without an expiry have no series.",
	[]string{"key_id", "key_type"}, nil)

func (c keyExpiryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- keyExpiry }

func (c keyExpiryCollector) Collect(ch chan<- prometheus.Metric) {
	for _, k := range c.read() {
		ch <- prometheus.MustNewConstMetric(keyExpiry, prometheus.GaugeValue, float64(k.ExpiresAt.Unix()), k.ID, k.Type)
	}
}
