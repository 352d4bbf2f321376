package wal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Retention (the journal's Purge): whole segments are removed from the start of the
// log, never the active one. A read of a removed segment fails with ErrPurged, which
// the journal answers as "no such record" rather than as damage.

// ErrPurged is wrapped by a Read of a segment that retention removed.
var ErrPurged = errors.New("journal: segment removed by retention")

// Segment is a segment file of the log.
type Segment struct {
	N    uint32
	Size int64
}

// Segments lists the segment files in the log's directory, oldest first.
func (l *Log) Segments() ([]Segment, error) {
	ns, err := listSegments(l.dir)
	if err != nil {
		return nil, fmt.Errorf("journal: log directory %s: %w", l.dir, err)
	}
	out := make([]Segment, 0, len(ns))
	for _, n := range ns {
		st, err := os.Stat(filepath.Join(l.dir, segName(n)))
		if errors.Is(err, os.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("journal: segment %d: %w", n, err)
		}
		out = append(out, Segment{N: n, Size: st.Size()})
	}
	return out, nil
}

// Active returns the number of the segment being written.
func (l *Log) Active() uint32 { return l.activeNum.Load() }

// ScanSegment calls fn for every frame of segment n, a segment no longer written
// (below Active), in order. Damage stops it with an error naming the file and offset.
func (l *Log) ScanSegment(n uint32, fn func(Frame) error) error {
	if n >= l.Active() {
		return fmt.Errorf("journal: segment %d is being written (active %d)", n, l.Active())
	}
	name := filepath.Join(l.dir, segName(n))
	data, err := os.ReadFile(name)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %s", ErrPurged, name)
	}
	if err != nil {
		return fmt.Errorf("journal: read %s: %w", name, err)
	}
	for off := 0; off < len(data); {
		kind, payload, sz, err := nextFrame(data[off:], l.maxKind)
		if err != nil {
			return fmt.Errorf("journal: %s is corrupt at offset %d: %v", name, off, err)
		}
		f := Frame{Kind: kind, Payload: payload, At: Ptr{Seg: n, Off: uint32(off + FrameHeader), N: uint32(len(payload))},
			End: Pos{n, uint32(off + sz)}}
		if err := fn(f); err != nil {
			return err
		}
		off += sz
	}
	return nil
}

// RemoveSegment deletes segment n, which must lie below the active one; reads of it
// fail with ErrPurged from then on. The caller makes sure nothing it still needs (an
// index entry, a position to replay from) points into it.
func (l *Log) RemoveSegment(n uint32) error {
	if n >= l.Active() {
		return fmt.Errorf("journal: segment %d is being written (active %d): not removed", n, l.Active())
	}
	l.mu.Lock()
	if l.files == nil {
		l.mu.Unlock()
		return ErrClosed
	}
	if n >= l.first.Load() {
		l.first.Store(n + 1)
	}
	f := l.files[n]
	delete(l.files, n)
	l.mu.Unlock()
	if f != nil {
		f.Close()
	}
	name := filepath.Join(l.dir, segName(n))
	if err := os.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("journal: remove %s: %w", name, err)
	}
	if l.noSync {
		return nil
	}
	return syncDir(l.dir)
}
