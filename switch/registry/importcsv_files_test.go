package registry

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestCSVImportSpreadsheetFiles reads merchant files as spreadsheets save them: a
// UTF-8 byte order mark before a quoted header (Excel's "CSV UTF-8"), CRLF line
// ends, a header in other case, spacing and order, a quoted name spanning two
// lines (refused, on its first line), a short row, and cells escaped against formulas (csvcell), whose quote is removed.
func TestCSVImportSpreadsheetFiles(t *testing.T) {
	f := newFixture(t)
	in := "\ufeff\"Name\", MCC ,Merchant_ID,REGION,tier\r\n" +
		"\"Noodles, Hall 3\",5812,MX0000000000001,CN-SH,micro\r\n" +
		"\"'=HYPERLINK(\"\"http://x\"\")\",5812,MX0000000000002,CN-SH,micro\r\n" +
		"\"Two\r\nlines\",5812,MX0000000000003,CN-SH,micro\r\n" +
		"Short,5812\r\n" +
		"After,5812,MX0000000000005,CN-SH,micro\r\n"
	rep, err := f.reg.ImportMerchants(alice, strings.NewReader(in), "", true)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int]string{}
	for _, r := range rep.Rows {
		got[r.Line] = r.MerchantID + " " + fmt.Sprint(r.OK) + " " + r.Error
	}
	want := map[int]string{2: "MX0000000000001 true ", 3: "MX0000000000002 true ", 7: "MX0000000000005 true "}
	for line, w := range want {
		if got[line] != w {
			t.Errorf("line %d: %q, want %q", line, got[line], w)
		}
	}
	// The quoted name with a line break starts on line 4 (and is refused: a name
	// holds no control character, and the error names it); the short row is line 6.
	if !strings.HasPrefix(got[4], "MX0000000000003 false") || !strings.Contains(got[4], "U+000A") {
		t.Errorf("line 4 (a name over two lines): %q", got[4])
	}
	if !strings.Contains(got[6], "has 2 fields, the header has 5") {
		t.Errorf("line 6 (too few fields): %q", got[6])
	}

	rep, err = f.reg.ImportMerchants(alice, strings.NewReader(strings.Replace(in, "Short,5812\r\n", "", 1)), "", false)
	if err != nil || rep.Change == nil {
		t.Fatalf("import: %v, %+v", err, rep)
	}
	if _, err := f.reg.Approve(bob, rep.Change.ID, ""); err != nil {
		t.Fatal(err)
	}
	if m, _ := f.reg.Merchant("MX0000000000001"); m == nil || m.Name != "Noodles, Hall 3" {
		t.Errorf("MX0000000000001 = %+v", m)
	}
	if m, _ := f.reg.Merchant("MX0000000000002"); m == nil || m.Name != `=HYPERLINK("http://x")` {
		t.Errorf("MX0000000000002 (escaped name) = %+v", m)
	}
}

// TestCSVImportRefusesNonUTF8 refuses a GBK file (a Chinese Excel's plain "CSV")
// whole, naming the line, rather than storing its names garbled or importing the
// rows before it.
func TestCSVImportRefusesNonUTF8(t *testing.T) {
	f := newFixture(t)
	gbk := "\xc9\xcf\xba\xa3" // 上海 in GBK
	in := "merchant_id,name,mcc,region,tier\n" +
		"MX0000000000001,Plain,5812,CN-SH,micro\n" +
		"MX0000000000002," + gbk + "店,5812,CN-SH,micro\n"
	rep, err := f.reg.ImportMerchants(alice, strings.NewReader(in), "", false)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(fmt.Sprint(err), "line 3") || !strings.Contains(fmt.Sprint(err), "UTF-8") {
		t.Fatalf("GBK file: %+v, %v; want the file refused naming line 3", rep, err)
	}
	if cs, _ := f.reg.Changes(ChangeFilter{}); len(cs) != 0 {
		t.Errorf("a change was requested for a refused file: %+v", cs)
	}
	_, err = f.reg.ImportTerminals(alice, strings.NewReader("terminal_id,merchant_id,kind,"+gbk+"\n"), "", false)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(fmt.Sprint(err), "line 1") {
		t.Errorf("GBK header: %v", err)
	}
}

// TestCSVImportTooLarge refuses a file over MaxImportBytes whole.
func TestCSVImportTooLarge(t *testing.T) {
	f := newFixture(t)
	var b strings.Builder
	b.WriteString("terminal_id,merchant_id,kind,model\n")
	pad := strings.Repeat("x", 1<<20)
	for b.Len() <= MaxImportBytes {
		fmt.Fprintf(&b, "B%07d,000000000000003,pos,%s\n", b.Len(), pad)
	}
	if _, err := f.reg.ImportTerminals(alice, strings.NewReader(b.String()), "", true); !errors.Is(err, ErrInvalid) || !strings.Contains(fmt.Sprint(err), "split it") {
		t.Errorf("a %d-byte file: %v", b.Len(), err)
	}
}

// TestCSVImportHashFirstCell imports a row whose first cell starts with '#' (a
// name first, "#1 Noodles"): it was taken for a comment and left out unreported.
func TestCSVImportHashFirstCell(t *testing.T) {
	f := newFixture(t)
	in := "name,merchant_id,mcc,region,tier\n#1 Noodles,MX0000000000001,5812,CN-SH,micro\n"
	rep, err := f.reg.ImportMerchants(alice, strings.NewReader(in), "", true)
	if err != nil || len(rep.Rows) != 1 || !rep.Rows[0].OK {
		t.Fatalf("import: %+v, %v; want its one row accepted", rep, err)
	}
}

// TestCSVImportRowBounds: a spreadsheet's blank rows (",,,,") are skipped, not
// rejected; more than MaxImportRows rows refuse the file whole.
func TestCSVImportRowBounds(t *testing.T) {
	f := newFixture(t)
	in := "merchant_id,name,mcc,region,tier\r\nMX0000000000001,A,5812,CN-SH,micro\r\n,,,,\r\n , ,,,\r\n"
	rep, err := f.reg.ImportMerchants(alice, strings.NewReader(in), "", true)
	if err != nil || len(rep.Rows) != 1 || rep.Rejected != 0 {
		t.Errorf("blank rows: %+v, %v; want one row, none rejected", rep, err)
	}
	var b strings.Builder
	b.WriteString("terminal_id,merchant_id,kind\n")
	for i := 0; i <= MaxImportRows; i++ {
		fmt.Fprintf(&b, "B%07d,000000000000003,pos\n", i)
	}
	rep, err = f.reg.ImportTerminals(alice, strings.NewReader(b.String()), "", false)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(fmt.Sprint(err), "more than 10000 rows") || rep != nil {
		t.Errorf("%d rows: %+v, %v", MaxImportRows+1, rep, err)
	}
	if cs, _ := f.reg.Changes(ChangeFilter{}); len(cs) != 0 {
		t.Errorf("a change was requested for a refused file: %+v", cs)
	}
}
