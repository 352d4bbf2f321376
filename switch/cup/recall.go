package cup

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/switchyard/switchyard/switch/journal"
)

// Journal is the part of the journal the adapter reads: a terminal's records, to
// find the original of a reversal that the session does not remember (the switch
// restarted since the original).
type Journal interface {
	Scan(ctx context.Context, q journal.Query, fn func(*journal.Record) bool) error
}

// recallWindow is how far back the journal is searched for a reversal's original.
const recallWindow = 24 * time.Hour

// originalCandidates are the STANs that may name the original of a reversal (0400)
// or pre-authorization void (k.Original "stan" or "stan61"), for recall to look up:
// a pre-authorization void's 61.2 (required); a reversal's own F11, which a UnionPay
// terminal repeats from the request it takes back, and its 61.2 when sent and other
// (reversalOriginal chooses between them).
func originalCandidates(f *Frame, k Kind) ([]string, error) {
	f61 := f61STAN(f)
	if k.Original == "stan61" {
		if f61 == "" {
			return nil, formatErr(61, "the original's batch and STAN (61.1, 61.2) are required")
		}
		return []string{f61}, nil
	}
	own := f.Str(11)
	if f61 == "" || f61 == own {
		return []string{own}, nil
	}
	return []string{own, f61}, nil
}

// f61STAN is 61.2, the STAN F61 names ("" when F61 is shorter than 61.1 + 61.2).
func f61STAN(f *Frame) string {
	if f61 := f.Str(61); len(f61) >= 12 {
		return f61[6:12]
	}
	return ""
}

// reversedKind is the kind of the request a reversal (0400) takes back, by its 60.1
// (a UnionPay terminal's reversal repeats the fields of the request it reverses,
// 60.1 included); ok is false when 60.1 is absent or names no kind of the dialect.
func reversedKind(f *Frame) (Kind, bool) {
	typ := ParseF60(f.Str(60)).Type
	if len(typ) != 2 {
		return Kind{}, false
	}
	for _, k := range kinds {
		if k.Type == typ {
			return k, true
		}
	}
	return Kind{}, false
}

// originalSTAN is the STAN of the original that reversal or pre-authorization void f
// (kind k) takes back, given the requests the terminal's session knows by STAN
// (stans, read under the session's lock, after recall looked the candidates up in
// the journal). A pre-authorization void names it in 61.2. A reversal is the
// request it takes back sent again as 0400 (UnionPay terminals store the request
// and repeat its fields, F11 and F61 included), so its own F11 is the original
// when the session knows that STAN as a request of the kind its 60.1 names (of any
// kind without 60.1); otherwise 61.2 when the session knows that STAN as such a
// request (terminals that reverse under a STAN of their own and name the original
// in 61.2); otherwise F11, an original the switch never saw. (Until 6 December
// 2026 61.2 came first: the reversal of a void or completion, whose
// F61 names the sale or pre-authorization it voided or completed, reversed that sale
// or named no transaction, and the void or completion stood.)
//
// Only a request received within recallWindow (the last day) before now is a
// reversal's original: terminals reverse at once or at their next transaction, and
// drop a reversal from an earlier day, while the session holds STANs back to its MAC
// key's making (up to 7 days, for replays): a terminal whose STAN counter started
// again would otherwise have a reversal of a request that never arrived take back
// an older request of the same STAN and amount, sold and settled days before.
func originalSTAN(f *Frame, k Kind, stans map[string]stanEntry, now time.Time) (string, error) {
	cands, err := originalCandidates(f, k)
	if err != nil || k.Original == "stan61" {
		return firstOf(cands), err
	}
	for _, stan := range cands {
		if e, ok := stans[stan]; ok && reverses(f, e, now) {
			return stan, nil
		}
	}
	return cands[0], nil
}

// reverses reports whether reversal f may take back request e of the session: e
// is of the kind f's 60.1 names (any kind without 60.1) and was received within
// recallWindow before now (originalSTAN).
func reverses(f *Frame, e stanEntry, now time.Time) bool {
	if rk, typed := reversedKind(f); typed && (e.mti != rk.ASCIIMTI || e.proc != rk.ASCIIProc) {
		return false
	}
	return e.at.After(now.Add(-recallWindow))
}

func firstOf(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// recall puts into the session the original of a reversal that it does not remember,
// from the journal: the terminal's latest authorization or purchase with that STAN
// received from `from` until `to` (zero: now) (the last day). Not found (or no journal), the session stays as it was
// and the pipeline takes the reversal as one of an unknown original.
func (a *Adapter) recall(ctx context.Context, s *session, tid, stan string, from, to time.Time) error {
	if a.cfg.Journal == nil {
		return nil
	}
	s.mu.Lock()
	_, known := s.stans[stan]
	s.mu.Unlock()
	if known {
		return nil
	}
	if to.IsZero() {
		to = a.cfg.Now().Add(time.Minute)
	}
	var found *journal.Record
	err := a.cfg.Journal.Scan(ctx, journal.Query{TID: tid, From: from, To: to}, func(r *journal.Record) bool {
		if r.STAN == stan && stanRecord(r) && (found == nil || r.Received.After(found.Received)) {
			found = r
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("cup: looking up the original of %s STAN %s: %w", tid, stan, err)
	}
	if found != nil {
		s.mu.Lock()
		if _, ok := s.stans[stan]; !ok {
			s.remember(stan, entryOf(found))
		}
		s.mu.Unlock()
	}
	return nil
}

// restore fills the session with the terminal's authorizations, purchases and
// refunds the journal holds from `from` on (the last day, or further back to the
// making of the MAK the terminal's request verified under: restoreFrom), so that a
// resend of a request the terminal had no answer to before a restart is given the
// DE 7 of its first try and the pipeline answers it as the duplicate it is, and so
// that a replay of any request MAC'd under the terminal's current MAK is too
// (vouch). It reads the journal once per session, and again only to reach further
// back than it read (a MAK older than that), then only the part not read. A journal
// that cannot be read leaves the session as it was: a resend is then a new request,
// as before.
func (a *Adapter) restore(ctx context.Context, s *session, tid string, from time.Time) error {
	s.mu.Lock()
	done, since := s.restored, s.since
	if a.cfg.Journal == nil || done && (!from.Before(since) || s.dropped) {
		s.restored = true
		s.mu.Unlock()
		return nil
	}
	s.restored = true
	s.mu.Unlock()
	to := a.cfg.Now().Add(time.Minute)
	if done {
		to = since
	}
	latest := map[string]*journal.Record{}
	var order []string
	err := a.cfg.Journal.Scan(ctx, journal.Query{TID: tid, From: from, To: to}, func(r *journal.Record) bool {
		if !stanRecord(r) {
			return true
		}
		if old, ok := latest[r.STAN]; !ok {
			order = append(order, r.STAN)
		} else if !r.Received.After(old.Received) {
			return true
		}
		latest[r.STAN] = r
		return true
	})
	if err != nil {
		return fmt.Errorf("cup: restoring the session of %s from the journal: %w", tid, err)
	}
	sort.SliceStable(order, func(i, j int) bool { return latest[order[i]].Received.Before(latest[order[j]].Received) })
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.since.IsZero() || from.Before(s.since) {
		s.since = from // moved on again by remember if it drops what it just read
	}
	for _, stan := range order {
		if _, ok := s.stans[stan]; ok { // this session's own, newer
			continue
		}
		s.remember(stan, entryOf(latest[stan]))
	}
	return nil
}
