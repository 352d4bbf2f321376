// Package regtool is the command-line front end of the merchant and terminal
// registry: the switchyard merchant, terminal, change, oplog, incident, alert and
// alert-rule commands. It talks to the registry's admin API through an
// apiclient.Client, so it works against a running switch or an in-process handler.
package regtool

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/switchyard/switchyard/internal/cli/apiclient"
	"github.com/switchyard/switchyard/switch/registry"
)

// Commands are the top-level commands Run handles.
var Commands = []string{"merchant", "terminal", "change", "oplog", "incident", "alert", "alert-rule"}

// Subcommands are the subcommands of each of Commands.
var Subcommands = map[string][]string{
	"merchant":   {"list", "show", "register", "change", "activate", "freeze", "unfreeze", "close"},
	"terminal":   {"list", "show", "register", "change", "activate", "suspend", "resume", "close", "import"},
	"change":     {"list", "show", "approve", "reject", "cancel"},
	"oplog":      {"verify"},
	"incident":   {"list", "show", "ack", "resolve"},
	"alert":      {"list", "show", "ack"},
	"alert-rule": {"list", "set", "delete"},
}

// Exit statuses of Run.
const (
	ExitOK    = 0 // success
	ExitError = 1 // the API refused or failed, or an import had rejected rows
	ExitUsage = 2 // bad command line
)

// Usage is the help text of all commands.
const Usage = `Usage: switchyard merchant|terminal|change|oplog|incident|alert|alert-rule SUBCOMMAND ...

Merchant and terminal registry commands (every list command takes --json):

  switchyard merchant list [--status S] [--region R] [--tier T]
  switchyard merchant show ID
  switchyard merchant register ID --name N --mcc NNNN --region R --tier T [--rating low|medium|high]
                 [--limit-txn FEN] [--limit-daily FEN] [--limit-monthly FEN] [--limit-count N] [--pending] [--reason TEXT]
  switchyard merchant change ID [--name N] [--mcc M] [--region R] [--tier T] [--rating R] [--limit-* ...] [--reason TEXT]
  switchyard merchant activate|freeze|unfreeze|close ID [--reason TEXT]

  switchyard terminal list [--merchant ID] [--status S] [--kind K] [--limit N] [--after ID]
  switchyard terminal show ID
  switchyard terminal register ID --merchant ID --kind pos|mpos|softpos [--active]
                 [--device-serial S] [--iccid N] [--imei N] [--location LAT,LON,RADIUS_M]
                 [--networks CIDR,...] [--min-app-version V] [--policy decline|flag]
                 [--pin-mode tpk|dukpt] [--tmk REF] [--tpk REF] [--tak REF] [--bdk REF] [--mac-required] [--reason TEXT]
  switchyard terminal change ID [same flags as register; --merchant moves it] [--clear-location] [--reason TEXT]
  switchyard terminal activate|suspend|resume|close ID [--reason TEXT]
  switchyard terminal import FILE.csv [--reason TEXT] [--dry-run]

  switchyard change list [--status pending|approved|rejected|cancelled|all] [--target ID]
  switchyard change show CHANGE-ID
  switchyard change approve|reject|cancel CHANGE-ID [--note TEXT]

  switchyard oplog [--since TIME|DURATION] [--target ID] [--actor NAME] [--action A] [--limit N]
  switchyard oplog verify

  switchyard incident list [--status open|acknowledged|resolved|all] [--terminal ID] [--merchant ID] [--reason R] [--since T]
  switchyard incident show|ack|resolve INC-ID [--note TEXT]

  switchyard alert list [--status open|acknowledged|recovered|all] [--rule ID] [--terminal ID]
  switchyard alert show|ack ALR-ID [--note TEXT]

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
// exit status (ExitOK, ExitError or ExitUsage).
func Run(ctx context.Context, cmd string, args []string, c *apiclient.Client, stdout, stderr io.Writer) int {
	t := &tool{ctx: ctx, c: c, out: stdout, errw: stderr}
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
	c    *apiclient.Client
	out  io.Writer
	errw io.Writer
	code int // exit status for a run without error (import with rejected rows)
}

type usageError struct{ msg string }

// Error returns the message.
func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

func (t *tool) exit(err error) int {
	var ue *usageError
	switch {
	case err == nil:
		return t.code
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(t.out, Usage)
		return ExitOK
	case errors.As(err, &ue):
		fmt.Fprintf(t.errw, "switchyard: %s\nRun \"switchyard help\" for the commands.\n", ue.msg)
		return ExitUsage
	default:
		fmt.Fprintf(t.errw, "switchyard: %v\n", err)
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

func (t *tool) printJSON(v any) error {
	enc := json.NewEncoder(t.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (t *tool) table(header string, rows [][]string) {
	w := tabwriter.NewWriter(t.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, header)
	for _, r := range rows {
		fmt.Fprintln(w, strings.Join(r, "\t"))
	}
	_ = w.Flush()
}

func ts(tm time.Time) string {
	if tm.IsZero() {
		return "-"
	}
	return tm.UTC().Format(time.RFC3339)
}

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
			c.ID, c.Op, orDash(c.Target), c.RequestedBy, c.ID)
	default:
		fmt.Fprintf(t.out, "%s %s: %s %s (requested by %s, reviewed by %s)\n", c.ID, c.Status, c.Op, orDash(c.Target), c.RequestedBy, orDash(c.ReviewedBy))
	}
	return nil
}

// --- merchant ---

func merchantFlags(f *flags) func() (registry.MerchantPatch, error) {
	name := f.String("name", "", "merchant name")
	mcc := f.String("mcc", "", "merchant category code")
	region := f.String("region", "", "region")
	tier := f.String("tier", "", "tier")
	rating := f.String("rating", "", "risk rating: low, medium or high")
	lTxn := f.Int64("limit-txn", 0, "per-transaction limit in minor units (0: none)")
	lDay := f.Int64("limit-daily", 0, "daily limit in minor units (0: none)")
	lMon := f.Int64("limit-monthly", 0, "monthly limit in minor units (0: none)")
	lCnt := f.Int64("limit-count", 0, "daily transaction count limit (0: none)")
	return func() (registry.MerchantPatch, error) {
		var p registry.MerchantPatch
		str := func(flagName string, v *string) *string {
			if f.set(flagName) {
				return v
			}
			return nil
		}
		p.Name, p.MCC, p.Region, p.Tier, p.Rating = str("name", name), str("mcc", mcc), str("region", region), str("tier", tier), str("rating", rating)
		if f.set("limit-txn") || f.set("limit-daily") || f.set("limit-monthly") || f.set("limit-count") {
			p.Limits = &registry.Limits{PerTransaction: *lTxn, Daily: *lDay, Monthly: *lMon, DailyCount: *lCnt}
		}
		return p, nil
	}
}

func (t *tool) merchant(args []string) error {
	if len(args) == 0 {
		return usagef("merchant: want list, show, register, change, activate, freeze, unfreeze or close")
	}
	sub, args := args[0], args[1:]
	f := t.newFlags("merchant " + sub)
	switch sub {
	case "list":
		status := f.String("status", "", "only this status")
		region := f.String("region", "", "only this region")
		tier := f.String("tier", "", "only this tier")
		if _, err := f.parseN(args, 0, "no arguments"); err != nil {
			return err
		}
		var ms []registry.Merchant
		if err := t.call("GET", "/api/v1/merchants"+query("status", *status, "region", *region, "tier", *tier), nil, &ms); err != nil {
			return err
		}
		if *f.json {
			return t.printJSON(ms)
		}
		var rows [][]string
		for _, m := range ms {
			rows = append(rows, []string{m.ID, m.Name, m.MCC, m.Region, m.Tier, m.Rating, string(m.Status), limitsText(m.Limits)})
		}
		t.table("ID\tNAME\tMCC\tREGION\tTIER\tRATING\tSTATUS\tLIMITS (txn/day/month)", rows)
		return nil
	case "show":
		pos, err := f.parseN(args, 1, "a merchant ID")
		if err != nil {
			return err
		}
		var m registry.Merchant
		if err := t.call("GET", "/api/v1/merchants/"+seg(pos[0]), nil, &m); err != nil {
			return err
		}
		return t.printJSON(m)
	case "register":
		patch := merchantFlags(f)
		pending := f.Bool("pending", false, "register as pending (activate later)")
		reason := f.String("reason", "", "why")
		pos, err := f.parseN(args, 1, "a merchant ID")
		if err != nil {
			return err
		}
		p, _ := patch()
		m := registry.Merchant{ID: pos[0], Rating: registry.RatingMedium, Status: registry.MerchantActive}
		for _, x := range []struct {
			dst *string
			v   *string
		}{{&m.Name, p.Name}, {&m.MCC, p.MCC}, {&m.Region, p.Region}, {&m.Tier, p.Tier}, {&m.Rating, p.Rating}} {
			if x.v != nil {
				*x.dst = *x.v
			}
		}
		if p.Limits != nil {
			m.Limits = *p.Limits
		}
		if *pending {
			m.Status = registry.MerchantPending
		}
		var c registry.Change
		if err := t.call("POST", "/api/v1/merchants", registry.MerchantRequest{Merchant: m, Reason: *reason}, &c); err != nil {
			return err
		}
		return t.printChange(&c, *f.json)
	case "change":
		patch := merchantFlags(f)
		reason := f.String("reason", "", "why")
		pos, err := f.parseN(args, 1, "a merchant ID")
		if err != nil {
			return err
		}
		p, _ := patch()
		if p == (registry.MerchantPatch{}) {
			return usagef("merchant change: nothing to change (give --name, --mcc, --region, --tier, --rating or --limit-*)")
		}
		var c registry.Change
		if err := t.call("PATCH", "/api/v1/merchants/"+seg(pos[0]), registry.MerchantPatchRequest{MerchantPatch: p, Reason: *reason}, &c); err != nil {
			return err
		}
		return t.printChange(&c, *f.json)
	case "activate", "freeze", "unfreeze", "close":
		reason := f.String("reason", "", "why")
		pos, err := f.parseN(args, 1, "a merchant ID")
		if err != nil {
			return err
		}
		var c registry.Change
		if err := t.call("POST", "/api/v1/merchants/"+seg(pos[0])+"/"+sub, registry.ReasonRequest{Reason: *reason}, &c); err != nil {
			return err
		}
		return t.printChange(&c, *f.json)
	}
	return usagef("merchant %s: unknown subcommand (want list, show, register, change, activate, freeze, unfreeze or close)", sub)
}

func limitsText(l registry.Limits) string {
	if l == (registry.Limits{}) {
		return "none"
	}
	amt := func(v int64) string {
		if v == 0 {
			return "-"
		}
		return fmt.Sprintf("%d.%02d", v/100, v%100)
	}
	return amt(l.PerTransaction) + "/" + amt(l.Daily) + "/" + amt(l.Monthly)
}

// --- terminal ---

type terminalFlagValues struct {
	f                                        *flags
	merchant, kind, device, iccid, imei, loc *string
	networks, minVer, policy, pinMode        *string
	tmk, tpk, tak, bdk                       *string
	macRequired, clearLocation               *bool
}

func terminalFlags(f *flags) *terminalFlagValues {
	return &terminalFlagValues{
		f:             f,
		merchant:      f.String("merchant", "", "merchant ID"),
		kind:          f.String("kind", "", "pos, mpos or softpos"),
		device:        f.String("device-serial", "", "bound device serial (DI); empty unbinds"),
		iccid:         f.String("iccid", "", "bound SIM ICCID (SI); empty unbinds"),
		imei:          f.String("imei", "", "bound IMEI (IM); empty unbinds"),
		loc:           f.String("location", "", "deployed location LAT,LON,RADIUS_M"),
		networks:      f.String("networks", "", "allowed source networks, CIDRs separated by commas; empty allows any"),
		minVer:        f.String("min-app-version", "", "minimum application version (dotted numeric)"),
		policy:        f.String("policy", "", "missing identity or location: decline or flag"),
		pinMode:       f.String("pin-mode", "", "tpk or dukpt"),
		tmk:           f.String("tmk", "", "TMK key reference"),
		tpk:           f.String("tpk", "", "TPK key reference"),
		tak:           f.String("tak", "", "TAK key reference"),
		bdk:           f.String("bdk", "", "DUKPT BDK key reference"),
		macRequired:   f.Bool("mac-required", false, "messages must carry a MAC"),
		clearLocation: f.Bool("clear-location", false, "remove the deployed location (change only)"),
	}
}

func (v *terminalFlagValues) patch() (registry.TerminalPatch, error) {
	f := v.f
	var p registry.TerminalPatch
	str := func(name string, val *string) *string {
		if f.set(name) {
			s := strings.TrimSpace(*val)
			return &s
		}
		return nil
	}
	p.MerchantID = str("merchant", v.merchant)
	if f.set("kind") {
		k := registry.TerminalKind(*v.kind)
		p.Kind = &k
	}
	p.DeviceSerial, p.ICCID, p.IMEI = str("device-serial", v.device), str("iccid", v.iccid), str("imei", v.imei)
	if f.set("location") {
		d, err := registry.ParseDeployment(*v.loc)
		if err != nil {
			return p, usagef("--location: %v", err)
		}
		p.Location = d
	}
	p.ClearLocation = *v.clearLocation
	if f.set("networks") {
		nets, err := registry.ParseNetworks(*v.networks)
		if err != nil {
			return p, usagef("--networks: %v", err)
		}
		if nets == nil {
			nets = []netip.Prefix{}
		}
		p.AllowedNetworks = &nets
	}
	p.MinAppVersion = str("min-app-version", v.minVer)
	if f.set("policy") {
		pol := registry.Policy(*v.policy)
		p.MissingPolicy = &pol
	}
	return p, nil
}

// keysSet reports whether any key flag was given.
func (v *terminalFlagValues) keysSet() bool {
	for _, n := range []string{"pin-mode", "tmk", "tpk", "tak", "bdk", "mac-required"} {
		if v.f.set(n) {
			return true
		}
	}
	return false
}

func (v *terminalFlagValues) keys(base registry.KeyRefs) registry.KeyRefs {
	f := v.f
	if f.set("pin-mode") {
		base.PINMode = registry.PINMode(*v.pinMode)
	}
	for _, x := range []struct {
		name string
		dst  *string
		val  *string
	}{{"tmk", &base.TMK, v.tmk}, {"tpk", &base.TPK, v.tpk}, {"tak", &base.TAK, v.tak}, {"bdk", &base.BDK, v.bdk}} {
		if f.set(x.name) {
			*x.dst = *x.val
		}
	}
	if f.set("mac-required") {
		base.MACRequired = *v.macRequired
	}
	return base
}

func (t *tool) terminal(args []string) error {
	if len(args) == 0 {
		return usagef("terminal: want list, show, register, change, activate, suspend, resume, close or import")
	}
	sub, args := args[0], args[1:]
	f := t.newFlags("terminal " + sub)
	switch sub {
	case "list":
		merchant := f.String("merchant", "", "only this merchant")
		status := f.String("status", "", "only this status")
		kind := f.String("kind", "", "only this kind")
		limit := f.Int("limit", 0, "at most this many")
		after := f.String("after", "", "only IDs after this one (paging)")
		if _, err := f.parseN(args, 0, "no arguments"); err != nil {
			return err
		}
		lim := ""
		if *limit > 0 {
			lim = strconv.Itoa(*limit)
		}
		var views []registry.TerminalView
		if err := t.call("GET", "/api/v1/terminals"+query("merchant", *merchant, "status", *status, "kind", *kind, "limit", lim, "after", *after), nil, &views); err != nil {
			return err
		}
		if *f.json {
			return t.printJSON(views)
		}
		var rows [][]string
		for _, v := range views {
			seen, from := "-", "-"
			if v.LastSeen != nil {
				seen = ts(v.LastSeen.Time)
				if v.LastSeen.Address.IsValid() {
					from = v.LastSeen.Address.String()
				}
			}
			rows = append(rows, []string{v.ID, v.MerchantID, string(v.Kind), string(v.Status), bindingText(v.Terminal), seen, from})
		}
		t.table("ID\tMERCHANT\tKIND\tSTATUS\tBINDING\tLAST SEEN\tFROM", rows)
		return nil
	case "show":
		pos, err := f.parseN(args, 1, "a terminal ID")
		if err != nil {
			return err
		}
		var v registry.TerminalView
		if err := t.call("GET", "/api/v1/terminals/"+seg(pos[0]), nil, &v); err != nil {
			return err
		}
		return t.printJSON(v)
	case "register":
		tv := terminalFlags(f)
		active := f.Bool("active", false, "register as active (default pending: activate later)")
		reason := f.String("reason", "", "why")
		pos, err := f.parseN(args, 1, "a terminal ID")
		if err != nil {
			return err
		}
		p, err := tv.patch()
		if err != nil {
			return err
		}
		if p.MerchantID == nil || p.Kind == nil {
			return usagef("terminal register: --merchant and --kind are required")
		}
		term := registry.Terminal{ID: pos[0], MerchantID: *p.MerchantID, Kind: *p.Kind, Status: registry.TerminalPending, Keys: tv.keys(registry.KeyRefs{})}
		if *active {
			term.Status = registry.TerminalActive
		}
		for _, x := range []struct {
			dst *string
			v   *string
		}{{&term.Binding.DeviceSerial, p.DeviceSerial}, {&term.Binding.ICCID, p.ICCID}, {&term.Binding.IMEI, p.IMEI}, {&term.MinAppVersion, p.MinAppVersion}} {
			if x.v != nil {
				*x.dst = *x.v
			}
		}
		term.Location = p.Location
		if p.AllowedNetworks != nil {
			term.AllowedNetworks = *p.AllowedNetworks
		}
		if p.MissingPolicy != nil {
			term.MissingPolicy = *p.MissingPolicy
		}
		var c registry.Change
		if err := t.call("POST", "/api/v1/terminals", registry.TerminalRequest{Terminal: term, Reason: *reason}, &c); err != nil {
			return err
		}
		return t.printChange(&c, *f.json)
	case "change":
		tv := terminalFlags(f)
		reason := f.String("reason", "", "why")
		pos, err := f.parseN(args, 1, "a terminal ID")
		if err != nil {
			return err
		}
		p, err := tv.patch()
		if err != nil {
			return err
		}
		if tv.keysSet() {
			var cur registry.TerminalView
			if err := t.call("GET", "/api/v1/terminals/"+seg(pos[0]), nil, &cur); err != nil {
				return err
			}
			k := tv.keys(cur.Keys)
			p.Keys = &k
		}
		if isEmptyPatch(p) {
			return usagef("terminal change: nothing to change")
		}
		var c registry.Change
		if err := t.call("PATCH", "/api/v1/terminals/"+seg(pos[0]), registry.TerminalPatchRequest{TerminalPatch: p, Reason: *reason}, &c); err != nil {
			return err
		}
		return t.printChange(&c, *f.json)
	case "activate", "suspend", "resume", "close":
		reason := f.String("reason", "", "why")
		pos, err := f.parseN(args, 1, "a terminal ID")
		if err != nil {
			return err
		}
		var c registry.Change
		if err := t.call("POST", "/api/v1/terminals/"+seg(pos[0])+"/"+sub, registry.ReasonRequest{Reason: *reason}, &c); err != nil {
			return err
		}
		return t.printChange(&c, *f.json)
	case "import":
		reason := f.String("reason", "", "why (default: CSV import of N terminals)")
		dry := f.Bool("dry-run", false, "check the rows only; request nothing")
		pos, err := f.parseN(args, 1, "a CSV file")
		if err != nil {
			return err
		}
		raw, err := os.ReadFile(pos[0])
		if err != nil {
			return fmt.Errorf("terminal import: %w", err)
		}
		var rep registry.ImportReport
		if err := t.call("POST", "/api/v1/terminals/import", registry.ImportRequest{CSV: string(raw), Reason: *reason, DryRun: *dry}, &rep); err != nil {
			return err
		}
		if rep.Rejected > 0 {
			t.code = ExitError
		}
		if *f.json {
			return t.printJSON(rep)
		}
		var rows [][]string
		for _, r := range rep.Rows {
			res := "ok"
			if !r.OK {
				res = "REJECTED: " + r.Error
			}
			rows = append(rows, []string{strconv.Itoa(r.Line), orDash(r.TerminalID), res})
		}
		t.table("LINE\tTERMINAL\tRESULT", rows)
		fmt.Fprintf(t.out, "%d accepted, %d rejected.\n", rep.Accepted, rep.Rejected)
		switch {
		case rep.Change != nil:
			fmt.Fprintf(t.out, "%s requested: the accepted terminals are created when another reviewer runs: switchyard change approve %s\n", rep.Change.ID, rep.Change.ID)
		case rep.DryRun:
			fmt.Fprintln(t.out, "Dry run: nothing requested.")
		default:
			fmt.Fprintln(t.out, "No row accepted: nothing requested.")
		}
		return nil
	}
	return usagef("terminal %s: unknown subcommand (want list, show, register, change, activate, suspend, resume, close or import)", sub)
}

func isEmptyPatch(p registry.TerminalPatch) bool {
	return p.MerchantID == nil && p.Kind == nil && p.DeviceSerial == nil && p.ICCID == nil && p.IMEI == nil && p.Location == nil &&
		!p.ClearLocation && p.AllowedNetworks == nil && p.MinAppVersion == nil && p.MissingPolicy == nil && p.Keys == nil
}

func bindingText(t *registry.Terminal) string {
	var parts []string
	if t.Binding.DeviceSerial != "" {
		parts = append(parts, "DI")
	}
	if t.Binding.ICCID != "" {
		parts = append(parts, "SI")
	}
	if t.Binding.IMEI != "" {
		parts = append(parts, "IM")
	}
	if t.Location != nil {
		parts = append(parts, fmt.Sprintf("GL<%gm", t.Location.RadiusM))
	}
	if len(t.AllowedNetworks) > 0 {
		parts = append(parts, "NET")
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ",") + " (" + string(t.MissingPolicy) + ")"
}

// --- change ---

func (t *tool) change(args []string) error {
	if len(args) == 0 {
		return usagef("change: want list, show, approve, reject or cancel")
	}
	sub, args := args[0], args[1:]
	f := t.newFlags("change " + sub)
	switch sub {
	case "list":
		status := f.String("status", "pending", "pending, approved, rejected, cancelled or all")
		target := f.String("target", "", "only changes of this merchant or terminal")
		if _, err := f.parseN(args, 0, "no arguments"); err != nil {
			return err
		}
		var cs []registry.Change
		if err := t.call("GET", "/api/v1/changes"+query("status", statusFilter(*status), "target", *target), nil, &cs); err != nil {
			return err
		}
		if *f.json {
			return t.printJSON(cs)
		}
		var rows [][]string
		for _, c := range cs {
			reviewed := "-"
			if c.ReviewedBy != "" {
				reviewed = c.ReviewedBy
			}
			rows = append(rows, []string{c.ID, string(c.Op), orDash(c.Target), string(c.Status), c.RequestedBy, ts(c.RequestedAt), reviewed, orDash(c.Reason)})
		}
		t.table("ID\tOPERATION\tTARGET\tSTATUS\tREQUESTED BY\tREQUESTED AT\tREVIEWED BY\tREASON", rows)
		return nil
	case "show":
		pos, err := f.parseN(args, 1, "a change ID")
		if err != nil {
			return err
		}
		var pv registry.ChangePreview
		if err := t.call("GET", "/api/v1/changes/"+seg(pos[0]), nil, &pv); err != nil {
			return err
		}
		if *f.json {
			return t.printJSON(pv)
		}
		c := pv.Change
		fmt.Fprintf(t.out, "%s  %s %s  %s\nrequested by %s at %s", c.ID, c.Op, orDash(c.Target), c.Status, c.RequestedBy, ts(c.RequestedAt))
		if c.Reason != "" {
			fmt.Fprintf(t.out, ": %s", c.Reason)
		}
		fmt.Fprintln(t.out)
		if c.ReviewedBy != "" && c.ReviewedAt != nil {
			fmt.Fprintf(t.out, "%s by %s at %s %s\n", c.Status, c.ReviewedBy, ts(*c.ReviewedAt), c.ReviewNote)
		}
		if pv.Error != "" {
			fmt.Fprintf(t.out, "cannot be approved now: %s\n", pv.Error)
		}
		for _, e := range pv.Effects {
			fmt.Fprintf(t.out, "%s %s:\n", e.Type, e.ID)
			for _, d := range Diff(e.Before, e.After) {
				fmt.Fprintf(t.out, "  %s\n", d)
			}
		}
		return nil
	case "approve", "reject", "cancel":
		note := f.String("note", "", "review note")
		pos, err := f.parseN(args, 1, "a change ID")
		if err != nil {
			return err
		}
		var c registry.Change
		if err := t.call("POST", "/api/v1/changes/"+seg(pos[0])+"/"+sub, registry.ReasonRequest{Note: *note}, &c); err != nil {
			return err
		}
		return t.printChange(&c, *f.json)
	}
	return usagef("change %s: unknown subcommand (want list, show, approve, reject or cancel)", sub)
}

// Diff lists the top-level fields that differ between two JSON objects as
// "field: before -> after" lines (bookkeeping fields updated_at and version are
// left out). A nil before lists every field of after.
func Diff(before, after json.RawMessage) []string {
	var b, a map[string]json.RawMessage
	_ = json.Unmarshal(before, &b)
	_ = json.Unmarshal(after, &a)
	keys := map[string]bool{}
	for k := range b {
		keys[k] = true
	}
	for k := range a {
		keys[k] = true
	}
	var names []string
	for k := range keys {
		if k != "updated_at" && k != "version" {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	var out []string
	for _, k := range names {
		bv, av := string(b[k]), string(a[k])
		if bv == av {
			continue
		}
		if before == nil {
			out = append(out, fmt.Sprintf("%s: %s", k, av))
			continue
		}
		out = append(out, fmt.Sprintf("%s: %s -> %s", k, orDash(bv), orDash(av)))
	}
	return out
}

// --- oplog ---

func (t *tool) oplog(args []string) error {
	if len(args) > 0 && args[0] == "verify" {
		f := t.newFlags("oplog verify")
		if _, err := f.parseN(args[1:], 0, "no arguments"); err != nil {
			return err
		}
		var vr registry.VerifyResult
		if err := t.call("GET", "/api/v1/oplog/verify", nil, &vr); err != nil {
			return err
		}
		if *f.json {
			_ = t.printJSON(vr)
		} else if vr.OK {
			fmt.Fprintf(t.out, "oplog intact: %d entries, hash chain verified\n", vr.Entries)
		}
		if !vr.OK {
			return fmt.Errorf("oplog verification failed after %d entries: %s", vr.Entries, vr.Error)
		}
		return nil
	}
	f := t.newFlags("oplog")
	since := f.String("since", "", "entries since (RFC 3339 time, YYYY-MM-DD, or a duration like 24h)")
	target := f.String("target", "", "only entries about this record")
	actor := f.String("actor", "", "only entries by this principal")
	action := f.String("action", "", "only this action (or a prefix ending in '.', e.g. terminal.)")
	limit := f.Int("limit", 100, "the newest this many")
	if _, err := f.parseN(args, 0, "no arguments"); err != nil {
		return err
	}
	if *since != "" {
		st, err := registry.ParseSince(*since, time.Now())
		if err != nil {
			return usagef("oplog --since %q: %v", *since, err)
		}
		*since = st.UTC().Format(time.RFC3339)
	}
	var es []registry.OpEntry
	if err := t.call("GET", "/api/v1/oplog"+query("since", *since, "target", *target, "actor", *actor, "action", *action, "limit", strconv.Itoa(*limit)), nil, &es); err != nil {
		return err
	}
	if *f.json {
		return t.printJSON(es)
	}
	var rows [][]string
	for _, e := range es {
		by := e.Actor
		if e.RequestedBy != "" {
			by += " (requested by " + e.RequestedBy + ")"
		}
		what := strings.Join(Diff(e.Before, e.After), "; ")
		if e.Before == nil && e.After != nil && strings.HasPrefix(e.Action, "change.") {
			what = "" // the requested change itself: see change show
		}
		if len(what) > 120 {
			what = what[:117] + "..."
		}
		rows = append(rows, []string{strconv.FormatUint(e.Seq, 10), ts(e.Time), by, e.Action, e.Target, orDash(e.ChangeID), orDash(e.Reason), orDash(what)})
	}
	t.table("SEQ\tTIME\tWHO\tACTION\tTARGET\tCHANGE\tREASON\tBEFORE -> AFTER", rows)
	if len(es) == *limit { // the demo fleet alone writes 2,009 entries: say that older ones exist
		fmt.Fprintf(t.errw, "the newest %d entries; --limit N for more, --since or --target to narrow\n", *limit)
	}
	return nil
}

// --- incident ---

func (t *tool) incident(args []string) error {
	if len(args) == 0 {
		return usagef("incident: want list, show, ack or resolve")
	}
	sub, args := args[0], args[1:]
	f := t.newFlags("incident " + sub)
	switch sub {
	case "list":
		status := f.String("status", "open", "open, acknowledged, resolved or all")
		terminal := f.String("terminal", "", "only this terminal")
		merchant := f.String("merchant", "", "only this merchant")
		reason := f.String("reason", "", "only this reason")
		since := f.String("since", "", "since (RFC 3339, YYYY-MM-DD or a duration like 24h)")
		if _, err := f.parseN(args, 0, "no arguments"); err != nil {
			return err
		}
		if *since != "" {
			st, err := registry.ParseSince(*since, time.Now())
			if err != nil {
				return usagef("incident list --since %q: %v", *since, err)
			}
			*since = st.UTC().Format(time.RFC3339)
		}
		var is []registry.Incident
		if err := t.call("GET", "/api/v1/incidents"+query("status", statusFilter(*status), "terminal", *terminal, "merchant", *merchant, "reason", *reason, "since", *since), nil, &is); err != nil {
			return err
		}
		if *f.json {
			return t.printJSON(is)
		}
		var rows [][]string
		for _, i := range is {
			rows = append(rows, []string{i.ID, ts(i.Time), string(i.Reason), i.ResponseCode, i.TerminalID, orDash(i.MerchantID), string(i.Status), incidentDetail(&i)})
		}
		t.table("ID\tTIME\tREASON\tRC\tTERMINAL\tMERCHANT\tSTATUS\tDETAIL", rows)
		return nil
	case "show":
		pos, err := f.parseN(args, 1, "an incident ID")
		if err != nil {
			return err
		}
		var i registry.Incident
		if err := t.call("GET", "/api/v1/incidents/"+seg(pos[0]), nil, &i); err != nil {
			return err
		}
		return t.printJSON(i)
	case "ack", "acknowledge", "resolve":
		note := f.String("note", "", "note")
		pos, err := f.parseN(args, 1, "an incident ID")
		if err != nil {
			return err
		}
		action := sub
		if action == "acknowledge" {
			action = "ack"
		}
		var i registry.Incident
		if err := t.call("POST", "/api/v1/incidents/"+seg(pos[0])+"/"+action, registry.ReasonRequest{Note: *note}, &i); err != nil {
			return err
		}
		if *f.json {
			return t.printJSON(i)
		}
		fmt.Fprintf(t.out, "%s %s\n", i.ID, i.Status)
		return nil
	}
	return usagef("incident %s: unknown subcommand (want list, show, ack or resolve)", sub)
}

func incidentDetail(i *registry.Incident) string {
	var parts []string
	if i.Device.MerchantID != "" && i.Device.MerchantID != i.MerchantID {
		parts = append(parts, "DE42 "+i.Device.MerchantID)
	}
	if i.Facts.LocationKnown && i.Facts.DistanceM > 0 {
		parts = append(parts, fmt.Sprintf("%.0f m away", i.Facts.DistanceM))
	}
	if len(i.Device.Findings) > 0 {
		parts = append(parts, "findings "+strings.Join(i.Device.Findings, ","))
	}
	if i.Facts.Missing != "" {
		parts = append(parts, "missing "+i.Facts.Missing)
	}
	if i.Device.SourceIP != "" {
		parts = append(parts, "from "+i.Device.SourceIP)
	}
	if i.Action != "" {
		parts = append(parts, i.Action)
	}
	return orDash(strings.Join(parts, "; "))
}

// --- alert ---

func (t *tool) alert(args []string) error {
	if len(args) == 0 {
		return usagef("alert: want list, show or ack")
	}
	sub, args := args[0], args[1:]
	f := t.newFlags("alert " + sub)
	switch sub {
	case "list":
		status := f.String("status", "open", "open, acknowledged, recovered or all")
		rule := f.String("rule", "", "only this rule")
		terminal := f.String("terminal", "", "only this terminal")
		if _, err := f.parseN(args, 0, "no arguments"); err != nil {
			return err
		}
		var as []registry.Alert
		if err := t.call("GET", "/api/v1/alerts"+query("status", statusFilter(*status), "rule", *rule, "terminal", *terminal), nil, &as); err != nil {
			return err
		}
		if *f.json {
			return t.printJSON(as)
		}
		var rows [][]string
		for _, a := range as {
			seen := "never"
			if a.LastSeen != nil {
				seen = ts(a.LastSeen.Time)
			}
			var acts []string
			for _, r := range a.Actions {
				s := r.Type
				if !r.OK {
					s += "(failed)"
				}
				acts = append(acts, s)
			}
			rows = append(rows, []string{a.ID, ts(a.Time), a.RuleID, a.TerminalID, a.MerchantID, seen,
				time.Duration(a.OfflineFor).Round(time.Minute).String(), string(a.Status), orDash(strings.Join(acts, ","))})
		}
		t.table("ID\tTIME\tRULE\tTERMINAL\tMERCHANT\tLAST SEEN\tOFFLINE FOR\tSTATUS\tACTIONS", rows)
		return nil
	case "show":
		pos, err := f.parseN(args, 1, "an alert ID")
		if err != nil {
			return err
		}
		var a registry.Alert
		if err := t.call("GET", "/api/v1/alerts/"+seg(pos[0]), nil, &a); err != nil {
			return err
		}
		return t.printJSON(a)
	case "ack", "acknowledge":
		note := f.String("note", "", "note")
		pos, err := f.parseN(args, 1, "an alert ID")
		if err != nil {
			return err
		}
		var a registry.Alert
		if err := t.call("POST", "/api/v1/alerts/"+seg(pos[0])+"/ack", registry.ReasonRequest{Note: *note}, &a); err != nil {
			return err
		}
		if *f.json {
			return t.printJSON(a)
		}
		fmt.Fprintf(t.out, "%s %s\n", a.ID, a.Status)
		return nil
	}
	return usagef("alert %s: unknown subcommand (want list, show or ack)", sub)
}

// --- alert rules ---

type multiFlag []string

// String returns the values, comma-separated.
func (m *multiFlag) String() string { return strings.Join(*m, ",") }

// Set adds a value.
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

func (t *tool) alertRule(args []string) error {
	if len(args) == 0 {
		return usagef("alert-rule: want list, set or delete")
	}
	sub, args := args[0], args[1:]
	f := t.newFlags("alert-rule " + sub)
	switch sub {
	case "list":
		if _, err := f.parseN(args, 0, "no arguments"); err != nil {
			return err
		}
		var rules []registry.AlertRule
		if err := t.call("GET", "/api/v1/alert-rules", nil, &rules); err != nil {
			return err
		}
		if *f.json {
			return t.printJSON(rules)
		}
		var rows [][]string
		for _, r := range rules {
			var acts []string
			for _, a := range r.Actions {
				s := a.Type
				if a.URL != "" {
					s += "=" + a.URL
				}
				acts = append(acts, s)
			}
			state := "enabled"
			if r.Disabled {
				state = "disabled"
			}
			rows = append(rows, []string{r.ID, time.Duration(r.Threshold).String(), filterText(r.Filter), strings.Join(acts, ","), state})
		}
		t.table("ID\tTHRESHOLD\tFILTER\tACTIONS\tSTATE", rows)
		return nil
	case "set":
		threshold := f.Duration("threshold", registry.DefaultOfflineThreshold, "silence before an alert")
		merchants := f.String("merchant", "", "merchant IDs, comma-separated")
		regions := f.String("region", "", "regions, comma-separated")
		kinds := f.String("kind", "", "kinds, comma-separated")
		statuses := f.String("status", "", "terminal statuses, comma-separated (default active)")
		desc := f.String("description", "", "description")
		disabled := f.Bool("disabled", false, "keep the rule but do not run it")
		reason := f.String("reason", "", "reason of the change request (a rule with the suspend action is reviewed)")
		var actions multiFlag
		f.Var(&actions, "action", "log, suspend or webhook=URL (repeatable; default log)")
		pos, err := f.parseN(args, 1, "a rule ID")
		if err != nil {
			return err
		}
		rule := registry.AlertRule{ID: pos[0], Description: *desc, Threshold: registry.Duration(*threshold), Disabled: *disabled,
			Filter: registry.AlertFilter{Merchants: splitList(*merchants), Regions: splitList(*regions)}}
		for _, k := range splitList(*kinds) {
			rule.Filter.Kinds = append(rule.Filter.Kinds, registry.TerminalKind(k))
		}
		for _, s := range splitList(*statuses) {
			rule.Filter.Statuses = append(rule.Filter.Statuses, registry.TerminalStatus(s))
		}
		for _, a := range actions {
			typ, u, _ := strings.Cut(a, "=")
			rule.Actions = append(rule.Actions, registry.AlertAction{Type: typ, URL: u})
		}
		// A rule that suspends terminals comes back as a change request (202), any
		// other as the saved rule.
		var raw json.RawMessage
		body := struct {
			registry.AlertRule
			Reason string `json:"reason,omitempty"`
		}{rule, *reason}
		if err := t.call("PUT", "/api/v1/alert-rules/"+seg(rule.ID), body, &raw); err != nil {
			return err
		}
		var probe struct {
			Op registry.Op `json:"op"`
		}
		if err := json.Unmarshal(raw, &probe); err == nil && probe.Op != "" {
			var c registry.Change
			if err := json.Unmarshal(raw, &c); err != nil {
				return fmt.Errorf("alert-rule set: decode change: %w", err)
			}
			return t.printChange(&c, *f.json)
		}
		var out registry.AlertRule
		if err := json.Unmarshal(raw, &out); err != nil {
			return fmt.Errorf("alert-rule set: decode rule: %w", err)
		}
		if *f.json {
			return t.printJSON(out)
		}
		fmt.Fprintf(t.out, "alert rule %s saved: after %v silence, %s\n", out.ID, time.Duration(out.Threshold), filterText(out.Filter))
		return nil
	case "delete":
		pos, err := f.parseN(args, 1, "a rule ID")
		if err != nil {
			return err
		}
		if err := t.call("DELETE", "/api/v1/alert-rules/"+seg(pos[0]), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(t.out, "alert rule %s deleted\n", pos[0])
		return nil
	}
	return usagef("alert-rule %s: unknown subcommand (want list, set or delete)", sub)
}

func filterText(f registry.AlertFilter) string {
	var parts []string
	add := func(name string, vals []string) {
		if len(vals) > 0 {
			parts = append(parts, name+"="+strings.Join(vals, ","))
		}
	}
	add("merchant", f.Merchants)
	add("region", f.Regions)
	var ks, ss []string
	for _, k := range f.Kinds {
		ks = append(ks, string(k))
	}
	for _, s := range f.Statuses {
		ss = append(ss, string(s))
	}
	add("kind", ks)
	if len(ss) == 0 {
		ss = []string{"active"}
	}
	add("status", ss)
	return strings.Join(parts, " ")
}
