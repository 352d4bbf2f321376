package hsm_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/kcv"
	"github.com/switchyard/switchyard/hsm/mac"
	"github.com/switchyard/switchyard/hsm/pinblock"
	"github.com/switchyard/switchyard/hsm/tr31"
)

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
