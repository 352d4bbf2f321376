package hsm

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/hsm/cvv"
	"github.com/switchyard/switchyard/hsm/dukpt"
	"github.com/switchyard/switchyard/hsm/internal/sym"
	"github.com/switchyard/switchyard/hsm/kcv"
	"github.com/switchyard/switchyard/hsm/mac"
	"github.com/switchyard/switchyard/hsm/pinblock"
	"github.com/switchyard/switchyard/hsm/tr31"
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
	// Log receives key lifecycle events (never key bytes); nil means no logging.
	Log *zerolog.Logger
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
	if opts.Log != nil {
		s.log = *opts.Log
	} else {
		s.log = zerolog.Nop()
	}
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

// checkPINKey checks a key may encrypt (enc) or decrypt PIN blocks.
func checkPINKey(rec KeyRecord, l *loaded, enc bool) error {
	modes, what := "BD", "decrypt PIN blocks"
	if enc {
		modes, what = "BE", "encrypt PIN blocks"
	}
	if l.header.Usage != tr31.UsagePIN || !modeIn(l.header.ModeOfUse, modes) || l.c == nil {
		return usageErr(rec, l, what)
	}
	return nil
}

func isDecodeErr(err error) bool {
	return errors.Is(err, pinblock.ErrControl) || errors.Is(err, pinblock.ErrFill) ||
		errors.Is(err, pinblock.ErrPINLength) || errors.Is(err, pinblock.ErrPINDigits)
}

// decryptStatic decrypts a PIN block under a static PIN key, trying the versions in
// their grace window when ref names the current version and decoding fails.
func (s *Software) decryptStatic(ctx context.Context, ref KeyRef, f pinblock.Format, block []byte, pan string, dst []byte) ([]byte, error) {
	rec, l, err := s.key(ctx, ref, Inbound)
	if err != nil {
		return dst, err
	}
	if err := checkPINKey(rec, l, false); err != nil {
		return dst, err
	}
	if l.c.BlockSize() != f.BlockSize() {
		return dst, fmt.Errorf("%w: %s is a %s key; PIN block %s needs %s", ErrInput, rec.Ref(), rec.Algorithm, f, map[bool]string{true: "an AES key", false: "a TDES key"}[f == pinblock.Format4])
	}
	pin, err := pinblock.AppendDecrypt(dst, l.c, f, block, pan)
	if err == nil || ref.Version != 0 || !isDecodeErr(err) {
		if err != nil {
			return dst, fmt.Errorf("PIN block under %s: %w", rec.Ref(), err)
		}
		return pin, nil
	}
	firstErr := fmt.Errorf("PIN block under %s: %w", rec.Ref(), err)
	olds, gerr := s.store.GraceVersions(ctx, ref.ID)
	if gerr != nil {
		return dst, firstErr
	}
	for _, old := range olds {
		if old.Usable(s.now(), Inbound) != nil {
			continue
		}
		ol, lerr := s.load(old)
		if lerr != nil || checkPINKey(old, ol, false) != nil || ol.c.BlockSize() != f.BlockSize() {
			continue
		}
		if pin, err := pinblock.AppendDecrypt(dst, ol.c, f, block, pan); err == nil {
			return pin, nil
		}
	}
	return dst, firstErr
}

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
		return rec, nil, fmt.Errorf("%w: KSN %s does not start with the KSN prefix %s of %s", ErrKeyUsage, ksn, rec.Owner, rec.Ref())
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

func (s *Software) decryptDUKPT(ctx context.Context, req *TranslatePINRequest, dst []byte) ([]byte, error) {
	wk, isAES, device, counter, err := s.dukptKey(ctx, req.Source, req.KSN, true, false)
	if err != nil {
		return dst, err
	}
	var c cipher.Block
	if isAES {
		c, err = sym.NewAES(wk)
	} else {
		c, err = sym.NewTDES(wk)
	}
	sym.Wipe(wk)
	if err != nil {
		return dst, err
	}
	if c.BlockSize() != req.SourceFormat.BlockSize() {
		return dst, fmt.Errorf("%w: DUKPT KSN %s is %s; PIN block %s does not fit", ErrInput, req.KSN, map[bool]string{true: "AES (format 4)", false: "TDES (formats 0, 1, 3)"}[isAES], req.SourceFormat)
	}
	pin, err := pinblock.AppendDecrypt(dst, c, req.SourceFormat, req.PINBlock, req.PAN)
	if err != nil {
		return dst, fmt.Errorf("PIN block under DUKPT KSN %s: %w", req.KSN, err)
	}
	if err := s.store.AdvanceDUKPTCounter(ctx, device, counter); err != nil {
		sym.Wipe(pin)
		return dst, fmt.Errorf("DUKPT KSN %s: %w", req.KSN, err)
	}
	return pin, nil
}

// TranslatePIN implements HSM.
func (s *Software) TranslatePIN(ctx context.Context, req TranslatePINRequest) ([]byte, error) {
	if err := CheckTranslation(req.SourceFormat, req.DestFormat, s.opts.Policy); err != nil {
		return nil, fmt.Errorf("translate PIN: %w", err)
	}
	if len(req.PINBlock) != req.SourceFormat.BlockSize() {
		return nil, fmt.Errorf("translate PIN: %w: PIN block is %d bytes, %s needs %d", ErrInput, len(req.PINBlock), req.SourceFormat, req.SourceFormat.BlockSize())
	}
	drec, dl, err := s.key(ctx, req.Dest, Outbound)
	if err != nil {
		return nil, fmt.Errorf("translate PIN: destination: %w", err)
	}
	if err := checkPINKey(drec, dl, true); err != nil {
		return nil, fmt.Errorf("translate PIN: %w", err)
	}
	if dl.c.BlockSize() != req.DestFormat.BlockSize() {
		return nil, fmt.Errorf("translate PIN: %w: destination %s is a %s key, PIN block %s does not fit it", ErrInput, drec.Ref(), drec.Algorithm, req.DestFormat)
	}
	sc := scratchPool.Get().(*scratch)
	defer func() {
		clear(sc.buf[:])
		scratchPool.Put(sc)
	}()
	var pin []byte
	if req.KSN != "" {
		pin, err = s.decryptDUKPT(ctx, &req, sc.buf[:0])
	} else {
		pin, err = s.decryptStatic(ctx, req.Source, req.SourceFormat, req.PINBlock, req.PAN, sc.buf[:0])
	}
	if err != nil {
		return nil, fmt.Errorf("translate PIN: %w", err)
	}
	out, err := pinblock.AppendEncrypt(make([]byte, 0, 16), dl.c, req.DestFormat, pin, req.PAN, s.opts.Rand)
	sym.Wipe(pin)
	if err != nil {
		return nil, fmt.Errorf("translate PIN: encrypt under %s: %w", drec.Ref(), err)
	}
	return out, nil
}

// VerifyPIN implements HSM.
func (s *Software) VerifyPIN(ctx context.Context, req VerifyPINRequest) error {
	if err := pinblock.CheckPIN(req.ReferencePIN); err != nil {
		return fmt.Errorf("verify PIN: %w: reference PIN: %w", ErrInput, err)
	}
	if len(req.PINBlock) != req.Format.BlockSize() || !req.Format.Valid() {
		return fmt.Errorf("verify PIN: %w: PIN block is %d bytes for %s", ErrInput, len(req.PINBlock), req.Format)
	}
	sc := scratchPool.Get().(*scratch)
	defer func() {
		clear(sc.buf[:])
		scratchPool.Put(sc)
	}()
	pin, err := s.decryptStatic(ctx, req.Key, req.Format, req.PINBlock, req.PAN, sc.buf[:0])
	if err != nil {
		return fmt.Errorf("verify PIN: %w", err)
	}
	ok := subtle.ConstantTimeCompare(pin, req.ReferencePIN) == 1
	sym.Wipe(pin)
	if !ok {
		return fmt.Errorf("verify PIN under %s: %w", req.Key, ErrPINMismatch)
	}
	return nil
}

func checkMACKey(rec KeyRecord, l *loaded, generate bool) error {
	modes, what := "CV", "verify MACs"
	if generate {
		modes, what = "CG", "generate MACs"
	}
	if (l.retail == nil && l.cmac == nil) || !modeIn(l.header.ModeOfUse, modes) {
		return usageErr(rec, l, what)
	}
	return nil
}

func (l *loaded) macSum(dst, data []byte) []byte {
	if l.retail != nil {
		return l.retail.Sum(dst, data)
	}
	return l.cmac.Sum(dst, data)[:len(dst)+MACLength]
}

func (l *loaded) macVerify(m, data []byte) bool {
	if l.retail != nil {
		return l.retail.Verify(m, data)
	}
	return l.cmac.Verify(m, data)
}

// dukptMAC computes the 8-byte DUKPT MAC of data into dst (request or response
// direction: TDES retail MAC with the MAC variant, AES CMAC with the MAC
// generation/verification working key).
func (s *Software) dukptMAC(ctx context.Context, key KeyRef, ksn string, response bool, data, dst []byte) ([]byte, error) {
	wk, isAES, _, _, err := s.dukptKey(ctx, key, ksn, false, response)
	if err != nil {
		return nil, err
	}
	defer sym.Wipe(wk)
	if isAES {
		m, err := mac.NewAESCMAC(wk)
		if err != nil {
			return nil, err
		}
		return m.Sum(dst, data)[:len(dst)+MACLength], nil
	}
	r, err := mac.NewRetail(wk, mac.Padding1)
	if err != nil {
		return nil, err
	}
	return r.Sum(dst, data), nil
}

// GenerateMAC implements HSM.
func (s *Software) GenerateMAC(ctx context.Context, req MACRequest) ([]byte, error) {
	if req.KSN != "" {
		m, err := s.dukptMAC(ctx, req.Key, req.KSN, req.Response, req.Data, make([]byte, 0, 16))
		if err != nil {
			return nil, fmt.Errorf("generate MAC: %w", err)
		}
		return m, nil
	}
	rec, l, err := s.key(ctx, req.Key, Outbound)
	if err != nil {
		return nil, fmt.Errorf("generate MAC: %w", err)
	}
	if err := checkMACKey(rec, l, true); err != nil {
		return nil, fmt.Errorf("generate MAC: %w", err)
	}
	return l.macSum(make([]byte, 0, 16), req.Data), nil
}

// VerifyMAC implements HSM. With version 0 it also tries the versions of the key in
// their grace window.
func (s *Software) VerifyMAC(ctx context.Context, req MACRequest, m []byte) error {
	if len(m) != MACLength {
		return fmt.Errorf("verify MAC: %w: MAC is %d bytes, want %d", ErrInput, len(m), MACLength)
	}
	if req.KSN != "" {
		got, err := s.dukptMAC(ctx, req.Key, req.KSN, req.Response, req.Data, make([]byte, 0, 16))
		if err != nil {
			return fmt.Errorf("verify MAC: %w", err)
		}
		if !mac.Equal(got, m) {
			return fmt.Errorf("verify MAC under DUKPT KSN %s: %w", req.KSN, ErrMACMismatch)
		}
		return nil
	}
	rec, l, err := s.key(ctx, req.Key, Inbound)
	if err != nil {
		return fmt.Errorf("verify MAC: %w", err)
	}
	if err := checkMACKey(rec, l, false); err != nil {
		return fmt.Errorf("verify MAC: %w", err)
	}
	if l.macVerify(m, req.Data) {
		return nil
	}
	if req.Key.Version == 0 {
		olds, _ := s.store.GraceVersions(ctx, req.Key.ID)
		for _, old := range olds {
			if old.Usable(s.now(), Inbound) != nil {
				continue
			}
			ol, err := s.load(old)
			if err == nil && checkMACKey(old, ol, false) == nil && ol.macVerify(m, req.Data) {
				return nil
			}
		}
	}
	return fmt.Errorf("verify MAC under %s: %w", rec.Ref(), ErrMACMismatch)
}

func (s *Software) cvk(ctx context.Context, ref KeyRef, p Purpose, what string) (*loaded, error) {
	rec, l, err := s.key(ctx, ref, p)
	if err != nil {
		return nil, err
	}
	if l.cvv == nil {
		return nil, usageErr(rec, l, what)
	}
	return l, nil
}

// GenerateCVV implements HSM.
func (s *Software) GenerateCVV(ctx context.Context, req CVVRequest) (string, error) {
	l, err := s.cvk(ctx, req.Key, Outbound, "compute CVVs")
	if err != nil {
		return "", fmt.Errorf("generate CVV: %w", err)
	}
	v, err := l.cvv.Compute(req.PAN, req.Expiry, req.ServiceCode)
	if err != nil {
		return "", fmt.Errorf("generate CVV: %w: %w", ErrInput, err)
	}
	return v, nil
}

// VerifyCVV implements HSM.
func (s *Software) VerifyCVV(ctx context.Context, req CVVRequest, value string) error {
	l, err := s.cvk(ctx, req.Key, Inbound, "verify CVVs")
	if err != nil {
		return fmt.Errorf("verify CVV: %w", err)
	}
	ok, err := l.cvv.Verify(value, req.PAN, req.Expiry, req.ServiceCode)
	if err != nil {
		return fmt.Errorf("verify CVV: %w: %w", ErrInput, err)
	}
	if !ok {
		return fmt.Errorf("verify CVV under %s: %w", req.Key, ErrCVVMismatch)
	}
	return nil
}

// kek resolves a KEK for wrapping (export) or unwrapping (import).
func (s *Software) kek(ctx context.Context, ref KeyRef, wrap bool) (KeyRecord, *loaded, error) {
	p, modes, what := Inbound, "BD", "unwrap keys"
	if wrap {
		p, modes, what = Outbound, "BE", "wrap keys"
	}
	rec, l, err := s.key(ctx, ref, p)
	if err != nil {
		return rec, nil, err
	}
	if (l.header.Usage != tr31.UsageKEK && l.header.Usage != tr31.UsageKBPK) || !modeIn(l.header.ModeOfUse, modes) || l.raw == nil {
		return rec, nil, usageErr(rec, l, what)
	}
	return rec, l, nil
}

// newRecord wraps key under the LMK and stores it as version version of spec.ID.
func (s *Software) newRecord(ctx context.Context, spec KeySpec, version int, key []byte, exportability byte, action, detail string) (KeyResult, KeyRecord, error) {
	prof, err := ProfileFor(spec.Type, spec.Algorithm, spec.MACAlgorithm)
	if err != nil {
		return KeyResult{}, KeyRecord{}, err
	}
	if exportability == 0 {
		exportability = prof.Exportability
	}
	k, err := kcv.Compute(key, spec.Algorithm.KCVMethod())
	if err != nil {
		return KeyResult{}, KeyRecord{}, err
	}
	h := tr31.Header{
		Version: tr31.VersionD, Usage: prof.Usage, Algorithm: prof.Algorithm, ModeOfUse: prof.ModeOfUse,
		KeyVersion: fmt.Sprintf("%02d", version%100), Exportability: exportability,
		Blocks: []tr31.OptionalBlock{{ID: "KC", Data: kcBlock(k)}, {ID: "LB", Data: label(spec.ID, version, spec.Type)}},
	}
	block, err := tr31.Wrap(s.lmk, h, key, s.opts.Rand)
	if err != nil {
		return KeyResult{}, KeyRecord{}, fmt.Errorf("wrap under the LMK: %w", err)
	}
	now := s.now().UTC()
	act := spec.ActivateAt
	if act.IsZero() {
		act = now
	}
	rec := KeyRecord{
		ID: spec.ID, Version: version, Type: spec.Type, Algorithm: spec.Algorithm, MACAlgorithm: spec.MACAlgorithm,
		Owner: spec.Owner, KCV: k.String(), KCVMethod: k.Method, Status: StatusActive,
		ActivateAt: act.UTC(), ExpiresAt: spec.ExpiresAt.UTC(), CreatedAt: now, CreatedBy: ActorFrom(ctx), Block: block,
	}
	if spec.ExpiresAt.IsZero() {
		rec.ExpiresAt = time.Time{}
	}
	var grace time.Time
	if version > 1 && spec.Grace > 0 {
		start := now
		if act.After(start) {
			start = act
		}
		grace = start.Add(spec.Grace)
	}
	ev := AuditEvent{Actor: ActorFrom(ctx), Action: action, KeyID: spec.ID, Version: version, KeyType: string(spec.Type), KCV: rec.KCV, Detail: detail}
	if err := s.store.Put(ctx, PutRequest{Record: rec, SupersedeGraceUntil: grace, Event: ev}); err != nil {
		return KeyResult{}, KeyRecord{}, err
	}
	s.log.Info().Str("key", rec.Ref().String()).Str("type", string(rec.Type)).Str("kcv", rec.KCV).Str("actor", ev.Actor).Str("action", action).Msg("key stored")
	return KeyResult{Ref: rec.Ref(), Type: rec.Type, Algorithm: rec.Algorithm, KCV: rec.KCV, KCVMethod: rec.KCVMethod}, rec, nil
}

// prepare normalises spec and finds the version a new key gets.
func (s *Software) prepare(ctx context.Context, spec *KeySpec) (int, error) {
	if err := spec.Normalize(); err != nil {
		return 0, err
	}
	v, t, err := s.store.NextVersion(ctx, spec.ID)
	if err != nil {
		return 0, err
	}
	if v > 1 && t != spec.Type {
		return 0, fmt.Errorf("%w: key %s is a %s; a new version must be a %s too, not a %s", ErrInput, spec.ID, t, t, spec.Type)
	}
	return v, nil
}

func (s *Software) randomKey(alg Algorithm) ([]byte, error) {
	key := make([]byte, alg.KeyLength())
	if _, err := io.ReadFull(s.opts.Rand, key); err != nil {
		return nil, fmt.Errorf("random key: %w", err)
	}
	if !alg.IsAES() {
		sym.SetOddParity(key)
	}
	return key, nil
}

// GenerateKey implements HSM.
func (s *Software) GenerateKey(ctx context.Context, req GenerateKeyRequest) (KeyResult, error) {
	version, err := s.prepare(ctx, &req.KeySpec)
	if err != nil {
		return KeyResult{}, fmt.Errorf("generate key: %w", err)
	}
	var kl *loaded
	var krec KeyRecord
	if req.Export != nil {
		if krec, kl, err = s.kek(ctx, req.Export.KEK, true); err != nil {
			return KeyResult{}, fmt.Errorf("generate key %s: export KEK: %w", req.ID, err)
		}
		prof, _ := ProfileFor(req.Type, req.Algorithm, req.MACAlgorithm)
		if err := checkExport(req.Algorithm, prof.Exportability, krec, req.Export.Format); err != nil {
			return KeyResult{}, fmt.Errorf("generate key %s: %w", req.ID, err)
		}
	}
	key, err := s.randomKey(req.Algorithm)
	if err != nil {
		return KeyResult{}, fmt.Errorf("generate key %s: %w", req.ID, err)
	}
	defer sym.Wipe(key)
	detail := "random"
	if req.Export != nil {
		detail = fmt.Sprintf("random, exported under %s as %s", krec.Ref(), req.Export.Format)
	}
	action := "generate"
	if version > 1 {
		action = "rotate"
	}
	res, rec, err := s.newRecord(ctx, req.KeySpec, version, key, 0, action, detail)
	if err != nil {
		return KeyResult{}, fmt.Errorf("generate key %s: %w", req.ID, err)
	}
	if req.Export != nil {
		h, _, _ := tr31.ParseHeader(rec.Block)
		if res.Exported, err = s.exportUnder(h, key, res.KCV, krec, kl, req.Export.Format); err != nil {
			return res, fmt.Errorf("generate key: stored as %s but the export failed: %w", res.Ref, err)
		}
	}
	return res, nil
}

// FormKey implements HSM.
func (s *Software) FormKey(ctx context.Context, req FormKeyRequest) (KeyResult, error) {
	version, err := s.prepare(ctx, &req.KeySpec)
	if err != nil {
		return KeyResult{}, fmt.Errorf("form key: %w", err)
	}
	if len(req.Components) < 2 || len(req.Components) > 3 {
		return KeyResult{}, fmt.Errorf("form key %s: %w: %d components, want 2 or 3", req.ID, ErrInput, len(req.Components))
	}
	n := req.Algorithm.KeyLength()
	key := make([]byte, n)
	defer sym.Wipe(key)
	var kcvs []string
	for i, c := range req.Components {
		if len(c) != n {
			return KeyResult{}, fmt.Errorf("form key %s: %w: component %d is %d bytes, a %s key needs %d", req.ID, ErrInput, i+1, len(c), req.Algorithm, n)
		}
		ck, err := kcv.Compute(c, req.Algorithm.KCVMethod())
		if err != nil {
			return KeyResult{}, fmt.Errorf("form key %s: component %d: %w", req.ID, i+1, err)
		}
		kcvs = append(kcvs, ck.String())
		sym.XOR(key, key, c)
	}
	if !req.Algorithm.IsAES() {
		sym.SetOddParity(key)
	}
	res, _, err := s.newRecord(ctx, req.KeySpec, version, key, 0, "form", fmt.Sprintf("from %d components, KCVs %s", len(kcvs), strings.Join(kcvs, " ")))
	if err != nil {
		return KeyResult{}, fmt.Errorf("form key %s: %w", req.ID, err)
	}
	res.ComponentKCVs = kcvs
	return res, nil
}

var exportRank = map[byte]int{tr31.ExportNone: 0, tr31.ExportTrusted: 1, tr31.ExportSensitive: 2}

// ImportKey implements HSM.
func (s *Software) ImportKey(ctx context.Context, req ImportKeyRequest) (KeyResult, error) {
	version, err := s.prepare(ctx, &req.KeySpec)
	if err != nil {
		return KeyResult{}, fmt.Errorf("import key: %w", err)
	}
	if (req.TR31 == "") == (req.ECB == "") {
		return KeyResult{}, fmt.Errorf("import key %s: %w: give exactly one of a TR-31 block and an ECB hex key", req.ID, ErrInput)
	}
	krec, kl, err := s.kek(ctx, req.KEK, false)
	if err != nil {
		return KeyResult{}, fmt.Errorf("import key %s: KEK: %w", req.ID, err)
	}
	prof, _ := ProfileFor(req.Type, req.Algorithm, req.MACAlgorithm)
	var key []byte
	exportability := prof.Exportability
	wantKCV := strings.ToUpper(strings.TrimSpace(req.KCV))
	form := "tr31"
	if req.TR31 != "" {
		h, k, err := tr31.Unwrap(kl.raw, strings.TrimSpace(req.TR31))
		if err != nil {
			return KeyResult{}, fmt.Errorf("import key %s: TR-31 block under %s: %w", req.ID, krec.Ref(), err)
		}
		key = k
		defer sym.Wipe(key)
		if h.Usage != prof.Usage || h.Algorithm != prof.Algorithm {
			return KeyResult{}, fmt.Errorf("import key %s: %w: the TR-31 block holds usage %s algorithm %c, a %s (%s) needs usage %s algorithm %c", req.ID, ErrKeyUsage, h.Usage, h.Algorithm, req.Type, req.Algorithm, prof.Usage, prof.Algorithm)
		}
		if exportRank[h.Exportability] < exportRank[exportability] {
			exportability = h.Exportability
		}
		if kc, ok := h.Block("KC"); ok && len(kc) > 2 {
			if wantKCV == "" {
				wantKCV = kc[2:]
			} else if kc[2:] != wantKCV {
				return KeyResult{}, fmt.Errorf("import key %s: %w: the TR-31 block's KC says %s, the request %s", req.ID, ErrKCVMismatch, kc[2:], wantKCV)
			}
		}
	} else {
		form = "ecb"
		hexKey, kcvPart, found := strings.Cut(strings.TrimSpace(req.ECB), ":")
		if found {
			if wantKCV != "" && !strings.EqualFold(kcvPart, wantKCV) {
				return KeyResult{}, fmt.Errorf("import key %s: %w: the ECB form says KCV %s, the request %s", req.ID, ErrKCVMismatch, strings.ToUpper(kcvPart), wantKCV)
			}
			wantKCV = strings.ToUpper(kcvPart)
		}
		if wantKCV == "" {
			return KeyResult{}, fmt.Errorf("import key %s: %w: an ECB import needs the key's KCV (\"HEXKEY:KCV\" or the kcv field)", req.ID, ErrInput)
		}
		enc, err := hex.DecodeString(hexKey)
		if err != nil || len(enc) != req.Algorithm.KeyLength() || len(enc)%kl.c.BlockSize() != 0 {
			return KeyResult{}, fmt.Errorf("import key %s: %w: ECB key must be %d bytes of hex (a %s key)", req.ID, ErrInput, req.Algorithm.KeyLength(), req.Algorithm)
		}
		key = make([]byte, len(enc))
		defer sym.Wipe(key)
		for i := 0; i < len(enc); i += kl.c.BlockSize() {
			kl.c.Decrypt(key[i:], enc[i:])
		}
	}
	if len(key) != req.Algorithm.KeyLength() {
		return KeyResult{}, fmt.Errorf("import key %s: %w: the key is %d bytes, a %s key is %d", req.ID, ErrInput, len(key), req.Algorithm, req.Algorithm.KeyLength())
	}
	got, err := kcv.Compute(key, req.Algorithm.KCVMethod())
	if err != nil {
		return KeyResult{}, fmt.Errorf("import key %s: %w", req.ID, err)
	}
	// A TR-31 block authenticates its key, so its KCV check is optional; an ECB key
	// always has one (checked above).
	if wantKCV != "" {
		if len(wantKCV) < 2*kcv.Length {
			return KeyResult{}, fmt.Errorf("import key %s: %w: expected KCV %q is shorter than 6 hex digits", req.ID, ErrInput, wantKCV)
		}
		if subtle.ConstantTimeCompare([]byte(got.String()), []byte(wantKCV[:2*kcv.Length])) != 1 {
			return KeyResult{}, fmt.Errorf("import key %s: %w: the key's KCV is %s, expected %s (wrong KEK or damaged key)", req.ID, ErrKCVMismatch, got, wantKCV)
		}
	}
	res, _, err := s.newRecord(ctx, req.KeySpec, version, key, exportability, "import", fmt.Sprintf("%s under %s", form, krec.Ref()))
	if err != nil {
		return KeyResult{}, fmt.Errorf("import key %s: %w", req.ID, err)
	}
	return res, nil
}

// checkExport checks that a key of algorithm alg with the given exportability may
// be exported under the KEK krec in format f.
func checkExport(alg Algorithm, exportability byte, krec KeyRecord, f ExportFormat) error {
	switch f {
	case ExportTR31:
		if exportability == tr31.ExportNone {
			return fmt.Errorf("%w: the key is not exportable (TR-31 exportability N)", ErrPolicy)
		}
	case ExportECB:
		if exportability != tr31.ExportSensitive {
			return fmt.Errorf("%w: only keys with TR-31 exportability S may leave in ECB form; use tr31", ErrPolicy)
		}
		if alg.IsAES() != krec.Algorithm.IsAES() {
			return fmt.Errorf("%w: ECB export of a %s key under the %s KEK %s is not supported", ErrPolicy, alg, krec.Algorithm, krec.Ref())
		}
	default:
		return fmt.Errorf("%w: unknown export format %q (want tr31 or ecb)", ErrInput, f)
	}
	if alg.IsAES() && !krec.Algorithm.IsAES() {
		return fmt.Errorf("%w: an %s key may not be exported under the weaker %s KEK %s", ErrPolicy, alg, krec.Algorithm, krec.Ref())
	}
	if alg.KeyLength() > krec.Algorithm.KeyLength() && alg.IsAES() == krec.Algorithm.IsAES() {
		return fmt.Errorf("%w: a %s key may not be exported under the shorter %s KEK %s", ErrPolicy, alg, krec.Algorithm, krec.Ref())
	}
	return nil
}

// exportUnder wraps key (with its LMK header h) under the KEK.
func (s *Software) exportUnder(h tr31.Header, key []byte, keyKCV string, krec KeyRecord, kl *loaded, f ExportFormat) (string, error) {
	if f == ExportECB {
		bs := kl.c.BlockSize()
		if len(key)%bs != 0 {
			return "", fmt.Errorf("%w: a %d-byte key does not fill whole %d-byte blocks of the KEK", ErrPolicy, len(key), bs)
		}
		enc := make([]byte, len(key))
		for i := 0; i < len(key); i += bs {
			kl.c.Encrypt(enc[i:], key[i:])
		}
		return strings.ToUpper(hex.EncodeToString(enc)) + ":" + keyKCV, nil
	}
	v := tr31.VersionB
	if krec.Algorithm.IsAES() {
		v = tr31.VersionD
	}
	m := kcv.MethodTDES
	if h.Algorithm == tr31.AlgAES {
		m = kcv.MethodCMAC
	}
	out := tr31.Header{Version: v, Usage: h.Usage, Algorithm: h.Algorithm, ModeOfUse: h.ModeOfUse, KeyVersion: "00", Exportability: tr31.ExportNone,
		Blocks: []tr31.OptionalBlock{{ID: "KC", Data: kcBlock(kcv.KCV{Method: m, Value: mustHexKCV(keyKCV)})}}}
	return tr31.Wrap(kl.raw, out, key, s.opts.Rand)
}

func mustHexKCV(s string) []byte {
	b, _ := hex.DecodeString(s)
	return b
}

// ExportKey implements HSM.
func (s *Software) ExportKey(ctx context.Context, req ExportKeyRequest) (string, error) {
	rec, err := s.store.Key(ctx, req.Key)
	if err != nil {
		return "", fmt.Errorf("export key: %w", err)
	}
	if err := rec.Usable(s.now(), Distribute); err != nil {
		return "", fmt.Errorf("export key: %w", err)
	}
	h, key, err := tr31.Unwrap(s.lmk, rec.Block)
	if err != nil {
		return "", fmt.Errorf("export key %s: unwrap under the LMK: %w", rec.Ref(), err)
	}
	defer sym.Wipe(key)
	if err := checkBinding(rec, h, key); err != nil {
		return "", fmt.Errorf("export key: %w", err)
	}
	krec, kl, err := s.kek(ctx, req.KEK, true)
	if err != nil {
		return "", fmt.Errorf("export key %s: KEK: %w", rec.Ref(), err)
	}
	if krec.ID == rec.ID {
		return "", fmt.Errorf("export key %s: %w: a key may not be exported under itself", rec.Ref(), ErrPolicy)
	}
	if err := checkExport(rec.Algorithm, h.Exportability, krec, req.Format); err != nil {
		return "", fmt.Errorf("export key %s: %w", rec.Ref(), err)
	}
	out, err := s.exportUnder(h, key, rec.KCV, krec, kl, req.Format)
	if err != nil {
		return "", fmt.Errorf("export key %s: %w", rec.Ref(), err)
	}
	ev := AuditEvent{Actor: ActorFrom(ctx), Action: "export", KeyID: rec.ID, Version: rec.Version, KeyType: string(rec.Type), KCV: rec.KCV,
		Detail: fmt.Sprintf("under %s as %s", krec.Ref(), req.Format)}
	if err := s.store.Audit(ctx, ev); err != nil {
		return "", fmt.Errorf("export key %s: audit: %w", rec.Ref(), err)
	}
	s.log.Info().Str("key", rec.Ref().String()).Str("kek", krec.Ref().String()).Str("format", string(req.Format)).Str("actor", ev.Actor).Msg("key exported")
	return out, nil
}

// KCV implements HSM: it recomputes the check value from the key itself.
func (s *Software) KCV(ctx context.Context, ref KeyRef) (KeyCheck, error) {
	rec, err := s.store.Key(ctx, ref)
	if err != nil {
		return KeyCheck{}, fmt.Errorf("KCV: %w", err)
	}
	if err := rec.Usable(s.now(), Distribute); err != nil {
		return KeyCheck{}, fmt.Errorf("KCV: %w", err)
	}
	l, err := s.load(rec)
	if err != nil {
		return KeyCheck{}, fmt.Errorf("KCV: %w", err)
	}
	return KeyCheck{Ref: rec.Ref(), KCV: l.kcv.String(), Method: l.kcv.Method}, nil
}
