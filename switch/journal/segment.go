package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// The log. Every record version and delivery mark is appended to a segment file
// (<dir>/00000001.seg, 00000002.seg, ...) as a frame, and each group commit is one
// write and one fdatasync of the segment. Badger holds only indexes that point into
// the segments; they are written after the sync, in large batches, off the
// transaction's path, and rebuilt from the log after a crash (see Store).
//
// A frame is
//
//	[4] payload length, little endian
//	[4] CRC-32C of the kind byte and the payload
//	[1] kind
//	[n] payload
//
// A torn frame at the end of the last segment (a crash in the middle of a write) is cut
// off when the journal opens; a bad frame anywhere else is corruption and stops Open.
const (
	frameHeader = 9
	maxFrame    = 16 << 20

	kindFirst  byte = 1 // a record's first version: its indexes are written with it
	kindUpdate byte = 2 // a later version of a record
	kindDeliv  byte = 3 // a delivery mark: the RRN, then a state byte and unix nanos
	kindKV     byte = 4 // a key set in Badger directly: uvarint key length, key, value

	defaultSegmentSize = DefaultSegmentMB << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// pos is a place in the log: a segment and a byte offset in it.
type pos struct{ seg, off uint32 }

// ptr locates a record's encoding in the log: segment, offset and length.
type ptr struct{ seg, off, n uint32 }

// ptrTag starts an index value that points into the log (13 bytes, or 22 with the
// record's delivery mark). Records stored whole in
// Badger (by earlier versions of the journal) start with codecVersion instead.
const ptrTag byte = 0xF0

func (p ptr) appendTo(b []byte) []byte {
	b = append(b, ptrTag)
	b = binary.BigEndian.AppendUint32(b, p.seg)
	b = binary.BigEndian.AppendUint32(b, p.off)
	return binary.BigEndian.AppendUint32(b, p.n)
}

// decodePtr reads an index value: the pointer, and the delivery mark (9 bytes) when
// one follows it.
func decodePtr(v []byte) (p ptr, deliv []byte, ok bool) {
	if (len(v) != 13 && len(v) != 22) || v[0] != ptrTag {
		return ptr{}, nil, false
	}
	p = ptr{binary.BigEndian.Uint32(v[1:]), binary.BigEndian.Uint32(v[5:]), binary.BigEndian.Uint32(v[9:])}
	if len(v) == 22 {
		deliv = v[13:]
	}
	return p, deliv, true
}

// after reports whether p lies beyond q in the log.
func (p pos) after(q pos) bool { return p.seg > q.seg || p.seg == q.seg && p.off > q.off }

func (p pos) encode() []byte {
	b := binary.BigEndian.AppendUint32(nil, p.seg)
	return binary.BigEndian.AppendUint32(b, p.off)
}

func decodePos(v []byte) (pos, bool) {
	if len(v) != 8 {
		return pos{}, false
	}
	return pos{binary.BigEndian.Uint32(v), binary.BigEndian.Uint32(v[4:])}, true
}

// appendFrame appends a frame of kind with the payload parts to b.
func appendFrame(b []byte, kind byte, parts ...[]byte) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0, kind)
	for _, p := range parts {
		b = append(b, p...)
	}
	binary.LittleEndian.PutUint32(b[start:], uint32(len(b)-start-frameHeader))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(b[start+8:], crcTable))
	return b
}

// nextFrame parses the frame at the start of b. It reports the frame's size, or an
// error if b does not start with a whole, intact frame.
func nextFrame(b []byte) (kind byte, payload []byte, size int, err error) {
	if len(b) < frameHeader {
		return 0, nil, 0, fmt.Errorf("%d bytes left, a frame header is %d", len(b), frameHeader)
	}
	n := int(binary.LittleEndian.Uint32(b))
	if n < 0 || n > maxFrame || n > len(b)-frameHeader {
		return 0, nil, 0, fmt.Errorf("frame of %d bytes with %d left", n, len(b)-frameHeader)
	}
	if sum := crc32.Checksum(b[8:frameHeader+n], crcTable); sum != binary.LittleEndian.Uint32(b[4:]) {
		return 0, nil, 0, fmt.Errorf("checksum %08x, frame says %08x", sum, binary.LittleEndian.Uint32(b[4:]))
	}
	kind = b[8]
	if kind < kindFirst || kind > kindKV {
		return 0, nil, 0, fmt.Errorf("unknown frame kind %d", kind)
	}
	return kind, b[frameHeader : frameHeader+n], frameHeader + n, nil
}

// segLog is the set of segment files. Appends come from the commit loop only; reads
// (ReadAt) from anywhere.
type segLog struct {
	dir    string
	size   int64 // a segment is closed once it reaches this size
	noSync bool

	mu    sync.RWMutex
	files map[uint32]*os.File // segments opened for reading; the active one too

	active    *os.File // commit loop only, below
	activeSeg uint32
	activeOff int64
	broken    error // a failed write or sync: the log takes no more writes
}

func segName(n uint32) string { return fmt.Sprintf("%08d.seg", n) }

func listSegments(dir string) ([]uint32, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var segs []uint32
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".seg")
		if !ok || e.IsDir() {
			continue
		}
		n, err := strconv.ParseUint(name, 10, 32)
		if err != nil || n == 0 {
			continue
		}
		segs = append(segs, uint32(n))
	}
	slices.Sort(segs)
	return segs, nil
}

// openLog opens the log in dir, creating it if needed, and calls fn for every frame
// from from on, in order, with the position after the frame. It cuts a torn tail off
// the last segment and leaves the log ready for appends.
func openLog(dir string, size int64, noSync bool, from pos, fn func(kind byte, payload []byte, at ptr, end pos) error) (*segLog, error) {
	if size <= 0 {
		size = defaultSegmentSize
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("journal: log directory %s: %w", dir, err)
		}
		if !noSync {
			if err := syncDir(filepath.Dir(dir)); err != nil {
				return nil, err
			}
		}
	}
	l := &segLog{dir: dir, size: size, noSync: noSync, files: map[uint32]*os.File{}}
	segs, err := listSegments(dir)
	if err != nil {
		return nil, fmt.Errorf("journal: log directory %s: %w", dir, err)
	}
	if len(segs) == 0 {
		if err := l.create(1); err != nil {
			return nil, err
		}
		return l, nil
	}
	for i, n := range segs {
		if n < from.seg {
			continue
		}
		last := i == len(segs)-1
		name := filepath.Join(dir, segName(n))
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("journal: read %s: %w", name, err)
		}
		off := 0
		if n == from.seg {
			off = int(from.off)
			if off > len(data) {
				return nil, fmt.Errorf("journal: %s holds %d bytes, but the index was built up to offset %d (was the file cut?)", name, len(data), off)
			}
		}
		for off < len(data) {
			kind, payload, sz, err := nextFrame(data[off:])
			if err != nil {
				if !last || intactAfter(data[off:]) {
					return nil, fmt.Errorf("journal: %s is corrupt at offset %d: %v", name, off, err)
				}
				// A write the crash interrupted: nothing after it was acknowledged.
				if err := truncateFile(name, int64(off), noSync); err != nil {
					return nil, err
				}
				data = data[:off]
				break
			}
			at := ptr{seg: n, off: uint32(off + frameHeader), n: uint32(len(payload))}
			if err := fn(kind, payload, at, pos{n, uint32(off + sz)}); err != nil {
				return nil, fmt.Errorf("journal: %s at offset %d: %w", name, off, err)
			}
			off += sz
		}
	}
	last := segs[len(segs)-1]
	f, err := os.OpenFile(filepath.Join(dir, segName(last)), os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: open segment: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("journal: open segment: %w", err)
	}
	l.active, l.activeSeg, l.activeOff = f, last, st.Size()
	l.files[last] = f
	return l, nil
}

// intactAfter reports whether b, which starts with a bad frame, has an intact frame
// right after it (by the bad frame's own length): then the bad frame is damage in
// the middle of the log, not the torn end of the last write, and must not be cut off
// with what follows it.
func intactAfter(b []byte) bool {
	if len(b) < frameHeader {
		return false
	}
	n := int(binary.LittleEndian.Uint32(b))
	if n < 0 || n > maxFrame || n > len(b)-frameHeader {
		return false
	}
	_, _, _, err := nextFrame(b[frameHeader+n:])
	return err == nil
}

func truncateFile(name string, size int64, noSync bool) error {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("journal: cut torn tail of %s: %w", name, err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("journal: cut torn tail of %s at %d: %w", name, size, err)
	}
	if noSync {
		return nil
	}
	return datasync(f)
}

// create starts segment n and makes it the active one.
func (l *segLog) create(n uint32) error {
	name := filepath.Join(l.dir, segName(n))
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("journal: new segment: %w", err)
	}
	if !l.noSync {
		if err := syncDir(l.dir); err != nil {
			f.Close()
			os.Remove(name) // so that the next attempt can create it again
			return err
		}
	}
	l.mu.Lock()
	l.files[n] = f
	l.mu.Unlock()
	l.active, l.activeSeg, l.activeOff = f, n, 0
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("journal: sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("journal: sync directory %s: %w", dir, err)
	}
	return nil
}

// next returns where the next append goes, starting a new segment when the active
// one is full.
func (l *segLog) next() (pos, error) {
	if l.broken != nil {
		return pos{}, l.broken
	}
	if l.activeOff >= l.size {
		if !l.noSync {
			if err := datasync(l.active); err != nil {
				l.broken = fmt.Errorf("journal: sync segment %d: %w", l.activeSeg, err)
				return pos{}, l.broken
			}
		}
		if err := l.create(l.activeSeg + 1); err != nil {
			return pos{}, err
		}
	}
	return pos{l.activeSeg, uint32(l.activeOff)}, nil
}

// append writes b at the end of the active segment and syncs it. After a failed
// write the segment is cut back, so that a torn frame never sits in front of later
// ones; if even that fails, or a sync fails, the log refuses all further writes.
func (l *segLog) append(b []byte) error {
	if l.broken != nil {
		return l.broken
	}
	if _, err := l.active.WriteAt(b, l.activeOff); err != nil {
		if terr := l.active.Truncate(l.activeOff); terr != nil {
			l.broken = fmt.Errorf("journal: write to segment %d failed (%v) and cutting it back failed: %w", l.activeSeg, err, terr)
			return l.broken
		}
		return fmt.Errorf("journal: write %d bytes to segment %d: %w", len(b), l.activeSeg, err)
	}
	if !l.noSync {
		if err := datasync(l.active); err != nil {
			// After a failed fsync the kernel may have dropped the dirty pages: what
			// is on disk is unknown, so nothing more is written (restart to recover).
			l.broken = fmt.Errorf("journal: sync segment %d: %w", l.activeSeg, err)
			return l.broken
		}
	}
	l.activeOff += int64(len(b))
	return nil
}

// read returns the bytes at p.
func (l *segLog) read(p ptr) ([]byte, error) {
	l.mu.RLock()
	f := l.files[p.seg]
	l.mu.RUnlock()
	if f == nil {
		var err error
		if f, err = l.openForRead(p.seg); err != nil {
			return nil, err
		}
	}
	if p.off < frameHeader || p.n > maxFrame {
		return nil, fmt.Errorf("journal: no frame of %d bytes at offset %d of segment %d", p.n, p.off, p.seg)
	}
	b := make([]byte, frameHeader+p.n)
	if _, err := f.ReadAt(b, int64(p.off-frameHeader)); err != nil {
		return nil, fmt.Errorf("journal: read %d bytes at %d of segment %d: %w", len(b), p.off-frameHeader, p.seg, err)
	}
	_, payload, _, err := nextFrame(b)
	if err != nil {
		return nil, fmt.Errorf("journal: segment %d is corrupt at offset %d: %v", p.seg, p.off-frameHeader, err)
	}
	if len(payload) != int(p.n) {
		return nil, fmt.Errorf("journal: segment %d at offset %d holds a frame of %d bytes, the index says %d", p.seg, p.off-frameHeader, len(payload), p.n)
	}
	return payload, nil
}

func (l *segLog) openForRead(n uint32) (*os.File, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if f := l.files[n]; f != nil {
		return f, nil
	}
	if l.files == nil {
		return nil, ErrClosed
	}
	f, err := os.Open(filepath.Join(l.dir, segName(n)))
	if err != nil {
		return nil, fmt.Errorf("journal: open segment %d: %w", n, err)
	}
	l.files[n] = f
	return f, nil
}

// close syncs the active segment and closes every file.
func (l *segLog) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var err error
	if l.active != nil && !l.noSync && l.broken == nil {
		err = datasync(l.active)
	}
	for _, f := range l.files {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	l.files = nil
	return err
}

var (
	errTornDelivery = errors.New("delivery mark shorter than 10 bytes")
	errTornKV       = errors.New("key frame with a bad key length")
)
