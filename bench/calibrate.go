package bench

import (
	"crypto/sha256"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"time"
)

// The host's speed: a fixed piece of work whose CPU time says how fast this shared
// machine runs at a given moment. The switches' CPU per authorization moves with it
// (the same build measured 55 to 270 µs an authorization within a day here), so a
// phase measured while the host ran slower reads dearer for that alone. The work
// mixes what a switch spends its time on: memory reads that miss the caches (a
// chase through 16 MiB) and computation over data in them (SHA-256 of 64 KiB,
// many times).

const (
	calibTable  = 4 << 20 // entries of the chase's table (uint32: 16 MiB)
	calibSteps  = 1 << 19 // steps of the chase
	calibHashes = 256     // SHA-256 of calibBlock bytes, this many times
	calibBlock  = 64 << 10
	calibRepeat = 5 // the median of this many
)

var calibData = sync.OnceValues(func() ([]uint32, []byte) {
	// A single cycle through the table (Sattolo's shuffle), so the chase visits
	// calibSteps distinct entries in an order the prefetcher cannot guess.
	next := make([]uint32, calibTable)
	for i := range next {
		next[i] = uint32(i)
	}
	r := rand.New(rand.NewPCG(14, 1500))
	for i := len(next) - 1; i > 0; i-- {
		j := r.IntN(i)
		next[i], next[j] = next[j], next[i]
	}
	block := make([]byte, calibBlock)
	for i := range block {
		block[i] = byte(i * 7)
	}
	return next, block
})

// calibrate does the fixed work calibRepeat times on one OS thread and returns the
// median of the thread's CPU time for it, or 0 where this system cannot read a
// thread's CPU time. Its CPU time, not its wall time, so that the switches'
// own work running beside it (a node's background) does not count.
func calibrate() time.Duration {
	next, block := calibData()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	times := make([]time.Duration, 0, calibRepeat)
	var sink uint32
	for range calibRepeat {
		t0, ok := threadCPU()
		if !ok {
			return 0
		}
		p := uint32(0)
		for range calibSteps {
			p = next[p]
		}
		h := sha256.New()
		for range calibHashes {
			h.Write(block)
		}
		sink += p + uint32(h.Sum(nil)[0])
		t1, _ := threadCPU()
		times = append(times, t1-t0)
	}
	calibSink = sink
	slices.Sort(times)
	return times[len(times)/2]
}

// calibSink keeps the compiler from dropping the calibration's work.
var calibSink uint32
