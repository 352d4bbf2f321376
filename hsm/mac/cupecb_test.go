package mac

import (
	"crypto/des"
	"encoding/hex"
	"testing"
)

// TestCUPECBCheckValue is the published UnionPay check: MAK
// 55036372B17543ECB173730768B8D6C4 and an XOR of all blocks of 1212B04E1227809C give
// F64 "5FE058DB". The data here is that one block, so its XOR is itself.
func TestCUPECBCheckValue(t *testing.T) {
	key, _ := hex.DecodeString("55036372B17543ECB173730768B8D6C4")
	data, _ := hex.DecodeString("1212B04E1227809C")
	r, err := NewRetail(key, Padding1)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(r.CUPECB(nil, data)); got != "5FE058DB" {
		t.Fatalf("CUP ECB MAC = %q, want 5FE058DB", got)
	}
	// The same through a plain TDES block, and the XOR folding over blocks: the
	// block split in two halves padded with zeros XORs to the same R.
	c, _ := des.NewTripleDESCipher(append(append([]byte{}, key...), key[:8]...))
	split := append(append([]byte{}, data[:4]...), 0, 0, 0, 0)
	split = append(split, 0, 0, 0, 0)
	split = append(split, data[4:]...)
	if got := hex.EncodeToString(CUPECB(nil, c, split)); got != hex.EncodeToString([]byte("5FE058DB")) {
		t.Fatalf("CUP ECB MAC over two blocks = %s", got)
	}
	// A short tail is zero padded: "12" alone is the block 12 00 .. 00.
	if a, b := CUPECB(nil, c, []byte{0x12}), CUPECB(nil, c, []byte{0x12, 0, 0, 0, 0, 0, 0, 0}); string(a) != string(b) {
		t.Fatalf("zero padding: %q != %q", a, b)
	}
}
