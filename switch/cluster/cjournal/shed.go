package cjournal

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/switch/journal"
)

// Shedding: a node whose applier falls behind the stream refuses new requests at once.
//
// Every write-ahead record waits for this node's applier to decide it (first.go), up
// to AckTimeout. Under a load the node cannot keep up with (the host slow, the
// other nodes' records more than its applier applies), the applier falls seconds
// behind the stream, and every request the node takes publishes its write-ahead
// record, waits its AckTimeout and is answered 91 all the same: seen 7 December 2026
// in `bench --cluster 3 --rate 3000`, 18,360 answers 91 in a 10 s window, p50 4.5 s.
// Each of those records is one more for every node's applier to apply, so the
// backlog feeds itself.
//
// So while a write-ahead record of this node that the stream acknowledged more than
// ShedAfter ago still waits for the applier's verdict (and then until the oldest
// wait is under a quarter of ShedAfter), Write refuses the first versions of
// authorizations and financial requests (0100, 0200) at once with ErrBehind, which
// wraps journal.ErrUnavailable and journal.ErrOverloaded: the pipeline answers a new
// request 91 journal-overloaded, publishes nothing and keeps no record of it for the
// journal's return (its txn log line and switchyard_cluster_requests_shed_total
// say what was answered). Kept, such records grew to 42,424 in one node's memory
// within a bench's 70 s at 5,000 requests a second, each one more for every node's
// applier once written. The 91s the pipeline does keep (requests whose write timed
// out) are first versions too and are refused alike while shedding: the
// housekeeping writes them one after the other every 5 s, and each would wait as
// long for its verdict. Reversals, advices, later versions of what was taken, rules'
// declines and payments notified by QR networks are not refused (they finish or undo
// what was started, or record a decision made). The writes in flight are
// decided as the applier reaches them, and the oldest one's wait is the applier's
// delay: once it is under a quarter of ShedAfter (or none waits), requests go
// through again. No clock but this node's is read (the stream's timestamps are its
// leader's).
//
// The state is looked at again at most every shedLook, by the request that comes
// then: it scans the writes waiting for a verdict (a few dozen while the applier
// keeps up; at most ShedAfter's worth of requests while it does not, since the ones
// that come then are refused).

// DefaultShedAfter is Options.ShedAfter's default: half of a request's wait for its
// verdict (AckTimeout), so that a request taken while the applier is that far behind
// still has time to be decided.
const DefaultShedAfter = 2500 * time.Millisecond

// shedResume: shedding, once begun, ends when the oldest wait is under
// ShedAfter/shedResume (or none is left), not as soon as it is under ShedAfter: the
// node would take requests again while its applier is still nearly ShedAfter behind,
// each of them would wait that long, and it would refuse again a moment later (seen
// in the first version: on again 50 ms after it ended, oldest wait 2.46 s).
const shedResume = 4

// shedLook is the least time between two looks at the oldest wait.
const shedLook = 50 * time.Millisecond

// ErrBehind is wrapped (with journal.ErrUnavailable and journal.ErrOverloaded) by a
// first version refused because this node's applier is behind the stream.
var ErrBehind = errors.New("this node's applier is behind the stream: new requests are refused until it catches up")

// shedder is the journal's shedding state.
type shedder struct {
	after  time.Duration // Options.ShedAfter (0: never)
	next   atomic.Int64  // unix ns: when the next look is due
	on     atomic.Bool   // refusing
	oldest atomic.Int64  // ns: the oldest wait at the last look

	mu    sync.Mutex // orders the transitions' logs and counts
	since time.Time  // when shedding began
	count uint64     // requests refused since
}

// sheds says whether a first write of rec is one shedding refuses: an
// authorization's or financial request's write-ahead record (not final yet), or its
// 91 kept for the journal's return (decided by the journal). A request decided
// without a write ahead (a rules decline) and a payment notified by a QR network
// are final first versions decided by others: they are written.
func sheds(rec *journal.Record) bool {
	return (rec.MTI == "0100" || rec.MTI == "0200") && (!rec.Final() || rec.DecidedBy == "journal")
}

// shedding returns ErrBehind, wrapped with journal.ErrUnavailable and the wait that
// caused it, while this node refuses new requests; now is the caller's clock.
func (j *Journal) shedding(now time.Time) error {
	s := &j.shed
	if s.after <= 0 {
		return nil
	}
	if n, next := now.UnixNano(), s.next.Load(); n >= next && s.next.CompareAndSwap(next, n+int64(shedLook)) {
		j.lookShed(now)
	}
	if !s.on.Load() {
		return nil
	}
	j.stats.shed.Add(1)
	if j.cn != nil {
		j.cn.Metrics().ObserveShed()
	}
	s.mu.Lock()
	s.count++
	s.mu.Unlock()
	return fmt.Errorf("%w (%w): %w: a write-ahead record of this node has waited %v for its applier's verdict since the stream acknowledged it (shed after %v)",
		journal.ErrUnavailable, journal.ErrOverloaded, ErrBehind, time.Duration(s.oldest.Load()).Round(time.Millisecond), s.after)
}

// lookShed sets the shedding state from the oldest wait for a verdict of a write
// the stream acknowledged, and logs a change.
func (j *Journal) lookShed(now time.Time) {
	s := &j.shed
	oldest := int64(math.MaxInt64)
	j.ap.firstMu.Lock()
	for _, w := range j.ap.firsts {
		if a := w.acked.Load(); a != 0 && a < oldest {
			oldest = a
		}
	}
	j.ap.firstMu.Unlock()
	wait := time.Duration(0)
	if oldest != math.MaxInt64 {
		wait = max(0, now.Sub(time.Unix(0, oldest)))
	}
	s.oldest.Store(int64(wait))
	was := s.on.Load()
	on := wait > s.after || was && wait >= s.after/shedResume
	if was == on {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.on.Load() == on {
		return
	}
	s.on.Store(on)
	if j.cn != nil {
		j.cn.Metrics().SetShedding(on)
	}
	applied, last := j.Position()
	if on {
		s.since, s.count = now, 0
		j.log.Warn().Dur("oldest_wait", wait).Dur("shed_after", s.after).Uint64("applied", applied).Uint64("stream_last", last).
			Msg("cluster journal: this node's applier is behind the stream; new requests are answered 91 at once, nothing published, until it catches up")
		return
	}
	j.log.Info().Dur("oldest_wait", wait).Dur("took", now.Sub(s.since)).Uint64("refused", s.count).Uint64("applied", applied).Uint64("stream_last", last).
		Msg("cluster journal: this node's applier caught up; new requests are taken again")
}
