package profile

import "math"

// SketchAccuracy is the relative accuracy of the amount quantiles: a quantile the
// sketch reports is within 1% (plus half a minor unit of rounding) of the amount
// of that rank in the merchant's approved purchases.
const SketchAccuracy = 0.01

// sketch is a DDSketch (Masson, Rim, Lee, VLDB 2019) over positive integers:
// bucket i counts the values in (gamma^(i-1), gamma^i] with gamma = (1+a)/(1-a),
// so the bucket's midpoint 2*gamma^i/(gamma+1) is within a of every value in it.
// Buckets are a dense slice from the smallest index seen to the largest: a
// merchant whose tickets span 1 to 100,000 yuan holds ~580 counters (4.6 kB),
// whatever its volume. Values <= 0 count in zero.
type sketch struct {
	off    int      // bucket index of counts[0]
	counts []uint64 // counts by bucket
	zero   uint64   // values <= 0
	n      uint64   // all values
}

var (
	gamma    = (1 + SketchAccuracy) / (1 - SketchAccuracy)
	logGamma = math.Log(gamma)
)

func (s *sketch) add(v int64) {
	s.n++
	if v <= 0 {
		s.zero++
		return
	}
	i := bucketOf(v)
	switch {
	case len(s.counts) == 0:
		s.off = i
		s.counts = make([]uint64, 1, 16)
	case i < s.off:
		grown := make([]uint64, len(s.counts)+s.off-i, cap(s.counts)+s.off-i)
		copy(grown[s.off-i:], s.counts)
		s.counts, s.off = grown, i
	case i-s.off >= len(s.counts):
		s.counts = append(s.counts, make([]uint64, i-s.off+1-len(s.counts))...)
	}
	s.counts[i-s.off]++
}

// remove takes back one add(v), if the sketch holds a value in v's bucket.
func (s *sketch) remove(v int64) {
	if v <= 0 {
		if s.zero > 0 {
			s.zero--
			s.n--
		}
		return
	}
	j := bucketOf(v) - s.off
	if j >= 0 && j < len(s.counts) && s.counts[j] > 0 {
		s.counts[j]--
		s.n--
	}
}

func bucketOf(v int64) int { return int(math.Ceil(math.Log(float64(v)) / logGamma)) }

// quantile returns the value of rank ceil(q*n) (1-based) within the sketch's
// accuracy, or 0 when the sketch is empty.
func (s *sketch) quantile(q float64) int {
	if s.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(s.n)))
	rank = max(rank, 1)
	cum := s.zero
	if cum >= rank {
		return 0
	}
	for j, c := range s.counts {
		cum += uint64(c)
		if cum >= rank {
			return int(math.Round(2 * math.Pow(gamma, float64(s.off+j)) / (gamma + 1)))
		}
	}
	return 0
}
