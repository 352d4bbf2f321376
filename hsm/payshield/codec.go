// Package payshield speaks the host command protocol of Thales payShield HSMs (and of
// the many HSMs and cloud HSM services compatible with it): a codec for its frames,
// a client that implements hsm.HSM over a pool of connections to one or more HSMs,
// and a server that puts the software HSM behind the same protocol
// (`switchyard hsm serve`).
//
// A frame is a 2-byte big-endian length followed by the message: a header of fixed
// length that the HSM echoes unchanged (the client uses it to match pipelined
// answers to requests), a 2-letter command code and its fields. The answer's code
// is the request's with the second letter advanced by one (CA → CB), followed by a
// 2-digit error code ("00" is success) and the answer's fields.
//
// Keys cross the protocol only as tokens encrypted under the HSM's local master key
// (LMK): "S" followed by a key block (the key-block LMK scheme), or "U"/"X" + 32 hex,
// "T"/"Y" + 48 hex, "Z" + 16 hex (the variant LMK scheme). The switch's key store
// keeps, per key version, that token; the clear key never leaves the HSM. See
// docs/hsm.md for the command subset and the field layouts.
package payshield

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// MaxFrame is the largest message a frame may carry (the 2-byte length allows 65535;
// payShield's own limit is lower, and nothing the switch sends comes close).
const MaxFrame = 32 * 1024

// DefaultHeaderLength is the header length of payShield's factory configuration and
// of `switchyard hsm serve`.
const DefaultHeaderLength = 4

// ErrFrame is wrapped by every error about a malformed frame or message.
var ErrFrame = errors.New("payShield frame")

// Request is a host command: the echoed header, the 2-letter command code and the
// command's fields as one byte string.
type Request struct {
	Header string
	Code   string
	Body   []byte
}

// Response is an answer: the echoed header, the answer code (the request code with
// its second letter advanced), the 2-digit error code and the answer's fields.
type Response struct {
	Header  string
	Code    string
	ErrCode string
	Body    []byte
}

// ResponseCode returns the answer code of a command code: the second letter advanced
// by one (NC → ND, CA → CB, M6 → M7). It fails for codes that are not two
// alphanumeric characters or whose second character is 'Z' or '9'.
func ResponseCode(code string) (string, error) {
	if len(code) != 2 || !alnum(code[0]) || !alnum(code[1]) || code[1] == 'Z' || code[1] == '9' {
		return "", fmt.Errorf("%w: command code %q is not two letters or digits that can be advanced", ErrFrame, code)
	}
	return code[:1] + string(code[1]+1), nil
}

func alnum(c byte) bool { return c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' }

// ReadFrame reads one frame from r and returns its message (without the length). It
// reuses buf when it is large enough.
func ReadFrame(r io.Reader, buf []byte) ([]byte, error) {
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(l[:]))
	if n == 0 {
		return nil, fmt.Errorf("%w: zero length", ErrFrame)
	}
	if n > MaxFrame {
		return nil, fmt.Errorf("%w: length %d is over the limit of %d", ErrFrame, n, MaxFrame)
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("%w: %d-byte message cut short: %w", ErrFrame, n, err)
	}
	return buf, nil
}

func appendFrame(dst []byte, parts ...[]byte) ([]byte, error) {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if n > MaxFrame {
		return dst, fmt.Errorf("%w: message of %d bytes is over the limit of %d", ErrFrame, n, MaxFrame)
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	for _, p := range parts {
		dst = append(dst, p...)
	}
	return dst, nil
}

// AppendRequest appends the frame of req to dst.
func AppendRequest(dst []byte, req Request) ([]byte, error) {
	if _, err := ResponseCode(req.Code); err != nil {
		return dst, err
	}
	if !printable(req.Header) {
		return dst, fmt.Errorf("%w: header %q is not printable ASCII", ErrFrame, req.Header)
	}
	return appendFrame(dst, []byte(req.Header), []byte(req.Code), req.Body)
}

// AppendResponse appends the frame of resp to dst.
func AppendResponse(dst []byte, resp Response) ([]byte, error) {
	if len(resp.Code) != 2 || len(resp.ErrCode) != 2 || !printable(resp.Code) || !errorCode(resp.ErrCode) {
		return dst, fmt.Errorf("%w: answer code %q error code %q: want 2 characters and 2 digits or capital letters", ErrFrame, resp.Code, resp.ErrCode)
	}
	if !printable(resp.Header) {
		return dst, fmt.Errorf("%w: header %q is not printable ASCII", ErrFrame, resp.Header)
	}
	return appendFrame(dst, []byte(resp.Header), []byte(resp.Code), []byte(resp.ErrCode), resp.Body)
}

// ParseRequest splits a message (as ReadFrame returns it) into a request, with a
// header of headerLen characters. Body aliases msg.
func ParseRequest(msg []byte, headerLen int) (Request, error) {
	if len(msg) < headerLen+2 {
		return Request{}, fmt.Errorf("%w: %d-byte message is shorter than a %d-character header and a command code", ErrFrame, len(msg), headerLen)
	}
	req := Request{Header: string(msg[:headerLen]), Code: string(msg[headerLen : headerLen+2]), Body: msg[headerLen+2:]}
	if _, err := ResponseCode(req.Code); err != nil {
		return req, err
	}
	return req, nil
}

// ParseResponse splits a message into an answer, with a header of headerLen
// characters. Body aliases msg.
func ParseResponse(msg []byte, headerLen int) (Response, error) {
	if len(msg) < headerLen+4 {
		return Response{}, fmt.Errorf("%w: %d-byte answer is shorter than a %d-character header, an answer code and an error code", ErrFrame, len(msg), headerLen)
	}
	resp := Response{Header: string(msg[:headerLen]), Code: string(msg[headerLen : headerLen+2]), ErrCode: string(msg[headerLen+2 : headerLen+4]), Body: msg[headerLen+4:]}
	if !errorCode(resp.ErrCode) {
		return resp, fmt.Errorf("%w: answer %s has error code %q, not 2 digits or capital letters", ErrFrame, resp.Code, resp.ErrCode)
	}
	return resp, nil
}

// errorCode reports whether s is an answer's error code: 2 digits or capital
// letters. A payShield with a key-block LMK answers key block errors with codes
// A1 to BE (A4 key block authentication failure, A6 invalid key usage, A8 invalid
// mode of use, ...); until 6 December 2026 such an answer was taken for a broken
// frame, the connection was closed, the command failed as unavailable (96) and the
// HSM was marked down.
func errorCode(s string) bool { return len(s) == 2 && alnum(s[0]) && alnum(s[1]) }

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// Fields reads the fields of a command or answer body in order. The first error
// sticks: later reads return zero values, and Err reports it with the name of the
// field that failed.
type Fields struct {
	b   []byte
	off int
	err error
}

// NewFields returns a reader over body.
func NewFields(body []byte) *Fields { return &Fields{b: body} }

func (f *Fields) fail(name, format string, args ...any) {
	if f.err == nil {
		f.err = fmt.Errorf("%w: field %s at offset %d: %s", ErrFrame, name, f.off, fmt.Sprintf(format, args...))
	}
}

// Err returns the first error.
func (f *Fields) Err() error { return f.err }

// Remaining returns how many bytes are left.
func (f *Fields) Remaining() int { return len(f.b) - f.off }

// Fixed reads n characters.
func (f *Fields) Fixed(name string, n int) string {
	if f.err != nil {
		return ""
	}
	if f.Remaining() < n {
		f.fail(name, "want %d characters, %d left", n, f.Remaining())
		return ""
	}
	s := string(f.b[f.off : f.off+n])
	f.off += n
	return s
}

// Digits reads n decimal digits.
func (f *Fields) Digits(name string, n int) string {
	s := f.Fixed(name, n)
	if f.err == nil && !isDigits(s) {
		f.fail(name, "not %d digits", n) // the value is not quoted: it may be card data
	}
	return s
}

// Hex reads n upper-case hex digits.
func (f *Fields) Hex(name string, n int) string {
	s := f.Fixed(name, n)
	if f.err == nil && !isHex(s) {
		f.fail(name, "not %d upper-case hex digits", n)
	}
	return s
}

// Peek returns the next byte without reading it, or 0 at the end.
func (f *Fields) Peek() byte {
	if f.err != nil || f.off >= len(f.b) {
		return 0
	}
	return f.b[f.off]
}

// Delim reads the delimiter c if it comes next and reports whether it did.
func (f *Fields) Delim(c byte) bool {
	if f.Peek() == c && f.err == nil && f.off < len(f.b) {
		f.off++
		return true
	}
	return false
}

// Until reads up to (not including) the delimiter c, which it then skips, or up to
// the end when c does not occur.
func (f *Fields) Until(name string, c byte, max int) string {
	if f.err != nil {
		return ""
	}
	rest := f.b[f.off:]
	i := strings.IndexByte(string(rest), c)
	if i < 0 {
		i = len(rest)
	}
	if i > max {
		f.fail(name, "longer than %d characters", max)
		return ""
	}
	s := string(rest[:i])
	f.off += i
	if f.off < len(f.b) {
		f.off++
	}
	return s
}

// Rest reads everything left.
func (f *Fields) Rest() []byte {
	if f.err != nil {
		return nil
	}
	r := f.b[f.off:]
	f.off = len(f.b)
	return r
}

// End fails unless every byte was read.
func (f *Fields) End() {
	if f.err == nil && f.Remaining() != 0 {
		f.fail("end", "%d unexpected characters", f.Remaining())
	}
}

// tokenShape describes a key token refused for its scheme by its first character
// and its length only: the rest may be a clear key a host sent where a token
// belongs, which must not reach a log or an error (until 7 December 2026 its
// first 16 characters did).
func tokenShape(tok string) string {
	if tok == "" {
		return "an empty token"
	}
	return fmt.Sprintf("%q and %d characters more", tok[:1], len(tok)-1)
}

func clip(s string) string {
	if len(s) > 16 {
		return s[:16] + "..."
	}
	return s
}

// Key reads a key token: "S" and a key block whose length its header gives (5 digits
// after the block's version character), "U"/"X" and 32 hex digits, "T"/"Y" and 48,
// "Z" and 16, or 16 or 32 bare hex digits (single- or double-length variant keys
// without a scheme tag, as older hosts send them; bare tokens need bareLen).
func (f *Fields) Key(name string, bareLen int) string {
	if f.err != nil {
		return ""
	}
	switch c := f.Peek(); c {
	case 'S':
		if f.Remaining() < 6 {
			f.fail(name, "key block token cut short")
			return ""
		}
		l := string(f.b[f.off+2 : f.off+6])
		if !isDigits(l) {
			f.fail(name, "key block length %q is not 4 digits", l)
			return ""
		}
		n := int(l[0]-'0')*1000 + int(l[1]-'0')*100 + int(l[2]-'0')*10 + int(l[3]-'0')
		if n < 16 {
			f.fail(name, "key block length %d is shorter than its header", n)
			return ""
		}
		return f.Fixed(name, 1+n)
	case 'U', 'X':
		return f.hexToken(name, 32)
	case 'T', 'Y':
		return f.hexToken(name, 48)
	case 'Z':
		return f.hexToken(name, 16)
	default:
		if bareLen == 0 {
			f.fail(name, "key scheme %q is not S, U, X, T, Y or Z", string(rune(c)))
			return ""
		}
		return f.Hex(name, bareLen)
	}
}

func (f *Fields) hexToken(name string, n int) string {
	s := f.Fixed(name, 1+n)
	if f.err == nil && !isHex(s[1:]) {
		f.fail(name, "not a scheme tag and %d upper-case hex digits", n)
	}
	return s
}
