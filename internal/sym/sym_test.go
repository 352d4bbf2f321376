package sym

import (
	"bytes"
	"crypto/des"
	"testing"
)

func TestMaskPAN(t *testing.T) {
	for in, want := range map[string]string{
		"4761739001010119":    "476173******0119",
		"4761739001010119999": "476173*********9999",
		"12345678":            "****5678",
		"1234":                "****",
		"":                    "",
	} {
		if got := MaskPAN(in); got != want {
			t.Errorf("MaskPAN(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNewTDESDoubleLength(t *testing.T) {
	k := []byte("0123456789abcdef")
	c, err := NewTDES(k)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := des.NewTripleDESCipher(append(append([]byte{}, k...), k[:8]...))
	a, b := make([]byte, 8), make([]byte, 8)
	c.Encrypt(a, []byte("12345678"))
	ref.Encrypt(b, []byte("12345678"))
	if !bytes.Equal(a, b) {
		t.Fatal("16-byte TDES is not K1|K2|K1")
	}
	for _, n := range []int{0, 7, 15, 32} {
		if _, err := NewTDES(make([]byte, n)); err == nil {
			t.Errorf("%d-byte key accepted", n)
		}
	}
	if _, err := NewAES(make([]byte, 20)); err == nil {
		t.Error("20-byte AES key accepted")
	}
}

func TestSetOddParity(t *testing.T) {
	k := []byte{0x00, 0x01, 0x40, 0xFE, 0xFF}
	SetOddParity(k)
	if !bytes.Equal(k, []byte{0x01, 0x01, 0x40, 0xFE, 0xFE}) {
		t.Fatalf("%X", k)
	}
	if !AllDigits("0123") || AllDigits("") || AllDigits("12a") {
		t.Fatal("AllDigits")
	}
}
