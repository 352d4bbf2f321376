package kit

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
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
