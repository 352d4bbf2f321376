// Package bloom is a fixed-size Bloom filter over 64-bit hashes, safe for concurrent
// use without locks: the pipeline's filter of recent requests and the journal's
// filter of duplicate keys. Its "no" is certain; its "maybe" sends the caller to
// the real lookup.
package bloom

import "sync/atomic"

// Hashes is how many bits a key sets (double hashing from one 64-bit hash).
const Hashes = 7

// BitsPerKey sizes a filter at about 1% false positives with Hashes bits a key.
const BitsPerKey = 10

// Filter is a Bloom filter of a power-of-two number of bits.
type Filter struct {
	words []atomic.Uint64
	mask  uint64 // bits - 1
}

// New returns a filter of at least bits bits (64 at the least).
func New(bits uint64) *Filter {
	n := uint64(64)
	for n < bits {
		n <<= 1
	}
	return &Filter{words: make([]atomic.Uint64, n/64), mask: n - 1}
}

// positions derives Hashes bit positions from one 64-bit hash (double hashing).
func (b *Filter) positions(h uint64, fn func(bit uint64) bool) {
	h1, h2 := h, h>>32|h<<32|1
	for i := uint64(0); i < Hashes; i++ {
		if !fn((h1 + i*h2) & b.mask) {
			return
		}
	}
}

// Add sets the bits of the key whose hash is h.
func (b *Filter) Add(h uint64) {
	b.positions(h, func(bit uint64) bool {
		b.words[bit/64].Or(1 << (bit % 64))
		return true
	})
}

// Has reports whether the key whose hash is h may have been added; false is certain.
func (b *Filter) Has(h uint64) bool {
	all := true
	b.positions(h, func(bit uint64) bool {
		all = b.words[bit/64].Load()&(1<<(bit%64)) != 0
		return all
	})
	return all
}
