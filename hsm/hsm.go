// Package hsm is the interface through which the switch performs every cryptographic
// operation: PIN translation and verification, MAC generation and verification, CVV
// verification, and key generation, import, export and check values. It is shaped
// after the host commands of a Thales payShield-style hardware HSM (CA, CC, G0, M6,
// M8, A0, BU, ...) so that a hardware implementation can be added later.
//
// Only key handles (KeyRef: key ID and version) cross the interface, never working-key
// bytes; the one exception is FormKey, which takes the clear components typed in at a
// key ceremony. Software, in this package, implements HSM with the Go standard
// library, holding the local master key (LMK) in memory and reading keys, wrapped
// under the LMK as TR-31 key blocks, from a KeyStore.
package hsm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/switchyard/switchyard/hsm/kcv"
	"github.com/switchyard/switchyard/hsm/pinblock"
)

// HSM is every cryptographic operation the switch uses. Implementations are safe
// for concurrent use. Methods that verify (VerifyPIN, VerifyMAC, VerifyCVV) return
// nil on a match and an error wrapping ErrPINMismatch, ErrMACMismatch or
// ErrCVVMismatch on a mismatch; any other error means the check could not be made.
type HSM interface {
	// TranslatePIN decrypts a PIN block under a TPK or ZPK (or a DUKPT key derived
	// from a BDK and KSN) and re-encrypts it under a ZPK, changing format if asked
	// and allowed by the format policy (Thales CA, CC, G0).
	TranslatePIN(ctx context.Context, req TranslatePINRequest) ([]byte, error)
	// VerifyPIN decrypts a PIN block under a ZPK and compares the PIN with a
	// reference PIN in constant time (issuer simulator).
	VerifyPIN(ctx context.Context, req VerifyPINRequest) error
	// GenerateMAC returns the 8-byte MAC of data under a TAK/ZAK (Thales M6).
	GenerateMAC(ctx context.Context, req MACRequest) ([]byte, error)
	// VerifyMAC checks an 8-byte MAC in constant time (Thales M8). A request's
	// DUKPT MAC (KSN set, not Response) takes the KSN's counter as a PIN block
	// does: ErrReplay, before any MAC is computed, for a counter not above the
	// device's last accepted one; the counter is recorded once the MAC verified.
	// So a request whose PIN block and MAC are under one KSN cannot have both
	// checked (the second is a replay): no dialect of the switch sends one.
	VerifyMAC(ctx context.Context, req MACRequest, mac []byte) error
	// GenerateCVV returns the Visa CVV for card data under a CVK pair (Thales CW).
	GenerateCVV(ctx context.Context, req CVVRequest) (string, error)
	// VerifyCVV checks a Visa CVV in constant time (Thales CY).
	VerifyCVV(ctx context.Context, req CVVRequest, cvv string) error
	// GenerateKey creates a random key (a new ID, or a new version of an existing
	// ID), stores it under the LMK and optionally exports it under a KEK (Thales A0).
	GenerateKey(ctx context.Context, req GenerateKeyRequest) (KeyResult, error)
	// FormKey forms a key by XOR of 2 or 3 clear components (Thales FK/A4).
	FormKey(ctx context.Context, req FormKeyRequest) (KeyResult, error)
	// ImportKey imports a key encrypted under a KEK, as a TR-31 block or in ECB hex,
	// checking its KCV (Thales A6).
	ImportKey(ctx context.Context, req ImportKeyRequest) (KeyResult, error)
	// ExportKey exports a key under a KEK as a TR-31 block or in ECB hex (Thales A8).
	ExportKey(ctx context.Context, req ExportKeyRequest) (string, error)
	// KCV computes the check value of a stored key (Thales BU).
	KCV(ctx context.Context, ref KeyRef) (KeyCheck, error)
}

// KeyRef is a key handle: a key ID and version. Version 0 means the current version:
// the newest active version that is activated and not expired.
type KeyRef struct {
	ID      string `json:"id"`                // key ID, e.g. "T0000001.TPK"
	Version int    `json:"version,omitempty"` // 1, 2, ...; 0 means the current version
}

// String returns "ID v3", or "ID (current)" for version 0.
func (r KeyRef) String() string {
	if r.Version == 0 {
		return r.ID + " (current)"
	}
	return fmt.Sprintf("%s v%d", r.ID, r.Version)
}

// Errors that HSM and KeyStore implementations wrap; test with errors.Is.
var (
	ErrKeyNotFound  = errors.New("key not found")
	ErrKeyNotUsable = errors.New("key not usable")      // revoked, not yet active, expired, superseded
	ErrKeyUsage     = errors.New("key usage violation") // e.g. a TPK asked to MAC
	ErrPolicy       = errors.New("refused by policy")   // e.g. translating to PIN block format 1
	ErrInput        = errors.New("bad input")
	ErrKeyExists    = errors.New("key version exists")
	ErrKCVMismatch  = errors.New("key check value mismatch")
	ErrReplay       = errors.New("DUKPT counter replay")
	ErrPINMismatch  = errors.New("PIN mismatch")
	ErrMACMismatch  = errors.New("MAC mismatch")
	ErrCVVMismatch  = errors.New("CVV mismatch")
	ErrDemoKey      = errors.New("public demo test key outside demo mode")
	// ErrUnavailable means no HSM answered in time (a hardware HSM backend): the
	// operation was not done and may be tried again.
	ErrUnavailable = errors.New("HSM unavailable")
	// ErrKSNNotOfBDK means a DUKPT KSN is not under the KSN prefix (key set ID) of
	// the BDK named for it: another key set's KSN, refused before anything is
	// decrypted. It is an ErrKeyUsage.
	ErrKSNNotOfBDK = fmt.Errorf("%w: KSN not of the BDK", ErrKeyUsage)
)

// TranslatePINRequest asks for a PIN block to be translated.
type TranslatePINRequest struct {
	// Source is the TPK or ZPK the PIN block is under, or a BDK handle when KSN is
	// set. With KSN set and Source.ID empty the BDK is found by KSN prefix.
	Source KeyRef `json:"source"`
	// KSN is the DUKPT key serial number (20 hex digits TDES, 24 AES); empty when
	// the source is a static key.
	KSN          string          `json:"ksn,omitempty"`
	SourceFormat pinblock.Format `json:"source_format"` // format of PINBlock
	PINBlock     []byte          `json:"pin_block"`     // the enciphered PIN block
	// Dest is the ZPK to translate to.
	Dest       KeyRef          `json:"dest"`
	DestFormat pinblock.Format `json:"dest_format"` // format of the result (never 1)
	// PAN binds formats 0, 3 and 4; ignored by format 1.
	PAN string `json:"pan"`
	// SourcePAN, when set, binds the source block instead of PAN: a block formed
	// with another PAN field, such as the all-zero one of a UnionPay terminal's
	// "format without PAN" (53.1 = 1), is re-bound to the card's PAN.
	SourcePAN string `json:"source_pan,omitempty"`
}

// VerifyPINRequest asks for a PIN block to be compared with a reference PIN.
type VerifyPINRequest struct {
	Key      KeyRef          `json:"key"`       // ZPK (or TPK)
	Format   pinblock.Format `json:"format"`    // format of PINBlock
	PINBlock []byte          `json:"pin_block"` // the enciphered PIN block
	PAN      string          `json:"pan"`       // binds formats 0, 3 and 4
	// ReferencePIN is the expected PIN as ASCII digits; the caller wipes it.
	ReferencePIN []byte `json:"-"`
}

// MACRequest names the key and the data of a MAC operation.
type MACRequest struct {
	// Key is a TAK or ZAK; or a BDK when KSN is set (DUKPT MAC; with an empty ID the
	// BDK is found by KSN prefix).
	Key KeyRef `json:"key"`
	KSN string `json:"ksn,omitempty"` // DUKPT KSN; empty for a static key
	// Response selects the DUKPT response-direction key (TDES MAC response variant,
	// AES MAC verification key); the default is the request direction.
	Response bool   `json:"response,omitempty"`
	Data     []byte `json:"data"` // the data to MAC
	// Scheme selects another MAC algorithm over the same stored key: "" is the
	// key's own (retail or CMAC); MACSchemeCUPECB is the UnionPay POS "ECB" MAC
	// (TDES-2KEY retail keys only), whose 8 bytes are ASCII hex characters.
	Scheme MACScheme `json:"scheme,omitempty"`
}

// MACScheme is a MAC algorithm chosen per request rather than by the key.
type MACScheme string

// MACSchemeCUPECB is the China UnionPay POS terminal "ECB" MAC (hsm/mac.CUPECB).
const MACSchemeCUPECB MACScheme = "cup-ecb"

// MACLength is the length of the MACs that GenerateMAC returns and VerifyMAC checks.
const MACLength = 8

// CVVRequest carries the card data of a CVV operation. Use service code "000" for
// CVV2 and "999" for iCVV.
type CVVRequest struct {
	Key         KeyRef `json:"key"`          // CVK pair
	PAN         string `json:"pan"`          // 12 to 19 digits
	Expiry      string `json:"expiry"`       // YYMM
	ServiceCode string `json:"service_code"` // 3 digits
}

// KeySpec describes a key to create: its handle, type and metadata.
type KeySpec struct {
	ID           string       `json:"id"`                      // key ID (see CheckKeyID)
	Type         KeyType      `json:"type"`                    // the key's one purpose
	Algorithm    Algorithm    `json:"algorithm,omitempty"`     // default TDES-2KEY
	MACAlgorithm MACAlgorithm `json:"mac_algorithm,omitempty"` // TAK/ZAK: retail (TDES default) or cmac
	// Owner is the terminal ID, issuer ID or, for a BDK, the KSN prefix (hex).
	Owner      string    `json:"owner,omitempty"`
	ActivateAt time.Time `json:"activate_at,omitzero"` // zero: now
	ExpiresAt  time.Time `json:"expires_at,omitzero"`  // zero: never
	// Grace keeps the previous current version usable for decryption and
	// verification for this long when this key is a new version of an existing ID.
	Grace time.Duration `json:"grace,omitempty"`
	// SingleLength asks GenerateKey for a TDES-2KEY key whose two halves are equal:
	// a single-length DES key in double-length form, for terminals that only know
	// single DES (UnionPay sign-in scheme 001). Its ECB export's first 8 bytes are
	// the single-length key under the KEK. The payShield client refuses it in
	// GenerateKey (ErrPolicy): a payShield makes no such key.
	SingleLength bool `json:"single_length,omitempty"`
}

// ExportFormat is how a key is exported under a KEK.
type ExportFormat string

// The export formats.
const (
	// ExportTR31 is a TR-31 key block (version B under a TDES KEK, D under AES).
	ExportTR31 ExportFormat = "tr31"
	// ExportECB is the key ECB-encrypted under the KEK, as upper-case hex, a colon and
	// the key's KCV ("HEXKEY:KCV"), as carried in the ISO 8583 WP/WM tags. Only keys
	// with TR-31 exportability S may be exported so.
	ExportECB ExportFormat = "ecb"
)

// ExportSpec asks for a key to be exported under a KEK (a TMK or ZMK).
type ExportSpec struct {
	KEK    KeyRef       `json:"kek"`    // a TMK or ZMK
	Format ExportFormat `json:"format"` // tr31 or ecb
}

// GenerateKeyRequest asks for a random key.
type GenerateKeyRequest struct {
	KeySpec
	Export *ExportSpec `json:"export,omitempty"` // also export the new key (nil: no)
}

// FormKeyRequest asks for a key formed from clear components (key ceremony).
type FormKeyRequest struct {
	KeySpec
	// Components are 2 or 3 clear components of the key's length; the caller wipes
	// them. The key is their XOR (DES keys are then given odd parity).
	Components [][]byte `json:"-"`
	// AllowStoredValue lets the key's value be one already stored under another
	// key ID, which FormKey otherwise refuses (UniqueValue). Only keys.LoadDemo sets
	// it: the public demo keys share values (one TMK and one TPK for several
	// terminals). Neither the admin API nor the key ceremony sets it.
	AllowStoredValue bool `json:"-"`
}

// ImportKeyRequest asks for a key encrypted under a KEK to be imported.
type ImportKeyRequest struct {
	KeySpec
	KEK KeyRef `json:"kek"` // the TMK or ZMK the key is encrypted under
	// Exactly one of TR31 and ECB is set. ECB is the hex key ECB-encrypted under the
	// KEK, optionally followed by ":KCV".
	TR31 string `json:"tr31,omitempty"` // TR-31 key block under KEK
	ECB  string `json:"ecb,omitempty"`  // hex key ECB-encrypted under KEK, optionally ":KCV"
	// KCV is the expected check value: required for ECB (unless given after the
	// colon), checked when set for TR-31.
	KCV string `json:"kcv,omitempty"`
}

// ExportKeyRequest asks for a stored key to be exported under a KEK.
type ExportKeyRequest struct {
	Key KeyRef `json:"key"` // the key to export
	ExportSpec
}

// KeyCheck is a key's check value.
type KeyCheck struct {
	Ref    KeyRef     `json:"ref"`        // the key version checked
	KCV    string     `json:"kcv"`        // 6 hex digits
	Method kcv.Method `json:"kcv_method"` // how KCV was computed
}

// KeyResult describes a key that was generated, formed or imported.
type KeyResult struct {
	Ref       KeyRef    `json:"ref"`       // the new key version
	Type      KeyType   `json:"type"`      // its type
	Algorithm Algorithm `json:"algorithm"` // its algorithm
	KCV       string    `json:"kcv"`       // its KCV, 6 hex digits
	// CheckValue4 is the first 4 bytes (8 hex digits) of the TDES key encrypting
	// zeros, as UnionPay sign-in answers carry it; set by GenerateKey for TDES keys
	// (by the payShield client for those exported in ECB form, from BU's 16-digit
	// check value).
	CheckValue4 string     `json:"check_value4,omitempty"`
	KCVMethod   kcv.Method `json:"kcv_method"` // how KCV was computed
	// ComponentKCVs are the KCVs of the components, for FormKey.
	ComponentKCVs []string `json:"component_kcvs,omitempty"`
	// Exported is the key under the export KEK when one was asked for.
	Exported string `json:"exported,omitempty"`
}

type actorKey struct{}

// WithActor returns a context naming who performs key operations, for the audit log.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// ActorFrom returns the actor set by WithActor, or "system".
func ActorFrom(ctx context.Context) string {
	if a, ok := ctx.Value(actorKey{}).(string); ok && a != "" {
		return a
	}
	return "system"
}
