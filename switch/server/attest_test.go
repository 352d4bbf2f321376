package server

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/attest"
	"github.com/switchyard/switchyard/switch/config"
)

// TestAttestationVerifierApps: the verifier the switch builds refuses a token of
// an app not in attestation.apps (a debug build the service also signs); with the
// list empty outside demo mode, keys pinned, the start warns that any app passes.
// The demo configuration lists the demo app, which `switchyard term` signs for.
func TestAttestationVerifierApps(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	svc, err := attest.NewSigner("acq-2026-1", priv)
	if err != nil {
		t.Fatal(err)
	}
	pemKey, err := attest.MarshalPublicKeyPEM(svc.Key().Public)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	stan := 0
	verify := func(v *attest.Verifier, s *attest.Signer, app string) attest.Failure {
		t.Helper()
		stan++
		n := attest.Nonce("T0000002", fmt.Sprintf("%06d", stan), 1500, "1202103000")
		tok, err := s.Sign(attest.Claims{Device: "SP-T0000002", App: app, AppVersion: "2.1.0", Integrity: attest.Integrity{TEE: true}, IssuedAt: now.Unix(), Nonce: n})
		if err != nil {
			t.Fatal(err)
		}
		_, f := v.Verify(tok, n, now)
		return f
	}

	prod := &config.Config{Attestation: config.Attestation{Keys: []config.AttestationKey{{KID: "acq-2026-1", PEM: string(pemKey)}},
		Apps: []string{"com.acquirer.softpos"}}}
	v, warning, err := attestationVerifier(prod)
	if err != nil || warning != "" {
		t.Fatalf("apps listed: warning %q, err %v", warning, err)
	}
	if f := verify(v, svc, "com.acquirer.softpos"); f != attest.OK {
		t.Errorf("the acquirer's app: %q, want accepted", f)
	}
	if f := verify(v, svc, "com.acquirer.softpos.debug"); f != attest.FailApp {
		t.Errorf("a debug build: %q, want %q", f, attest.FailApp)
	}

	prod.Attestation.Apps = nil
	v, warning, err = attestationVerifier(prod)
	if err != nil || !strings.Contains(warning, "attestation.apps") {
		t.Fatalf("no apps, keys pinned, outside demo mode: warning %q, err %v; want a warning naming attestation.apps", warning, err)
	}
	if f := verify(v, svc, "com.acquirer.softpos.debug"); f != attest.OK {
		t.Errorf("a debug build, no apps listed: %q, want accepted (not checked)", f)
	}

	demo := config.Demo()
	v, warning, err = attestationVerifier(demo)
	if err != nil || warning != "" {
		t.Fatalf("demo: warning %q, err %v", warning, err)
	}
	if f := verify(v, attest.DemoSigner(), attest.DemoAppID); f != attest.OK {
		t.Errorf("demo app in demo mode: %q, want accepted", f)
	}
	if f := verify(v, attest.DemoSigner(), "com.switchyard.softpos.debug"); f != attest.FailApp {
		t.Errorf("another app in demo mode: %q, want %q", f, attest.FailApp)
	}
}
