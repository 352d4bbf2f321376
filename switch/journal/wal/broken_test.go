package wal

import (
	"strings"
	"testing"
)

// TestBrokenIsReported: once a write fails and cannot be cut back (here the active
// segment's file is closed under the log, so both fail), the log refuses every
// further write, and Broken says why to any goroutine (the switch's /readyz and its
// one log line asking for a restart), where before only the failed writes said it.
func TestBrokenIsReported(t *testing.T) {
	l, _ := open(t, t.TempDir(), Options{SegmentSize: 1 << 20, Prealloc: -1}, Pos{})
	appendFrames(t, l, 4, 2)
	if err := l.Broken(); err != nil {
		t.Fatalf("Broken before any failure: %v", err)
	}
	if err := l.active.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := l.Begin()
	if err != nil {
		t.Fatal(err)
	}
	b.Add(1, []byte("lost"))
	werr := l.Append(b)
	if werr == nil {
		t.Fatal("append to a closed segment succeeded")
	}
	broken := l.Broken()
	if broken == nil || !strings.Contains(broken.Error(), "cutting it back failed") {
		t.Fatalf("Broken after a write that could not be cut back: %v (the append said %v)", broken, werr)
	}
	if _, err := l.Begin(); err == nil || err.Error() != broken.Error() {
		t.Errorf("Begin after the break: %v, want %v", err, broken)
	}
}
