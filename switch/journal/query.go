package journal

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Scan calls fn for each record matching q, in receive-time order, until fn returns
// an error or false. A record it cannot read (its frame in the log damaged) is
// skipped, and named at the end in an *UnreadableError, after all the others (the
// limit counts only what fn was given); until the fifteenth release the scan
// stopped at it.
func (s *Store) Scan(ctx context.Context, q Query, fn func(*Record) bool) error {
	if q.RRN != "" {
		rec, err := s.Get(q.RRN)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if matches(rec, q) {
			fn(rec)
		}
		return nil
	}
	if err := s.catchUp(ctx); err != nil {
		return err
	}
	if q.TID == "" {
		return s.scanByTime(ctx, q, fn)
	}
	prefix := prefixTerm + q.TID + "/"
	start := []byte(prefix)
	if !q.From.IsZero() {
		start = timeKey(prefix, q.From, "")
	}
	var end []byte
	if !q.To.IsZero() {
		end = timeKey(prefix, q.To, "")
	}
	v := &visitor{q: q, fn: fn}
	gen := s.ix.applied.Load()
	var sk skipped
	return sk.result(s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: []byte(prefix)})
		defer it.Close()
		for it.Seek(start); it.ValidForPrefix([]byte(prefix)); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			k := it.Item().Key()
			if end != nil && bytes.Compare(k, end) >= 0 {
				return nil
			}
			rrn := string(k[len(prefix)+8:])
			rec, err := s.load(txn, gen, rrn, nil)
			if errors.Is(err, ErrNotFound) || sk.skip(err) {
				continue // removed by retention, or damaged: named at the end
			}
			if err != nil {
				return fmt.Errorf("journal: terminal index entry %s: %w", rrn, err)
			}
			if !v.visit(rec) {
				return nil
			}
		}
		return nil
	}))
}

// visitor hands the records a query matches to its function, up to its limit.
type visitor struct {
	q  Query
	fn func(*Record) bool
	n  int
}

// visit passes rec on if it matches; it reports whether to go on.
func (v *visitor) visit(rec *Record) bool {
	if !matches(rec, v.q) {
		return true
	}
	if !v.fn(rec) {
		return false
	}
	v.n++
	return v.q.Limit == 0 || v.n < v.q.Limit
}

// timeSlack covers the milliseconds by which RRN order and receive-time order may
// differ (an RRN is taken just after the request is received).
const timeSlack = 2 * time.Second

// writtenLag is how far beyond a time query's end a record with Written may be
// received without ending the walk of its RRN class. Such a record (a
// merchant-presented payment) has its order's ID for RRN, taken when the order was
// made, and is received when paid: the records after it in RRN order, made after the
// order, may be received before it, within the query. An order is paid within its
// qr.orders.ttl (5 minutes by default, at most a day): a day covers that, and bounds
// what a query of a journal of such payments alone walks beyond its end.
const writtenLag = 24 * time.Hour

// scanByTime walks the records in RRN order from the first RRN of the second before
// q.From (the sparse time index), keeping those received in [From, To) (in RRN order,
// which is receive order to within milliseconds).
func (s *Store) scanByTime(ctx context.Context, q Query, fn func(*Record) bool) error {
	v := &visitor{q: q, fn: fn}
	gen := s.ix.applied.Load()
	var sk skipped
	return sk.result(s.db.View(func(txn *badger.Txn) error {
		// The records of each RRN class (a cluster node's first digit) are in
		// receive order within the class only: find each class's first RRN at
		// From, walk the classes side by side and hand the records on in receive
		// order.
		var starts []string
		if q.From.IsZero() {
			for c := range 10 {
				starts = append(starts, string(rune('0'+c)))
			}
		} else {
			var seen [10]bool
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixTime)})
			// From LateReceipt before From: a merchant-presented payment received
			// within the query has its order's RRN, taken up to that much earlier.
			for it.Seek(timeKey(prefixTime, q.From.Add(-timeSlack-s.opts.LateReceipt), "")); it.ValidForPrefix([]byte(prefixTime)); it.Next() {
				k := it.Item().Key()
				if !q.To.IsZero() && len(k) >= len(prefixTime)+8 &&
					time.Unix(0, int64(binary.BigEndian.Uint64(k[len(prefixTime):]))).After(q.To.Add(timeSlack)) {
					break
				}
				rrn := string(k[len(prefixTime)+8:])
				if c := rrnClass(rrn); !seen[c] {
					seen[c] = true
					starts = append(starts, s.classStart(txn, append([]byte(nil), k...), c))
				}
			}
			it.Close()
			if len(starts) == 0 {
				return nil // nothing received since From
			}
		}
		return s.walkMerged(ctx, txn, gen, starts, &sk, func(rec *Record) bool {
			return v.visit(rec)
		}, func(rec *Record, by time.Duration) bool {
			return !q.To.IsZero() && rec.Received.After(q.To.Add(timeSlack+by))
		})
	}))
}

// classStart is where a time-bounded walk of RRN class c starts, given the first
// time index entry k of the class at or after the query's start: the class's
// previous entry. An entry names the first record of its second the indexer saw;
// records of the same second with lower RRNs (received first, their first write
// later: concurrent transactions, a cluster's write-ahead waiting for its
// acknowledgement) come before it, and after a pause in the class's traffic the
// entry may be the only one the query's slack reaches. Without an earlier entry the
// class is walked from its start.
func (s *Store) classStart(txn *badger.Txn, k []byte, c int) string {
	it := txn.NewIterator(badger.IteratorOptions{Reverse: true, Prefix: []byte(prefixTime)})
	defer it.Close()
	for it.Seek(k); it.ValidForPrefix([]byte(prefixTime)); it.Next() {
		key := it.Item().Key()
		if len(key) < len(prefixTime)+8 || string(key) == string(k) {
			continue
		}
		if rrn := string(key[len(prefixTime)+8:]); rrnClass(rrn) == c {
			return rrn
		}
	}
	return string(rune('0' + c))
}

// walkMerged walks each RRN class from its start RRN (to the class's end or until
// past says a record is beyond the query) and calls fn for the records of all the
// classes in receive order, until it returns false. past(rec, d) says whether rec
// is received more than d beyond the query's end (and its slack). A record with
// Written received beyond the query's end by up to writtenLag is skipped without
// ending its class's walk. A record it cannot read goes to sk: its receive time is
// unknown, so it is named wherever the walk meets it, possibly just outside the
// query's span (named once too often rather than left out unnamed).
func (s *Store) walkMerged(ctx context.Context, txn *badger.Txn, gen uint64, starts []string, sk *skipped, fn func(*Record) bool, past func(*Record, time.Duration) bool) error {
	type head struct {
		it  *badger.Iterator
		pfx []byte
		rec *Record
	}
	var heads []*head
	defer func() {
		for _, h := range heads {
			h.it.Close()
		}
	}()
	next := func(h *head, first bool) error {
		if !first {
			h.it.Next()
		}
		h.rec = nil
		for ; h.it.ValidForPrefix(h.pfx); h.it.Next() {
			item := h.it.Item()
			rrn := string(item.Key()[len(prefixRecord):])
			v, err := item.ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("journal: index entry %s: %w", rrn, err)
			}
			rec, err := s.load(txn, gen, rrn, v)
			if errors.Is(err, ErrNotFound) || sk.skip(err) {
				continue // removed by retention, or damaged: named at the end
			}
			if err != nil {
				return err
			}
			var lag time.Duration
			if !rec.Written.IsZero() {
				lag = writtenLag
			}
			if past(rec, lag) {
				return nil
			}
			if past(rec, 0) {
				continue // received after its RRN was taken, and after the query
			}
			h.rec = rec
			return nil
		}
		return nil
	}
	for _, from := range starts {
		pfx := []byte(prefixRecord + from[:1])
		h := &head{it: txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 100, Prefix: pfx}), pfx: pfx}
		heads = append(heads, h)
		h.it.Seek(recordKey(from))
		if err := next(h, true); err != nil {
			return err
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var min *head
		for _, h := range heads {
			if h.rec != nil && (min == nil || h.rec.Received.Before(min.rec.Received)) {
				min = h
			}
		}
		if min == nil {
			return nil
		}
		if !fn(min.rec) {
			return nil
		}
		if err := next(min, false); err != nil {
			return err
		}
	}
}

// walk calls fn for the records from RRN from on, in RRN order, until it returns false.
// A record it cannot read goes to sk.
func (s *Store) walk(ctx context.Context, txn *badger.Txn, gen uint64, from string, sk *skipped, fn func(*Record) bool) error {
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 100, Prefix: []byte(prefixRecord)})
	defer it.Close()
	for it.Seek(recordKey(from)); it.ValidForPrefix([]byte(prefixRecord)); it.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		item := it.Item()
		rrn := string(item.Key()[len(prefixRecord):])
		v, err := item.ValueCopy(nil)
		if err != nil {
			return fmt.Errorf("journal: index entry %s: %w", rrn, err)
		}
		rec, err := s.load(txn, gen, rrn, v)
		if errors.Is(err, ErrNotFound) || sk.skip(err) {
			continue // removed by retention, or damaged: named at the end
		}
		if err != nil {
			return err
		}
		if !fn(rec) {
			return nil
		}
	}
	return nil
}

func matches(r *Record, q Query) bool {
	return (q.TID == "" || r.TID == q.TID) && (q.MID == "" || r.MID == q.MID) &&
		(q.From.IsZero() || !r.Received.Before(q.From)) && (q.To.IsZero() || r.Received.Before(q.To))
}

// ParseTime reads a query time: RFC 3339, a date (YYYY-MM-DD: its midnight in loc,
// the acquirer's zone; nil is UTC), unix seconds, or a duration before now ("15m",
// "24h", "7d"; a leading minus, as `rules backtest` writes it, means the same).
func ParseTime(s string, now time.Time, loc *time.Location) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if loc == nil {
		loc = time.UTC
	}
	if t, err := time.ParseInLocation("2006-01-02", s, loc); err == nil {
		return t, nil
	}
	if d, ok := agoDuration(s); ok {
		return now.Add(-d), nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	return time.Time{}, fmt.Errorf("time %q: want RFC 3339, YYYY-MM-DD, unix seconds or a duration before now like 24h or 7d", s)
}

// agoDuration reads a duration before now: Go's ("90m", "24h") or whole days ("7d"),
// with or without a leading minus.
func agoDuration(s string) (time.Duration, bool) {
	s = strings.TrimPrefix(s, "-")
	if s == "" || s[0] == '-' || s[0] == '+' {
		return 0, false
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 100*365 {
			return 0, false
		}
		return time.Duration(n) * 24 * time.Hour, true
	}
	d, err := time.ParseDuration(s)
	return d, err == nil && d >= 0
}

// ScanFrom calls fn for every record with an RRN at or above rrn, in RRN order. A
// record it cannot read is skipped and named at the end (*UnreadableError), as by
// Scan.
func (s *Store) ScanFrom(ctx context.Context, rrn string, fn func(*Record) bool) error {
	if err := s.catchUp(ctx); err != nil {
		return err
	}
	gen := s.ix.applied.Load()
	var sk skipped
	return sk.result(s.db.View(func(txn *badger.Txn) error { return s.walk(ctx, txn, gen, rrn, &sk, fn) }))
}

// Node names the node this store belongs to as Record.OwedBy names it: its RRN
// prefix (Options.RRNPrefix, a cluster node's number), "" for a single switch.
func (s *Store) Node() string { return s.opts.RRNPrefix }

// ScanOwed calls fn, in RRN order, for every record not reversed whose OwedBy is
// node, whichever node's record it is: the reversal advices node owes (journal
// states, StateReversalOwed). It reads the index j/O/<node>/, which holds only such
// records (written with their versions, and left when one is reversed), so it costs
// nothing on a journal that owes nothing. Nothing for node "".
func (s *Store) ScanOwed(ctx context.Context, node string, fn func(*Record) bool) error {
	if node == "" {
		return nil
	}
	if err := s.catchUp(ctx); err != nil {
		return err
	}
	prefix := owedKey(node, "")
	var rrns []string
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			rrns = append(rrns, string(it.Item().Key()[len(prefix):]))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("journal: records owed by node %q: %w", node, err)
	}
	var sk skipped
	for _, rrn := range rrns {
		if err := ctx.Err(); err != nil {
			return sk.result(err)
		}
		rec, err := s.Get(rrn)
		switch {
		case errors.Is(err, ErrNotFound):
			continue // purged
		case sk.skip(err):
			continue // damaged: named at the end
		case err != nil:
			return sk.result(fmt.Errorf("journal: record %s owed by node %q: %w", rrn, node, err))
		case rec.OwedBy != node || rec.Reversed():
			continue // a newer version, not indexed yet, settled it
		}
		if !fn(rec) {
			return sk.result(nil)
		}
	}
	return sk.result(nil)
}

// LastReceived returns the receive time of the newest record (zero when empty).
func (s *Store) LastReceived() (time.Time, error) {
	if err := s.catchUp(context.Background()); err != nil {
		return time.Time{}, err
	}
	var t time.Time
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Reverse: true, Prefix: []byte(prefixTime)})
		defer it.Close()
		seek := append([]byte(prefixTime), 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF)
		it.Seek(seek)
		if it.ValidForPrefix([]byte(prefixTime)) {
			k := it.Item().Key()
			if len(k) >= len(prefixTime)+8 {
				t = time.Unix(0, int64(binary.BigEndian.Uint64(k[len(prefixTime):]))).UTC()
			}
		}
		return nil
	})
	return t, err
}

// ScanLate calls fn, once each, for every record with a late change (Record.Written,
// its reversal, or its approval, more than LateAfter after it was received) at a
// time in [from, to), in the order of those times: what a look for records received
// lately does not find. It reads the index j/L/, which holds only such changes (rare:
// recovery after a long stop, payments journaled by the sweep of owed orders), so its
// cost is that of the records it returns.
func (s *Store) ScanLate(ctx context.Context, from, to time.Time, fn func(*Record) bool) error {
	if err := s.catchUp(ctx); err != nil {
		return err
	}
	start, end := timeKey(prefixLate, from, ""), timeKey(prefixLate, to, "")
	var rrns []string
	seen := map[string]bool{}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixLate)})
		defer it.Close()
		for it.Seek(start); it.ValidForPrefix([]byte(prefixLate)); it.Next() {
			k := it.Item().Key()
			if bytes.Compare(k, end) >= 0 {
				break
			}
			if rrn := string(k[len(prefixLate)+8:]); !seen[rrn] {
				seen[rrn] = true
				rrns = append(rrns, rrn)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("journal: records changed late from %s to %s: %w", from.Format(time.RFC3339), to.Format(time.RFC3339), err)
	}
	var sk skipped
	for _, rrn := range rrns {
		if err := ctx.Err(); err != nil {
			return sk.result(err)
		}
		rec, err := s.Get(rrn)
		switch {
		case errors.Is(err, ErrNotFound):
			continue // purged
		case sk.skip(err):
			continue // damaged: named at the end
		case err != nil:
			return sk.result(fmt.Errorf("journal: record %s changed late: %w", rrn, err))
		}
		if !fn(rec) {
			return sk.result(nil)
		}
	}
	return sk.result(nil)
}
