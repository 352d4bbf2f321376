package hsm_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/cvv"
	"github.com/switchyard/switchyard/hsm/dukpt"
	"github.com/switchyard/switchyard/hsm/kcv"
	"github.com/switchyard/switchyard/hsm/mac"
	"github.com/switchyard/switchyard/hsm/pinblock"
	"github.com/switchyard/switchyard/hsm/tr31"
	"github.com/switchyard/switchyard/keys"
)

const (
	demoTPK = "C1D0F8FB4958670DBA40AB1F3752EF0D"
	demoZPK = "0DCE67517CFD3467CD514FFD137AEA20"
	demoTMK = "2315208C9110AD40F5B83C4A6E1D7F92"
	demoTAK = "404142434445464748494A4B4C4D4E4F"
	demoCVK = "B0A71C200275EC8604A8CD235D2CEFAB"
	pan     = "4761739001010119"
)

func tdes(t testing.TB, keyHex string) cipher.Block {
	k := hx(t, keyHex)
	k24 := append(append([]byte{}, k...), k[:8]...)
	c, err := des.NewTripleDESCipher(k24)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pinUnder(t testing.TB, keyHex string, f pinblock.Format, pin string) []byte {
	b, err := pinblock.Encrypt(tdes(t, keyHex), f, []byte(pin), pan, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func clearPIN(t testing.TB, keyHex string, f pinblock.Format, block []byte) string {
	p, err := pinblock.Decrypt(tdes(t, keyHex), f, block, pan)
	if err != nil {
		t.Fatalf("decrypt result under the clear key: %v", err)
	}
	return string(p)
}

func TestTranslateTPKToZPK(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	src := pinUnder(t, demoTPK, pinblock.Format0, "1234")
	for _, dst := range []pinblock.Format{pinblock.Format0, pinblock.Format3} {
		out, err := e.hsm.TranslatePIN(e.ctx, hsm.TranslatePINRequest{
			Source: hsm.KeyRef{ID: "T0000001.TPK"}, SourceFormat: pinblock.Format0, PINBlock: src,
			Dest: hsm.KeyRef{ID: "demo.ZPK"}, DestFormat: dst, PAN: pan,
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := clearPIN(t, demoZPK, dst, out); got != "1234" {
			t.Fatalf("translated to %s: PIN %s", dst, got)
		}
		// The issuer simulator verifies PIN 1234 under the ZPK.
		if err := e.hsm.VerifyPIN(e.ctx, hsm.VerifyPINRequest{Key: hsm.KeyRef{ID: "demo.ZPK"}, Format: dst, PINBlock: out, PAN: pan, ReferencePIN: []byte("1234")}); err != nil {
			t.Fatalf("VerifyPIN: %v", err)
		}
		err = e.hsm.VerifyPIN(e.ctx, hsm.VerifyPINRequest{Key: hsm.KeyRef{ID: "demo.ZPK"}, Format: dst, PINBlock: out, PAN: pan, ReferencePIN: []byte("1235")})
		if !errors.Is(err, hsm.ErrPINMismatch) {
			t.Fatalf("VerifyPIN with 1235: %v", err)
		}
	}
	// A PIN block under the wrong key does not decode; the error holds no PIN or PAN.
	_, err := e.hsm.TranslatePIN(e.ctx, hsm.TranslatePINRequest{
		Source: hsm.KeyRef{ID: "T0000001.TPK"}, SourceFormat: pinblock.Format0, PINBlock: pinUnder(t, demoZPK, pinblock.Format0, "1234"),
		Dest: hsm.KeyRef{ID: "demo.ZPK"}, DestFormat: pinblock.Format0, PAN: pan,
	})
	if err == nil || strings.Contains(err.Error(), pan) || strings.Contains(err.Error(), "1234") {
		t.Fatalf("wrong-key translate: %v", err)
	}
}

func TestFormatPolicy(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	aesZPK, err := e.hsm.GenerateKey(e.ctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: "aes.ZPK", Type: hsm.ZPK, Algorithm: hsm.AES128, Owner: "demo"}})
	if err != nil {
		t.Fatal(err)
	}
	src := pinUnder(t, demoTPK, pinblock.Format0, "123456789012")
	req := hsm.TranslatePINRequest{Source: hsm.KeyRef{ID: "T0000001.TPK"}, SourceFormat: pinblock.Format0, PINBlock: src, Dest: hsm.KeyRef{ID: "demo.ZPK"}, DestFormat: pinblock.Format1, PAN: pan}
	if _, err := e.hsm.TranslatePIN(e.ctx, req); !errors.Is(err, hsm.ErrPolicy) {
		t.Fatalf("to format 1: %v", err)
	}
	// 0 -> 4 under an AES ZPK is allowed (upgrade) and round-trips back 4 -> 4.
	req.Dest, req.DestFormat = aesZPK.Ref, pinblock.Format4
	b4, err := e.hsm.TranslatePIN(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(b4) != 16 {
		t.Fatalf("format 4 block is %d bytes", len(b4))
	}
	if err := e.hsm.VerifyPIN(e.ctx, hsm.VerifyPINRequest{Key: aesZPK.Ref, Format: pinblock.Format4, PINBlock: b4, PAN: pan, ReferencePIN: []byte("123456789012")}); err != nil {
		t.Fatalf("12-digit PIN in format 4: %v", err)
	}
	// 4 -> 0 is refused unless configured.
	back := hsm.TranslatePINRequest{Source: aesZPK.Ref, SourceFormat: pinblock.Format4, PINBlock: b4, Dest: hsm.KeyRef{ID: "demo.ZPK"}, DestFormat: pinblock.Format0, PAN: pan}
	if _, err := e.hsm.TranslatePIN(e.ctx, back); !errors.Is(err, hsm.ErrPolicy) {
		t.Fatalf("4 -> 0 without configuration: %v", err)
	}
	e.reopen(hsm.Options{Policy: hsm.FormatPolicy{Allow4ToTDES: true}})
	out, err := e.hsm.TranslatePIN(e.ctx, back)
	if err != nil {
		t.Fatalf("4 -> 0 when configured: %v", err)
	}
	if got := clearPIN(t, demoZPK, pinblock.Format0, out); got != "123456789012" {
		t.Fatalf("PIN %s", got)
	}
	// Format 4 under a TDES key and format 0 under an AES key are refused.
	bad := hsm.TranslatePINRequest{Source: hsm.KeyRef{ID: "T0000001.TPK"}, SourceFormat: pinblock.Format0, PINBlock: src, Dest: hsm.KeyRef{ID: "demo.ZPK"}, DestFormat: pinblock.Format4, PAN: pan}
	if _, err := e.hsm.TranslatePIN(e.ctx, bad); !errors.Is(err, hsm.ErrInput) {
		t.Fatalf("format 4 under TDES ZPK: %v", err)
	}
	for _, c := range []struct{ src, dst pinblock.Format }{{0, 1}, {3, 1}, {4, 0}, {4, 3}} {
		if hsm.CheckTranslation(c.src, c.dst, hsm.FormatPolicy{}) == nil {
			t.Errorf("CheckTranslation(%s, %s) allowed", c.src, c.dst)
		}
	}
	for _, c := range []struct{ src, dst pinblock.Format }{{0, 0}, {1, 0}, {0, 3}, {3, 4}, {4, 4}} {
		if err := hsm.CheckTranslation(c.src, c.dst, hsm.FormatPolicy{}); err != nil {
			t.Errorf("CheckTranslation(%s, %s): %v", c.src, c.dst, err)
		}
	}
}

// DUKPT translation with the published X9.24-1 encrypted PIN blocks, BDK found by
// KSN prefix, with replay refused and the counter persisted across a restart.
func TestTranslateDUKPTAndReplay(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	tr := func(ksn, block string) ([]byte, error) {
		return e.hsm.TranslatePIN(e.ctx, hsm.TranslatePINRequest{KSN: ksn, SourceFormat: pinblock.Format0, PINBlock: hx(t, block),
			Dest: hsm.KeyRef{ID: "demo.ZPK"}, DestFormat: pinblock.Format0, PAN: "4012345678909"})
	}
	check := func(out []byte) {
		p, err := pinblock.Decrypt(tdes(t, demoZPK), pinblock.Format0, out, "4012345678909")
		if err != nil || string(p) != "1234" {
			t.Fatalf("translated DUKPT PIN: %v", err)
		}
	}
	out, err := tr("FFFF9876543210E00001", "1B9C1845EB993A7A")
	if err != nil {
		t.Fatal(err)
	}
	check(out)
	if _, err := tr("FFFF9876543210E00001", "1B9C1845EB993A7A"); !errors.Is(err, hsm.ErrReplay) {
		t.Fatalf("same KSN twice: %v", err)
	}
	out, err = tr("FFFF9876543210E00003", "18DC07B94797B466")
	if err != nil {
		t.Fatal(err)
	}
	check(out)
	e.reopen(hsm.Options{})
	if _, err := tr("FFFF9876543210E00003", "18DC07B94797B466"); !errors.Is(err, hsm.ErrReplay) {
		t.Fatalf("replay after restart: %v", err)
	}
	if _, err := tr("FFFF9876543210E00001", "1B9C1845EB993A7A"); !errors.Is(err, hsm.ErrReplay) {
		t.Fatalf("older counter after restart: %v", err)
	}
	if c, ok, err := e.store.DUKPTCounter("FFFF9876543210E00000"); err != nil || !ok || c != 3 {
		t.Fatalf("stored counter %d %v %v", c, ok, err)
	}
	out, err = tr("FFFF9876543210E00005", "5BC0AF22AD87B327")
	if err != nil {
		t.Fatal(err)
	}
	check(out)
	// A bad PIN block does not advance the counter (no counter burning by garbage).
	if _, err := tr("FFFF9876543210E00010", "0000000000000000"); err == nil || errors.Is(err, hsm.ErrReplay) {
		t.Fatalf("garbage block: %v", err)
	}
	if c, _, _ := e.store.DUKPTCounter("FFFF9876543210E00000"); c != 5 {
		t.Fatalf("counter advanced by a bad block: %d", c)
	}
	// Bad KSNs and unknown prefixes.
	for ksn, want := range map[string]error{"FFFF9876543210E0001": hsm.ErrInput, "FFFF9876543210EFFE00": hsm.ErrInput, "AAAA9876543210E00001": hsm.ErrKeyNotFound} {
		if _, err := tr(ksn, "1B9C1845EB993A7A"); !errors.Is(err, want) {
			t.Errorf("KSN %s: err = %v, want %v", ksn, err, want)
		}
	}
}

func TestTranslateAESDUKPT(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	bdkHex := "FEDCBA9876543210F1F1F1F1F1F1F1F1"
	e.form(hsm.KeySpec{ID: "aes.BDK", Type: hsm.BDK, Algorithm: hsm.AES128, Owner: "1234567890123456"}, bdkHex)
	zpk, err := e.hsm.GenerateKey(e.ctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: "aes.ZPK", Type: hsm.ZPK, Algorithm: hsm.AES128}})
	if err != nil {
		t.Fatal(err)
	}
	ksn, _ := dukpt.ParseAESKSN("123456789012345600000001")
	pk, _ := dukpt.DeriveAESWorkingKey(hx(t, bdkHex), ksn, dukpt.UsagePINEncryption, dukpt.AES128)
	c, _ := aes.NewCipher(pk)
	blk, _ := pinblock.Encrypt(c, pinblock.Format4, []byte("1234"), pan, nil)
	out, err := e.hsm.TranslatePIN(e.ctx, hsm.TranslatePINRequest{KSN: ksn.String(), SourceFormat: pinblock.Format4, PINBlock: blk, Dest: zpk.Ref, DestFormat: pinblock.Format4, PAN: pan})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.hsm.VerifyPIN(e.ctx, hsm.VerifyPINRequest{Key: zpk.Ref, Format: pinblock.Format4, PINBlock: out, PAN: pan, ReferencePIN: []byte("1234")}); err != nil {
		t.Fatal(err)
	}
	// An AES KSN against the TDES BDK, by explicit handle, is refused.
	_, err = e.hsm.TranslatePIN(e.ctx, hsm.TranslatePINRequest{Source: hsm.KeyRef{ID: "BDK.FFFF9876543210E"}, KSN: "123456789012345600000002", SourceFormat: pinblock.Format4, PINBlock: blk, Dest: zpk.Ref, DestFormat: pinblock.Format4, PAN: pan})
	if !errors.Is(err, hsm.ErrInput) && !errors.Is(err, hsm.ErrKeyUsage) {
		t.Fatalf("AES KSN with TDES BDK: %v", err)
	}
	// A TDES KSN outside the BDK's KSN prefix, by explicit handle, is refused.
	_, err = e.hsm.TranslatePIN(e.ctx, hsm.TranslatePINRequest{Source: hsm.KeyRef{ID: "BDK.FFFF9876543210E"}, KSN: "AAAA9876543210E00001", SourceFormat: pinblock.Format0, PINBlock: make([]byte, 8), Dest: hsm.KeyRef{ID: "demo.ZPK"}, DestFormat: pinblock.Format0, PAN: pan})
	if !errors.Is(err, hsm.ErrKeyUsage) {
		t.Fatalf("KSN outside the BDK prefix: %v", err)
	}
}

func TestMACs(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	data := bytes.Repeat([]byte("0200B238"), 25)
	tak := hsm.KeyRef{ID: "T0000002.TAK"}
	m, err := e.hsm.GenerateMAC(e.ctx, hsm.MACRequest{Key: tak, Data: data})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := mac.Alg3(hx(t, demoTAK), data, mac.Padding1)
	if !bytes.Equal(m, want) {
		t.Fatalf("retail MAC %X, want %X", m, want)
	}
	if err := e.hsm.VerifyMAC(e.ctx, hsm.MACRequest{Key: tak, Data: data}, m); err != nil {
		t.Fatal(err)
	}
	m[0] ^= 1
	if err := e.hsm.VerifyMAC(e.ctx, hsm.MACRequest{Key: tak, Data: data}, m); !errors.Is(err, hsm.ErrMACMismatch) {
		t.Fatalf("tampered MAC: %v", err)
	}
	if err := e.hsm.VerifyMAC(e.ctx, hsm.MACRequest{Key: tak, Data: data}, m[:4]); !errors.Is(err, hsm.ErrInput) {
		t.Fatalf("4-byte MAC: %v", err)
	}
	// One purpose per key: a TPK cannot MAC, a TAK cannot decrypt PINs, a ZMK cannot MAC.
	if _, err := e.hsm.GenerateMAC(e.ctx, hsm.MACRequest{Key: hsm.KeyRef{ID: "T0000001.TPK"}, Data: data}); !errors.Is(err, hsm.ErrKeyUsage) {
		t.Fatalf("MAC with a TPK: %v", err)
	}
	if _, err := e.hsm.GenerateMAC(e.ctx, hsm.MACRequest{Key: hsm.KeyRef{ID: "demo.ZMK"}, Data: data}); !errors.Is(err, hsm.ErrKeyUsage) {
		t.Fatalf("MAC with a ZMK: %v", err)
	}
	_, err = e.hsm.TranslatePIN(e.ctx, hsm.TranslatePINRequest{Source: tak, SourceFormat: pinblock.Format0, PINBlock: make([]byte, 8), Dest: hsm.KeyRef{ID: "demo.ZPK"}, PAN: pan})
	if !errors.Is(err, hsm.ErrKeyUsage) {
		t.Fatalf("PIN with a TAK: %v", err)
	}
	// AES CMAC ZAK, checked against a clear copy exported under a known AES ZMK.
	zmkHex := "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F"
	zmk := e.form(hsm.KeySpec{ID: "acq.ZMK", Type: hsm.ZMK, Algorithm: hsm.AES256, Owner: "acq"}, zmkHex)
	zak, err := e.hsm.GenerateKey(e.ctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: "acq.ZAK", Type: hsm.ZAK, Algorithm: hsm.AES128},
		Export: &hsm.ExportSpec{KEK: zmk, Format: hsm.ExportTR31}})
	if err != nil {
		t.Fatal(err)
	}
	h, clear, err := tr31.Unwrap(hx(t, zmkHex), zak.Exported)
	if err != nil {
		t.Fatal(err)
	}
	if h.Version != tr31.VersionD || h.Usage != tr31.UsageMACCMAC || h.Exportability != tr31.ExportNone {
		t.Fatalf("exported header %s", h)
	}
	if k, _ := kcv.AES(clear); k.String() != zak.KCV || zak.KCVMethod != kcv.MethodCMAC {
		t.Fatalf("exported key KCV %s, generated %s", k, zak.KCV)
	}
	cm, _ := mac.NewAESCMAC(clear)
	m2, err := e.hsm.GenerateMAC(e.ctx, hsm.MACRequest{Key: zak.Ref, Data: data})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m2, cm.Sum(nil, data)[:8]) {
		t.Fatal("AES CMAC differs from the clear-key CMAC")
	}
	if err := e.hsm.VerifyMAC(e.ctx, hsm.MACRequest{Key: zak.Ref, Data: data}, m2); err != nil {
		t.Fatal(err)
	}
}

// DUKPT MACs with the published X9.24-1 request and response MACs.
func TestDUKPTMAC(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	data := []byte("4012345678909D987")
	if err := e.hsm.VerifyMAC(e.ctx, hsm.MACRequest{KSN: "FFFF9876543210E00001", Data: data}, hx(t, "9CCC78173FC4FB64")); err != nil {
		t.Fatalf("request MAC: %v", err)
	}
	m, err := e.hsm.GenerateMAC(e.ctx, hsm.MACRequest{KSN: "FFFF9876543210E00001", Response: true, Data: data})
	if err != nil || !bytes.Equal(m, hx(t, "20364223C1FF00FA")) {
		t.Fatalf("response MAC %X %v", m, err)
	}
	if err := e.hsm.VerifyMAC(e.ctx, hsm.MACRequest{KSN: "FFFF9876543210E00003", Data: data}, hx(t, "9CCC78173FC4FB64")); !errors.Is(err, hsm.ErrMACMismatch) {
		t.Fatalf("MAC of another KSN: %v", err)
	}
}

func TestCVV(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	ref := hsm.KeyRef{ID: "demo.CVK"}
	got, err := e.hsm.GenerateCVV(e.ctx, hsm.CVVRequest{Key: ref, PAN: pan, Expiry: "2912", ServiceCode: "201"})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := cvv.Compute(hx(t, demoCVK), pan, "2912", "201")
	if got != want {
		t.Fatalf("CVV %s, want %s", got, want)
	}
	if err := e.hsm.VerifyCVV(e.ctx, hsm.CVVRequest{Key: ref, PAN: pan, Expiry: "2912", ServiceCode: "201"}, got); err != nil {
		t.Fatal(err)
	}
	wrong := "000"
	if got == wrong {
		wrong = "001"
	}
	if err := e.hsm.VerifyCVV(e.ctx, hsm.CVVRequest{Key: ref, PAN: pan, Expiry: "2912", ServiceCode: "201"}, wrong); !errors.Is(err, hsm.ErrCVVMismatch) {
		t.Fatalf("wrong CVV: %v", err)
	}
	// The published Visa test CVK pair and CVV.
	visa := e.form(hsm.KeySpec{ID: "visa.CVK", Type: hsm.CVK}, "0123456789ABCDEFFEDCBA9876543210")
	if err := e.hsm.VerifyCVV(e.ctx, hsm.CVVRequest{Key: visa, PAN: "4123456789012345", Expiry: "8701", ServiceCode: "101"}, "561"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.hsm.GenerateCVV(e.ctx, hsm.CVVRequest{Key: hsm.KeyRef{ID: "demo.ZPK"}, PAN: pan, Expiry: "2912", ServiceCode: "201"}); !errors.Is(err, hsm.ErrKeyUsage) {
		t.Fatalf("CVV with a ZPK: %v", err)
	}
	if _, err := e.hsm.GenerateCVV(e.ctx, hsm.CVVRequest{Key: ref, PAN: pan, Expiry: "2913", ServiceCode: "201"}); !errors.Is(err, hsm.ErrInput) {
		t.Fatalf("bad expiry: %v", err)
	}
}

func TestGenerateExportImport(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	tmk := hsm.KeyRef{ID: "T0000001.TMK"}
	// A new TPK for a terminal, delivered under its TMK in the WP-tag form HEXKEY:KCV.
	res, err := e.hsm.GenerateKey(e.ctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000004.TPK", Type: hsm.TPK, Owner: "T0000004"}, Export: &hsm.ExportSpec{KEK: tmk, Format: hsm.ExportECB}})
	if err != nil {
		t.Fatal(err)
	}
	hexKey, kcvPart, ok := strings.Cut(res.Exported, ":")
	if !ok || kcvPart != res.KCV || len(hexKey) != 32 || strings.ToUpper(hexKey) != hexKey {
		t.Fatalf("ECB export %q", res.Exported)
	}
	enc := hx(t, hexKey)
	clear := make([]byte, 16)
	c := tdes(t, demoTMK)
	c.Decrypt(clear[:8], enc[:8])
	c.Decrypt(clear[8:], enc[8:])
	if k, _ := kcv.TDES(clear); k.String() != res.KCV {
		t.Fatalf("ECB-exported key has KCV %s, want %s", k, res.KCV)
	}
	for i, b := range clear {
		n := 0
		for x := b; x != 0; x &= x - 1 {
			n++
		}
		if n%2 != 1 {
			t.Fatalf("generated DES key byte %d has even parity", i)
		}
	}
	// TR-31 export under the TMK (TDES KEK: version B), and the KCV operation.
	blk, err := e.hsm.ExportKey(e.ctx, hsm.ExportKeyRequest{Key: res.Ref, ExportSpec: hsm.ExportSpec{KEK: tmk, Format: hsm.ExportTR31}})
	if err != nil {
		t.Fatal(err)
	}
	h, k2, err := tr31.Unwrap(hx(t, demoTMK), blk)
	if err != nil || !bytes.Equal(k2, clear) || h.Version != tr31.VersionB || h.Usage != tr31.UsagePIN {
		t.Fatalf("TR-31 export: %v %s", err, h)
	}
	if kc, _ := h.Block("KC"); kc != "00"+res.KCV {
		t.Fatalf("KC block %q", kc)
	}
	chk, err := e.hsm.KCV(e.ctx, res.Ref)
	if err != nil || chk.KCV != res.KCV || chk.Method != kcv.MethodTDES {
		t.Fatalf("KCV %v %v", chk, err)
	}
	// Import both forms under the TMK at another terminal; the KCV must match.
	imp, err := e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "imp.TPK", Type: hsm.TPK}, KEK: tmk, ECB: res.Exported})
	if err != nil || imp.KCV != res.KCV {
		t.Fatalf("ECB import: %v %v", imp, err)
	}
	imp2, err := e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "imp2.TPK", Type: hsm.TPK}, KEK: tmk, TR31: blk, KCV: res.KCV})
	if err != nil || imp2.KCV != res.KCV {
		t.Fatalf("TR-31 import: %v %v", imp2, err)
	}
	// The imported key took the exportability N of the TR-31 block: no further ECB export.
	if _, err := e.hsm.ExportKey(e.ctx, hsm.ExportKeyRequest{Key: imp2.Ref, ExportSpec: hsm.ExportSpec{KEK: tmk, Format: hsm.ExportTR31}}); !errors.Is(err, hsm.ErrPolicy) {
		t.Fatalf("re-export of a non-exportable key: %v", err)
	}
	// Wrong KCV, wrong usage, wrong KEK type, wrong key length.
	if _, err := e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "bad.TPK", Type: hsm.TPK}, KEK: tmk, ECB: hexKey + ":000000"}); !errors.Is(err, hsm.ErrKCVMismatch) {
		t.Fatalf("wrong KCV: %v", err)
	}
	if _, err := e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "bad.TPK", Type: hsm.TPK}, KEK: tmk, ECB: hexKey}); !errors.Is(err, hsm.ErrInput) {
		t.Fatalf("ECB without KCV: %v", err)
	}
	if _, err := e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "bad.TAK", Type: hsm.TAK}, KEK: tmk, TR31: blk}); !errors.Is(err, hsm.ErrKeyUsage) {
		t.Fatalf("P0 block imported as a TAK: %v", err)
	}
	if _, err := e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "bad.TPK", Type: hsm.TPK}, KEK: hsm.KeyRef{ID: "T0000001.TPK"}, ECB: res.Exported}); !errors.Is(err, hsm.ErrKeyUsage) {
		t.Fatalf("TPK used as a KEK: %v", err)
	}
	if _, err := e.store.Key(e.ctx, hsm.KeyRef{ID: "bad.TPK"}); !errors.Is(err, hsm.ErrKeyNotFound) {
		t.Fatalf("a failed import stored a key: %v", err)
	}
	// A BDK (exportability E) leaves only as a TR-31 block.
	if _, err := e.hsm.ExportKey(e.ctx, hsm.ExportKeyRequest{Key: hsm.KeyRef{ID: "BDK.FFFF9876543210E"}, ExportSpec: hsm.ExportSpec{KEK: hsm.KeyRef{ID: "demo.ZMK"}, Format: hsm.ExportECB}}); !errors.Is(err, hsm.ErrPolicy) {
		t.Fatalf("ECB export of a BDK: %v", err)
	}
	bb, err := e.hsm.ExportKey(e.ctx, hsm.ExportKeyRequest{Key: hsm.KeyRef{ID: "BDK.FFFF9876543210E"}, ExportSpec: hsm.ExportSpec{KEK: hsm.KeyRef{ID: "demo.ZMK"}, Format: hsm.ExportTR31}})
	if err != nil {
		t.Fatal(err)
	}
	if _, k, err := tr31.Unwrap(hx(t, "9BB091DF6B6162D3947AA46EDCFB312A"), bb); err != nil || hex.EncodeToString(k) != "0123456789abcdeffedcba9876543210" {
		t.Fatalf("BDK export: %v", err)
	}
	// An AES key never leaves under a TDES KEK.
	aesZPK, _ := e.hsm.GenerateKey(e.ctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: "a.ZPK", Type: hsm.ZPK, Algorithm: hsm.AES256}})
	if _, err := e.hsm.ExportKey(e.ctx, hsm.ExportKeyRequest{Key: aesZPK.Ref, ExportSpec: hsm.ExportSpec{KEK: tmk, Format: hsm.ExportTR31}}); !errors.Is(err, hsm.ErrPolicy) {
		t.Fatalf("AES key under TDES KEK: %v", err)
	}
	// Every event is in the audit log, which verifies.
	n, err := e.store.VerifyLog(e.ctx)
	if err != nil || n < len(keys.DemoKeys)+5 {
		t.Fatalf("audit log: %d entries, %v", n, err)
	}
	log, _ := e.store.AuditLog(1, 0)
	var exports int
	for _, en := range log {
		if en.Action == "export" {
			exports++
		}
		if strings.Contains(strings.ToUpper(en.Detail), strings.ToUpper(hexKey)) {
			t.Fatal("audit log holds key material")
		}
	}
	if exports != 2 {
		t.Fatalf("%d export events, want 2", exports)
	}
}

// Zone key change: after a rotation with a grace window, PIN blocks and MACs under
// the old version are still accepted until the window ends; new ones use the new key.
func TestRotationGrace(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	zpk := hsm.KeyRef{ID: "demo.ZPK"}
	oldBlock := pinUnder(t, demoZPK, pinblock.Format0, "1234")
	zak, _ := e.hsm.GenerateKey(e.ctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: "demo.ZAK", Type: hsm.ZAK, Owner: "demo"}})
	data := []byte("0210 response")
	oldMAC, _ := e.hsm.GenerateMAC(e.ctx, hsm.MACRequest{Key: zak.Ref, Data: data})

	for _, id := range []string{"demo.ZPK", "demo.ZAK"} {
		rec, _ := e.store.Key(e.ctx, hsm.KeyRef{ID: id})
		res, err := e.hsm.GenerateKey(e.ctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: id, Type: rec.Type, Owner: "demo", Grace: time.Hour}})
		if err != nil || res.Ref.Version != 2 {
			t.Fatalf("rotate %s: %v %v", id, res, err)
		}
	}
	verify := func() error {
		return e.hsm.VerifyPIN(e.ctx, hsm.VerifyPINRequest{Key: zpk, Format: pinblock.Format0, PINBlock: oldBlock, PAN: pan, ReferencePIN: []byte("1234")})
	}
	if err := verify(); err != nil {
		t.Fatalf("old-version PIN block within grace: %v", err)
	}
	if err := e.hsm.VerifyMAC(e.ctx, hsm.MACRequest{Key: zak.Ref, Data: data}, oldMAC); err != nil {
		t.Fatalf("old-version MAC within grace: %v", err)
	}
	// New outbound work uses v2; v1 cannot be used outbound any more.
	newMAC, _ := e.hsm.GenerateMAC(e.ctx, hsm.MACRequest{Key: hsm.KeyRef{ID: "demo.ZAK"}, Data: data})
	if bytes.Equal(newMAC, oldMAC) {
		t.Fatal("new MAC equals the old: not the new version")
	}
	if _, err := e.hsm.GenerateMAC(e.ctx, hsm.MACRequest{Key: hsm.KeyRef{ID: "demo.ZAK", Version: 1}, Data: data}); !errors.Is(err, hsm.ErrKeyNotUsable) {
		t.Fatalf("outbound use of superseded v1: %v", err)
	}
	e.clock.Advance(2 * time.Hour)
	if err := verify(); err == nil || errors.Is(err, hsm.ErrPINMismatch) {
		t.Fatalf("old-version PIN block after grace: %v", err)
	}
	if err := e.hsm.VerifyMAC(e.ctx, hsm.MACRequest{Key: hsm.KeyRef{ID: "demo.ZAK"}, Data: data}, oldMAC); !errors.Is(err, hsm.ErrMACMismatch) {
		t.Fatalf("old-version MAC after grace: %v", err)
	}
	if err := e.hsm.VerifyMAC(e.ctx, hsm.MACRequest{Key: hsm.KeyRef{ID: "demo.ZAK"}, Data: data}, newMAC); err != nil {
		t.Fatal(err)
	}
	// A new version of another type under the same ID is refused.
	if _, err := e.hsm.GenerateKey(e.ctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: "demo.ZAK", Type: hsm.ZPK}}); !errors.Is(err, hsm.ErrInput) {
		t.Fatalf("type change on rotation: %v", err)
	}
}

func TestStatusAndDates(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	now := e.clock.Now()
	res, err := e.hsm.GenerateKey(e.ctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: "later.ZPK", Type: hsm.ZPK, ActivateAt: now.Add(time.Hour), ExpiresAt: now.Add(48 * time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	src := pinUnder(t, demoTPK, pinblock.Format0, "1234")
	req := hsm.TranslatePINRequest{Source: hsm.KeyRef{ID: "T0000001.TPK"}, SourceFormat: pinblock.Format0, PINBlock: src, Dest: hsm.KeyRef{ID: "later.ZPK"}, DestFormat: pinblock.Format0, PAN: pan}
	if _, err := e.hsm.TranslatePIN(e.ctx, req); !errors.Is(err, hsm.ErrKeyNotUsable) {
		t.Fatalf("not yet active: %v", err)
	}
	// It can be distributed before activation.
	if _, err := e.hsm.ExportKey(e.ctx, hsm.ExportKeyRequest{Key: res.Ref, ExportSpec: hsm.ExportSpec{KEK: hsm.KeyRef{ID: "demo.ZMK"}, Format: hsm.ExportTR31}}); err != nil {
		t.Fatalf("export before activation: %v", err)
	}
	e.clock.Advance(2 * time.Hour)
	if _, err := e.hsm.TranslatePIN(e.ctx, req); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(48 * time.Hour)
	if _, err := e.hsm.TranslatePIN(e.ctx, req); !errors.Is(err, hsm.ErrKeyNotUsable) {
		t.Fatalf("expired: %v", err)
	}
	if _, err := e.store.SetStatus(e.ctx, hsm.KeyRef{ID: "T0000001.TPK", Version: 1}, hsm.StatusRevoked, "test"); err != nil {
		t.Fatal(err)
	}
	req.Dest = hsm.KeyRef{ID: "demo.ZPK"}
	if _, err := e.hsm.TranslatePIN(e.ctx, req); !errors.Is(err, hsm.ErrKeyNotUsable) {
		t.Fatalf("revoked source: %v", err)
	}
}

// tamperStore hands the HSM records whose metadata was changed behind the LMK
// block's back: the authenticated TR-31 header must catch it.
type tamperStore struct {
	*keys.Store
	mutate func(*hsm.KeyRecord)
}

func (s tamperStore) Key(ctx context.Context, ref hsm.KeyRef) (hsm.KeyRecord, error) {
	r, err := s.Store.Key(ctx, ref)
	if err == nil {
		s.mutate(&r)
	}
	return r, err
}

func TestRecordBindingAndLMK(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	data := []byte("data")
	tak, _ := e.store.Key(e.ctx, hsm.KeyRef{ID: "T0000002.TAK"})
	src := pinUnder(t, demoTPK, pinblock.Format0, "1234")
	cases := []struct {
		name   string
		mutate func(*hsm.KeyRecord)
		tpk    bool // whether the TPK (else the TAK) is the tampered record
	}{
		{"TPK claims another ID", func(r *hsm.KeyRecord) {
			if r.ID == "T0000001.TPK" {
				r.ID = "T0000004.TPK"
			}
		}, true},
		{"TAK relabelled ZAK (same TR-31 usage)", func(r *hsm.KeyRecord) {
			if r.ID == "T0000002.TAK" {
				r.Type = hsm.ZAK
			}
		}, false},
		{"TAK version changed", func(r *hsm.KeyRecord) {
			if r.ID == "T0000002.TAK" {
				r.Version = 2
			}
		}, false},
		{"TAK KCV changed", func(r *hsm.KeyRecord) {
			if r.ID == "T0000002.TAK" {
				r.KCV = "000000"
			}
		}, false},
		{"TPK record carries the TAK block", func(r *hsm.KeyRecord) {
			if r.ID == "T0000001.TPK" {
				r.Block = tak.Block
			}
		}, true},
		{"TAK record claims to be a TPK", func(r *hsm.KeyRecord) {
			if r.ID == "T0000002.TAK" {
				r.Type, r.MACAlgorithm = hsm.TPK, ""
			}
		}, false},
	}
	for _, c := range cases {
		h, err := hsm.NewSoftware(e.ctx, tamperStore{e.store, c.mutate}, keys.DemoLMK(), hsm.Options{Now: e.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		_, pinErr := h.TranslatePIN(e.ctx, hsm.TranslatePINRequest{Source: hsm.KeyRef{ID: "T0000001.TPK"}, SourceFormat: pinblock.Format0, PINBlock: src, Dest: hsm.KeyRef{ID: "demo.ZPK"}, DestFormat: pinblock.Format0, PAN: pan})
		_, macErr := h.GenerateMAC(e.ctx, hsm.MACRequest{Key: hsm.KeyRef{ID: "T0000002.TAK"}, Data: data})
		tampered, other := macErr, pinErr
		if c.tpk {
			tampered, other = pinErr, macErr
		}
		if !errors.Is(tampered, hsm.ErrKeyUsage) && !errors.Is(tampered, hsm.ErrKCVMismatch) && !errors.Is(tampered, hsm.ErrInput) {
			t.Errorf("%s: tampering not detected: %v", c.name, tampered)
		}
		if other != nil {
			t.Errorf("%s: the untouched key failed: %v", c.name, other)
		}
	}
	// Another LMK is refused by the store it was not bound to.
	other := bytes.Repeat([]byte{7}, 32)
	if _, err := hsm.NewSoftware(e.ctx, e.store, other, hsm.Options{}); !errors.Is(err, hsm.ErrKCVMismatch) {
		t.Fatalf("other LMK: %v", err)
	}
	if _, err := hsm.NewSoftware(e.ctx, e.store, other[:16], hsm.Options{}); err == nil {
		t.Fatal("16-byte LMK accepted")
	}
}

func TestNonDemoModeRefusesDemoKeys(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	ctx := context.Background()
	store, err := keys.NewStore(db, keys.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hsm.NewSoftware(ctx, store, keys.DemoLMK(), hsm.Options{}); !errors.Is(err, hsm.ErrDemoKey) {
		t.Fatalf("demo LMK outside demo mode: %v", err)
	}
	lmk := bytes.Repeat([]byte{0x42}, 32)
	h, err := hsm.NewSoftware(ctx, store, lmk, hsm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.LoadDemo(ctx, store, h); !errors.Is(err, hsm.ErrDemoKey) {
		t.Fatalf("LoadDemo outside demo mode: %v", err)
	}
	key := hx(t, demoTPK)
	c1 := bytes.Repeat([]byte{0x11}, 16)
	c2 := make([]byte, 16)
	for i := range c2 {
		c2[i] = key[i] ^ c1[i]
	}
	_, err = h.FormKey(ctx, hsm.FormKeyRequest{KeySpec: hsm.KeySpec{ID: "x.TPK", Type: hsm.TPK}, Components: [][]byte{c1, c2}})
	if !errors.Is(err, hsm.ErrDemoKey) {
		t.Fatalf("demo TPK formed outside demo mode: %v", err)
	}
	if _, err := h.GenerateKey(ctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: "real.ZPK", Type: hsm.ZPK}}); err != nil {
		t.Fatalf("a real key outside demo mode: %v", err)
	}
	db.Close()
	// A DB that holds demo keys cannot be opened outside demo mode.
	e := newEnv(t, hsm.Options{})
	e.db.Close()
	db2 := openDB(t, e.dir)
	defer db2.Close()
	if _, err := keys.NewStore(db2, keys.Options{}); !errors.Is(err, hsm.ErrDemoKey) {
		t.Fatalf("demo DB opened outside demo mode: %v", err)
	}
}

func TestFormKeyComponents(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	c := [][]byte{hx(t, "0123456789ABCDEF0123456789ABCDEF"), hx(t, "FEDCBA9876543210FEDCBA9876543210"), hx(t, "1111111111111111EEEEEEEEEEEEEEEE")}
	res, err := e.hsm.FormKey(e.ctx, hsm.FormKeyRequest{KeySpec: hsm.KeySpec{ID: "cer.ZMK", Type: hsm.ZMK}, Components: c})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.ComponentKCVs) != 3 {
		t.Fatalf("component KCVs %v", res.ComponentKCVs)
	}
	k0, _ := kcv.TDES(c[0])
	if res.ComponentKCVs[0] != k0.String() {
		t.Fatalf("component 1 KCV %s, want %s", res.ComponentKCVs[0], k0)
	}
	x := make([]byte, 16)
	for _, ci := range c {
		for i := range x {
			x[i] ^= ci[i]
		}
	}
	kx, _ := kcv.TDES(x)
	if res.KCV != kx.String() {
		t.Fatalf("combined KCV %s, want %s", res.KCV, kx)
	}
	for _, bad := range [][][]byte{c[:1], append(c, c[0]), {c[0], c[1][:8]}} {
		if _, err := e.hsm.FormKey(e.ctx, hsm.FormKeyRequest{KeySpec: hsm.KeySpec{ID: "cer2.ZMK", Type: hsm.ZMK}, Components: bad}); !errors.Is(err, hsm.ErrInput) {
			t.Errorf("%d components: %v", len(bad), err)
		}
	}
	for _, spec := range []hsm.KeySpec{
		{ID: "bad id", Type: hsm.ZMK},
		{ID: "x", Type: "LMK"},
		{ID: "x", Type: hsm.TAK, Algorithm: hsm.AES128, MACAlgorithm: hsm.MACRetail},
		{ID: "x", Type: hsm.CVK, Algorithm: hsm.AES128},
		{ID: "x", Type: hsm.TPK, MACAlgorithm: hsm.MACCMAC},
		{ID: "x", Type: hsm.BDK, Owner: "not hex"},
		{ID: "audit", Type: hsm.ZPK},
	} {
		if _, err := e.hsm.GenerateKey(e.ctx, hsm.GenerateKeyRequest{KeySpec: spec}); !errors.Is(err, hsm.ErrInput) {
			t.Errorf("spec %+v: %v", spec, err)
		}
	}
}

func TestConcurrentTranslate(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	src := pinUnder(t, demoTPK, pinblock.Format0, "1234")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				out, err := e.hsm.TranslatePIN(e.ctx, hsm.TranslatePINRequest{Source: hsm.KeyRef{ID: "T0000001.TPK"}, SourceFormat: pinblock.Format0, PINBlock: src, Dest: hsm.KeyRef{ID: "demo.ZPK"}, DestFormat: pinblock.Format0, PAN: pan})
				if err == nil {
					err = e.hsm.VerifyPIN(e.ctx, hsm.VerifyPINRequest{Key: hsm.KeyRef{ID: "demo.ZPK"}, Format: pinblock.Format0, PINBlock: out, PAN: pan, ReferencePIN: []byte("1234")})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestHotPathAllocations(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	src := pinUnder(t, demoTPK, pinblock.Format0, "1234")
	req := hsm.TranslatePINRequest{Source: hsm.KeyRef{ID: "T0000001.TPK"}, SourceFormat: pinblock.Format0, PINBlock: src, Dest: hsm.KeyRef{ID: "demo.ZPK"}, DestFormat: pinblock.Format0, PAN: pan}
	data := bytes.Repeat([]byte("0200B238"), 25)
	mreq := hsm.MACRequest{Key: hsm.KeyRef{ID: "T0000002.TAK"}, Data: data}
	m, _ := e.hsm.GenerateMAC(e.ctx, mreq)
	if n := testing.AllocsPerRun(200, func() {
		if _, err := e.hsm.TranslatePIN(e.ctx, req); err != nil {
			t.Fatal(err)
		}
	}); n > 1 {
		t.Errorf("TranslatePIN allocates %.1f times per call, want at most 1 (the result)", n)
	}
	if n := testing.AllocsPerRun(200, func() {
		if err := e.hsm.VerifyMAC(e.ctx, mreq, m); err != nil {
			t.Fatal(err)
		}
	}); n > 0 {
		t.Errorf("VerifyMAC allocates %.1f times per call", n)
	}
}

func BenchmarkTranslatePINTPKToZPKFormat0(b *testing.B) {
	e := newEnv(b, hsm.Options{})
	src := pinUnder(b, demoTPK, pinblock.Format0, "1234")
	req := hsm.TranslatePINRequest{Source: hsm.KeyRef{ID: "T0000001.TPK"}, SourceFormat: pinblock.Format0, PINBlock: src, Dest: hsm.KeyRef{ID: "demo.ZPK"}, DestFormat: pinblock.Format0, PAN: pan}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.hsm.TranslatePIN(e.ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyMACRetail200(b *testing.B) {
	e := newEnv(b, hsm.Options{})
	req := hsm.MACRequest{Key: hsm.KeyRef{ID: "T0000002.TAK"}, Data: bytes.Repeat([]byte("0200B238"), 25)}
	m, _ := e.hsm.GenerateMAC(e.ctx, req)
	b.ReportAllocs()
	for b.Loop() {
		if err := e.hsm.VerifyMAC(e.ctx, req, m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyMACAESCMAC200(b *testing.B) {
	e := newEnv(b, hsm.Options{})
	zak, err := e.hsm.GenerateKey(e.ctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: "bench.ZAK", Type: hsm.ZAK, Algorithm: hsm.AES128}})
	if err != nil {
		b.Fatal(err)
	}
	req := hsm.MACRequest{Key: hsm.KeyRef{ID: zak.Ref.ID}, Data: bytes.Repeat([]byte("0200B238"), 25)}
	m, _ := e.hsm.GenerateMAC(e.ctx, req)
	b.ReportAllocs()
	for b.Loop() {
		if err := e.hsm.VerifyMAC(e.ctx, req, m); err != nil {
			b.Fatal(err)
		}
	}
}
