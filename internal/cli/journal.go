package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/server"
)

func runJournal(env *Env, args []string) int {
	fs := newFlags(env, "journal", "[--tid T] [--mid M] [--rrn R] [--from T] [--to T] [--limit N] [--json] [--data DIR | --admin URL]")
	tid := fs.String("tid", "", "terminal ID")
	mid := fs.String("mid", "", "merchant ID")
	rrn := fs.String("rrn", "", "retrieval reference number")
	from := fs.String("from", "", "from time: RFC 3339, a date YYYY-MM-DD or date-time YYYY-MM-DDTHH:MM in the acquirer's zone ($SWITCHYARD_TIMEZONE, default Asia/Shanghai), unix seconds, or a duration before now (24h)")
	to := fs.String("to", "", "to time (exclusive), same forms")
	limit := fs.Int("limit", 100, "at most this many records (0 = all)")
	asJSON := fs.Bool("json", false, "print JSON lines, with every state change")
	dataDir := fs.String("data", "", "read a stopped switch's data directory instead of asking a running one")
	adminURL := fs.String("admin", "http://127.0.0.1:8080", "admin URL of the running switch")
	token := fs.String("token", "", "admin bearer token (default $SWITCHYARD_TOKEN)")
	if ok, code := parse(fs, args); !ok {
		return code
	}
	loc, err := acquirerZone(env)
	if err != nil {
		return fail(env, "journal: %v", err)
	}
	q, err := server.QueryFromValues(func(k string) string {
		return map[string]string{"tid": *tid, "mid": *mid, "rrn": *rrn, "from": inZone(*from, loc), "to": inZone(*to, loc)}[k]
	}, time.Now())
	if err != nil {
		return fail(env, "journal: %v", err)
	}
	q.Limit = *limit
	var recs []*journal.Record
	if *dataDir != "" {
		db, err := server.OpenDB(*dataDir, zerolog.Nop())
		if err != nil {
			return fail(env, "journal: %v", err)
		}
		defer db.Close()
		j, err := journal.Open(db, journal.Options{Dir: server.JournalDir(*dataDir)})
		if err != nil {
			return fail(env, "journal: %v", err)
		}
		defer j.Close()
		if err := j.Scan(env.Ctx, q, func(r *journal.Record) bool { recs = append(recs, r); return true }); err != nil {
			return fail(env, "journal: %v", err)
		}
	} else {
		tok := *token
		if tok == "" {
			tok = env.Getenv("SWITCHYARD_TOKEN")
		}
		recs, err = fetchJournal(env.Ctx, *adminURL, tok, q)
		if err != nil {
			return fail(env, "journal: %v", err)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		for _, r := range recs {
			r.Received = r.Received.In(loc)
			for i := range r.Events {
				r.Events[i].At = r.Events[i].At.In(loc)
			}
			_ = enc.Encode(r)
		}
		return 0
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "TIME (%s)\tRRN\tMTI\tTYPE\tTID\tMID\tSTAN\tPAN\tAMOUNT\tRC\tAUTH\tBY\tREASON\tSTATE\tISSUER\n", loc)
	for _, r := range recs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Received.In(loc).Format(localTimeLayout),
			r.RRN, r.MTI, r.Type, r.TID, r.MID, r.STAN, r.PANMasked, r.Amount, r.RC, r.AuthCode, r.DecidedBy, r.Reason, r.State, r.Issuer)
	}
	_ = tw.Flush()
	fmt.Fprintf(env.Stderr, "%d record(s); times in %s, the acquirer's zone (settle --date takes its days)\n", len(recs), loc)
	return 0
}

func fetchJournal(ctx context.Context, base, token string, q journal.Query) ([]*journal.Record, error) {
	v := []string{}
	add := func(k, val string) {
		if val != "" {
			v = append(v, k+"="+val)
		}
	}
	add("tid", q.TID)
	add("mid", q.MID)
	add("rrn", q.RRN)
	if !q.From.IsZero() {
		add("from", q.From.Format(time.RFC3339Nano))
	}
	if !q.To.IsZero() {
		add("to", q.To.Format(time.RFC3339Nano))
	}
	add("limit", fmt.Sprint(q.Limit))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/api/v1/journal?"+strings.Join(v, "&"), nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w (is the switch running? for a stopped switch use --data DIR)", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("admin API: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	var out []*journal.Record
	dec := json.NewDecoder(resp.Body)
	for dec.More() {
		var r journal.Record
		if err := dec.Decode(&r); err != nil {
			return nil, fmt.Errorf("decode journal answer: %w", err)
		}
		if r.RRN == "" {
			continue
		}
		out = append(out, &r)
	}
	return out, nil
}
