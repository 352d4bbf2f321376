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

// TestCLIMerchantNameLatin: merchant register and change take --name-latin and
// --name-language through review, merchant show prints them, --name-latin ""
// takes the ASCII name away, and a country code given as the language (cn) or a
// Chinese ASCII name is refused naming the field.
func TestCLIMerchantNameLatin(t *testing.T) {
	e := newEnv(t)
	e.mustRun(t, op, "merchant", "register", "000000000000090", "--name", "星巴克（南京西路店）", "--name-latin", "Starbucks Nanjing W Rd",
		"--name-language", "zh", "--mcc", "5814", "--region", "CN-SH", "--tier", "micro")
	e.mustRun(t, rev, "change", "approve", "CHG-1")
	out := e.mustRun(t, an, "merchant", "show", "000000000000090")
	if !strings.Contains(out, "Starbucks Nanjing W Rd") || !regexpLine(out, "Name language", "zh") {
		t.Errorf("merchant show:\n%s", out)
	}
	e.mustRun(t, op, "merchant", "change", "000000000000090", "--name-latin", "")
	e.mustRun(t, rev, "change", "approve", "CHG-2")
	if out := e.mustRun(t, an, "merchant", "show", "000000000000090", "--json"); strings.Contains(out, "name_latin") || !strings.Contains(out, `"name_language": "zh"`) {
		t.Errorf("merchant show --json after --name-latin \"\":\n%s", out)
	}
	for _, bad := range [][]string{{"--name-language", "cn", `name_language) "cn"`}, {"--name-latin", "星巴克", "name_latin"}} {
		code, _, errs := e.run(t, op, "merchant", "change", "000000000000090", bad[0], bad[1])
		if code == ExitOK || !strings.Contains(errs, bad[2]) {
			t.Errorf("merchant change %v: exit %d, stderr %s; want refused naming the field", bad, code, errs)
		}
	}
}

// regexpLine reports whether out has a "label: value" line (any spacing).
func regexpLine(out, label, value string) bool {
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == label && strings.TrimSpace(v) == value {
			return true
		}
	}
	return false
}

// TestCLIChangeOfNothingRefused: merchant change --mcc with the MCC the merchant
// already has exits non-zero, saying there is nothing to change and why, and
// requests nothing (the next change is CHG-1).
func TestCLIChangeOfNothingRefused(t *testing.T) {
	e := newEnv(t)
	code, out, errs := e.run(t, op, "merchant", "change", "000000000000001", "--mcc", "5411")
	if code == ExitOK || !strings.Contains(errs, "merchant 000000000000001: nothing to change: mcc is already 5411") {
		t.Fatalf("merchant change of nothing: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	if out := e.mustRun(t, op, "merchant", "change", "000000000000001", "--mcc", "5812"); !strings.Contains(out, "CHG-1") {
		t.Errorf("the next change request:\n%s", out)
	}
}
