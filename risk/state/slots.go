package state

import "math/bits"

// slotTable is an open-addressing hash table (linear probing) from a series key to
// its slot: 16 bytes an entry, no pointers, grown by half rather than doubled and
// shrunk when the sweep has emptied it, so that its load stays between 0.55 and 0.85
// (a Go map's swings between 0.44 and 0.88 as its tables split together). It is what
// keeps a million distinct cards under 150 MB.
type slotTable struct {
	e []slotEntry
	n int
}

type slotEntry struct {
	key uint64
	sl  slot // sl.n == emptySlot: a free entry
}

// emptySlot marks a free entry; inline never puts it in a slot.
const emptySlot = inArena + 1

const minTable = 8

func (t *slotTable) pos(key uint64) int {
	h := (key ^ key>>31) * 0xbf58476d1ce4e5b9
	h ^= h >> 29
	hi, _ := bits.Mul64(h, uint64(len(t.e)))
	return int(hi)
}

func (t *slotTable) len() int { return t.n }

// get returns the slot of key.
func (t *slotTable) get(key uint64) (slot, bool) {
	if t.n == 0 {
		return slot{}, false
	}
	for i := t.pos(key); ; {
		x := &t.e[i]
		if x.sl.n == emptySlot {
			return slot{}, false
		}
		if x.key == key {
			return x.sl, true
		}
		if i++; i == len(t.e) {
			i = 0
		}
	}
}

// put sets the slot of key.
func (t *slotTable) put(key uint64, sl slot) {
	if (t.n+1)*20 > len(t.e)*17 { // load above 0.85
		t.resize(max(minTable, len(t.e)+len(t.e)/2))
	}
	for i := t.pos(key); ; {
		x := &t.e[i]
		if x.sl.n == emptySlot {
			*x = slotEntry{key, sl}
			t.n++
			return
		}
		if x.key == key {
			x.sl = sl
			return
		}
		if i++; i == len(t.e) {
			i = 0
		}
	}
}

// del removes key, shifting back the entries after it (no tombstones).
func (t *slotTable) del(key uint64) {
	if t.n == 0 {
		return
	}
	i := t.pos(key)
	for {
		x := &t.e[i]
		if x.sl.n == emptySlot {
			return
		}
		if x.key == key {
			break
		}
		if i++; i == len(t.e) {
			i = 0
		}
	}
	t.n--
	for j := i; ; {
		if j++; j == len(t.e) {
			j = 0
		}
		y := t.e[j]
		if y.sl.n == emptySlot {
			break
		}
		// y may move to the hole at i unless its home lies cyclically in (i, j].
		h := t.pos(y.key)
		if (j > i && (h <= i || h > j)) || (j < i && h <= i && h > j) {
			t.e[i] = y
			i = j
		}
	}
	t.e[i] = slotEntry{sl: slot{n: emptySlot}}
}

func (t *slotTable) resize(size int) {
	old := t.e
	t.e = make([]slotEntry, size)
	for i := range t.e {
		t.e[i].sl.n = emptySlot
	}
	t.n = 0
	for _, x := range old {
		if x.sl.n != emptySlot {
			t.put(x.key, x.sl)
		}
	}
}

// shrink gives memory back once the sweep has emptied most of the table.
func (t *slotTable) shrink() {
	if len(t.e) > minTable && t.n*4 < len(t.e) {
		t.resize(max(minTable, t.n*3/2+1))
	}
}

// keys returns the keys in the table (a copy: the caller may delete while walking).
func (t *slotTable) keys(buf []uint64) []uint64 {
	buf = buf[:0]
	for _, x := range t.e {
		if x.sl.n != emptySlot {
			buf = append(buf, x.key)
		}
	}
	return buf
}
