package hsm_test

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/des"
	"errors"
	"sync"
	"testing"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/pinblock"
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
