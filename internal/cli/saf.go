package cli

import (
	"fmt"
	"net/url"
	"strconv"

	"github.com/switchyard/switchyard/internal/cli/kit"
	"github.com/switchyard/switchyard/switch/api"
	"github.com/switchyard/switchyard/switch/server"
)

func init() {
	registerTool("saf", "store-and-forward: list, requeue and resolve parked advices", "Usage:\n"+safUsage, []string{"parked"}, runSAF)
}

const safUsage = `switchyard saf parked list [--issuer ID] [--json]
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
		if ok, code := parseFlagsOnly(env, fs, rest); !ok {
			return code
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
