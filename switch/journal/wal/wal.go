// Package wal is the journal's write-ahead log: frames appended to segment files
// (<dir>/00000001.seg, 00000002.seg, ...), each group of writes with one write and one
// fdatasync, read back by position, and replayed at start with a torn last write cut
// off. It knows nothing of what the frames hold: the journal (package journal) gives
// each frame a kind and a payload, and keeps its indexes elsewhere (in Badger), pointing
// into the log with the positions the log hands out.
//
// A frame is
//
//	[4] payload length, little endian
//	[4] CRC-32C of the kind byte and the payload
//	[1] kind (1 to Options.MaxKind)
//	[n] payload
//
// A torn frame at the end of the last segment (a crash in the middle of a write) is cut
// off when the log opens; a bad frame anywhere else is damage and stops Open. A segment
// is closed once it reaches Options.SegmentSize and the next one started.
//
// The parts and their goroutines: a Log is written by one goroutine at a time (the
// Committer's loop: Begin, Add, Append) and read by any (Read). A Committer owns one
// goroutine, started by StartCommitter and joined by its Close; the Log owns one, the
// zeroer that fills the active segment with zeros ahead of the appends (prealloc.go),
// started by Open and joined by its Close.
//
// Errors start with "journal:": operators know this log as the journal's, and the
// messages name the segment file and offset to look at.
package wal

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
)

// FrameHeader is the size of a frame's header (length, checksum, kind).
const FrameHeader = 9

// MaxFrame is the largest payload a frame holds.
const MaxFrame = 16 << 20

// DefaultSegmentSize is the segment size when Options.SegmentSize is not set.
const DefaultSegmentSize = 64 << 20

// ErrClosed is returned by reads of a closed log and by a closed Committer.
var ErrClosed = errors.New("journal: closed")

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Options configure a log.
type Options struct {
	// SegmentSize is the size at which a segment file is closed and the next one
	// started (default DefaultSegmentSize).
	SegmentSize int64
	// MaxKind is the highest frame kind in use: a frame of kind 0 or above it is
	// damage, like a bad checksum.
	MaxKind byte
	// NoSync skips the fsyncs (tests of logic only; never in production).
	NoSync bool
	// Prealloc is how far ahead of the appends the active segment is kept
	// zero-filled, so that a group commit's fdatasync need not change the file's
	// size (prealloc.go); 0 means DefaultPrealloc, a negative value none. Not with
	// NoSync.
	Prealloc int64
	// OnPreallocError, if set, is called (on the zeroer's goroutine, at most once a
	// second) when zero-filling fails, most likely because the disk is full: an early
	// warning, while the appends still have the space zero-filled before.
	OnPreallocError func(error)
}

// Pos is a place in the log: a segment and a byte offset in it. The zero Pos is the
// start of the log.
type Pos struct{ Seg, Off uint32 }

// After reports whether p lies beyond q in the log.
func (p Pos) After(q Pos) bool { return p.Seg > q.Seg || p.Seg == q.Seg && p.Off > q.Off }

// Encode returns p in 8 bytes (segment and offset, big endian), for storing with what
// was built from the log up to p.
func (p Pos) Encode() []byte {
	b := binary.BigEndian.AppendUint32(nil, p.Seg)
	return binary.BigEndian.AppendUint32(b, p.Off)
}

// DecodePos reads a Pos written by Encode; ok is false unless v is 8 bytes.
func DecodePos(v []byte) (p Pos, ok bool) {
	if len(v) != 8 {
		return Pos{}, false
	}
	return Pos{binary.BigEndian.Uint32(v), binary.BigEndian.Uint32(v[4:])}, true
}

// Ptr locates a frame's payload in the log: segment, offset of the payload (after the
// frame's header) and its length.
type Ptr struct{ Seg, Off, N uint32 }

// Frame is a frame read back at Open.
type Frame struct {
	Kind    byte
	Payload []byte // valid during the replay call only
	At      Ptr    // where the payload is
	End     Pos    // the position just after the frame
}
