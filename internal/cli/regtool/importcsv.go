package regtool

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/switchyard/switchyard/switch/registry"
)

// importCSV runs `merchant import` or `terminal import` (kind): it sends the CSV
// file (at most registry.MaxImportBytes) to the registry's import as it is, prints
// each row's outcome and says what was requested. A rejected row makes the exit
// code ExitError.
func (t *tool) importCSV(f *flags, kind string, args []string) error {
	reason := f.String("reason", "", "why (default: CSV import of N "+kind+"s)")
	dry := f.Bool("dry-run", false, "check the rows only; request nothing")
	pos, err := f.parseN(args, 1, "a CSV file")
	if err != nil {
		return err
	}
	file, err := os.Open(pos[0])
	if err != nil {
		return fmt.Errorf("%s import: %w", kind, err)
	}
	defer file.Close()
	if fi, err := file.Stat(); err != nil {
		return fmt.Errorf("%s import: %w", kind, err)
	} else if fi.Size() > registry.MaxImportBytes {
		return fmt.Errorf("%s import: %s is %d MB, over the %d MB an import reads: split it (at most %d rows each)",
			kind, pos[0], fi.Size()>>20, registry.MaxImportBytes>>20, registry.MaxImportRows)
	}
	// The file goes as it is (text/csv), not inside JSON, which would turn bytes
	// that are not UTF-8 (a GBK file) into U+FFFD before the registry could say
	// which line is not UTF-8, and takes at most 8 MB.
	q := url.Values{}
	if *reason != "" {
		q.Set("reason", *reason)
	}
	if *dry {
		q.Set("dry_run", "1")
	}
	path := "/api/v1/" + kind + "s/import"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var rep registry.ImportReport
	ctx, cancel := context.WithTimeout(t.ctx, 30*time.Second) // as Do's calls
	defer cancel()
	if err := t.c.Send(ctx, "POST", path, file, &rep); err != nil {
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
