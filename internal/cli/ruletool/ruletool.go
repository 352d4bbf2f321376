// Package ruletool implements `switchyard rules ...`: check, test, backtest
// and explain for the risk rule files, and lists management. The switchyard
// command parses nothing itself: it hands the arguments after "rules" to Run.
package ruletool

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/switchyard/switchyard/internal/cli/apiclient"
	"github.com/switchyard/switchyard/internal/cli/kit"
	"github.com/switchyard/switchyard/internal/currency"
	"github.com/switchyard/switchyard/risk"
)

// ToolEnv is what the tools need from the switchyard command.
type ToolEnv struct {
	// History is the journal, for backtest and explain; nil makes them fail
	// with a clear error.
	History risk.History
	// Admin calls the risk admin API (switch/api), for the lists
	// commands: over HTTP to a running switch or in-process on a data directory.
	Admin *apiclient.Client
	// Lists, when set, are the deny and allow lists backtest and explain
	// read (the lists as they are now); nil reads them from Admin (GET
	// /api/v1/risk/lists), and means empty lists only without Admin. Until the
	// sixth release of 6 December 2026 the switchyard command never set them
	// and backtest and explain ran on empty lists: every deny-list decline
	// showed as a changed decision, and allow-listed cards lost their exemptions.
	Lists *risk.Lists
	// Location is the acquirer's time zone: that of dates given without one, the
	// default time zone of rule sets that declare none, and that of the times
	// printed for people (nil = UTC).
	Location *time.Location
	// Zone, when set, returns the acquirer's zone and where it came from (said in
	// the output's header): backtest, explain and lists call it once their flags
	// are parsed (so -h asks the switch nothing), and it replaces Location and
	// ZoneFrom. Its error ends the command (exit 1).
	Zone func() (*time.Location, string, error)
	// ZoneFrom says where Location came from ("the switch's timezone"); "" says nothing.
	ZoneFrom string
	// RulesDir is the rules directory of explain when --rules is not given
	// (default "rules").
	RulesDir string
	// Fallback, when set, is the rule pack explain uses when --rules is not given
	// and RulesDir does not exist (the pack built into the binary, as the switch does).
	Fallback fs.FS
	// Now is the clock for relative times (nil = time.Now).
	Now func() time.Time
	// Terminal forces (true) or suppresses (false) the redrawn progress bar;
	// nil decides by whether stderr is a terminal.
	Terminal *bool
}

// Exit codes of Run.
const (
	ExitOK       = kit.ExitOK    // all good
	ExitProblems = kit.ExitError // problems found: bad rules, failed tests, an error
	ExitUsage    = kit.ExitUsage // bad command line
)

const usage = `usage: switchyard rules COMMAND ...

  check DIR [--strict] [--allow-empty] [--format text|json | --json]
        compile and lint the rule files of DIR; exit 1 with file:line on any
        problem (--strict: warnings count as problems), and on a set without
        a rule, which the switch refuses too (--allow-empty: a warning, as with
        risk.allow_empty_rules: true)
  test DIR [-v] [--run REGEXP] [--format text|json | --json]
        run every rule's tests
  backtest --rules DIR --from T --to T [--format table|csv|json | --json]
           [--warmup D] [--changes N] [--no-progress]
        replay the journal through the rules of DIR and report per rule the
        hits, would-be declines and amounts, and every changed decision
  explain RRN [--rules DIR] [--warmup D] [--all] [--format text|json | --json]
        which rules hit one journaled transaction, and the values they saw
  lists [show] [--list L] [--kind K] [--format table|json | --json]
  lists add LIST KIND VALUE [--ttl D | --expires T] [--note TEXT]   (allow and other lists: a change for review)
  lists remove LIST KIND VALUE                                      (deny and other lists: a change for review)
  lists audit [--since T] [--limit N] [--format table|json | --json]
        manage the deny and allow lists (kinds: bin, card, terminal,
        merchant, country; cards by card hash, never a PAN)

Times T: RFC 3339 (2025-06-01T08:00:00Z), 2025-06-01, 2025-06-01T08:00
(in the configured time zone), now, or relative like -24h or -7d.
`

// Run runs one rules command and returns its exit code.
func Run(ctx context.Context, args []string, env ToolEnv, stdout, stderr io.Writer) int {
	if env.Now == nil {
		env.Now = time.Now
	}
	if env.Location == nil {
		env.Location = time.UTC
	}
	if env.RulesDir == "" {
		env.RulesDir = "rules"
	}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return ExitUsage
	}
	t := &tool{env: env, out: stdout, errw: stderr}
	switch args[0] {
	case "check":
		return t.check(args[1:])
	case "test":
		return t.test(args[1:])
	case "backtest":
		return t.backtest(ctx, args[1:])
	case "explain":
		return t.explain(ctx, args[1:])
	case "lists":
		return t.lists(ctx, args[1:])
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return ExitOK
	}
	fmt.Fprintf(stderr, "switchyard rules: unknown command %q\n\n%s", args[0], usage)
	return ExitUsage
}

type tool struct {
	env  ToolEnv
	out  io.Writer
	errw io.Writer
}

// parse parses flags that may come before or after the positional arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// formatFlag adds --format, with its default and choices, and --json, which the
// other commands take for JSON: here the same as --format json (the later of the two
// wins, as for any flag given twice).
func formatFlag(fs *flag.FlagSet, def, usage string) *string {
	format := fs.String("format", def, usage)
	fs.Var(&jsonFlag{format}, "json", "print JSON: the same as --format json")
	return format
}

// formatErr is the usage error of a --format that is none of choices, or ExitOK
// with false when it is one: an unknown format printed text with exit 0, so that
// `--format csv` gave a script a text report it took for CSV.
func (t *tool) formatErr(format string, choices ...string) (int, bool) {
	if slices.Contains(choices, format) {
		return ExitOK, false
	}
	return t.usageErr("--format %q: want %s", format, strings.Join(choices, " or ")), true
}

// jsonFlag is --json, a boolean flag that sets the --format it belongs to to json.
type jsonFlag struct{ format *string }

// String implements flag.Value.
func (j *jsonFlag) String() string {
	if j == nil || j.format == nil {
		return "false"
	}
	return strconv.FormatBool(*j.format == "json")
}

// Set implements flag.Value.
func (j *jsonFlag) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	if b {
		*j.format = "json"
	}
	return nil
}

// IsBoolFlag makes --json a flag without a value.
func (j *jsonFlag) IsBoolFlag() bool { return true }

// exitOnParse is the exit code for a flag parse error: ExitOK for -h (the flag set
// printed the usage), ExitUsage for any other.
func exitOnParse(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	return ExitUsage
}

// flags returns the flag set of command name ("check", "lists add"), whose -h
// prints the command's lines of usage, its flags and, for the commands that read
// the journal or the lists, where they read them (the standard "Usage of" line and
// flags alone said neither).
func (t *tool) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("switchyard rules "+name, flag.ContinueOnError)
	fs.SetOutput(t.errw)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: switchyard rules %s\n", commandUsage(name))
		if name != "check" && name != "test" {
			fmt.Fprint(w, connectionNote)
		}
		fmt.Fprint(w, "\nFlags:\n")
		fs.PrintDefaults()
	}
	return fs
}

// connectionNote says where the commands other than check and test read the
// journal and the lists.
const connectionNote = `
On the running switch's journal and lists, through its admin API: --admin URL
(default $SWITCHYARD_ADMIN, else http://127.0.0.1:8080) and --token T (default
$SWITCHYARD_TOKEN), anywhere on the line; or, to read only, --data DIR (a stopped
switch's data directory).
`

// commandUsage returns the lines of usage that describe command name: its
// synopsis ("lists show" is the "lists [show]" line) and the description under it,
// without their indentation.
func commandUsage(name string) string {
	var lines []string
	in := false
	for _, l := range strings.Split(usage, "\n") {
		switch {
		case strings.HasPrefix(l, "  ") && !strings.HasPrefix(l, "   "):
			syn := l[2:]
			if i := strings.IndexByte(name, ' '); i > 0 {
				syn = strings.Replace(syn, "["+name[i+1:]+"]", name[i+1:], 1)
			}
			in = strings.HasPrefix(syn, name+" ") || syn == name
			if in {
				lines = append(lines, l[2:])
			}
		case in && strings.HasPrefix(l, "   "):
			lines = append(lines, strings.TrimSpace(l))
		default:
			in = false
		}
	}
	if len(lines) == 0 {
		return name + " [flags]"
	}
	return strings.Join(lines, "\n  ")
}

func (t *tool) usageErr(format string, a ...any) int {
	fmt.Fprintln(t.errw, "switchyard rules: "+kit.ForTerminalLines(fmt.Sprintf(format, a...)))
	return ExitUsage
}

func (t *tool) fail(err error) int {
	fmt.Fprintf(t.errw, "switchyard rules: %s\n", kit.ForTerminalLines(err.Error())) // it can quote the API's answer or a file
	return ExitProblems
}

// readLists fills env.Lists, when unset, with the lists of the switch Admin talks
// to (the lists as they are now): backtest and explain evaluate the rules with the
// deny and allow lists the switch's rules read.
func (t *tool) readLists(ctx context.Context) error {
	if t.env.Lists != nil || t.env.Admin == nil {
		return nil
	}
	var entries []risk.ListEntry
	if err := t.env.Admin.Do(ctx, http.MethodGet, "/api/v1/risk/lists", nil, &entries); err != nil {
		return fmt.Errorf("read the deny and allow lists the rules read: %w", err)
	}
	t.env.Lists = risk.ListsOf(entries)
	return nil
}

func (t *tool) load(dir string) (*risk.RuleSet, error) {
	return risk.Load(dir, risk.LoadOptions{Location: t.env.Location, Lists: t.env.Lists})
}

// resolveZone replaces Location with the one env.Zone gives, once.
func (t *tool) resolveZone() error {
	if t.env.Zone == nil {
		return nil
	}
	loc, from, err := t.env.Zone()
	if err != nil {
		return err
	}
	t.env.Location, t.env.ZoneFrom, t.env.Zone = loc, from, nil
	return nil
}

// zoneNote names the zone of the times shown and where it came from:
// "times in UTC, the switch's timezone".
func (t *tool) zoneNote() string {
	if t.env.ZoneFrom == "" {
		return "times in " + t.env.Location.String()
	}
	return "times in " + t.env.Location.String() + ", " + t.env.ZoneFrom
}

// ---- check ----

func (t *tool) check(args []string) int {
	fs := t.flags("check")
	strict := fs.Bool("strict", false, "treat warnings as problems")
	allowEmpty := fs.Bool("allow-empty", false, "a set without a rule is a warning, not a problem (the switch's risk.allow_empty_rules: true)")
	format := formatFlag(fs, "text", "text or json")
	pos, err := parse(fs, args)
	if err != nil {
		return exitOnParse(err)
	}
	if len(pos) != 1 {
		return t.usageErr("check wants one rules directory, like: switchyard rules check rules/")
	}
	if code, bad := t.formatErr(*format, "text", "json"); bad {
		return code
	}
	rs, err := t.load(pos[0])
	var problems, warnings []risk.Problem
	var le *risk.LoadError
	switch {
	case errors.As(err, &le):
		problems, warnings = le.Problems, le.Warnings
	case err != nil:
		problems = []risk.Problem{{Message: err.Error()}}
	default:
		warnings = rs.Warnings
		// A set without a rule approves everything: the switch refuses it at start
		// and on reload unless risk.allow_empty_rules is true, and so does check.
		if eerr := rs.EmptyError(); eerr != nil && !*allowEmpty {
			problems = append(problems, risk.Problem{Message: eerr.Error() + " (a switch without risk rules approves everything; --allow-empty if that is meant, with risk.allow_empty_rules: true)"})
		}
	}
	// The merchant rating policy beside the rules is checked with them, and its
	// tests counted as rules test runs them.
	ratingTests, rerr := ratingPolicyCount(pos[0])
	if rerr != nil {
		problems = append(problems, risk.Problem{Message: rerr.Error()}) // it names the file
	}
	if *format == "json" {
		ans := struct {
			OK       bool           `json:"ok"`
			Version  string         `json:"version,omitempty"`
			Problems []risk.Problem `json:"problems"`
			Warnings []risk.Problem `json:"warnings"`
		}{OK: len(problems) == 0 && (!*strict || len(warnings) == 0), Problems: orEmpty(problems), Warnings: orEmpty(warnings)}
		if rs != nil {
			ans.Version = rs.Version
		}
		writeJSON(t.out, ans)
		if !ans.OK {
			return ExitProblems
		}
		return ExitOK
	}
	for _, p := range problems {
		fmt.Fprintln(t.out, kit.ForTerminalLines(p.String()))
	}
	for _, w := range warnings {
		fmt.Fprintln(t.out, "warning: "+kit.ForTerminalLines(w.String()))
	}
	if len(problems) > 0 {
		fmt.Fprintf(t.out, "%s: %d problem(s), %d warning(s): the rules do not load\n", pos[0], len(problems), len(warnings))
		return ExitProblems
	}
	tests := ratingTests
	for _, r := range rs.Rules {
		tests += len(r.Tests)
	}
	fmt.Fprintf(t.out, "%s: OK: version %s, %d file(s), %d rule(s), %d counter(s), %d test(s), %d warning(s)\n",
		pos[0], rs.Version, len(rs.Files), len(rs.Rules), len(rs.Counters), tests, len(warnings))
	if *strict && len(warnings) > 0 {
		return ExitProblems
	}
	return ExitOK
}

func orEmpty(p []risk.Problem) []risk.Problem {
	if p == nil {
		return []risk.Problem{}
	}
	return p
}

// ---- test ----

func (t *tool) test(args []string) int {
	fs := t.flags("test")
	verbose := fs.Bool("v", false, "list every test, not only failures")
	run := fs.String("run", "", "run only the tests of rules whose id matches this regular expression")
	format := formatFlag(fs, "text", "text or json")
	pos, err := parse(fs, args)
	if err != nil {
		return exitOnParse(err)
	}
	if len(pos) != 1 {
		return t.usageErr("test wants one rules directory, like: switchyard rules test rules/")
	}
	if code, bad := t.formatErr(*format, "text", "json"); bad {
		return code
	}
	var re *regexp.Regexp
	if *run != "" {
		if re, err = regexp.Compile(*run); err != nil {
			return t.usageErr("--run %q: %v", *run, err)
		}
	}
	rs, err := t.load(pos[0])
	if err != nil {
		fmt.Fprintln(t.out, kit.ForTerminalLines(err.Error()))
		return ExitProblems
	}
	var results []risk.TestResult
	for _, r := range rs.RunTests() {
		if re == nil || re.MatchString(r.Rule) {
			results = append(results, r)
		}
	}
	// The merchant rating policy beside the rules is tested with them.
	ratingResults, err := ratingPolicyTests(pos[0])
	if err != nil {
		fmt.Fprintln(t.out, kit.ForTerminalLines(err.Error()))
		return ExitProblems
	}
	for _, r := range ratingResults {
		if re == nil || re.MatchString(r.Rule) {
			results = append(results, r)
		}
	}
	passed, failed := 0, 0
	untested := []string{}
	tested := map[string]bool{}
	for _, r := range results {
		tested[r.Rule] = true
		if r.Passed {
			passed++
		} else {
			failed++
		}
	}
	for _, r := range rs.Rules {
		if !tested[r.ID] && (re == nil || re.MatchString(r.ID)) {
			untested = append(untested, r.ID)
		}
	}
	if *format == "json" {
		writeJSON(t.out, struct {
			Version  string            `json:"version"`
			Passed   int               `json:"passed"`
			Failed   int               `json:"failed"`
			Untested []string          `json:"untested"`
			Results  []risk.TestResult `json:"results"`
		}{rs.Version, passed, failed, untested, results})
	} else {
		for _, r := range results {
			switch {
			case !r.Passed:
				fmt.Fprintf(t.out, "FAIL %s / %s (%s:%d)\n    %s\n", esc(r.Rule), esc(r.Case), esc(r.File), r.Line, kit.ForTerminalLines(r.Failure))
			case *verbose:
				fmt.Fprintf(t.out, "ok   %s / %s\n", esc(r.Rule), esc(r.Case))
			}
		}
		if len(untested) > 0 {
			fmt.Fprintf(t.out, "rules without tests: %s\n", esc(strings.Join(untested, ", ")))
		}
		fmt.Fprintf(t.out, "rules %s (version %s):\n%d passed, %d failed\n", pos[0], esc(rs.Version), passed, failed)
		if len(results) == 0 {
			fmt.Fprintln(t.out, noTests(pos[0], *run))
		}
	}
	// No test run is a failure, not a pass: an empty or mistyped directory, or a
	// --run that matches no rule with tests, proved nothing.
	if failed > 0 || len(results) == 0 {
		return ExitProblems
	}
	return ExitOK
}

// noTests says why a test run of dir (with --run run) ran no test.
func noTests(dir, run string) string {
	if run != "" {
		return fmt.Sprintf("no test ran: --run %q matches no rule with tests in %s", esc(run), esc(dir))
	}
	return fmt.Sprintf("no test ran: %s has no rule tests", esc(dir))
}

// ---- times and amounts ----

var relTime = regexp.MustCompile(`^([+-]?)(\d+)([smhdw])$`)

// parseTime reads a time flag: RFC 3339, a date or date-time in the
// configured zone, "now", or relative to now like -24h or -7d (24h and 7d, unsigned,
// are before now too).
func (t *tool) parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "now" {
		return t.env.Now().UTC(), nil
	}
	if m := relTime.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[2])
		unit := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour, "w": 7 * 24 * time.Hour}[m[3]]
		d := time.Duration(n) * unit
		if m[1] != "+" { // unsigned is before now, as in `journal --from 24h`
			d = -d
		}
		return t.env.Now().UTC().Add(d), nil
	}
	if ts, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return ts.UTC(), nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if ts, err := time.ParseInLocation(layout, s, t.env.Location); err == nil {
			return ts.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q: want RFC 3339 (2025-06-01T08:00:00Z), a date (2025-06-01), a date-time (2025-06-01T08:00), now, or relative like -24h", s)
}

// amount shows minor units of currency cur with its decimals and its code
// ("1000 392": 1000 yen), with two and no code when cur is unknown.
func amount(minor int64, cur string) string {
	if cur == "" {
		return money(minor)
	}
	return currency.Format(minor, cur) + " " + cur
}

// amounts shows sums by currency (currency.FormatSums): "35.00 156, 1000 392",
// yen never added to fen.
func amounts(m map[string]int64) string { return currency.FormatSums(m) }

// minorByCurrency writes sums by currency for a CSV cell, in minor units and
// currency order: "156:3500 392:1000" ("" when none).
func minorByCurrency(m map[string]int64) string {
	parts := make([]string, 0, len(m))
	for _, cur := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, cur+":"+strconv.FormatInt(m[cur], 10))
	}
	return strings.Join(parts, " ")
}

// money formats minor units with two decimals.
func money(minor int64) string {
	sign := ""
	if minor < 0 {
		sign, minor = "-", -minor
	}
	return fmt.Sprintf("%s%d.%02d", sign, minor/100, minor%100)
}

func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// ---- backtest ----

func (t *tool) backtest(ctx context.Context, args []string) int {
	fs := t.flags("backtest")
	dir := fs.String("rules", "", "candidate rules directory")
	// A date means a day of the acquirer's zone, as for settlement; say which.
	from := fs.String("from", "", fmt.Sprintf("first transaction time (inclusive): RFC 3339, a date or date-time in %s, the acquirer's zone (2025-06-01 is its midnight), now, or relative to now like -24h or -7d", t.env.Location))
	to := fs.String("to", "", fmt.Sprintf("end time (exclusive), same forms (a date or date-time in %s, now, -1h)", t.env.Location))
	format := formatFlag(fs, "table", "table, csv or json")
	warmup := fs.String("warmup", "", "journal replayed before --from to warm the counters (default: the longest counter window)")
	changes := fs.Int("changes", 0, fmt.Sprintf("list at most this many changed decisions (0 = all, up to %d; every one is counted)", risk.MaxListedChanges))
	noProgress := fs.Bool("no-progress", false, "no progress bar")
	pos, err := parse(fs, args)
	if err != nil {
		return exitOnParse(err)
	}
	if len(pos) > 0 {
		return t.usageErr("backtest takes no positional arguments (got %q): use --rules DIR --from T --to T", pos)
	}
	if *dir == "" || *from == "" || *to == "" {
		return t.usageErr("backtest needs --rules DIR --from T --to T")
	}
	if *format != "table" && *format != "csv" && *format != "json" {
		return t.usageErr("--format %q: want table, csv or json", *format)
	}
	// Dates are the switch's days, and a candidate pack without timezone: its hours.
	if err := t.resolveZone(); err != nil {
		return t.fail(fmt.Errorf("backtest: %w", err))
	}
	opts := risk.BacktestOptions{Warmup: -1, MaxChanges: *changes}
	if opts.From, err = t.parseTime(*from); err != nil {
		return t.usageErr("--from: %v", err)
	}
	if opts.To, err = t.parseTime(*to); err != nil {
		return t.usageErr("--to: %v", err)
	}
	if !opts.To.After(opts.From) {
		// A bad command line (exit 2), said in the zone the dates were read in,
		// before the rules are compiled or the journal read.
		return t.usageErr("--to %s is not after --from %s: the range is empty (--to is exclusive)", t.when(opts.To), t.when(opts.From))
	}
	if *warmup != "" {
		if *warmup == "0" {
			opts.Warmup = 0
		} else if opts.Warmup, err = parseDuration(*warmup); err != nil {
			return t.usageErr("--warmup: %v", err)
		}
	}
	if t.env.History == nil {
		return t.fail(errors.New("backtest: no journal to read (run it where the switch's data directory is, or with --data)"))
	}
	if err := t.readLists(ctx); err != nil {
		return t.fail(fmt.Errorf("backtest: %w", err))
	}
	rs, err := t.load(*dir)
	if err != nil {
		return t.fail(err)
	}
	var bar *progressBar
	if !*noProgress {
		bar = newProgressBar(t.errw, t.env.Terminal)
		opts.Progress = bar.update
	}
	rep, err := risk.Backtest(ctx, t.env.History, rs, opts)
	if bar != nil {
		bar.finish()
	}
	if err != nil {
		return t.fail(err)
	}
	switch *format {
	case "json":
		writeJSON(t.out, rep)
	case "csv":
		t.backtestCSV(rep)
	default:
		t.backtestTable(rep, *dir)
	}
	return ExitOK
}

func parseDuration(s string) (time.Duration, error) {
	if m := regexp.MustCompile(`^(\d+)([dw])$`).FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1])
		if m[2] == "w" {
			n *= 7
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q: want a duration like 30m, 24h or 7d", s)
	}
	return d, nil
}

func decisionText(d risk.DecisionSummary) string {
	s := string(d.Action)
	if d.ResponseCode != "" {
		s += " " + d.ResponseCode
	}
	if d.Rule != "" {
		s += " " + d.Rule
	}
	return s
}

func (t *tool) backtestTable(rep *risk.BacktestReport, dir string) {
	w := t.out
	fmt.Fprintf(w, "Backtest of %s (version %s) from %s to %s (%s)\n", dir, rep.Version, t.when(rep.From), t.when(rep.To), t.zoneNote())
	fmt.Fprintf(w, "Warm-up %s: %d transaction(s). Reported: %d transaction(s) in %s.\n", rep.Warmup, rep.WarmupTxns, rep.Transactions, rep.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "Risk declines as they happened: %d (%s); with these rules: %d (%s). Changed decisions: %d.\n\n",
		rep.DeclinesBefore, amounts(rep.DeclineAmountsBefore), rep.DeclinesAfter, amounts(rep.DeclineAmountsAfter), rep.Changed)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "RULE\tMODE\tACTION\tHITS\tHITS BEFORE\tDECIDED\tWOULD DECLINE\tAMOUNT\t")
	for _, r := range rep.Rules {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t\n", esc(r.Rule), r.Mode, r.Action, r.Hits, r.HitsBefore, r.Decided, r.WouldDecline, amounts(r.WouldDeclineAmounts))
	}
	tw.Flush()
	t.labelsTable(rep)
	t.runErrors(rep)
	if rep.Transactions == 0 {
		fmt.Fprintf(w, "\nNo transactions from %s to %s: nothing was backtested (check --from, --to and the journal read).\n", t.when(rep.From), t.when(rep.To))
		return
	}
	if len(rep.Changes) == 0 {
		fmt.Fprintln(w, "\nNo decision would change.")
		return
	}
	fmt.Fprintf(w, "\nChanged decisions (%d", rep.Changed)
	if len(rep.Changes) < rep.Changed {
		fmt.Fprintf(w, ", first %d listed", len(rep.Changes))
	}
	fmt.Fprintln(w, "):")
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tRRN\tTERMINAL\tTYPE\tAMOUNT\tOUTCOME\tBEFORE\tAFTER")
	for _, c := range rep.Changes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.when(c.Time), esc(c.RRN), esc(c.Terminal),
			esc(c.TxnType), amount(int64(c.Amount), c.Currency), esc(c.Outcome), esc(decisionText(c.Before)), esc(decisionText(c.After)))
	}
	tw.Flush()
}

// runErrors writes the rules and counters that failed at run time during the
// replay: a rule that fails counts as not hit, so its zero hits say nothing.
func (t *tool) runErrors(rep *risk.BacktestReport) {
	if rep.RunErrors == 0 {
		return
	}
	fmt.Fprintf(t.out, "\nRun-time errors: %d (a rule that fails counts as not hit; a counter whose where fails leaves the transaction out):\n", rep.RunErrors)
	for _, r := range rep.Rules {
		if r.Errors > 0 {
			fmt.Fprintf(t.out, "  %s: %d transaction(s), first %s\n", esc(r.Rule), r.Errors, esc(r.FirstError))
		}
	}
	names := make([]string, 0, len(rep.CounterErrors))
	for n := range rep.CounterErrors {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(t.out, "  %s: %d transaction(s)\n", esc(n), rep.CounterErrors[n])
	}
}

// labelsTable writes the outcomes by ground-truth label, when the journal had labels
// (the bench's traffic): per label the catch rate of fraud or the false-positive rate
// of legitimate traffic of these rules.
func (t *tool) labelsTable(rep *risk.BacktestReport) {
	if len(rep.Labels) == 0 {
		return
	}
	fmt.Fprintln(t.out, "\nBy label (the requests' DE 48 LB; rate: declined by these rules; stopped: or by the issuer or the switch):")
	tw := tabwriter.NewWriter(t.out, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "LABEL\tATTEMPTS\tDECLINED BEFORE\tDECLINED\tRATE\tSTOPPED\t")
	for _, l := range rep.Labels {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.2f%%\t%.2f%%\t\n", esc(l.Label), l.Attempts, l.DeclinedBefore, l.Declined, 100*l.Rate, 100*l.StoppedRate)
	}
	tw.Flush()
}

// backtestCSV writes the per-rule table, a blank line, then the changes table.
func (t *tool) backtestCSV(rep *risk.BacktestReport) {
	var rules, changes [][]string
	for _, r := range rep.Rules {
		rules = append(rules, []string{r.Rule, string(r.Mode), string(r.Action), strconv.Itoa(r.Hits), strconv.Itoa(r.HitsBefore),
			strconv.Itoa(r.Decided), strconv.Itoa(r.WouldDecline), strconv.FormatInt(r.WouldDeclineAmount, 10), strconv.Itoa(r.Errors), minorByCurrency(r.WouldDeclineAmounts)})
	}
	// would_decline_amount adds every currency (a figure when there is one);
	// would_decline_amounts has each currency's: "156:3500 392:1000", minor units.
	_ = kit.CSV(t.out, []string{"rule", "mode", "action", "hits", "hits_before", "decided", "would_decline", "would_decline_amount", "errors", "would_decline_amounts"}, rules)
	fmt.Fprintln(t.out)
	for _, c := range rep.Changes {
		// RFC 3339, which a spreadsheet or a script reads, in the acquirer's zone: the
		// day of the table's and of --from/--to.
		changes = append(changes, []string{c.Time.In(t.env.Location).Format(time.RFC3339Nano), c.RRN, c.Terminal, c.Merchant, c.TxnType, strconv.Itoa(c.Amount), c.Outcome,
			string(c.Before.Action), c.Before.ResponseCode, c.Before.Rule, string(c.After.Action), c.After.ResponseCode, c.After.Rule, c.Currency})
	}
	// currency (DE 49) last, so that the columns before it stay where they were.
	_ = kit.CSV(t.out, []string{"time", "rrn", "terminal", "merchant", "txn_type", "amount", "outcome", "before_action", "before_code", "before_rule",
		"after_action", "after_code", "after_rule", "currency"}, changes)
}

// progressBar draws the backtest's progress on stderr: redrawn in place on a
// terminal, a line per tenth otherwise.
type progressBar struct {
	w        io.Writer
	terminal bool
	lastTen  int
	drawn    bool
	started  time.Time
}

func newProgressBar(w io.Writer, force *bool) *progressBar {
	p := &progressBar{w: w, lastTen: -1, started: time.Now()}
	if force != nil {
		p.terminal = *force
	} else if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil {
			p.terminal = st.Mode()&os.ModeCharDevice != 0
		}
	}
	return p
}

func (p *progressBar) update(done float64, read int) {
	done = min(max(done, 0), 1)
	if p.terminal {
		const width = 30
		n := int(done * width)
		fmt.Fprintf(p.w, "\rbacktest [%s%s] %3.0f%%  %d txns  %s ", strings.Repeat("#", n), strings.Repeat(".", width-n),
			done*100, read, time.Since(p.started).Round(time.Second))
		p.drawn = true
		return
	}
	if ten := int(done * 10); ten > p.lastTen {
		p.lastTen = ten
		fmt.Fprintf(p.w, "backtest: %3d%% (%d transactions read)\n", ten*10, read)
	}
}

func (p *progressBar) finish() {
	if p.terminal && p.drawn {
		fmt.Fprintln(p.w)
	}
}

// ---- explain ----

func (t *tool) explain(ctx context.Context, args []string) int {
	fs := t.flags("explain")
	dir := fs.String("rules", t.env.RulesDir, "rules directory to re-evaluate with")
	warmup := fs.String("warmup", "", "journal replayed before the transaction to rebuild the counters (default: the longest counter window)")
	all := fs.Bool("all", false, "show the values every rule saw, not only the rules that hit")
	format := formatFlag(fs, "text", "text or json")
	pos, err := parse(fs, args)
	if err != nil {
		return exitOnParse(err)
	}
	if len(pos) != 1 {
		return t.usageErr("explain wants one RRN, like: switchyard rules explain 000000123456")
	}
	if code, bad := t.formatErr(*format, "text", "json"); bad {
		return code
	}
	if err := t.resolveZone(); err != nil {
		return t.fail(fmt.Errorf("explain: %w", err))
	}
	if t.env.History == nil {
		return t.fail(errors.New("explain: no journal to read (run it where the switch's data directory is, or with --data)"))
	}
	w := time.Duration(-1)
	if *warmup != "" {
		if w, err = parseDuration(*warmup); err != nil {
			return t.usageErr("--warmup: %v", err)
		}
	}
	if err := t.readLists(ctx); err != nil {
		return t.fail(fmt.Errorf("explain: %w", err))
	}
	var rs *risk.RuleSet
	if _, serr := os.Stat(*dir); t.env.Fallback != nil && *dir == t.env.RulesDir && errors.Is(serr, os.ErrNotExist) {
		rs, err = risk.LoadFS(t.env.Fallback, risk.FallbackLabel, risk.LoadOptions{Location: t.env.Location, Lists: t.env.Lists})
	} else {
		rs, err = t.load(*dir)
	}
	if err != nil {
		return t.fail(err)
	}
	ex, err := risk.Explain(ctx, t.env.History, rs, pos[0], w)
	if err != nil {
		return t.fail(err)
	}
	if *format == "json" {
		writeJSON(t.out, ex)
		return ExitOK
	}
	t.explainText(ex, *all)
	return ExitOK
}

func (t *tool) explainText(ex *risk.Explanation, all bool) {
	w := t.out
	rec := ex.Record
	in := rec.Input
	fmt.Fprintf(w, "RRN %s at %s: %s %s on terminal %s (%s), merchant %s (%s, tier %s), BIN %s, entry mode %s\n",
		esc(rec.RRN), t.when(rec.Time), esc(in.Txn.Type), money(int64(in.Txn.Amount)),
		esc(in.Terminal.ID), esc(in.Terminal.Kind), esc(in.Merchant.ID), esc(in.Merchant.MCC), esc(in.Merchant.Tier), esc(in.Txn.BIN), esc(in.Txn.EntryMode))
	then := rec.Decision
	fmt.Fprintf(w, "Then (rules version %s): %s; the terminal got %s\n", esc(orDash(then.Version)), esc(then.Summary()), esc(orDash(rec.Outcome.ResponseCode)))
	for _, h := range then.Hits {
		fmt.Fprintf(w, "  hit %-28s %-8s %-7s reason %s\n", esc(h.Rule), h.Mode, h.Action, esc(h.Reason))
	}
	same := "the same version"
	if !ex.SameVersion {
		same = "a DIFFERENT version than decided then"
	}
	fmt.Fprintf(w, "Now (rules version %s, %s; counters rebuilt from %d earlier transaction(s)): %s\n", esc(ex.Version), same, ex.Replayed, esc(ex.Decision.Summary()))
	var misses []string
	for _, r := range ex.Rules {
		if !r.Hit && !all {
			misses = append(misses, r.Rule)
			continue
		}
		mark := "miss"
		if r.Hit {
			mark = "HIT "
		}
		fmt.Fprintf(w, "  %s %s (%s:%d) %s %s", mark, esc(r.Rule), esc(r.File), r.Line, r.Mode, r.Action)
		if r.Hit {
			fmt.Fprintf(w, " reason %s", esc(r.Reason))
			if r.Score != 0 {
				fmt.Fprintf(w, " score %d", r.Score)
			}
		}
		fmt.Fprintln(w)
		if r.Error != "" {
			fmt.Fprintf(w, "       error: %s\n", esc(r.Error))
		}
		vals := make([]string, 0, len(r.Values))
		for _, v := range r.Values {
			vals = append(vals, v.Name+"="+v.Text())
		}
		if len(vals) > 0 {
			fmt.Fprintf(w, "       saw %s\n", esc(strings.Join(vals, " ")))
		}
	}
	if len(misses) > 0 {
		sort.Strings(misses)
		fmt.Fprintf(w, "  not hit: %s\n", esc(strings.Join(misses, ", ")))
	}
}

// esc is kit.ForTerminal: a value this tool writes for people (a rule's ID,
// reason or error from its file, a terminal's ID or a label from the journal,
// a list entry's value or note) shows its control characters as escapes, so
// that no escape sequence among them reaches the operator's terminal. The
// tables keep their own tabwriters (their layout); --format json and csv keep
// the values as they are.
func esc(s string) string { return kit.ForTerminal(s) }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// when shows a time for people, as every command does: in the acquirer's zone
// (Location) with its offset, kit.LocalTime.
func (t *tool) when(tm time.Time) string { return kit.LocalTime(tm, t.env.Location) }

// ---- lists ----

func (t *tool) lists(ctx context.Context, args []string) int {
	if len(args) > 0 && slices.Contains([]string{"-h", "-help", "--help", "help"}, args[0]) {
		// "rules lists -h" showed the flags of "lists show" alone, as if there
		// were no add, remove or audit: the rules usage names all four.
		fmt.Fprint(t.out, usage)
		return ExitOK
	}
	sub := "show"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	// A subcommand's -h needs no switch: its flags print before any call.
	help := slices.ContainsFunc(args, func(a string) bool { return a == "-h" || a == "-help" || a == "--help" })
	if t.env.Admin == nil && !help {
		return t.fail(errors.New("lists: no admin API to talk to (give --admin URL and a token, or --data DIR)"))
	}
	c := t.env.Admin
	switch sub {
	case "show", "ls":
		fs := t.flags("lists show")
		list := fs.String("list", "", "only this list")
		kind := fs.String("kind", "", "only this kind")
		format := formatFlag(fs, "table", "table or json")
		if _, err := parse(fs, args); err != nil {
			return exitOnParse(err)
		}
		if code, bad := t.formatErr(*format, "table", "json"); bad {
			return code
		}
		if err := t.resolveZone(); err != nil {
			return t.fail(fmt.Errorf("lists: %w", err))
		}
		q := url.Values{}
		if *list != "" {
			q.Set("list", *list)
		}
		if *kind != "" {
			q.Set("kind", *kind)
		}
		path := "/api/v1/risk/lists"
		if len(q) > 0 {
			path += "?" + q.Encode()
		}
		var entries []risk.ListEntry
		if err := c.Do(ctx, http.MethodGet, path, nil, &entries); err != nil {
			return t.fail(err)
		}
		if *format == "json" {
			writeJSON(t.out, entries)
			return ExitOK
		}
		tw := tabwriter.NewWriter(t.out, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "LIST\tKIND\tVALUE\tEXPIRES\tADDED BY\tADDED AT\tNOTE")
		for _, e := range entries {
			exp := "never"
			if !e.ExpiresAt.IsZero() {
				exp = t.when(e.ExpiresAt)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", esc(e.List), esc(e.Kind), esc(e.Value), exp, esc(e.AddedBy), t.when(e.AddedAt), esc(e.Note))
		}
		tw.Flush()
		fmt.Fprintf(t.out, "%d entr%s\n", len(entries), map[bool]string{true: "y", false: "ies"}[len(entries) == 1])
		return ExitOK
	case "add":
		fs := t.flags("lists add")
		ttl := fs.String("ttl", "", "expire after this long, like 24h or 30d")
		expires := fs.String("expires", "", "expire at this time")
		note := fs.String("note", "", "why the entry is there")
		pos, err := parse(fs, args)
		if err != nil {
			return exitOnParse(err)
		}
		if len(pos) != 3 {
			return t.usageErr("lists add wants LIST KIND VALUE, like: lists add deny bin 476173 --ttl 7d --note 'test BIN'")
		}
		if err := t.resolveZone(); err != nil {
			return t.fail(fmt.Errorf("lists: %w", err))
		}
		req := risk.AddListEntry{List: pos[0], Kind: pos[1], Value: pos[2], TTL: *ttl, Note: *note}
		if *expires != "" {
			if req.ExpiresAt, err = t.parseTime(*expires); err != nil {
				return t.usageErr("--expires: %v", err)
			}
		}
		var added risk.AddAnswer
		if err := c.Do(ctx, http.MethodPost, "/api/v1/risk/lists", req, &added); err != nil {
			return t.fail(err)
		}
		exp := "never expires"
		if !added.ExpiresAt.IsZero() {
			exp = "expires " + t.when(added.ExpiresAt)
		}
		if added.PendingReview {
			fmt.Fprintf(t.out, "%s/%s/%s (%s): pending review, change %s (%s); it takes effect when a reviewer runs: switchyard change approve %s\n",
				esc(added.List), esc(added.Kind), esc(added.Value), exp, esc(added.Change), esc(added.Why), esc(added.Change))
			return ExitOK
		}
		fmt.Fprintf(t.out, "added %s/%s/%s (%s)\n", esc(added.List), esc(added.Kind), esc(added.Value), exp)
		return ExitOK
	case "remove", "rm":
		fs := t.flags("lists remove")
		pos, err := parse(fs, args)
		if err != nil {
			return exitOnParse(err)
		}
		if len(pos) != 3 {
			return t.usageErr("lists remove wants LIST KIND VALUE")
		}
		path := "/api/v1/risk/lists/" + url.PathEscape(pos[0]) + "/" + url.PathEscape(pos[1]) + "/" + url.PathEscape(pos[2])
		var ans risk.RemoveAnswer
		if err := c.Do(ctx, http.MethodDelete, path, nil, &ans); err != nil {
			return t.fail(err)
		}
		if ans.PendingReview {
			fmt.Fprintf(t.out, "%s/%s/%s: removal pending review, change %s (%s); it takes effect when a reviewer runs: switchyard change approve %s\n",
				esc(pos[0]), esc(pos[1]), esc(pos[2]), esc(ans.Change), esc(ans.Why), esc(ans.Change))
			return ExitOK
		}
		fmt.Fprintf(t.out, "removed %s/%s/%s\n", esc(pos[0]), esc(pos[1]), esc(pos[2]))
		return ExitOK
	case "audit":
		fs := t.flags("lists audit")
		since := fs.String("since", "", "changes from this time on")
		limit := fs.Int("limit", 0, "at most this many")
		format := formatFlag(fs, "table", "table or json")
		if _, err := parse(fs, args); err != nil {
			return exitOnParse(err)
		}
		if code, bad := t.formatErr(*format, "table", "json"); bad {
			return code
		}
		if err := t.resolveZone(); err != nil {
			return t.fail(fmt.Errorf("lists: %w", err))
		}
		q := url.Values{}
		if *since != "" {
			ts, err := t.parseTime(*since)
			if err != nil {
				return t.usageErr("--since: %v", err)
			}
			q.Set("since", ts.Format(time.RFC3339))
		}
		if *limit > 0 {
			q.Set("limit", strconv.Itoa(*limit))
		}
		path := "/api/v1/risk/lists/audit"
		if len(q) > 0 {
			path += "?" + q.Encode()
		}
		var entries []risk.AuditEntry
		if err := c.Do(ctx, http.MethodGet, path, nil, &entries); err != nil {
			return t.fail(err)
		}
		if *format == "json" {
			writeJSON(t.out, entries)
			return ExitOK
		}
		tw := tabwriter.NewWriter(t.out, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tWHO\tOP\tLIST\tKIND\tVALUE\tNOTE")
		for _, a := range entries {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.when(a.Time), esc(a.Who), esc(a.Op),
				esc(a.Entry.List), esc(a.Entry.Kind), esc(a.Entry.Value), esc(a.Entry.Note))
		}
		tw.Flush()
		return ExitOK
	}
	return t.usageErr("lists: unknown command %q (want show, add, remove or audit)", sub)
}
