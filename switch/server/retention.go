package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/switch/sched"
)

// TaskJournalRetention deletes the journal's records older than params.days
// (journal.Store.Purge). Registered local: in a cluster every node purges its own
// copy of the journal.
const TaskJournalRetention = "journal.retention"

// minRetentionDays is the shortest retention the task accepts: the recent days hold
// what operators, disputes and the settlement files still need.
const minRetentionDays = 7

// retentionDays reads the task's params.days.
func retentionDays(p map[string]string) (int, error) {
	v := p["days"]
	if v == "" {
		return 0, fmt.Errorf("params.days: how many days of the journal to keep (at least %d)", minRetentionDays)
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < minRetentionDays {
		return 0, fmt.Errorf("params.days %q: want a whole number of days, at least %d", v, minRetentionDays)
	}
	return n, nil
}

// retentionTask returns the journal.retention task: it purges what was received more
// than params.days before the slot (or now, for task run-now), counts it in
// switchyard_journal_purged_{records,segments,bytes}_total and logs it.
func (s *Server) retentionTask() sched.Func {
	recs := prometheus.NewCounter(prometheus.CounterOpts{Name: "switchyard_journal_purged_records_total",
		Help: "Journal records removed by retention (task journal.retention)."})
	segs := prometheus.NewCounter(prometheus.CounterOpts{Name: "switchyard_journal_purged_segments_total",
		Help: "Journal log segment files removed by retention."})
	bytes := prometheus.NewCounter(prometheus.CounterOpts{Name: "switchyard_journal_purged_bytes_total",
		Help: "Bytes of journal log segment files removed by retention."})
	s.Metrics.Registry.MustRegister(recs, segs, bytes)
	return func(ctx context.Context, p map[string]string) (string, error) {
		days, err := retentionDays(p)
		if err != nil {
			return "", err
		}
		if s.Journal == nil {
			return "", errors.New("no journal open")
		}
		at := sched.Slot(ctx)
		if at.IsZero() {
			at = time.Now()
			if s.cfg.Clock != nil {
				at = s.cfg.Clock()
			}
		}
		before := at.AddDate(0, 0, -days)
		res, err := s.Journal.Purge(ctx, before)
		recs.Add(float64(res.Records))
		segs.Add(float64(res.Segments))
		bytes.Add(float64(res.Bytes))
		s.log.Info().Str("component", "journal").Time("before", before).Int("records", res.Records).Int("segments", res.Segments).
			Int64("bytes", res.Bytes).Uint32("first_kept", res.FirstKept).Str("stopped_by", res.StoppedBy).
			Int("dup_filter_keys", res.FilterKeys).Uint64("dup_filter_bytes", res.FilterBytes).Err(err).Msg("journal retention")
		out := fmt.Sprintf("before %s: %d records, %d segments (%d bytes) removed; oldest segment kept %d (%s)",
			before.UTC().Format(time.RFC3339), res.Records, res.Segments, res.Bytes, res.FirstKept, res.StoppedBy)
		return out, err
	}
}
