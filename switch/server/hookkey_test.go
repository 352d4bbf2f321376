package server

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/internal/seal"
	"github.com/switchyard/switchyard/switch/registry"
)

// TestWebhookURLFingerprintKey: the switch keys the fingerprint of an alert rule's
// webhook URL with a key derived from its card hash key: two switches configured
// alike (the nodes of a cluster share the card hash key) show one fingerprint, the
// same after a restart, and it is not the URL's plain SHA-256, which a reader of
// the redacted form could compute from a guessed URL (as it could until the third
// release of 6 December 2026). A switch with another card hash key shows another.
func TestWebhookURLFingerprintKey(t *testing.T) {
	const u = "https://hooks.example.com/services/T000/B000/abc"
	plain := sha256.Sum256([]byte(u))
	dir := t.TempDir()
	s1 := start(t, demoConfig(t, dir), nil)
	s2 := start(t, demoConfig(t, t.TempDir()), nil)
	f1, f2 := s1.Registry.WebhookFingerprint(u), s2.Registry.WebhookFingerprint(u)
	key, _ := hex.DecodeString(config.DemoCardHashKey)
	if want := registry.WebhookFingerprint(seal.Key(key, registry.WebhookURLFingerprintLabel), u); f1 != want || f2 != want {
		t.Fatalf("two switches with one card hash key: %q and %q, want %q", f1, f2, want)
	}
	if f1 == hex.EncodeToString(plain[:4]) {
		t.Fatalf("fingerprint %q is the URL's plain SHA-256", f1)
	}
	s1.Close()
	if f := start(t, demoConfig(t, dir), nil).Registry.WebhookFingerprint(u); f != f1 {
		t.Fatalf("after a restart: %q, want %q", f, f1)
	}
	other := demoConfig(t, t.TempDir())
	other.Security.CardHashKeyHex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	if f := start(t, other, nil).Registry.WebhookFingerprint(u); f == f1 {
		t.Fatalf("another card hash key: %q, want another fingerprint than %q", f, f1)
	}
}
