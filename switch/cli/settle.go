package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

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
	fs := newFlags(env, "settle", "--date YYYY-MM-DD [--csv | --json] [--out FILE] [--data DIR | --admin URL --token T]\n(with --data, the day is in $SWITCHYARD_TIMEZONE, default Asia/Shanghai)")
	date := fs.String("date", "", "the local day to settle (default: yesterday)")
	asCSV := fs.Bool("csv", false, "write CSV")
	asJSON := fs.Bool("json", false, "write JSON")
	outFile := fs.String("out", "", "write to this file instead of standard output")
	if ok, code := parse(fs, rest); !ok {
		return code
	}
	if *date == "" {
		*date = time.Now().AddDate(0, 0, -1).Format("2006-01-02")
	}
	var rep server.Settlement
	if err := c.Do(env.Ctx, "GET", "/api/v1/settlement?date="+*date, nil, &rep); err != nil {
		return fail(env, "settle: %v", err)
	}
	var w io.Writer = env.Stdout
	if *outFile != "" {
		f, err := os.Create(*outFile)
		if err != nil {
			return fail(env, "settle: %v", err)
		}
		defer f.Close()
		w = f
	}
	switch {
	case *asJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	case *asCSV:
		err = rep.WriteCSV(w)
	default:
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "MID\tTID\tCUR\tPURCHASES\tAMOUNT\tREFUNDS\tAMOUNT\tNET\t\n")
		row := func(l server.SettlementLine) {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t\n", l.MID, orDash(l.TID), l.Currency, l.PurchaseCount, l.PurchaseAmount, l.RefundCount, l.RefundAmount, l.Net)
		}
		for _, l := range rep.Lines {
			row(l)
		}
		for _, l := range rep.Merchants {
			row(l)
		}
		row(rep.Total)
		err = tw.Flush()
	}
	if err != nil {
		return fail(env, "settle: %v", err)
	}
	return 0
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
