package config

import (
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/switch/attest"
)

// TestDemoAttestationKeyRefusedOutsideDemo: the demo attestation service's private
// key is in the source, so whoever pins its public key lets anyone sign SoftPOS
// attestation tokens. Outside demo mode it is refused, under any kid, as the demo
// card hash key is.
func TestDemoAttestationKeyRefusedOutsideDemo(t *testing.T) {
	pemKey, err := attest.MarshalPublicKeyPEM(attest.DemoSigner().Key().Public)
	if err != nil {
		t.Fatal(err)
	}
	keys := "attestation:\n  keys:\n    - kid: acq-2026-1\n      pem: |\n        " + strings.ReplaceAll(strings.TrimSpace(string(pemKey)), "\n", "\n        ") + "\n"
	prod := "listeners: [{addr: 127.0.0.1:1}]\nsecurity: {lmk_env: SWITCHYARD_LMK, card_hash_key_hex: 00112233445566778899aabbccddeeff}\n"
	_, err = Parse([]byte(prod+keys), "test.yaml")
	if err == nil || !strings.Contains(err.Error(), "attestation.keys[0]") || !strings.Contains(err.Error(), "demo") {
		t.Fatalf("demo attestation key pinned outside demo mode: err %v, want it refused", err)
	}
	demo := "demo: true\nlisteners: [{addr: 127.0.0.1:1}]\nsecurity: {card_hash_key_hex: " + DemoCardHashKey + "}\n"
	if _, err := Parse([]byte(demo+keys), "test.yaml"); err != nil {
		t.Fatalf("demo attestation key pinned in demo mode: %v", err)
	}
	// Another key is fine outside demo mode.
	other, err := attest.MarshalPublicKeyPEM(mustSigner(t).Key().Public)
	if err != nil {
		t.Fatal(err)
	}
	keys = "attestation:\n  keys:\n    - kid: acq-2026-1\n      pem: |\n        " + strings.ReplaceAll(strings.TrimSpace(string(other)), "\n", "\n        ") + "\n"
	if _, err := Parse([]byte(prod+keys), "test.yaml"); err != nil {
		t.Fatalf("a production attestation key: %v", err)
	}
}

func mustSigner(t *testing.T) *attest.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := attest.NewSigner("acq-2026-1", priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestAttestationApps: attestation.apps is a list of application IDs, each checked
// (errors name its position), none twice; the demo configuration lists the demo
// app, the one `switchyard term` and the bench sign for.
func TestAttestationApps(t *testing.T) {
	prod := "listeners: [{addr: 127.0.0.1:1}]\nsecurity: {lmk_env: SWITCHYARD_LMK, card_hash_key_hex: 00112233445566778899aabbccddeeff}\n"
	c, err := Parse([]byte(prod+"attestation:\n  apps: [com.acquirer.softpos, com.acquirer.softpos-lite]\n"), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Attestation.Apps) != 2 || c.Attestation.Apps[1] != "com.acquirer.softpos-lite" {
		t.Fatalf("apps = %q", c.Attestation.Apps)
	}
	for apps, want := range map[string]string{
		`[com.acquirer.softpos, "com acquirer"]`: "attestation.apps[1]",
		`[""]`:                                   "attestation.apps[0]",
		`[com.acquirer.softpos, com.acquirer.softpos]`:         "attestation.apps[1]",
		`[com.acquirer.softpos, "com.acquirer.softpos;debug"]`: "attestation.apps[1]",
	} {
		_, err := Parse([]byte(prod+"attestation:\n  apps: "+apps+"\n"), "test.yaml")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("apps %s: err %v, want one naming %s", apps, err, want)
		}
	}
	if d := Demo(); len(d.Attestation.Apps) != 1 || d.Attestation.Apps[0] != attest.DemoAppID {
		t.Errorf("demo configuration's apps = %q, want [%s]", d.Attestation.Apps, attest.DemoAppID)
	}
}
