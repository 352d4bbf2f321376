// Package tr31 wraps and unwraps ASC X9 TR-31 (ANSI X9.143) key blocks: version B
// (TDES, CMAC-derived keys) and version D (AES, CMAC-derived keys) both ways, and
// versions A and C (TDES, key variant binding) for unwrap only. Headers are parsed
// strictly: every field is checked against TR-31:2018 and errors say which field at
// which offset is wrong. Errors never contain key bytes.
package tr31

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Version is the key block version ID (header byte 0).
type Version byte

// The key block versions.
const (
	VersionA Version = 'A' // TDES key variant binding (deprecated), unwrap only
	VersionB Version = 'B' // TDES key derivation binding
	VersionC Version = 'C' // TDES key variant binding, unwrap only
	VersionD Version = 'D' // AES key derivation binding
)

// Key usages of TR-31:2018 (header bytes 5-6). Two-digit numeric usages are
// proprietary and also accepted.
const (
	UsageBDK         = "B0" // base derivation key
	UsageDUKPTIK     = "B1" // DUKPT initial key
	UsageBaseVariant = "B2" // base key variant key
	UsageCVK         = "C0" // card verification key
	UsageData        = "D0" // symmetric data encryption
	UsageDataAsym    = "D1" // asymmetric data encryption
	UsageDataDecimal = "D2" // data encryption for decimal tables
	UsageKEK         = "K0" // key encryption or wrapping
	UsageKBPK        = "K1" // TR-31 key block protection key
	UsageKEKAsym     = "K2" // TR-34 asymmetric KEK
	UsageKEKAgree    = "K3" // asymmetric key agreement
	UsageMACAlg1     = "M1" // ISO 9797-1 MAC algorithm 1
	UsageMACAlg3     = "M3" // ISO 9797-1 MAC algorithm 3 (retail MAC)
	UsageMACCMAC     = "M6" // ISO 9797-1:2011 MAC algorithm 5 (CMAC)
	UsageHMAC        = "M7" // HMAC
	UsagePIN         = "P0" // PIN encryption
	UsagePINVerify   = "V0" // PIN verification, other
)

var knownUsages = map[string]bool{
	"B0": true, "B1": true, "B2": true, "C0": true, "D0": true, "D1": true, "D2": true,
	"E0": true, "E1": true, "E2": true, "E3": true, "E4": true, "E5": true, "E6": true,
	"I0": true, "K0": true, "K1": true, "K2": true, "K3": true,
	"M0": true, "M1": true, "M2": true, "M3": true, "M4": true, "M5": true, "M6": true, "M7": true, "M8": true,
	"P0": true, "S0": true, "S1": true, "S2": true,
	"V0": true, "V1": true, "V2": true, "V3": true, "V4": true,
}

// Algorithms (header byte 7).
const (
	AlgAES  byte = 'A'
	AlgDES  byte = 'D'
	AlgEC   byte = 'E'
	AlgHMAC byte = 'H'
	AlgRSA  byte = 'R'
	AlgDSA  byte = 'S'
	AlgTDES byte = 'T'
)

// Modes of use (header byte 8).
const (
	ModeEncDec   byte = 'B' // encrypt and decrypt / wrap and unwrap
	ModeMAC      byte = 'C' // MAC generate and verify
	ModeDecrypt  byte = 'D' // decrypt / unwrap only
	ModeEncrypt  byte = 'E' // encrypt / wrap only
	ModeGenerate byte = 'G' // generate only
	ModeAny      byte = 'N' // no special restrictions
	ModeSign     byte = 'S' // signature only
	ModeSignDec  byte = 'T' // sign and decrypt
	ModeVerify   byte = 'V' // verify only
	ModeDerive   byte = 'X' // key derivation
	ModeVariant  byte = 'Y' // create key variants
)

// Exportability (header byte 11).
const (
	ExportTrusted   byte = 'E' // exportable under a KEK in a form meeting X9.24 (a key block)
	ExportNone      byte = 'N' // not exportable
	ExportSensitive byte = 'S' // exportable under a KEK in any form, including non-key-block forms
)

const (
	fixedHeaderLen = 16
	maxBlockLen    = 9999
)

// ErrHeader is wrapped by every header parsing error; ErrBlock by every other
// malformed-block error; ErrMAC when a key block does not authenticate.
var (
	ErrHeader = errors.New("bad TR-31 header")
	ErrBlock  = errors.New("bad TR-31 key block")
	ErrMAC    = errors.New("TR-31 key block does not authenticate (wrong key block protection key, or the block was altered)")
)

// OptionalBlock is one optional header block: a two-character ID and its printable
// ASCII data.
type OptionalBlock struct {
	ID   string `json:"id"`   // two alphanumeric characters, e.g. "KS"
	Data string `json:"data"` // printable ASCII
}

// Header is a TR-31 key block header.
type Header struct {
	Version       Version         `json:"version"`                   // A, B, C or D
	Usage         string          `json:"usage"`                     // key usage, e.g. "P0"
	Algorithm     byte            `json:"algorithm"`                 // e.g. 'T' (TDES), 'A' (AES)
	ModeOfUse     byte            `json:"mode_of_use"`               // e.g. 'B', 'C', 'E', 'X'
	KeyVersion    string          `json:"key_version"`               // "00" when unused
	Exportability byte            `json:"exportability"`             // 'E', 'N' or 'S'
	Blocks        []OptionalBlock `json:"optional_blocks,omitempty"` // in header order
}

// Block returns the data of the first optional block with the given ID.
func (h Header) Block(id string) (string, bool) {
	for _, b := range h.Blocks {
		if b.ID == id {
			return b.Data, true
		}
	}
	return "", false
}

// IsComponent reports whether the block holds a key component rather than a key:
// TR-31 key version "c" and the component's number ("c1", "c2", ...).
func (h Header) IsComponent() bool { return len(h.KeyVersion) == 2 && h.KeyVersion[0] == 'c' }

// String summarises the header, e.g. "D P0 A E v00 exp E".
func (h Header) String() string {
	return fmt.Sprintf("%c %s %c %c v%s exp %c", h.Version, h.Usage, h.Algorithm, h.ModeOfUse, h.KeyVersion, h.Exportability)
}

func (v Version) blockSize() int {
	if v == VersionD {
		return 16
	}
	return 8
}

func (v Version) macHexLen() int {
	switch v {
	case VersionA, VersionC:
		return 8
	case VersionB:
		return 16
	case VersionD:
		return 32
	}
	return 0
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7E {
			return false
		}
	}
	return true
}

func alnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func upperHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func herr(off int, format string, args ...any) error {
	return fmt.Errorf("%w: offset %d: %s", ErrHeader, off, fmt.Sprintf(format, args...))
}

// validate checks the fixed fields of h (not the optional blocks' lengths).
func (h Header) validate() error {
	switch h.Version {
	case VersionA, VersionB, VersionC, VersionD:
	default:
		return herr(0, "version ID %q is not A, B, C or D", rune(h.Version))
	}
	if len(h.Usage) != 2 || !(knownUsages[h.Usage] || isDigits(h.Usage)) {
		return herr(5, "key usage %q is not a TR-31 key usage", h.Usage)
	}
	switch h.Algorithm {
	case AlgAES, AlgDES, AlgEC, AlgHMAC, AlgRSA, AlgDSA, AlgTDES:
	default:
		return herr(7, "algorithm %q is not one of A, D, E, H, R, S, T", rune(h.Algorithm))
	}
	switch h.ModeOfUse {
	case ModeEncDec, ModeMAC, ModeDecrypt, ModeEncrypt, ModeGenerate, ModeAny, ModeSign, ModeSignDec, ModeVerify, ModeDerive, ModeVariant:
	default:
		return herr(8, "mode of use %q is not one of B, C, D, E, G, N, S, T, V, X, Y", rune(h.ModeOfUse))
	}
	if len(h.KeyVersion) != 2 || !alnum(h.KeyVersion[0]) || !alnum(h.KeyVersion[1]) {
		return herr(9, "key version number %q is not two alphanumeric characters", h.KeyVersion)
	}
	switch h.Exportability {
	case ExportTrusted, ExportNone, ExportSensitive:
	default:
		return herr(11, "exportability %q is not E, N or S", rune(h.Exportability))
	}
	if len(h.Blocks) > 99 {
		return herr(12, "%d optional blocks, at most 99", len(h.Blocks))
	}
	for i, b := range h.Blocks {
		if len(b.ID) != 2 || !alnum(b.ID[0]) || !alnum(b.ID[1]) {
			return herr(16, "optional block %d: ID %q is not two alphanumeric characters", i+1, b.ID)
		}
		if !printable(b.Data) {
			return herr(16, "optional block %d (%s): data is not printable ASCII", i+1, b.ID)
		}
	}
	return nil
}

// encode returns the header with the given total block length.
func (h Header) encode(total int) string {
	var sb strings.Builder
	sb.WriteByte(byte(h.Version))
	fmt.Fprintf(&sb, "%04d", total)
	sb.WriteString(h.Usage)
	sb.WriteByte(h.Algorithm)
	sb.WriteByte(h.ModeOfUse)
	sb.WriteString(h.KeyVersion)
	sb.WriteByte(h.Exportability)
	fmt.Fprintf(&sb, "%02d", len(h.Blocks))
	sb.WriteString("00")
	for _, b := range h.Blocks {
		n := 4 + len(b.Data)
		if n <= 255 {
			fmt.Fprintf(&sb, "%s%02X%s", b.ID, n, b.Data)
		} else {
			// Extended length: "00", length of the length (4), then the length.
			n += 6
			fmt.Fprintf(&sb, "%s0004%04X%s", b.ID, n, b.Data)
		}
	}
	return sb.String()
}

// optLen is the encoded length of an optional block with n bytes of data.
func optLen(n int) int {
	if 4+n <= 255 {
		return 4 + n
	}
	return 10 + n
}

// ParseHeader strictly parses the header of a key block and returns it and its
// length in characters. It checks the block's printable characters and its length
// field against len(block), but not the encrypted part.
func ParseHeader(block string) (Header, int, error) {
	var h Header
	if len(block) < fixedHeaderLen {
		return h, 0, herr(0, "key block is %d characters, shorter than the 16-character header", len(block))
	}
	if !printable(block) {
		return h, 0, herr(0, "key block has characters that are not printable ASCII")
	}
	h.Version = Version(block[0])
	if !isDigits(block[1:5]) {
		return h, 0, herr(1, "key block length %q is not 4 digits", block[1:5])
	}
	if n, _ := strconv.Atoi(block[1:5]); n != len(block) {
		return h, 0, herr(1, "key block length field says %d, the block is %d characters", n, len(block))
	}
	h.Usage = block[5:7]
	h.Algorithm = block[7]
	h.ModeOfUse = block[8]
	h.KeyVersion = block[9:11]
	h.Exportability = block[11]
	if !isDigits(block[12:14]) {
		return h, 0, herr(12, "number of optional blocks %q is not 2 digits", block[12:14])
	}
	nopt, _ := strconv.Atoi(block[12:14])
	if block[14:16] != "00" {
		return h, 0, herr(14, "reserved field is %q, want 00", block[14:16])
	}
	if err := h.validate(); err != nil {
		return h, 0, err
	}
	off := fixedHeaderLen
	for i := 0; i < nopt; i++ {
		if off+4 > len(block) {
			return h, 0, herr(off, "optional block %d of %d runs past the end of the key block", i+1, nopt)
		}
		id := block[off : off+2]
		if !alnum(id[0]) || !alnum(id[1]) {
			return h, 0, herr(off, "optional block %d: ID %q is not two alphanumeric characters", i+1, id)
		}
		lf := block[off+2 : off+4]
		if !upperHex(lf) {
			return h, 0, herr(off+2, "optional block %s: length %q is not 2 hex digits", id, lf)
		}
		l64, _ := strconv.ParseUint(lf, 16, 16)
		l := int(l64)
		dataStart := off + 4
		if l == 0 {
			// Extended length: 2 hex digits giving the length of the length, then it.
			if off+6 > len(block) {
				return h, 0, herr(off, "optional block %s: extended length runs past the end", id)
			}
			ll := block[off+4 : off+6]
			if !upperHex(ll) {
				return h, 0, herr(off+4, "optional block %s: length-of-length %q is not 2 hex digits", id, ll)
			}
			nl, _ := strconv.ParseUint(ll, 16, 8)
			if nl != 4 || off+6+int(nl) > len(block) {
				return h, 0, herr(off+4, "optional block %s: length-of-length %q is not 04 or runs past the end", id, ll)
			}
			lv := block[off+6 : off+6+int(nl)]
			if !upperHex(lv) {
				return h, 0, herr(off+6, "optional block %s: extended length %q is not hex", id, lv)
			}
			l64, _ = strconv.ParseUint(lv, 16, 32)
			l = int(l64)
			if l <= 255+6 {
				return h, 0, herr(off+6, "optional block %s: extended length %d would fit the short form", id, l)
			}
			dataStart = off + 6 + int(nl)
		}
		if l < dataStart-off || off+l > len(block) {
			return h, 0, herr(off+2, "optional block %s: length %d is shorter than its own header or runs past the end of the key block", id, l)
		}
		h.Blocks = append(h.Blocks, OptionalBlock{ID: id, Data: block[dataStart : off+l]})
		off += l
	}
	if bs := h.Version.blockSize(); off%bs != 0 {
		return h, 0, herr(off, "header with optional blocks is %d characters, not a multiple of the %d-byte cipher block (a PB padding block is missing)", off, bs)
	}
	return h, off, nil
}
