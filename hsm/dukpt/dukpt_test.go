package dukpt

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/hsm/internal/testvec"
	"github.com/switchyard/switchyard/hsm/mac"
	"github.com/switchyard/switchyard/hsm/pinblock"
	"github.com/switchyard/switchyard/internal/sym"
)

const vectors = "../../testdata/vectors/crypto.json"

// testBDK is the X9.24-1:2009 Annex A test BDK.
const testBDK = "0123456789ABCDEFFEDCBA9876543210"

func hx(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ksn(t testing.TB, s string) KSN {
	t.Helper()
	k, err := ParseKSN(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func bdkOf(t testing.TB, v testvec.Vector) []byte {
	if s := v.Opt("bdk"); s != "" {
		return hx(t, s)
	}
	return hx(t, testBDK) // the MAC entries leave out the (standard) BDK
}

func TestTDESIPEKVectors(t *testing.T) {
	for _, v := range testvec.Load(t, vectors, "tdes_dukpt_ipek") {
		// The IPEK is derived from the initial KSN, whose counter is 0: parse without
		// the transaction-KSN check.
		var k KSN
		copy(k[:], v.Hex(t, "ksn"))
		got, err := IPEK(bdkOf(t, v), k)
		if err != nil {
			t.Fatal(err)
		}
		if testvec.Upper(got) != v.Str(t, "expected") {
			t.Errorf("%s: IPEK %X, want %s", v.Label(), got, v.Str(t, "expected"))
		}
	}
}

func TestTDESTransactionKeyVectors(t *testing.T) {
	for _, v := range testvec.Load(t, vectors, "tdes_dukpt_transaction_key") {
		got, err := TransactionKey(bdkOf(t, v), ksn(t, v.Str(t, "ksn")))
		if err != nil {
			t.Fatal(err)
		}
		if testvec.Upper(got) != v.Str(t, "expected") {
			t.Errorf("%s: key %X, want %s", v.Label(), got, v.Str(t, "expected"))
		}
	}
}

func TestTDESPINKeyVectors(t *testing.T) {
	for _, v := range testvec.Load(t, vectors, "tdes_dukpt_pin_key") {
		k := ksn(t, v.Str(t, "ksn"))
		txn, err := TransactionKey(hx(t, testBDK), k)
		if err != nil {
			t.Fatal(err)
		}
		if testvec.Upper(txn) != v.Str(t, "transaction_key") {
			t.Fatalf("%s: transaction key %X", v.Label(), txn)
		}
		pk, err := WorkingKey(txn, PINVariant)
		if err != nil {
			t.Fatal(err)
		}
		if testvec.Upper(pk) != v.Str(t, "expected") {
			t.Errorf("%s: PIN key %X, want %s", v.Label(), pk, v.Str(t, "expected"))
		}
		var x [16]byte
		sym.XOR(x[:], pk, txn)
		if testvec.Upper(x[:]) != v.Str(t, "variant") {
			t.Errorf("%s: PIN variant %X, want %s", v.Label(), x, v.Str(t, "variant"))
		}
	}
}

func TestTDESEncryptedPINBlockVectors(t *testing.T) {
	for _, v := range testvec.Load(t, vectors, "tdes_dukpt_encrypted_pin_block") {
		t.Run(v.Label(), func(t *testing.T) {
			k := ksn(t, v.Str(t, "ksn"))
			pk, err := DeriveWorkingKey(bdkOf(t, v), k, PINVariant)
			if err != nil {
				t.Fatal(err)
			}
			if want := v.Opt("pin_key"); want != "" && testvec.Upper(pk) != want {
				t.Fatalf("PIN key %X, want %s", pk, want)
			}
			if want := v.Opt("pin_key_variant"); want != "" && want != "00000000000000FF00000000000000FF" {
				t.Fatalf("unexpected variant %s", want)
			}
			if !strings.Contains(v.Str(t, "pin_block_format"), "format 0") {
				t.Fatalf("unexpected format %s", v.Str(t, "pin_block_format"))
			}
			c, _ := sym.NewTDES(pk)
			pan := v.Str(t, "pan")
			blk, err := pinblock.Encrypt(c, pinblock.Format0, []byte(v.Str(t, "pin")), pan, nil)
			if err != nil {
				t.Fatal(err)
			}
			if testvec.Upper(blk) != v.Str(t, "expected") {
				t.Fatalf("encrypted PIN block %X, want %s", blk, v.Str(t, "expected"))
			}
			if cb := v.Opt("clear_pin_block"); cb != "" {
				clear, _ := pinblock.Encode(pinblock.Format0, []byte(v.Str(t, "pin")), pan, nil)
				if testvec.Upper(clear) != cb {
					t.Fatalf("clear PIN block %X, want %s", clear, cb)
				}
			}
			pin, err := pinblock.Decrypt(c, pinblock.Format0, hx(t, v.Str(t, "expected")), pan)
			if err != nil || string(pin) != v.Str(t, "pin") {
				t.Fatalf("decrypt published block: %v", err)
			}
		})
	}
}

func TestTDESMACVectors(t *testing.T) {
	for kind, variant := range map[string]Variant{"tdes_dukpt_mac_request": MACRequestVariant, "tdes_dukpt_mac_response": MACResponseVariant} {
		for _, v := range testvec.Load(t, vectors, kind) {
			if !strings.Contains(v.Str(t, "algorithm"), "alg 3") || !strings.Contains(v.Str(t, "algorithm"), "zero padding") {
				t.Fatalf("unexpected algorithm %q", v.Str(t, "algorithm"))
			}
			k := ksn(t, v.Str(t, "ksn"))
			txn, err := TransactionKey(bdkOf(t, v), k)
			if err != nil {
				t.Fatal(err)
			}
			mk, err := WorkingKey(txn, variant)
			if err != nil {
				t.Fatal(err)
			}
			var x [16]byte
			sym.XOR(x[:], mk, txn)
			if testvec.Upper(x[:]) != v.Str(t, "mac_key_variant") {
				t.Fatalf("%s: variant %X, want %s", v.Label(), x, v.Str(t, "mac_key_variant"))
			}
			got, err := mac.Alg3(mk, []byte(v.Str(t, "data_ascii")), mac.Padding1)
			if err != nil {
				t.Fatal(err)
			}
			if testvec.Upper(got) != v.Str(t, "expected") {
				t.Errorf("%s (%s): MAC %X, want %s", v.Label(), kind, got, v.Str(t, "expected"))
			}
		}
	}
}

// The complete ANSI X9.24-1:2009 A.4.2 (initial sequence) and A.4.3 (rollover)
// transaction keys and encrypted PIN blocks (PIN 1234, PAN 4012345678909), as
// reproduced in openemv/dukpt test/dukpt_tdes_test.c.
func TestTDESFullAnnexA4(t *testing.T) {
	type row struct{ counter, key, pinBlock string }
	rows := []row{
		{"E00001", "042666B49184CFA368DE9628D0397BC9", "1B9C1845EB993A7A"},
		{"E00002", "C46551CEF9FD24B0AA9AD834130D3BC7", "10A01C8D02C69107"},
		{"E00003", "0DF3D9422ACA56E547676D07AD6BADFA", "18DC07B94797B466"},
		{"E00004", "279C0F6AEED0BE652B2C733E1383AE91", "0BC79509D5645DF7"},
		{"E00005", "5F8DC6D2C845C125508DDC048093B83F", "5BC0AF22AD87B327"},
		{"E00006", "5E415CB0BAF9F03CD0C14B63FB62FF43", "A16DF70AE36158D8"},
		{"E00007", "0C8F780B7C8B49D0AE84A9EB2A6CE660", "27711C16CB257F8E"},
		{"E00008", "27F66D5244FF62E1AA6F6120EDEB4280", "50E55547A5027551"},
		{"E00009", "27E31064FDC565698900E2057F658E7E", "536CF7F678ACFC8D"},
		{"E0000A", "6CF2500A22507C7CC776CEADC1E33014", "EDABBA23221833FE"},
		{"E0000B", "3E8260BA04B2D620C01482B3819A18B7", "2328981C57B4BDBA"},
		{"E0000C", "B716E1E11CF53D80726CAEE75C3A624F", "038D03CC926CF286"},
		{"E0000D", "E072EDF95340535FB6C581C58FBF2533", "6C8AA97088B62C68"},
		{"E0000E", "A80046087F5B8F245AAD95E18429084F", "F17C9E1D72CD4950"},
		{"E0000F", "93DD5B956C4878472E453AAEFD32A5AA", "B170F6E7F7F2F64A"},
		{"E00010", "59598DCBD9BD94C094165CE453585F57", "D5D9638559EF53D6"},
		{"E00011", "2B5F01F4F0CC05EA639D523231BF1BA2", "D544F8CDD292C863"},
		{"E00012", "9CF640F279C2AEE615F725EEEAC2CBAF", "7A21BD10F36DC41D"},
		{"E00013", "C3DF489FDF1153B4F03DE97C27DC4C2F", "78649BD17D0DFA60"},
		{"E00014", "6584885077 21B3F14737FA93F923CBD2", "7E7E16EA0C31AD56"},
		{"E00015", "E161D1956A61F6D2F37AFD7F9CC3699A", "72105C22EBC791E6"},
		{"EFF800", "F9CDFEBF4F5B1D9EB3EC12454527E176", "33365F5CC6F23C35"},
		{"EFF801", "5BEE92627E97825C911BF619DF72CA3B", "3A86BF003F835C9D"},
		{"EFF802", "64CA2F8AB93F61B01620B00BF77C7301", "3DB977D05C36DF3F"},
		{"EFF804", "35A168695B3BA83307E871C42021DD37", "BA83243305712099"},
		{"EFF808", "12C380FCB72ED3C26FC6079AF63F4787", "B0DA04AC90A36D85"},
		{"EFF810", "D8007C833A1E3C49C6889B97A68C54FF", "2CF02BD9C309EEDA"},
		{"EFF820", "A9C9FF9B735FDD49591F296B0BF0FD70", "9D1E2F77AEEE81C6"},
		{"EFF840", "0E3E221062CB5E03A384602783A004FA", "40870B0F8BA2011C"},
		{"EFF880", "CA8225C587124DFBB87F279C0BE29727", "22E340D6ABB40981"},
		{"EFF900", "906AAC1751D4971A144D52C76C6E1F97", "1A4C10AFBA03A430"},
		{"EFFA00", "2B9E2CE7C2750337E10B54D2989EA6AF", "849763B43E5F9CFF"},
		{"EFFC00", "F9430DF975082491C77BE4EF4FDB91EE", "DEFC6F09F8927B71"},
		{"F00000", "AA4D58DB653EC74A48C75F2F047DD2B5", "73EC88AD0AC5830E"},
	}
	bdk := hx(t, testBDK)
	for _, r := range rows {
		k := ksn(t, "FFFF9876543210"+r.counter)
		txn, err := TransactionKey(bdk, k)
		if err != nil {
			t.Fatal(err)
		}
		if testvec.Upper(txn) != strings.ReplaceAll(r.key, " ", "") {
			t.Errorf("KSN %s: key %X, want %s", k, txn, r.key)
			continue
		}
		pk, _ := WorkingKey(txn, PINVariant)
		c, _ := sym.NewTDES(pk)
		blk, err := pinblock.Encrypt(c, pinblock.Format0, []byte("1234"), "4012345678909", nil)
		if err != nil {
			t.Fatal(err)
		}
		if testvec.Upper(blk) != r.pinBlock {
			t.Errorf("KSN %s: PIN block %X, want %s", k, blk, r.pinBlock)
		}
	}
}

func TestTDESDataVariantIsOneWay(t *testing.T) {
	txn := hx(t, "042666B49184CFA368DE9628D0397BC9")
	for _, v := range []Variant{DataRequestVariant, DataResponseVariant} {
		k, err := WorkingKey(txn, v)
		if err != nil {
			t.Fatal(err)
		}
		// Recompute: variant, then each half TDES-encrypted under the variant key.
		vk := bytes.Clone(txn)
		i := 5
		if v == DataResponseVariant {
			i = 3
		}
		vk[i] ^= 0xFF
		vk[8+i] ^= 0xFF
		c, _ := sym.NewTDES(vk)
		want := make([]byte, 16)
		c.Encrypt(want[:8], vk[:8])
		c.Encrypt(want[8:], vk[8:])
		if !bytes.Equal(k, want) {
			t.Errorf("%s key %X, want %X", v, k, want)
		}
	}
	if _, err := WorkingKey(txn, Variant(9)); err == nil {
		t.Error("unknown variant accepted")
	}
}

func TestParseKSN(t *testing.T) {
	k, err := ParseKSN("ffff9876543210e00012")
	if err != nil {
		t.Fatal(err)
	}
	if k.Counter() != 0x12 || k.DeviceID() != "FFFF9876543210E00000" || k.String() != "FFFF9876543210E00012" {
		t.Fatalf("counter %x device %s", k.Counter(), k.DeviceID())
	}
	k2, _ := ParseKSN("FFFF9876543210F00000")
	if k2.Counter() != 0x100000 || k2.DeviceID() != "FFFF9876543210E00000" {
		t.Fatalf("counter %x device %s", k2.Counter(), k2.DeviceID())
	}
	bad := map[string]string{
		"FFFF9876543210E0001":   "19 hex digits",
		"FFFF9876543210E000010": "21 hex digits",
		"FFFF9876543210E0001G":  "not hex",
		"FFFF9876543210E00000":  "counter 0",
		"FFFF9876543210EFFE00":  "11 one-bits",
		"":                      "empty",
	}
	for s, why := range bad {
		if _, err := ParseKSN(s); !errors.Is(err, ErrKSN) {
			t.Errorf("ParseKSN(%q) (%s): err = %v", s, why, err)
		}
	}
	// 10 one-bits is the most allowed (A.4.3 uses EFFC00).
	if _, err := ParseKSN("FFFF9876543210EFFC00"); err != nil {
		t.Errorf("10 one-bits refused: %v", err)
	}
	if _, err := TransactionKey(make([]byte, 8), k); err == nil {
		t.Error("8-byte BDK accepted")
	}
}

func FuzzParseKSN(f *testing.F) {
	for _, s := range []string{"FFFF9876543210E00001", "FFFF9876543210EFF800", "123456789012345600000001", "", "zz", "FFFF9876543210E0000G"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if k, err := ParseKSN(s); err == nil {
			if !strings.EqualFold(k.String(), s) || k.Counter() == 0 || k.Validate() != nil {
				t.Fatalf("ParseKSN(%q) accepted an inconsistent KSN", s)
			}
			if k.Initial().Counter() != 0 || k.Initial().String()[:14] != k.String()[:14] {
				t.Fatalf("Initial() wrong for %q", s)
			}
		}
		if k, err := ParseAESKSN(s); err == nil {
			if !strings.EqualFold(k.String(), s) || k.Counter() == 0 || k.Validate() != nil {
				t.Fatalf("ParseAESKSN(%q) accepted an inconsistent KSN", s)
			}
		}
	})
}
