// Package hsmtool is the support engineers' offline crypto calculator (the
// "switchyard hsm" command): DUKPT keys and PIN blocks, MACs, KCVs, CVVs, TR-31
// unwrapping and clear PIN blocks, from keys given on the command line. It needs no
// switch and is meant for test keys only. Results are upper-case hex (a CVV is
// digits); bad input gives a clear message on stderr and a non-zero exit status.
package hsmtool

import (
	"crypto/cipher"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/switchyard/switchyard/hsm/cvv"
	"github.com/switchyard/switchyard/hsm/dukpt"
	"github.com/switchyard/switchyard/hsm/kcv"
	"github.com/switchyard/switchyard/hsm/mac"
	"github.com/switchyard/switchyard/hsm/pinblock"
	"github.com/switchyard/switchyard/hsm/tr31"
	"github.com/switchyard/switchyard/internal/cli/kit"
	"github.com/switchyard/switchyard/internal/sym"
)

// Subcommands are the subcommands of the hsm command.
var Subcommands = []string{"dukpt", "mac", "kcv", "cvv", "tr31", "pinblock", "serve"}

// Exit statuses of Run.
const (
	ExitOK    = kit.ExitOK    // success
	ExitError = kit.ExitError // the operation failed (bad key, bad block, ...)
	ExitUsage = kit.ExitUsage // bad command line
)

const usage = `usage: switchyard hsm <command> [flags]   (test keys only)

commands:
  dukpt    --bdk HEX --ksn HEX [--pin PIN --pan PAN] [--json]
           20-hex-digit KSN: TDES DUKPT (X9.24-1); 24: AES DUKPT (X9.24-3).
           Prints initial_key, transaction_key, pin_key, mac_request_key,
           mac_response_key and, with --pin and --pan, the encrypted pin_block
           (ISO format 0 for TDES, format 4 for AES).
  mac      --alg iso9797-1|retail|cmac --key HEX --data HEX [--cipher tdes|aes]
           iso9797-1: MAC algorithm 1 (DES/TDES CBC-MAC), retail: algorithm 3
           (16-byte key), both with padding method 1; cmac: TDES for 16 and
           24-byte keys, AES for 32-byte keys, unless --cipher says otherwise.
  kcv      --key HEX [--alg tdes|aes]
           tdes (default for 8, 16, 24-byte keys): encrypt zeros; aes (default for
           32-byte keys): CMAC of a zero block. Leftmost 3 bytes.
  cvv      --cvk-a HEX --cvk-b HEX --pan PAN --expiry YYMM --service-code NNN
           Visa CVV (service code 000 gives CVV2, 999 gives iCVV).
  tr31     unwrap --kbpk HEX --block BLOCK [--show-key]
           Header fields and the key's KCV; the key itself only with --show-key.
  pinblock --format 0|1|3|4 --pin PIN --pan PAN
           The clear ISO 9564 PIN block (format 4: the plain-text PIN field).
  serve    [--addr 127.0.0.1:1500] [--header-length 4] [--lmk-scheme keyblock|variant] --lmk-file F | --lmk-env V | --demo
           The software HSM behind the payShield host protocol, for the switch's
           hsm.backend payshield, the bench and other systems (docs/hsm.md).
`

// usagef returns a usage error (exit ExitUsage), kit's.
func usagef(format string, args ...any) error { return kit.Usagef(format, args...) }

// Run runs the hsm command line args (without the program and "hsm" words) and
// returns the exit status.
func Run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	var err error
	switch args[0] {
	case "dukpt":
		err = runDUKPT(args[1:], stdout, stderr)
	case "mac":
		err = runMAC(args[1:], stdout, stderr)
	case "kcv":
		err = runKCV(args[1:], stdout, stderr)
	case "cvv":
		err = runCVV(args[1:], stdout, stderr)
	case "tr31":
		err = runTR31(args[1:], stdout, stderr)
	case "pinblock":
		err = runPINBlock(args[1:], stdout, stderr)
	case "serve":
		err = runServe(args[1:], stdout, stderr)
	default:
		err = usagef("unknown command %q (want dukpt, mac, kcv, cvv, tr31, pinblock or serve)", args[0])
	}
	if err == nil {
		return ExitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	if kit.IsUsage(err) {
		fmt.Fprintf(stderr, "switchyard hsm %s: %v\nrun 'switchyard hsm help' for usage\n", args[0], err)
		return ExitUsage
	}
	fmt.Fprintf(stderr, "switchyard hsm %s: %v\n", args[0], err)
	return ExitError
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &kit.UsageError{Msg: err.Error()}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// hexArg decodes a required hex flag value; the error never repeats the value.
func hexArg(name, v string) ([]byte, error) {
	if v == "" {
		return nil, usagef("--%s is required", name)
	}
	v = strings.Join(strings.Fields(v), "")
	b, err := hex.DecodeString(v)
	if err != nil {
		return nil, usagef("--%s is not hex (%d characters; hex digits only, an even number)", name, len(v))
	}
	return b, nil
}

func upper(b []byte) string { return strings.ToUpper(hex.EncodeToString(b)) }

// dukptResult is the output of the dukpt command.
type dukptResult struct {
	Type           string `json:"type"`
	KSN            string `json:"ksn"`
	Counter        uint32 `json:"counter"`
	InitialKey     string `json:"initial_key"`
	TransactionKey string `json:"transaction_key"`
	PINKey         string `json:"pin_key"`
	MACRequestKey  string `json:"mac_request_key"`
	MACResponseKey string `json:"mac_response_key"`
	PINBlock       string `json:"pin_block,omitempty"`
	PINBlockFormat string `json:"pin_block_format,omitempty"`
}

func runDUKPT(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("dukpt", stderr)
	bdkHex := fs.String("bdk", "", "base derivation key (hex)")
	ksnHex := fs.String("ksn", "", "key serial number: 20 hex digits (TDES) or 24 (AES)")
	pin := fs.String("pin", "", "PIN to encrypt (with --pan)")
	pan := fs.String("pan", "", "PAN for the PIN block")
	asJSON := fs.Bool("json", false, "print a JSON object")
	if err := parse(fs, args); err != nil {
		return err
	}
	bdk, err := hexArg("bdk", *bdkHex)
	if err != nil {
		return err
	}
	defer sym.Wipe(bdk)
	if (*pin == "") != (*pan == "") {
		return usagef("--pin and --pan go together")
	}
	var r dukptResult
	var pinCipher func() (cipher.Block, error)
	var format pinblock.Format
	switch len(*ksnHex) {
	case 20:
		ksn, err := dukpt.ParseKSN(*ksnHex)
		if err != nil {
			return err
		}
		if len(bdk) != 16 {
			return fmt.Errorf("a TDES DUKPT BDK is 16 bytes (32 hex digits), --bdk has %d bytes", len(bdk))
		}
		ipek, err := dukpt.IPEK(bdk, ksn)
		if err != nil {
			return err
		}
		txn, err := dukpt.TransactionKeyFromIPEK(ipek, ksn)
		if err != nil {
			return err
		}
		pk, _ := dukpt.WorkingKey(txn, dukpt.PINVariant)
		mreq, _ := dukpt.WorkingKey(txn, dukpt.MACRequestVariant)
		mresp, _ := dukpt.WorkingKey(txn, dukpt.MACResponseVariant)
		r = dukptResult{Type: "TDES", KSN: ksn.String(), Counter: ksn.Counter(), InitialKey: upper(ipek), TransactionKey: upper(txn),
			PINKey: upper(pk), MACRequestKey: upper(mreq), MACResponseKey: upper(mresp)}
		format = pinblock.Format0
		pinCipher = func() (cipher.Block, error) {
			return sym.NewTDES(pk)
		}
	case 24:
		ksn, err := dukpt.ParseAESKSN(*ksnHex)
		if err != nil {
			return err
		}
		kt, err := dukpt.AESKeyTypeForLength(len(bdk))
		if err != nil {
			return fmt.Errorf("an AES DUKPT BDK is 16, 24 or 32 bytes, --bdk has %d bytes", len(bdk))
		}
		ik, err := dukpt.AESInitialKey(bdk, ksn.InitialKeyID())
		if err != nil {
			return err
		}
		txn, err := dukpt.AESTransactionKeyFromInitial(ik, ksn)
		if err != nil {
			return err
		}
		pk, err := dukpt.AESWorkingKey(txn, ksn, dukpt.UsagePINEncryption, kt)
		if err != nil {
			return err
		}
		mreq, _ := dukpt.AESWorkingKey(txn, ksn, dukpt.UsageMACGeneration, kt)
		mresp, _ := dukpt.AESWorkingKey(txn, ksn, dukpt.UsageMACVerification, kt)
		r = dukptResult{Type: "AES", KSN: ksn.String(), Counter: ksn.Counter(), InitialKey: upper(ik), TransactionKey: upper(txn),
			PINKey: upper(pk), MACRequestKey: upper(mreq), MACResponseKey: upper(mresp)}
		format = pinblock.Format4
		pinCipher = func() (cipher.Block, error) {
			return sym.NewAES(pk)
		}
	default:
		if *ksnHex == "" {
			return usagef("--ksn is required")
		}
		return usagef("--ksn is %d characters: want 20 hex digits (TDES DUKPT) or 24 (AES DUKPT)", len(*ksnHex))
	}
	if *pin != "" {
		c, err := pinCipher()
		if err != nil {
			return err
		}
		blk, err := pinblock.Encrypt(c, format, []byte(*pin), *pan, nil)
		if err != nil {
			return err
		}
		r.PINBlock, r.PINBlockFormat = upper(blk), format.String()
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	fmt.Fprintf(stdout, "type: %s\nksn: %s\ncounter: %d\ninitial_key: %s\ntransaction_key: %s\npin_key: %s\nmac_request_key: %s\nmac_response_key: %s\n",
		r.Type, r.KSN, r.Counter, r.InitialKey, r.TransactionKey, r.PINKey, r.MACRequestKey, r.MACResponseKey)
	if r.PINBlock != "" {
		fmt.Fprintf(stdout, "pin_block: %s\npin_block_format: %s\n", r.PINBlock, r.PINBlockFormat)
	}
	return nil
}

func runMAC(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("mac", stderr)
	alg := fs.String("alg", "", "iso9797-1, retail or cmac")
	keyHex := fs.String("key", "", "MAC key (hex)")
	dataHex := fs.String("data", "", "data (hex)")
	cipherName := fs.String("cipher", "", "for cmac: tdes or aes (default from the key length)")
	if err := parse(fs, args); err != nil {
		return err
	}
	key, err := hexArg("key", *keyHex)
	if err != nil {
		return err
	}
	defer sym.Wipe(key)
	data, err := hex.DecodeString(strings.Join(strings.Fields(*dataHex), ""))
	if err != nil {
		return usagef("--data is not hex")
	}
	var out []byte
	switch strings.ToLower(*alg) {
	case "iso9797-1", "alg1", "1":
		out, err = mac.Alg1Key(key, data, mac.Padding1)
	case "retail", "iso9797-1-alg3", "alg3", "x9.19", "3":
		out, err = mac.Alg3(key, data, mac.Padding1)
	case "cmac":
		c := strings.ToLower(*cipherName)
		if c == "" {
			c = "tdes"
			if len(key) == 32 {
				c = "aes"
			}
		}
		var m *mac.CMAC
		switch c {
		case "tdes":
			m, err = mac.NewTDESCMAC(key)
		case "aes":
			m, err = mac.NewAESCMAC(key)
		default:
			return usagef("--cipher %q: want tdes or aes", *cipherName)
		}
		if err == nil {
			out = m.Sum(nil, data)
		}
	case "":
		return usagef("--alg is required (iso9797-1, retail or cmac)")
	default:
		return usagef("--alg %q: want iso9797-1, retail or cmac", *alg)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, upper(out))
	return nil
}

func runKCV(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("kcv", stderr)
	keyHex := fs.String("key", "", "key (hex)")
	alg := fs.String("alg", "", "tdes or aes (default: aes for 32-byte keys, else tdes)")
	if err := parse(fs, args); err != nil {
		return err
	}
	key, err := hexArg("key", *keyHex)
	if err != nil {
		return err
	}
	defer sym.Wipe(key)
	a := strings.ToLower(*alg)
	if a == "" {
		a = "tdes"
		if len(key) == 32 {
			a = "aes"
		}
	}
	var k kcv.KCV
	switch a {
	case "tdes", "des":
		k, err = kcv.TDES(key)
	case "aes":
		k, err = kcv.AES(key)
	default:
		return usagef("--alg %q: want tdes or aes", *alg)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, k.String())
	return nil
}

func runCVV(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("cvv", stderr)
	a := fs.String("cvk-a", "", "CVK A (16 hex digits)")
	b := fs.String("cvk-b", "", "CVK B (16 hex digits)")
	pan := fs.String("pan", "", "PAN")
	exp := fs.String("expiry", "", "expiry YYMM")
	sc := fs.String("service-code", "", "service code (000 for CVV2, 999 for iCVV)")
	if err := parse(fs, args); err != nil {
		return err
	}
	ka, err := hexArg("cvk-a", *a)
	if err != nil {
		return err
	}
	kb, err := hexArg("cvk-b", *b)
	if err != nil {
		return err
	}
	for name, v := range map[string]string{"pan": *pan, "expiry": *exp, "service-code": *sc} {
		if v == "" {
			return usagef("--%s is required", name)
		}
	}
	c, err := cvv.NewPair(ka, kb)
	if err != nil {
		return err
	}
	v, err := c.Compute(*pan, *exp, *sc)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, v)
	return nil
}

func runTR31(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		fmt.Fprintln(stderr, "usage: switchyard hsm tr31 unwrap --kbpk HEX --block BLOCK [--show-key]")
		return flag.ErrHelp
	}
	if len(args) == 0 || args[0] != "unwrap" {
		return usagef("want 'tr31 unwrap --kbpk HEX --block BLOCK [--show-key]'")
	}
	fs := newFlags("tr31 unwrap", stderr)
	kbpkHex := fs.String("kbpk", "", "key block protection key (hex)")
	block := fs.String("block", "", "TR-31 key block")
	show := fs.Bool("show-key", false, "also print the clear key")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	kbpk, err := hexArg("kbpk", *kbpkHex)
	if err != nil {
		return err
	}
	defer sym.Wipe(kbpk)
	if *block == "" {
		return usagef("--block is required")
	}
	h, key, err := tr31.Unwrap(kbpk, strings.TrimSpace(*block))
	if err != nil {
		return err
	}
	defer sym.Wipe(key)
	var k kcv.KCV
	if h.Algorithm == tr31.AlgAES {
		k, err = kcv.AES(key)
	} else {
		k, err = kcv.TDES(key)
	}
	kcvText := k.String()
	if err != nil {
		kcvText = "n/a"
	}
	fmt.Fprintf(stdout, "version: %c\nusage: %s\nalgorithm: %c\nmode_of_use: %c\nkey_version: %s\nexportability: %c\n",
		h.Version, h.Usage, h.Algorithm, h.ModeOfUse, h.KeyVersion, h.Exportability)
	for _, b := range h.Blocks {
		fmt.Fprintf(stdout, "optional_block: %s %s\n", b.ID, b.Data)
	}
	fmt.Fprintf(stdout, "key_length: %d\nkcv: %s\n", len(key), kcvText)
	if *show {
		fmt.Fprintf(stdout, "key: %s\n", upper(key))
	}
	return nil
}

func runPINBlock(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("pinblock", stderr)
	format := fs.String("format", "", "ISO 9564 format: 0, 1, 3 or 4")
	pin := fs.String("pin", "", "PIN (4-12 digits)")
	pan := fs.String("pan", "", "PAN (formats 0, 3)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *format == "" {
		return usagef("--format is required")
	}
	f, err := pinblock.ParseFormat(*format)
	if err != nil {
		return &kit.UsageError{Msg: err.Error()}
	}
	if *pin == "" {
		return usagef("--pin is required")
	}
	if *pan == "" && (f == pinblock.Format0 || f == pinblock.Format3) {
		return usagef("--pan is required for %s", f)
	}
	p := []byte(*pin)
	defer pinblock.Wipe(p)
	b, err := pinblock.Encode(f, p, *pan, nil)
	if err != nil {
		return err
	}
	defer pinblock.Wipe(b)
	fmt.Fprintln(stdout, upper(b))
	return nil
}
