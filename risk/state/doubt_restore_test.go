package state

import (
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// TestDoubtRecordSurvivesRestart: the records of keys in doubt are written to
// Badger with the counters and restored with them. A card evicted by a flood and a
// card whose filter failed read in doubt before a restart and, in a new store
// restored from the same database, still do (they read 0 and 1 as if nothing had
// been lost until this release); every other key reads the same doubt as before
// (the restored record is the same filter, false positives included). A Flush
// with nothing new in the record writes none of it again. A database with no
// record (written before this release) restores with no key in doubt.
func TestDoubtRecordSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	open := func() *badger.DB {
		db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	c := spec(MeasureCount, 10*time.Minute, 20*time.Second)
	specs := map[uint64]*CounterSpec{c.FP: c}
	const capacity = numShards * 16
	// By the wall clock: Flush gives the records a TTL by it.
	t0 := time.Now().UnixNano()
	db := open()
	s := NewVelocity(db, capacity, 0)
	victim, filtered := uint64(0x2545f4914f6cdd1d), uint64(0x5851f42d4c957f2d)
	s.Observe(c, victim, t0, 1000, "")
	s.MarkFiltered(c, filtered, t0)
	for i := range 20 * capacity {
		s.Observe(c, uint64(i+1)*0x9e3779b97f4a7c15, t0+int64(time.Second)+int64(i)*int64(time.Microsecond), 100, "")
	}
	now := t0 + int64(2*time.Second)
	probe := func(s *Velocity) []Doubt {
		out := make([]Doubt, 10_000)
		for i := range out {
			_, out[i] = s.ReadDoubt(c, uint64(i+1)*0xbf58476d1ce4e5b9, now)
		}
		return out
	}
	before := probe(s)
	if _, d := s.ReadDoubt(c, victim, now); d != DoubtEvicted {
		t.Fatalf("victim before the restart: %v, want evicted", d)
	}
	if err := s.Flush(specs); err != nil {
		t.Fatal(err)
	}
	if chunks, _ := s.doubtChunks(specs); len(chunks) != 0 {
		t.Errorf("a second Flush would write %d chunks of the record again, nothing having changed", len(chunks))
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = open()
	s = NewVelocity(db, capacity, 0)
	if _, err := s.Restore([]*CounterSpec{c}); err != nil {
		t.Fatal(err)
	}
	if v, d := s.ReadDoubt(c, victim, now); v != 0 || d != DoubtEvicted {
		t.Errorf("victim after the restart: %d, %v; want 0, evicted", v, d)
	}
	if v, d := s.ReadDoubt(c, filtered, now); v != 0 || d != DoubtFiltered {
		t.Errorf("card whose filter failed, after the restart: %d, %v; want 0, filter failed", v, d)
	}
	after := probe(s)
	diff := 0
	for i := range before {
		if before[i] != after[i] {
			diff++
		}
	}
	if diff != 0 {
		t.Errorf("%d of %d keys read another doubt after the restart", diff, len(before))
	}
	// Two windows later nothing is in doubt, restored or not.
	if _, d := s.ReadDoubt(c, victim, now+2*c.NB*c.Width); d != DoubtNone {
		t.Errorf("victim two windows later: %v, want no doubt", d)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// A database without the record (the format before it): no key in doubt.
	old := &CounterSpec{FP: 77, Measure: MeasureCount, Dims: []string{DimCard}, Window: time.Hour, Width: int64(time.Minute), NB: 60}
	db = open()
	defer db.Close()
	s = NewVelocity(db, 0, 0)
	s.Observe(old, victim, t0, 1, "")
	if err := s.Flush(map[uint64]*CounterSpec{old.FP: old}); err != nil {
		t.Fatal(err)
	}
	s = NewVelocity(db, 0, 0)
	if n, err := s.Restore([]*CounterSpec{old}); err != nil || n != 1 {
		t.Fatalf("restore without a record: %d series, %v; want 1, nil", n, err)
	}
	if v, d := s.ReadDoubt(old, victim, t0+1); v != 1 || d != DoubtNone {
		t.Errorf("restored without a record: %d, %v; want 1, no doubt", v, d)
	}
}

// TestDoubtChunkDecode: a saved chunk decodes to the words it was made from, in
// both encodings, and every truncation or corruption of one is an error that says
// what is wrong, never a panic.
func TestDoubtChunkDecode(t *testing.T) {
	for _, keys := range []int{3, 20_000} { // sparse, dense
		f := &newDoubts(int64(time.Minute), 0).evicted
		for i := range keys {
			f.add(doubtHash(1, uint64(i)), int64(i))
		}
		g := f.cur.Load()
		chunks := g.chunks(1, doubtKindEvicted, f.span, g.n.Load())
		if len(chunks) != 1 {
			t.Fatalf("%d keys: %d chunks, want 1", keys, len(chunks))
		}
		b := chunks[0].val
		ch, err := decodeDoubtChunk(b)
		if err != nil {
			t.Fatalf("%d keys: %v", keys, err)
		}
		for i := range g.bits {
			if w := g.bits[i].Load(); ch.set[i] != w {
				t.Fatalf("%d keys: word %d decoded %x, want %x", keys, i, ch.set[i], w)
			}
		}
		if ch.n != int64(keys) || ch.last != int64(keys-1) || ch.words != len(g.bits) {
			t.Errorf("%d keys: header %+v", keys, ch)
		}
		t.Logf("%d keys: %d bytes (%d words)", keys, len(b), len(g.bits))
		for i := range len(b) {
			if _, err := decodeDoubtChunk(b[:i]); err == nil {
				t.Fatalf("%d keys: truncated to %d of %d bytes: no error", keys, i, len(b))
			}
		}
		bad := append([]byte(nil), b...)
		bad[0] = 9
		if _, err := decodeDoubtChunk(bad); err == nil || !strings.Contains(err.Error(), "version 9") {
			t.Errorf("version 9: %v", err)
		}
		if _, err := decodeDoubtChunk(append(append([]byte(nil), b...), 0)); err == nil {
			t.Error("a byte past the end: no error")
		}
	}
}

// TestDoubtChunksWhileAdding: a Flush encodes a generation while evictions add
// to it (run with -race): every chunk decodes, and a key that the key count read
// before the encoding counts is in the chunks (the count is read first, the
// bits after), so a record restored from any flush holds every key it counts.
func TestDoubtChunksWhileAdding(t *testing.T) {
	f := &newDoubts(int64(time.Hour), 0).evicted
	const keys = 50_000
	f.add(doubtHash(1, 0), 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i < keys; i++ {
			f.add(doubtHash(1, uint64(i)), int64(i))
		}
	}()
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		g := f.cur.Load()
		n := g.n.Load()
		gens := map[int64]*doubtGen{}
		for _, c := range g.chunks(1, doubtKindEvicted, f.span, n) {
			ch, err := decodeDoubtChunk(c.val)
			if err != nil {
				t.Fatal(err)
			}
			if err := addChunk(gens, ch); err != nil {
				t.Fatal(err)
			}
		}
		r := &doubtFilter{span: f.span}
		r.restoreGens(gens)
		// Keys are added in order: the first n are counted.
		for i := range n {
			if !r.has(doubtHash(1, uint64(i)), 0) {
				t.Fatalf("key %d of the %d counted is not in the chunks", i, n)
			}
		}
	}
}
