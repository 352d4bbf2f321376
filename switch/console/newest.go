package console

import (
	"context"
	"math"
	"time"

	"github.com/switchyard/switchyard/switch/journal"
)

// firstWindow is the span of the first window newest scans: the last minute
// before the query's end; each further window, further back, is twice as long.
const firstWindow = time.Minute

// newest returns the newest n records of j matching q (and keep, when not nil),
// newest first, holding at most n of them in memory whatever the span. The
// journal is read in receive-time order, oldest first; so newest reads it back
// from q.To in windows that double (a minute, two, four...), keeping the newest
// it still needs of each in a ring, until it has n or has reached q.From. A busy
// switch's last minutes hold the answer, and a quiet one's are read in a few
// windows. (Until the third release of 6 December 2026 the console's
// transactions page kept the first 5000 matches of its span, the oldest, and
// showed the newest 200 of those: on a busy day, transactions of the day
// before; and a merchant's or terminal's page gathered every match of seven
// days in memory, on each view, before keeping 20.) q.From and q.To must be set; an
// RRN query is one record, read once.
func newest(ctx context.Context, j *journal.Store, q journal.Query, n int, keep func(*journal.Record) bool) ([]*journal.Record, error) {
	if keep == nil {
		keep = func(*journal.Record) bool { return true }
	}
	if q.RRN != "" {
		var out []*journal.Record
		err := j.Scan(ctx, q, func(r *journal.Record) bool {
			if keep(r) {
				out = append(out, r)
			}
			return true
		})
		return out, err
	}
	out := make([]*journal.Record, 0, n)
	ring := make([]*journal.Record, n)
	end, span := q.To, firstWindow
	for len(out) < n && end.After(q.From) {
		w := q
		w.From, w.To = q.From, end
		// end.Sub saturates at the longest Duration; span is never doubled past it
		// (below). Until 7 December 2026 a range of centuries doubled span past
		// it: negative, the windows went forward again, read records twice and
		// never reached q.From, spinning a core until the request's deadline.
		if span < end.Sub(q.From) {
			w.From = end.Add(-span)
		}
		need, seen := n-len(out), 0
		err := j.Scan(ctx, w, func(r *journal.Record) bool {
			if keep(r) {
				ring[seen%need] = r
				seen++
			}
			return true
		})
		if err != nil {
			return out, err
		}
		for i := 0; i < min(seen, need); i++ { // the newest first
			out = append(out, ring[(seen-1-i)%need])
		}
		end = w.From
		if span < math.MaxInt64/2 {
			span *= 2
		}
	}
	return out, nil
}
