package lograte

import (
	"sync"
	"testing"
	"time"
)

// TestGate: the first line goes through, then one every Every, each with the
// count of those held back since the one before; every line counts once, from
// goroutines at once too; a clock that went back lets a line through; the zero
// Gate lets every line through.
func TestGate(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	g := &Gate{Every: time.Second}
	if n, ok := g.Allow(t0); !ok || n != 0 {
		t.Fatalf("first line: %d, %v; want it through", n, ok)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if _, ok := g.Allow(t0.Add(999 * time.Millisecond)); ok {
					t.Error("a line within a second of the last went through")
				}
			}
		}()
	}
	wg.Wait()
	if n, ok := g.Allow(t0.Add(time.Second)); !ok || n != 800 {
		t.Fatalf("line a second later: %d held back, %v; want through, with 800 held back", n, ok)
	}
	if _, ok := g.Allow(t0.Add(1500 * time.Millisecond)); ok {
		t.Fatal("a line half a second after the last went through")
	}
	if n, ok := g.Allow(t0); !ok || n != 1 {
		t.Fatalf("line after the clock went back: %d, %v; want through, with 1 held back", n, ok)
	}
	var zero Gate
	for range 3 {
		if n, ok := zero.Allow(t0); !ok || n != 0 {
			t.Fatalf("zero Gate: %d, %v", n, ok)
		}
	}
}
