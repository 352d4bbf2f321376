package mac

import (
	"bytes"
	"crypto/aes"
	"crypto/des"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/hsm/internal/testvec"
)

const vectors = "../../testdata/vectors/crypto.json"

func h(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAlg1PublishedVectors(t *testing.T) {
	for _, v := range testvec.Load(t, vectors, "iso9797_1_mac_alg1_des") {
		data := v.Hex(t, "data_hex")
		if string(data) != v.Str(t, "data_ascii") {
			t.Fatalf("vector data_hex and data_ascii differ")
		}
		if !strings.Contains(v.Str(t, "padding"), "method 1") {
			t.Fatalf("unexpected padding %q", v.Str(t, "padding"))
		}
		if iv := v.Str(t, "iv"); iv != "0000000000000000" {
			t.Fatalf("unexpected IV %s", iv)
		}
		got, err := Alg1Key(v.Hex(t, "key"), data, Padding1)
		if err != nil {
			t.Fatal(err)
		}
		want := v.Str(t, "expected")
		if testvec.Upper(got)[:len(want)] != want {
			t.Fatalf("MAC alg 1 = %X, want %s...", got, want)
		}
	}
}

func TestAlg3PublishedVectors(t *testing.T) {
	for _, v := range testvec.Load(t, vectors, "iso9797_1_mac_alg3_retail") {
		got, err := Alg3(v.Hex(t, "key"), []byte(v.Str(t, "data_ascii")), Padding1)
		if err != nil {
			t.Fatal(err)
		}
		if testvec.Upper(got) != v.Str(t, "expected") {
			t.Fatalf("retail MAC = %X, want %s", got, v.Str(t, "expected"))
		}
		r, _ := NewRetail(v.Hex(t, "key"), Padding1)
		if !r.Verify(got, []byte(v.Str(t, "data_ascii"))) || !r.Verify(got[:4], []byte(v.Str(t, "data_ascii"))) {
			t.Fatal("Verify refused the right MAC")
		}
		bad := bytes.Clone(got)
		bad[7] ^= 1
		if r.Verify(bad, []byte(v.Str(t, "data_ascii"))) {
			t.Fatal("Verify accepted a wrong MAC")
		}
	}
}

func TestCMACPublishedVectors(t *testing.T) {
	for _, kind := range []string{"aes_cmac", "tdes_cmac"} {
		for _, v := range testvec.Load(t, vectors, kind) {
			key := v.Hex(t, "key")
			var m *CMAC
			var err error
			if kind == "aes_cmac" {
				m, err = NewAESCMAC(key)
			} else {
				m, err = NewTDESCMAC(key)
			}
			if err != nil {
				t.Fatal(err)
			}
			got := m.Sum(nil, v.Hex(t, "msg"))
			if testvec.Upper(got) != v.Str(t, "expected") {
				t.Errorf("%s: CMAC = %X, want %s", v.Label(), got, v.Str(t, "expected"))
			}
		}
	}
}

// RFC 4493 section 4 (AES-128) and NIST SP 800-38B Appendix D (AES-192, AES-256 and
// TDEA examples, "CMAC-AES" / "CMAC-TDEA" example values as published by NIST with the
// SP 800-38B examples).
func TestCMACStandardExamples(t *testing.T) {
	const m512 = "6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51 30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710"
	msgs := map[int]string{0: "", 128: m512[:32], 320: strings.ReplaceAll(m512, " ", "")[:80], 512: m512}
	tdesMsgs := map[int]string{0: "", 64: "6bc1bee22e409f96", 160: "6bc1bee22e409f96e93d7e117393172aae2d8a57", 256: "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"}
	cases := []struct {
		key  string
		bits int
		want string
		tdes bool
	}{
		{"2b7e151628aed2a6abf7158809cf4f3c", 0, "bb1d6929e95937287fa37d129b756746", false},
		{"2b7e151628aed2a6abf7158809cf4f3c", 128, "070a16b46b4d4144f79bdd9dd04a287c", false},
		{"2b7e151628aed2a6abf7158809cf4f3c", 320, "dfa66747de9ae63030ca32611497c827", false},
		{"2b7e151628aed2a6abf7158809cf4f3c", 512, "51f0bebf7e3b9d92fc49741779363cfe", false},
		{"8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b", 0, "d17ddf46adaacde531cac483de7a9367", false},
		{"8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b", 128, "9e99a7bf31e710900662f65e617c5184", false},
		{"8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b", 320, "8a1de5be2eb31aad089a82e6ee908b0e", false},
		{"8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b", 512, "a1d5df0eed790f794d77589659f39a11", false},
		{"603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4", 0, "028962f61b7bf89efc6b551f4667d983", false},
		{"603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4", 128, "28a7023f452e8f82bd4bf28d8c37c35c", false},
		{"603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4", 320, "aaf3d8f1de5640c232f5b169b9c911e6", false},
		{"603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4", 512, "e1992190549f6ed5696a2c056c315410", false},
		{"8aa83bf8cbda10620bc1bf19fbb6cd58bc313d4a371ca8b5", 0, "b7a688e122ffaf95", true},
		{"8aa83bf8cbda10620bc1bf19fbb6cd58bc313d4a371ca8b5", 64, "8e8f293136283797", true},
		{"8aa83bf8cbda10620bc1bf19fbb6cd58bc313d4a371ca8b5", 160, "743ddbe0ce2dc2ed", true},
		{"8aa83bf8cbda10620bc1bf19fbb6cd58bc313d4a371ca8b5", 256, "33e6b1092400eae5", true},
		{"4cf15134a2850dd58a3d10ba80570d384cf15134a2850dd5", 0, "bd2ebf9a3ba00361", true},
		{"4cf15134a2850dd58a3d10ba80570d384cf15134a2850dd5", 64, "4ff2ab813c53ce83", true},
		{"4cf15134a2850dd58a3d10ba80570d384cf15134a2850dd5", 160, "62dd1b471902bd4e", true},
		{"4cf15134a2850dd58a3d10ba80570d384cf15134a2850dd5", 256, "31b1e431dabc4eb8", true},
	}
	for _, c := range cases {
		var m *CMAC
		var err error
		var msg []byte
		if c.tdes {
			m, err = NewTDESCMAC(h(t, c.key))
			msg = h(t, tdesMsgs[c.bits])
		} else {
			m, err = NewAESCMAC(h(t, c.key))
			msg = h(t, msgs[c.bits])
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(msg)*8 != c.bits {
			t.Fatalf("test message is %d bits, want %d", len(msg)*8, c.bits)
		}
		got := m.Sum(nil, msg)
		if hex.EncodeToString(got) != c.want {
			t.Errorf("CMAC key %s… Mlen %d = %x, want %s", c.key[:8], c.bits, got, c.want)
		}
		if !m.Verify(h(t, c.want), msg) || !m.Verify(h(t, c.want)[:8], msg) {
			t.Errorf("Verify refused the right CMAC (key %s… Mlen %d)", c.key[:8], c.bits)
		}
		tr, err := m.SumTruncated(nil, msg, 8)
		if err != nil || hex.EncodeToString(tr) != c.want[:16] {
			t.Errorf("truncated CMAC = %x, %v", tr, err)
		}
	}
}

func TestPaddingMethod2(t *testing.T) {
	c, _ := des.NewTripleDESCipher(h(t, "0123456789ABCDEFFEDCBA987654321089ABCDEF01234567"))
	for _, n := range []int{0, 1, 7, 8, 9, 16} {
		data := bytes.Repeat([]byte{0x5A}, n)
		got, err := Alg1(c, data, Padding2)
		if err != nil {
			t.Fatal(err)
		}
		padded := append(bytes.Clone(data), 0x80)
		for len(padded)%8 != 0 {
			padded = append(padded, 0)
		}
		want, _ := Alg1(c, padded, Padding1)
		if !bytes.Equal(got, want) {
			t.Errorf("len %d: padding 2 MAC %X, want %X", n, got, want)
		}
	}
	// Padding 1 on an empty message is one zero block.
	e, _ := Alg1(c, nil, Padding1)
	z, _ := Alg1(c, make([]byte, 8), Padding1)
	if !bytes.Equal(e, z) {
		t.Fatal("padding 1 of empty data is not one zero block")
	}
	if _, err := Alg1(c, nil, Padding(3)); err == nil {
		t.Fatal("padding 3 accepted")
	}
}

// The retail MAC equals a single-DES CBC-MAC followed by D(K') E(K) (definition check
// with the standard library only).
func TestRetailDefinition(t *testing.T) {
	key := h(t, "404142434445464748494A4B4C4D4E4F")
	data := bytes.Repeat([]byte("0200B238"), 25) // 200 bytes
	r, err := NewRetail(key, Padding1)
	if err != nil {
		t.Fatal(err)
	}
	k1, _ := des.NewCipher(key[:8])
	k2, _ := des.NewCipher(key[8:])
	x, _ := Alg1(k1, data, Padding1)
	k2.Decrypt(x, x)
	k1.Encrypt(x, x)
	if got := r.Sum(nil, data); !bytes.Equal(got, x) {
		t.Fatalf("retail %X, want %X", got, x)
	}
	// TDES CBC-MAC of one block equals retail MAC of one block.
	one := data[:8]
	tdesAlg1, _ := Alg1Key(key, one, Padding1)
	if got := r.Sum(nil, one); !bytes.Equal(got, tdesAlg1) {
		t.Fatalf("single-block retail %X != TDES alg1 %X", got, tdesAlg1)
	}
	if _, err := NewRetail(key[:8], Padding1); err == nil {
		t.Fatal("8-byte retail key accepted")
	}
}

func TestVerifyLengthsAndAllocs(t *testing.T) {
	a, _ := aes.NewCipher(h(t, "2b7e151628aed2a6abf7158809cf4f3c"))
	m, _ := NewCMAC(a)
	data := bytes.Repeat([]byte{1}, 200)
	full := m.Sum(nil, data)
	for _, l := range []int{0, 3, 17} {
		mac := make([]byte, l)
		copy(mac, full)
		if m.Verify(mac, data) {
			t.Errorf("Verify accepted a %d-byte MAC", l)
		}
	}
	if _, err := m.SumTruncated(nil, data, 2); err == nil {
		t.Error("truncation to 2 bytes accepted")
	}
	r, _ := NewRetail(h(t, "404142434445464748494A4B4C4D4E4F"), Padding1)
	rm := r.Sum(nil, data)
	if n := testing.AllocsPerRun(100, func() {
		if !m.Verify(full[:8], data) || !r.Verify(rm, data) {
			t.Fatal("verify failed")
		}
	}); n > 0 {
		t.Fatalf("Verify allocates %.1f times", n)
	}
}

func BenchmarkRetailVerify200(b *testing.B) {
	r, _ := NewRetail(h(b, "404142434445464748494A4B4C4D4E4F"), Padding1)
	data := bytes.Repeat([]byte("0200B238"), 25)
	m := r.Sum(nil, data)
	b.ReportAllocs()
	for b.Loop() {
		if !r.Verify(m, data) {
			b.Fatal("verify")
		}
	}
}

func BenchmarkAESCMACVerify200(b *testing.B) {
	m, _ := NewAESCMAC(h(b, "2b7e151628aed2a6abf7158809cf4f3c"))
	data := bytes.Repeat([]byte("0200B238"), 25)
	mac := m.Sum(nil, data)[:8]
	b.ReportAllocs()
	for b.Loop() {
		if !m.Verify(mac, data) {
			b.Fatal("verify")
		}
	}
}
