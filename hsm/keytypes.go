package hsm

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"

	"github.com/switchyard/switchyard/hsm/dukpt"
	"github.com/switchyard/switchyard/hsm/kcv"
	"github.com/switchyard/switchyard/hsm/tr31"
	"github.com/switchyard/switchyard/internal/carddata"
)

// KeyType is the role of a key. Each type has exactly one purpose, enforced through
// the TR-31 key usage and mode of use of the key's LMK key block.
type KeyType string

// The key types.
const (
	TMK KeyType = "TMK" // terminal master key: KEK for a terminal's working keys (K0)
	ZMK KeyType = "ZMK" // zone master key: KEK shared with another party (K0)
	TPK KeyType = "TPK" // terminal PIN key (P0)
	ZPK KeyType = "ZPK" // zone PIN key (P0)
	TAK KeyType = "TAK" // terminal MAC key (M3 retail or M6 CMAC)
	ZAK KeyType = "ZAK" // zone MAC key (M3 retail or M6 CMAC)
	BDK KeyType = "BDK" // DUKPT base derivation key (B0)
	CVK KeyType = "CVK" // card verification key pair A|B (C0)
	DEK KeyType = "DEK" // data encryption key (D0)
	// TDK is a terminal data key: the terminal encrypts track data under it, the
	// switch only decrypts (D0, mode D); unlike a DEK it may leave in ECB form
	// under the terminal's TMK, as UnionPay sign-in scheme 004 sends it.
	TDK KeyType = "TDK"
)

// KeyTypes lists every key type.
var KeyTypes = []KeyType{TMK, ZMK, TPK, ZPK, TAK, ZAK, BDK, CVK, DEK, TDK}

// Valid reports whether t is a known key type.
func (t KeyType) Valid() bool {
	for _, k := range KeyTypes {
		if t == k {
			return true
		}
	}
	return false
}

// IsKEK reports whether keys of type t encrypt other keys (TMK, ZMK).
func (t KeyType) IsKEK() bool { return t == TMK || t == ZMK }

// Algorithm is a key's cipher and length.
type Algorithm string

// The key algorithms.
const (
	TDES2KEY Algorithm = "TDES-2KEY" // 16 bytes
	TDES3KEY Algorithm = "TDES-3KEY" // 24 bytes
	AES128   Algorithm = "AES-128"
	AES192   Algorithm = "AES-192"
	AES256   Algorithm = "AES-256"
)

// KeyLength returns the key length in bytes, or 0 for an unknown algorithm.
func (a Algorithm) KeyLength() int {
	switch a {
	case TDES2KEY, AES128:
		return 16
	case TDES3KEY, AES192:
		return 24
	case AES256:
		return 32
	}
	return 0
}

// IsAES reports whether a is an AES algorithm.
func (a Algorithm) IsAES() bool { return strings.HasPrefix(string(a), "AES") }

// KCVMethod returns the KCV method for keys of algorithm a.
func (a Algorithm) KCVMethod() kcv.Method {
	if a.IsAES() {
		return kcv.MethodCMAC
	}
	return kcv.MethodTDES
}

// ParseAlgorithm accepts the Algorithm names case-insensitively, plus "tdes" (2-key
// TDES) and "aes" (AES-128).
func ParseAlgorithm(s string) (Algorithm, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "", "TDES", "TDES-2KEY", "TDES2", "2TDEA":
		return TDES2KEY, nil
	case "TDES-3KEY", "TDES3", "3TDEA":
		return TDES3KEY, nil
	case "AES", "AES-128", "AES128":
		return AES128, nil
	case "AES-192", "AES192":
		return AES192, nil
	case "AES-256", "AES256":
		return AES256, nil
	}
	return "", fmt.Errorf("%w: unknown key algorithm %q (want TDES-2KEY, TDES-3KEY, AES-128, AES-192 or AES-256)", ErrInput, s)
}

// MACAlgorithm is the MAC algorithm of a TAK or ZAK.
type MACAlgorithm string

// The MAC algorithms; MACs are truncated to MACLength bytes.
const (
	MACRetail MACAlgorithm = "retail" // ISO 9797-1 algorithm 3, padding method 1 (TDES-2KEY)
	MACCMAC   MACAlgorithm = "cmac"   // CMAC (TDES or AES)
)

// Status is the lifecycle state of a key version.
type Status string

// The key statuses.
const (
	StatusActive     Status = "active"     // usable between its activation and expiry
	StatusSuperseded Status = "superseded" // replaced; usable for decrypt/verify until GraceUntil
	StatusRevoked    Status = "revoked"    // never usable again
)

// KeyRecord is a stored key version: its metadata and the key itself as a TR-31
// version D key block under the LMK. It never holds clear key bytes.
type KeyRecord struct {
	ID           string       `json:"id"`                      // key ID
	Version      int          `json:"version"`                 // 1, 2, ... without gaps (dead working keys are destroyed from the oldest)
	Type         KeyType      `json:"type"`                    // the key's one purpose
	Algorithm    Algorithm    `json:"algorithm"`               // cipher and length
	MACAlgorithm MACAlgorithm `json:"mac_algorithm,omitempty"` // TAK/ZAK only
	Owner        string       `json:"owner,omitempty"`         // terminal ID, issuer ID, or KSN prefix (BDK)
	KCV          string       `json:"kcv"`                     // 6 hex digits
	KCVMethod    kcv.Method   `json:"kcv_method"`              // how KCV was computed
	Status       Status       `json:"status"`                  // active or revoked as stored; superseded as returned
	ActivateAt   time.Time    `json:"activate_at"`             // usable from
	ExpiresAt    time.Time    `json:"expires_at,omitzero"`     // usable until (zero: no expiry)
	GraceUntil   time.Time    `json:"grace_until,omitzero"`    // once superseded, inbound use until
	CreatedAt    time.Time    `json:"created_at"`              // when stored
	CreatedBy    string       `json:"created_by"`              // the actor who stored it
	// Block is the key as a TR-31 version D key block under the LMK. Its header binds
	// the usage and mode of use, the KCV (optional block KC) and ID and version
	// (optional block LB).
	Block string `json:"block"`
}

// Ref returns the record's handle with its explicit version.
func (r KeyRecord) Ref() KeyRef { return KeyRef{ID: r.ID, Version: r.Version} }

// Purpose says what an operation does with a key, for usability checks.
type Purpose int

// The purposes.
const (
	// Outbound operations encrypt or generate: only the current version may be used.
	Outbound Purpose = iota
	// Inbound operations decrypt or verify: a superseded version within its grace
	// window may be used too.
	Inbound
	// Distribute is exporting a key or reading its check value: any version that is
	// neither revoked nor expired, including one not yet active.
	Distribute
)

// Usable checks that the record can be used at now for purpose p.
func (r KeyRecord) Usable(now time.Time, p Purpose) error {
	ref := r.Ref()
	if p == Distribute {
		if r.Status == StatusRevoked {
			return fmt.Errorf("%w: %s is revoked", ErrKeyNotUsable, ref)
		}
		if !r.ExpiresAt.IsZero() && !now.Before(r.ExpiresAt) {
			return fmt.Errorf("%w: %s expired at %s", ErrKeyNotUsable, ref, r.ExpiresAt.UTC().Format(time.RFC3339))
		}
		return nil
	}
	switch r.Status {
	case StatusActive:
	case StatusSuperseded:
		if p != Inbound {
			return fmt.Errorf("%w: %s is superseded by a newer version", ErrKeyNotUsable, ref)
		}
		if !now.Before(r.GraceUntil) {
			return fmt.Errorf("%w: %s is superseded and its grace window ended at %s", ErrKeyNotUsable, ref, r.GraceUntil.UTC().Format(time.RFC3339))
		}
	case StatusRevoked:
		return fmt.Errorf("%w: %s is revoked", ErrKeyNotUsable, ref)
	default:
		return fmt.Errorf("%w: %s has unknown status %q", ErrKeyNotUsable, ref, r.Status)
	}
	if now.Before(r.ActivateAt) {
		return fmt.Errorf("%w: %s is not active until %s", ErrKeyNotUsable, ref, r.ActivateAt.UTC().Format(time.RFC3339))
	}
	if !r.ExpiresAt.IsZero() && !now.Before(r.ExpiresAt) {
		return fmt.Errorf("%w: %s expired at %s", ErrKeyNotUsable, ref, r.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return nil
}

// AuditEvent is one key event for the audit log: who did what to which key. It
// never holds key bytes.
type AuditEvent struct {
	Actor   string `json:"actor"`              // who: the admin principal or a system part
	Action  string `json:"action"`             // generate, form, import, export, rotate, revoke, ...
	KeyID   string `json:"key_id,omitempty"`   // which key
	Version int    `json:"version,omitempty"`  // which version
	KeyType string `json:"key_type,omitempty"` // its type
	KCV     string `json:"kcv,omitempty"`      // its KCV
	Detail  string `json:"detail,omitempty"`   // free text, never key material
}

// PutRequest asks a KeyStore to store a new key version.
type PutRequest struct {
	Record KeyRecord // the new version
	// SupersedeGraceUntil, for a new version of an existing ID, is when the version it
	// supersedes stops being usable for decryption and verification (zero: at once).
	SupersedeGraceUntil time.Time
	Event               AuditEvent // appended to the audit log in the same transaction
	// Unique, when set (an ECB import), makes Put refuse the record with an error
	// wrapping ErrPolicy when its key value is already stored under another key ID
	// (UniqueValue). A store that holds no keys of its own (the payShield
	// simulator's per-command store) ignores it.
	Unique *UniqueValue
}

// KeyStore keeps key records (keys under the LMK), DUKPT counters and the key audit
// log. package keys implements it on Badger.
type KeyStore interface {
	// Key returns the record for ref; version 0 means the current version (the newest
	// active version that is activated and not expired). Errors wrap ErrKeyNotFound
	// or ErrKeyNotUsable.
	Key(ctx context.Context, ref KeyRef) (KeyRecord, error)
	// GraceVersions returns the superseded versions of id still within their grace
	// window, newest first.
	GraceVersions(ctx context.Context, id string) ([]KeyRecord, error)
	// BDKForKSN returns the current version of the BDK whose KSN prefix (owner) is the
	// longest prefix of ksn (hex).
	BDKForKSN(ctx context.Context, ksn string) (KeyRecord, error)
	// NextVersion returns the version number a new version of id would get (1 for a
	// new ID) and, for an existing ID, its type.
	NextVersion(ctx context.Context, id string) (int, KeyType, error)
	// Put durably stores a new key version with its audit event. It fails with
	// ErrKeyExists if the version exists, and with ErrDemoKey for a public demo key
	// outside demo mode.
	Put(ctx context.Context, req PutRequest) error
	// Audit durably appends an event that changes no record (e.g. an export).
	Audit(ctx context.Context, ev AuditEvent) error
	// AdvanceDUKPTCounter durably records counter for a DUKPT device (its KSN minus
	// the counter); it fails with ErrReplay unless counter is above the last one.
	AdvanceDUKPTCounter(ctx context.Context, device string, counter uint32) error
	// CheckDUKPTCounter fails with ErrReplay, recording nothing, when counter is
	// not above the last one recorded for device: the HSM refuses a replayed KSN
	// before it decrypts anything under it, so that a replay is answered the same
	// whatever else the request carries (no decode oracle on recorded PIN blocks).
	CheckDUKPTCounter(ctx context.Context, device string, counter uint32) error
	// BindLMK records the KCV of the LMK on first use and afterwards fails unless kcv
	// is the recorded one (so keys are never read under the wrong LMK).
	BindLMK(ctx context.Context, kcv string) error
}

// CheckECBImport refuses to import a key of type t from an ECB form (the key
// encrypted under a KEK, which carries no key type): an ECB export of one key
// re-imported as another type would make one key value serve two purposes (a TPK
// imported as a TDK decrypts the terminal's PIN blocks; as a ZMK it exports keys).
// Only the working keys a terminal or a zone partner exchanges that way may come in
// ECB (TPK, TAK, ZPK, ZAK); key-encrypting keys, BDKs, CVKs and data keys come as
// TR-31 blocks (which carry their usage) or as components. A swap among those four
// (a PIN key's value as a MAC key) is refused by the key store instead: an ECB
// import sets PutRequest.Unique, and a value already stored under another key ID is
// refused (see UniqueValue).
func CheckECBImport(t KeyType) error {
	switch t {
	case TPK, TAK, ZPK, ZAK:
		return nil
	}
	return fmt.Errorf("%w: a %s is not imported from an ECB form, which does not carry its key type (one key's ECB export could be re-imported as another type): give a TR-31 block, or form it from components", ErrPolicy, t)
}

var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// CheckKeyID checks that id is 1-64 characters of letters, digits, '.', '_' and '-',
// starting with a letter or digit, holding no card number (carddata.InID: key IDs
// are listed, logged and kept in the key store's audit log as they are).
func CheckKeyID(id string) error {
	if !idRE.MatchString(id) || carddata.InID(id) {
		return fmt.Errorf("%w: key ID %q must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit, and hold no card number", ErrInput, carddata.MaskID(id))
	}
	return nil
}

// CheckWrap refuses to wrap (export) a key of type t, ID id and owner owner under
// the KEK kek where the key hierarchy does not allow it. A terminal master key (TMK)
// is held by its terminal, so it wraps only that terminal's working keys: a TPK, TAK
// or TDK whose owner (else its ID's part before the first '.') is the TMK's, or
// starts with it (one TMK for a group of terminals, as the demo fleet's LT.TMK for
// LT000001 to LT002000). A BDK, a zone key (ZMK, ZPK, ZAK), another TMK, a CVK or a
// DEK never leaves under a TMK: whoever holds one terminal's TMK would have every
// DUKPT PIN key, the issuer's PIN key or another terminal's keys. A zone master key
// wraps any key. A TMK with no owner and no '.' in its ID (hsm serve's, known by its
// token) is checked by the type alone. Until 7 December 2026 one admin could export the BDK, the ZMK and
// the issuer's ZPK under any terminal's TMK. The payShield client applies it before
// it sends A0 or A8, as the software HSM does. Imports follow the same hierarchy
// (CheckImportWrap).
func CheckWrap(t KeyType, id, owner string, kek KeyRecord) error {
	return checkWrap(t, id, owner, kek, false)
}

// checkWrap is CheckWrap, its errors worded for an import (the key came in under
// kek) when in is set.
func checkWrap(t KeyType, id, owner string, kek KeyRecord, in bool) error {
	if kek.Type != TMK {
		return nil
	}
	verb, how := "wrapped", "leaves"
	if in {
		verb, how = "imported", "comes"
	}
	switch t {
	case TPK, TAK, TDK:
	default:
		return fmt.Errorf("%w: a %s may not be %s under the terminal master key %s: a TMK wraps only its terminal's working keys (TPK, TAK, TDK); a %s %s under a ZMK or as components",
			ErrPolicy, t, verb, kek.Ref(), t, how)
	}
	// A TMK the HSM holds without an owner (hsm serve's keys, known only by their
	// tokens) is checked by the type alone.
	ko, kk := ownerOf(id, owner), ownerOf(kek.ID, kek.Owner)
	if kk != "" && !strings.HasPrefix(ko, kk) {
		return fmt.Errorf("%w: %s of %q may not be %s under %s, the terminal master key of %q: a TMK wraps only its own terminal's keys",
			ErrPolicy, id, ko, verb, kek.Ref(), kk)
	}
	return nil
}

// CheckGenerateWrap is CheckWrap for a key generated as version version of spec and
// wrapped under kek: a new version is checked with its predecessor's owner too (a
// new version of another terminal's TAK asked for with this terminal as its owner is
// still that terminal's key).
func CheckGenerateWrap(ctx context.Context, store KeyStore, spec KeySpec, version int, kek KeyRecord) error {
	return checkSpecWrap(ctx, store, spec, version, kek, false)
}

// CheckImportWrap is CheckGenerateWrap for a key imported under kek as version
// version of spec: a key comes in under a KEK only where it could leave under it.
// Whoever holds a terminal's TMK (the terminal, its key loader, and for a TMK shared
// by a fleet, as the demo's LT.TMK, every terminal of it) can wrap any key under it:
// a ZMK of their choice imported under it would export every key of the switch in
// the clear, and a ZPK, BDK or another terminal's key of their choice would be one
// they know. Until 8 December 2026 imports were not checked, and one admin with a
// terminal's TMK stored a ZMK under it and exported the dual-control ZMK under that.
// Both backends apply it before anything is unwrapped (the payShield client before
// it sends A6).
func CheckImportWrap(ctx context.Context, store KeyStore, spec KeySpec, version int, kek KeyRecord) error {
	return checkSpecWrap(ctx, store, spec, version, kek, true)
}

func checkSpecWrap(ctx context.Context, store KeyStore, spec KeySpec, version int, kek KeyRecord, in bool) error {
	if err := checkWrap(spec.Type, spec.ID, spec.Owner, kek, in); err != nil {
		return err
	}
	if version > 1 && kek.Type == TMK {
		if prev, err := store.Key(ctx, KeyRef{ID: spec.ID}); err == nil {
			return checkWrap(prev.Type, prev.ID, prev.Owner, kek, in)
		}
	}
	return nil
}

// ownerOf is a key's owner, else its ID's part before the first '.'.
func ownerOf(id, owner string) string {
	if owner != "" {
		return owner
	}
	if i := strings.IndexByte(id, '.'); i > 0 {
		return id[:i]
	}
	return ""
}

// Profile is the TR-31 header that keys of one type and algorithm carry.
type Profile struct {
	Usage         string // TR-31 key usage, e.g. "P0"
	Algorithm     byte   // TR-31 algorithm: 'T' or 'A'
	ModeOfUse     byte   // TR-31 mode of use
	Exportability byte   // TR-31 exportability: 'E', 'N' or 'S'
}

// ProfileFor returns the TR-31 profile of a key type with an algorithm (and, for
// TAK/ZAK, a MAC algorithm), or an error for a combination that is not allowed.
func ProfileFor(t KeyType, alg Algorithm, macAlg MACAlgorithm) (Profile, error) {
	if alg.KeyLength() == 0 {
		return Profile{}, fmt.Errorf("%w: unknown algorithm %q", ErrInput, alg)
	}
	a := tr31.AlgTDES
	if alg.IsAES() {
		a = tr31.AlgAES
	}
	switch t {
	case TMK, ZMK:
		return Profile{tr31.UsageKEK, a, tr31.ModeEncDec, tr31.ExportTrusted}, nil
	case TPK, ZPK:
		return Profile{tr31.UsagePIN, a, tr31.ModeEncDec, tr31.ExportSensitive}, nil
	case TAK, ZAK:
		switch macAlg {
		case MACRetail:
			if alg != TDES2KEY {
				return Profile{}, fmt.Errorf("%w: the retail MAC (ISO 9797-1 algorithm 3) needs a TDES-2KEY key, not %s", ErrInput, alg)
			}
			return Profile{tr31.UsageMACAlg3, a, tr31.ModeMAC, tr31.ExportSensitive}, nil
		case MACCMAC:
			return Profile{tr31.UsageMACCMAC, a, tr31.ModeMAC, tr31.ExportSensitive}, nil
		}
		return Profile{}, fmt.Errorf("%w: %s needs a MAC algorithm (retail or cmac), got %q", ErrInput, t, macAlg)
	case BDK:
		return Profile{tr31.UsageBDK, a, tr31.ModeDerive, tr31.ExportTrusted}, nil
	case CVK:
		if alg != TDES2KEY {
			return Profile{}, fmt.Errorf("%w: a CVK is a TDES-2KEY pair (CVK A|B), not %s", ErrInput, alg)
		}
		return Profile{tr31.UsageCVK, a, tr31.ModeMAC, tr31.ExportTrusted}, nil
	case DEK:
		return Profile{tr31.UsageData, a, tr31.ModeEncDec, tr31.ExportTrusted}, nil
	case TDK:
		return Profile{tr31.UsageData, a, tr31.ModeDecrypt, tr31.ExportSensitive}, nil
	}
	return Profile{}, fmt.Errorf("%w: unknown key type %q", ErrInput, t)
}

// maxOwner is the longest KeySpec.Owner.
const maxOwner = 64

// Normalize fills in the defaults of a KeySpec (algorithm TDES-2KEY; MAC algorithm
// retail for TDES-2KEY TAK/ZAK, cmac otherwise) and checks it.
func (s *KeySpec) Normalize() error {
	if err := CheckKeyID(s.ID); err != nil {
		return err
	}
	if !s.Type.Valid() {
		return fmt.Errorf("%w: unknown key type %q (want one of %v)", ErrInput, s.Type, KeyTypes)
	}
	if s.Algorithm == "" {
		s.Algorithm = TDES2KEY
	}
	if s.Algorithm.KeyLength() == 0 {
		return fmt.Errorf("%w: unknown algorithm %q", ErrInput, s.Algorithm)
	}
	if s.Type == TAK || s.Type == ZAK {
		if s.MACAlgorithm == "" {
			s.MACAlgorithm = MACCMAC
			if s.Algorithm == TDES2KEY {
				s.MACAlgorithm = MACRetail
			}
		}
	} else if s.MACAlgorithm != "" {
		return fmt.Errorf("%w: a MAC algorithm is only for TAK and ZAK, not %s", ErrInput, s.Type)
	}
	if len(s.Owner) > maxOwner || strings.IndexFunc(s.Owner, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 ||
		s.Type != BDK && carddata.InID(s.Owner) { // a BDK's owner is a KSN prefix, hex
		return fmt.Errorf("%w: owner %q: want up to %d printable characters (a terminal ID, an issuer ID, a KSN prefix), and no card number", ErrInput, carddata.MaskID(s.Owner), maxOwner)
	}
	if s.Type == BDK && s.Owner != "" {
		if len(s.Owner) > 23 || strings.Trim(strings.ToUpper(s.Owner), "0123456789ABCDEF") != "" {
			return fmt.Errorf("%w: a BDK's owner is its KSN prefix, up to 23 hex digits; got %q", ErrInput, s.Owner)
		}
		s.Owner = strings.ToUpper(s.Owner)
		// The prefix may not reach into the counter: a BDK is found by its key set ID
		// bits, whatever the counter (package dukpt, PrefixDigits).
		if n := dukpt.PrefixDigits(s.Algorithm.IsAES()); len(s.Owner) > n {
			return fmt.Errorf("%w: a %s BDK's owner is its KSN prefix, at most %d hex digits (the rest of the KSN is the counter); got %q", ErrInput, s.Algorithm, n, s.Owner)
		}
	}
	if s.Grace < 0 {
		return fmt.Errorf("%w: negative grace %s", ErrInput, s.Grace)
	}
	if !s.ExpiresAt.IsZero() && !s.ActivateAt.IsZero() && !s.ExpiresAt.After(s.ActivateAt) {
		return fmt.Errorf("%w: expiry %s is not after activation %s", ErrInput, s.ExpiresAt.Format(time.RFC3339), s.ActivateAt.Format(time.RFC3339))
	}
	_, err := ProfileFor(s.Type, s.Algorithm, s.MACAlgorithm)
	return err
}
