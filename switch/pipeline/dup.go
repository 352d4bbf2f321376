package pipeline

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
)

// outcome is what a terminal was (or will be) told about a request; a duplicate of the
// request gets the same.
type outcome struct {
	rrn, auth, rc, reason string
	amount                string // DE 4 of a partial approval's answer ("": the request's)
	balance               string // DE 54 of an approved balance inquiry's answer (journal.Record.Balance)
}

// dupContent is what a duplicate must repeat besides its key: a request with the key of
// another but other content is not a resend (answered 94).
type dupContent struct {
	amount int64
	proc   string
	pan    uint64 // maphash of the PAN under the table's seed (0: no PAN)
}

// dupEntry is a request in flight or recently answered, by DE 41 + DE 11 + DE 7.
type dupEntry struct {
	done    chan struct{} // closed when out is set
	out     outcome
	at      time.Time
	content dupContent // set at claim, never changed
	// hold marks a claim by a reversal looking for its original (not a request): a
	// request with the key waits for it to end and tries again.
	hold bool
	// rrn is the request's RRN once it is answered and waits for its delivery
	// (txn.dupAtSent): a request with the key and other content names it.
	rrn atomic.Pointer[string]
}

// dupTable holds the requests in flight, so that a duplicate arriving meanwhile waits
// for the first one's answer; answered ones are found through the journal.
type dupTable struct {
	seed   maphash.Seed
	shards [64]struct {
		mu sync.Mutex
		m  map[string]*dupEntry
	}
}

func newDupTable() *dupTable {
	d := &dupTable{seed: maphash.MakeSeed()}
	for i := range d.shards {
		d.shards[i].m = map[string]*dupEntry{}
	}
	return d
}

func (d *dupTable) shard(key string) int { return int(maphash.String(d.seed, key) % 64) }

// panSum is the PAN's fingerprint in a dupContent (no allocation, no clear PAN kept).
func (d *dupTable) panSum(pan string) uint64 {
	if pan == "" {
		return 0
	}
	return maphash.String(d.seed, pan)
}

// claim returns the entry already there for key, or registers a new one (first = true)
// with the request's content (hold: a reversal's claim on its original's key).
func (d *dupTable) claim(key string, now time.Time, content dupContent, hold bool) (e *dupEntry, first bool) {
	s := &d.shards[d.shard(key)]
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[key]; ok {
		return e, false
	}
	e = &dupEntry{done: make(chan struct{}), at: now, content: content, hold: hold}
	s.m[key] = e
	return e, true
}

// finish records the outcome of a claimed entry, wakes its duplicates and forgets it:
// the journal's duplicate index, on disk before the answer, finds it from now on.
func (d *dupTable) finish(key string, e *dupEntry, out outcome) {
	e.out = out
	s := &d.shards[d.shard(key)]
	s.mu.Lock()
	if s.m[key] == e {
		delete(s.m, key)
	}
	s.mu.Unlock()
	close(e.done)
}

// forget drops a claimed entry whose request was not processed (so that a retry is not
// answered with nothing).
func (d *dupTable) forget(key string, e *dupEntry) {
	s := &d.shards[d.shard(key)]
	s.mu.Lock()
	if s.m[key] == e {
		delete(s.m, key)
	}
	s.mu.Unlock()
	close(e.done)
}

// inflight is the set of RRNs not yet final, for the recovery checkpoint.
type inflight struct {
	shards [16]struct {
		mu sync.Mutex
		m  map[string]struct{}
	}
	seed maphash.Seed
}

func newInflight() *inflight {
	f := &inflight{seed: maphash.MakeSeed()}
	for i := range f.shards {
		f.shards[i].m = map[string]struct{}{}
	}
	return f
}

func (f *inflight) add(rrn string) {
	s := &f.shards[maphash.String(f.seed, rrn)%16]
	s.mu.Lock()
	s.m[rrn] = struct{}{}
	s.mu.Unlock()
}

func (f *inflight) remove(rrn string) {
	s := &f.shards[maphash.String(f.seed, rrn)%16]
	s.mu.Lock()
	delete(s.m, rrn)
	s.mu.Unlock()
}

// min returns the lowest RRN in flight ("" if none).
func (f *inflight) min() string {
	lo := ""
	for i := range f.shards {
		s := &f.shards[i]
		s.mu.Lock()
		for r := range s.m {
			if lo == "" || r < lo {
				lo = r
			}
		}
		s.mu.Unlock()
	}
	return lo
}

// recordOutcome is the outcome stored in a journal record, as a duplicate of its
// request gets it. An approval reversed since (the switch found its answer undelivered
// or in doubt after a crash, or the terminal reversed or voided it) is no approval any
// more: a resend gets 91 with RS approval-reversed, the answer of a request the issuer
// did not complete, so that the terminal never shows an approval that was taken back.
func recordOutcome(r *journal.Record) outcome {
	if r.Approved() && r.Reversed() {
		return outcome{rrn: r.RRN, rc: message.RCIssuerUnavailable, reason: "approval-reversed"}
	}
	return outcome{rrn: r.RRN, auth: r.AuthCode, rc: r.RC, reason: r.Reason, amount: approvedDE4(r), balance: r.Balance}
}

// sameContent reports whether the journaled record r is the request t resent: the same
// amount, processing code and card or payment code (and, for an offline approval,
// terminal). A refund or void of a QR payment carries no code (its record holds its
// original's hash): the original it names is compared instead.
func (p *Pipeline) sameContent(r *journal.Record, t *txn) bool {
	q := t.req
	if r.RequestedAmount() != q.Amount || r.ProcCode != q.ProcCode {
		return false
	}
	if t.offline && r.TID != q.TID {
		// An offline approval is keyed by its card (journal.Record.CaptureKey): the
		// same card approval from another terminal is no resend of the first.
		return false
	}
	payer := q.PAN
	if q.QR {
		payer = q.QRCode
	}
	switch {
	case payer != "":
		return r.CardHash == p.CardHash(payer)
	case q.QR && r.QR != "":
		return r.OriginalRRN == q.RRN
	default:
		return r.CardHash == ""
	}
}
