package payshield

import (
	"context"
	"crypto/des"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/kcv"
	"github.com/switchyard/switchyard/hsm/pinblock"
	"github.com/switchyard/switchyard/hsm/tr31"
	"github.com/switchyard/switchyard/internal/sym"
)

// hsm serve under a variant LMK. The software HSM it runs on reads keys as TR-31
// key blocks, so the server keeps a second, random AES-256 key of its own for the
// software HSM (never leaves the process, dies with it): each variant token a
// command carries is decrypted under its key type's LMK pair and variant, checked
// for odd parity (how a payShield catches a token sent with the wrong key type
// code: error 10/11), and re-wrapped as a key block under that inner key; a key
// the software HSM creates is unwrapped and encrypted under the variant LMK.

// variantLMK is the 20 LMK pairs of a variant LMK and the inner key.
type variantLMK struct {
	pairs [20][]byte
	inner []byte
	mu    sync.Mutex
	m     map[string]hsm.KeyRecord
	check map[string]string // key ID → 16-digit check value (BU answers it in full)
}

// ParseVariantLMK decodes 20 LMK pairs given as 32 hex digits each (TestLMK's form).
func ParseVariantLMK(pairs [20]string) ([20][]byte, error) {
	var out [20][]byte
	for i, p := range pairs {
		b, err := hex.DecodeString(p)
		if err != nil || len(b) != 16 {
			return out, fmt.Errorf("LMK pair %02d-%02d: want 32 hex digits", 2*i, 2*i+1)
		}
		out[i] = b
	}
	return out, nil
}

// NewVariantServer returns a server holding a variant LMK (20 double-length DES
// pairs, 00-01 to 38-39, which it copies): it takes U, X, T and Y tokens, decrypted
// under the pair and variant of the key type each command gives, and refuses key
// block (S) tokens with error 26.
func NewVariantServer(pairs [20][]byte, opts ServerOptions) (*Server, error) {
	v := &variantLMK{inner: make([]byte, 32), m: map[string]hsm.KeyRecord{}, check: map[string]string{}}
	for i, p := range pairs {
		if len(p) != 16 {
			return nil, fmt.Errorf("hsm serve: LMK pair %02d-%02d is %d bytes, want 16", 2*i, 2*i+1, len(p))
		}
		v.pairs[i] = append([]byte(nil), p...)
	}
	if _, err := rand.Read(v.inner); err != nil {
		return nil, err
	}
	s, err := NewServer(v.inner, opts)
	if err != nil {
		return nil, err
	}
	s.variant = v
	// NC reports the check value of LMK pair 00-01 (the KCV of a variant LMK as
	// payShield's console shows it is this project's reading; 16 digits).
	k, _ := kcv.TDES(v.pairs[0])
	s.lmkC = (k.String() + "0000000000")[:16]
	return s, nil
}

// variantTypeCodes maps key type codes back to the switch's key types; 002 (TPK,
// TMK, PVK share LMK pair 14-15) reads as TPK, and as TMK where a ZMK/TMK flag says so.
var variantTypeCodes = map[string]hsm.KeyType{"000": hsm.ZMK, "001": hsm.ZPK, "002": hsm.TPK, "003": hsm.TAK, "008": hsm.ZAK, "009": hsm.BDK, "402": hsm.CVK, "00A": hsm.DEK}

// buTypeCodes maps BU's 2-digit key type codes to key types.
var buTypeCodes = map[string]hsm.KeyType{"00": hsm.ZMK, "01": hsm.ZPK, "02": hsm.TPK, "03": hsm.TAK, "08": hsm.ZAK, "09": hsm.BDK, "0A": hsm.DEK}

// typeCode reads a 3-digit key type code; an unknown code, or one not among
// allowed (when given), is error 04.
func typeCode(f *Fields, allowed ...hsm.KeyType) (hsm.KeyType, error) {
	c := strings.ToUpper(f.Fixed("key type", 3))
	if err := f.Err(); err != nil {
		return "", err
	}
	t, ok := variantTypeCodes[c]
	if ok && len(allowed) > 0 {
		ok = false
		for _, a := range allowed {
			ok = ok || a == t
		}
	}
	if !ok {
		return "", &codeErr{CodeKeyTypeInvalid, fmt.Errorf("%w: key type code %q is not valid here", hsm.ErrKeyUsage, c)}
	}
	return t, nil
}

// kekType returns the key type a ZMK/TMK flag names.
func kekType(flag string) hsm.KeyType {
	if flag == "1" {
		return hsm.TMK
	}
	return hsm.ZMK
}

// record returns the key record of a variant token as a key of type t (MAC
// algorithm macAlg for a TAK/ZAK; empty: the default of its length).
func (v *variantLMK) record(tok string, t hsm.KeyType, macAlg hsm.MACAlgorithm) (hsm.KeyRecord, error) {
	if !isVariantToken(tok) {
		return hsm.KeyRecord{}, fmt.Errorf("%w: key scheme of %s: this hsm serve holds a variant LMK and takes U, X, T and Y tokens", errScheme, tokenShape(tok))
	}
	cacheKey := tok + "|" + string(t) + "|" + string(macAlg)
	v.mu.Lock()
	rec, ok := v.m[cacheKey]
	v.mu.Unlock()
	if ok {
		return rec, nil
	}
	vt, err := variantTypeOf(t)
	if err != nil {
		return rec, err
	}
	scheme, hx := variantScheme(tok)
	if scheme == 'Z' {
		return rec, fmt.Errorf("%w: single-length DES keys (scheme Z) are not supported", errScheme)
	}
	enc, err := hex.DecodeString(hx)
	if err != nil {
		return rec, fmt.Errorf("%w: key token is not hex", hsm.ErrInput)
	}
	key, err := VariantDecrypt(v.pairs[vt.pair], vt.variant, scheme, enc)
	if err != nil {
		return rec, fmt.Errorf("%w: %w", hsm.ErrInput, err)
	}
	defer sym.Wipe(key)
	if !hasOddParity(key) {
		return rec, fmt.Errorf("%w: the key under LMK key type %s does not have odd parity (wrong key type, or another LMK)", hsm.ErrKeyNotUsable, vt.code)
	}
	alg := hsm.TDES2KEY
	if len(key) == 24 {
		alg = hsm.TDES3KEY
	}
	if (t == hsm.TAK || t == hsm.ZAK) && macAlg == "" {
		macAlg = hsm.MACCMAC
		if alg == hsm.TDES2KEY {
			macAlg = hsm.MACRetail
		}
	}
	if t != hsm.TAK && t != hsm.ZAK {
		macAlg = ""
	}
	p, err := hsm.ProfileFor(t, alg, macAlg)
	if err != nil {
		return rec, err
	}
	k, err := kcv.Compute(key, kcv.MethodTDES)
	if err != nil {
		return rec, err
	}
	full, err := fullCheck(key)
	if err != nil {
		return rec, err
	}
	sum := sha256.Sum256([]byte(cacheKey))
	id := "vt-" + hex.EncodeToString(sum[:8])
	h := tr31.Header{Version: tr31.VersionD, Usage: p.Usage, Algorithm: p.Algorithm, ModeOfUse: p.ModeOfUse, KeyVersion: "01",
		Exportability: p.Exportability, Blocks: []tr31.OptionalBlock{{ID: "KC", Data: "00" + k.String()}, {ID: "LB", Data: fmt.Sprintf("%s/v1/%s", id, t)}}}
	block, err := tr31.Wrap(v.inner, h, key, nil)
	if err != nil {
		return rec, err
	}
	rec = hsm.KeyRecord{ID: id, Version: 1, Type: t, Algorithm: alg, MACAlgorithm: macAlg, KCV: k.String(), KCVMethod: k.Method,
		Status: hsm.StatusActive, Block: block}
	v.mu.Lock()
	if len(v.m) >= maxRecords {
		clear(v.m)
		clear(v.check)
	}
	v.m[cacheKey] = rec
	v.check[id] = full
	v.mu.Unlock()
	return rec, nil
}

// fullCheck is the 16-digit check value of a DES key: zeros encrypted under it.
func fullCheck(key []byte) (string, error) {
	k := append(append([]byte(nil), key...), key[:8]...)
	defer sym.Wipe(k)
	c, err := des.NewTripleDESCipher(k[:24])
	if err != nil {
		return "", err
	}
	out := make([]byte, 8)
	c.Encrypt(out, out)
	return strings.ToUpper(hex.EncodeToString(out)), nil
}

// fullCheckOf returns the 16-digit check value of a key a command resolved.
func (v *variantLMK) fullCheckOf(id string) (string, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	c, ok := v.check[id]
	return c, ok
}

// token encrypts a key the software HSM created (a key block under the inner key)
// under the variant LMK as a key of type t: U (double) or T (triple) and hex.
func (v *variantLMK) token(rec hsm.KeyRecord, t hsm.KeyType) (string, error) {
	vt, err := variantTypeOf(t)
	if err != nil {
		return "", err
	}
	_, key, err := tr31.Unwrap(v.inner, rec.Block)
	if err != nil {
		return "", err
	}
	defer sym.Wipe(key)
	scheme := byte('U')
	switch len(key) {
	case 16:
	case 24:
		scheme = 'T'
	default:
		return "", fmt.Errorf("%w: a variant LMK holds DES keys, not a %d-byte %s key", errScheme, len(key), rec.Algorithm)
	}
	// DES ignores the parity bits, so this is the same key; a payShield refuses a
	// key without odd parity (error 10/11), which is how a token decrypted under the
	// wrong key type's LMK is caught.
	sym.SetOddParity(key)
	enc, err := VariantEncrypt(v.pairs[vt.pair], vt.variant, scheme, key)
	if err != nil {
		return "", err
	}
	return string(scheme) + strings.ToUpper(hex.EncodeToString(enc)), nil
}

// keyType reads a command's key type field: ignored with a key-block LMK (FFF),
// the key type code under a variant LMK.
func (s *Server) keyType(f *Fields, allowed ...hsm.KeyType) (hsm.KeyType, error) {
	if s.variant == nil {
		f.Fixed("key type", 3)
		return "", f.Err()
	}
	return typeCode(f, allowed...)
}

// scheme reads the key scheme (LMK) of a key to create: S with a key-block LMK, U
// (double length) or T (triple) with a variant LMK; others are error 26.
func (s *Server) scheme(f *Fields) (string, error) {
	sc := f.Fixed("key scheme", 1)
	if err := f.Err(); err != nil {
		return "", err
	}
	if (s.variant == nil && sc != "S") || (s.variant != nil && sc != "U" && sc != "T") {
		return "", fmt.Errorf("%w: key scheme (LMK) %q", errScheme, sc)
	}
	return sc, nil
}

func (s *Server) typeAndScheme(f *Fields) (hsm.KeyType, string, error) {
	kt, err := s.keyType(f)
	if err != nil {
		return "", "", err
	}
	sc, err := s.scheme(f)
	return kt, sc, err
}

// readSpec reads the "#" key block header of a key to create; under a variant LMK,
// which has no such header, the spec follows from the key type code and scheme.
func (s *Server) readSpec(f *Fields, kt hsm.KeyType, sc string) (hsm.KeySpec, int, error) {
	if s.variant == nil {
		return readSpec(f)
	}
	spec := hsm.KeySpec{ID: "variant", Type: kt, Algorithm: hsm.TDES2KEY}
	if sc == "T" {
		spec.Algorithm = hsm.TDES3KEY
	}
	if err := spec.Normalize(); err != nil {
		return spec, 0, err
	}
	return spec, 1, nil
}

// kekFlag reads the optional ";" and ZMK/TMK flag that ends A6 and A8 under a
// variant LMK: the KEK's key type (ZMK without it).
func (s *Server) kekFlag(f *Fields) hsm.KeyType {
	if f.Err() == nil && f.Remaining() > 0 && f.Delim(';') {
		return kekType(f.Fixed("ZMK/TMK flag", 1))
	}
	return hsm.ZMK
}

// CI (DUKPT to ZPK, TDES DUKPT only), as payShield lays it out: BDK token, ZPK token,
// KSN descriptor (3), KSN (20 hex), PIN block (16 hex, ISO format 0), destination
// format code, account number (12N). The client uses G0 (which also carries AES
// DUKPT); hsm serve answers CI too, for other systems and the published vectors.
func (s *Server) translateCI(ctx context.Context, sess *session, f *Fields) ([]byte, error) {
	src, err := s.key(sess, f, "BDK", CodeSourceKeyParity, hsm.BDK)
	if err != nil {
		return nil, err
	}
	dst, err := s.key(sess, f, "destination ZPK", CodeDestKeyParity, hsm.ZPK)
	if err != nil {
		return nil, err
	}
	f.Fixed("KSN descriptor", 3)
	req := hsm.TranslatePINRequest{Source: src, Dest: dst, SourceFormat: pinblock.Format0, KSN: f.Hex("KSN", 20)}
	pb := f.Hex("PIN block", 16)
	df := f.Digits("destination format", 2)
	req.PAN = f.readPAN()
	f.End()
	if err := f.Err(); err != nil {
		return nil, err
	}
	var ok bool
	if req.DestFormat, ok = pinFormatOf(df); !ok {
		return nil, &codeErr{CodePINFormatInvalid, fmt.Errorf("%w: destination PIN block format code %q", hsm.ErrInput, df)}
	}
	rec := sess.keys[src]
	sess.bdk = &rec
	req.PINBlock, _ = hex.DecodeString(pb)
	out, err := s.sw.TranslatePIN(ctx, req)
	if err != nil {
		return nil, err
	}
	body := append([]byte("00"), strings.ToUpper(hex.EncodeToString(out))...)
	return append(body, df...), nil
}
