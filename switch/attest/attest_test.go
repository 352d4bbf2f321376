package attest

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func claims(nonce string, iat time.Time) Claims {
	return Claims{Device: "SP-1", App: "com.example.pay", AppVersion: "2.1.0", Integrity: Integrity{TEE: true}, IssuedAt: iat.Unix(), Nonce: nonce}
}

func TestVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	es, err := NewSigner("acq-es", ec)
	if err != nil {
		t.Fatal(err)
	}
	demo := DemoSigner()
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	rogue, _ := NewSigner(DemoKeyID, other) // same kid, another key
	stranger, _ := NewSigner("who", other)
	v, err := NewVerifier([]Key{demo.Key(), es.Key()}, Options{MaxAge: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	n := Nonce("T0000002", "000001", 1200, "1202014500")
	sign := func(s *Signer, c Claims) string {
		tok, err := s.Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := sign(demo, claims(n, now))
	n2 := Nonce("T0000002", "000002", 1200, "1202014500")
	cases := []struct {
		name  string
		token string
		nonce string
		want  Failure
	}{
		{"good EdDSA", good, n, OK},
		{"replayed, same transaction", good, n, FailReplayed},
		{"replayed on another transaction", good, Nonce("T0000002", "000009", 1200, "1202014500"), FailReplayed},
		{"good ES256 (second pinned key)", sign(es, claims(n2, now)), n2, OK},
		{"forged: same kid, other key", sign(rogue, claims(Nonce("a", "b", 1, "c"), now)), Nonce("a", "b", 1, "c"), FailForged},
		{"unknown kid", sign(stranger, claims(n, now)), n, FailUnknown},
		{"payload swapped", swapPayload(good, sign(rogue, Claims{Device: "SP-1", App: "x", Integrity: Integrity{TEE: true}, IssuedAt: now.Unix(), Nonce: n})), n, FailForged},
		{"not a JWS", "hello", n, FailForged},
		{"alg none", "eyJhbGciOiJub25lIn0.e30.", n, FailForged},
		{"bound to another transaction", sign(demo, claims(Nonce("T0000002", "000005", 1200, "1202014500"), now)), Nonce("T0000002", "000005", 1300, "1202014500"), FailUnbound},
		{"stale", sign(demo, claims(Nonce("x", "1", 1, "d"), now.Add(-3*time.Minute))), Nonce("x", "1", 1, "d"), FailStale},
		{"dated ahead", sign(demo, claims(Nonce("x", "2", 1, "d"), now.Add(3*time.Minute))), Nonce("x", "2", 1, "d"), FailStale},
		{"no device", sign(demo, Claims{IssuedAt: now.Unix(), Nonce: n}), n, FailMalformed},
	}
	for _, c := range cases {
		if _, got := v.Verify(c.token, c.nonce, now); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
	// Rotation: once the demo key is unpinned its tokens are refused.
	if err := v.SetKeys([]Key{es.Key()}); err != nil {
		t.Fatal(err)
	}
	n3 := Nonce("T0000002", "000003", 1200, "1202014500")
	if _, got := v.Verify(sign(demo, claims(n3, now)), n3, now); got != FailUnknown {
		t.Errorf("after rotation: got %q, want %q", got, FailUnknown)
	}
}

func swapPayload(a, b string) string {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	return pa[0] + "." + pb[1] + "." + pa[2]
}

func TestReplayCacheBounded(t *testing.T) {
	c := newReplayCache(1600)
	now := time.Unix(1000, 0)
	for i := 0; i < 3200; i++ { // twice the bound: the excess is refused
		c.add(Nonce("t", "s", int64(i), "d"), now.Add(time.Second), now)
	}
	later := now.Add(2 * time.Second)
	for i := 0; i < 800; i++ {
		if !c.add(Nonce("t", "s", int64(10000+i), "d"), later.Add(time.Second), later) {
			t.Fatalf("entry %d refused after the first ones expired", i)
		}
	}
	total := 0
	for i := range c.shards {
		total += len(c.shards[i].seen)
	}
	if total > 1600+16 {
		t.Fatalf("cache holds %d entries, bound 1600", total)
	}
}

func TestParsePublicKeyPEM(t *testing.T) {
	pemKey, err := MarshalPublicKeyPEM(DemoSigner().Key().Public)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParsePublicKeyPEM("k1", pemKey)
	if err != nil || k.ID != "k1" {
		t.Fatalf("got %v, %v", k, err)
	}
	if _, err := ParsePublicKeyPEM("k2", []byte("garbage")); err == nil || !strings.Contains(err.Error(), "k2") {
		t.Fatalf("garbage: err %v", err)
	}
}

// BenchmarkVerify is the cost a SoftPOS request pays for its token (EdDSA and
// ES256), the replay cache included.
func BenchmarkVerify(b *testing.B) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	es, _ := NewSigner("acq-es", ec)
	for _, s := range []*Signer{DemoSigner(), es} {
		b.Run(s.id, func(b *testing.B) {
			v, _ := NewVerifier([]Key{s.Key()}, Options{})
			now := time.Unix(1_800_000_000, 0)
			toks := make([]string, 0, 4096)
			nonces := make([]string, 0, 4096)
			for i := 0; i < cap(toks); i++ {
				n := Nonce("T0000002", strings.Repeat("0", 6), int64(i), "1202014500")
				tok, _ := s.Sign(claims(n, now))
				toks, nonces = append(toks, tok), append(nonces, n)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, f := v.Verify(toks[i%len(toks)], nonces[i%len(toks)], now); f != OK && i < len(toks) {
					b.Fatal(f)
				}
				i++
			}
		})
	}
}

// TestReplayCacheHoldsItsBound: the cache takes as many live nonces as its bound
// says (less a shard's rounding), whatever their first character: real nonces are
// base64url, whose 64 characters do not fall evenly on 16 shards by their byte.
// Before, the shards of the 5-in-64 characters were full at 80% of the bound and
// refused good tokens as replayed.
func TestReplayCacheHoldsItsBound(t *testing.T) {
	const bound = 16_000
	c := newReplayCache(bound)
	now := time.Unix(1000, 0)
	for i := 0; i < bound*9/10; i++ {
		if !c.add(Nonce("T0000002", "000001", int64(i), "1202014500"), now.Add(time.Minute), now) {
			t.Fatalf("nonce %d of %d refused: the cache is full at %d%% of its bound", i+1, bound*9/10, i*100/bound)
		}
	}
}

// TestVerifyAllowedApps: with the allowed application IDs listed, a token the
// service signed for another app (a debug build) is refused as FailApp, and one
// naming no app too; without the list any app passes. The list is checked when the
// verifier is built.
func TestVerifyAllowedApps(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	demo := DemoSigner()
	v, err := NewVerifier([]Key{demo.Key()}, Options{Apps: []string{"com.example.pay", "com.example.pay-lite"}})
	if err != nil {
		t.Fatal(err)
	}
	open, err := NewVerifier([]Key{demo.Key()}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	stan := 0
	verify := func(v *Verifier, app string) Failure {
		t.Helper()
		stan++
		n := Nonce("T0000002", strconv.Itoa(100000+stan), 1200, "1202014500")
		c := claims(n, now)
		c.App = app
		tok, err := demo.Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		_, got := v.Verify(tok, n, now)
		return got
	}
	for app, want := range map[string]Failure{
		"com.example.pay": OK, "com.example.pay-lite": OK,
		"com.example.pay.debug": FailApp, "COM.EXAMPLE.PAY": FailApp, "": FailApp,
	} {
		if got := verify(v, app); got != want {
			t.Errorf("app %q, apps listed: %q, want %q", app, got, want)
		}
	}
	if got := verify(open, "com.example.pay.debug"); got != OK {
		t.Errorf("a debug build, no apps listed: %q, want accepted", got)
	}
	for _, apps := range [][]string{{""}, {"com example"}, {"com.example.pay", "com.example.pay"}} {
		if _, err := NewVerifier([]Key{demo.Key()}, Options{Apps: apps}); err == nil {
			t.Errorf("apps %q: no error", apps)
		}
	}
}

// TestVerifyIssuedFarAhead: a token whose iat is centuries ahead (an attestation
// service that writes milliseconds for seconds, or a clock gone wrong) is stale.
// time.Time.Sub saturates at the smallest Duration, whose negation overflows back
// to itself: an age compared as a Duration made such a token fresh forever.
func TestVerifyIssuedFarAhead(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	v, err := NewVerifier([]Key{DemoSigner().Key()}, Options{MaxAge: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for i, iat := range []int64{now.Unix() * 1000, 1 << 62} {
		n := Nonce("T0000002", strconv.Itoa(i), 1200, "1202014500")
		c := claims(n, now)
		c.IssuedAt = iat
		tok, err := DemoSigner().Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		if _, got := v.Verify(tok, n, now); got != FailStale {
			t.Errorf("iat %d: got %q, want %q", iat, got, FailStale)
		}
	}
}

// TestVerifyVerdictsMustBeExplicit: the service's verdicts count only as the five
// booleans the interface names. A verdict missing, spelled otherwise ("rooted",
// "Root"), given twice, of another type, or one the switch does not know is
// refused as malformed, never read as a clean phone.
func TestVerifyVerdictsMustBeExplicit(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s := DemoSigner()
	v, err := NewVerifier([]Key{s.Key()}, Options{MaxAge: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	clean := `{"root":false,"hook":false,"debugger":false,"emulator":false,"tee":true}`
	cases := []struct {
		name, int string
		want      Failure
	}{
		{"all five", clean, OK},
		{"all five, other order and spacing", `{ "tee":true, "emulator":false,"debugger":false, "hook":false,"root":false }`, OK},
		{"root missing", `{"hook":false,"debugger":false,"emulator":false,"tee":true}`, FailMalformed},
		{"rooted instead of root", `{"rooted":true,"hook":false,"debugger":false,"emulator":false,"tee":true}`, FailMalformed},
		{"hooked besides the five", `{"root":false,"hook":false,"debugger":false,"emulator":false,"tee":true,"hooked":true}`, FailMalformed},
		{"Root in capitals", `{"Root":true,"hook":false,"debugger":false,"emulator":false,"tee":true}`, FailMalformed},
		{"root twice, true then false", `{"root":true,"root":false,"hook":false,"debugger":false,"emulator":false,"tee":true}`, FailMalformed},
		{"root as a string", `{"root":"true","hook":false,"debugger":false,"emulator":false,"tee":true}`, FailMalformed},
		{"root null", `{"root":null,"hook":false,"debugger":false,"emulator":false,"tee":true}`, FailMalformed},
		{"int null", `null`, FailMalformed},
		{"int an array", `[]`, FailMalformed},
		{"int absent", ``, FailMalformed},
	}
	for i, c := range cases {
		n := Nonce("T0000002", strconv.Itoa(i), 1200, "1202014500")
		payload := `{"dev":"SP-1","app":"com.example.pay","ver":"2.1.0","iat":` + strconv.FormatInt(now.Unix(), 10) + `,"nonce":"` + n + `"`
		if c.int != "" {
			payload += `,"int":` + c.int
		}
		obj, err := s.sign.Sign([]byte(payload + "}"))
		if err != nil {
			t.Fatal(err)
		}
		tok, err := obj.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		if _, got := v.Verify(tok, n, now); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

// TestVerifyReplayAtTheEdgeOfMaxAge: a token is fresh up to and including iat +
// MaxAge, so its nonce must be remembered that long too. The cache took an entry
// expiring at iat + MaxAge as gone at that very instant, while the token was
// still fresh: the same token passed twice at the edge.
func TestVerifyReplayAtTheEdgeOfMaxAge(t *testing.T) {
	iat := time.Unix(1_800_000_000, 0)
	v, err := NewVerifier([]Key{DemoSigner().Key()}, Options{MaxAge: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	n := Nonce("T0000002", "000001", 1200, "1202014500")
	tok, err := DemoSigner().Sign(claims(n, iat))
	if err != nil {
		t.Fatal(err)
	}
	edge := iat.Add(2 * time.Minute)
	if _, got := v.Verify(tok, n, edge); got != OK {
		t.Fatalf("first use at iat+max_age: %q, want OK", got)
	}
	if _, got := v.Verify(tok, n, edge); got != FailReplayed {
		t.Fatalf("second use at iat+max_age: %q, want %q", got, FailReplayed)
	}
	if _, got := v.Verify(tok, n, edge.Add(time.Nanosecond)); got != FailStale {
		t.Fatalf("past iat+max_age: %q, want %q", got, FailStale)
	}
}

// TestVerifyAlgorithmConfusion: a token whose header names HMAC (signed with the
// pinned public key's bytes as the secret), another algorithm than its kid's key
// is for, or a key of its own (jwk) is refused as forged.
func TestVerifyAlgorithmConfusion(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	demo := DemoSigner()
	v, err := NewVerifier([]Key{demo.Key()}, Options{MaxAge: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	n := Nonce("T0000002", "000001", 1200, "1202014500")
	payload, _ := json.Marshal(claims(n, now))
	b64 := base64.RawURLEncoding.EncodeToString
	hs := func(header string, secret []byte) string {
		in := b64([]byte(header)) + "." + b64(payload)
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(in))
		return in + "." + b64(m.Sum(nil))
	}
	pub := []byte(demo.Key().Public.(ed25519.PublicKey))
	pemPub, _ := MarshalPublicKeyPEM(demo.Key().Public)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	es, _ := NewSigner(DemoKeyID, ec) // ES256 under the EdDSA key's kid
	esTok, err := es.Sign(claims(n, now))
	if err != nil {
		t.Fatal(err)
	}
	_, own, _ := ed25519.GenerateKey(rand.Reader)
	jwkSigner, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: own},
		(&jose.SignerOptions{EmbedJWK: true}).WithHeader("kid", DemoKeyID))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := jwkSigner.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	jwkTok, _ := obj.CompactSerialize()
	for _, c := range []struct{ name, token string }{
		{"HS256 with the raw public key", hs(`{"alg":"HS256","kid":"`+DemoKeyID+`"}`, pub)},
		{"HS256 with the PEM public key", hs(`{"alg":"HS256","kid":"`+DemoKeyID+`"}`, pemPub)},
		{"ES256 under an EdDSA kid", esTok},
		{"a key of its own (jwk)", jwkTok},
	} {
		if _, got := v.Verify(c.token, n, now); got != FailForged {
			t.Errorf("%s: got %q, want %q", c.name, got, FailForged)
		}
	}
}
