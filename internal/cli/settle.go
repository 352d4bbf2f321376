package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/switchyard/switchyard/internal/cli/kit"
	"github.com/switchyard/switchyard/switch/server"
)

func init() {
	Register("settle", "write the settlement report of a day (per merchant and terminal; CSV or JSON)", runSettle)
}

func runSettle(env *Env, args []string) int {
	c, rest, done, err := adminClient(env, args)
	if err != nil {
		return fail(env, "settle: %v", err)
	}
	defer done()
	fs := newFlags(env, "settle", "--date YYYY-MM-DD [--csv | --json] [--out FILE] [--data DIR | --admin URL --token T]\n(the day is the switch's timezone's; with --data, $SWITCHYARD_TIMEZONE's, default Asia/Shanghai)\n"+
		"exit status 1 after writing the report when it is incomplete: records of the journal could not be read (their frames in the log damaged);\n"+
		"they are named on standard error (and in --json's \"unreadable\"), and the report's sums leave them out")
	date := fs.String("date", "", "the acquirer's day to settle, 00:00 to 24:00 in the switch's timezone (default: the switch's yesterday, in its timezone)")
	asCSV := fs.Bool("csv", false, "write CSV")
	asJSON := fs.Bool("json", false, "write JSON")
	outFile := fs.String("out", "", "write to this file instead of standard output")
	if ok, code := parseFlagsOnly(env, fs, rest); !ok {
		return code
	}
	if *asCSV && *asJSON {
		fmt.Fprintln(env.Stderr, "switchyard settle: --csv and --json: give one")
		return kit.ExitUsage
	}
	if *date != "" {
		if _, err := time.Parse("2006-01-02", *date); err != nil {
			fmt.Fprintf(env.Stderr, "switchyard settle: --date %q: want YYYY-MM-DD, a day such as 2026-12-04\n", *date)
			return kit.ExitUsage
		}
	}
	// Without --date the switch chooses the day: its yesterday, in its own
	// timezone (with --data, $SWITCHYARD_TIMEZONE's). Until the fifth release of 6
	// December 2026 the CLI chose it in $SWITCHYARD_TIMEZONE (default
	// Asia/Shanghai) whatever the switch's zone: against a switch in UTC it asked,
	// from 00:00 to 08:00 Shanghai time, for the UTC day not yet over.
	path := "/api/v1/settlement"
	if *date != "" {
		path += "?date=" + *date
	}
	var rep server.Settlement
	if err := c.Do(env.Ctx, "GET", path, nil, &rep); err != nil {
		return fail(env, "settle: %v", err)
	}
	var w io.Writer = env.Stdout
	var out *os.File
	if *outFile != "" {
		// Mode 600, as the switch's own settlement files (a report of every
		// merchant's takings): os.Create followed the umask (644 under 022).
		f, err := os.OpenFile(*outFile, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return fail(env, "settle: %v", err)
		}
		defer f.Close() // after the Close below, a no-op
		out, w = f, f
	}
	switch {
	case *asJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	case *asCSV:
		err = rep.WriteCSV(w)
	default:
		fmt.Fprintln(w, settlementDay(&rep))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		// LATE REVERSALS and their AMOUNT: the earlier days' transactions reversed this
		// day, as the net takes them (purchases off, refunds back). LATE PAYMENTS and
		// their AMOUNT: the earlier days' transactions journaled this day, as the net
		// takes them (purchases paid, refunds off).
		fmt.Fprintf(tw, "MID\tTID\tCUR\tPURCHASES\tAMOUNT\tREFUNDS\tAMOUNT\tLATE REVERSALS\tAMOUNT\tLATE PAYMENTS\tAMOUNT\tNET\t\n")
		row := func(l server.SettlementLine) {
			// A terminal's TID and MID are what its messages carried:
			// kit.ForTerminal escapes control characters in them.
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", kit.ForTerminal(l.MID), kit.ForTerminal(orDash(l.TID)), kit.ForTerminal(l.Currency), l.PurchaseCount, l.PurchaseAmount, l.RefundCount, l.RefundAmount,
				l.LateReversalCount+l.LateRefundReversalCount, l.LateRefundReversalAmount-l.LateReversalAmount,
				l.LatePaymentCount+l.LateRefundCount, l.LatePaymentAmount-l.LateRefundAmount, l.Net)
		}
		for _, l := range rep.Lines {
			row(l)
		}
		for _, l := range rep.Merchants {
			row(l)
		}
		for _, l := range rep.Totals { // one per currency
			row(l)
		}
		err = tw.Flush()
	}
	if err == nil && out != nil {
		err = out.Close() // a write the kernel refused shows here (a full disk)
	}
	if err != nil {
		return fail(env, "settle: %v", err)
	}
	if rep.Incomplete {
		// Never a short report taken for a whole one: everything is written, then
		// the records left out are named and the status says so.
		fmt.Fprintf(env.Stderr, "switchyard settle: the settlement of %s is INCOMPLETE: %d record(s) of the journal could not be read (their frames in the log damaged) and are not counted; check the disk, restore the data directory from its backup, then settle again:\n",
			kit.ForTerminal(rep.Date), len(rep.Unreadable))
		for _, u := range rep.Unreadable {
			fmt.Fprintf(env.Stderr, "  RRN %s: %s at offset %d: %s\n", kit.ForTerminal(u.RRN), kit.ForTerminal(u.File), u.Offset, kit.ForTerminal(u.Reason))
		}
		return kit.ExitError
	}
	return 0
}

// settlementDay says which span of time a settlement covers: the acquirer's day in the
// switch's zone, with offsets.
func settlementDay(rep *server.Settlement) string {
	loc, err := time.LoadLocation(rep.Timezone)
	if err != nil {
		return fmt.Sprintf("Settlement of %s (time zone %s)", rep.Date, rep.Timezone)
	}
	day, end, err := server.DayBounds(rep.Date, loc)
	if err != nil {
		return fmt.Sprintf("Settlement of %s (time zone %s)", rep.Date, rep.Timezone)
	}
	const l = "2006-01-02 15:04 -07:00"
	return fmt.Sprintf("Settlement of %s, the acquirer's day in %s: %s to %s", rep.Date, loc, day.Format(l), end.Format(l))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
