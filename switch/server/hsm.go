package server

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"

	"github.com/switchyard/switchyard/hsm/payshield"
	"github.com/switchyard/switchyard/internal/boundfile"
	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/metrics"
)

// openPayShield connects the switch to payShield-compatible HSMs (hsm.backend:
// payshield): the key store keeps each key's LMK token and the HSMs do the rest.
func (s *Server) openPayShield(c config.HSM) (*payshield.Client, error) {
	log := s.log.With().Str("component", "hsm").Logger()
	m, err := payshield.NewMetrics(s.Metrics.Registry)
	if err != nil {
		return nil, fmt.Errorf("hsm: metrics: %w", err)
	}
	opts := payshield.ClientOptions{Addrs: c.Addrs, HeaderLength: c.HeaderLength, Conns: c.Connections, Timeout: c.Timeout.D(), CommandDeadline: c.CommandDeadline.D(),
		HealthEvery: c.HealthEvery.D(), Store: s.Keys, Metrics: m, Logger: log, LMKScheme: c.LMKScheme}
	if c.TLS {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.CAFile != "" {
			pem, err := boundfile.Read(c.CAFile, boundfile.MaxPEMBytes)
			if err != nil {
				return nil, fmt.Errorf("hsm.ca_file: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("hsm.ca_file: %s holds no PEM certificate", c.CAFile)
			}
			s.Metrics.CertificatesLoaded(metrics.CertUseHSMCA, "", metrics.ParseCertificatesPEM(pem))
		}
		if c.CertFile != "" {
			// Presented through GetClientCertificate: a reload (SIGHUP) reads
			// the files again for the next connections (certreload.go).
			cf, err := newClientCert("hsm", metrics.CertUseHSMClient, c.CertFile, c.KeyFile, s.Metrics, tc)
			if err != nil {
				return nil, err
			}
			s.certs = append(s.certs, cf)
		}
		opts.TLS = tc
	}
	cl, err := payshield.NewClient(opts)
	if err != nil {
		return nil, fmt.Errorf("hsm: %w", err)
	}
	log.Info().Strs("addrs", c.Addrs).Str("lmk_scheme", c.LMKScheme).Msg("HSM: payShield host protocol")
	return cl, nil
}
