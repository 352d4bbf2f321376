// Package regtool is the command-line front end of the merchant and terminal
// registry: the switchyard merchant, terminal, change, oplog, incident, alert and
// alert-rule commands. It talks to the registry's admin API through an
// apiclient.Client, so it works against a running switch or an in-process handler.
package regtool

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/cli/apiclient"
	"github.com/switchyard/switchyard/internal/cli/kit"
	"github.com/switchyard/switchyard/switch/registry"
)

// Commands are the top-level commands Run handles.
var Commands = []string{"merchant", "terminal", "change", "oplog", "incident", "alert", "alert-rule"}

// Subcommands are the subcommands of each of Commands.
var Subcommands = map[string][]string{
	"merchant":   {"list", "show", "profile", "register", "change", "activate", "freeze", "unfreeze", "close"},
	"terminal":   {"list", "show", "register", "change", "activate", "suspend", "resume", "close", "import"},
	"change":     {"list", "show", "approve", "reject", "cancel"},
	"oplog":      {"verify"},
	"incident":   {"list", "show", "ack", "resolve"},
	"alert":      {"list", "show", "ack"},
	"alert-rule": {"list", "set", "delete"},
}

// Exit statuses of Run.
const (
	ExitOK    = kit.ExitOK    // success
	ExitError = kit.ExitError // the API refused or failed, or an import had rejected rows
	ExitUsage = kit.ExitUsage // bad command line
)

// Usage is the help text of all commands.
const Usage = `Usage: switchyard merchant|terminal|change|oplog|incident|alert|alert-rule SUBCOMMAND ...

Merchant and terminal registry commands. Each prints for people: a table, or one
record as "Label: value" lines with times in the acquirer's zone ($SWITCHYARD_TIMEZONE,
default Asia/Shanghai); --json prints the switch's JSON instead, for scripts.

  switchyard merchant list [--status S] [--region R] [--tier T] [--csv | --json]
                 (--csv: the file merchant import reads, e.g. to move a fleet to a cluster)
  switchyard merchant show ID [--json]
  switchyard merchant profile ID [--refresh]   (what the rules see as merchant.profile: learned or the
                 tier's defaults, and when computed; --refresh recomputes every profile first, operators)
  switchyard merchant register ID --name N [--name-latin ASCII] [--name-language zh] --mcc NNNN --region R [--group G]
                 [--currency NNN] --tier T [--rating low|medium|high] [--limit-txn MINOR] [--limit-daily MINOR]
                 [--limit-monthly MINOR] [--limit-count N] [--pending] [--reason TEXT]
                 (--name-latin: the name in 1 to 25 printable ASCII characters, a QR code's ID 59, for a name in
                 another script; --name-language: its ISO 639-1 language, else derived from the script;
                 --currency: the ISO 4217 numeric code it transacts in, 156 CNY, 840 USD, 392 JPY: others are
                 declined 58, the limits are minor units of it; none: any currency)
  switchyard merchant change ID [--name N] [--name-latin A] [--name-language L] [--mcc M] [--region R] [--group G]
                 [--currency NNN] [--tier T] [--rating R] [--limit-* ...] [--reason TEXT]
                 (--name-latin "" / --name-language "" / --currency "": take the ASCII name / the language /
                 the currency away)
  switchyard merchant activate|freeze|unfreeze|close ID [--reason TEXT]
  switchyard merchant import FILE.csv [--reason TEXT] [--dry-run]
                 (columns merchant_id,name,mcc,region,group,tier,rating,status,limit_txn,limit_daily,
                 limit_monthly,limit_count,name_latin,name_language,currency; one change for all the rows that pass,
                 approved by a reviewer)
  switchyard merchant rating ID [--pin A..E --reason TEXT [--days N] | --unpin --reason TEXT]
                 (the rating in force, the score and the facts behind it, its limits; pins: analysts)
  switchyard merchant report ID [--days 1|7|30]   (counts, amounts, approval rate, hourly profile)
  switchyard merchant webhook ID --url URL --secret-file F [--reason TEXT]   (notices of approvals, voids
                 and refunds; --url "" removes it; operators; a change for review)
  switchyard merchant notices ID [--limit N] [--json]   (pending notices and the delivery log)

  switchyard terminal list [--merchant ID] [--status S] [--kind K] [--limit N] [--after ID] [--csv | --json]
                 (--csv: the file terminal import reads, e.g. to move a fleet to a cluster)
  switchyard terminal show ID [--json]
  switchyard terminal register ID --merchant ID --kind pos|mpos|softpos [--active]
                 [--device-serial S] [--iccid N] [--imei N] [--location LAT,LON,RADIUS_M]
                 [--networks CIDR,...] [--min-app-version V] [--policy decline|flag]
                 [--pin-mode tpk|dukpt] [--tmk REF] [--tpk REF] [--tak REF] [--bdk REF] [--mac-required] [--reason TEXT]
                 [--attest-max-age D] [--attest-legacy]   (SoftPOS: attestation age; accept the unsigned AT tag)
  switchyard terminal change ID [same flags as register; --merchant moves it] [--clear-location] [--reason TEXT]
  switchyard terminal activate|suspend|resume|close ID [--reason TEXT]
  switchyard terminal import FILE.csv [--reason TEXT] [--dry-run]

  switchyard change list [--status pending|approved|rejected|cancelled|expired|all] [--target ID]
  switchyard change show CHANGE-ID
  switchyard change approve|reject|cancel CHANGE-ID [--note TEXT]

  switchyard oplog [--since TIME|DURATION] [--target ID] [--actor NAME] [--action A] [--limit N]
  switchyard oplog verify

  switchyard incident list [--status open|acknowledged|resolved|all] [--terminal ID] [--merchant ID] [--reason R] [--since T]
  switchyard incident show|ack|resolve INC-ID [--note TEXT] [--json]

  switchyard alert list [--status open|acknowledged|recovered|all] [--rule ID] [--terminal ID]
  switchyard alert show|ack ALR-ID [--note TEXT] [--json]

  switchyard alert-rule list
  switchyard alert-rule set ID [--threshold 24h] [--merchant ID,...] [--region R,...] [--kind K,...]
                 [--status S,...] [--action log|suspend|webhook=URL]... [--description TEXT] [--disabled]
                 [--reason TEXT]   (a rule with the suspend action is a change for review)
  switchyard alert-rule delete ID

Every change to a merchant or terminal is a request: it takes effect when a
different reviewer runs "switchyard change approve CHANGE-ID".

Connection flags, anywhere on the line: --admin URL (default $SWITCHYARD_ADMIN, else
http://127.0.0.1:8080), --token T (default $SWITCHYARD_TOKEN), --data DIR (a stopped
switch's data directory, read-only).
`

// Run runs one registry command: cmd is one of Commands, args the rest of the
// command line. It writes results to stdout and problems to stderr and returns the
// exit status (ExitOK, ExitError or ExitUsage). The times it prints for people
// (tables and show commands; not --json) are in loc, the acquirer's zone (nil: UTC).
func Run(ctx context.Context, cmd string, args []string, c *apiclient.Client, loc *time.Location, stdout, stderr io.Writer) int {
	if loc == nil {
		loc = time.UTC
	}
	t := &tool{ctx: ctx, cmd: cmd, c: c, loc: loc, out: stdout, errw: stderr}
	var err error
	switch cmd {
	case "merchant", "merchants":
		err = t.merchant(args)
	case "terminal", "terminals":
		err = t.terminal(args)
	case "change", "changes":
		err = t.change(args)
	case "oplog":
		err = t.oplog(args)
	case "incident", "incidents":
		err = t.incident(args)
	case "alert", "alerts":
		err = t.alert(args)
	case "alert-rule", "alert-rules":
		err = t.alertRule(args)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, Usage)
		return ExitOK
	default:
		err = usagef("unknown command %q (want one of %s)", cmd, strings.Join(Commands, ", "))
	}
	return t.exit(err)
}

type tool struct {
	ctx  context.Context
	cmd  string // the command, for the usage hint
	c    *apiclient.Client
	loc  *time.Location // the zone of the times printed for people
	out  io.Writer
	errw io.Writer
	code int // exit status for a run without error (import with rejected rows)
}

// usagef returns a usage error (exit ExitUsage), kit's.
func usagef(format string, args ...any) error { return kit.Usagef(format, args...) }

func (t *tool) exit(err error) int {
	switch {
	case err == nil:
		return t.code
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(t.out, Usage)
		return ExitOK
	case kit.IsUsage(err):
		fmt.Fprintf(t.errw, "switchyard: %s\nRun \"switchyard %s -h\" for usage.\n", kit.ForTerminalLines(err.Error()), t.cmd)
		return ExitUsage
	default:
		fmt.Fprintf(t.errw, "switchyard: %s\n", kit.ForTerminalLines(err.Error())) // it can quote the API's answer
		return ExitError
	}
}

// flags is a flag set whose positional arguments may come before, between or after
// the flags ("merchant freeze ID --reason x").
type flags struct {
	*flag.FlagSet
	json *bool
}

func (t *tool) newFlags(name string) *flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &flags{FlagSet: fs, json: fs.Bool("json", false, "print JSON")}
}

func (f *flags) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := f.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usagef("%s: %v", f.Name(), err)
		}
		args = f.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func (f *flags) set(name string) bool {
	found := false
	f.Visit(func(fl *flag.Flag) { found = found || fl.Name == name })
	return found
}

// parseN parses args and requires exactly n positional arguments.
func (f *flags) parseN(args []string, n int, what string) ([]string, error) {
	pos, err := f.parse(args)
	if err != nil {
		return nil, err
	}
	if len(pos) != n {
		return nil, usagef("%s: want %s, got %d arguments", f.Name(), what, len(pos))
	}
	return pos, nil
}

func (t *tool) call(method, path string, in, out any) error {
	return t.c.Do(t.ctx, method, path, in, out)
}

func (t *tool) printJSON(v any) error { return kit.JSON(t.out, v) }

func (t *tool) table(header string, rows [][]string) { kit.Table(t.out, header, rows) }

// fields prints one record for people (kit.Fields).
func (t *tool) fields(rows [][2]string) { kit.Fields(t.out, rows) }

// when shows a time for people, as every command does: in the acquirer's zone, with
// its offset ("-" for the zero time).
func (t *tool) when(tm time.Time) string { return kit.LocalTime(tm, t.loc) }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func query(kv ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			q.Set(kv[i], kv[i+1])
		}
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

func seg(s string) string { return url.PathEscape(s) }

// statusFilter maps "all" to no filter.
func statusFilter(s string) string {
	if s == "all" {
		return ""
	}
	return s
}

// printChange prints the answer to a change request.
func (t *tool) printChange(c *registry.Change, asJSON bool) error {
	if asJSON {
		return t.printJSON(c)
	}
	switch c.Status {
	case registry.ChangePending:
		fmt.Fprintf(t.out, "%s requested: %s %s by %s; it takes effect when another reviewer runs: switchyard change approve %s\n",
			kit.ForTerminal(c.ID), c.Op, kit.ForTerminal(orDash(c.Target)), kit.ForTerminal(c.RequestedBy), kit.ForTerminal(c.ID))
	default:
		fmt.Fprintf(t.out, "%s %s: %s %s (requested by %s, reviewed by %s)\n", kit.ForTerminal(c.ID), c.Status, c.Op,
			kit.ForTerminal(orDash(c.Target)), kit.ForTerminal(c.RequestedBy), kit.ForTerminal(orDash(c.ReviewedBy)))
	}
	return nil
}
