package wal

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// appendFrame appends a frame of kind with the payload parts to b.
func appendFrame(b []byte, kind byte, parts ...[]byte) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0, kind)
	for _, p := range parts {
		b = append(b, p...)
	}
	binary.LittleEndian.PutUint32(b[start:], uint32(len(b)-start-FrameHeader))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(b[start+8:], crcTable))
	return b
}

// nextFrame parses the frame at the start of b, whose kind must be 1 to maxKind. It
// reports the frame's size, or an error if b does not start with a whole, intact frame.
func nextFrame(b []byte, maxKind byte) (kind byte, payload []byte, size int, err error) {
	if len(b) < FrameHeader {
		return 0, nil, 0, fmt.Errorf("%d bytes left, a frame header is %d", len(b), FrameHeader)
	}
	n := int(binary.LittleEndian.Uint32(b))
	if n < 0 || n > MaxFrame || n > len(b)-FrameHeader {
		return 0, nil, 0, fmt.Errorf("frame of %d bytes with %d left", n, len(b)-FrameHeader)
	}
	if sum := crc32.Checksum(b[8:FrameHeader+n], crcTable); sum != binary.LittleEndian.Uint32(b[4:]) {
		return 0, nil, 0, fmt.Errorf("checksum %08x, frame says %08x", sum, binary.LittleEndian.Uint32(b[4:]))
	}
	kind = b[8]
	if kind < 1 || kind > maxKind {
		return 0, nil, 0, fmt.Errorf("unknown frame kind %d", kind)
	}
	return kind, b[FrameHeader : FrameHeader+n], FrameHeader + n, nil
}

// intactAfter reports whether b, which starts with a bad frame, has an intact frame
// right after it (by the bad frame's own length): then the bad frame is damage in
// the middle of the log, not the torn end of the last write, and must not be cut off
// with what follows it.
func intactAfter(b []byte, maxKind byte) bool {
	if len(b) < FrameHeader {
		return false
	}
	n := int(binary.LittleEndian.Uint32(b))
	if n < 0 || n > MaxFrame || n > len(b)-FrameHeader {
		return false
	}
	_, _, _, err := nextFrame(b[FrameHeader+n:], maxKind)
	return err == nil
}
