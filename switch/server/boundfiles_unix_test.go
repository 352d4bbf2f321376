//go:build unix

package server

import (
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/boundfile/boundfiletest"
	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/metrics"
)

// TestStartFilesBounded: the files the start reads beside the configuration (the
// LMK file, a TLS listener's certificate, key and client CA, the payShield link's
// CA, certificate and key) are read within a bound: /dev/zero, a FIFO or a file
// too large is refused at once with its key and its path. /dev/zero was read until
// the memory ran out, a FIFO hung the start waiting for a writer, and a huge LMK
// file was read whole.
func TestStartFilesBounded(t *testing.T) {
	files := boundfiletest.New(t)
	fifo, bigLMK := files.FIFO, files.BigLMK
	caFile, cert, key := files.Cert(t, "switch")
	listener := func(cert, key, ca string) func() error {
		return func() error {
			_, _, err := newListenerCert(&config.TLS{CertFile: cert, KeyFile: key, ClientCAFile: ca}, metrics.New(), "tls-terminals")
			return err
		}
	}
	payShield := func(ca, cert, key string) func() error {
		return func() error {
			s := &Server{Metrics: metrics.New(), log: zerolog.Nop()}
			cl, err := s.openPayShield(config.HSM{Backend: "payshield", Addrs: []string{"127.0.0.1:1"}, HealthEvery: config.Duration(-1),
				TLS: true, CAFile: ca, CertFile: cert, KeyFile: key})
			if err == nil {
				cl.Close()
			}
			return err
		}
	}
	for _, tc := range []struct {
		name string
		fn   func() error
		want string
	}{
		{"LMK too big", func() error {
			c := demoConfig(t, t.TempDir())
			c.Security.LMKFile = bigLMK
			s, err := New(c, zerolog.Nop(), testDemoIssuer)
			if err == nil {
				s.Close()
			}
			return err
		}, "security.lmk_file: LMK file: " + bigLMK + " is 65600 bytes, more than the 65536 bytes allowed"},
		{"listener cert dev zero", listener("/dev/zero", key, caFile),
			"listener tls-terminals: tls cert_file /dev/zero, key_file " + key + ": /dev/zero is not a regular file but a device"},
		{"listener key FIFO", listener(cert, fifo, caFile),
			"listener tls-terminals: tls cert_file " + cert + ", key_file " + fifo + ": " + fifo + " is not a regular file but a named pipe (FIFO)"},
		{"listener client CA FIFO", listener(cert, key, fifo),
			"listener tls-terminals: tls client_ca_file: " + fifo + " is not a regular file but a named pipe (FIFO)"},
		{"payShield CA FIFO", payShield(fifo, cert, key),
			"hsm.ca_file: " + fifo + " is not a regular file but a named pipe (FIFO)"},
		{"payShield key dev zero", payShield(caFile, cert, "/dev/zero"),
			"hsm: tls cert_file " + cert + ", key_file /dev/zero: /dev/zero is not a regular file but a device"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			if err := files.Within(t, tc.fn); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v, want %q", err, tc.want)
			}
		})
	}
}
