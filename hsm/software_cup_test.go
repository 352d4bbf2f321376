package hsm_test

import (
	"bytes"
	"crypto/des"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/mac"
	"github.com/switchyard/switchyard/hsm/pinblock"
)

// TestCUPWorkingKeys: what the UnionPay sign-in needs of the HSM. A single-length key
// is a TDES key with equal halves whose ECB export's first 8 bytes are the DES key
// under the TMK; the 4-byte check value is the key encrypting zeros; the CUP ECB MAC
// scheme works on a retail TAK (and only there); a TDK decrypts data and nothing else.
func TestCUPWorkingKeys(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	tmkHex := "2315208C9110AD40F5B83C4A6E1D7F92" // the demo TMK of T0000001
	tmk, _ := des.NewTripleDESCipher(append(hx(t, tmkHex), hx(t, tmkHex)[:8]...))
	kek := &hsm.ExportSpec{KEK: hsm.KeyRef{ID: "T0000001.TMK"}, Format: hsm.ExportECB}
	clear := func(res hsm.KeyResult) []byte {
		enc := hx(t, strings.SplitN(res.Exported, ":", 2)[0])
		out := make([]byte, len(enc))
		for i := 0; i < len(enc); i += 8 {
			tmk.Decrypt(out[i:i+8], enc[i:i+8])
		}
		return out
	}
	mak, err := e.hsm.GenerateKey(e.ctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000001.TAK", Type: hsm.TAK, Owner: "T0000001", SingleLength: true}, Export: kek})
	if err != nil {
		t.Fatal(err)
	}
	k := clear(mak)
	if !bytes.Equal(k[:8], k[8:]) {
		t.Fatalf("single-length key halves differ: %X", k)
	}
	c, _ := des.NewCipher(k[:8])
	var z [8]byte
	c.Encrypt(z[:], z[:])
	if mak.CheckValue4 != strings.ToUpper(hex.EncodeToString(z[:4])) {
		t.Fatalf("check value %s, the key gives %X", mak.CheckValue4, z[:4])
	}
	data := []byte("0200 and the rest of the message")
	m, err := e.hsm.GenerateMAC(e.ctx, hsm.MACRequest{Key: mak.Ref, Data: data, Scheme: hsm.MACSchemeCUPECB})
	if err != nil {
		t.Fatal(err)
	}
	if want := mac.CUPECB(nil, c, data); !bytes.Equal(m, want) {
		t.Fatalf("CUP ECB MAC %q, want %q", m, want)
	}
	if err := e.hsm.VerifyMAC(e.ctx, hsm.MACRequest{Key: mak.Ref, Data: data, Scheme: hsm.MACSchemeCUPECB}, m); err != nil {
		t.Fatal(err)
	}
	if err := e.hsm.VerifyMAC(e.ctx, hsm.MACRequest{Key: mak.Ref, Data: data}, m); !errors.Is(err, hsm.ErrMACMismatch) {
		t.Fatalf("an ECB MAC checked as a retail MAC: %v", err)
	}
	if _, err := e.hsm.GenerateMAC(e.ctx, hsm.MACRequest{Key: mak.Ref, Data: data, Scheme: "md5"}); !errors.Is(err, hsm.ErrInput) {
		t.Fatalf("unknown scheme: %v", err)
	}

	tdk, err := e.hsm.GenerateKey(e.ctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000001.TDK", Type: hsm.TDK, Owner: "T0000001"}, Export: kek})
	if err != nil {
		t.Fatalf("a TDK leaves under the TMK in ECB form: %v", err)
	}
	tc, _ := des.NewTripleDESCipher(append(clear(tdk), clear(tdk)[:8]...))
	plain := []byte("62242429")
	enc := make([]byte, 8)
	tc.Encrypt(enc, plain)
	got, err := e.hsm.DecryptData(e.ctx, tdk.Ref, enc)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("DecryptData: %q %v", got, err)
	}
	if _, err := e.hsm.DecryptData(e.ctx, mak.Ref, enc); !errors.Is(err, hsm.ErrKeyUsage) {
		t.Fatalf("DecryptData with a TAK: %v", err)
	}
	if _, err := e.hsm.DecryptData(e.ctx, tdk.Ref, enc[:5]); !errors.Is(err, hsm.ErrInput) {
		t.Fatalf("DecryptData of 5 bytes: %v", err)
	}
	if _, err := e.hsm.GenerateKey(e.ctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: "x.TPK", Type: hsm.TPK, Algorithm: hsm.AES128, SingleLength: true}}); !errors.Is(err, hsm.ErrInput) {
		t.Fatalf("a single-length AES key: %v", err)
	}
}

// TestTranslatePINSourcePAN: a block formed with the zero PAN field (UnionPay 53.1 =
// 1) is re-bound to the card's PAN; without SourcePAN it does not decode so.
func TestTranslatePINSourcePAN(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	tpkHex := "C1D0F8FB4958670DBA40AB1F3752EF0D" // the demo TPK of T0000001
	c, _ := des.NewTripleDESCipher(append(hx(t, tpkHex), hx(t, tpkHex)[:8]...))
	pan := "4761739001010119"
	block, err := pinblock.Encrypt(c, pinblock.Format0, []byte("1234"), "0000000000000", nil)
	if err != nil {
		t.Fatal(err)
	}
	tpk := hsm.KeyRef{ID: "T0000001.TPK"}
	out, err := e.hsm.TranslatePIN(e.ctx, hsm.TranslatePINRequest{Source: tpk, PINBlock: block, SourcePAN: "0000000000000", Dest: tpk, PAN: pan})
	if err != nil {
		t.Fatal(err)
	}
	pin, err := pinblock.Decrypt(c, pinblock.Format0, out, pan)
	if err != nil || string(pin) != "1234" {
		t.Fatalf("re-bound block gives %q, %v", pin, err)
	}
	if got, err := pinblock.Decrypt(c, pinblock.Format0, block, pan); err == nil && string(got) == "1234" {
		t.Fatal("the zero-PAN block decodes under the card's PAN too: the test proves nothing")
	}
}

// TestCUPECBPublishedCheckValue: the check value of docs/cup-dialect.md and the shared
// UnionPay facts, through the software HSM as the cup adapter calls it (the MAK stored
// in the key store, scheme cup-ecb): MAK 55036372B17543ECB173730768B8D6C4 over data
// whose 8-byte blocks XOR to 1212B04E1227809C gives F64 3546453035384442 ("5FE058DB"),
// generated and verified.
func TestCUPECBPublishedCheckValue(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	mak := e.form(hsm.KeySpec{ID: "CUP.MAK", Type: hsm.TAK}, "55036372B17543ECB173730768B8D6C4")
	want := hx(t, "3546453035384442")
	for _, data := range [][]byte{
		hx(t, "1212B04E1227809C"),
		// Two blocks and a short tail (zero padded) that XOR to the same R.
		hx(t, "FFFFFFFFFFFFFFFF"+"46ED4FB1EDD87F63"+"AB"),
	} {
		got, err := e.hsm.GenerateMAC(e.ctx, hsm.MACRequest{Key: mak, Data: data, Scheme: hsm.MACSchemeCUPECB})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("CUP ECB MAC of %X is %X (%q), want %X (\"5FE058DB\")", data, got, got, want)
		}
		if err := e.hsm.VerifyMAC(e.ctx, hsm.MACRequest{Key: mak, Data: data, Scheme: hsm.MACSchemeCUPECB}, want); err != nil {
			t.Fatalf("the published F64 does not verify: %v", err)
		}
	}
}
