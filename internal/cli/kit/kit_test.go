package kit

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestWantsHelp(t *testing.T) {
	for _, c := range []struct {
		args []string
		want bool
	}{
		{nil, false},
		{[]string{"-h"}, true},
		{[]string{"help"}, true},
		{[]string{"freeze", "M1", "--help"}, true},
		{[]string{"list", "-help"}, true},
		{[]string{"list", "--json"}, false},
		{[]string{"register", "--", "-h"}, false}, // after --, -h is an argument
		{[]string{"show", "help"}, false},         // "help" only as the first word
	} {
		if got := WantsHelp(c.args); got != c.want {
			t.Errorf("WantsHelp(%q) = %v, want %v", c.args, got, c.want)
		}
	}
}

func TestUsageErrorsAndOutput(t *testing.T) {
	if !IsUsage(fmt.Errorf("merchant: %w", Usagef("want %d", 1))) || IsUsage(fmt.Errorf("refused")) {
		t.Error("IsUsage does not tell usage errors from others")
	}
	var b bytes.Buffer
	if err := CSV(&b, []string{"a", "b"}, [][]string{{"1", "x,y"}}); err != nil || b.String() != "a,b\n1,\"x,y\"\n" {
		t.Errorf("CSV = %q, %v", b.String(), err)
	}
	b.Reset()
	Table(&b, "ID\tNAME", [][]string{{"1", "one"}, {"22", "two"}})
	if !strings.Contains(b.String(), "ID  NAME\n1   one\n22  two\n") {
		t.Errorf("Table = %q", b.String())
	}
}

// TestFieldsAndLocalTime: a record for people is aligned "Label: value" lines, one a
// row whatever the value holds; times are the acquirer's with their offset.
func TestFieldsAndLocalTime(t *testing.T) {
	var b bytes.Buffer
	Fields(&b, [][2]string{{"Merchant", "000000000000001"}, {"Group", ""}, {"Status reason", "two\nlines\tand a tab"}})
	want := "Merchant:      000000000000001\nGroup:         -\nStatus reason: two lines and a tab\n"
	if b.String() != want {
		t.Errorf("Fields =\n%q\nwant\n%q", b.String(), want)
	}
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 1, 17, 30, 0, 0, time.UTC)
	if got := LocalTime(at, shanghai); got != "2026-12-02 01:30:00.000 +08:00" {
		t.Errorf("LocalTime in Asia/Shanghai = %q", got)
	}
	if got := LocalTime(at, nil); got != "2026-12-01 17:30:00.000 +00:00" {
		t.Errorf("LocalTime in nil (UTC) = %q", got)
	}
	if got := LocalTime(time.Time{}, shanghai); got != "-" {
		t.Errorf("LocalTime of the zero time = %q, want -", got)
	}
}

// TestTableAndFieldsEscapeControls: what a merchant's webhook host put in its
// status line (an OSC 52 clipboard write, a line erase), a C1 CSI, a stray byte
// and a tab or line break in a reason reach the operator's terminal as visible
// escapes, one row a line; other text (Chinese too) as it is. Before, Table
// wrote the bytes as they were, and the terminal acted on them.
func TestTableAndFieldsEscapeControls(t *testing.T) {
	evil := "500 Oops\x1b]52;c;ZWNobyBwd25lZA==\a\x1b[2K"
	var b bytes.Buffer
	Table(&b, "ID\tERROR\tNAME", [][]string{{"1", evil, "上海\u009b31m"}, {"2", "a\tb\nc\r\nd", "bad\xffbyte"}})
	Fields(&b, [][2]string{{"Last error", evil}, {"Reason", "one\r\ntwo\x7f"}})
	out := b.String()
	for i, r := range out {
		if (r < 0x20 && r != '\n') || r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == utf8.RuneError {
			t.Fatalf("control character %U at %d in:\n%s", r, i, out)
		}
	}
	for _, want := range []string{`Oops\x1b]52;c;ZWNobyBwd25lZA==\x07\x1b[2K`, `上海\u009b31m`, "a b c  d", `bad\xffbyte`, "one two\\x7f"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "\n"); n != 5 {
		t.Errorf("%d lines, want 5 (header, 2 rows, 2 fields):\n%s", n, out)
	}
}

// TestForTerminalLines: the line feeds of a text of several lines stay; the
// escape sequences and carriage returns in its lines are shown as ForTerminal
// shows them.
func TestForTerminalLines(t *testing.T) {
	got := ForTerminalLines("ERROR: x\x1b[2J\r\n | a\x1b]52;c;eA==\a\n | ^")
	if want := `ERROR: x\x1b[2J ` + "\n" + ` | a\x1b]52;c;eA==\x07` + "\n | ^"; got != want {
		t.Errorf("ForTerminalLines = %q, want %q", got, want)
	}
}

// TestCSVFormulaCells: CSV (rules backtest --format csv) quotes a cell a
// spreadsheet would run as a formula, such as a rule name or terminal taken from
// outside, and leaves negative amounts numbers.
func TestCSVFormulaCells(t *testing.T) {
	var b bytes.Buffer
	if err := CSV(&b, []string{"rule", "amount"}, [][]string{{"=cmd|' /C calc'!A0", "-150"}, {"plain", "+2.50"}}); err != nil {
		t.Fatal(err)
	}
	want := "rule,amount\n'=cmd|' /C calc'!A0,-150\nplain,+2.50\n"
	if b.String() != want {
		t.Errorf("CSV wrote\n%s\nwant\n%s", b.String(), want)
	}
}

// TestTableAlignsChineseByWidth: a table with Chinese names keeps its columns
// aligned on the terminal (a Chinese character takes two columns), the names
// unescaped; a bidi override or a zero-width space in a cell is escaped.
func TestTableAlignsChineseByWidth(t *testing.T) {
	var b bytes.Buffer
	Table(&b, "ID\tNAME\tMCC", [][]string{{"1", "星巴克（南京西路店）", "5814"}, {"22", "Tea House", "5411"}, {"3", "上海\u202e鲜果\u200b", "5411"}})
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 4 || !strings.Contains(lines[1], "星巴克（南京西路店）") || !strings.Contains(lines[3], `上海\u202e鲜果\u200b`) {
		t.Fatalf("table:\n%s", b.String())
	}
	col := -1
	for _, l := range lines {
		i := strings.LastIndex(l, "  ") + 2
		if w := Width(l[:i]); col == -1 {
			col = w
		} else if w != col {
			t.Errorf("last column at display column %d, want %d:\n%s", w, col, b.String())
		}
	}
	if Width("星巴克（南京西路店）") != 20 || Width("Tea") != 3 || Width("e\u0301") != 1 {
		t.Errorf("Width: %d %d %d, want 20 3 1", Width("星巴克（南京西路店）"), Width("Tea"), Width("e\u0301"))
	}
}
