package keys

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/hsm/tr31"
)

// The card hash key's LMK block opens under that LMK only, to the same key, and only
// as a card hash key: another HMAC key's block, or a block whose header was changed,
// is refused.
func TestCardHashKeyBlock(t *testing.T) {
	lmk := DemoLMK()
	key, _ := hex.DecodeString("00112233445566778899AABBCCDDEEFF0123456789ABCDEF0123456789ABCDEF")
	block, err := WrapCardHashKey(lmk, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains([]byte(strings.ToUpper(block)), []byte(strings.ToUpper(hex.EncodeToString(key[:8])))) {
		t.Fatalf("block %s shows the key", block)
	}
	got, err := UnwrapCardHashKey(lmk, block)
	if err != nil || !bytes.Equal(got, key) {
		t.Fatalf("unwrap: %x, %v", got, err)
	}
	// The check value is HMAC-SHA256 of 32 zero bytes, first 3 bytes.
	m := hmac.New(sha256.New, key)
	m.Write(make([]byte, 32))
	if want := strings.ToUpper(hex.EncodeToString(m.Sum(nil)[:3])); CardHashKeyKCV(key) != want {
		t.Fatalf("KCV %s, want %s", CardHashKeyKCV(key), want)
	}
	// Another LMK.
	other := DemoLMK()
	other[0] ^= 1
	if _, err := UnwrapCardHashKey(other, block); err == nil || !strings.Contains(err.Error(), "does not open under this LMK") {
		t.Fatalf("under another LMK: %v", err)
	}
	// A header changed behind the MAC's back (mode of use G to C).
	tampered := block[:8] + "C" + block[9:]
	if _, err := UnwrapCardHashKey(lmk, tampered); err == nil {
		t.Fatal("a block with its mode of use changed opened")
	}
	// An HMAC key block of the LMK without the card hash key's label, and a key
	// block of another usage.
	for name, h := range map[string]tr31.Header{
		"unlabelled HMAC key": {Version: tr31.VersionD, Usage: tr31.UsageHMAC, Algorithm: tr31.AlgHMAC, ModeOfUse: tr31.ModeGenerate, KeyVersion: "00", Exportability: tr31.ExportNone},
		"data key labelled card-hash-key": {Version: tr31.VersionD, Usage: tr31.UsageData, Algorithm: tr31.AlgAES, ModeOfUse: tr31.ModeEncDec, KeyVersion: "00", Exportability: tr31.ExportNone,
			Blocks: []tr31.OptionalBlock{{ID: "LB", Data: CardHashKeyLabel}}},
	} {
		b, err := tr31.Wrap(lmk, h, key, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := UnwrapCardHashKey(lmk, b); err == nil || !strings.Contains(err.Error(), "not a card hash key") {
			t.Errorf("%s: %v, want refused as not a card hash key", name, err)
		}
	}
	// Lengths: 16 to 64 bytes.
	for _, n := range []int{15, 65} {
		if _, err := WrapCardHashKey(lmk, make([]byte, n), nil); err == nil {
			t.Errorf("a %d-byte card hash key wrapped", n)
		}
	}
	for _, n := range []int{16, 64} {
		k := bytes.Repeat([]byte{0x5a}, n)
		b, err := WrapCardHashKey(lmk, k, nil)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if got, err := UnwrapCardHashKey(lmk, b); err != nil || !bytes.Equal(got, k) {
			t.Fatalf("%d bytes: %x, %v", n, got, err)
		}
	}
}
