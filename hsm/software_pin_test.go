package hsm_test

import (
	"crypto/aes"
	"errors"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/dukpt"
	"github.com/switchyard/switchyard/hsm/pinblock"
)

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
