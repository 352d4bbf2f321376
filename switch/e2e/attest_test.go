package e2e

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/attest"
	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/termclient"
)

// withToken replaces tx's attestation with tok.
func withToken(tx termclient.Txn, tok string) termclient.Txn {
	tags := make([][2]string, 0, len(tx.TLV))
	for _, x := range tx.TLV {
		if x[0] != "AJ" && x[0] != "AT" {
			tags = append(tags, x)
		}
	}
	tx.TLV = append(tags, [2]string{"AJ", tok})
	return tx
}

func tokenOf(tx termclient.Txn) string {
	for _, x := range tx.TLV {
		if x[0] == "AJ" {
			return x[1]
		}
	}
	return ""
}

// TestSignedAttestation sends the demo SoftPOS's purchases over TCP with good and
// bad attestation tokens: each bad one is refused with its own reason and raises an
// incident; the terminal stays active; the policy switches of the terminal (legacy
// AT, its own maximum age) take effect.
func TestSignedAttestation(t *testing.T) {
	f := startDemo(t, func(c *config.Config) { c.RulesDir = middayRules(t, time.Now()) })
	mac, _ := termclient.RetailMAC(demoTAK)
	_, rogueKey, _ := ed25519.GenerateKey(rand.Reader)
	rogue, _ := attest.NewSigner(attest.DemoKeyID, rogueKey) // the demo kid, another key
	stranger, _ := attest.NewSigner("not-pinned", rogueKey)
	sign := func(s *attest.Signer, tx termclient.Txn, device string, in attest.Integrity, iat time.Time) string {
		tok, err := termclient.AttestToken(s, tx, device, "1.0.0", in, iat)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	clean := attest.Integrity{TEE: true}

	good := softpos(1500)
	if r := sendOn(t, f.c, good, mac); r.RC != "00" {
		t.Fatalf("good token: %+v", r)
	}
	type attempt struct {
		name   string
		tx     termclient.Txn
		rc     string
		reason string
	}
	var attempts []attempt
	add := func(name string, tx termclient.Txn, rc, reason string) {
		attempts = append(attempts, attempt{name, tx, rc, reason})
	}
	tx := softpos(1500)
	add("forged (demo kid, other key)", withToken(tx, sign(rogue, tx, "SP-T0000002", clean, time.Now())), "59", "attestation-forged")
	tx = softpos(1500)
	add("signed by a key not pinned", withToken(tx, sign(stranger, tx, "SP-T0000002", clean, time.Now())), "58", "attestation-unknown-key")
	tx = softpos(1500)
	add("tampered payload", withToken(tx, strings.Replace(tokenOf(tx), ".", ".e30", 1)), "59", "attestation-forged")
	add("expired past the switch's 10 min", softposAt(1500, time.Now().Add(-11*time.Minute)), "58", "attestation-stale")
	add("expired past the terminal's 120 s", softposAt(1500, time.Now().Add(-3*time.Minute)), "58", "attestation-stale")
	add("replayed on a new transaction", withToken(softpos(1500), tokenOf(good)), "59", "attestation-replayed")
	tx, other := softpos(1500), softpos(1500)
	add("bound to another transaction", withToken(tx, sign(attest.DemoSigner(), other, "SP-T0000002", clean, time.Now())), "59", "attestation-unbound")
	tx = softpos(1500)
	amount := tx
	amount.Amount = 150000 // the token was for 15.00
	add("amount changed after signing", withToken(amount, tokenOf(tx)), "59", "attestation-unbound")
	tx = softpos(1500)
	add("another phone's token", withToken(tx, sign(attest.DemoSigner(), tx, "SP-OTHER", clean, time.Now())), "59", "attestation-device-mismatch")
	tx = softpos(1500)
	add("no TEE", withToken(tx, sign(attest.DemoSigner(), tx, "SP-T0000002", attest.Integrity{}, time.Now())), "58", "attestation-no-tee")
	add("legacy AT", softpos(1500, [2]string{"AT", fmt.Sprintf("%d:OK", time.Now().Unix())}), "58", "attestation-legacy-refused")
	tx = softpos(1500)
	debug, err := attest.DemoSigner().Sign(attest.Claims{Device: "SP-T0000002", App: attest.DemoAppID + ".debug", AppVersion: "1.0.0",
		Integrity: clean, IssuedAt: time.Now().Unix(), Nonce: attest.Nonce(tx.TID, tx.STAN, tx.Amount, message.FormatDE7(tx.Time))})
	if err != nil {
		t.Fatal(err)
	}
	add("a debug build, signed by the service", withToken(tx, debug), "58", "attestation-app-refused")
	tx = softpos(1500)
	// A service writing milliseconds for seconds: centuries ahead, stale (the age
	// overflowed and such a token passed as fresh until 6 December 2026).
	ms, err := attest.DemoSigner().Sign(attest.Claims{Device: "SP-T0000002", App: attest.DemoAppID, AppVersion: "1.0.0",
		Integrity: clean, IssuedAt: time.Now().UnixMilli(), Nonce: attest.Nonce(tx.TID, tx.STAN, tx.Amount, message.FormatDE7(tx.Time))})
	if err != nil {
		t.Fatal(err)
	}
	add("iat in milliseconds", withToken(tx, ms), "58", "attestation-stale")
	for _, a := range attempts {
		if r := sendOn(t, f.c, a.tx, mac); r.RC != a.rc || r.Reason != a.reason {
			t.Errorf("%s: got %s %q, want %s %q", a.name, r.RC, r.Reason, a.rc, a.reason)
		}
	}
	// None of these suspends the phone: a good token still passes.
	if r := sendOn(t, f.c, softpos(1500), mac); r.RC != "00" {
		t.Fatalf("good token after the refusals: %+v", r)
	}
	out, _ := f.cli(tokOperator, "incident", "list", "--json")
	for _, a := range attempts {
		if !strings.Contains(out, a.reason) {
			t.Errorf("no incident with reason %s", a.reason)
		}
	}

	// The terminal's policy: its own maximum age, and the legacy AT.
	f.requestAndApprove("terminal", "change", "T0000002", "--attest-max-age", "30s", "--attest-legacy", "--reason", "old app on a pilot phone")
	if r := sendOn(t, f.c, softposAt(1500, time.Now().Add(-60*time.Second)), mac); r.RC != "58" || r.Reason != "attestation-stale" {
		t.Fatalf("60 s old token, terminal maximum 30 s: %+v", r)
	}
	if r := sendOn(t, f.c, softpos(1500, [2]string{"AT", fmt.Sprintf("%d:OK", time.Now().Unix())}), mac); r.RC != "00" {
		t.Fatalf("legacy AT allowed by the terminal's policy: %+v", r)
	}

	// Integrity findings in a good token suspend the phone at once, as IF does.
	tx = softpos(1500)
	if r := sendOn(t, f.c, withToken(tx, sign(attest.DemoSigner(), tx, "SP-T0000002", attest.Integrity{Hook: true, TEE: true}, time.Now())), mac); r.RC != "59" || r.Reason != "device-compromised" {
		t.Fatalf("hooked: %+v", r)
	}
	if r := sendOn(t, f.c, softpos(1500), mac); r.RC != "58" || r.Reason != "terminal-suspended" {
		t.Fatalf("after hooked: %+v", r)
	}
}

// TestSignedVersionCounts: where a SoftPOS has a minimum application version, the
// version judged is the token's signed ver, never the AV tag the app writes
// itself: a token without ver is refused as malformed, and an old signed version
// is refused whatever AV claims.
func TestSignedVersionCounts(t *testing.T) {
	f := startDemo(t, func(c *config.Config) { c.RulesDir = middayRules(t, time.Now()) })
	mac, _ := termclient.RetailMAC(demoTAK)
	f.requestAndApprove("terminal", "change", "T0000002", "--min-app-version", "1.0", "--reason", "security fix in 1.0")
	withVersion := func(ver string) termclient.Txn {
		tx := softpos(1500, [2]string{"AV", "9.9.9"})
		tok, err := attest.DemoSigner().Sign(attest.Claims{Device: "SP-T0000002", App: attest.DemoAppID, AppVersion: ver,
			Integrity: attest.Integrity{TEE: true}, IssuedAt: time.Now().Unix(), Nonce: attest.Nonce(tx.TID, tx.STAN, tx.Amount, message.FormatDE7(tx.Time))})
		if err != nil {
			t.Fatal(err)
		}
		return withToken(tx, tok)
	}
	for _, c := range []struct{ ver, rc, reason string }{
		{"", "58", "attestation-malformed"},
		{"0.9", "58", "app-version-low"},
		{"1.0.0", "00", ""},
	} {
		if r := sendOn(t, f.c, withVersion(c.ver), mac); r.RC != c.rc || r.Reason != c.reason {
			t.Errorf("token ver %q, AV 9.9.9, minimum 1.0: got %s %q, want %s %q", c.ver, r.RC, r.Reason, c.rc, c.reason)
		}
	}
}

// TestAttestationKeyWithdrawnByReload: a key withdrawn from attestation.keys
// (it leaked, say) is trusted no more after a reload (SIGHUP), without a restart:
// a token it signs is refused 58 attestation-unknown-key, over TCP. A reload whose
// attestation section is refused keeps the running keys. (Until 7 December 2026 a
// reload ignored the section, and did not name it as needing a restart: the
// withdrawn key went on signing tokens the switch accepted.)
func TestAttestationKeyWithdrawnByReload(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := attest.NewSigner("svc-1", priv)
	if err != nil {
		t.Fatal(err)
	}
	pemKey, err := attest.MarshalPublicKeyPEM(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	var cfg *config.Config
	f := startDemo(t, func(c *config.Config) {
		c.RulesDir = middayRules(t, time.Now())
		c.Attestation.Keys = []config.AttestationKey{{KID: "svc-1", PEM: string(pemKey)}}
		cfg = c
	})
	mac, _ := termclient.RetailMAC(demoTAK)
	signed := func() termclient.Txn {
		tx := softpos(1500)
		tok, err := termclient.AttestToken(svc, tx, "SP-T0000002", "1.0.0", attest.Integrity{TEE: true}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return withToken(tx, tok)
	}
	if r := sendOn(t, f.c, signed(), mac); r.RC != "00" {
		t.Fatalf("token of the pinned svc-1: %+v", r)
	}

	// A reload whose section does not load keeps svc-1.
	bad := *cfg
	bad.Attestation.Keys = []config.AttestationKey{{KID: "svc-2", PEM: "not a key"}}
	if res := f.s.Reload(&bad); len(res.Refused) != 1 || !strings.Contains(res.Refused[0].Error(), "attestation") {
		t.Fatalf("reload of a broken key: refused %v, want the attestation section", res.Refused)
	}
	if r := sendOn(t, f.c, signed(), mac); r.RC != "00" {
		t.Fatalf("after a refused reload, svc-1 still pinned: %+v", r)
	}

	// svc-1 withdrawn: its next token is refused at once.
	next := *cfg
	next.Attestation.Keys = nil
	if res := f.s.Reload(&next); len(res.Refused) != 0 || slices.Contains(res.Restart, "attestation.keys") {
		t.Fatalf("reload: %+v", res)
	}
	if r := sendOn(t, f.c, signed(), mac); r.RC != "58" || r.Reason != "attestation-unknown-key" {
		t.Fatalf("token of the withdrawn svc-1: %+v, want 58 attestation-unknown-key", r)
	}
	// The demo service's key, pinned by demo mode, stays.
	if r := sendOn(t, f.c, softpos(1500), mac); r.RC != "00" {
		t.Fatalf("demo key after the reload: %+v", r)
	}
	// A changed max_age is named as needing a restart.
	next.Attestation.MaxAge = config.Duration(5 * time.Minute)
	if res := f.s.Reload(&next); !slices.Contains(res.Restart, "attestation.max_age") {
		t.Fatalf("reload with another max_age: restart %v, want attestation.max_age", res.Restart)
	}
}
