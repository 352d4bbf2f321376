package keytool

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/kcv"
	"github.com/switchyard/switchyard/hsm/tr31"
	"github.com/switchyard/switchyard/internal/cli/apiclient"
	"github.com/switchyard/switchyard/keys"
	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/api"
)

type fixture struct {
	db    *badger.DB
	store *keys.Store
	c     *apiclient.Client
	loc   *time.Location // the acquirer's zone the times are shown in
}

func setup(t *testing.T) *fixture {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	store, err := keys.NewStore(db, keys.Options{Demo: true})
	if err != nil {
		t.Fatal(err)
	}
	h, err := hsm.NewSoftware(context.Background(), store, keys.DemoLMK(), hsm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.LoadDemo(context.Background(), store, h); err != nil {
		t.Fatal(err)
	}
	auth, _ := admin.NewAuthenticator([]admin.Token{{Token: "tok", Principal: admin.Principal{Name: "custodian", Role: admin.RoleAdmin}}})
	sh, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{db: db, store: store, c: &apiclient.Client{Handler: api.New(api.Options{Auth: auth, Keys: store, HSM: h}), Token: "tok"}, loc: sh}
}

func (f *fixture) run(stdin string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := RunWithInput(context.Background(), args, f.c, f.loc, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestImportFromComponents(t *testing.T) {
	f := setup(t)
	c1, c2, c3 := "0123456789ABCDEF0123456789ABCDEF", "FEDCBA9876543210FEDCBA9876543210", "1111111111111111EEEEEEEEEEEEEEEE"
	code, out, errs := f.run(withKCV(c1)+"\n"+withKCV(c2)+"\n"+c3+"\n"+kcvOf(c3)+"\n", "import", "--type", "ZMK", "--id", "acq.ZMK", "--components", "3", "--owner", "acq")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	x := make([]byte, 16)
	for i, c := range []string{c1, c2, c3} {
		b, _ := hex.DecodeString(c)
		k, _ := kcv.TDES(b)
		if !strings.Contains(out, "component "+string(rune('1'+i))+" KCV: "+k.String()+"\n") {
			t.Errorf("component %d KCV %s missing:\n%s", i+1, k, out)
		}
		for j := range x {
			x[j] ^= b[j]
		}
	}
	kx, _ := kcv.TDES(x)
	if !strings.Contains(out, "combined KCV: "+kx.String()+"\n") || !strings.Contains(out, "stored acq.ZMK version 1: ZMK TDES-2KEY, KCV "+kx.String()) {
		t.Fatalf("output:\n%s", out)
	}
	for _, c := range []string{c1, c2, c3, strings.ToUpper(hex.EncodeToString(x))} {
		if strings.Contains(out, c) || strings.Contains(errs, c) {
			t.Fatal("key material printed")
		}
	}
	rec, err := f.store.Key(context.Background(), hsm.KeyRef{ID: "acq.ZMK"})
	if err != nil || rec.KCV != kx.String() || rec.CreatedBy != "custodian" {
		t.Fatalf("stored: %+v %v", rec, err)
	}
	// AES components use the CMAC KCV.
	a1, a2 := strings.Repeat("01", 32), strings.Repeat("10", 32)
	code, out, errs = f.run(withKCV(a1)+"\n"+withKCV(a2)+"\n", "import", "--type", "ZMK", "--id", "aes.ZMK", "--algorithm", "AES-256")
	if code != ExitOK {
		t.Fatalf("AES import: %s", errs)
	}
	ka, _ := kcv.AES(bytes.Repeat([]byte{0x11}, 32))
	if !strings.Contains(out, "combined KCV: "+ka.String()) {
		t.Fatalf("AES combined KCV:\n%s", out)
	}
}

func TestImportBadInput(t *testing.T) {
	f := setup(t)
	cases := []struct {
		stdin string
		args  []string
		code  int
		msg   string
	}{
		{"", []string{"import", "--id", "x.ZMK"}, ExitUsage, "--type is required"},
		{"", []string{"import", "--type", "ZMK", "--id", "x.ZMK", "--components", "4"}, ExitUsage, "want 2 or 3"},
		{"0123456789ABCDEF0123456789ABCDEF\n", []string{"import", "--type", "ZMK", "--id", "x.ZMK"}, ExitError, "standard input ended"},
		{"0123456789ABCDEF\n", []string{"import", "--type", "ZMK", "--id", "x.ZMK"}, ExitError, "component 1 is not 32 hex digits"},
		{withKCV("0123456789ABCDEF0123456789ABCDEF") + "\nXYZ\n", []string{"import", "--type", "ZMK", "--id", "x.ZMK"}, ExitError, "component 2 is not 32 hex digits"},
		{"0123456789ABCDEF0123456789ABCDEF 000000\n", []string{"import", "--type", "ZMK", "--id", "x.ZMK"}, ExitError, "its form says 000000"},
		{withKCV("0123456789ABCDEF0123456789ABCDEF") + "\n" + withKCV("1123456789ABCDEF0123456789ABCDEF") + "\n", []string{"import", "--type", "BOGUS", "--id", "x.ZMK"}, ExitError, "unknown key type"},
		{"", []string{"import", "--type", "ZMK", "--id", "x", "--algorithm", "RC4"}, ExitUsage, "unknown key algorithm"},
		{"", []string{"nope"}, ExitUsage, "unknown command"},
		{"", nil, ExitUsage, "usage"},
	}
	for _, c := range cases {
		code, out, errs := f.run(c.stdin, c.args...)
		if code != c.code || !strings.Contains(errs, c.msg) {
			t.Errorf("%v: exit %d %q, want %d with %q (stdout %q)", c.args, code, errs, c.code, c.msg, out)
		}
		if strings.Contains(errs, "0123456789ABCDEF0123456789ABCDEF") {
			t.Errorf("%v: component echoed in an error", c.args)
		}
	}
	if _, err := f.store.Key(context.Background(), hsm.KeyRef{ID: "x.ZMK"}); err == nil {
		t.Fatal("a failed import stored a key")
	}
}

func TestGenerateListRotateExportVerify(t *testing.T) {
	f := setup(t)
	code, out, errs := f.run("", "generate", "--type", "TPK", "--id", "T0000005.TPK", "--owner", "T0000001", "--export-kek", "T0000001.TMK", "--export-format", "ecb")
	if code != ExitOK || !strings.Contains(out, "stored T0000005.TPK version 1: TPK TDES-2KEY") || !strings.Contains(out, "exported: ") {
		t.Fatalf("generate: %d %s %s", code, out, errs)
	}
	code, out, errs = f.run("", "rotate", "--id", "T0000005.TPK", "--grace", "1h")
	if code != ExitOK || !strings.Contains(out, "version 2") {
		t.Fatalf("rotate: %d %s %s", code, out, errs)
	}
	code, out, _ = f.run("", "list")
	rows := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		f := strings.Fields(line)
		rows[f[0]+"/"+f[1]] = f
	}
	if code != ExitOK || !strings.HasPrefix(out, "ID ") || len(rows) != len(keys.DemoKeys)+2 ||
		rows["T0000005.TPK/1"][5] != "superseded" || rows["T0000005.TPK/2"][5] != "active" || rows["T0000001.TPK/1"][4] != "2DAF03" {
		t.Fatalf("list:\n%s", out)
	}
	for _, d := range keys.DemoKeys {
		if strings.Contains(out, d.Hex) {
			t.Fatal("list prints a key")
		}
	}
	code, out, _ = f.run("", "list", "--id", "T0000002.TAK")
	if code != ExitOK || strings.Count(out, "\n") != 2 || !strings.Contains(out, "TDES-2KEY/retail") {
		t.Fatalf("list --id:\n%s", out)
	}
	var l keys.KeyList
	code, out, _ = f.run("", "list", "--json")
	if err := json.Unmarshal([]byte(out), &l); code != ExitOK || err != nil || len(l.Keys) != len(rows) {
		t.Fatalf("list --json (%v):\n%s", err, out)
	}
	for _, d := range keys.DemoKeys {
		if strings.Contains(out, d.Hex) {
			t.Fatal("list --json prints a key")
		}
	}
	code, out, errs = f.run("", "export", "--id", "demo.ZPK", "--kek", "demo.ZMK")
	if code != ExitOK {
		t.Fatalf("export: %s", errs)
	}
	zmk, _ := hex.DecodeString("9BB091DF6B6162D3947AA46EDCFB312A")
	if h, k, err := tr31.Unwrap(zmk, strings.TrimSpace(out)); err != nil || h.Usage != "P0" || strings.ToUpper(hex.EncodeToString(k)) != "0DCE67517CFD3467CD514FFD137AEA20" {
		t.Fatalf("exported block: %v", err)
	}
	if code, out, _ := f.run("", "kcv", "--id", "demo.CVK"); code != ExitOK || !strings.Contains(out, "KCV 427655") {
		t.Fatalf("kcv: %s", out)
	}
	if code, _, errs := f.run("", "export", "--id", "demo.ZPK", "--kek", "T0000001.TPK"); code != ExitError || !strings.Contains(errs, "may not be used to wrap keys") {
		t.Fatalf("export under a TPK: %d %s", code, errs)
	}
	if code, _, errs := f.run("", "export", "--id", "demo.ZPK"); code != ExitUsage || !strings.Contains(errs, "--kek is required") {
		t.Fatalf("export without kek: %d %s", code, errs)
	}
	if code, _, errs := f.run("", "rotate", "--id", "nope.ZPK"); code != ExitError || !strings.Contains(errs, "404") {
		t.Fatalf("rotate unknown: %d %s", code, errs)
	}
	if code, _, errs := f.run("", "rotate", "--id", "demo.ZPK", "--grace", "soon"); code != ExitUsage {
		t.Fatalf("bad grace: %d %s", code, errs)
	}
	if code, out, _ := f.run("", "revoke", "--id", "T0000005.TPK", "--version", "1", "--reason", "test"); code != ExitOK || !strings.Contains(out, "revoked T0000005.TPK version 1") {
		t.Fatalf("revoke: %s", out)
	}
	code, out, errs = f.run("", "verify-log")
	if code != ExitOK || !strings.Contains(out, "key audit log OK") {
		t.Fatalf("verify-log: %d %s %s", code, out, errs)
	}
	// Alter entry 3 behind the store's back: verify-log names it.
	err := f.db.Update(func(txn *badger.Txn) error {
		k := []byte("keys/audit/e/0000000000000003")
		it, err := txn.Get(k)
		if err != nil {
			return err
		}
		v, _ := it.ValueCopy(nil)
		return txn.Set(k, bytes.Replace(v, []byte(`"demo-loader"`), []byte(`"mallory"`), 1))
	})
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs = f.run("", "verify-log")
	if code != ExitError || !strings.Contains(errs, "broken at entry 3") {
		t.Fatalf("tampered verify-log: %d %q %q", code, out, errs)
	}
}

// kcvOf is the KCV of a hex component (TDES, or AES for 32 bytes), as its form prints it.
func kcvOf(c string) string {
	b, _ := hex.DecodeString(c)
	if len(b) == 32 {
		k, _ := kcv.AES(b)
		return k.String()
	}
	k, _ := kcv.TDES(b)
	return k.String()
}

// withKCV is a component line with its form's KCV.
func withKCV(c string) string { return c + " " + kcvOf(c) }

// TestExportComponent: each call hands out the next component (demo mode lets one
// person take both); they combine to the key.
func TestExportComponent(t *testing.T) {
	f := setup(t)
	var comps []string
	for i := 1; i <= 2; i++ {
		code, out, errs := f.run("", "export-component", "--id", "demo.ZMK", "--components", "2")
		if code != ExitOK {
			t.Fatalf("component %d: exit %d: %s", i, code, errs)
		}
		lines := strings.Split(out, "\n")
		if len(lines) < 3 || !strings.Contains(lines[0], "component "+string(rune('0'+i))+" of 2") {
			t.Fatalf("component %d output:\n%s", i, out)
		}
		comps = append(comps, lines[1])
	}
	a, _ := hex.DecodeString(comps[0])
	b, _ := hex.DecodeString(comps[1])
	for i := range a {
		a[i] ^= b[i]
	}
	if k, _ := kcv.TDES(a); k.String() != "384BF4" {
		t.Fatalf("components combine to KCV %s, want the demo ZMK's 384BF4", k)
	}
}

// TestImportUnderKEK moves a key between two key stores that share a ZMK: exported
// under it on one (keys export), imported under it on the other (keys import --kek),
// with the same KCV; no clear component is handled.
func TestImportUnderKEK(t *testing.T) {
	from, to := setup(t), setup(t)
	code, block, errs := from.run("", "export", "--id", "demo.ZPK", "--kek", "demo.ZMK")
	if code != ExitOK {
		t.Fatalf("export: %s", errs)
	}
	block = strings.TrimSpace(block)
	_, want, _ := from.run("", "kcv", "--id", "demo.ZPK")
	_, rest, _ := strings.Cut(want, "KCV ")
	wantKCV := strings.Fields(rest + " ")[0]
	if len(wantKCV) != 6 {
		t.Fatalf("kcv: %q", want)
	}
	code, out, errs := to.run("", "import", "--type", "ZPK", "--id", "moved.ZPK", "--kek", "demo.ZMK", "--tr31", block, "--kcv", wantKCV)
	if code != ExitOK || !strings.Contains(out, "stored moved.ZPK version 1: ZPK") || !strings.Contains(out, "KCV "+wantKCV) {
		t.Fatalf("import under the ZMK: %d %s %s", code, out, errs)
	}
	if _, got, _ := to.run("", "kcv", "--id", "moved.ZPK"); !strings.Contains(got, "KCV "+wantKCV) {
		t.Fatalf("the imported key's KCV: %s, want %s", got, wantKCV)
	}
	for _, c := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"--kek", "demo.ZMK"}, ExitUsage, "one of --tr31 or --ecb"},
		{[]string{"--tr31", block}, ExitUsage, "want --kek"},
		{[]string{"--kek", "demo.ZMK", "--tr31", block, "--ecb", "00"}, ExitUsage, "one of --tr31 or --ecb"},
		{[]string{"--kek", "demo.ZMK", "--tr31", block, "--kcv", "000000"}, ExitError, "key check value mismatch"},
		{[]string{"--kek", "nope.ZMK", "--tr31", block}, ExitError, "nope.ZMK"},
	} {
		args := append([]string{"import", "--type", "ZPK", "--id", "again.ZPK"}, c.args...)
		if code, out, errs := to.run("", args...); code != c.code || !strings.Contains(errs, c.err) {
			t.Errorf("%v: exit %d, %q %q; want exit %d naming %q", c.args, code, out, errs, c.code, c.err)
		}
	}
}

// keys list shows ACTIVATE, EXPIRES and GRACE UNTIL in the acquirer's zone with the
// offset (before: UTC without a zone, "2026-12-01 17:30"); --json keeps RFC 3339.
func TestListShowsTimesInTheAcquirersZone(t *testing.T) {
	f := setup(t)
	code, out, errs := f.run("", "generate", "--type", "TPK", "--id", "T0000009.TPK", "--owner", "T0000009",
		"--activate-at", "2026-12-01T17:30:00Z", "--expires-at", "2027-06-01T00:00:00Z")
	if code != ExitOK {
		t.Fatalf("generate: %d %s %s", code, out, errs)
	}
	code, out, _ = f.run("", "list", "--id", "T0000009.TPK")
	if code != ExitOK || !strings.Contains(out, "  2026-12-02 01:30:00.000 +08:00  2027-06-01 08:00:00.000 +08:00  -  ") {
		t.Fatalf("list:\n%s", out)
	}
	code, out, _ = f.run("", "list", "--id", "T0000009.TPK", "--json")
	if code != ExitOK || !strings.Contains(out, `"2026-12-01T17:30:00Z"`) || strings.Contains(out, "+08:00") {
		t.Fatalf("list --json:\n%s", out)
	}
}

// keys card-hash-key prints the running switch's card hash key block as the
// configuration line that takes it; where the switch's configuration is not at hand
// (the tools' --data mode) it says so.
func TestCardHashKeyBlock(t *testing.T) {
	f := setup(t)
	if code, _, errs := f.run("", "card-hash-key"); code != ExitError || !strings.Contains(errs, "ask the running switch") {
		t.Fatalf("without a running switch: exit %d: %s", code, errs)
	}
	key := []byte("0123456789abcdef0123456789abcdef")
	block, err := keys.WrapCardHashKey(keys.DemoLMK(), key, nil)
	if err != nil {
		t.Fatal(err)
	}
	auth, _ := admin.NewAuthenticator([]admin.Token{{Token: "tok", Principal: admin.Principal{Name: "custodian", Role: admin.RoleAdmin}}})
	h, err := hsm.NewSoftware(context.Background(), f.store, keys.DemoLMK(), hsm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f.c = &apiclient.Client{Handler: api.New(api.Options{Auth: auth, Keys: f.store, HSM: h, CardHashKey: func(context.Context) (any, error) {
		return keys.CardHashKeyBlock{Source: "security.card_hash_key_file", KCV: keys.CardHashKeyKCV(key), Block: block}, nil
	}}), Token: "tok"}
	code, out, errs := f.run("", "card-hash-key")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"security.card_hash_key_file", keys.CardHashKeyKCV(key), "security:\n  card_hash_key_block: " + block + "\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, hex.EncodeToString(key)) || strings.Contains(out, string(key)) {
		t.Errorf("output shows the key:\n%s", out)
	}
}

// TestOwnerWithControlsRefused: a key's owner with control characters (an escape
// sequence that would act on an operator's terminal when listed) is refused, with a
// clear error; before 6 December 2026 it was stored, and `keys list` (which escapes
// what it prints, kit.Table) was the only guard.
func TestOwnerWithControlsRefused(t *testing.T) {
	f := setup(t)
	owner := "T9\x1b]52;c;eA==\a\x1b[2J"
	code, out, errs := f.run("", "generate", "--type", "TPK", "--id", "T0000009.TPK", "--owner", owner)
	if code == ExitOK || !strings.Contains(errs, "printable characters") || strings.ContainsAny(errs+out, "\x1b\a") {
		t.Fatalf("generate with a control character in the owner: %d %q %q", code, out, errs)
	}
	if code, out, _ := f.run("", "list", "--id", "T0000009.TPK"); code != ExitOK || strings.Contains(out, `T9\x1b`) {
		t.Errorf("list: %d, the key with that owner stored:\n%s", code, out)
	}
}

// TestCancelCeremony: import --enter 1 says until when the ceremony waits (in the
// acquirer's zone); cancel-ceremony ends it (a reason required), and says whose it
// was; a second cancel finds none.
func TestCancelCeremony(t *testing.T) {
	f := setup(t)
	c1 := "0123456789ABCDEF0123456789ABCDEF"
	code, out, errs := f.run(withKCV(c1)+"\n", "import", "--type", "ZMK", "--id", "half.ZMK", "--enter", "1")
	if code != ExitOK || !strings.Contains(out, "1 of 2 components of half.ZMK entered (by custodian); waiting for 1 more custodian(s) on this switch node until ") || !strings.Contains(out, " +08:00\n") {
		t.Fatalf("exit %d: %s %s", code, out, errs)
	}
	if code, _, errs := f.run("", "cancel-ceremony", "--id", "half.ZMK"); code != ExitUsage || !strings.Contains(errs, "--reason is required") {
		t.Fatalf("without a reason: exit %d %s", code, errs)
	}
	code, out, errs = f.run("", "cancel-ceremony", "--id", "half.ZMK", "--reason", "wrong form")
	if code != ExitOK || !strings.Contains(out, "cancelled the import ceremony of half.ZMK started by custodian at ") || !strings.Contains(out, "(1 of 2 components, by custodian)") {
		t.Fatalf("exit %d: %s %s", code, out, errs)
	}
	if code, _, errs := f.run("", "cancel-ceremony", "--id", "half.ZMK", "--reason", "again"); code == ExitOK || !strings.Contains(errs, "no ceremony for half.ZMK") {
		t.Fatalf("a second cancel: exit %d %s", code, errs)
	}
}

// TestRotateGraceBounded: keys rotate --grace takes 0s to 720h (keys.MaxGrace); a
// longer one (876000h, a century, was taken) and a negative one, said to be
// "not a duration like 24h" before, are refused as usage errors saying why, and
// nothing is rotated.
func TestRotateGraceBounded(t *testing.T) {
	f := setup(t)
	versions := func() int {
		vs, err := f.store.Versions("demo.ZPK")
		if err != nil {
			t.Fatal(err)
		}
		return len(vs)
	}
	before := versions()
	for _, c := range []struct{ grace, want string }{
		{"876000h", `--grace "876000h": at most 720h (30 days)`},
		{"721h", `--grace "721h": at most 720h (30 days)`},
		{"-1h", `--grace "-1h": must be positive`},
		{"soon", `--grace "soon" is not a duration like 24h`},
	} {
		if code, _, errs := f.run("", "rotate", "--id", "demo.ZPK", "--grace", c.grace); code != ExitUsage || !strings.Contains(errs, c.want) {
			t.Errorf("--grace %s: exit %d, stderr %q; want exit 2 saying %q", c.grace, code, errs, c.want)
		}
	}
	if n := versions(); n != before {
		t.Fatalf("a refused --grace rotated demo.ZPK: %d versions, had %d", n, before)
	}
	if code, out, errs := f.run("", "rotate", "--id", "demo.ZPK", "--grace", "720h"); code != ExitOK || !strings.Contains(out, "stored demo.ZPK version") {
		t.Fatalf("--grace 720h: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}
