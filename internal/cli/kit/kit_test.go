package kit

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
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
