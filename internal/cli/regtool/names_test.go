package regtool

import (
	"strings"
	"testing"
)

// TestCLIChineseMerchantName registers a merchant named in Chinese through the CLI
// and the API, and finds the name unescaped in merchant list and merchant show; a
// name with a right-to-left override is refused, the error naming the code point
// and not writing the character to the terminal.
func TestCLIChineseMerchantName(t *testing.T) {
	e := newEnv(t)
	const name = "星巴克（南京西路店）"
	e.mustRun(t, op, "merchant", "register", "000000000000088", "--name", name, "--mcc", "5814", "--region", "CN-SH",
		"--tier", "micro")
	e.mustRun(t, rev, "change", "approve", "CHG-1")
	if out := e.mustRun(t, an, "merchant", "list"); !strings.Contains(out, "000000000000088  "+name) {
		t.Errorf("merchant list does not show %q:\n%s", name, out)
	}
	if out := e.mustRun(t, an, "merchant", "show", "000000000000088"); !strings.Contains(out, name) {
		t.Errorf("merchant show does not show %q:\n%s", name, out)
	}
	code, out, errs := e.run(t, op, "merchant", "register", "000000000000089", "--name", "上海\u202e市超果鲜", "--mcc", "5411",
		"--region", "CN-SH", "--tier", "micro")
	if code == ExitOK || !strings.Contains(errs, "U+202E") || strings.Contains(out+errs, "\u202e") {
		t.Errorf("a name with a bidi override: exit %d\nstdout: %s\nstderr: %s\nwant refused, U+202E named, not written", code, out, errs)
	}
}
