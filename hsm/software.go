package hsm

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/hsm/cvv"
	"github.com/switchyard/switchyard/hsm/dukpt"
	"github.com/switchyard/switchyard/hsm/kcv"
	"github.com/switchyard/switchyard/hsm/mac"
	"github.com/switchyard/switchyard/hsm/tr31"
	"github.com/switchyard/switchyard/internal/sym"
)

// LMKLength is the length of the local master key: AES-256.
const LMKLength = 32

// Options configure a Software HSM.
type Options struct {
	// Policy is the PIN block format policy of TranslatePIN.
	Policy FormatPolicy
	// Rand is the source of key material and PIN block fill; nil means crypto/rand.
	Rand io.Reader
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Logger receives key lifecycle events (never key bytes); the zero value logs
	// nothing. The caller tags it (component=keys).
	Logger zerolog.Logger
}

// Software is an HSM in software on the Go standard library. It holds the LMK in
// memory, reads keys wrapped under it from a KeyStore, and caches the expanded
// ciphers of each key version so that PIN translation and MAC verification need no
// key unwrapping and few allocations. Clear PINs are wiped after use.
type Software struct {
	store KeyStore
	lmk   []byte
	opts  Options
	log   zerolog.Logger

	mu    sync.RWMutex
	cache map[KeyRef]*loaded
}

var _ HSM = (*Software)(nil)

// loaded is a key version unwrapped from its LMK block, ready for use.
type loaded struct {
	block  string // the LMK block it came from
	header tr31.Header
	alg    Algorithm
	kcv    kcv.KCV
	c      cipher.Block // PIN keys, KEKs, data keys
	retail *mac.Retail  // TAK/ZAK with usage M3
	cmac   *mac.CMAC    // TAK/ZAK with usage M6
	cvv    *cvv.Calculator
	raw    []byte // BDKs and KEKs only: DUKPT derivation and TR-31 wrapping
	// check16 is a TDES key's 16-digit check value (the key encrypting zeros), for
	// FullCheckValue; empty for AES keys.
	check16 string
}

const maxCached = 10000

type scratch struct{ buf [64]byte }

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// NewSoftware returns a software HSM over store with the 32-byte AES-256 LMK, which
// it copies (the caller may wipe its own copy). It binds the LMK to the store by its
// KCV, so a store written under another LMK is refused.
func NewSoftware(ctx context.Context, store KeyStore, lmk []byte, opts Options) (*Software, error) {
	if len(lmk) != LMKLength {
		return nil, fmt.Errorf("software HSM: LMK is %d bytes, want %d (AES-256)", len(lmk), LMKLength)
	}
	k, err := kcv.AES(lmk)
	if err != nil {
		return nil, fmt.Errorf("software HSM: LMK: %w", err)
	}
	if err := store.BindLMK(ctx, k.String()); err != nil {
		return nil, fmt.Errorf("software HSM: %w", err)
	}
	s := &Software{store: store, lmk: append([]byte(nil), lmk...), opts: opts, cache: map[KeyRef]*loaded{}}
	if s.opts.Rand == nil {
		s.opts.Rand = rand.Reader
	}
	if s.opts.Now == nil {
		s.opts.Now = time.Now
	}
	s.log = opts.Logger
	return s, nil
}

func (s *Software) now() time.Time { return s.opts.Now() }

// label is the LB optional block of a key's LMK block: it binds the key ID, version
// and type (TR-31 usages do not tell a TPK from a ZPK) to the key.
func label(id string, version int, t KeyType) string {
	return fmt.Sprintf("%s/v%d/%s", id, version, t)
}

func kcBlock(k kcv.KCV) string {
	if k.Method == kcv.MethodCMAC {
		return "01" + k.String()
	}
	return "00" + k.String()
}

// Forget drops the unwrapped copy of ref that the HSM may hold: the key store
// destroyed that version (keys.Store.OnDestroy).
func (s *Software) Forget(ref KeyRef) {
	s.mu.Lock()
	delete(s.cache, ref)
	s.mu.Unlock()
}

// load unwraps rec's key block under the LMK (or takes it from the cache) and checks
// that the authenticated header matches the record.
func (s *Software) load(rec KeyRecord) (*loaded, error) {
	ref := rec.Ref()
	s.mu.RLock()
	l := s.cache[ref]
	s.mu.RUnlock()
	if l != nil && l.block == rec.Block {
		return l, nil
	}
	h, key, err := tr31.Unwrap(s.lmk, rec.Block)
	if err != nil {
		return nil, fmt.Errorf("unwrap %s under the LMK: %w", ref, err)
	}
	defer sym.Wipe(key)
	if err := checkBinding(rec, h, key); err != nil {
		return nil, err
	}
	l = &loaded{block: rec.Block, header: h, alg: rec.Algorithm}
	if l.kcv, err = kcv.Compute(key, rec.Algorithm.KCVMethod()); err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	if l.kcv.String() != rec.KCV {
		return nil, fmt.Errorf("%w: %s: the key under the LMK has KCV %s, the record says %s", ErrKCVMismatch, ref, l.kcv, rec.KCV)
	}
	if !rec.Algorithm.IsAES() {
		if c, err := sym.NewTDES(key); err == nil {
			var z [8]byte
			c.Encrypt(z[:], z[:])
			l.check16 = strings.ToUpper(hex.EncodeToString(z[:]))
		}
	}
	newBlock := sym.NewTDES
	if rec.Algorithm.IsAES() {
		newBlock = sym.NewAES
	}
	switch h.Usage {
	case tr31.UsageMACAlg3:
		l.retail, err = mac.NewRetail(key, mac.Padding1)
	case tr31.UsageMACCMAC:
		var c cipher.Block
		if c, err = newBlock(key); err == nil {
			l.cmac, err = mac.NewCMAC(c)
		}
	case tr31.UsageCVK:
		l.cvv, err = cvv.New(key)
	case tr31.UsageBDK:
		l.raw = append([]byte(nil), key...)
	case tr31.UsageKEK:
		l.raw = append([]byte(nil), key...)
		l.c, err = newBlock(key)
	default:
		l.c, err = newBlock(key)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	s.mu.Lock()
	if len(s.cache) >= maxCached {
		s.cache = map[KeyRef]*loaded{}
	}
	s.cache[ref] = l
	s.mu.Unlock()
	return l, nil
}

// checkBinding checks that the TR-31 header of a record's LMK block, which the LMK
// authenticates, agrees with the record's metadata (which it does not).
func checkBinding(rec KeyRecord, h tr31.Header, key []byte) error {
	ref := rec.Ref()
	if h.Version != tr31.VersionD {
		return fmt.Errorf("%w: %s: LMK key block is version %c, want D", ErrKeyUsage, ref, h.Version)
	}
	if lb, _ := h.Block("LB"); lb != label(rec.ID, rec.Version, rec.Type) {
		return fmt.Errorf("%w: %s: LMK key block is labelled %q (block swapped between records?)", ErrKeyUsage, ref, lb)
	}
	p, err := ProfileFor(rec.Type, rec.Algorithm, rec.MACAlgorithm)
	if err != nil {
		return fmt.Errorf("%s: %w", ref, err)
	}
	if h.Usage != p.Usage || h.Algorithm != p.Algorithm || h.ModeOfUse != p.ModeOfUse {
		return fmt.Errorf("%w: %s: record says %s (%s %c %c) but the LMK key block says %s %c %c", ErrKeyUsage, ref, rec.Type, p.Usage, p.Algorithm, p.ModeOfUse, h.Usage, h.Algorithm, h.ModeOfUse)
	}
	if len(key) != rec.Algorithm.KeyLength() {
		return fmt.Errorf("%w: %s: key is %d bytes, %s needs %d", ErrKeyUsage, ref, len(key), rec.Algorithm, rec.Algorithm.KeyLength())
	}
	if kc, ok := h.Block("KC"); ok && len(kc) > 2 && kc[2:] != rec.KCV {
		return fmt.Errorf("%w: %s: LMK key block KCV %s, record %s", ErrKCVMismatch, ref, kc[2:], rec.KCV)
	}
	return nil
}

// key resolves ref in the store, checks usability for purpose p and loads it.
func (s *Software) key(ctx context.Context, ref KeyRef, p Purpose) (KeyRecord, *loaded, error) {
	rec, err := s.store.Key(ctx, ref)
	if err != nil {
		return rec, nil, err
	}
	if err := rec.Usable(s.now(), p); err != nil {
		return rec, nil, err
	}
	l, err := s.load(rec)
	return rec, l, err
}

func usageErr(rec KeyRecord, l *loaded, what string) error {
	return fmt.Errorf("%w: %s is a %s (TR-31 usage %s, mode of use %c) and may not be used to %s", ErrKeyUsage, rec.Ref(), rec.Type, l.header.Usage, l.header.ModeOfUse, what)
}

func modeIn(m byte, allowed string) bool { return strings.IndexByte(allowed, m) >= 0 }

// bdk resolves the BDK for a DUKPT operation: ref, or by KSN prefix when ref.ID is empty.
func (s *Software) bdk(ctx context.Context, ref KeyRef, ksn string) (KeyRecord, *loaded, error) {
	var rec KeyRecord
	var err error
	if ref.ID == "" {
		rec, err = s.store.BDKForKSN(ctx, ksn)
	} else {
		rec, err = s.store.Key(ctx, ref)
	}
	if err != nil {
		return rec, nil, err
	}
	if err := rec.Usable(s.now(), Inbound); err != nil {
		return rec, nil, err
	}
	l, err := s.load(rec)
	if err != nil {
		return rec, nil, err
	}
	if l.header.Usage != tr31.UsageBDK || l.raw == nil {
		return rec, nil, usageErr(rec, l, "derive DUKPT keys")
	}
	if rec.Owner != "" && !dukpt.PrefixMatches(ksn, rec.Owner, rec.Algorithm.IsAES()) {
		return rec, nil, fmt.Errorf("%w: KSN %s does not start with the KSN prefix %s of %s", ErrKSNNotOfBDK, ksn, rec.Owner, rec.Ref())
	}
	return rec, l, nil
}

// dukptKey derives a DUKPT working key for ksn: the PIN key (pin) or the MAC key of
// the request or response direction. It returns the key, whether it is AES, and the
// device ID and counter of the KSN.
func (s *Software) dukptKey(ctx context.Context, ref KeyRef, ksn string, pin, response bool) (key []byte, isAES bool, device string, counter uint32, err error) {
	switch len(ksn) {
	case 20:
		k, err := dukpt.ParseKSN(ksn)
		if err != nil {
			return nil, false, "", 0, fmt.Errorf("%w: %w", ErrInput, err)
		}
		rec, l, err := s.bdk(ctx, ref, ksn)
		if err != nil {
			return nil, false, "", 0, err
		}
		if rec.Algorithm.IsAES() {
			return nil, false, "", 0, fmt.Errorf("%w: %s is an AES BDK; a 20-digit KSN is TDES DUKPT", ErrInput, rec.Ref())
		}
		v := dukpt.MACRequestVariant
		switch {
		case pin:
			v = dukpt.PINVariant
		case response:
			v = dukpt.MACResponseVariant
		}
		wk, err := dukpt.DeriveWorkingKey(l.raw, k, v)
		return wk, false, k.DeviceID(), k.Counter(), err
	case 24:
		k, err := dukpt.ParseAESKSN(ksn)
		if err != nil {
			return nil, false, "", 0, fmt.Errorf("%w: %w", ErrInput, err)
		}
		rec, l, err := s.bdk(ctx, ref, ksn)
		if err != nil {
			return nil, false, "", 0, err
		}
		if !rec.Algorithm.IsAES() {
			return nil, false, "", 0, fmt.Errorf("%w: %s is a TDES BDK; a 24-digit KSN is AES DUKPT", ErrInput, rec.Ref())
		}
		kt, _ := dukpt.AESKeyTypeForLength(len(l.raw))
		u := dukpt.UsageMACGeneration
		switch {
		case pin:
			u = dukpt.UsagePINEncryption
		case response:
			u = dukpt.UsageMACVerification
		}
		wk, err := dukpt.DeriveAESWorkingKey(l.raw, k, u, kt)
		return wk, true, k.DeviceID(), k.Counter(), err
	}
	return nil, false, "", 0, fmt.Errorf("%w: KSN %q is %d characters, want 20 (TDES DUKPT) or 24 (AES DUKPT) hex digits", ErrInput, ksn, len(ksn))
}
