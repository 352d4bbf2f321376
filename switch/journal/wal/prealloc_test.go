package wal

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// waitZeroed waits until the zeroer is done: the active segment zero-filled at least
// half its Prealloc past the appends (or to its end). It returns where the zeros end.
func waitZeroed(t *testing.T, l *Log) int64 {
	t.Helper()
	z := l.zero
	if z == nil {
		t.Fatal("the log has no zeroer")
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	for z.busy || z.zeroed-z.claimed < z.ahead/2 && z.zeroed < z.limit {
		if z.err != nil {
			t.Fatal(z.err)
		}
		z.cond.Wait()
	}
	return z.zeroed
}

func fileSize(t *testing.T, name string) int64 {
	t.Helper()
	st, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// The active segment is zero-filled ahead of the appends, so that a group commit's
// fdatasync does not change the file's size; the zeros survive a restart, and the
// appends go on after the last frame.
func TestPreallocKeepsZerosAhead(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 1 << 20, Prealloc: 512 << 10}
	l, _ := open(t, dir, opts, Pos{})
	want := appendFrames(t, l, 40, 4)
	end := int64(want[len(want)-1].end.Off)
	zeroed := waitZeroed(t, l)
	name := filepath.Join(dir, segName(1))
	if n := fileSize(t, name); n < end+256<<10 || n != zeroed {
		t.Fatalf("segment is %d bytes with frames up to %d and zeros up to %d: not zero-filled %d ahead", n, end, zeroed, 256<<10)
	}
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if !allZero(data[end:]) {
		t.Fatal("bytes after the last frame are not zeros")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l, frames := open(t, dir, opts, Pos{})
	checkFrames(t, frames, want)
	if l.activeOff != end {
		t.Fatalf("reopened with appends at %d, the frames end at %d", l.activeOff, end)
	}
	if n := fileSize(t, name); n != zeroed {
		t.Fatalf("reopening cut the zeros off: segment is %d bytes, was %d", n, zeroed)
	}
	more := appendFrames(t, l, 10, 3)
	if more[0].at.Off != uint32(end)+FrameHeader {
		t.Fatalf("first frame after reopening at %d, want %d", more[0].at.Off, end+FrameHeader)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, frames = open(t, dir, opts, Pos{})
	checkFrames(t, frames, append(want, more...))
	l.Close()

	// Replaying from the index's position (the frames' end) keeps the zeros too.
	l, frames = open(t, dir, opts, more[len(more)-1].end)
	if len(frames) != 0 || l.activeOff != int64(more[len(more)-1].end.Off) {
		t.Fatalf("replayed %d frames from the end, appends at %d", len(frames), l.activeOff)
	}
	l.Close()
}

// zeroFilled writes n frames, perBatch to an append, to a new log in dir, and closes
// it once the zeroer is done: the segment ends in zeros.
func zeroFilled(t *testing.T, dir string, opts Options, n, perBatch int) []written {
	t.Helper()
	l, _ := open(t, dir, opts, Pos{})
	want := appendFrames(t, l, n, perBatch)
	waitZeroed(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return want
}

// A torn write in the zero-filled part (bytes, then zeros) is cut off as before.
func TestPreallocTornWriteCut(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 1 << 20, Prealloc: 256 << 10}
	want := zeroFilled(t, dir, opts, 20, 5)
	end := int64(want[len(want)-1].end.Off)

	name := filepath.Join(dir, segName(1))
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	torn := appendFrame(nil, 1, []byte(strings.Repeat("t", 300)))[:200]
	if _, err := f.WriteAt(torn, end); err != nil {
		t.Fatal(err)
	}
	f.Close()

	l, frames := open(t, dir, opts, Pos{})
	checkFrames(t, frames, want)
	if l.activeOff != end {
		t.Fatalf("reopened with appends at %d, the frames end at %d", l.activeOff, end)
	}
	waitZeroed(t, l) // the zeroer fills the segment again from the cut
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if !allZero(data[end:]) {
		t.Fatal("the torn write is still in the segment")
	}
	more := appendFrames(t, l, 5, 1)
	l.Close()
	l, frames = open(t, dir, opts, Pos{})
	checkFrames(t, frames, append(want, more...))
	l.Close()
}

// A closed segment ends with its last frame: only the active one may end in zeros
// (ScanSegment and Open read a closed segment to its end).
func TestPreallocClosedSegmentsEndWithTheirFrames(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 600 << 10, Prealloc: 256 << 10}
	l, _ := open(t, dir, opts, Pos{})
	var want []written
	for l.Active() < 4 {
		want = append(want, appendFrames(t, l, 2, 1)...)
		w := want[len(want)-1]
		b, err := l.Begin()
		if err != nil {
			t.Fatal(err)
		}
		// Large frames, so that the segments fill while the zeroer works.
		w.kind, w.payload = 2, strings.Repeat("p", 20<<10)
		w.at, w.end = b.Add(w.kind, []byte(w.payload))
		if err := l.Append(b); err != nil {
			t.Fatal(err)
		}
		want = append(want, w)
	}
	l.zero.mu.Lock() // the zeroer goroutine writes chunks under it
	chunks := l.zero.chunks
	l.zero.mu.Unlock()
	if chunks == 0 {
		t.Fatal("no chunk was zero-filled")
	}
	ends := map[uint32]uint32{}
	for _, w := range want {
		ends[w.end.Seg] = w.end.Off
	}
	for n := uint32(1); n < l.Active(); n++ {
		if size := fileSize(t, filepath.Join(dir, segName(n))); size != int64(ends[n]) {
			t.Fatalf("closed segment %d is %d bytes, its frames end at %d", n, size, ends[n])
		}
		if err := l.ScanSegment(n, func(Frame) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	l, frames := open(t, dir, opts, Pos{})
	checkFrames(t, frames, want)
	l.Close()
}

// An index built past the last frame, where the segment holds zeros, is damage: the
// appends must not leave a gap of zeros that a later replay would take for the end.
func TestPreallocIndexPastFramesIsAnError(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 1 << 20, Prealloc: 256 << 10}
	want := zeroFilled(t, dir, opts, 10, 2)
	end := want[len(want)-1].end
	_, _, err := tryOpen(dir, opts, Pos{end.Seg, end.Off + 100})
	if err == nil || !strings.Contains(err.Error(), "frames end at offset") {
		t.Fatalf("Open with the index past the frames: %v", err)
	}
}

// Without syncs (tests of logic) or with Prealloc < 0 nothing is zero-filled.
func TestPreallocOff(t *testing.T) {
	for _, opts := range []Options{{NoSync: true}, {Prealloc: -1}} {
		dir := t.TempDir()
		l, _ := open(t, dir, opts, Pos{})
		want := appendFrames(t, l, 10, 2)
		if l.zero != nil {
			t.Fatalf("%+v: the log has a zeroer", opts)
		}
		if n := fileSize(t, filepath.Join(dir, segName(1))); n != int64(want[len(want)-1].end.Off) {
			t.Fatalf("%+v: segment is %d bytes, frames end at %d", opts, n, want[len(want)-1].end.Off)
		}
		l.Close()
	}
}

// A zero-fill that fails (a full disk) is reported; the appends go on past the
// zeros, extending the file, and nothing is lost.
func TestPreallocFailureReported(t *testing.T) {
	dir := t.TempDir()
	failures := make(chan error, 16)
	opts := Options{SegmentSize: 4 << 20, Prealloc: 256 << 10, OnPreallocError: func(err error) { failures <- err }}
	l, _ := open(t, dir, opts, Pos{})
	waitZeroed(t, l)
	l.zero.mu.Lock()
	l.zero.write = func(*os.File, []byte, int64) error { return syscall.ENOSPC }
	l.zero.mu.Unlock()

	var want []written
	add := func(until uint32) {
		for len(want) == 0 || want[len(want)-1].end.Off < until {
			b, err := l.Begin()
			if err != nil {
				t.Fatal(err)
			}
			w := written{kind: 3, payload: strings.Repeat("f", 8<<10)}
			w.at, w.end = b.Add(w.kind, []byte(w.payload))
			if err := l.Append(b); err != nil {
				t.Fatal(err)
			}
			want = append(want, w)
		}
	}
	add(200 << 10) // past half the zeros ahead: the zeroer is asked for more
	err := <-failures
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "zero-fill segment 1 at offset") {
		t.Fatalf("reported %v", err)
	}
	add(600 << 10) // past the zeros
	l.Close()
	l, frames := open(t, dir, Options{SegmentSize: 4 << 20, Prealloc: -1}, Pos{})
	checkFrames(t, frames, want)
	l.Close()
}
