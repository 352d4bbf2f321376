package csvcell

import (
	"bytes"
	"encoding/csv"
	"testing"
)

// TestEscape checks the rule: formula starters are quoted, numbers (negative
// amounts) and ordinary text are not, and Unescape gives every value back.
func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		`=HYPERLINK("http://x","y")`: `'=HYPERLINK("http://x","y")`,
		"+1+cmd|' /C calc'!A0":       "'+1+cmd|' /C calc'!A0",
		"-2+3":                       "'-2+3",
		"@SUM(A1)":                   "'@SUM(A1)",
		"\tx":                        "'\tx",
		"\r=1":                       "'\r=1",
		"＝1+1":                       "'＝1+1",
		"'=1":                        "''=1",
		"-100.00":                    "-100.00",
		"-100":                       "-100",
		"+5":                         "+5",
		"-":                          "'-",
		"-Inf":                       "'-Inf",
		"Noodle Bar":                 "Noodle Bar",
		"O'Brien":                    "O'Brien",
		"'quoted":                    "'quoted",
		"a=b":                        "a=b",
		"":                           "",
		"上海=店":                       "上海=店",
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
		if back := Unescape(Escape(in)); back != in {
			t.Errorf("Unescape(Escape(%q)) = %q", in, back)
		}
	}
	if got := Unescape("'abc"); got != "'abc" {
		t.Errorf("Unescape('abc) = %q, want it as it is", got)
	}
}

// TestWriter checks that the Writer escapes every cell of every record.
func TestWriter(t *testing.T) {
	var b bytes.Buffer
	w := NewWriter(&b)
	if err := w.Write([]string{"name", "amount"}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteAll([][]string{{"=1+1", "-100.00"}, {"@x", "5"}}); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if recs[1][0] != "'=1+1" || recs[1][1] != "-100.00" || recs[2][0] != "'@x" {
		t.Fatalf("records %q", recs)
	}
}
