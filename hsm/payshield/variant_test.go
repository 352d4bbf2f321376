package payshield

import (
	"encoding/hex"
	"strings"
	"testing"

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
