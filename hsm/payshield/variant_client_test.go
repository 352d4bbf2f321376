package payshield_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/mac"
	"github.com/switchyard/switchyard/hsm/payshield"
	"github.com/switchyard/switchyard/hsm/pinblock"
	"github.com/switchyard/switchyard/keys"
)

// serveVariant starts hsm serve's server under the published Thales test LMK
// (variant scheme) on a loopback port.
func serveVariant(t testing.TB) string {
	t.Helper()
	pairs, err := payshield.ParseVariantLMK(payshield.TestLMK)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := payshield.NewVariantServer(pairs, payshield.ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := serveOn(t, srv)
	return addr
}

// variantToken is what a payShield under the test LMK holds for a key of a key type
// code's pair and variant (scheme U), computed apart from the server.
func variantToken(t *testing.T, pair, variant int, keyHex string) string {
	t.Helper()
	p := unhex(payshield.TestLMK[pair])
	k := unhex(keyHex)
	for i, b := range k { // odd parity, as the HSM keeps keys
		n := 0
		for x := b &^ 1; x != 0; x &= x - 1 {
			n++
		}
		k[i] = b&^1 | byte(1-n%2)
	}
	enc, err := payshield.VariantEncrypt(p, variant, 'U', k)
	if err != nil {
		t.Fatal(err)
	}
	return "U" + strings.ToUpper(hex.EncodeToString(enc))
}

// TestClientEveryCommandVariant runs every command of the subset through the client
// (lmk_scheme variant) against hsm serve holding the Thales test variant LMK: the
// client sends each key's type code (001 ZPK, 002 TPK/TMK, 003 TAK, 008 ZAK, 009
// BDK, 402 CVK) and the tokens are the test LMK's, with the published X9.24 and
// Visa vectors where there are any.
func TestClientEveryCommandVariant(t *testing.T) {
	addr := serveVariant(t)
	e := newEnv(t, payshield.ClientOptions{Addrs: []string{addr}, LMKScheme: payshield.LMKVariant})
	ctx := e.ctx

	// FK (the demo keys, formed by newEnv) stored U tokens: the key under its key
	// type's LMK pair and variant. BU: every demo key's published check value.
	wantPair := map[hsm.KeyType][2]int{hsm.ZMK: {2, 0}, hsm.ZPK: {3, 0}, hsm.TMK: {7, 0}, hsm.TPK: {7, 0}, hsm.TAK: {8, 0}, hsm.BDK: {14, 0}, hsm.CVK: {7, 4}}
	for _, d := range keys.DemoKeys {
		rec, err := e.store.Key(ctx, hsm.KeyRef{ID: d.ID})
		if err != nil {
			t.Fatal(err)
		}
		p := wantPair[d.Type]
		if want := variantToken(t, p[0], p[1], d.Hex); rec.Block != want {
			t.Fatalf("%s stored as %s, want %s", d.ID, rec.Block, want)
		}
		k, err := e.client.KCV(ctx, hsm.KeyRef{ID: d.ID})
		if err != nil || k.KCV != d.KCV {
			t.Fatalf("BU %s: %+v, %v; want %s", d.ID, k, err, d.KCV)
		}
	}
	zpk := demoHex(keys.DemoIssuer + ".ZPK")
	issuerZPK := hsm.KeyRef{ID: keys.DemoIssuer + ".ZPK"}

	// G0 (BDK 009): the X9.24-1 Annex A.4 PIN block to the ZPK.
	out, err := e.client.TranslatePIN(ctx, hsm.TranslatePINRequest{KSN: "FFFF9876543210E00001", SourceFormat: pinblock.Format0,
		PINBlock: unhex("1B9C1845EB993A7A"), Dest: issuerZPK, DestFormat: pinblock.Format0, PAN: "4012345678909"})
	if err != nil || !bytes.Equal(tdesECB(t, zpk, out, true), unhex("041274EDCBA9876F")) {
		t.Fatalf("G0: %X, %v", out, err)
	}
	// CA (TPK 002 to ZPK 001).
	pb := tdesECB(t, demoHex("T0000001.TPK"), unhex("041274EDCBA9876F"), false)
	out, err = e.client.TranslatePIN(ctx, hsm.TranslatePINRequest{Source: hsm.KeyRef{ID: "T0000001.TPK"}, PINBlock: pb, Dest: issuerZPK, PAN: "4012345678909"})
	if err != nil || !bytes.Equal(tdesECB(t, zpk, out, true), unhex("041274EDCBA9876F")) {
		t.Fatalf("CA: %X, %v", out, err)
	}
	// A0 of a second ZPK, exported under the ZMK (ECB), and CC from the issuer's ZPK to it.
	zmk := hsm.KeyRef{ID: keys.DemoIssuer + ".ZMK"}
	z2, err := e.client.GenerateKey(ctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: "acq.ZPK", Type: hsm.ZPK},
		Export: &hsm.ExportSpec{KEK: zmk, Format: hsm.ExportECB}})
	if err != nil {
		t.Fatalf("A0 ZPK: %v", err)
	}
	if rec, _ := e.store.Key(ctx, z2.Ref); !strings.HasPrefix(rec.Block, "U") || len(rec.Block) != 33 {
		t.Fatalf("A0 stored %q, want a U token", rec.Block)
	}
	ecbHex, _, _ := strings.Cut(z2.Exported, ":")
	enc := unhex(ecbHex)
	z2clear := strings.ToUpper(hex.EncodeToString(append(tdesECB(t, demoHex(keys.DemoIssuer+".ZMK"), enc[:8], true),
		tdesECB(t, demoHex(keys.DemoIssuer+".ZMK"), enc[8:], true)...)))
	zpkPB := tdesECB(t, zpk, unhex("041274EDCBA9876F"), false)
	out, err = e.client.TranslatePIN(ctx, hsm.TranslatePINRequest{Source: issuerZPK, PINBlock: zpkPB, Dest: z2.Ref, PAN: "4012345678909"})
	if err != nil || !bytes.Equal(tdesECB(t, z2clear, out, true), unhex("041274EDCBA9876F")) {
		t.Fatalf("CC: %X, %v", out, err)
	}

	// M6 DUKPT (009): the X9.24 request MAC. M6/M8 under a TAK (003) and a new ZAK
	// (008): ISO 9797-1 algorithm 3 of the clear key.
	m, err := e.client.GenerateMAC(ctx, hsm.MACRequest{KSN: "FFFF9876543210E00001", Data: []byte("4012345678909D987")})
	if err != nil || strings.ToUpper(hex.EncodeToString(m)) != "9CCC78173FC4FB64" {
		t.Fatalf("M6 DUKPT: %X, %v; want 9CCC78173FC4FB64", m, err)
	}
	data := []byte("0200 a purchase to MAC")
	tak := hsm.MACRequest{Key: hsm.KeyRef{ID: "T0000002.TAK"}, Data: data}
	m, err = e.client.GenerateMAC(ctx, tak)
	if want, _ := mac.Alg3(unhex(demoHex("T0000002.TAK")), data, mac.Padding1); err != nil || !bytes.Equal(m, want[:len(m)]) {
		t.Fatalf("M6 TAK: %X, %v; want %X", m, err, want)
	}
	if err := e.client.VerifyMAC(ctx, tak, m); err != nil {
		t.Fatalf("M8 TAK: %v", err)
	}
	m[0] ^= 1
	var pe *payshield.Error
	if err := e.client.VerifyMAC(ctx, tak, m); !errors.Is(err, hsm.ErrMACMismatch) || !errors.As(err, &pe) || pe.Code != "01" {
		t.Fatalf("M8 wrong MAC: %v, want error 01", err)
	}
	zak, err := e.client.GenerateKey(ctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: "acq.ZAK", Type: hsm.ZAK}})
	if err != nil {
		t.Fatalf("A0 ZAK: %v", err)
	}
	zm := hsm.MACRequest{Key: zak.Ref, Data: data}
	if m, err = e.client.GenerateMAC(ctx, zm); err != nil {
		t.Fatalf("M6 ZAK: %v", err)
	}
	if err := e.client.VerifyMAC(ctx, zm, m); err != nil {
		t.Fatalf("M8 ZAK: %v", err)
	}

	// CW/CY (CVK 402): the Visa test CVK formed by FK, the published CVV.
	cvk := unhex("0123456789ABCDEFFEDCBA9876543210")
	c1 := unhex("1111111111111111111111111111111A")
	c2 := make([]byte, 16)
	for i := range c2 {
		c2[i] = cvk[i] ^ c1[i]
	}
	// AllowStoredValue: the Visa test CVK is the demo BDK's value.
	if res, err := e.client.FormKey(ctx, hsm.FormKeyRequest{KeySpec: hsm.KeySpec{ID: "VISA.CVK", Type: hsm.CVK}, Components: [][]byte{c1, c2}, AllowStoredValue: true}); err != nil || res.KCV != "08D7B4" {
		t.Fatalf("FK CVK: %+v, %v", res, err)
	}
	cv := hsm.CVVRequest{Key: hsm.KeyRef{ID: "VISA.CVK"}, PAN: "4123456789012345", Expiry: "8701", ServiceCode: "101"}
	if got, err := e.client.GenerateCVV(ctx, cv); err != nil || got != "561" {
		t.Fatalf("CW: %s, %v; want 561", got, err)
	}
	if err := e.client.VerifyCVV(ctx, cv, "561"); err != nil {
		t.Fatalf("CY: %v", err)
	}
	if err := e.client.VerifyCVV(ctx, cv, "562"); !errors.Is(err, hsm.ErrCVVMismatch) {
		t.Fatalf("CY wrong CVV: %v, want ErrCVVMismatch", err)
	}
	if k, err := e.client.KCV(ctx, hsm.KeyRef{ID: "VISA.CVK"}); err != nil || k.KCV != "08D7B4" {
		t.Fatalf("BU CVK (FF;402): %+v, %v", k, err)
	}

	// A0 under the TMK (flag 1, ECB, as in a key change), A6 of that ECB form back,
	// A8 under the ZMK as TR-31, A6 of that block back: the same key (a TR-31 block
	// binds its usage, so its value may be stored under another ID); A6 with a
	// wrong KCV is refused.
	gen, err := e.client.GenerateKey(ctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000001.TAK", Type: hsm.TAK},
		Export: &hsm.ExportSpec{KEK: hsm.KeyRef{ID: "T0000001.TMK"}, Format: hsm.ExportECB}})
	if err != nil || !strings.HasSuffix(gen.Exported, ":"+gen.KCV) {
		t.Fatalf("A0 under the TMK: %+v, %v", gen, err)
	}
	// A6 of the ECB form: as a new version of the same key; under a new ID the
	// key store refuses it (its KCV is that of T0000001.TAK).
	ecb, _, _ := strings.Cut(gen.Exported, ":")
	imp, err := e.client.ImportKey(ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000001.TAK", Type: hsm.TAK}, KEK: hsm.KeyRef{ID: "T0000001.TMK"}, ECB: ecb, KCV: gen.KCV})
	if err != nil || imp.KCV != gen.KCV || imp.Ref.Version != gen.Ref.Version+1 {
		t.Fatalf("A6 ECB under the TMK: %+v, %v", imp, err)
	}
	if _, err = e.client.ImportKey(ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000001.ECBTAK", Type: hsm.TAK, Owner: "T0000001"}, KEK: hsm.KeyRef{ID: "T0000001.TMK"}, ECB: ecb, KCV: gen.KCV}); !errors.Is(err, hsm.ErrPolicy) {
		t.Fatalf("A6 ECB of a stored key's value under a new ID: %v, want ErrPolicy", err)
	}
	blk, err := e.client.ExportKey(ctx, hsm.ExportKeyRequest{Key: imp.Ref, ExportSpec: hsm.ExportSpec{KEK: zmk, Format: hsm.ExportTR31}})
	if err != nil {
		t.Fatalf("A8: %v", err)
	}
	imp, err = e.client.ImportKey(ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "COPY.TAK", Type: hsm.TAK}, KEK: zmk, TR31: blk})
	if err != nil || imp.KCV != gen.KCV {
		t.Fatalf("A6: %+v, %v; want KCV %s", imp, err, gen.KCV)
	}
	_, err = e.client.ImportKey(ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000001.BADTAK", Type: hsm.TAK, Owner: "T0000001"}, KEK: hsm.KeyRef{ID: "T0000001.TMK"}, ECB: ecb, KCV: "000000"})
	if !errors.Is(err, hsm.ErrKCVMismatch) {
		t.Fatalf("A6 wrong KCV: %v, want ErrKCVMismatch", err)
	}
	// A variant LMK holds no AES keys: refused before anything is sent.
	if _, err := e.client.GenerateKey(ctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: "aes.ZPK", Type: hsm.ZPK, Algorithm: hsm.AES128}}); !errors.Is(err, hsm.ErrInput) {
		t.Fatalf("A0 AES under a variant LMK: %v, want ErrInput", err)
	}
}

// TestServeVariantErrorCodes: under a variant LMK, a key type code not valid for the
// command is 04, a token sent with another key type's code (decrypted under the
// wrong LMK pair: no odd parity) is 10, a key block token is 26.
func TestServeVariantErrorCodes(t *testing.T) {
	addr := serveVariant(t)
	e := newEnv(t, payshield.ClientOptions{Addrs: []string{addr}, LMKScheme: payshield.LMKVariant})
	rec, err := e.store.Key(e.ctx, hsm.KeyRef{ID: "T0000002.TAK"})
	if err != nil {
		t.Fatal(err)
	}
	msg := "0002" + "41" // message length (hex) and the message in hex
	// M6 with key type 001 (a ZPK may not MAC).
	if r := raw(t, addr, "0001", "M6", []byte("01131001"+rec.Block+"N"+msg)); r.Code != "M7" || r.ErrCode != payshield.CodeKeyTypeInvalid {
		t.Fatalf("M6 with key type 001: %+v, want 04", r)
	}
	// M6 with key type 003: the same frame is answered.
	if r := raw(t, addr, "0002", "M6", []byte("01131003"+rec.Block+"N"+msg)); r.ErrCode != payshield.CodeOK {
		t.Fatalf("M6 with key type 003: %+v, want 00", r)
	}
	// M6 with key type 008: the TAK's token under the ZAK pair has no odd parity.
	if r := raw(t, addr, "0003", "M6", []byte("01131008"+rec.Block+"N"+msg)); r.ErrCode != payshield.CodeSourceKeyParity {
		t.Fatalf("M6 of a TAK token as a ZAK: %+v, want 10", r)
	}
	// BU with BU key type 01 (ZPK) for the TAK's token: 10; with 03: its KCV.
	if r := raw(t, addr, "0004", "BU", []byte("011"+rec.Block)); r.ErrCode != payshield.CodeSourceKeyParity {
		t.Fatalf("BU of a TAK token as a ZPK: %+v, want 10", r)
	}
	if r := raw(t, addr, "0005", "BU", []byte("031"+rec.Block)); r.ErrCode != "00" || !strings.HasPrefix(string(r.Body), "8BAF47") {
		t.Fatalf("BU of the TAK: %+v, want 8BAF47", r)
	}
	if r := raw(t, addr, "0006", "BU", []byte("7Z1"+rec.Block)); r.ErrCode != payshield.CodeKeyTypeInvalid {
		t.Fatalf("BU key type code 7Z: %+v, want 04", r)
	}
	// A key block token: this HSM holds a variant LMK.
	if r := raw(t, addr, "0007", "BU", []byte("FFFS10096D0TN00S0000"+strings.Repeat("0", 80))); r.ErrCode != payshield.CodeKeySchemeInvalid {
		t.Fatalf("BU of an S token: %+v, want 26", r)
	}
	// A0 of scheme S: 26.
	if r := raw(t, addr, "0008", "A0", []byte("0001S")); r.ErrCode != payshield.CodeKeySchemeInvalid {
		t.Fatalf("A0 scheme S: %+v, want 26", r)
	}
}
