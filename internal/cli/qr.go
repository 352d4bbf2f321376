package cli

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/switchyard/switchyard/internal/cli/kit"
	"github.com/switchyard/switchyard/switch/qr"
)

const qrUsage = `Usage: switchyard qr decode [--json] PAYLOAD

Decodes an EMVCo merchant-presented QR payload: checks its TLV structure (ID 00 first,
two-digit IDs and lengths counted in characters) and its CRC (ID 63, CRC-16/CCITT-FALSE
over everything through "6304"), and prints its objects, templates opened. Exit 1 when
the payload is not valid, saying what is wrong and where. PAYLOAD may also be the base64
of DE 48 tag QU (the whole code of a merchant named in another script, as a terminal
gets it): it is decoded first, and said so on standard error.
`

func init() {
	registerTool("qr", "QR diagnostics: decode a merchant-presented payload (CRC and TLV)", qrUsage, []string{"decode"}, runQR)
}

func runQR(env *Env, args []string) int {
	if len(args) == 0 || args[0] != "decode" {
		fmt.Fprint(env.Stderr, qrUsage)
		return kit.ExitUsage
	}
	fs := newFlags(env, "qr decode", "[--json] PAYLOAD")
	asJSON := fs.Bool("json", false, "print the objects as JSON")
	// The payload may come before or after --json (the README writes
	// "qr decode PAYLOAD [--json]"); the flag package stops at the first word.
	var words []string
	for rest := args[1:]; ; {
		if ok, code := parse(fs, rest); !ok {
			return code
		}
		if fs.NArg() == 0 {
			break
		}
		words = append(words, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	switch len(words) {
	case 0:
		fmt.Fprint(env.Stderr, qrUsage)
		return kit.ExitUsage
	case 1:
	default:
		// An unquoted payload whose merchant name has a space ("Demo Grocery")
		// reaches us as several words: say so rather than print the usage alone.
		fmt.Fprintf(env.Stderr, "switchyard qr decode: want one PAYLOAD, got %d words: quote the payload (a merchant name or city in it may hold spaces)\n", len(words))
		return kit.ExitUsage
	}
	p, err := qr.Decode(words[0])
	if err != nil {
		if whole, ok := fromQU(words[0]); ok {
			if p, err = qr.Decode(whole); err != nil {
				return fail(env, "qr decode: PAYLOAD is base64 (DE 48 QU), decoded: %v", err)
			}
			fmt.Fprintln(env.Stderr, "qr decode: PAYLOAD is base64 (DE 48 QU): decoded it first")
		}
	}
	if err != nil {
		return fail(env, "qr decode: %v", err)
	}
	if *asJSON {
		b, _ := json.MarshalIndent(p, "", "  ")
		fmt.Fprintln(env.Stdout, string(b))
		return kit.ExitOK
	}
	var print func(objs []qr.Object, depth int)
	print = func(objs []qr.Object, depth int) {
		for _, o := range objs {
			name := objectName(o.ID)
			if depth > 0 {
				name = ""
			}
			// A payload is whoever printed the code's: kit.ForTerminal escapes
			// the control characters in its IDs and values.
			fmt.Fprintf(env.Stdout, "%s%s %-31s %s\n", strings.Repeat("   ", depth), kit.ForTerminal(o.ID), name, kit.ForTerminal(o.Value))
			print(o.Objects, depth+1)
		}
	}
	print(p.Objects, 0)
	fmt.Fprintln(env.Stdout, "CRC ok")
	return kit.ExitOK
}

// fromQU returns the payload that s, the value of a DE 48 QU tag, carries in
// base64 (RFC 4648, padded), and whether s is one: it decodes to UTF-8 text that
// starts as every payload does, with ID 00 "01". An operator copying the tag from
// `term --json` or a terminal's log then need not decode it by hand.
func fromQU(s string) (string, bool) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || !utf8.Valid(b) || !strings.HasPrefix(string(b), "000201") {
		return "", false
	}
	return string(b), true
}

// objectName names the top-level data objects of the merchant-presented payload.
func objectName(id string) string {
	switch id {
	case "00":
		return "payload format indicator"
	case "01":
		return "point of initiation"
	case "52":
		return "merchant category code"
	case "53":
		return "transaction currency"
	case "54":
		return "transaction amount"
	case "55":
		return "tip or convenience indicator"
	case "58":
		return "country code"
	case "59":
		return "merchant name"
	case "60":
		return "merchant city"
	case "61":
		return "postal code"
	case "62":
		return "additional data"
	case "63":
		return "CRC"
	case "64":
		return "merchant information (language)"
	}
	if id >= "02" && id <= "51" {
		return "merchant account information"
	}
	if id >= "80" {
		return "unreserved template"
	}
	return ""
}
