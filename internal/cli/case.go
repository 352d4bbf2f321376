package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/cli/kit"
	"github.com/switchyard/switchyard/switch/cases"
)

func init() {
	registerTool("case", "review cases: list, show, assign and decide what the rules sent to review", "Usage:\n"+caseUsage,
		[]string{"list", "show", "assign", "decide"}, runCase)
}

const caseUsage = `switchyard case list [--status open|assigned|decided|all] [--action review|alert] [--assigned-to NAME] [--tid ID] [--mid ID] [--rrn RRN] [--limit N] [--json]
switchyard case show CASE-ID [--json]
switchyard case assign CASE-ID [--to ANALYST] [--note TEXT]      (default: to yourself)
switchyard case decide CASE-ID --verdict confirmed-fraud|cleared [--note TEXT]
  with --admin URL --token T (default $SWITCHYARD_TOKEN), or --data DIR`

// parseInterleaved parses flags before and after the positional arguments
// (`case show CASE-1 --json` as well as `case show --json CASE-1`).
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, bool, int) {
	var pos []string
	for {
		if ok, code := parse(fs, args); !ok {
			return nil, false, code
		}
		if fs.NArg() == 0 {
			return pos, true, 0
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func runCase(env *Env, args []string) int {
	c, rest, done, err := adminClient(env, args)
	if err != nil {
		return fail(env, "case: %v", err)
	}
	defer done()
	if len(rest) == 0 || rest[0] == "-h" || rest[0] == "--help" || rest[0] == "help" {
		fmt.Fprintln(env.Stderr, "Usage:\n"+caseUsage)
		if len(rest) == 0 {
			return 2
		}
		return 0
	}
	sub, rest := rest[0], rest[1:]
	fs := newFlags(env, "case "+sub, "")
	fs.Usage = func() { fmt.Fprintln(env.Stderr, "Usage:\n"+caseUsage+"\n\nFlags:"); fs.PrintDefaults() }
	asJSON := fs.Bool("json", false, "print JSON")
	one := func(pos []string) (string, bool) {
		if len(pos) != 1 {
			fmt.Fprintf(env.Stderr, "switchyard: case %s wants one case ID, like CASE-12\n", sub)
			return "", false
		}
		return url.PathEscape(pos[0]), true
	}
	show := func(k *cases.Case) int {
		if *asJSON {
			return printJSON(env, k)
		}
		loc, err := acquirerZone(env)
		if err != nil {
			return fail(env, "case %s: %v", sub, err)
		}
		printCase(env, k, loc)
		return 0
	}
	switch sub {
	case "list":
		status := fs.String("status", "open", "open, assigned, decided or all")
		action := fs.String("action", "", "only cases the rules opened with this action (review or alert)")
		to := fs.String("assigned-to", "", "only cases assigned to this analyst")
		tid := fs.String("tid", "", "only this terminal")
		mid := fs.String("mid", "", "only this merchant")
		rrn := fs.String("rrn", "", "the case of this transaction")
		limit := fs.Int("limit", 0, "the newest this many (default 1000)")
		pos, ok, code := parseInterleaved(fs, rest)
		if !ok {
			return code
		}
		if len(pos) > 0 {
			return fail(env, "case list takes no arguments, got %q", pos)
		}
		q := url.Values{}
		for k, v := range map[string]string{"action": *action, "assigned_to": *to, "tid": *tid, "mid": *mid, "rrn": *rrn} {
			if v != "" {
				q.Set(k, v)
			}
		}
		if *status != "all" && *rrn == "" {
			q.Set("status", *status)
		}
		if *limit > 0 {
			q.Set("limit", fmt.Sprint(*limit))
		}
		var out []cases.Case
		if err := c.Do(env.Ctx, "GET", "/api/v1/cases?"+q.Encode(), nil, &out); err != nil {
			return fail(env, "case list: %v", err)
		}
		if *asJSON {
			return printJSON(env, out)
		}
		loc, err := acquirerZone(env)
		if err != nil {
			return fail(env, "case list: %v", err)
		}
		var rows [][]string // kit.Table escapes control characters (a terminal's TID is what its message carried)
		for _, k := range out {
			verdict := "-"
			if k.Decision != nil {
				verdict = string(k.Decision.Verdict)
			}
			rows = append(rows, []string{k.ID, string(k.Status), string(k.Action), k.Rule, k.RRN,
				kit.LocalTime(k.Time, loc), k.TID, dash(k.MID), k.PANMasked, strconv.FormatInt(k.Amount, 10), dash(k.AssignedTo), verdict})
		}
		kit.Table(env.Stdout, "ID\tSTATUS\tACTION\tRULE\tRRN\tTIME\tTERMINAL\tMERCHANT\tPAN\tAMOUNT\tASSIGNED\tVERDICT", rows)
		return 0
	case "show":
		pos, ok, code := parseInterleaved(fs, rest)
		if !ok {
			return code
		}
		id, ok := one(pos)
		if !ok {
			return 2
		}
		var k cases.Case
		if err := c.Do(env.Ctx, "GET", "/api/v1/cases/"+id, nil, &k); err != nil {
			return fail(env, "case show: %v", err)
		}
		return show(&k)
	case "assign":
		to := fs.String("to", "", "the analyst (default: yourself)")
		note := fs.String("note", "", "why")
		pos, ok, code := parseInterleaved(fs, rest)
		if !ok {
			return code
		}
		id, ok := one(pos)
		if !ok {
			return 2
		}
		var k cases.Case
		if err := c.Do(env.Ctx, "POST", "/api/v1/cases/"+id+"/assign", cases.AssignRequest{To: *to, Note: *note}, &k); err != nil {
			return fail(env, "case assign: %v", err)
		}
		if *asJSON {
			return printJSON(env, &k)
		}
		fmt.Fprintf(env.Stdout, "%s assigned to %s\n", kit.ForTerminal(k.ID), kit.ForTerminal(k.AssignedTo))
		return 0
	case "decide":
		verdict := fs.String("verdict", "", "confirmed-fraud (deny-list the card, open a merchant incident) or cleared")
		note := fs.String("note", "", "what you found")
		pos, ok, code := parseInterleaved(fs, rest)
		if !ok {
			return code
		}
		id, ok := one(pos)
		if !ok {
			return 2
		}
		if *verdict == "" {
			return fail(env, "case decide: --verdict confirmed-fraud or --verdict cleared is required")
		}
		var k cases.Case
		if err := c.Do(env.Ctx, "POST", "/api/v1/cases/"+id+"/decide", cases.DecideRequest{Verdict: cases.Verdict(*verdict), Note: *note}, &k); err != nil {
			return fail(env, "case decide: %v", err)
		}
		if *asJSON {
			return printJSON(env, &k)
		}
		d := k.Decision
		fmt.Fprintf(env.Stdout, "%s %s by %s", k.ID, d.Verdict, d.By)
		if d.DenyListed {
			fmt.Fprintf(env.Stdout, "; card %s on the deny list", k.CardHash)
		}
		if d.Incident != "" {
			fmt.Fprintf(env.Stdout, "; merchant incident %s", d.Incident)
		}
		fmt.Fprintln(env.Stdout)
		return 0
	}
	fmt.Fprintf(env.Stderr, "switchyard: case: unknown subcommand %q\nUsage:\n%s\n", sub, caseUsage)
	return 2
}

func printJSON(env *Env, v any) int {
	enc := json.NewEncoder(env.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fail(env, "%v", err)
	}
	return 0
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// printCase shows a case for people: the transaction, the rules that hit with the
// values they saw, the assignment and the decision; times in loc, the acquirer's zone.
//
// Every text value is shown as kit.ForTerminal makes it: a terminal's TID, the
// values the rules saw and the notes are what a terminal's message or a person
// wrote, and an escape sequence among them must not act on the terminal.
func printCase(env *Env, k *cases.Case, loc *time.Location) {
	w := env.Stdout
	esc := kit.ForTerminal
	fmt.Fprintf(w, "%s %s (opened %s by %s %s", esc(k.ID), k.Status, kit.LocalTime(k.OpenedAt, loc), k.Action, esc(k.Rule))
	if k.Reason != "" {
		fmt.Fprintf(w, ", reason %s", esc(k.Reason))
	}
	fmt.Fprintf(w, ", score %d, rules %s)\n", k.Score, esc(dash(k.RuleSet)))
	fmt.Fprintf(w, "RRN %s at %s: %s %s, amount %d %s, terminal %s, merchant %s, card %s (hash %s)\n", esc(k.RRN),
		kit.LocalTime(k.Time, loc), esc(dash(k.Type)), esc(k.MTI), k.Amount, esc(k.Currency), esc(k.TID), esc(dash(k.MID)), esc(k.PANMasked), esc(k.CardHash))
	for _, h := range k.Hits {
		fmt.Fprintf(w, "  HIT %s %s %s", esc(h.Rule), h.Mode, h.Action)
		if h.File != "" {
			fmt.Fprintf(w, " (%s:%d)", esc(h.File), h.Line)
		}
		if h.Reason != "" {
			fmt.Fprintf(w, " reason %s", esc(h.Reason))
		}
		if h.Score != 0 {
			fmt.Fprintf(w, " score %d", h.Score)
		}
		fmt.Fprintln(w)
		vals := make([]string, 0, len(h.Values))
		for _, v := range h.Values {
			vals = append(vals, v.Name+"="+v.Text())
		}
		if len(vals) > 0 {
			fmt.Fprintf(w, "      saw %s\n", esc(strings.Join(vals, " ")))
		}
	}
	if k.AssignedTo != "" {
		fmt.Fprintf(w, "Assigned to %s by %s", esc(k.AssignedTo), esc(k.AssignedBy))
		if k.AssignedAt != nil {
			fmt.Fprintf(w, " at %s", kit.LocalTime(*k.AssignedAt, loc))
		}
		fmt.Fprintln(w)
	}
	if d := k.Decision; d != nil {
		fmt.Fprintf(w, "Decided %s by %s at %s", d.Verdict, esc(d.By), kit.LocalTime(d.At, loc))
		if d.Note != "" {
			fmt.Fprintf(w, ": %s", esc(d.Note))
		}
		fmt.Fprintln(w)
		if d.DenyListed {
			fmt.Fprintf(w, "  card hash %s put on the deny list\n", esc(k.CardHash))
		}
		if d.Incident != "" {
			fmt.Fprintf(w, "  merchant incident %s opened\n", esc(d.Incident))
		}
		for _, v := range d.Counters {
			fmt.Fprintf(w, "  flagged by counter %s\n", esc(v.Name+"="+v.Text()))
		}
	}
}
