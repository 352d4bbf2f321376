package hsm_test

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/internal/testvec"
	"github.com/switchyard/switchyard/hsm/kcv"
	"github.com/switchyard/switchyard/hsm/pinblock"
)

const vectors = "../testdata/vectors/crypto.json"

// ecbUnder returns key (hex) ECB-encrypted under the TDES KEK keyHex, in the
// "HEXKEY:KCV" form of an ECB import, as a sender outside the switch makes it.
func ecbUnder(t testing.TB, kekHex, keyHex string) string {
	t.Helper()
	key := hx(t, keyHex)
	c := tdes(t, kekHex)
	enc := make([]byte, len(key))
	for i := 0; i < len(key); i += 8 {
		c.Encrypt(enc[i:], key[i:])
	}
	k, err := kcv.TDES(key)
	if err != nil {
		t.Fatal(err)
	}
	return strings.ToUpper(hex.EncodeToString(enc)) + ":" + k.String()
}

// An ECB form carries no key type: whoever holds a TPK's ECB export could import it
// as a TAK, and MAC generation under that TAK is TDES encryption under the PIN key
// (a retail MAC of one block is the block enciphered under the key): chosen PIN
// blocks enciphered under the terminal's TPK. The key store refuses an ECB import
// whose value it already holds under another key ID, in either direction, in any
// status, and through the splice of a double-length key's ECB halves into a
// triple-length one; the same key re-sent as a new version of its own ID still comes in.
func TestECBImportRefusesAStoredValue(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	tmk := hsm.KeyRef{ID: "T0000001.TMK"}
	zmk := hsm.KeyRef{ID: "demo.ZMK"}

	// The terminal's TPK is the key of the published retail MAC vector, so that
	// the MACs the attack would get are published values.
	rv := testvec.Load(t, vectors, "iso9797_1_mac_alg3_retail")[0]
	tpkHex := strings.ToUpper(rv.Str(t, "key"))
	var clearBlock []byte
	for _, v := range testvec.Load(t, vectors, "iso9564_format0_clear") {
		if v.Str(t, "pan") == "4012345678909" {
			clearBlock = v.Hex(t, "expected")
		}
	}
	tpk := e.form(hsm.KeySpec{ID: "T0000005.TPK", Type: hsm.TPK, Owner: "T0000001"}, tpkHex)
	tpkECB, err := e.hsm.ExportKey(e.ctx, hsm.ExportKeyRequest{Key: tpk, ExportSpec: hsm.ExportSpec{KEK: tmk, Format: hsm.ExportECB}})
	if err != nil {
		t.Fatal(err)
	}

	// The attack: the TPK's ECB form imported as a TAK.
	_, err = e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000005.TAK", Type: hsm.TAK, Owner: "T0000001"}, KEK: tmk, ECB: tpkECB})
	if err == nil {
		ref := hsm.KeyRef{ID: "T0000005.TAK"}
		m, merr := e.hsm.GenerateMAC(e.ctx, hsm.MACRequest{Key: ref, Data: []byte(rv.Str(t, "data_ascii"))})
		pb, perr := e.hsm.GenerateMAC(e.ctx, hsm.MACRequest{Key: ref, Data: clearBlock})
		want := make([]byte, 8)
		tdes(t, tpkHex).Encrypt(want, clearBlock)
		t.Errorf("the TPK's ECB form was imported as a TAK: its MAC of %q is %X (%v), the published retail MAC under the TPK's value %s; its MAC of the clear PIN block %X is %X (%v), the block enciphered under the TPK (%X): a PIN encryption oracle",
			rv.Str(t, "data_ascii"), m, merr, rv.Str(t, "expected"), clearBlock, pb, perr, want)
	} else if !errors.Is(err, hsm.ErrPolicy) || !strings.Contains(err.Error(), "T0000005.TPK") {
		t.Errorf("the TPK's ECB form as a TAK: %v, want ErrPolicy naming T0000005.TPK", err)
	}

	// A TDES-2KEY key K1|K2 is the TDES-3KEY key K1|K2|K1, with the same KCV: its
	// ECB halves spliced into a triple-length form are the same key.
	hexKey, kcvPart, _ := strings.Cut(tpkECB, ":")
	spliced := hexKey + hexKey[:16] + ":" + kcvPart

	// A legitimate TAK (a value the switch does not hold), sent under the TMK.
	takECB := ecbUnder(t, demoTMK, "F4E3D2C1B0A9988776655443322110FE")

	zpkECB, err := e.hsm.ExportKey(e.ctx, hsm.ExportKeyRequest{Key: hsm.KeyRef{ID: "demo.ZPK"}, ExportSpec: hsm.ExportSpec{KEK: zmk, Format: hsm.ExportECB}})
	if err != nil {
		t.Fatal(err)
	}
	// The published X9.24 test BDK (KCV 08D7B4) is the demo BDK; an ECB form of it,
	// made outside the switch (which never exports a BDK so), as a ZPK.
	kv := testvec.Load(t, vectors, "kcv_tdes")[0]
	bdkECB := ecbUnder(t, "9BB091DF6B6162D3947AA46EDCFB312A", kv.Str(t, "key"))
	if !strings.HasSuffix(bdkECB, ":"+kv.Str(t, "expected")) {
		t.Fatalf("vector KCV: %s, want %s", bdkECB, kv.Str(t, "expected"))
	}
	// An AES-128 key whose 16 bytes are sent as a TDES key: the AES key's KCV
	// (CMAC) differs from the TDES KCV of its bytes, and is still found.
	aesHex := "2B7E151628AED2A6ABF7158809CF4F3C"
	e.form(hsm.KeySpec{ID: "acq.ZAK", Type: hsm.ZAK, Algorithm: hsm.AES128}, aesHex)
	aesECB := ecbUnder(t, "9BB091DF6B6162D3947AA46EDCFB312A", aesHex)

	if _, err := e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000006.TAK", Type: hsm.TAK, Owner: "T0000001"}, KEK: tmk, ECB: takECB}); err != nil {
		t.Fatalf("a new TAK from an ECB form: %v", err)
	}

	for _, c := range []struct {
		name string
		spec hsm.KeySpec
		kek  hsm.KeyRef
		ecb  string
	}{
		{"the TPK's ECB form spliced into a TDES-3KEY TAK", hsm.KeySpec{ID: "T0000005.TAK3", Type: hsm.TAK, Algorithm: hsm.TDES3KEY, Owner: "T0000001"}, tmk, spliced},
		{"the TPK's ECB form as another terminal's TPK", hsm.KeySpec{ID: "T0000007.TPK", Type: hsm.TPK, Owner: "T0000001"}, tmk, tpkECB},
		{"the TAK's ECB form as a TPK (a PIN key that MAC generation enciphers under)", hsm.KeySpec{ID: "T0000006.TPK", Type: hsm.TPK, Owner: "T0000001"}, tmk, takECB},
		{"the zone PIN key's ECB form as a ZAK", hsm.KeySpec{ID: "demo.ZAK", Type: hsm.ZAK, Owner: "demo"}, zmk, zpkECB},
		{"the BDK's value in an ECB form as a ZPK", hsm.KeySpec{ID: "x.ZPK", Type: hsm.ZPK}, zmk, bdkECB},
		{"an AES ZAK's bytes in an ECB form as a TDES ZPK", hsm.KeySpec{ID: "y.ZPK", Type: hsm.ZPK}, zmk, aesECB},
	} {
		res, err := e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: c.spec, KEK: c.kek, ECB: c.ecb})
		if !errors.Is(err, hsm.ErrPolicy) {
			t.Errorf("%s: stored as %s (KCV %s), err %v; want ErrPolicy", c.name, res.Ref, res.KCV, err)
		}
		if _, err := e.store.Versions(c.spec.ID); !errors.Is(err, hsm.ErrKeyNotFound) {
			t.Errorf("%s: a refused import left %s in the store: %v", c.name, c.spec.ID, err)
		}
	}

	// The same key re-sent as a new version of its own ID is a rotation, not a
	// second purpose: it comes in, and translates PINs.
	re, err := e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000005.TPK", Type: hsm.TPK, Owner: "T0000001", Grace: time.Hour}, KEK: tmk, ECB: tpkECB})
	if err != nil || re.Ref.Version != 2 || re.KCV != strings.SplitN(tpkECB, ":", 2)[1] {
		t.Fatalf("the TPK re-sent as a new version of T0000005.TPK: %+v, %v", re, err)
	}
	out, err := e.hsm.TranslatePIN(e.ctx, hsm.TranslatePINRequest{Source: hsm.KeyRef{ID: "T0000005.TPK"}, SourceFormat: pinblock.Format0,
		PINBlock: pinUnder(t, tpkHex, pinblock.Format0, "1234"), Dest: hsm.KeyRef{ID: "demo.ZPK"}, DestFormat: pinblock.Format0, PAN: pan})
	if err != nil || clearPIN(t, demoZPK, pinblock.Format0, out) != "1234" {
		t.Fatalf("translate under the re-imported TPK: %v", err)
	}

	// Revoked versions count: a revoked key's value is still not a MAC key.
	for v := 1; v <= 2; v++ {
		if _, err := e.store.SetStatus(e.ctx, hsm.KeyRef{ID: "T0000005.TPK", Version: v}, hsm.StatusRevoked, "terminal retired"); err != nil {
			t.Fatal(err)
		}
	}
	if res, err := e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000005.TAK", Type: hsm.TAK, Owner: "T0000001"}, KEK: tmk, ECB: tpkECB}); !errors.Is(err, hsm.ErrPolicy) {
		t.Errorf("the revoked TPK's ECB form as a TAK: stored as %s, err %v; want ErrPolicy", res.Ref, err)
	}

	// A TR-31 block binds its usage: the same value may come so under another ID.
	blk, err := e.hsm.ExportKey(e.ctx, hsm.ExportKeyRequest{Key: hsm.KeyRef{ID: "T0000006.TAK"}, ExportSpec: hsm.ExportSpec{KEK: tmk, Format: hsm.ExportTR31}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "copy.TAK", Type: hsm.TAK, Owner: "T0000001"}, KEK: tmk, TR31: blk}); err != nil {
		t.Errorf("a TAK's TR-31 block under another ID: %v", err)
	}
}

// Two imports of one ECB value at once, as keys of different IDs and types: the
// store makes the check in the same write as the Put, so exactly one lands.
func TestECBImportOfOneValueAtOnce(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	tmk := hsm.KeyRef{ID: "T0000001.TMK"}
	ecb := ecbUnder(t, demoTMK, "5B6A79880F1E2D3CC4D5E6F708192A3B")
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		typ := hsm.TPK
		if i%2 == 1 {
			typ = hsm.TAK
		}
		wg.Go(func() {
			_, errs[i] = e.hsm.ImportKey(e.ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: fmt.Sprintf("C%d.%s", i, typ), Type: typ, Owner: "T0000001"}, KEK: tmk, ECB: ecb})
		})
	}
	wg.Wait()
	var stored []string
	for i, err := range errs {
		switch {
		case err == nil:
			stored = append(stored, fmt.Sprintf("C%d", i))
		case !errors.Is(err, hsm.ErrPolicy):
			t.Errorf("import %d: %v, want success or ErrPolicy", i, err)
		}
	}
	if len(stored) != 1 {
		t.Fatalf("one ECB value was stored under %d key IDs (%v), want exactly one", len(stored), stored)
	}
	var same []string
	for _, r := range e.store.List() {
		if r.KCV == strings.SplitN(ecb, ":", 2)[1] {
			same = append(same, r.Ref().String())
		}
	}
	if len(same) != 1 {
		t.Fatalf("records with the value's KCV: %v, want one", same)
	}
}
