// Package attest verifies the signed SoftPOS attestation a phone sends in DE 48 tag
// AJ: a JWS (compact serialization, ES256 or EdDSA) issued by the acquirer's
// attestation service after it has examined the phone and the app. The switch pins
// the service's public keys by key ID (several at once, so that a key can be rotated
// without a gap), and checks for every SoftPOS request:
//
//   - the signature, by a pinned key named by the JWS "kid", with the algorithm that
//     key is for (no "none", no HMAC, no key taken from the token itself);
//   - that it is not older than the longest age any terminal may allow (MaxAge);
//     the terminal's own, shorter, maximum age is checked by the registry;
//   - that its nonce was not seen before (a bounded in-memory replay cache whose
//     entries live as long as a token can be fresh): a token captured from one
//     transaction and attached to another is refused as replayed;
//   - the binding to this transaction: the "nonce" claim must be Nonce(TID, STAN,
//     amount, DE 7) of the request that carries it;
//   - the application: when the switch lists the allowed application IDs
//     (Options.Apps), the "app" claim must be one of them, so that a build the
//     service also signs (a debug build, another acquirer's app) is refused.
//
// The verdicts the token carries (root, hook, debugger, emulator, TEE present) and
// the device identity are handed to the registry's checks, which suspend a
// compromised phone and compare the device with the terminal's binding.
//
// The library is github.com/go-jose/go-jose/v4: it parses compact JWS only against
// an explicit list of allowed algorithms (so "alg: none" and HMAC-with-the-public-key
// confusions are refused at parse time), verifies with a key the caller chooses,
// has no dependencies outside the standard library, and is maintained with a
// published threat model. golang-jwt/jwt/v5 would do too, but couples parsing with
// its own claims validation, which the switch does itself against the transaction.
//
// A legitimate resend of a request (same TID, STAN and DE 7) never reaches the
// verifier: the duplicate detection answers it with the first answer.
//
// In a cluster every node has its own replay cache: a token captured on one node and
// attached to another transaction sent to another node is not known there as
// replayed, but its nonce is not that transaction's, so it is refused all the same,
// as attestation-unbound. The one thing the binding alone cannot refuse, the very
// same request again, is a duplicate (journaled by TID, STAN and DE 7 and replicated
// to every node) and answered as one.
package attest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Integrity is the attestation service's verdict on the phone. Each of Root, Hook,
// Debugger and Emulator set is a device-integrity finding; TEE says the phone has a
// trusted execution environment (a SoftPOS without one is refused).
type Integrity struct {
	Root     bool `json:"root"`
	Hook     bool `json:"hook"`
	Debugger bool `json:"debugger"`
	Emulator bool `json:"emulator"`
	TEE      bool `json:"tee"`
}

// Findings returns the integrity findings as the IF tag names them (nil when clean).
func (i Integrity) Findings() []string {
	var out []string
	for _, f := range []struct {
		on   bool
		name string
	}{{i.Root, "root"}, {i.Hook, "hook"}, {i.Debugger, "debugger"}, {i.Emulator, "emulator"}} {
		if f.on {
			out = append(out, f.name)
		}
	}
	return out
}

// verdictNames are the keys of the "int" object, each required, as a JSON boolean.
var verdictNames = [...]string{"root", "hook", "debugger", "emulator", "tee"}

// checkVerdicts checks the "int" object of a token's payload strictly: exactly the
// five verdicts, each once, spelled exactly, each a boolean. encoding/json alone
// reads a missing verdict as false, ignores one spelled otherwise ("rooted"),
// matches keys case-insensitively ("Root") and keeps the last of duplicates, so a
// service whose output drifted from the interface would pass a rooted phone as
// clean; such a token is refused as malformed instead.
func checkVerdicts(payload []byte) error {
	var top struct {
		Int json.RawMessage `json:"int"`
	}
	if err := json.Unmarshal(payload, &top); err != nil {
		return err
	}
	if len(top.Int) == 0 {
		return errors.New("no int verdicts")
	}
	d := json.NewDecoder(bytes.NewReader(top.Int))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		return fmt.Errorf("int: want an object, got %v", tok)
	}
	var seen [len(verdictNames)]bool
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		i := slices.Index(verdictNames[:], key)
		if i < 0 || seen[i] {
			return fmt.Errorf("int: verdict %q unknown or given twice", key)
		}
		seen[i] = true
		if tok, err = d.Token(); err != nil {
			return err
		}
		if _, ok := tok.(bool); !ok {
			return fmt.Errorf("int: verdict %q is %v, not a boolean", key, tok)
		}
	}
	for i, ok := range seen {
		if !ok {
			return fmt.Errorf("int: verdict %q missing", verdictNames[i])
		}
	}
	return nil
}

// Claims are the claims of an attestation token.
type Claims struct {
	Device     string    `json:"dev"`   // device ID, as bound to the terminal (DE 48 DI)
	App        string    `json:"app"`   // application ID (package name)
	AppVersion string    `json:"ver"`   // application version
	Integrity  Integrity `json:"int"`   // the verdicts
	IssuedAt   int64     `json:"iat"`   // Unix seconds
	Nonce      string    `json:"nonce"` // Nonce(TID, STAN, amount, DE 7)
}

// Issued returns IssuedAt as a time.
func (c *Claims) Issued() time.Time { return time.Unix(c.IssuedAt, 0) }

// Nonce returns the nonce that binds a token to one transaction: the unpadded
// base64url SHA-256 of "TID|STAN|AMOUNT|DE7" (amount in minor units, decimal).
func Nonce(tid, stan string, amount int64, de7 string) string {
	var b [64]byte
	s := append(b[:0], tid...)
	s = append(s, '|')
	s = append(s, stan...)
	s = append(s, '|')
	s = strconv.AppendInt(s, amount, 10)
	s = append(s, '|')
	s = append(s, de7...)
	sum := sha256.Sum256(s)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Failure says why a token was refused; the registry sends it in DE 48 RS.
type Failure string

// The failures, each its own decline reason.
const (
	OK            Failure = ""
	FailForged    Failure = "attestation-forged"      // not a JWS, bad signature, or a key used with another algorithm
	FailUnknown   Failure = "attestation-unknown-key" // kid not pinned (or no keys pinned)
	FailUnbound   Failure = "attestation-unbound"     // nonce is not this transaction's
	FailReplayed  Failure = "attestation-replayed"    // nonce seen before
	FailStale     Failure = "attestation-stale"       // older than MaxAge, or dated that far ahead
	FailMalformed Failure = "attestation-malformed"   // signed, but the claims do not parse or lack iat/nonce/dev
	FailApp       Failure = "attestation-app-refused" // the app claim is not an allowed application ID (Options.Apps)
)

// Key is a pinned public key of the attestation service.
type Key struct {
	ID     string           // the JWS "kid"
	Public crypto.PublicKey // *ecdsa.PublicKey (P-256, ES256) or ed25519.PublicKey (EdDSA)
}

// Alg returns the one JWS algorithm the key verifies.
func (k Key) Alg() (jose.SignatureAlgorithm, error) {
	switch p := k.Public.(type) {
	case ed25519.PublicKey:
		return jose.EdDSA, nil
	case *ecdsa.PublicKey:
		if p.Curve == elliptic.P256() {
			return jose.ES256, nil
		}
	}
	return "", fmt.Errorf("attestation key %q: want an ECDSA P-256 or Ed25519 public key, got %T", k.ID, k.Public)
}

// ParsePublicKeyPEM reads a PEM "PUBLIC KEY" (PKIX) block holding an ECDSA P-256 or
// Ed25519 public key.
func ParsePublicKeyPEM(id string, data []byte) (Key, error) {
	blk, _ := pem.Decode(data)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return Key{}, fmt.Errorf("attestation key %q: no PEM PUBLIC KEY block", id)
	}
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return Key{}, fmt.Errorf("attestation key %q: %w", id, err)
	}
	k := Key{ID: id, Public: pub}
	if _, err := k.Alg(); err != nil {
		return Key{}, err
	}
	return k, nil
}

// MarshalPublicKeyPEM writes a public key as a PEM "PUBLIC KEY" block.
func MarshalPublicKeyPEM(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

type pinned struct {
	keys map[string]Key
}

// algs are the algorithms a token may name; the key its kid names decides which.
var algs = []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA}

// Options tune a Verifier.
type Options struct {
	// MaxAge is the longest any terminal may allow a token to be old (and how far
	// ahead of the switch's clock it may be dated); replayed nonces are remembered
	// that long. Default 10 min.
	MaxAge time.Duration
	// ReplayEntries bounds the replay cache (default 1,000,000 nonces, ~100 MB at
	// most). When full, a token is refused as replayed rather than let through
	// unchecked; at 1,000,000 entries and a 10 min window that is 1,600 SoftPOS
	// requests a second.
	ReplayEntries int
	// Apps, when not empty, are the application IDs (the token's "app" claim,
	// compared exactly) the switch accepts; a token of any other app is refused as
	// FailApp. Empty: the app is not checked. Each must be a ValidAppID.
	Apps []string
}

// ValidAppID reports whether s can be an application ID in Options.Apps: 1 to 255
// letters, digits, '.', '_' or '-' (an Android package name or an iOS bundle ID).
func ValidAppID(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Verifier checks attestation tokens. It is safe for concurrent use; SetKeys
// and SetApps replace the pinned keys and the allowed apps while it runs (a
// rotation, or a key withdrawn at a reload): the next token is judged by them.
type Verifier struct {
	keys   atomic.Pointer[pinned]
	maxAge time.Duration
	replay *replayCache
	apps   atomic.Pointer[[]string] // allowed app claims; empty: any
}

// NewVerifier returns a verifier that trusts keys.
func NewVerifier(keys []Key, opts Options) (*Verifier, error) {
	if opts.MaxAge <= 0 {
		opts.MaxAge = 10 * time.Minute
	}
	if opts.ReplayEntries <= 0 {
		opts.ReplayEntries = 1_000_000
	}
	v := &Verifier{maxAge: opts.MaxAge, replay: newReplayCache(opts.ReplayEntries)}
	if err := v.SetApps(opts.Apps); err != nil {
		return nil, err
	}
	if err := v.SetKeys(keys); err != nil {
		return nil, err
	}
	return v, nil
}

// SetApps replaces the allowed application IDs (Options.Apps; empty: any app).
// Each must be a ValidAppID, none given twice; on an error the running list stays.
func (v *Verifier) SetApps(apps []string) error {
	seen := map[string]bool{}
	list := make([]string, 0, len(apps))
	for i, a := range apps {
		if !ValidAppID(a) {
			return fmt.Errorf("attestation app %d %q: want 1 to 255 letters, digits, '.', '_' or '-'", i, a)
		}
		if seen[a] {
			return fmt.Errorf("attestation app %q given twice", a)
		}
		seen[a] = true
		list = append(list, a)
	}
	v.apps.Store(&list)
	return nil
}

// SetKeys replaces the pinned keys. Key IDs must be unique and non-empty; on an
// error the running keys stay. A key left out is trusted no more from the next
// Verify on: a token it signed is refused as FailUnknown.
func (v *Verifier) SetKeys(keys []Key) error {
	p := &pinned{keys: map[string]Key{}}
	for _, k := range keys {
		if k.ID == "" {
			return errors.New("attestation key: empty key ID (kid)")
		}
		if _, dup := p.keys[k.ID]; dup {
			return fmt.Errorf("attestation key %q given twice", k.ID)
		}
		if _, err := k.Alg(); err != nil {
			return err
		}
		p.keys[k.ID] = k
	}
	v.keys.Store(p)
	return nil
}

// MaxAge returns the verifier's longest allowed token age.
func (v *Verifier) MaxAge() time.Duration { return v.maxAge }

// Verify checks token for the transaction whose Nonce is nonce, at time now. It
// returns the claims of a good token, or why the token is refused.
func (v *Verifier) Verify(token, nonce string, now time.Time) (Claims, Failure) {
	var c Claims
	p := v.keys.Load()
	if len(p.keys) == 0 {
		return c, FailUnknown
	}
	jws, err := jose.ParseSignedCompact(token, algs)
	if err != nil || len(jws.Signatures) != 1 {
		return c, FailForged
	}
	hdr := jws.Signatures[0].Protected
	k, ok := p.keys[hdr.KeyID]
	if !ok {
		return c, FailUnknown
	}
	if alg, _ := k.Alg(); string(alg) != hdr.Algorithm {
		return c, FailForged
	}
	payload, err := jws.Verify(k.Public)
	if err != nil {
		return c, FailForged
	}
	if err := json.Unmarshal(payload, &c); err != nil || c.IssuedAt <= 0 || c.Nonce == "" || c.Device == "" {
		return Claims{}, FailMalformed
	}
	if err := checkVerdicts(payload); err != nil {
		return Claims{}, FailMalformed
	}
	// Times compared, not an age: now.Sub saturates at the smallest Duration for an
	// iat centuries ahead (milliseconds written for seconds), and its negation
	// overflows back to itself, so such a token compared as an age was fresh forever.
	if iat := c.Issued(); iat.Before(now.Add(-v.maxAge)) || iat.After(now.Add(v.maxAge)) {
		return c, FailStale
	}
	// A token seen before is a replay, whatever it is attached to now (a legitimate
	// resend of the same request is answered by the duplicate detection before it
	// gets here); a token never seen whose nonce is another transaction's is unbound.
	if v.replay.seen(c.Nonce, now) {
		return c, FailReplayed
	}
	if c.Nonce != nonce {
		return c, FailUnbound
	}
	if !v.replay.add(c.Nonce, c.Issued().Add(v.maxAge), now) {
		return c, FailReplayed
	}
	// Last, on a token otherwise good for this transaction (its nonce is spent):
	// the service signed it, but for an app the acquirer does not accept.
	if !v.appAllowed(c.App) {
		return c, FailApp
	}
	return c, OK
}

// appAllowed reports whether app is in the allowed list, or the list is empty.
func (v *Verifier) appAllowed(app string) bool {
	apps := *v.apps.Load()
	if len(apps) == 0 {
		return true
	}
	for _, a := range apps {
		if a == app {
			return true
		}
	}
	return false
}

// replayCache remembers nonces until they expire. It is sharded to keep the lock
// of one shard short; each shard drops its expired entries when it grows past its
// share of the bound.
type replayCache struct {
	shards [16]replayShard
	per    int
}

type replayShard struct {
	mu   sync.Mutex
	seen map[string]time.Time // nonce -> expiry
}

func newReplayCache(max int) *replayCache {
	c := &replayCache{per: max/16 + 1}
	for i := range c.shards {
		c.shards[i].seen = map[string]time.Time{}
	}
	return c
}

// shard returns nonce's shard, by an FNV-1a hash of the whole nonce: by its first
// byte, the 64 characters of base64url fell 2 to 5 on a shard, and the busiest
// shards were full at 80% of the bound.
func (c *replayCache) shard(nonce string) *replayShard {
	h := uint32(2166136261)
	for i := 0; i < len(nonce); i++ {
		h = (h ^ uint32(nonce[i])) * 16777619
	}
	return &c.shards[h%uint32(len(c.shards))]
}

// seen reports whether nonce is remembered and not expired. An entry lives up to
// and including its expiry, the last instant its token is fresh (iat + MaxAge:
// Verify refuses a token only once iat is before now - MaxAge); until 7 December
// 2026 it was gone at that instant, and the same token passed twice there.
func (c *replayCache) seen(nonce string, now time.Time) bool {
	s := c.shard(nonce)
	s.mu.Lock()
	exp, ok := s.seen[nonce]
	s.mu.Unlock()
	return ok && !exp.Before(now)
}

// add records nonce until expires; false when it was already there (or the shard
// is full of live entries).
func (c *replayCache) add(nonce string, expires, now time.Time) bool {
	s := c.shard(nonce)
	s.mu.Lock()
	defer s.mu.Unlock()
	if exp, ok := s.seen[nonce]; ok && !exp.Before(now) {
		return false
	}
	if len(s.seen) >= c.per {
		for k, exp := range s.seen {
			if exp.Before(now) {
				delete(s.seen, k)
			}
		}
		if len(s.seen) >= c.per {
			return false
		}
	}
	s.seen[nonce] = expires
	return true
}

// Signer signs attestation tokens: the acquirer's attestation service in tests, the
// demo and the bench.
type Signer struct {
	id   string
	sign jose.Signer
	pub  crypto.PublicKey
}

// NewSigner returns a signer with the private key priv (ed25519.PrivateKey or
// *ecdsa.PrivateKey on P-256) under key ID kid.
func NewSigner(kid string, priv crypto.Signer) (*Signer, error) {
	k := Key{ID: kid, Public: priv.Public()}
	alg, err := k.Alg()
	if err != nil {
		return nil, err
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: priv}, (&jose.SignerOptions{}).WithHeader("kid", kid))
	if err != nil {
		return nil, fmt.Errorf("attestation signer %q: %w", kid, err)
	}
	return &Signer{id: kid, sign: s, pub: priv.Public()}, nil
}

// Key returns the signer's public key, to pin in a verifier.
func (s *Signer) Key() Key { return Key{ID: s.id, Public: s.pub} }

// Sign returns the compact JWS of c.
func (s *Signer) Sign(c Claims) (string, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	obj, err := s.sign.Sign(b)
	if err != nil {
		return "", err
	}
	return obj.CompactSerialize()
}

// DemoAppID is the application ID of the demo SoftPOS app: the "app" claim of the
// tokens `switchyard term`, the bench and the tests sign, and the allowed app of
// the demo configuration.
const DemoAppID = "com.switchyard.softpos"

// DemoKeyID is the key ID of the demo attestation service.
const DemoKeyID = "demo-attest-1"

// demoSeed is the Ed25519 seed of the demo attestation service. It is public (in
// the source): demo mode, `switchyard term` and the bench sign with it; never pin
// its key in production.
var demoSeed = []byte("switchyard-demo-attestation-key!")

// IsDemo reports whether k's public key is the demo attestation service's, whose
// private key is public (demoSeed): a verifier that pins it accepts tokens anyone
// can sign, so the configuration refuses it outside demo mode.
func (k Key) IsDemo() bool {
	p, ok := k.Public.(ed25519.PublicKey)
	return ok && p.Equal(ed25519.NewKeyFromSeed(demoSeed).Public())
}

// DemoSigner returns the demo attestation service's signer.
func DemoSigner() *Signer {
	s, err := NewSigner(DemoKeyID, ed25519.NewKeyFromSeed(demoSeed))
	if err != nil {
		panic(err) // a fixed valid key
	}
	return s
}
