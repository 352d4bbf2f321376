package message

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/moov-io/iso8583"
	iso8583errors "github.com/moov-io/iso8583/errors"

	"github.com/switchyard/switchyard/internal/carddata"
)

// MaxBody is the largest message body the terminal interface allows, in bytes.
const MaxBody = 4096

// Request is a decoded, validated terminal request. Strings are exactly the characters
// on the wire and share Raw's bytes: Raw must not be changed while the Request is in
// use. It holds card data (PAN, track 2, PIN block): never log it; use MaskedPAN.
type Request struct {
	Dialect Dialect
	Raw     []byte // the whole body as received (MAC input is Raw[:len(Raw)-16])

	MTI       string
	PAN       string // DE 2, or the PAN of DE 35
	Track2    string // DE 35 as received ("" when absent)
	ProcCode  string // DE 3
	AmountRaw string // DE 4 as received
	Amount    int64  // DE 4 in minor units
	DE7       string // transmission date-time MMDDhhmmss UTC
	STAN      string // DE 11
	LocalTime string // DE 12
	LocalDate string // DE 13
	Expiry    string // DE 14 (or from DE 35), YYMM
	EntryMode string // DE 22
	CondCode  string // DE 25
	RRN       string // DE 37 (voids and refunds name their original with it)
	AuthCode  string // DE 38
	TID       string // DE 41
	MID       string // DE 42
	DE48      string
	TLV       TLV
	Currency  string // DE 49
	PINBlock  [8]byte
	HasPIN    bool   // DE 52 present
	QR        bool   // paid with a payment code (QRCode), or a refund or void of such a payment; see QRCode
	ICC       string // DE 55
	NetCode   string // DE 70
	Original  string // DE 90
	Replace   string // DE 95
	MAC       [8]byte
	MACField  int // 64 or 128 when a MAC is present, else 0

	// QRCode is the payer's payment code when QR is set (empty for refunds and
	// voids), whatever the dialect carried it in (DE 48 QC in the ASCII dialects): a
	// credential like a PAN, never logged or stored in clear (qr.Mask). QR sits
	// beside HasPIN, in its padding, so that Request keeps its allocation size class.
	QRCode string
}

// MaskedPAN returns the PAN as first 6 and last 4 digits, the rest as '*'.
func (r *Request) MaskedPAN() string { return MaskPAN(r.PAN) }

// BIN returns the first six digits of the PAN ("" if shorter).
func (r *Request) BIN() string {
	if len(r.PAN) < 6 {
		return ""
	}
	return r.PAN[:6]
}

// MACInput returns the bytes a MAC is computed over: everything before the MAC
// field's 16 hex characters. It is nil when the request has no MAC.
func (r *Request) MACInput() []byte {
	if r.MACField == 0 {
		return nil
	}
	return r.Raw[:len(r.Raw)-16]
}

// TransmissionTime parses DE 7 (MMDDhhmmss, UTC), choosing the year that puts it
// nearest to now.
func (r *Request) TransmissionTime(now time.Time) (time.Time, error) {
	return ParseDE7(r.DE7, now)
}

// MaskPAN masks a PAN to first 6 / last 4. Shorter inputs are masked entirely.
func MaskPAN(pan string) string { return carddata.MaskPAN(pan) }

// FormatError is a request that cannot be processed as sent. When MTI, STAN and TID
// could be read the switch answers DE 39 = 30; otherwise it closes the connection.
type FormatError struct {
	MTI, STAN, TID string
	Field          int // the data element at fault, -1 when not one field
	Err            error
	// Echo holds the echoed fields (DE 3, 4, 7, 42, 49, 70) that could be read, for
	// the 30 response.
	Echo map[int]string
}

func (e *FormatError) Error() string {
	if e.Field >= 0 {
		return fmt.Sprintf("format error in DE %d: %v", e.Field, e.Err)
	}
	return "format error: " + e.Err.Error()
}

func (e *FormatError) Unwrap() error { return e.Err }

// Answerable reports whether the switch can answer this error with DE 39 = 30.
func (e *FormatError) Answerable() bool {
	return ResponseMTI(e.MTI) != "" && e.STAN != "" && e.TID != ""
}

// Decode unpacks and validates a terminal request body. On failure it returns a
// *FormatError.
//
// Well-formed messages take the fast path: Scan walks the fields with the layout of the
// moov-io spec without allocating. Anything Scan refuses is unpacked again by moov-io's
// unpacker, whose error names the field at fault and whose partial message gives the
// fields to echo in the 30 answer.
func Decode(raw []byte, d Dialect) (*Request, error) {
	if len(raw) == 0 {
		return nil, &FormatError{Field: -1, Err: errors.New("empty message")}
	}
	var f fieldValues
	mti, err := Scan(raw, d, func(id int, v []byte) { f[id] = v })
	if err != nil {
		return nil, slowError(raw, d, err)
	}
	r := &Request{Dialect: d, Raw: raw, MTI: string(mti)}
	if err := fill(r, &f); err != nil {
		return nil, err
	}
	return r, nil
}

// fieldValues are the wire values of a message's fields by number; nil when absent.
type fieldValues [129][]byte

func (f *fieldValues) has(id int) bool { return f[id] != nil }

// str returns field id as a string that shares the message's bytes (no copy): a
// Request's strings live as long as its Raw body, which is never changed after decoding.
func (f *fieldValues) str(id int) string {
	if len(f[id]) == 0 {
		return ""
	}
	return unsafe.String(&f[id][0], len(f[id]))
}

// slowError unpacks raw with moov-io to describe why Scan refused it.
func slowError(raw []byte, d Dialect, scanErr error) error {
	m := iso8583.NewMessage(d.Spec())
	err := unpack(m, raw)
	if err == nil {
		err = scanErr
	}
	fe := &FormatError{Field: -1, Err: err, Echo: map[int]string{}}
	var ue *iso8583errors.UnpackError
	if errors.As(err, &ue) {
		if n, convErr := strconv.Atoi(ue.FieldID); convErr == nil {
			fe.Field = n
		}
		fe.Err = ue.Err
	}
	fe.MTI, _ = m.GetMTI()
	if !validMTI(fe.MTI) {
		fe.MTI = ""
	}
	if aligned(m) {
		fe.STAN = getString(m, 11)
		fe.TID = getString(m, 41)
		for _, id := range echoed {
			if v := getString(m, id); v != "" && id != fe.Field {
				fe.Echo[id] = v
			}
		}
	}
	if fe.MTI == "" || fe.STAN == "" || fe.TID == "" {
		readPast(raw, d, fe)
	}
	return fe
}

// aligned says whether the fields moov-io read of a message it could not unpack
// whole look read at their places: its date and time fields (DE 7 MMDDhhmmss, DE 12
// hhmmss, DE 13 MMDD, DE 14 YYMM) are dates and times. A length prefix that is wrong
// but within its field's maximum (DE 2 sent as 18 for 16 digits) shifts every field
// after it, and moov reads on until a later field fails: the DE 11 and DE 41 it read
// then are another field's bytes (a shift of digits is a date about once in three
// hundred). Until 7 December 2026 they were echoed in a 30 the terminal could not
// match (and the log named no terminal). A prefix wrong after DE 14 (DE 35, before
// DE 37 and 41) is not caught.
func aligned(m *iso8583.Message) bool {
	for _, f := range [...]struct {
		id     int
		layout string
	}{{7, "0102150405"}, {12, "150405"}, {13, "0102"}, {14, "0601"}} {
		if v := getString(m, f.id); v != "" {
			if _, err := time.Parse(f.layout, v); err != nil {
				return false
			}
		}
	}
	return true
}

// readPast fills what fe lacks of the MTI, DE 11, DE 41 and the echoed fields from a
// lenient scan of raw. moov-io stops at the first field it cannot decode, so a bad
// byte in DE 4 would hide DE 11 and DE 41 and close the connection; the lenient scan
// walks past a field whose length is known whatever its characters. Only values that
// the 30 answer can carry are taken: a 4-digit MTI, 6 digits of DE 11, 8 printable
// characters of DE 41. The walk must end exactly at the end of raw with no other
// fault: a wrong length prefix misaligns every field after it, and values read from a
// misaligned walk are garbage.
func readPast(raw []byte, d Dialect, fe *FormatError) {
	var f fieldValues
	mti, err := scan(raw, d, true, func(id int, v []byte) { f[id] = v })
	if err != nil && !errors.Is(err, errInvalidChars) {
		return
	}
	if fe.MTI == "" && validMTI(string(mti)) {
		fe.MTI = string(mti)
	}
	if v := f[11]; fe.STAN == "" && digits(string(v), 6) {
		fe.STAN = string(v)
	}
	if v := f[41]; fe.TID == "" && len(v) == 8 && printable(v) {
		fe.TID = string(v)
	}
	for _, id := range echoed {
		if _, ok := fe.Echo[id]; !ok && id != fe.Field && f.has(id) && printable(f[id]) {
			fe.Echo[id] = string(f[id])
		}
	}
}

func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// unpack unpacks raw into m and refuses trailing bytes, which moov ignores.
func unpack(m *iso8583.Message, raw []byte) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("decoder panic: %v", p)
		}
	}()
	if err := m.Unpack(raw); err != nil {
		return err
	}
	n, err := PackedLength(m)
	if err != nil {
		return err
	}
	if n != len(raw) {
		return fmt.Errorf("%d bytes after the last field", len(raw)-n)
	}
	return nil
}

// PackedLength returns how many bytes m takes on the wire, from its spec and values.
func PackedLength(m *iso8583.Message) (int, error) {
	bm := m.Bitmap()
	bytesPerBitmap := 16
	if m.GetSpec() == SpecBinaryBitmap {
		bytesPerBitmap = 8
	}
	n := 4 + bytesPerBitmap*(bm.Len()/64)
	for id := 2; id <= bm.Len(); id++ {
		if id == 65 || !bm.IsSet(id) {
			continue
		}
		f := m.GetField(id)
		if f == nil {
			return 0, fmt.Errorf("DE %d is in the bitmap but was not read", id)
		}
		b, err := f.Bytes()
		if err != nil {
			return 0, fmt.Errorf("DE %d: %w", id, err)
		}
		w := wireLength(f.Spec(), len(b))
		if w < 0 {
			return 0, fmt.Errorf("DE %d: unsupported field kind", id)
		}
		n += w
	}
	return n, nil
}

func getString(m *iso8583.Message, id int) string {
	if m.GetField(id) == nil {
		return ""
	}
	s, _ := m.GetString(id)
	return s
}

func validMTI(s string) bool {
	if len(s) != 4 {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func fill(r *Request, f *fieldValues) error {
	r.STAN = f.str(11)
	r.TID = f.str(41)
	fail := func(id int, format string, args ...any) error {
		fe := &FormatError{MTI: r.MTI, STAN: r.STAN, TID: r.TID, Field: id, Err: fmt.Errorf(format, args...), Echo: map[int]string{}}
		for _, e := range echoed {
			if e != id && f.has(e) {
				fe.Echo[e] = f.str(e)
			}
		}
		return fe
	}
	if mti := r.MTI; !validMTI(mti) {
		r.MTI = ""
		return fail(0, "MTI %q is not 4 digits", mti)
	}
	r.PAN = f.str(2)
	r.Track2 = f.str(35)
	r.ProcCode = f.str(3)
	r.AmountRaw = f.str(4)
	r.DE7 = f.str(7)
	r.LocalTime = f.str(12)
	r.LocalDate = f.str(13)
	r.Expiry = f.str(14)
	r.EntryMode = f.str(22)
	r.CondCode = f.str(25)
	r.RRN = f.str(37)
	r.AuthCode = f.str(38)
	r.MID = f.str(42)
	r.DE48 = f.str(48)
	r.Currency = f.str(49)
	r.ICC = f.str(55)
	r.NetCode = f.str(70)
	r.Original = f.str(90)
	r.Replace = f.str(95)
	if f.has(52) {
		if _, err := hex.Decode(r.PINBlock[:], f[52]); err != nil {
			return fail(52, "PIN block is not hex")
		}
		r.HasPIN = true
	}
	for _, id := range []int{128, 64} {
		if f.has(id) {
			if _, err := hex.Decode(r.MAC[:], f[id]); err != nil {
				return fail(id, "MAC is not hex")
			}
			r.MACField = id
			break
		}
	}
	// The MAC must be the last field: DE 128 when a secondary bitmap is present, else DE 64.
	if r.MACField != 0 {
		secondary := r.Dialect == DialectASCII && len(r.Raw) > 4 && hexBit1(r.Raw[4]) ||
			r.Dialect == DialectASCIIBinaryBitmap && len(r.Raw) > 4 && r.Raw[4]&0x80 != 0
		if secondary != (r.MACField == 128) || (r.MACField == 128 && f.has(64)) {
			return fail(r.MACField, "MAC must be DE 128 when a secondary bitmap is present, else DE 64")
		}
	}

	if !digits(r.STAN, 6) {
		return fail(11, "STAN %q is not 6 digits", r.STAN)
	}
	if r.TID == "" {
		return fail(41, "terminal ID missing")
	}
	need := func(ids ...int) error {
		for _, id := range ids {
			if !f.has(id) {
				return fail(id, "required for MTI %s and missing", r.MTI)
			}
		}
		return nil
	}
	// DE 48 is parsed once, here (fillQR reads it); a malformed one is reported after
	// the checks of the other fields, as before.
	var tlvErr error
	if r.DE48 != "" {
		r.TLV, tlvErr = ParseTLV(r.DE48)
	}
	switch r.MTI {
	case "0100", "0200":
		if r.MTI == "0100" && (r.ProcCode == PCQROrder || r.ProcCode == PCQRInquiry) {
			if err := fillOrder(r, f, need, fail); err != nil {
				return err
			}
			break
		}
		if err := need(3, 7, 22, 42, 49); err != nil {
			return err
		}
		if r.ProcCode != PCBalance {
			if err := need(4); err != nil {
				return err
			}
		}
		if r.ProcCode == PCVoid || r.ProcCode == PCRefund {
			if err := need(37); err != nil {
				return err
			}
		}
		if ok, err := fillQR(r, tlvErr, fail); err != nil {
			return err
		} else if !ok {
			if err := fillCard(r, fail); err != nil {
				return err
			}
		}
	case "0220":
		// A pre-authorization completion (docs/terminal-interface.md): the
		// pre-authorization is named by its RRN and approval code.
		if err := need(3, 4, 7, 22, 37, 38, 42, 49); err != nil {
			return err
		}
		if err := fillCard(r, fail); err != nil {
			return err
		}
	case "0400":
		if err := need(3, 4, 7, 42, 90); err != nil {
			return err
		}
		if r.PAN != "" || r.Track2 != "" {
			if err := fillCard(r, fail); err != nil {
				return err
			}
		}
		if !digits(r.Original, 42) {
			return fail(90, "original data elements %q are not 42 digits", r.Original)
		}
	case "0500":
		if err := need(3, 7, 42, 48); err != nil {
			return err
		}
	case "0800":
		if err := need(7, 70); err != nil {
			return err
		}
		if !digits(r.NetCode, 3) {
			return fail(70, "network management code %q is not 3 digits", r.NetCode)
		}
	}
	if r.ProcCode != "" && !digits(r.ProcCode, 6) {
		return fail(3, "processing code %q is not 6 digits", r.ProcCode)
	}
	if r.AmountRaw != "" {
		if !digits(r.AmountRaw, 12) {
			return fail(4, "amount %q is not 12 digits", r.AmountRaw)
		}
		r.Amount, _ = strconv.ParseInt(r.AmountRaw, 10, 64)
	}
	if r.DE7 != "" && !validDE7(r.DE7) {
		return fail(7, "transmission date-time %q is not MMDDhhmmss", r.DE7)
	}
	if r.EntryMode != "" && !digits(r.EntryMode, 3) {
		return fail(22, "POS entry mode %q is not 3 digits", r.EntryMode)
	}
	if r.Currency != "" && !digits(r.Currency, 3) {
		return fail(49, "currency %q is not 3 digits", r.Currency)
	}
	if r.Expiry != "" && !validExpiry(r.Expiry) {
		return fail(14, "expiry %q is not YYMM", r.Expiry)
	}
	if r.MID != "" && len(r.MID) != 15 {
		return fail(42, "merchant ID %q is not 15 characters", r.MID)
	}
	if tlvErr != nil {
		r.TLV = TLV{}
		return fail(48, "%v", tlvErr)
	}
	return nil
}

func fillCard(r *Request, fail func(int, string, ...any) error) error {
	if r.Track2 != "" {
		pan, exp, ok := parseTrack2(r.Track2)
		if !ok {
			return fail(35, "track 2 is not PAN=YYMM...")
		}
		if r.PAN != "" && r.PAN != pan {
			return fail(35, "track 2 PAN differs from DE 2")
		}
		r.PAN = pan
		if r.Expiry == "" {
			r.Expiry = exp
		}
	}
	if r.PAN == "" {
		return fail(2, "PAN (DE 2 or DE 35) required for MTI %s and missing", r.MTI)
	}
	if len(r.PAN) < 12 || len(r.PAN) > 19 || !digits(r.PAN, len(r.PAN)) {
		return fail(2, "PAN %s is not 12 to 19 digits", MaskPAN(r.PAN))
	}
	return nil
}

// Payment codes are 8 to 32 digits (the networks' are 16 to 24; the routing table
// allows 8 to 32).
const minQRCode, maxQRCode = 8, 32

// fillQR takes the payment code of DE 48 QC instead of a card: a purchase or
// pre-authorization carries the payer's code, a refund or void of a QR payment the
// tag empty. It reports whether the request is a QR one.
func fillQR(r *Request, tlvErr error, fail func(int, string, ...any) error) (bool, error) {
	t := &r.TLV
	if tlvErr != nil || t.Has&HasQRCode == 0 {
		return false, nil // a bad DE 48 is reported below, with the other checks
	}
	if r.PAN != "" || r.Track2 != "" {
		return false, fail(48, "payment code (QC) and a card (DE 2 or DE 35) both sent: send one")
	}
	code := t.QRCode
	switch r.ProcCode {
	case PCVoid, PCRefund:
		if code != "" {
			return false, fail(48, "a refund or void of a QR payment names its original by DE 37: QC must be empty")
		}
	case PCBalance:
		return false, fail(48, "a balance inquiry takes a card, not a payment code")
	default:
		if len(code) < minQRCode || len(code) > maxQRCode || !digits(code, len(code)) {
			return false, fail(48, "payment code (QC) of %d characters is not %d to %d digits", len(code), minQRCode, maxQRCode)
		}
	}
	r.QR, r.QRCode = true, code
	return true, nil
}

// fillOrder checks a merchant-presented order request (no card): a new order needs
// its amount (zero for the payer to enter it) and currency, an inquiry its order ID
// in DE 48 QO.
func fillOrder(r *Request, f *fieldValues, need func(...int) error, fail func(int, string, ...any) error) error {
	if err := need(3, 7, 42); err != nil {
		return err
	}
	if r.PAN != "" || r.Track2 != "" {
		return fail(2, "a QR order request carries no card")
	}
	if r.ProcCode == PCQROrder {
		return need(4, 49)
	}
	if err := need(48); err != nil {
		return err
	}
	if _, err := ParseTLV(r.DE48); err == nil {
		if id, _ := TLVValue(r.DE48, TagQROrder); id == "" {
			return fail(48, "an order inquiry names its order in QO")
		}
	}
	return nil
}

// parseTrack2 returns the PAN and expiry of ISO 7813 track 2 data "PAN=YYMMSSS...".
func parseTrack2(t string) (pan, expiry string, ok bool) {
	i := strings.IndexAny(t, "=D")
	if i < 12 || i > 19 || len(t) < i+5 {
		return "", "", false
	}
	pan, expiry = t[:i], t[i+1:i+5]
	return pan, expiry, digits(pan, len(pan)) && validExpiry(expiry)
}

func validExpiry(s string) bool {
	if !digits(s, 4) {
		return false
	}
	mm := (s[2]-'0')*10 + s[3] - '0'
	return mm >= 1 && mm <= 12
}

func digits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ParseDE7 parses a transmission date-time MMDDhhmmss (UTC), choosing the year that
// puts it nearest to now (ISO 8583 carries no year).
func ParseDE7(s string, now time.Time) (time.Time, error) {
	if !digits(s, 10) {
		return time.Time{}, fmt.Errorf("transmission date-time %q is not MMDDhhmmss", s)
	}
	two := func(i int) int { return int(s[i]-'0')*10 + int(s[i+1]-'0') }
	mo, d, hh, mm, ss := two(0), two(2), two(4), two(6), two(8)
	best := time.Time{}
	if mo >= 1 && mo <= 12 && d >= 1 && hh < 24 && mm < 60 && ss < 60 {
		for _, y := range [...]int{now.Year() - 1, now.Year(), now.Year() + 1} {
			if d > daysIn(time.Month(mo), y) {
				continue // 29 February of a common year
			}
			t := time.Date(y, time.Month(mo), d, hh, mm, ss, 0, time.UTC)
			if best.IsZero() || absDur(t.Sub(now)) < absDur(best.Sub(now)) {
				best = t
			}
		}
	}
	if best.IsZero() {
		return best, fmt.Errorf("transmission date-time %q is not a valid MMDDhhmmss", s)
	}
	return best, nil
}

// daysIn returns the number of days of month m in year y.
func daysIn(m time.Month, y int) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// FormatDE7 formats t (in UTC) as MMDDhhmmss.
func FormatDE7(t time.Time) string { return t.UTC().Format("0102150405") }

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// hexBit1 reports whether the hex character c has its high bit set (8-F).
func hexBit1(c byte) bool {
	return c >= '8' && c <= '9' || c >= 'A' && c <= 'F' || c >= 'a' && c <= 'f'
}

// validDE7 checks MMDDhhmmss without parsing a time.
func validDE7(s string) bool {
	if !digits(s, 10) {
		return false
	}
	n := func(i int) int { return int(s[i]-'0')*10 + int(s[i+1]-'0') }
	return n(0) >= 1 && n(0) <= 12 && n(2) >= 1 && n(2) <= 31 && n(4) < 24 && n(6) < 60 && n(8) < 60
}
