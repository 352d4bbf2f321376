package message

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/internal/carddata"
)

// DE 48 private TLV tags of the terminal interface.
const (
	TagDevice      = "DI" // device serial number / device ID
	TagSIM         = "SI" // SIM ICCID
	TagIMEI        = "IM" // IMEI
	TagGeo         = "GL" // location "lat,lon"
	TagCell        = "CL" // cell location MCC-MNC-LAC-CID
	TagAppVersion  = "AV" // terminal application version
	TagAppName     = "AN" // terminal application name (the package name of switch/apps)
	TagIntegrity   = "IF" // SoftPOS device-integrity findings
	TagAttestation = "AT" // SoftPOS attestation UNIXSECONDS:VERDICT (legacy, unsigned)
	TagAttestToken = "AJ" // SoftPOS attestation token: compact JWS of the attestation service
	TagKSN         = "KS" // DUKPT key serial number
	TagBatchTotals = "BT" // batch totals
	TagPINKey      = "WP" // new PIN key under the TMK, HEXKEY:KCV
	TagMACKey      = "WM" // new MAC key under the TMK, HEXKEY:KCV
	TagReason      = "RS" // reason of a decline
	// TagLabel is the ground truth of generated traffic (the bench's scenario label:
	// "card-testing", "legitimate"...). The switch only journals it, so that `rules
	// backtest` can report catch and false-positive rates by label.
	TagLabel = "LB"
	// TagQRCode is the payer's payment code of a consumer-presented QR payment, sent
	// instead of a card (DE 2 and DE 35 absent); present and empty, it marks a refund
	// or void of a QR payment, which names its original by DE 37 and carries no card.
	// See docs/qr.md.
	TagQRCode = "QC"
	// TagQROrder names a merchant-presented order: in an order inquiry, the order ID
	// the switch returned with the code (docs/qr.md).
	TagQROrder = "QO"
	// TagQRPayload is the merchant-presented code's EMVCo payload in the answer to an
	// order request; TagQRState the order's state (open, paid, expired, refunded).
	TagQRPayload = "QP"
	TagQRState   = "QS"
	// TagQRPayloadUTF8 is, beside QP, the whole code of a merchant named in another
	// script (with its language template, ID 64, in UTF-8), base64-encoded (RFC 4648,
	// standard alphabet, padded): DE 48 carries ASCII only, so QP then holds the
	// code without ID 64. A terminal that can show UTF-8 shows QU decoded; others
	// ignore it and show QP (docs/terminal-interface.md).
	TagQRPayloadUTF8 = "QU"
	// TagPartialOK, with the value "1", says the terminal accepts a partial approval
	// (DE 39 = 10 with the approved amount in DE 4 of the answer). The terminal
	// interface has no such indicator; without it the switch reverses a partial
	// approval and declines (docs/terminal-interface.md).
	TagPartialOK = "PA"
)

// AcceptsPartial reports whether the terminal said it accepts partial approvals
// (tag PA = 1).
func (t *TLV) AcceptsPartial() bool { return t.Has&HasPartialOK != 0 && t.PartialOK == "1" }

// TLV is a decoded DE 48: the known tags by value, unknown tags dropped. Values are
// substrings of the field, so decoding allocates nothing beyond the struct, unless a
// value holds a card number (maskTag).
type TLV struct {
	Device, SIM, IMEI, Geo, Cell, AppVersion string
	Integrity, Attestation, KSN, BatchTotals string
	PINKey, MACKey, Reason, Label            string
	AttestToken                              string
	QRCode                                   string
	PartialOK                                string
	AppName                                  string
	// Has records which known tags were present (IF may be present and empty).
	Has TagSet
}

// TagSet is a set of the known DE 48 tags.
type TagSet uint32

// Tag bits of TagSet.
const (
	HasDevice TagSet = 1 << iota
	HasSIM
	HasIMEI
	HasGeo
	HasCell
	HasAppVersion
	HasIntegrity
	HasAttestation
	HasKSN
	HasBatchTotals
	HasPINKey
	HasMACKey
	HasReason
	HasLabel
	HasAttestToken
	HasQRCode
	HasPartialOK
	HasAppName
)

// ParseTLV decodes a DE 48 value: repeated TAG(2) LEN(3 digits) VALUE. Unknown tags are
// ignored; a truncated element, a non-digit length or a known tag given twice is an error
// that names the offset.
func ParseTLV(s string) (TLV, error) {
	var t TLV
	for i := 0; i < len(s); {
		if len(s)-i < 5 {
			return t, fmt.Errorf("DE 48: truncated TLV header at offset %d", i)
		}
		tag := s[i : i+2]
		n := 0
		for _, c := range []byte(s[i+2 : i+5]) {
			if c < '0' || c > '9' {
				return t, fmt.Errorf("DE 48: tag %q at offset %d: length %q is not 3 digits", tag, i, s[i+2:i+5])
			}
			n = n*10 + int(c-'0')
		}
		if i+5+n > len(s) {
			return t, fmt.Errorf("DE 48: tag %q at offset %d: length %d runs past the end of the field (%d bytes)", tag, i, n, len(s))
		}
		v := s[i+5 : i+5+n]
		var dst *string
		var bit TagSet
		switch tag {
		case TagDevice:
			dst, bit = &t.Device, HasDevice
		case TagSIM:
			dst, bit = &t.SIM, HasSIM
		case TagIMEI:
			dst, bit = &t.IMEI, HasIMEI
		case TagGeo:
			dst, bit = &t.Geo, HasGeo
		case TagCell:
			dst, bit = &t.Cell, HasCell
		case TagAppVersion:
			dst, bit = &t.AppVersion, HasAppVersion
		case TagIntegrity:
			dst, bit = &t.Integrity, HasIntegrity
		case TagAttestation:
			dst, bit = &t.Attestation, HasAttestation
		case TagKSN:
			dst, bit = &t.KSN, HasKSN
		case TagBatchTotals:
			dst, bit = &t.BatchTotals, HasBatchTotals
		case TagPINKey:
			dst, bit = &t.PINKey, HasPINKey
		case TagMACKey:
			dst, bit = &t.MACKey, HasMACKey
		case TagReason:
			dst, bit = &t.Reason, HasReason
		case TagLabel:
			dst, bit = &t.Label, HasLabel
		case TagAttestToken:
			dst, bit = &t.AttestToken, HasAttestToken
		case TagQRCode:
			dst, bit = &t.QRCode, HasQRCode
		case TagPartialOK:
			dst, bit = &t.PartialOK, HasPartialOK
		case TagAppName:
			dst, bit = &t.AppName, HasAppName
		}
		if dst != nil {
			if t.Has&bit != 0 {
				return t, fmt.Errorf("DE 48: tag %q given twice (offset %d)", tag, i)
			}
			*dst, t.Has = maskTag(bit, v), t.Has|bit
		}
		i += 5 + n
	}
	return t, nil
}

// maskTag returns v, the value of a tag, with the card numbers it holds masked
// (first 6 / last 4) when the tag is one the switch stores or shows: the device's
// identity (DI, SI, IM), which the journal's rule facts, the binding notes and the
// incidents keep, and the free text (LB, RS, AV, AN, IF, GL, CL). The terminal
// writes these: whoever reaches a listener can put a PAN or track data in them,
// which would be stored in clear (until 7 December 2026 it was). The identity tags
// are masked only where a run of digits reads as a card number (carddata.MaskID),
// so that an IMEI (15 digits passing the Luhn check) or an ICCID stays as it is;
// the free text as notes are (carddata.MaskField). A masked value matches no
// binding: the registry refuses card numbers in identities. Keys, KSNs, tokens,
// totals and payment codes are not stored as they come and are left alone. v is
// returned as it is, without allocating, when it holds no card number.
func maskTag(bit TagSet, v string) string {
	switch bit {
	case HasDevice, HasSIM, HasIMEI:
		return carddata.MaskID(v)
	case HasLabel, HasReason, HasAppVersion, HasAppName, HasIntegrity, HasGeo, HasCell:
		return carddata.MaskField(v)
	}
	return v
}

// TLVValue returns the value of tag in a DE 48 value, for the tags the switch writes
// in answers and the few it does not decode into TLV (QO, QS, QP); false when absent or when s
// is not a well-formed TLV.
func TLVValue(s, tag string) (string, bool) {
	for i := 0; i+5 <= len(s); {
		n := 0
		for _, c := range []byte(s[i+2 : i+5]) {
			if c < '0' || c > '9' {
				return "", false
			}
			n = n*10 + int(c-'0')
		}
		if i+5+n > len(s) {
			return "", false
		}
		if s[i:i+2] == tag {
			return s[i+5 : i+5+n], true
		}
		i += 5 + n
	}
	return "", false
}

// AppendTLV appends one TLV element to b. It returns an error when tag is not two
// characters or the value is longer than 999 bytes.
func AppendTLV(b []byte, tag, value string) ([]byte, error) {
	if len(tag) != 2 {
		return b, fmt.Errorf("DE 48: tag %q is not 2 characters", tag)
	}
	if len(value) > 999 {
		return b, fmt.Errorf("DE 48: tag %q: value of %d bytes is longer than 999", tag, len(value))
	}
	b = append(b, tag...)
	b = append(b, byte('0'+len(value)/100), byte('0'+len(value)/10%10), byte('0'+len(value)%10))
	return append(b, value...), nil
}

// Geo is a WGS84 position in decimal degrees.
type Geo struct {
	Lat, Lon float64
}

// ParseGeo parses the GL tag "lat,lon": two decimal numbers (an exponent allowed).
// NaN, Inf and the hexadecimal or underscored forms strconv.ParseFloat also reads are
// refused: NaN passes every range comparison, and was then taken for no location at
// all (until 6 December 2026), which a terminal's missing-identity policy may accept.
func ParseGeo(s string) (Geo, error) {
	la, lo, ok := strings.Cut(s, ",")
	if !ok {
		return Geo{}, fmt.Errorf("GL %q: want lat,lon", s)
	}
	la, lo = strings.TrimSpace(la), strings.TrimSpace(lo)
	if !decimalDegrees(la) || !decimalDegrees(lo) {
		return Geo{}, fmt.Errorf("GL %q: want two decimal numbers (degrees)", s)
	}
	lat, err1 := strconv.ParseFloat(la, 64)
	lon, err2 := strconv.ParseFloat(lo, 64)
	if err1 != nil || err2 != nil || lat < -90 || lat > 90 || lon < -180 || lon > 180 {
		return Geo{}, fmt.Errorf("GL %q: not a latitude in [-90,90] and a longitude in [-180,180]", s)
	}
	return Geo{Lat: lat, Lon: lon}, nil
}

// decimalDegrees reports whether s is written only with the characters of a decimal
// number: digits, a point, signs and an exponent (strconv.ParseFloat judges the rest).
func decimalDegrees(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9', c == '.', c == '+', c == '-', c == 'e', c == 'E':
		default:
			return false
		}
	}
	return true
}

// Attestation is the SoftPOS AT tag: when the device was attested and the verdict.
type Attestation struct {
	Unix int64
	OK   bool
}

// ParseAttestation parses the AT tag "UNIXSECONDS:VERDICT" (VERDICT OK or FAIL).
func ParseAttestation(s string) (Attestation, error) {
	ts, verdict, ok := strings.Cut(s, ":")
	if !ok {
		return Attestation{}, fmt.Errorf("AT %q: want UNIXSECONDS:VERDICT", s)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sec < 0 {
		return Attestation{}, fmt.Errorf("AT %q: %q is not unix seconds", s, ts)
	}
	switch verdict {
	case "OK":
		return Attestation{Unix: sec, OK: true}, nil
	case "FAIL":
		return Attestation{Unix: sec}, nil
	}
	return Attestation{}, fmt.Errorf("AT %q: verdict %q is neither OK nor FAIL", s, verdict)
}

// ParseFindings splits the IF tag into findings; empty means a clean device. Unknown
// findings are kept (a new detection must not pass as clean).
func ParseFindings(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	out := parts[:0]
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// BatchTotals is the BT tag of an 0500.
type BatchTotals struct {
	PurchaseCount int64
	PurchaseSum   int64
	RefundCount   int64
	RefundSum     int64
}

// ParseBatchTotals parses "PURCHASECOUNT,PURCHASESUM,REFUNDCOUNT,REFUNDSUM".
func ParseBatchTotals(s string) (BatchTotals, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 4 {
		return BatchTotals{}, fmt.Errorf("BT %q: want 4 comma-separated numbers", s)
	}
	var v [4]int64
	for i, p := range parts {
		n, err := strconv.ParseInt(p, 10, 64)
		if err != nil || n < 0 {
			return BatchTotals{}, fmt.Errorf("BT %q: %q is not a non-negative number", s, p)
		}
		v[i] = n
	}
	return BatchTotals{v[0], v[1], v[2], v[3]}, nil
}

// String formats the totals as the BT tag value.
func (b BatchTotals) String() string {
	return fmt.Sprintf("%d,%d,%d,%d", b.PurchaseCount, b.PurchaseSum, b.RefundCount, b.RefundSum)
}
