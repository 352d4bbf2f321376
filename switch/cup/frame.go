package cup

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/moov-io/iso8583"
	iso8583errors "github.com/moov-io/iso8583/errors"
	"github.com/moov-io/iso8583/field"
)

// TPDU is the 5-byte transport header before the header: ID 0x60, destination and
// source addresses (2 bytes each).
type TPDU [5]byte

// Answer returns the TPDU of an answer: the request's with the addresses swapped.
func (t TPDU) Answer() TPDU {
	return TPDU{t[0], t[3], t[4], t[1], t[2]}
}

// TPDUID is the first byte of every TPDU.
const TPDUID = 0x60

// Header is the 6-byte (12 BCD digits) application header: application type N2 (60
// magnetic-stripe POS, 61 IC POS), software version N2, terminal status N1 (0 normal,
// 1 test), processing requirement N1, software sub-version N6.
type Header [6]byte

// The processing requirements a host sets in an answer's header.
const (
	ReqNone             = 0 // nothing to do
	ReqDownloadParams   = 1 // download parameters
	ReqUploadStatus     = 2 // upload status
	ReqSignIn           = 3 // sign in again: the working keys were rotated or expired
	ReqUpdateICKeys     = 4 // update IC public keys
	ReqDownloadICParams = 5 // download IC parameters
	ReqTMSDownload      = 6 // TMS (application) download
)

// ProcessingRequirement returns the processing requirement digit (byte 2, low nibble).
func (h Header) ProcessingRequirement() int { return int(h[2] & 0x0f) }

// WithProcessingRequirement returns h with the processing requirement set to req
// (0 to 9).
func (h Header) WithProcessingRequirement(req int) Header {
	h[2] = h[2]&0xf0 | byte(req)&0x0f
	return h
}

// Status returns the terminal status digit (0 normal, 1 test).
func (h Header) Status() int { return int(h[2] >> 4) }

// AppType returns the application type (the first two digits, e.g. "60").
func (h Header) AppType() string { return fmt.Sprintf("%02X", h[0]) }

// prefixLen is the bytes before the MTI: TPDU and header.
const prefixLen = len(TPDU{}) + len(Header{})

// Frame is one message of the dialect without its 2-byte length: TPDU, header and the
// ISO 8583 message of Spec.
type Frame struct {
	TPDU   TPDU
	Header Header
	Msg    *iso8583.Message
}

// ErrShort is a body too short to hold a TPDU, a header, an MTI and a bitmap.
var ErrShort = errors.New("shorter than TPDU + header + MTI + bitmap")

// Decode reads a body (without its length). Its error names the field at fault; bytes
// left after the last field are an error (moov ignores them).
//
// What Decode accepts encodes again (Encode): a value the decoder reads but Spec
// cannot write back (a strict BCD field such as F11 ending in a filler nibble F) is
// refused here by packing the message once. The adapter's own path (decode) does
// not pack: it checks the fields it uses and answers a bad one 30. Until the sixth
// release of 6 December 2026 the decoder's check for trailing bytes packed the
// message on every path; measuring the fields instead (wireLen) left Decode without
// that check, which FuzzCUPDecode found.
func Decode(body []byte) (*Frame, error) {
	f, _, err := decode(body)
	if err != nil {
		return nil, err
	}
	if _, err := f.Msg.Pack(); err != nil {
		return nil, fmt.Errorf("a message that cannot be encoded again: %w", err)
	}
	return f, nil
}

// FieldError is a body that cannot be read as the dialect has it, from field Field
// on: a field that did not decode (its length prefix is not decimal digits or more
// than the field's maximum, or the body ends inside it), a secondary bitmap (Field 1:
// bit 1 set, which the dialect does not use), or bytes after the last field (Field
// 0: the body is longer than the fields its bitmap names).
type FieldError struct {
	Field int
	Err   error
	// at is the field that did not decode (0: every field named by the bitmap
	// did): a frame is answerable only when that is none or one after F42 (F41
	// read where the bitmap puts it).
	at int
}

func (e *FieldError) Error() string {
	if e.Field == 0 {
		return e.Err.Error()
	}
	return fmt.Sprintf("F%d: %v", e.Field, e.Err)
}
func (e *FieldError) Unwrap() error { return e.Err }

// errSecondaryBitmap is the FieldError of a body with bit 1 set.
var errSecondaryBitmap = errors.New("bit 1 set: a secondary bitmap, which the dialect does not use (its fields 65 to 128 are not read)")

// decode is Decode that, when the body cannot be read as the dialect has it, also
// returns the frame read as far as it goes (partial; a *FieldError says why), so
// that a request whose terminal and STAN were read can be answered:
//
//   - a field after the bitmap that does not decode: the fields before it;
//   - a secondary bitmap (bit 1): the fields 2 to 64 read after both bitmaps (the
//     secondary one skipped), whatever follows them left unread;
//   - bytes after the last field: every field.
//
// The MAC of a partial frame is the body's last 8 bytes when the bitmap has F64 (or,
// with a secondary bitmap, F128: the last field, as ISO 8583 has it): the body is
// well framed (its outer length held), so its end is the terminal's, whereas where
// F64 falls after a field of a wrong length is not known.
func decode(body []byte) (f *Frame, partial *Frame, err error) {
	if len(body) < prefixLen+2+8 {
		return nil, nil, fmt.Errorf("%w: %d bytes", ErrShort, len(body))
	}
	f = &Frame{Msg: iso8583.NewMessage(Spec)}
	copy(f.TPDU[:], body)
	copy(f.Header[:], body[len(f.TPDU):])
	if f.TPDU[0] != TPDUID {
		return nil, nil, fmt.Errorf("TPDU ID is %02X, want 60", f.TPDU[0])
	}
	defer func() {
		if p := recover(); p != nil {
			f, partial, err = nil, nil, fmt.Errorf("decoder panic: %v", p)
		}
	}()
	msg := body[prefixLen:]
	macBit := msg[2+7]&1 == 1 // F64
	secondary := msg[2]&0x80 != 0
	if secondary {
		// Read as the dialect's message without it: bit 1 cleared, the 8 bytes
		// of the secondary bitmap left out (a copy: the bad path only).
		if len(msg) < 2+16 {
			return nil, nil, fmt.Errorf("bitmap: bit 1 (a secondary bitmap) set, but the body ends inside the secondary bitmap (%d bytes after the MTI)", len(msg)-2)
		}
		macBit = macBit || msg[2+15]&1 == 1 // F128
		m := make([]byte, 0, len(msg)-8)
		m = append(append(append(m, msg[:2]...), msg[2]&0x7f), msg[3:10]...)
		msg = append(m, msg[18:]...)
	}
	// partialOf returns f as a partial frame, its MAC the body's last 8 bytes.
	partialOf := func(fe *FieldError) (*Frame, *Frame, error) {
		if macBit && fe.at != 64 && len(body) >= prefixLen+2+8+8 {
			_ = f.Msg.BinaryField(64, body[len(body)-8:])
			f.Msg.Bitmap().Set(64) // F128's MAC, when F64 is not in the primary bitmap
		}
		if secondary && fe.Field != 1 {
			fe = &FieldError{Field: 1, Err: fmt.Errorf("%w; then %v", errSecondaryBitmap, fe), at: fe.at}
		}
		return nil, f, fe
	}
	if err := f.Msg.Unpack(msg); err != nil {
		var ue *iso8583errors.UnpackError
		if id, aerr := 0, error(nil); errors.As(err, &ue) {
			id, aerr = strconv.Atoi(ue.FieldID)
			if aerr == nil && id > 1 && !f.Msg.Bitmap().IsSet(1) {
				f.Msg.UnsetField(id)
				return partialOf(&FieldError{Field: id, Err: ue.Err, at: id})
			}
		}
		return nil, nil, err
	}
	if f.Msg.Bitmap().IsSet(1) { // a third bitmap: bit 1 of the secondary one
		return nil, nil, errors.New("bitmap: a secondary and a third bitmap, which the dialect does not use")
	}
	n, err := wireLen(f)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case secondary:
		return partialOf(&FieldError{Field: 1, Err: errSecondaryBitmap})
	case n != len(msg):
		return partialOf(&FieldError{Err: fmt.Errorf("%d bytes after the last field: the body is longer than the fields its bitmap names (a length prefix that is wrong but within the field's maximum, or bytes added after F64)", len(msg)-n)})
	}
	return f, nil, nil
}

// wireLen returns the length of f's message (MTI to the last field) as it was read,
// from the fields' lengths and Spec's encodings (wireSizes), without encoding it:
// the decode path's check that no byte is left after the last field allocates
// nothing. A field of a kind wireSizes does not know is encoded to be measured.
func wireLen(f *Frame) (int, error) {
	n := 2 + 8
	for id := 2; id <= 64; id++ {
		if !f.Msg.Bitmap().IsSet(id) {
			continue
		}
		fl := f.Msg.GetField(id)
		if fl == nil {
			continue
		}
		w := wireSizes[id]
		switch {
		case w.fixed > 0:
			n += w.fixed
			continue
		case w.pref > 0:
			l := -1
			switch v := fl.(type) {
			case *field.String:
				l = len(v.Value())
			case *field.Binary:
				l = len(v.Value())
			}
			if l >= 0 {
				if w.half {
					l = (l + 1) / 2
				}
				n += w.pref + l
				continue
			}
		}
		b, err := fl.Pack()
		if err != nil {
			return 0, fmt.Errorf("re-packing F%d: %w", id, err)
		}
		n += len(b)
	}
	return n, nil
}

// MACFunc computes the 8-byte F64 of the MAC input (MTI to F63).
type MACFunc func(data []byte) ([]byte, error)

// Encode packs f (TPDU, header, message). With mac set, F64 is added and computed
// over the bytes from the MTI to the end of F63; without, F64 is left out.
func (f *Frame) Encode(mac MACFunc) ([]byte, error) {
	f.Msg.UnsetField(64)
	if mac != nil {
		if err := f.Msg.BinaryField(64, make([]byte, 8)); err != nil {
			return nil, err
		}
	}
	msg, err := f.Msg.Pack()
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, prefixLen+len(msg))
	out = append(append(append(out, f.TPDU[:]...), f.Header[:]...), msg...)
	if mac != nil {
		sum, err := mac(msg[:len(msg)-8])
		if err != nil {
			return nil, fmt.Errorf("MAC: %w", err)
		}
		if len(sum) != 8 {
			return nil, fmt.Errorf("MAC is %d bytes, want 8", len(sum))
		}
		copy(out[len(out)-8:], sum)
		_ = f.Msg.BinaryField(64, sum)
	}
	return out, nil
}

// MACInput returns the bytes of body that F64 covers (MTI to the end of F63), or nil
// when f has no F64.
func MACInput(body []byte, f *Frame) []byte {
	if !f.Has(64) || len(body) < prefixLen+8 {
		return nil
	}
	return body[prefixLen : len(body)-8]
}

// Has reports whether field id is present.
func (f *Frame) Has(id int) bool { return f.Msg.GetField(id) != nil && f.Msg.Bitmap().IsSet(id) }

// Str returns field id as a string ("" when absent).
func (f *Frame) Str(id int) string {
	if !f.Has(id) {
		return ""
	}
	s, _ := f.Msg.GetString(id)
	return s
}

// Bytes returns field id's bytes (nil when absent).
func (f *Frame) Bytes(id int) []byte {
	if !f.Has(id) {
		return nil
	}
	b, _ := f.Msg.GetBytes(id)
	return b
}

// MTI returns the message type ("" when unreadable).
func (f *Frame) MTI() string {
	s, _ := f.Msg.GetMTI()
	return s
}

// NewFrame returns an empty frame of the given MTI.
func NewFrame(tpdu TPDU, h Header, mti string) *Frame {
	f := &Frame{TPDU: tpdu, Header: h, Msg: iso8583.NewMessage(Spec)}
	f.Msg.MTI(mti)
	return f
}

// Set sets field id to v when v is not empty (numeric fields take digit strings).
func (f *Frame) Set(id int, v string) *Frame {
	if v != "" {
		_ = f.Msg.Field(id, v)
	}
	return f
}

// SetBytes sets a binary field when b is not empty.
func (f *Frame) SetBytes(id int, b []byte) *Frame {
	if len(b) > 0 {
		_ = f.Msg.BinaryField(id, b)
	}
	return f
}

// Offset returns where field id (2 to 64, present) starts in f's encoding, the
// TPDU's first byte being 0: for tools and tests that alter a field's bytes (its
// length prefix first, for a variable one).
func (f *Frame) Offset(id int) (int, error) {
	if id < 2 || id > 64 || !f.Has(id) {
		return 0, fmt.Errorf("offset of F%d: not in the message", id)
	}
	off := prefixLen + 2 + 8
	for i := 2; i < id; i++ {
		if !f.Has(i) {
			continue
		}
		b, err := f.Msg.GetField(i).Pack()
		if err != nil {
			return 0, fmt.Errorf("offset of F%d: packing F%d: %w", id, i, err)
		}
		off += len(b)
	}
	return off, nil
}
