package cjournal

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/switch/cluster"
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
// So while a group message of this node that the stream acknowledged more than
// ShedAfter ago is not yet applied by this node's applier (and then until the
// oldest such is under a quarter of ShedAfter old, or none is left), Admit refuses
// new authorizations and financial requests (0100, 0200) with ErrBehind, which
// wraps journal.ErrUnavailable and journal.ErrOverloaded. The pipeline asks it
// before a request's checks and rules, answers 91 journal-overloaded, publishes
// nothing and keeps no record of it for the journal's return (its txn log line and
// switchyard_cluster_requests_shed_total say what was answered). Kept, such records
// grew to 42,424 in one node's memory within a bench's 70 s at 5,000 requests a
// second, each one more for every node's applier once written; and refused only at
// their write ahead, after their checks and rules, the refused requests took the
// CPU the node's applier needed to catch up (seen: a node shedding for 52 s on end,
// its applier 0.6 to 2.5 s behind). The 91s the pipeline does keep (requests whose
// write timed out) wait too: Write refuses their first versions while the node
// sheds, since the housekeeping writes them one after the other every 5 s and each
// would wait as long for its verdict. Reversals, advices, later versions and what
// was admitted go on (they finish or undo what was started). The age of the oldest
// own group the applier has not reached is what a new request would wait at least;
// a few requests go through while shedding (one every shedProbe) so that it stays
// so: once it is small again, requests go through again. No clock but this node's
// is read (the stream's timestamps are its leader's).
//
// The state is looked at again at most every shedLook, by the request that comes
// then; the acker notes each group's acknowledgement (a few hundred a second at
// most).

// DefaultShedAfter is Options.ShedAfter's default (cluster.shed_after's).
const DefaultShedAfter = cluster.DefaultShedAfter

// shedResume: shedding, once begun, ends when the oldest wait is under
// ShedAfter/shedResume (or none is left), not as soon as it is under ShedAfter: the
// node would take requests again while its applier is still nearly ShedAfter behind,
// each of them would wait that long, and it would refuse again a moment later (seen
// in the first version: on again 50 ms after it ended, oldest wait 2.46 s).
const shedResume = 4

// shedProbe: while shedding, one request every shedProbe goes through all the same.
// Its message is what tells how far behind the applier is now: without it, the
// oldest message left would be one published before shedding began, and once the
// applier reached it the node would take requests again as far behind the stream
// as the shedding had lasted (seen in the version before: 8 to 10 s of shedding,
// then 2.5 s of requests that all waited their 5 s, over and over, the node
// approving nothing in a bench's window). A probe waits for its verdict like any
// request (up to 5 s, then 91).
const shedProbe = 250 * time.Millisecond

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
	probe  atomic.Int64  // unix ns: when the last probe went (or shedding began)
	oldest atomic.Int64  // ns: the oldest wait at the last look

	mu    sync.Mutex // orders the transitions' logs and counts
	since time.Time  // when shedding began
	count uint64     // requests refused since

	// pend are this node's group messages the stream acknowledged that the
	// applier had not applied at the last look, in stream order (the acker
	// settles groups in the order they were sent). Not the writers waiting: a
	// writer that gave up after AckTimeout leaves its group behind the applier
	// all the same (seen: the first version, which read the writers, took
	// requests again every time the oldest writer gave up, 5 s into shedding,
	// while the applier was still behind).
	pendMu sync.Mutex
	pend   []pendGroup
}

// pendGroup is a group message of this node the stream acknowledged.
type pendGroup struct {
	seq uint64 // its stream sequence
	at  int64  // unix ns: when its acknowledgement came
}

// maxPend bounds shedder.pend (an applier that stands still for minutes while
// this node's groups are still acknowledged): past it the older half goes, and the
// oldest left is still minutes old at the few hundred groups a second a node sends.
const maxPend = 1 << 16

// acked notes a group message of this node the stream acknowledged at seq.
func (s *shedder) acked(seq uint64, at time.Time) {
	if s.after <= 0 {
		return
	}
	s.pendMu.Lock()
	if len(s.pend) >= maxPend {
		s.pend = append(s.pend[:0], s.pend[len(s.pend)-maxPend/2:]...)
	}
	s.pend = append(s.pend, pendGroup{seq: seq, at: at.UnixNano()})
	s.pendMu.Unlock()
}

// oldestPending drops the groups the applier has applied (up to applied) and
// returns when the oldest left was acknowledged (0: none is left).
func (s *shedder) oldestPending(applied uint64) int64 {
	s.pendMu.Lock()
	defer s.pendMu.Unlock()
	i := 0
	for i < len(s.pend) && s.pend[i].seq <= applied {
		i++
	}
	if i > 0 {
		s.pend = append(s.pend[:0], s.pend[i:]...)
	}
	if len(s.pend) == 0 {
		return 0
	}
	return s.pend[0].at
}

// keptAnswer says whether rec is an authorization's or financial request's 91
// kept for the journal's return (decided by the journal): its first write waits
// while the node sheds.
func keptAnswer(rec *journal.Record) bool {
	return (rec.MTI == "0100" || rec.MTI == "0200") && rec.Final() && rec.DecidedBy == "journal"
}

// Admit returns nil when a new authorization or financial request may go on, and
// an error wrapping ErrBehind, journal.ErrUnavailable and journal.ErrOverloaded
// while this node sheds (pipeline.Admitter: the pipeline asks before the request's
// checks and rules, and answers 91 journal-overloaded). One request every
// shedProbe is let through all the same.
func (j *Journal) Admit() error {
	if err := j.shedding(time.Now(), true); err != nil {
		return fmt.Errorf("cjournal: request refused: %w", err)
	}
	return nil
}

// shedding returns ErrBehind, wrapped with journal.ErrUnavailable,
// journal.ErrOverloaded and the wait that caused it, while this node sheds; now is
// the caller's clock. With probe, the first call a probe's interval after the last
// probe returns nil (and counts as one), and a refusal counts as a request shed.
func (j *Journal) shedding(now time.Time, probe bool) error {
	s := &j.shed
	if s.after <= 0 {
		return nil
	}
	n := now.UnixNano()
	if next := s.next.Load(); n >= next && s.next.CompareAndSwap(next, n+int64(shedLook)) {
		j.lookShed(now)
	}
	if !s.on.Load() {
		return nil
	}
	if probe {
		if p := s.probe.Load(); n >= p+int64(shedProbe) && s.probe.CompareAndSwap(p, n) {
			return nil
		}
		j.stats.shed.Add(1)
		if j.cn != nil {
			j.cn.Metrics().ObserveShed()
		}
		s.mu.Lock()
		s.count++
		s.mu.Unlock()
	}
	return fmt.Errorf("%w (%w): %w: it has not applied a message of this node that the stream acknowledged %v ago (shed after %v)",
		journal.ErrUnavailable, journal.ErrOverloaded, ErrBehind, time.Duration(s.oldest.Load()).Round(time.Millisecond), s.after)
}

// lookShed sets the shedding state from how long ago the stream acknowledged the
// oldest group message of this node that the applier has not applied, and logs a
// change.
func (j *Journal) lookShed(now time.Time) {
	s := &j.shed
	applied, _ := j.Position()
	wait := time.Duration(0)
	if oldest := s.oldestPending(applied); oldest != 0 {
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
		s.probe.Store(now.UnixNano())
		j.log.Warn().Dur("oldest_wait", wait).Dur("shed_after", s.after).Uint64("applied", applied).Uint64("stream_last", last).
			Msg("cluster journal: this node's applier is behind the stream; new requests are answered 91 at once, nothing published, until it catches up")
		return
	}
	j.log.Info().Dur("oldest_wait", wait).Dur("took", now.Sub(s.since)).Uint64("refused", s.count).Uint64("applied", applied).Uint64("stream_last", last).
		Msg("cluster journal: this node's applier caught up; new requests are taken again")
}
