package devpki

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"
)

// TestIssue: a certificate Issue wrote verifies against its CA (and not against
// another) for 127.0.0.1 and localhost, as server and as client, and its key is
// mode 600.
func TestIssue(t *testing.T) {
	dir := t.TempDir()
	ca, err := NewCA(dir, "cluster")
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewCA(dir, "other")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := ca.Issue(dir, "n1")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	pool := func(c *CA) *x509.CertPool {
		b, err := os.ReadFile(c.File)
		if err != nil {
			t.Fatal(err)
		}
		p := x509.NewCertPool()
		if !p.AppendCertsFromPEM(b) {
			t.Fatalf("%s holds no certificate", c.File)
		}
		return p
	}
	for _, host := range []string{"127.0.0.1", "localhost"} {
		for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool(ca), DNSName: host, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
				t.Errorf("%s, usage %v: %v", host, usage, err)
			}
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool(other), DNSName: "127.0.0.1"}); err == nil {
		t.Error("verified against another CA")
	}
	fi, err := os.Stat(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
}
