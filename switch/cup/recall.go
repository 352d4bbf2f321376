package cup

import (
	"context"
	"fmt"
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

// originalSTAN is the STAN of the original a reversal or pre-authorization void
// names: 61.2 when F61 is sent, else (a reversal) its own F11, which a UnionPay
// terminal repeats from the original.
func originalSTAN(f *Frame, k Kind) (string, error) {
	if f61 := f.Str(61); len(f61) >= 12 {
		return f61[6:12], nil
	}
	if k.Original == "stan61" {
		return "", formatErr(61, "the original's batch and STAN (61.1, 61.2) are required")
	}
	return f.Str(11), nil
}

// recall puts into the session the original of a reversal that it does not remember,
// from the journal: the terminal's latest authorization or purchase with that STAN in
// the last day. Not found (or no journal), the session stays as it was and the
// pipeline takes the reversal as one of an unknown original.
func (a *Adapter) recall(ctx context.Context, s *session, tid, stan string) error {
	if a.cfg.Journal == nil {
		return nil
	}
	s.mu.Lock()
	_, known := s.stans[stan]
	s.mu.Unlock()
	if known {
		return nil
	}
	now := a.cfg.Now()
	var found *journal.Record
	err := a.cfg.Journal.Scan(ctx, journal.Query{TID: tid, From: now.Add(-recallWindow), To: now.Add(time.Minute)}, func(r *journal.Record) bool {
		if r.STAN == stan && (r.MTI == "0100" || r.MTI == "0200") && r.DE7 != "" && (found == nil || r.Received.After(found.Received)) {
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
			s.remember(stan, stanEntry{mti: found.MTI, proc: found.ProcCode, de7: found.DE7, amount: fmt.Sprintf("%012d", found.Amount)})
		}
		s.mu.Unlock()
	}
	return nil
}
