package pipeline

import (
	"testing"
	"time"
)

func TestEarlyReversalsBoundedAndExpiring(t *testing.T) {
	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	r := newEarlyReversals(5*time.Minute, 2)
	if _, ok := r.take("T1/000001/1201120000", "0200", start); ok {
		t.Fatal("empty memory found something")
	}
	if !r.remember("a", "R1", "0200", start) || !r.remember("b", "R2", "0100", start.Add(time.Minute)) {
		t.Fatal("not remembered")
	}
	if r.remember("c", "R3", "0200", start.Add(2*time.Minute)) {
		t.Fatal("remembered past the bound with nothing expired")
	}
	if _, ok := r.take("b", "0200", start.Add(2*time.Minute)); ok {
		t.Fatal("taken for another MTI")
	}
	// Six minutes on, a has expired and makes room; b is still there.
	if !r.remember("c", "R3", "0200", start.Add(6*time.Minute)) {
		t.Fatal("an expired entry did not make room")
	}
	if rrn, ok := r.take("b", "0100", start.Add(6*time.Minute)); !ok || rrn != "R2" {
		t.Fatalf("b: %q %v", rrn, ok)
	}
	if _, ok := r.take("b", "0100", start.Add(6*time.Minute)); ok {
		t.Fatal("taken twice")
	}
	if _, ok := r.take("c", "0200", start.Add(12*time.Minute)); ok {
		t.Fatal("expired entry taken")
	}
	if r.n.Load() != 0 {
		t.Fatalf("count %d after all taken", r.n.Load())
	}
}

// BenchmarkEarlyReversalsEmpty is the cost on every financial request while no reversal
// of an unknown original is remembered.
func BenchmarkEarlyReversalsEmpty(b *testing.B) {
	r := newEarlyReversals(5*time.Minute, 100_000)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		r.take("T0000001/000001/1201120000", "0200", now)
	}
}
