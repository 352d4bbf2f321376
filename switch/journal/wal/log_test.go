package wal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testKinds is the MaxKind of the tests' logs.
const testKinds = 4

// open opens the log in dir and returns it with the frames replayed from from on
// (payloads copied).
func open(t *testing.T, dir string, opts Options, from Pos) (*Log, []Frame) {
	t.Helper()
	l, frames, err := tryOpen(dir, opts, from)
	if err != nil {
		t.Fatal(err)
	}
	return l, frames
}

func tryOpen(dir string, opts Options, from Pos) (*Log, []Frame, error) {
	if opts.MaxKind == 0 {
		opts.MaxKind = testKinds
	}
	var frames []Frame
	l, err := Open(dir, opts, from, func(f Frame) error {
		f.Payload = append([]byte(nil), f.Payload...)
		frames = append(frames, f)
		return nil
	})
	return l, frames, err
}

// written is a frame as the writer saw it.
type written struct {
	kind    byte
	payload string
	at      Ptr
	end     Pos
}

// appendFrames writes n frames, per frames to a batch, and returns them.
func appendFrames(t *testing.T, l *Log, n, perBatch int) []written {
	t.Helper()
	var out []written
	for i := 0; i < n; {
		b, err := l.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < perBatch && i < n; j, i = j+1, i+1 {
			w := written{kind: byte(i%testKinds + 1), payload: fmt.Sprintf("frame %d: %s", i, strings.Repeat("x", i%50))}
			// Payloads in two parts, as the journal's delivery marks and keys are.
			w.at, w.end = b.Add(w.kind, []byte(w.payload[:3]), []byte(w.payload[3:]))
			out = append(out, w)
		}
		if err := l.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func checkFrames(t *testing.T, got []Frame, want []written) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("replayed %d frames, want %d", len(got), len(want))
	}
	for i, f := range got {
		w := want[i]
		if f.Kind != w.kind || string(f.Payload) != w.payload || f.At != w.at || f.End != w.end {
			t.Fatalf("frame %d replayed as %d %q at %+v end %+v, written as %d %q at %+v end %+v",
				i, f.Kind, f.Payload, f.At, f.End, w.kind, w.payload, w.at, w.end)
		}
	}
}

// TestAppendReadReplay: frames read back by their pointers, and are replayed at Open
// with the same positions, from the start or from a position on.
func TestAppendReadReplay(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	l, frames := open(t, dir, Options{}, Pos{})
	if len(frames) != 0 {
		t.Fatalf("a new log replayed %d frames", len(frames))
	}
	w := appendFrames(t, l, 30, 7)
	for i, f := range w {
		got, err := l.Read(f.at)
		if err != nil || string(got) != f.payload {
			t.Fatalf("read of frame %d: %q %v", i, got, err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Read(w[0].at); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after Close: %v", err)
	}
	l, frames = open(t, dir, Options{}, Pos{})
	checkFrames(t, frames, w)
	l.Close()
	l, frames = open(t, dir, Options{}, w[9].end)
	defer l.Close()
	checkFrames(t, frames, w[10:])
	// Appends go on at the end.
	more := appendFrames(t, l, 1, 1)
	if more[0].at.Off != w[29].end.Off+FrameHeader {
		t.Fatalf("next frame at %+v, the log ended at %+v", more[0].at, w[29].end)
	}
}

// TestSegmentsRollOver: a segment is closed once it reaches the segment size, and
// frames are read and replayed across segments.
func TestSegmentsRollOver(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	l, _ := open(t, dir, Options{SegmentSize: 512}, Pos{})
	w := appendFrames(t, l, 100, 3)
	l.Close()
	segs, err := listSegments(dir)
	if err != nil || len(segs) < 5 {
		t.Fatalf("segments %v %v", segs, err)
	}
	for i, s := range segs {
		if s != uint32(i+1) {
			t.Fatalf("segments %v", segs)
		}
	}
	// A batch never straddles segments: each starts in one and ends in it.
	for _, f := range w {
		if f.at.Seg != f.end.Seg {
			t.Fatalf("frame at %+v ends in segment %d", f.at, f.end.Seg)
		}
	}
	l, frames := open(t, dir, Options{SegmentSize: 512}, w[49].end)
	defer l.Close()
	checkFrames(t, frames, w[50:])
	for i, f := range w {
		if got, err := l.Read(f.at); err != nil || string(got) != f.payload {
			t.Fatalf("read of frame %d in segment %d: %q %v", i, f.at.Seg, got, err)
		}
	}
}

// TestTornTailCut: a write the crash cut short at the end of the last segment is cut
// off at Open; nothing after it was acknowledged. The log goes on from there. (The
// segment is appended to, not zero-filled ahead: TestPreallocTornWriteCut is the
// same with preallocation.)
func TestTornTailCut(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	l, _ := open(t, dir, Options{Prealloc: -1}, Pos{})
	w := appendFrames(t, l, 10, 4)
	l.Close()
	seg := filepath.Join(dir, segName(1))
	st, err := os.Stat(seg)
	if err != nil {
		t.Fatal(err)
	}
	for _, cut := range []int{1, 7, FrameHeader, FrameHeader + 20} {
		torn := appendFrame(nil, 2, []byte("a frame whose write the crash cut short"))
		f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(torn[:cut]); err != nil {
			t.Fatal(err)
		}
		f.Close()
		l, frames := open(t, dir, Options{Prealloc: -1}, Pos{})
		checkFrames(t, frames, w)
		l.Close()
		if st2, _ := os.Stat(seg); st2.Size() != st.Size() {
			t.Fatalf("%d torn bytes: segment of %d bytes after Open, %d before the crash", cut, st2.Size(), st.Size())
		}
	}
	l, _ = open(t, dir, Options{}, Pos{})
	w = append(w, appendFrames(t, l, 3, 3)...)
	l.Close()
	l, frames := open(t, dir, Options{}, Pos{})
	defer l.Close()
	if len(frames) != 13 {
		t.Fatalf("after the cut and more writes: %d frames, want 13", len(frames))
	}
}

// TestDamageInTheLastSegment: a bad frame followed by intact ones is damage, not a
// torn write: Open refuses instead of cutting off the frames after it.
func TestDamageInTheLastSegment(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	l, _ := open(t, dir, Options{}, Pos{})
	w := appendFrames(t, l, 5, 2)
	l.Close()
	seg := filepath.Join(dir, segName(1))
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	// Damage the payload of the fourth frame.
	off := int(w[2].end.Off)
	b[off+FrameHeader+3] ^= 0x01
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err = tryOpen(dir, Options{}, Pos{})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%s is corrupt at offset %d", seg, off)) {
		t.Fatalf("Open over a damaged frame followed by intact ones: %v", err)
	}
	if st, _ := os.Stat(seg); st.Size() != int64(len(b)) {
		t.Fatalf("the segment was cut to %d bytes", st.Size())
	}
}

// TestDamageBeforeTheLastSegment: a bad frame at the end of a segment that is not
// the last is damage too (a crash only tears the last write).
func TestDamageBeforeTheLastSegment(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	l, _ := open(t, dir, Options{SegmentSize: 256}, Pos{})
	appendFrames(t, l, 40, 1)
	l.Close()
	seg := filepath.Join(dir, segName(1))
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(seg, b[:len(b)-2], 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err = tryOpen(dir, Options{SegmentSize: 256}, Pos{})
	if err == nil || !strings.Contains(err.Error(), segName(1)+" is corrupt at offset") {
		t.Fatalf("Open over a cut segment before the last: %v", err)
	}
	// Replay that starts past the damage does not meet it.
	_, _, err = tryOpen(dir, Options{SegmentSize: 256}, Pos{Seg: 2})
	if err != nil {
		t.Fatalf("Open from segment 2: %v", err)
	}
}

// TestReadDamagedFrame: a damaged frame met by a read is an error naming the segment
// and offset, and its bytes are never returned; so is a frame of an unknown kind.
func TestReadDamagedFrame(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	l, _ := open(t, dir, Options{}, Pos{})
	w := appendFrames(t, l, 4, 4)
	l.Close()
	seg := filepath.Join(dir, segName(1))
	b, _ := os.ReadFile(seg)
	b[w[1].at.Off+2] ^= 0x20
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	l, _, err := tryOpen(dir, Options{}, w[3].end)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got, err := l.Read(w[1].at); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("segment 1 is corrupt at offset %d", w[1].at.Off-FrameHeader)) {
		t.Fatalf("read of a damaged frame: %q %v", got, err)
	}
	if got, err := l.Read(w[0].at); err != nil || string(got) != w[0].payload {
		t.Fatalf("read of the intact frame before it: %q %v", got, err)
	}
	// The fourth frame is of kind 4: a log that knows 3 kinds takes it for damage.
	l3, _, err := tryOpen(dir, Options{MaxKind: 3}, w[3].end)
	if err != nil {
		t.Fatal(err)
	}
	defer l3.Close()
	if _, err := l3.Read(w[3].at); err == nil || !strings.Contains(err.Error(), "unknown frame kind 4") {
		t.Fatalf("read of a frame of an unknown kind: %v", err)
	}
	// A pointer past the end of the segment.
	if _, err := l.Read(Ptr{Seg: 1, Off: w[3].end.Off + FrameHeader, N: 10}); err == nil {
		t.Fatal("read past the end of the segment")
	}
}

// TestPos: positions order and encode as the journal stores them.
func TestPos(t *testing.T) {
	p, q := Pos{Seg: 2, Off: 10}, Pos{Seg: 1, Off: 4000}
	if !p.After(q) || q.After(p) || p.After(p) {
		t.Fatal("Pos.After")
	}
	if back, ok := DecodePos(p.Encode()); !ok || back != p {
		t.Fatalf("round trip of %+v: %+v %v", p, back, ok)
	}
	if _, ok := DecodePos([]byte{1, 2, 3}); ok {
		t.Fatal("a 3-byte position decoded")
	}
}

// FuzzOpen: whatever the last segment holds after a crash, Open either refuses with an
// error or replays frames that read back intact, having cut at most a torn tail.
func FuzzOpen(f *testing.F) {
	good := appendFrame(appendFrame(nil, 1, []byte("first")), 3, []byte("second frame"))
	f.Add(good)
	f.Add(good[:len(good)-4])
	f.Add(append(append([]byte(nil), good...), 0xFF, 0, 0, 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		seg := filepath.Join(dir, segName(1))
		if err := os.WriteFile(seg, data, 0o600); err != nil {
			t.Fatal(err)
		}
		l, frames, err := tryOpen(dir, Options{NoSync: true}, Pos{})
		if err != nil {
			if !strings.Contains(err.Error(), "is corrupt at offset") {
				t.Fatalf("Open refused with %v", err)
			}
			return
		}
		st, err := os.Stat(seg)
		if err != nil || st.Size() > int64(len(data)) {
			t.Fatalf("segment of %v bytes after Open, %d before (%v)", st.Size(), len(data), err)
		}
		end := Pos{Seg: 1}
		for _, fr := range frames {
			got, err := l.Read(fr.At)
			if err != nil || string(got) != string(fr.Payload) {
				t.Fatalf("replayed frame at %+v reads back as %q %v", fr.At, got, err)
			}
			end = fr.End
		}
		// Past the last frame only zeros may remain: a preallocated tail, which the
		// appends overwrite (prealloc.go).
		if rest, err := os.ReadFile(seg); err != nil || !allZero(rest[end.Off:]) {
			t.Fatalf("frames end at %d, the segment at %d, and not only zeros follow (%v)", end.Off, st.Size(), err)
		}
		// The next append lands right after the last frame and is replayed after it.
		b, err := l.Begin()
		if err != nil {
			t.Fatal(err)
		}
		if at, _ := b.Add(1, []byte("appended")); at.Seg != end.Seg || at.Off != end.Off+FrameHeader {
			t.Fatalf("append at %+v, the frames end at %+v", at, end)
		}
		if err := l.Append(b); err != nil {
			t.Fatal(err)
		}
		l.Close()
		l2, again, err := tryOpen(dir, Options{NoSync: true}, Pos{})
		if err != nil {
			t.Fatalf("reopen after an append: %v", err)
		}
		defer l2.Close()
		if len(again) != len(frames)+1 || string(again[len(frames)].Payload) != "appended" {
			t.Fatalf("reopen replays %d frames, want the %d before and the appended one", len(again), len(frames))
		}
	})
}

// TestLostLogRefused: a log directory removed (or left empty, its device not
// mounted) under an index built past the start is refused at once, saying so, and
// nothing is created; a new log (the zero Pos) is created as before. Until 7
// December 2026 the first start created a zero-filled segment 1 there, and the error
// that followed named damage.
func TestLostLogRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	l, _ := open(t, dir, Options{}, Pos{})
	w := appendFrames(t, l, 5, 5)
	l.Close()
	from := w[len(w)-1].end
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	for _, what := range []string{"does not exist", "holds no segment file"} {
		_, _, err := tryOpen(dir, Options{}, from)
		if err == nil || !strings.Contains(err.Error(), what) || !strings.Contains(err.Error(), fmt.Sprintf("offset %d of segment 1", from.Off)) {
			t.Fatalf("Open of a log that %s, the index up to %+v: %v", what, from, err)
		}
		if what == "does not exist" {
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the refused Open created %s: %v", dir, err)
			}
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
		} else if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
			t.Fatalf("the refused Open left %d files in %s (%v)", len(ents), dir, err)
		}
	}
	l, frames := open(t, dir, Options{}, Pos{})
	defer l.Close()
	if len(frames) != 0 {
		t.Fatalf("a new log replayed %d frames", len(frames))
	}
}
