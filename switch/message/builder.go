package message

import (
	"fmt"
	"sort"
	"sync"
)

// Builder writes a message of a dialect straight into bytes, with the field layout of
// the moov-io spec (the same layout Scan reads): fixed fields must have their exact
// length, variable ones get their length prefix, hex fields take raw bytes. It is the
// switch's encoder for the answers it sends on the hot path, where packing through
// moov-io would allocate a field object per field; the tests check that moov-io
// unpacks what it writes to the same values.
type Builder struct {
	d      Dialect
	mti    string
	fields []builderField
	err    error
}

var builders = sync.Pool{New: func() any { return &Builder{fields: make([]builderField, 0, 24)} }}

type builderField struct {
	id  int
	val string
	raw []byte // for hex fields
}

// NewBuilder starts a message. Bytes ends it: the Builder must not be used after.
func NewBuilder(d Dialect, mti string) *Builder {
	b := builders.Get().(*Builder)
	b.d, b.mti, b.fields, b.err = d, mti, b.fields[:0], nil
	return b
}

// release returns the Builder to the pool.
func (b *Builder) release() {
	clear(b.fields) // drop references to values and bytes
	b.fields = b.fields[:0]
	builders.Put(b)
}

// Set sets a text field. An empty value leaves the field out.
func (b *Builder) Set(id int, v string) *Builder {
	if v == "" || b.err != nil {
		return b
	}
	if id < 2 || id > 128 || id == 65 {
		b.err = fmt.Errorf("DE %d: not a data field", id)
		return b
	}
	fl := layoutASCII[id]
	switch {
	case fl.hex:
		b.err = fmt.Errorf("DE %d: a hex field; use SetBytes", id)
	case fl.fixed > 0 && len(v) != fl.fixed:
		b.err = fmt.Errorf("DE %d: %d characters, the field is fixed at %d", id, len(v), fl.fixed)
	case fl.fixed < 0 || fl.fixed == 0 && fl.digits == 0:
		b.err = fmt.Errorf("DE %d: not in the spec", id)
	case fl.digits > 0 && len(v) > maxLen(fl.digits):
		b.err = fmt.Errorf("DE %d: %d characters do not fit a %d-digit length", id, len(v), fl.digits)
	}
	b.fields = append(b.fields, builderField{id: id, val: v})
	return b
}

// SetBytes sets a hex field (DE 52, 64, 128) from its raw bytes.
func (b *Builder) SetBytes(id int, raw []byte) *Builder {
	if b.err != nil {
		return b
	}
	fl := layoutASCII[id]
	if !fl.hex || len(raw)*2 != fl.fixed {
		b.err = fmt.Errorf("DE %d: not a hex field of %d bytes", id, len(raw))
		return b
	}
	b.fields = append(b.fields, builderField{id: id, raw: raw})
	return b
}

func maxLen(digits int) int {
	n := 1
	for i := 0; i < digits; i++ {
		n *= 10
	}
	return n - 1
}

// Bytes encodes the message and ends the Builder. With mac set, the MAC goes last: DE
// 128 if a field above 64 is present, else DE 64, over every byte before its 16 hex
// characters.
func (b *Builder) Bytes(mac MACFunc) ([]byte, error) {
	defer b.release()
	if b.err != nil {
		return nil, b.err
	}
	if len(b.mti) != 4 {
		return nil, fmt.Errorf("MTI %q is not 4 characters", b.mti)
	}
	sort.Slice(b.fields, func(i, j int) bool { return b.fields[i].id < b.fields[j].id })
	macField := 0
	if mac != nil {
		macField = 64
		if len(b.fields) > 0 && b.fields[len(b.fields)-1].id > 64 {
			macField = 128
		}
	}
	var bitmap [16]byte
	secondary := macField == 128
	size := 4
	for i, f := range b.fields {
		if i > 0 && f.id == b.fields[i-1].id {
			return nil, fmt.Errorf("DE %d set twice", f.id)
		}
		if f.id == macField {
			return nil, fmt.Errorf("DE %d is the MAC; it is computed", f.id)
		}
		if f.id > 64 {
			secondary = true
		}
		bitmap[(f.id-1)/8] |= 0x80 >> ((f.id - 1) % 8)
		size += wireLen(f)
	}
	if macField != 0 {
		bitmap[(macField-1)/8] |= 0x80 >> ((macField - 1) % 8)
		size += 16
	}
	nbm := 8
	if secondary {
		bitmap[0] |= 0x80
		nbm = 16
	}
	if b.d == DialectASCIIBinaryBitmap {
		size += nbm
	} else {
		size += 2 * nbm
	}
	out := make([]byte, 0, size)
	out = append(out, b.mti...)
	if b.d == DialectASCIIBinaryBitmap {
		out = append(out, bitmap[:nbm]...)
	} else {
		out = appendUpperHex(out, bitmap[:nbm])
	}
	for _, f := range b.fields {
		fl := layoutASCII[f.id]
		switch {
		case fl.hex:
			out = appendUpperHex(out, f.raw)
		case fl.digits > 0:
			n := len(f.val)
			for d := fl.digits - 1; d >= 0; d-- {
				p := 1
				for i := 0; i < d; i++ {
					p *= 10
				}
				out = append(out, byte('0'+n/p%10))
			}
			out = append(out, f.val...)
		default:
			out = append(out, f.val...)
		}
	}
	if macField != 0 {
		sum, err := mac(out)
		if err != nil {
			return nil, fmt.Errorf("MAC: %w", err)
		}
		out = appendUpperHex(out, sum[:])
	}
	return out, nil
}

func wireLen(f builderField) int {
	fl := layoutASCII[f.id]
	switch {
	case fl.hex:
		return 2 * len(f.raw)
	case fl.digits > 0:
		return fl.digits + len(f.val)
	}
	return len(f.val)
}

func appendUpperHex(dst, src []byte) []byte {
	const digits = "0123456789ABCDEF"
	for _, c := range src {
		dst = append(dst, digits[c>>4], digits[c&15])
	}
	return dst
}

// NewResponseBuilder starts the response to req in req's dialect: the response MTI and
// the echoed fields (DE 3, 4, 7, 11, 41, 42, and 49 and 70 when present).
func NewResponseBuilder(req *Request) *Builder {
	return NewResponseBuilderAmount(req, "")
}

// NewResponseBuilderAmount is NewResponseBuilder with DE 4 set to amount instead of the
// request's (a partial approval's answer carries the approved amount); "" echoes the
// request's.
func NewResponseBuilderAmount(req *Request, amount string) *Builder {
	if amount == "" {
		amount = req.AmountRaw
	}
	return NewBuilder(req.Dialect, ResponseMTI(req.MTI)).Set(3, req.ProcCode).Set(4, amount).Set(7, req.DE7).
		Set(11, req.STAN).Set(41, req.TID).Set(42, req.MID).Set(49, req.Currency).Set(70, req.NetCode)
}

// ReasonTLV is the DE 48 of a decline reason (tag RS), at most 99 characters of it.
func ReasonTLV(reason string) string {
	if len(reason) > 99 {
		reason = reason[:99]
	}
	b, _ := AppendTLV(make([]byte, 0, 5+len(reason)), TagReason, reason)
	return string(b)
}
