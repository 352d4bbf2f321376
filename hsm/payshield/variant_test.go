package payshield

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/kcv"
)

// TestVariantGolden re-derives published tokens of the variant LMK scheme: the X9.24
// test key 0123456789ABCDEF FEDCBA9876543210 under the Thales test LMK pair 00-01
// with variants 1 and 2, scheme U, as captured from an external Thales key tool and
// published in an open-source project's tests (values only; the code is ours). The
// two halves use different scheme variants (A6, 5A): the second half proves it.
func TestVariantGolden(t *testing.T) {
	pair, _ := hex.DecodeString(TestLMK[0])
	key, _ := hex.DecodeString("0123456789ABCDEFFEDCBA9876543210")
	for _, tc := range []struct {
		variant int
		want    string
	}{
		{1, "A12049CC30D20BE0DC6E5E2A98FADE9E"},
		{2, "BD7F64B9F9875B731BAED72101DEA65B"},
	} {
		enc, err := VariantEncrypt(pair, tc.variant, 'U', key)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.ToUpper(hex.EncodeToString(enc)); got != tc.want {
			t.Errorf("variant %d: U%s, want U%s", tc.variant, got, tc.want)
		}
		dec, err := VariantDecrypt(pair, tc.variant, 'U', enc)
		if err != nil || hex.EncodeToString(dec) != hex.EncodeToString(key) {
			t.Errorf("variant %d: decrypts to %X, %v", tc.variant, dec, err)
		}
	}
	k, _ := kcv.TDES(key)
	if k.String() != "08D7B4" {
		t.Errorf("KCV %s, want 08D7B4", k)
	}
}

// TestVariantKeyTypeTableGolden decrypts tokens published with their check values
// in the open-source Thales simulator's host command tests (nickntg's
// ThalesSimulatorLibrary, under the test LMK) with the pair and variant our key type
// table gives each type, and checks the clear key's check value (16 digits, zeros
// under the key). This pins the table for every type but the TAK (the simulator
// publishes only a single-length TAK, whose check value we could not re-derive
// under any pair). The simulator's BDK token is the X9.24 test BDK (KCV 08D7B4), by
// its CI vectors, and its CVK the Visa test CVK, by its CW vector (CVV 561).
func TestVariantKeyTypeTableGolden(t *testing.T) {
	for _, tc := range []struct {
		t     hsm.KeyType
		token string
		check string
	}{
		{hsm.ZMK, "U93CB819F8FEE4F78BF9C4CDD84750DB1", "B70AD25C94548822"}, // BU 00
		{hsm.ZPK, "U1EF828AA8F6B80EB83E19FBC373F3A85", "6F1E3F74F826B7EB"}, // BU 01
		{hsm.TPK, "U8463435FC4B4DAA0C49025272C29B12C", "070753"},           // A8, FC
		{hsm.ZAK, "U9564EC9D49DE4E59BE82FE34B5CB1786", "4BF61E"},           // FK flag 1
		{hsm.DEK, "U913248D2781448EB99849CFFE39768AD", "468318"},           // FK flag 0 (ZEK)
		{hsm.CVK, "U9B4934384B19946B040CD702B4D58145", "08D7B4"},           // CW: CVV 561 of the Visa test CVK
		{hsm.BDK, "U8E3D3E2FD5919657F05A1AA90D32A014", "08D7B4"},           // CI: the X9.24 test BDK
	} {
		vt := variantTypes[tc.t]
		pair, _ := hex.DecodeString(TestLMK[vt.pair])
		enc, _ := hex.DecodeString(tc.token[1:])
		key, err := VariantDecrypt(pair, vt.variant, tc.token[0], enc)
		if err != nil {
			t.Fatal(err)
		}
		if !hasOddParity(key) {
			t.Errorf("%s %s: the key under pair %d variant %d has no odd parity", tc.t, tc.token, vt.pair, vt.variant)
		}
		k := append(append([]byte(nil), key...), key[:8]...)
		if len(key) == 8 {
			k = append(k, key...)
		}
		full, err := fullCheck(k[:16])
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(full, tc.check) {
			t.Errorf("%s %s (key type %s): check value %s, want %s", tc.t, tc.token, vt.code, full, tc.check)
		}
	}
}
