package regtool

import (
	"fmt"
	"os"
	"strconv"

	"github.com/switchyard/switchyard/switch/registry"
)

// importCSV runs `merchant import` or `terminal import` (kind): it sends the CSV
// file to the registry's import, prints each row's outcome and says what was
// requested. A rejected row makes the exit code ExitError.
func (t *tool) importCSV(f *flags, kind string, args []string) error {
	reason := f.String("reason", "", "why (default: CSV import of N "+kind+"s)")
	dry := f.Bool("dry-run", false, "check the rows only; request nothing")
	pos, err := f.parseN(args, 1, "a CSV file")
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(pos[0])
	if err != nil {
		return fmt.Errorf("%s import: %w", kind, err)
	}
	var rep registry.ImportReport
	if err := t.call("POST", "/api/v1/"+kind+"s/import", registry.ImportRequest{CSV: string(raw), Reason: *reason, DryRun: *dry}, &rep); err != nil {
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
		id := r.TerminalID
		if kind == "merchant" {
			id = r.MerchantID
		}
		rows = append(rows, []string{strconv.Itoa(r.Line), orDash(id), res})
	}
	t.table(fmt.Sprintf("LINE\t%s\tRESULT", map[string]string{"merchant": "MERCHANT", "terminal": "TERMINAL"}[kind]), rows)
	fmt.Fprintf(t.out, "%d accepted, %d rejected.\n", rep.Accepted, rep.Rejected)
	switch {
	case rep.Change != nil:
		fmt.Fprintf(t.out, "%s requested: the accepted %ss are created when another reviewer runs: switchyard change approve %s\n", rep.Change.ID, kind, rep.Change.ID)
	case rep.DryRun:
		fmt.Fprintln(t.out, "Dry run: nothing requested.")
	default:
		fmt.Fprintln(t.out, "No row accepted: nothing requested.")
	}
	return nil
}
