package cli

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/switch/qr"
)

// TestQRDecode: the published EMVCo example decodes with its CRC; a payload whose
// CRC is wrong exits 1 saying so; no payload is a usage error.
func TestQRDecode(t *testing.T) {
	const example = "00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678520441115802CN5914BEST TRANSPORT6007BEIJING64200002ZH0104最佳运输0202北京540523.7253031565502016233030412340603***0708A60086670902ME91320016A0112233449988770708123456786304A13A"
	run := func(args ...string) (string, int) {
		var out bytes.Buffer
		code := Main(&Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out, Getenv: func(string) string { return "" }}, args)
		return out.String(), code
	}
	if out, code := run("qr", "decode", example); code != 0 || !strings.Contains(out, "BEST TRANSPORT") || !strings.Contains(out, "CRC ok") {
		t.Fatalf("example: exit %d\n%s", code, out)
	}
	if out, code := run("qr", "decode", example[:len(example)-1]+"B"); code != 1 || !strings.Contains(out, "CRC mismatch") {
		t.Fatalf("bad CRC: exit %d\n%s", code, out)
	}
	if _, code := run("qr", "decode"); code != 2 {
		t.Fatalf("no payload: exit %d", code)
	}
}

// TestQRDecodeEscapesControls: a payload (whoever printed the code's) whose
// merchant name carries an escape sequence decodes with the name shown as
// visible escapes; --json keeps the bytes (JSON escapes them). Before, decode
// wrote the bytes, and the operator's terminal acted on them.
func TestQRDecodeEscapesControls(t *testing.T) {
	body := "000201" + "5910AB\x1b]52;c;\a" + "6304"
	payload := body + qr.CRC(body)
	code, out, errs := runCLI(t, nil, "qr", "decode", payload)
	if code != 0 || strings.ContainsAny(out, "\x1b\a") || !strings.Contains(out, ` AB\x1b]52;c;\x07`+"\n") {
		t.Fatalf("qr decode: exit %d\n%q%s", code, out, errs)
	}
	if _, out, _ := runCLI(t, nil, "qr", "decode", "--json", payload); !strings.Contains(out, `AB\u001b]52;c;\u0007`) {
		t.Fatalf("qr decode --json:\n%s", out)
	}
}

// TestQRDecodeArguments: --json may follow the payload, as the README writes it
// (before, the payload ended the flags and the command printed its usage, exit 2);
// a payload split by the shell at a space in its merchant name is a usage error
// that says to quote it, not the usage alone.
func TestQRDecodeArguments(t *testing.T) {
	body := "000201" + "5912Demo Grocery" + "6304"
	payload := body + qr.CRC(body)
	code, out, errs := runCLI(t, nil, "qr", "decode", payload, "--json")
	if code != 0 || !strings.Contains(out, `"Demo Grocery"`) {
		t.Fatalf("qr decode PAYLOAD --json: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCLI(t, nil, "qr", "decode", "--json", payload)
	if code != 0 || !strings.Contains(out, `"Demo Grocery"`) {
		t.Fatalf("qr decode --json PAYLOAD: exit %d\n%s%s", code, out, errs)
	}
	words := strings.Fields(payload)
	code, out, errs = runCLI(t, nil, append([]string{"qr", "decode"}, words...)...)
	if code != 2 || out != "" || !strings.Contains(errs, "got 2 words: quote the payload") {
		t.Fatalf("unquoted payload: exit %d\n%s%s", code, out, errs)
	}
}

// TestQRDecodeQU: the base64 of DE 48 QU (the whole code of a merchant named in
// another script, as `term qr-order --json` shows the tag) decodes as the payload
// it carries, saying so on standard error; base64 of something else is still
// refused as a payload. Before, it was refused with `ID "MD" at offset 0 is not two
// digits`, which did not say what to do.
func TestQRDecodeQU(t *testing.T) {
	body := "000201" + "010212" + "5915Lanzhou Noodles" + "64150002ZH0105兰州拉面馆" + "6304"
	payload := body + qr.CRC(body)
	code, out, errs := runCLI(t, nil, "qr", "decode", base64.StdEncoding.EncodeToString([]byte(payload)))
	if code != 0 || !strings.Contains(out, "兰州拉面馆") || !strings.Contains(out, "CRC ok") || !strings.Contains(errs, "DE 48 QU") {
		t.Fatalf("qr decode QU: exit %d\n%s%s", code, out, errs)
	}
	// The ID 64 row's name keeps the column: its value starts where ID 59's does.
	var col59, col64 int
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, "59 "):
			col59 = strings.Index(l, "Lanzhou")
		case strings.HasPrefix(l, "64 "):
			col64 = strings.Index(l, "0002ZH")
		}
	}
	if col59 <= 0 || col59 != col64 {
		t.Errorf("ID 59's value at column %d, ID 64's at %d:\n%s", col59, col64, out)
	}
	code, _, errs = runCLI(t, nil, "qr", "decode", base64.StdEncoding.EncodeToString([]byte("hello, world")))
	if code != 1 || !strings.Contains(errs, "not two digits") {
		t.Fatalf("base64 of no payload: exit %d\n%s", code, errs)
	}
}
