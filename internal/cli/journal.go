package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/cli/apiclient"
	"github.com/switchyard/switchyard/internal/cli/kit"
	"github.com/switchyard/switchyard/switch/api"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/server"
)

func runJournal(env *Env, args []string) int {
	conn, args, err := kit.ExtractConn(args, env.Getenv)
	if err != nil {
		return fail(env, "journal: %v", err)
	}
	fs := newFlags(env, "journal", "[--tid T] [--mid M] [--rrn R] [--from T] [--to T] [--limit N] [--json] [--data DIR | --admin URL --token T]\n"+
		"(--data DIR reads a stopped switch's data directory; otherwise the running switch at --admin URL, default $SWITCHYARD_ADMIN\n"+
		"or "+kit.DefaultAdminURL+", with --token T, default $SWITCHYARD_TOKEN)\n"+
		"exit status 1 after printing the records when some could not be read (their frames in the log damaged): they are named on standard error")
	tid := fs.String("tid", "", "terminal ID")
	mid := fs.String("mid", "", "merchant ID")
	rrn := fs.String("rrn", "", "retrieval reference number")
	from := fs.String("from", "", "from time: RFC 3339, a date YYYY-MM-DD or date-time YYYY-MM-DDTHH:MM in the acquirer's zone (the switch's timezone; with --data, or when set, $SWITCHYARD_TIMEZONE, default Asia/Shanghai), unix seconds, or a duration before now (24h)")
	to := fs.String("to", "", "to time (exclusive), same forms")
	limit := fs.Int("limit", 100, "at most this many records (0 = all)")
	asJSON := fs.Bool("json", false, "print JSON lines, with every state change")
	if ok, code := parseFlagsOnly(env, fs, args); !ok {
		return code
	}
	// Dates are the switch's days: its timezone, read from the switch (--admin), or
	// $SWITCHYARD_TIMEZONE (--data, or set: switchZone).
	var client *apiclient.Client
	loc, zoneFrom := (*time.Location)(nil), ""
	if conn.DataDir == "" {
		client = conn.Client()
		loc, zoneFrom, err = switchZone(env, client)
	} else {
		loc, err = acquirerZone(env)
		zoneFrom = zoneFromDefault
		if env.Getenv("SWITCHYARD_TIMEZONE") != "" {
			zoneFrom = zoneFromEnv
		}
	}
	if err != nil {
		return fail(env, "journal: %v", err)
	}
	q, err := api.QueryFromValues(func(k string) string {
		return map[string]string{"tid": *tid, "mid": *mid, "rrn": *rrn, "from": inZone(*from, loc), "to": inZone(*to, loc)}[k]
	}, time.Now(), loc)
	if err != nil { // a flag's value: a bad command line
		fail(env, "journal: %v", err)
		return kit.ExitUsage
	}
	if *limit < 0 {
		fail(env, "journal: --limit %d: want 0 (all) or more", *limit)
		return kit.ExitUsage
	}
	q.Limit = *limit
	// With --json each record is written as it arrives, so that an export of a
	// whole day (--limit 0) holds one record at a time, not the day, in memory
	// (until the third release of 6 December 2026 it gathered every record first).
	// The table aligns its columns over all its rows, and gathers them.
	var recs []*journal.Record
	var unreadable []journal.Unreadable
	enc := json.NewEncoder(env.Stdout)
	take := func(r *journal.Record) error {
		if !*asJSON {
			recs = append(recs, r)
			return nil
		}
		r.Received = r.Received.In(loc)
		for i := range r.Events {
			r.Events[i].At = r.Events[i].At.In(loc)
		}
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("writing record %s: %w", r.RRN, err)
		}
		return nil
	}
	if conn.DataDir != "" {
		if err := existingDataDir(conn.DataDir); err != nil {
			return fail(env, "journal: %v", err)
		}
		db, err := server.OpenDB(conn.DataDir, zerolog.Nop())
		if err != nil {
			return fail(env, "journal: %v", err)
		}
		defer db.Close()
		j, err := journal.Open(db, journal.Options{Dir: server.JournalDir(conn.DataDir)})
		if err != nil {
			return fail(env, "journal: %v", err)
		}
		defer j.Close()
		var werr error
		err = j.Scan(env.Ctx, q, func(r *journal.Record) bool { werr = take(r); return werr == nil })
		if unreadable, err = journal.Unreadables(err); err != nil || werr != nil {
			return fail(env, "journal: %v", errors.Join(err, werr))
		}
	} else {
		err = streamJournal(env.Ctx, client, journalValues(q), take)
		if unreadable, err = journal.Unreadables(err); err != nil {
			return fail(env, "journal: %v", err)
		}
	}
	// Records the journal could not read were skipped: named after all the others,
	// and the status says so (until the fifteenth release the first one stopped
	// the query, and nothing was printed).
	skipped := func() int {
		if len(unreadable) == 0 {
			return 0
		}
		fmt.Fprintf(env.Stderr, "switchyard journal: %d record(s) could not be read (their frames in the switch's log damaged) and are left out; check the disk, restore the data directory from its backup to read them:\n", len(unreadable))
		for _, u := range unreadable {
			fmt.Fprintf(env.Stderr, "  RRN %s: %s at offset %d: %s\n", kit.ForTerminal(u.RRN), kit.ForTerminal(u.File), u.Offset, kit.ForTerminal(u.Reason))
		}
		return kit.ExitError
	}
	if *asJSON {
		return skipped()
	}
	// kit.Table escapes control characters: a terminal's TID or an issuer's
	// authorization code is whatever bytes their messages carried.
	rows := make([][]string, 0, len(recs))
	for _, r := range recs {
		rows = append(rows, []string{r.Received.In(loc).Format(localTimeLayout), r.RRN, r.MTI, string(r.Type), r.TID, r.MID, r.STAN, r.PANMasked,
			strconv.FormatInt(r.Amount, 10), r.RC, r.AuthCode, string(r.DecidedBy), r.Reason, string(r.State), r.Issuer})
	}
	kit.Table(env.Stdout, fmt.Sprintf("TIME (%s)\tRRN\tMTI\tTYPE\tTID\tMID\tSTAN\tPAN\tAMOUNT\tRC\tAUTH\tBY\tREASON\tSTATE\tISSUER", loc), rows)
	fmt.Fprintf(env.Stderr, "%d record(s); times in %s (%s), the acquirer's zone (settle --date takes its days)\n", len(recs), loc, zoneFrom)
	if q.Limit > 0 && len(recs) == q.Limit {
		fmt.Fprintf(env.Stderr, "the oldest %d that match: more may follow (narrow with --from/--to, or --limit 0 for all)\n", q.Limit)
	}
	return skipped()
}

// journalValues is the query string of the journal API for q.
func journalValues(q journal.Query) url.Values {
	v := url.Values{}
	for k, val := range map[string]string{"tid": q.TID, "mid": q.MID, "rrn": q.RRN} {
		if val != "" {
			v.Set(k, val)
		}
	}
	if !q.From.IsZero() {
		v.Set("from", q.From.Format(time.RFC3339Nano))
	}
	if !q.To.IsZero() {
		v.Set("to", q.To.Format(time.RFC3339Nano))
	}
	v.Set("limit", strconv.Itoa(q.Limit))
	return v
}

// streamJournal reads the journal API's answer to query v, one JSON line per record,
// and calls fn with each record. The API reports a failure in the middle of the stream
// (after the 200 status) as a line {"error": "..."}: that line is the error returned,
// never a record skipped in silence, so a partial answer is not taken for a full one.
// A line that also names records as "unreadable" (api.UnreadableLine: damaged in the
// switch's log, every other record sent) is returned as a *journal.UnreadableError.
func streamJournal(ctx context.Context, c *apiclient.Client, v url.Values, fn func(*journal.Record) error) error {
	return c.Stream(ctx, "/api/v1/journal?"+v.Encode(), func(line json.RawMessage) error {
		var r journal.Record
		if err := json.Unmarshal(line, &r); err != nil {
			return fmt.Errorf("journal record: %w", err)
		}
		if r.RRN == "" {
			var eb api.UnreadableLine
			if err := json.Unmarshal(line, &eb); err != nil || eb.Error == "" {
				return fmt.Errorf("journal answer: a line that is neither a record nor an error: %.200s", line)
			}
			if len(eb.Unreadable) > 0 {
				return &journal.UnreadableError{Records: eb.Unreadable} // all the others came
			}
			return fmt.Errorf("the switch failed while reading the journal: %s", eb.Error)
		}
		return fn(&r)
	})
}
