package cli

import (
	"fmt"
	"net/url"
	"strconv"

	"github.com/switchyard/switchyard/internal/cli/apiclient"
	"github.com/switchyard/switchyard/internal/cli/kit"
	"github.com/switchyard/switchyard/switch/api"
	"github.com/switchyard/switchyard/switch/saf"
	"github.com/switchyard/switchyard/switch/server"
)

func init() {
	registerTool("saf", "store-and-forward: list, requeue and resolve parked advices", "Usage:\n"+safUsage, []string{"parked"}, runSAF)
}

const safUsage = `switchyard saf parked list [--issuer ID] [--json]
switchyard saf parked list --resolved|--requeued [--issuer ID] [--after ID] [--limit N] [--json]
                                                         (the actions done: who, when, the note; by id, 100 a page)
switchyard saf parked requeue ID [--json]                (operators: back in its issuer's queue, as a repeat)
switchyard saf parked resolve ID --note TEXT [--json]    (operators: settled with the issuer out of band; never sent)
  ID is the id the list shows; each action is recorded in the oplog (saf.requeue, saf.resolve)
  with --admin URL --token T (default $SWITCHYARD_TOKEN), or --data DIR (list only)`

// runSAF runs "saf parked list|requeue|resolve" against the admin API.
func runSAF(env *Env, args []string) int {
	c, rest, done, err := adminClient(env, args)
	if err != nil {
		return fail(env, "saf: %v", err)
	}
	defer done()
	if len(rest) < 2 || rest[0] != "parked" {
		fmt.Fprintln(env.Stderr, "Usage:\n"+safUsage)
		return kit.ExitUsage
	}
	sub, rest := rest[1], rest[2:]
	fs := newFlags(env, "saf parked "+sub, "")
	fs.Usage = func() { fmt.Fprintln(env.Stderr, "Usage:\n"+safUsage+"\n\nFlags:"); fs.PrintDefaults() }
	asJSON := fs.Bool("json", false, "print JSON")
	switch sub {
	case "list":
		issuer := fs.String("issuer", "", "only this issuer's parked advices")
		resolved := fs.Bool("resolved", false, "the advices resolved: who, when, the note")
		requeued := fs.Bool("requeued", false, "the advices requeued: who, when, the repeat's id")
		after := fs.Uint64("after", 0, "with --resolved or --requeued: the advices whose id is above (the last id of the page before)")
		limit := fs.Int("limit", 0, "with --resolved or --requeued: at most this many (default 100, at most 10000)")
		if ok, code := parseFlagsOnly(env, fs, rest); !ok {
			return code
		}
		if *resolved || *requeued {
			if *resolved && *requeued {
				return fail(env, "saf parked list: --resolved or --requeued, not both")
			}
			state := "resolved"
			if *requeued {
				state = "requeued"
			}
			return listActions(env, c, state, *issuer, *after, *limit, *asJSON)
		}
		if *after != 0 || *limit != 0 {
			return fail(env, "saf parked list: --after and --limit page the lists of --resolved and --requeued")
		}
		var ps []server.ParkedAdvice
		if err := c.Do(env.Ctx, "GET", "/api/v1/saf/parked?issuer="+url.QueryEscape(*issuer), nil, &ps); err != nil {
			return fail(env, "saf parked list: %v", err)
		}
		if *asJSON {
			return printJSON(env, ps)
		}
		loc, err := acquirerZone(env)
		if err != nil {
			return fail(env, "saf parked list: %v", err)
		}
		rows := make([][]string, 0, len(ps)) // kit.Table escapes control characters (the last error quotes the issuer's answer)
		for _, p := range ps {
			rows = append(rows, []string{strconv.FormatUint(p.ID, 10), p.Issuer, p.MTI, p.RRN, dash(p.PAN), dash(p.Amount), strconv.Itoa(p.Tries),
				strconv.Itoa(p.Unacked), kit.LocalTime(p.Parked, loc), p.LastErr})
		}
		kit.Table(env.Stdout, "ID\tISSUER\tMTI\tRRN\tPAN\tAMOUNT\tTRIES\tUNACKED\tPARKED\tLAST ERROR", rows)
		return 0
	case "requeue", "resolve":
		note := ""
		if sub == "resolve" {
			fs.StringVar(&note, "note", "", "how the advice was settled with the issuer (required)")
		}
		pos, ok, code := parseInterleaved(fs, rest)
		if !ok {
			return code
		}
		if len(pos) != 1 {
			return fail(env, "saf parked %s takes one parked advice id (switchyard saf parked list)", sub)
		}
		id, err := strconv.ParseUint(pos[0], 10, 64)
		if err != nil || id == 0 {
			return fail(env, "saf parked %s: id %q: want the number the list shows", sub, pos[0])
		}
		if sub == "resolve" && note == "" {
			return fail(env, "saf parked resolve %d: --note is required: how it was settled with the issuer", id)
		}
		var body any
		if sub == "resolve" {
			body = api.ResolveParked{Note: note}
		}
		var res server.ParkedActionResult
		if err := c.Do(env.Ctx, "POST", fmt.Sprintf("/api/v1/saf/parked/%d/%s", id, sub), body, &res); err != nil {
			return fail(env, "saf parked %s %d: %v", sub, id, err)
		}
		if *asJSON {
			return printJSON(env, res)
		}
		msg := fmt.Sprintf("parked advice %d (%s %s of %s, issuer %s) %sd by %s", id, res.Advice.MTI, res.Advice.RRN, dash(res.Advice.PAN), res.Advice.Issuer, res.Action, res.By)
		if res.Requeued != 0 {
			msg += fmt.Sprintf("; queued again as %d, sent as a repeat", res.Requeued)
		}
		fmt.Fprintln(env.Stdout, kit.ForTerminal(msg)+fmt.Sprintf(" (oplog entry %d)", res.OplogSeq))
		return 0
	}
	fmt.Fprintf(env.Stderr, "switchyard saf parked: unknown subcommand %q\nUsage:\n%s\n", sub, safUsage)
	return kit.ExitUsage
}

// listActions prints the records of the actions done on parked advices (state
// resolved or requeued): GET /api/v1/saf/parked?state=..., one page, and on stderr
// how to ask for the next one when the page is full.
func listActions(env *Env, c *apiclient.Client, state, issuer string, after uint64, limit int, asJSON bool) int {
	q := url.Values{"state": {state}, "issuer": {issuer}}
	if after != 0 {
		q.Set("after", strconv.FormatUint(after, 10))
	}
	if limit != 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var rs []server.ParkedActionRecord
	if err := c.Do(env.Ctx, "GET", "/api/v1/saf/parked?"+q.Encode(), nil, &rs); err != nil {
		return fail(env, "saf parked list --%s: %v", state, err)
	}
	if asJSON {
		return printJSON(env, rs)
	}
	loc, err := acquirerZone(env)
	if err != nil {
		return fail(env, "saf parked list --%s: %v", state, err)
	}
	rows := make([][]string, 0, len(rs)) // kit.Table escapes control characters (the note is an operator's text)
	for _, r := range rs {
		requeued := "-"
		if r.Requeued != 0 {
			requeued = strconv.FormatUint(r.Requeued, 10)
		}
		rows = append(rows, []string{strconv.FormatUint(r.ID, 10), r.Advice.Issuer, r.Advice.MTI, r.Advice.RRN, dash(r.Advice.PAN), dash(r.Advice.Amount),
			r.Action, r.By, kit.LocalTime(r.At, loc), requeued, dash(r.Note)})
	}
	kit.Table(env.Stdout, "ID\tISSUER\tMTI\tRRN\tPAN\tAMOUNT\tACTION\tBY\tAT\tREQUEUED AS\tNOTE", rows)
	if n := len(rs); n > 0 && (n == limit || limit == 0 && n == saf.DefaultActionLimit) {
		fmt.Fprintf(env.Stderr, "more may follow: --after %d\n", rs[n-1].ID)
	}
	return 0
}
