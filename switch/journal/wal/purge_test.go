package wal

import (
	"errors"
	"testing"
)

// TestRemoveSegment: segments below the active one are scanned and removed; the
// active one is refused for both; a read of a removed segment is ErrPurged, also
// after the log is opened again; Open starts from the oldest segment left.
func TestRemoveSegment(t *testing.T) {
	dir := t.TempDir()
	l, _ := open(t, dir, Options{SegmentSize: 256, NoSync: true}, Pos{})
	ws := appendFrames(t, l, 60, 3)
	active := l.Active()
	if active < 3 {
		t.Fatalf("active segment %d, want several", active)
	}
	if err := l.ScanSegment(active, func(Frame) error { return nil }); err == nil {
		t.Fatal("scan of the active segment accepted")
	}
	if err := l.RemoveSegment(active); err == nil {
		t.Fatal("removal of the active segment accepted")
	}
	n := 0
	if err := l.ScanSegment(1, func(f Frame) error {
		if f.At != ws[n].at || string(f.Payload) != ws[n].payload {
			t.Fatalf("frame %d: %+v, want %+v", n, f, ws[n])
		}
		n++
		return nil
	}); err != nil || n == 0 {
		t.Fatalf("scan of segment 1: %d frames, %v", n, err)
	}
	if _, err := l.Read(ws[0].at); err != nil { // opens segment 1 for reading
		t.Fatal(err)
	}
	if err := l.RemoveSegment(1); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Read(ws[0].at); !errors.Is(err, ErrPurged) {
		t.Fatalf("read of a removed segment: %v", err)
	}
	if segs, err := l.Segments(); err != nil || segs[0].N != 2 {
		t.Fatalf("segments %+v %v", segs, err)
	}
	l.Close()
	l, frames := open(t, dir, Options{SegmentSize: 256, NoSync: true}, Pos{})
	defer l.Close()
	if len(frames) != len(ws)-n || frames[0].At != ws[n].at {
		t.Fatalf("replay after the removal: %d frames from %+v, want %d from %+v", len(frames), frames[0].At, len(ws)-n, ws[n].at)
	}
	if _, err := l.Read(ws[0].at); !errors.Is(err, ErrPurged) {
		t.Fatalf("read of a removed segment after reopening: %v", err)
	}
}
