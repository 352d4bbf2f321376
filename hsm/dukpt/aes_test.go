package dukpt

import (
	"crypto/aes"
	"errors"
	"testing"

	"github.com/switchyard/switchyard/hsm/internal/testvec"
	"github.com/switchyard/switchyard/hsm/mac"
	"github.com/switchyard/switchyard/hsm/pinblock"
)

func aesKSN(t testing.TB, s string) AESKSN {
	t.Helper()
	k, err := ParseAESKSN(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestAESInitialKeyVectors(t *testing.T) {
	for _, v := range testvec.Load(t, vectors, "aes_dukpt_initial_key") {
		var id [8]byte
		copy(id[:], v.Hex(t, "initial_key_id"))
		got, err := AESInitialKey(v.Hex(t, "bdk"), id)
		if err != nil {
			t.Fatal(err)
		}
		if testvec.Upper(got) != v.Str(t, "expected") {
			t.Errorf("%s: IK %X, want %s", v.Label(), got, v.Str(t, "expected"))
		}
	}
}

func TestAESTransactionDerivationKeyVectors(t *testing.T) {
	for _, v := range testvec.Load(t, vectors, "aes_dukpt_transaction_derivation_key") {
		got, err := AESTransactionKey(v.Hex(t, "bdk"), aesKSN(t, v.Str(t, "ksn")))
		if err != nil {
			t.Fatal(err)
		}
		if testvec.Upper(got) != v.Str(t, "expected") {
			t.Errorf("%s: key %X, want %s", v.Label(), got, v.Str(t, "expected"))
		}
	}
}

// ANSI X9.24-3:2017 supplement test vectors for the AES-128 BDK (all transaction
// derivation keys reproduced in openemv/dukpt test/dukpt_aes128_test.c) and the
// AES-256 BDK initial key (test/dukpt_aes_test.c).
func TestAESSupplementVectors(t *testing.T) {
	bdk := hx(t, "FEDCBA9876543210F1F1F1F1F1F1F1F1")
	rows := map[string]string{
		"123456789012345600000001": "4F21B565BAD9835E112B6465635EAE44",
		"123456789012345600000002": "2F34D68DE10F68D38091A73B9E7C437C",
		"123456789012345600000003": "031504E530365CF81264238540518318",
		"123456789012345600000004": "0EEFC7ADA628BA68878DA9165A8A1887",
		"123456789012345600000005": "C2A7AC328A5DA2D6002D62465BFC028B",
		"123456789012345600000006": "D30F7D9351DA58448A2F5E92B4EE3B7D",
		"123456789012345600000007": "A8253CEED9AC042C54F75D35C8352278",
		"123456789012345600000008": "718EE6CF0B27E53D5F7AF99C4D8146A2",
		"12345678901234560001FFFE": "E21E8C8D347F8561A2BE752DAA85A111",
		"123456789012345600020000": "F7AE9025468A25D37B7249CFFED224C8",
		"123456789012345600020001": "692C8EA4013645135B36497131DF9D2C",
		"1234567890123456FFFE2000": "48E585B694EB0B18D5C35443E163C0BA",
		"1234567890123456FFFE4000": "396C2C7CA1EA701C03B86B7D41F0C562",
		"1234567890123456FFFE8000": "0387625F189B58AE03EF0E8CCA41105E",
		"1234567890123456FFFF0000": "F6BA59389BD14A9855BE9727E7C52E3C",
	}
	for s, want := range rows {
		got, err := AESTransactionKey(bdk, aesKSN(t, s))
		if err != nil {
			t.Fatal(err)
		}
		if testvec.Upper(got) != want {
			t.Errorf("KSN %s: key %X, want %s", s, got, want)
		}
	}
	bdk256 := hx(t, "FEDCBA9876543210F1F1F1F1F1F1F1F1FEDCBA9876543210F1F1F1F1F1F1F1F1")
	ik, err := AESInitialKey(bdk256, [8]byte{0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56})
	if err != nil {
		t.Fatal(err)
	}
	if testvec.Upper(ik) != "CE9CE0C101D1138F97FB6CAD4DF045A7083D4EAE2D35A31789D01CCF0949550F" {
		t.Errorf("AES-256 IK %X", ik)
	}
}

// Working keys cross-checked against moov-io/dukpt pkg/aes/aes_test.go (InitialSequence,
// which follows X9.24-3:2017 B.1): AES-CMAC of ASCII "4012345678909D987" under the
// MAC generation key (request) and MAC verification key (response).
func TestAESMACWorkingKeysCrossCheck(t *testing.T) {
	bdk := hx(t, "FEDCBA9876543210F1F1F1F1F1F1F1F1")
	rows := []struct{ ksn, req, resp string }{
		{"123456789012345600000001", "A2EB5C1C35809E58404E873C3C411E31", "DD4E1895FD9BF53D8DAF25568ABF551D"},
		{"123456789012345600000002", "4D104704C53491A60944193DCAF6B411", "008CEAAE2B913BEEE76209EE9406DAC1"},
		{"123456789012345600000003", "6A18904AA8E966A03505F5EEBDAEBD82", "40CB2F0C2E043D060063FAA916A849E1"},
		{"123456789012345600000004", "77BBD3FB827158B9B12880B0794D1C74", "51FDE192BC484F769AA0A86F8BC5CB30"},
		{"123456789012345600000005", "C0CE6DA1F4434AD16EEEBF486C9616CD", "4B508F51104D184A9190061ED854200E"},
		{"123456789012345600000006", "05222AE91471C590B3A9471523324C14", "ED90BD8AE4571C75CF08EA3EA195ABF8"},
		{"123456789012345600000007", "37FA54258AAF805A44AA1273C0DF928C", "52D6C1D3A95B1D21761E20870D9A7E8C"},
		{"123456789012345600000008", "85C7CA68F55F51E7DCAC969B8C111130", "B45399DB90C0BA75DB4B86605758695A"},
	}
	data := []byte("4012345678909D987")
	for _, r := range rows {
		k := aesKSN(t, r.ksn)
		for usage, want := range map[Usage]string{UsageMACGeneration: r.req, UsageMACVerification: r.resp} {
			wk, err := DeriveAESWorkingKey(bdk, k, usage, AES128)
			if err != nil {
				t.Fatal(err)
			}
			m, _ := mac.NewAESCMAC(wk)
			if got := testvec.Upper(m.Sum(nil, data)); got != want {
				t.Errorf("KSN %s %s: CMAC %s, want %s", r.ksn, usage, got, want)
			}
		}
	}
}

func TestAESPINWorkingKeyFormat4RoundTrip(t *testing.T) {
	bdk := hx(t, "FEDCBA9876543210F1F1F1F1F1F1F1F1")
	k := aesKSN(t, "123456789012345600000001")
	pk, err := DeriveAESWorkingKey(bdk, k, UsagePINEncryption, AES128)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := aes.NewCipher(pk)
	blk, err := pinblock.Encrypt(c, pinblock.Format4, []byte("1234"), "4111111111111111", nil)
	if err != nil {
		t.Fatal(err)
	}
	pin, err := pinblock.Decrypt(c, pinblock.Format4, blk, "4111111111111111")
	if err != nil || string(pin) != "1234" {
		t.Fatalf("%v", err)
	}
	// Keys of different usages and types differ, and a 2TDEA working key is 16 bytes.
	seen := map[string]Usage{}
	for _, u := range []Usage{UsagePINEncryption, UsageMACGeneration, UsageMACVerification, UsageMACBoth, UsageDataEncrypt, UsageDataDecrypt, UsageDataBoth, UsageKeyEncryption} {
		wk, err := DeriveAESWorkingKey(bdk, k, u, AES128)
		if err != nil {
			t.Fatal(err)
		}
		if prev, dup := seen[string(wk)]; dup {
			t.Fatalf("%s and %s keys are equal", u, prev)
		}
		seen[string(wk)] = u
	}
	tk, err := DeriveAESWorkingKey(bdk, k, UsagePINEncryption, TDES2)
	if err != nil || len(tk) != 16 {
		t.Fatalf("2TDEA working key: %d bytes, %v", len(tk), err)
	}
	if _, err := DeriveAESWorkingKey(bdk, k, UsagePINEncryption, AES256); err == nil {
		t.Fatal("AES-256 working key from an AES-128 derivation key accepted")
	}
	if _, err := DeriveAESWorkingKey(bdk, k, Usage(0x8000), AES128); err == nil {
		t.Fatal("derivation usage accepted as a working key usage")
	}
	bdk256 := hx(t, "FEDCBA9876543210F1F1F1F1F1F1F1F1FEDCBA9876543210F1F1F1F1F1F1F1F1")
	wk256, err := DeriveAESWorkingKey(bdk256, k, UsagePINEncryption, AES256)
	if err != nil || len(wk256) != 32 {
		t.Fatalf("AES-256 working key: %d bytes %v", len(wk256), err)
	}
}

func TestParseAESKSN(t *testing.T) {
	k := aesKSN(t, "1234567890123456FFFF0000")
	if k.Counter() != 0xFFFF0000 || k.DeviceID() != "1234567890123456" {
		t.Fatalf("counter %x device %s", k.Counter(), k.DeviceID())
	}
	for _, s := range []string{
		"12345678901234560001FFFF", // 17 one-bits
		"123456789012345600000000", // counter 0
		"12345678901234560000001",  // 23 digits
		"1234567890123456000000011",
		"12345678901234560000000X",
	} {
		if _, err := ParseAESKSN(s); !errors.Is(err, ErrKSN) {
			t.Errorf("ParseAESKSN(%q): err = %v", s, err)
		}
	}
	if _, err := AESInitialKey(make([]byte, 20), [8]byte{}); err == nil {
		t.Error("20-byte BDK accepted")
	}
}
