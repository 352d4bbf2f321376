package frontend

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrFrameTooLong is returned for a length header above the limit.
var ErrFrameTooLong = errors.New("frame longer than the limit")

// ReadFrame reads one message framed by a 2-byte big-endian length header into buf
// (grown when too small) and returns the body. A header above max is a protocol error.
func ReadFrame(r *bufio.Reader, buf []byte, max int) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n > max {
		return nil, fmt.Errorf("%w: length header %d > %d", ErrFrameTooLong, n, max)
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("reading %d-byte body: %w", n, err)
	}
	return buf, nil
}

// AppendFrame appends body with its 2-byte length header to dst.
func AppendFrame(dst, body []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(body)))
	return append(dst, body...)
}
