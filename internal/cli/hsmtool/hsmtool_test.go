package hsmtool

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/hsm/dukpt"
	"github.com/switchyard/switchyard/hsm/pinblock"
	"github.com/switchyard/switchyard/internal/sym"
)

func run(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := run(args...)
	if code != ExitOK {
		t.Fatalf("%v: exit %d: %s", args, code, errs)
	}
	return out
}

func TestDUKPTTDES(t *testing.T) {
	out := mustRun(t, "dukpt", "--bdk", "0123456789ABCDEFFEDCBA9876543210", "--ksn", "FFFF9876543210E00001", "--pin", "1234", "--pan", "4012345678909", "--json")
	var r map[string]any
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	// X9.24-1:2009 Annex A.4 values (see testdata/vectors/crypto.json).
	want := map[string]string{
		"initial_key":      "6AC292FAA1315B4D858AB3A3D7D5933A",
		"transaction_key":  "042666B49184CFA368DE9628D0397BC9",
		"pin_key":          "042666B49184CF5C68DE9628D0397B36",
		"mac_request_key":  "042666B4918430A368DE9628D03984C9", // XOR 000000000000FF00 x2
		"mac_response_key": "042666B46E84CFA368DE96282F397BC9", // XOR 00000000FF000000 x2
		"pin_block":        "1B9C1845EB993A7A",
	}
	for k, v := range want {
		if r[k] != v {
			t.Errorf("%s = %v, want %s", k, r[k], v)
		}
	}
	// Text output has the same values.
	txt := mustRun(t, "dukpt", "--bdk", "0123456789ABCDEFFEDCBA9876543210", "--ksn", "FFFF9876543210E00001")
	if !strings.Contains(txt, "transaction_key: 042666B49184CFA368DE9628D0397BC9\n") || strings.Contains(txt, "pin_block") {
		t.Fatalf("text output:\n%s", txt)
	}
}

func TestDUKPTAES(t *testing.T) {
	out := mustRun(t, "dukpt", "--bdk", "FEDCBA9876543210F1F1F1F1F1F1F1F1", "--ksn", "123456789012345600000001", "--pin", "1234", "--pan", "4111111111111111", "--json")
	var raw map[string]any
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatal(err)
	}
	r := map[string]string{}
	for k, v := range raw {
		if s, ok := v.(string); ok {
			r[k] = s
		}
	}
	if raw["counter"] != float64(1) || raw["type"] != "AES" {
		t.Fatalf("counter/type: %v", raw)
	}
	if r["initial_key"] != "1273671EA26AC29AFA4D1084127652A1" || r["transaction_key"] != "4F21B565BAD9835E112B6465635EAE44" || r["pin_block_format"] != "ISO-4" {
		t.Fatalf("%v", r)
	}
	// The format 4 block decrypts under the printed PIN key.
	pk, _ := hex.DecodeString(r["pin_key"])
	c, _ := sym.NewAES(pk)
	blk, _ := hex.DecodeString(r["pin_block"])
	if p, err := pinblock.Decrypt(c, pinblock.Format4, blk, "4111111111111111"); err != nil || string(p) != "1234" {
		t.Fatalf("pin block: %v", err)
	}
	ksn, _ := dukpt.ParseAESKSN("123456789012345600000001")
	want, _ := dukpt.DeriveAESWorkingKey([]byte{0xFE, 0xDC, 0xBA, 0x98, 0x76, 0x54, 0x32, 0x10, 0xF1, 0xF1, 0xF1, 0xF1, 0xF1, 0xF1, 0xF1, 0xF1}, ksn, dukpt.UsageMACGeneration, dukpt.AES128)
	if r["mac_request_key"] != strings.ToUpper(hex.EncodeToString(want)) {
		t.Fatalf("mac_request_key %s", r["mac_request_key"])
	}
}

func TestMACKCVCVVPINBlock(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"mac", "--alg", "iso9797-1", "--key", "0123456789ABCDEF", "--data", "37363534333231204E6F77206973207468652074696D6520666F7220"}, "F1D30F68"},
		{[]string{"mac", "--alg", "retail", "--key", "7CA110454A1A6E570131D9619DC1376E", "--data", hex.EncodeToString([]byte("Hello World !!!!"))}, "F09B856213BAB83B"},
		{[]string{"mac", "--alg", "cmac", "--key", "8AA83BF8CBDA10620BC1BF19FBB6CD58BC313D4A371CA8B5", "--data", "6BC1BEE22E409F96E93D7E117393172AAE2D8A57"}, "743DDBE0CE2DC2ED"},
		{[]string{"mac", "--alg", "cmac", "--cipher", "aes", "--key", "2B7E151628AED2A6ABF7158809CF4F3C", "--data", ""}, "BB1D6929E95937287FA37D129B756746"},
		{[]string{"mac", "--alg", "cmac", "--key", "603DEB1015CA71BE2B73AEF0857D77811F352C073B6108D72D9810A30914DFF4", "--data", ""}, "028962F61B7BF89EFC6B551F4667D983"},
		{[]string{"kcv", "--key", "0123456789ABCDEFFEDCBA9876543210"}, "08D7B4"},
		{[]string{"kcv", "--key", "2B7E151628AED2A6ABF7158809CF4F3C", "--alg", "aes"}, "7AD386"},
		{[]string{"cvv", "--cvk-a", "0123456789ABCDEF", "--cvk-b", "FEDCBA9876543210", "--pan", "4123456789012345", "--expiry", "8701", "--service-code", "101"}, "561"},
		{[]string{"pinblock", "--format", "0", "--pin", "1234", "--pan", "43219876543210987"}, "0412AC89ABCDEF67"},
	}
	for _, c := range cases {
		out := mustRun(t, c.args...)
		if !strings.HasPrefix(out, c.want) || out != strings.ToUpper(out) {
			t.Errorf("%v = %q, want %s", c.args, out, c.want)
		}
	}
	// Random-fill formats: right structure.
	out := strings.TrimSpace(mustRun(t, "pinblock", "--format", "1", "--pin", "123456"))
	if len(out) != 16 || !strings.HasPrefix(out, "16123456") {
		t.Fatalf("format 1: %s", out)
	}
	out = strings.TrimSpace(mustRun(t, "pinblock", "--format", "4", "--pin", "1234", "--pan", "4111111111111111"))
	if len(out) != 32 || !strings.HasPrefix(out, "441234AAAAAAAAAA") {
		t.Fatalf("format 4: %s", out)
	}
}

func TestTR31Unwrap(t *testing.T) {
	blk := "D0112P0AE00E0000B82679114F470F540165EDFBF7E250FCEA43F810D215F8D207E2E417C07156A27E8E31DA05F7425509593D03A457DC34"
	kbpk := "88E1AB2A2E3DD38C1FA039A536500CC8A87AB9D62DC92C01058FA79F44657DE6"
	out := mustRun(t, "tr31", "unwrap", "--kbpk", kbpk, "--block", blk)
	for _, want := range []string{"version: D\n", "usage: P0\n", "algorithm: A\n", "mode_of_use: E\n", "exportability: E\n", "key_length: 16\n", "kcv: 08793E\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	if strings.Contains(out, "3F419E1CB7079442AA37474C2EFBF8B8") {
		t.Fatal("key printed without --show-key")
	}
	out = mustRun(t, "tr31", "unwrap", "--kbpk", kbpk, "--block", blk, "--show-key")
	if !strings.Contains(out, "key: 3F419E1CB7079442AA37474C2EFBF8B8\n") {
		t.Fatalf("--show-key:\n%s", out)
	}
	out = mustRun(t, "tr31", "unwrap", "--kbpk", "1D22BF32387C600AD97F9B97A51311AC", "--block", "B0104B0TX12S0100KS1800604B120F9292800000BB68BE8680A400D9191AD4ECE45B6E6C0D21C4738A52190E248719E24B433627")
	if !strings.Contains(out, "optional_block: KS 00604B120F9292800000\n") || !strings.Contains(out, "kcv: 9A4212\n") {
		t.Fatalf("B block:\n%s", out)
	}
}

func TestBadInput(t *testing.T) {
	secretKey := "0123456789ABCDEFFEDCBA98765432ZZ"
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{nil, ExitUsage, "usage"},
		{[]string{"frobnicate"}, ExitUsage, "unknown command"},
		{[]string{"dukpt", "--bdk", "0123456789ABCDEFFEDCBA9876543210"}, ExitUsage, "--ksn is required"},
		{[]string{"dukpt", "--bdk", secretKey, "--ksn", "FFFF9876543210E00001"}, ExitUsage, "--bdk is not hex"},
		{[]string{"dukpt", "--bdk", "0123456789ABCDEFFEDCBA9876543210", "--ksn", "FFFF9876543210E0001"}, ExitUsage, "want 20 hex digits"},
		{[]string{"dukpt", "--bdk", "0123456789ABCDEFFEDCBA9876543210", "--ksn", "FFFF9876543210E00000"}, ExitError, "counter 0"},
		{[]string{"dukpt", "--bdk", "0123456789ABCDEF", "--ksn", "FFFF9876543210E00001"}, ExitError, "16 bytes"},
		{[]string{"dukpt", "--bdk", "0123456789ABCDEFFEDCBA9876543210", "--ksn", "FFFF9876543210E00001", "--pin", "1234"}, ExitUsage, "go together"},
		{[]string{"dukpt", "--bdk", "0123456789ABCDEFFEDCBA9876543210", "--ksn", "FFFF9876543210E00001", "--pin", "12", "--pan", "4012345678909"}, ExitError, "PIN length"},
		{[]string{"mac", "--key", "00", "--data", "00"}, ExitUsage, "--alg is required"},
		{[]string{"mac", "--alg", "md5", "--key", "00", "--data", "00"}, ExitUsage, "want iso9797-1"},
		{[]string{"mac", "--alg", "retail", "--key", "0123456789ABCDEF", "--data", "00"}, ExitError, "want 16"},
		{[]string{"mac", "--alg", "retail", "--key", "0123456789ABCDEF0123456789ABCDEF", "--data", "0G"}, ExitUsage, "--data is not hex"},
		{[]string{"kcv"}, ExitUsage, "--key is required"},
		{[]string{"kcv", "--key", "0011", "--alg", "rsa"}, ExitUsage, "want tdes or aes"},
		{[]string{"kcv", "--key", "0011"}, ExitError, "want 8, 16 or 24"},
		{[]string{"cvv", "--cvk-a", "0123456789ABCDEF", "--cvk-b", "FEDCBA9876543210", "--pan", "4123456789012345", "--expiry", "8713", "--service-code", "101"}, ExitError, "month"},
		{[]string{"cvv", "--cvk-a", "0123456789ABCDEF", "--cvk-b", "FEDCBA9876543210", "--pan", "4123456789012345", "--expiry", "8701"}, ExitUsage, "--service-code is required"},
		{[]string{"tr31", "wrap"}, ExitUsage, "tr31 unwrap"},
		{[]string{"tr31", "unwrap", "--kbpk", "00112233445566778899AABBCCDDEEFF", "--block", "A0072P0TE00E0000F5161ED902807AF26F1D62263644BD24192FDB3193C730301CEE8701"}, ExitError, "does not authenticate"},
		{[]string{"tr31", "unwrap", "--kbpk", "00112233445566778899AABBCCDDEEFF", "--block", "X0072"}, ExitError, "shorter than"},
		{[]string{"pinblock", "--format", "2", "--pin", "1234", "--pan", "4111111111111111"}, ExitUsage, "want 0, 1, 3 or 4"},
		{[]string{"pinblock", "--format", "0", "--pin", "1234"}, ExitUsage, "--pan is required"},
		{[]string{"pinblock", "--format", "0", "--pin", "12a4", "--pan", "4111111111111111"}, ExitError, "non-digit"},
		{[]string{"pinblock", "--format", "0", "--pin", "1234", "--pan", "41111111111111119999"}, ExitError, "411111**********9999"},
		{[]string{"pinblock", "--format", "0", "--pin", "1234", "--pan", "4111111111111111", "extra"}, ExitUsage, "unexpected argument"},
		{[]string{"pinblock", "--bogus"}, ExitUsage, "flag provided but not defined"},
	}
	for _, c := range cases {
		code, out, errs := run(c.args...)
		if code != c.code || !strings.Contains(errs, c.msg) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d with %q", c.args, code, errs, c.code, c.msg)
		}
		if out != "" {
			t.Errorf("%v: stdout %q on failure", c.args, out)
		}
		if strings.Contains(errs, secretKey) || strings.Contains(errs, "4111111111111111") {
			t.Errorf("%v: stderr leaks input: %s", c.args, errs)
		}
	}
	if code, _, _ := run("help"); code != ExitOK {
		t.Error("help is not exit 0")
	}
}
