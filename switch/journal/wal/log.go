package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Log is the set of segment files. Appends (Begin, Append) come from one goroutine at
// a time, the committer's; reads (Read) from any.
type Log struct {
	dir     string
	size    int64 // a segment is closed once it reaches this size
	noSync  bool
	maxKind byte

	mu    sync.RWMutex
	files map[uint32]*os.File // segments opened for reading; the active one too

	activeNum atomic.Uint32 // activeSeg, for other goroutines (retention)
	first     atomic.Uint32 // segments below it were removed by retention (purge.go)

	active    *os.File // the appending goroutine only, below
	activeSeg uint32
	activeOff int64
	broken    error // a failed write or sync: the log takes no more writes
	// brokenPub is broken for other goroutines (Broken).
	brokenPub atomic.Pointer[error]
	buf       []byte // the appends' buffer, kept while it is not too large
	batch     Batch
	zero      *zeroer // nil with NoSync or Prealloc < 0 (prealloc.go)
	// afterWrite, if set (tests only), is called by Append between its write and its
	// sync.
	afterWrite func()
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

// Open opens the log in dir, creating it if needed, and calls replay for every frame
// from from on, in order (from is the end of a frame replayed before, or the zero Pos).
// It cuts a torn tail off the last segment and leaves the log ready for appends.
// Damage anywhere else stops it with an error naming the segment file and offset.
// A log that is missing or holds no segment while from is past the start is lost,
// not new: Open refuses it and creates nothing (until 7 December 2026 it started an
// empty segment 1 there, whose zeros the next start took for the index's damage).
func Open(dir string, opts Options, from Pos, replay func(Frame) error) (*Log, error) {
	size, noSync := opts.SegmentSize, opts.NoSync
	if size <= 0 {
		size = DefaultSegmentSize
	}
	lost := func(what string) error {
		return fmt.Errorf("journal: log directory %s %s, but the index was built up to offset %d of segment %d (%s): the log was removed, or its device is not mounted there; mount it or restore the data directory from its backup, then start again",
			dir, what, from.Off, from.Seg, segName(from.Seg))
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if from != (Pos{}) {
			return nil, lost("does not exist")
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("journal: log directory %s: %w", dir, err)
		}
		if !noSync {
			if err := syncDir(filepath.Dir(dir)); err != nil {
				return nil, err
			}
		}
	}
	l := &Log{dir: dir, size: size, noSync: noSync, maxKind: opts.MaxKind, files: map[uint32]*os.File{}}
	segs, err := listSegments(dir)
	if err != nil {
		return nil, fmt.Errorf("journal: log directory %s: %w", dir, err)
	}
	if len(segs) > 0 {
		l.first.Store(segs[0])
	}
	if len(segs) == 0 {
		if from != (Pos{}) {
			return nil, lost("holds no segment file")
		}
		if err := l.create(1); err != nil {
			return nil, err
		}
		l.startPrealloc(opts, 0)
		return l, nil
	}
	var tail int64   // the last segment's length, zeros after its last frame included
	end := int64(-1) // where its frames end (-1: not replayed, the index is past it)
	for i, n := range segs {
		if n < from.Seg {
			continue
		}
		last := i == len(segs)-1
		name := filepath.Join(dir, segName(n))
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("journal: read %s: %w", name, err)
		}
		off := 0
		if n == from.Seg {
			off = int(from.Off)
			if off > len(data) {
				return nil, fmt.Errorf("journal: %s holds %d bytes, but the index was built up to offset %d (was the file cut?)", name, len(data), off)
			}
		}
		for off < len(data) {
			kind, payload, sz, err := nextFrame(data[off:], l.maxKind)
			if err != nil {
				if last && allZero(data[off:]) {
					// Zero-filled ahead of the appends (prealloc.go); kept for them,
					// unless only zeros lie between the last intact frame and here:
					// an index built past the frames (a file zeroed under the log)
					// must not make the appends leave a gap of zeros that a later
					// replay would take for the end. A damaged frame before the
					// index's position is left to Read to report, as before.
					if e := chainEnd(data[:off], l.maxKind); e != off && allZero(data[e:off]) {
						return nil, fmt.Errorf("journal: %s: its frames end at offset %d and zeros follow, but the index was built up to offset %d", name, e, from.Off)
					}
					tail = int64(len(data))
					data = data[:off]
					break
				}
				if !last || intactAfter(data[off:], l.maxKind) {
					return nil, fmt.Errorf("journal: %s is corrupt at offset %d: %v", name, off, err)
				}
				// A write the crash interrupted: nothing after it was acknowledged.
				if err := truncateFile(name, int64(off), noSync); err != nil {
					return nil, err
				}
				data = data[:off]
				break
			}
			f := Frame{Kind: kind, Payload: payload, At: Ptr{Seg: n, Off: uint32(off + FrameHeader), N: uint32(len(payload))},
				End: Pos{n, uint32(off + sz)}}
			if err := replay(f); err != nil {
				return nil, fmt.Errorf("journal: %s at offset %d: %w", name, off, err)
			}
			off += sz
		}
		if last {
			end = int64(len(data))
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
	if end >= 0 && tail > end {
		l.activeOff = end // zeros follow
	}
	l.activeNum.Store(last)
	l.files[last] = f
	l.startPrealloc(opts, st.Size())
	return l, nil
}

// startPrealloc starts zero-filling the active segment, n bytes long, ahead of the
// appends, unless the log does not sync or Options.Prealloc turns it off.
func (l *Log) startPrealloc(opts Options, n int64) {
	ahead := opts.Prealloc
	if ahead == 0 {
		ahead = DefaultPrealloc
	}
	if l.noSync || ahead < 0 {
		return
	}
	l.startZeroer(ahead, n, opts.OnPreallocError)
}

// chainEnd returns where the intact frames from the start of b end.
func chainEnd(b []byte, maxKind byte) int {
	off := 0
	for off < len(b) {
		_, _, sz, err := nextFrame(b[off:], maxKind)
		if err != nil {
			break
		}
		off += sz
	}
	return off
}

// allZero reports whether b holds only zero bytes.
func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
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
func (l *Log) create(n uint32) error {
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
	l.activeNum.Store(n)
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

// Batch is the frames of one append, built by Add between Begin and Append.
type Batch struct {
	at Pos // where the batch goes
	b  []byte
}

// Add appends a frame of kind (1 to Options.MaxKind) with the payload parts
// concatenated, and returns where its payload will be and the position after it.
func (b *Batch) Add(kind byte, parts ...[]byte) (at Ptr, end Pos) {
	start := len(b.b)
	b.b = appendFrame(b.b, kind, parts...)
	at = Ptr{Seg: b.at.Seg, Off: b.at.Off + uint32(start) + FrameHeader, N: uint32(len(b.b) - start - FrameHeader)}
	return at, Pos{b.at.Seg, b.at.Off + uint32(len(b.b))}
}

// Len returns the size of the batch's frames in bytes.
func (b *Batch) Len() int { return len(b.b) }

// Begin starts the batch of the next append at the end of the log, starting a new
// segment when the active one is full. The batch is valid until Append; the next
// Begin reuses it.
func (l *Log) Begin() (*Batch, error) {
	if l.broken != nil {
		return nil, l.broken
	}
	if l.activeOff >= l.size {
		if err := l.closeActive(); err != nil {
			return nil, err
		}
	}
	l.batch = Batch{at: Pos{l.activeSeg, uint32(l.activeOff)}, b: l.buf[:0]}
	return &l.batch, nil
}

// closeActive closes the full active segment: it cuts off the zeros ahead of its
// last frame (only the active segment may end in zeros), syncs it and starts the next.
func (l *Log) closeActive() error {
	l.hold()
	n, err := l.cutZeros()
	if err == nil && !l.noSync {
		if err = datasync(l.active); err != nil {
			err = l.breakWith(fmt.Errorf("journal: sync segment %d: %w", l.activeSeg, err))
		}
	}
	if err == nil {
		if err = l.create(l.activeSeg + 1); err == nil {
			n = 0
		}
	}
	l.release(n)
	return err
}

// cutZeros cuts the active segment back to its frames, if it is longer, and returns
// its length. The zeroer is held.
func (l *Log) cutZeros() (int64, error) {
	if l.zero == nil {
		return l.activeOff, nil
	}
	st, err := l.active.Stat()
	if err != nil {
		return 0, fmt.Errorf("journal: close segment %d: %w", l.activeSeg, err)
	}
	if st.Size() <= l.activeOff {
		return st.Size(), nil
	}
	if err := l.active.Truncate(l.activeOff); err != nil {
		return st.Size(), fmt.Errorf("journal: close segment %d: cut its zero-filled tail at %d: %w", l.activeSeg, l.activeOff, err)
	}
	return l.activeOff, nil
}

// Append writes the batch at the end of the active segment with one write, and syncs
// it (fdatasync): once it returns nil, the batch's frames are durable. After a failed
// write the segment is cut back, so that a torn frame never sits in front of later
// ones; if even that fails, or a sync fails, the log refuses all further writes.
func (l *Log) Append(batch *Batch) error {
	b := batch.b
	if cap(b) <= 4<<20 {
		l.buf = b // reused by the next batch, unless a burst made it large
	}
	if len(b) == 0 {
		return nil
	}
	if l.broken != nil {
		return l.broken
	}
	l.claim(l.activeOff + int64(len(b)))
	if _, err := l.active.WriteAt(b, l.activeOff); err != nil {
		l.hold()
		terr := l.active.Truncate(l.activeOff)
		l.release(l.activeOff)
		if terr != nil {
			return l.breakWith(fmt.Errorf("journal: write to segment %d failed (%v) and cutting it back failed: %w", l.activeSeg, err, terr))
		}
		return fmt.Errorf("journal: write %d bytes to segment %d: %w", len(b), l.activeSeg, err)
	}
	if l.afterWrite != nil {
		l.afterWrite()
	}
	if !l.noSync {
		if err := datasync(l.active); err != nil {
			// After a failed fsync the kernel may have dropped the dirty pages: what
			// is on disk is unknown, so nothing more is written (restart to recover).
			return l.breakWith(fmt.Errorf("journal: sync segment %d: %w", l.activeSeg, err))
		}
	}
	l.activeOff += int64(len(b))
	return nil
}

// breakWith makes the log refuse every further write with err, and returns it.
func (l *Log) breakWith(err error) error {
	l.broken = err
	l.brokenPub.Store(&err)
	return err
}

// Broken returns why the log refuses every further write (a failed sync, after which
// what reached the disk is unknown, or a failed write it could not cut back), or nil.
// Only a restart, which reads the log back from the disk, ends it. Safe for any
// goroutine.
func (l *Log) Broken() error {
	if p := l.brokenPub.Load(); p != nil {
		return *p
	}
	return nil
}

// Read returns the payload at p, checked against its frame's checksum: a damaged
// frame is a *DamageError, never returned.
func (l *Log) Read(p Ptr) ([]byte, error) {
	l.mu.RLock()
	f := l.files[p.Seg]
	l.mu.RUnlock()
	if f == nil {
		if p.Seg < l.first.Load() {
			return nil, fmt.Errorf("%w: segment %d", ErrPurged, p.Seg)
		}
		var err error
		if f, err = l.openForRead(p.Seg); err != nil {
			return nil, err
		}
	}
	if p.Off < FrameHeader || p.N > MaxFrame {
		return nil, fmt.Errorf("journal: no frame of %d bytes at offset %d of segment %d", p.N, p.Off, p.Seg)
	}
	b := make([]byte, FrameHeader+p.N)
	damage := func(err error) *DamageError {
		return &DamageError{File: filepath.Join(l.dir, segName(p.Seg)), Seg: p.Seg, Off: int64(p.Off - FrameHeader), Err: err}
	}
	if _, err := f.ReadAt(b, int64(p.Off-FrameHeader)); err != nil {
		if errors.Is(err, os.ErrClosed) && p.Seg < l.first.Load() {
			return nil, fmt.Errorf("%w: segment %d", ErrPurged, p.Seg) // removed while read
		}
		if errors.Is(err, io.EOF) {
			return nil, damage(fmt.Errorf("the file ends before the frame's %d bytes (was it cut?)", len(b)))
		}
		return nil, fmt.Errorf("journal: read %d bytes at %d of segment %d: %w", len(b), p.Off-FrameHeader, p.Seg, err)
	}
	_, payload, _, err := nextFrame(b, l.maxKind)
	if err != nil {
		return nil, damage(err)
	}
	if len(payload) != int(p.N) {
		return nil, damage(fmt.Errorf("a frame of %d bytes, the index says %d", len(payload), p.N))
	}
	return payload, nil
}

// DamageError is returned by Read for a frame found damaged: its checksum, length
// or kind does not hold, or its segment file ends before it. Its payload cannot be
// read from the log; the frames around it are not affected.
type DamageError struct {
	File string // the segment file
	Seg  uint32
	Off  int64 // where the frame (its header) starts in the file
	Err  error // what does not hold
}

func (e *DamageError) Error() string {
	return fmt.Sprintf("journal: segment %d is corrupt at offset %d (%s): %v", e.Seg, e.Off, e.File, e.Err)
}

func (e *DamageError) Unwrap() error { return e.Err }

func (l *Log) openForRead(n uint32) (*os.File, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if f := l.files[n]; f != nil {
		return f, nil
	}
	if l.files == nil {
		return nil, ErrClosed
	}
	f, err := os.Open(filepath.Join(l.dir, segName(n)))
	if errors.Is(err, os.ErrNotExist) && n < l.activeNum.Load() {
		return nil, fmt.Errorf("%w: segment %d", ErrPurged, n)
	}
	if err != nil {
		return nil, fmt.Errorf("journal: open segment %d: %w", n, err)
	}
	l.files[n] = f
	return f, nil
}

// Close syncs the active segment and closes every file. Appends must have stopped;
// reads after Close fail with ErrClosed.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var err error
	l.stopZeroer()
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
