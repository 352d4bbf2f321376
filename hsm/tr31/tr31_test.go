package tr31

import (
	"bytes"
	"crypto/cipher"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/hsm/internal/testvec"
)

const vectors = "../../testdata/vectors/crypto.json"

func hx(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUnwrapPublishedVectors(t *testing.T) {
	for _, v := range testvec.Load(t, vectors, "tr31_unwrap") {
		t.Run(v.Label(), func(t *testing.T) {
			h, key, err := Unwrap(v.Hex(t, "kbpk"), v.Str(t, "key_block"))
			if err != nil {
				t.Fatal(err)
			}
			if string(rune(h.Version)) != v.Str(t, "version") {
				t.Fatalf("version %c, want %s", h.Version, v.Str(t, "version"))
			}
			if testvec.Upper(key) != v.Str(t, "expected") {
				t.Fatalf("key %X, want %s", key, v.Str(t, "expected"))
			}
		})
	}
}

// The ASC X9 TR-31:2018 Annex A examples (A.7.2.1, A.7.2.2, A.7.3.1, A.7.3.2, A.7.4)
// and key blocks generated on a Thales payShield 10k, as reproduced in openemv/tr31
// test/tr31_decrypt_test.c, with their header fields.
func TestUnwrapAnnexAndPayShieldExamples(t *testing.T) {
	cases := []struct {
		name, kbpk, block, key string
		usage                  string
		alg, mode, exp         byte
		keyVersion             string
		ks                     string
	}{
		{"payShield A", "EFE0853B256B583D868F251CE99EA1D9", "A0072K0TN00N0000F40D5672C6D0EC86F860BA88D44D00F0CA9A8CE8CD2F640287A9A9EB", "5DB50B454F8389ADCE573BE50861F2BF", "K0", 'T', 'N', 'N', "00", ""},
		{"payShield B", "EFE0853B256B583D868F251CE99EA1D9", "B0080K0TN00N00001C414014375212C24995E405B5EE052CB92B67F455EA2680F6751088F9F1C228", "5DB50B454F8389ADCE573BE50861F2BF", "K0", 'T', 'N', 'N', "00", ""},
		{"payShield C", "EFE0853B256B583D868F251CE99EA1D9", "C0072K0TN00N0000C9B875FF7A5316BF221C09ED52080DE0B45632A4EA9CE87699CB565E", "5DB50B454F8389ADCE573BE50861F2BF", "K0", 'T', 'N', 'N', "00", ""},
		{"A.7.2.1", "89E88CF7931444F334BD7547FC3F380C", "A0072P0TE00E0000F5161ED902807AF26F1D62263644BD24192FDB3193C730301CEE8701", "F039121BEC83D26B169BDCD5B22AAF8F", "P0", 'T', 'E', 'E', "00", ""},
		{"A.7.2.2", "DD7515F2BFC17F85CE48F3CA25CB21F6", "B0080P0TE00E000094B420079CC80BA3461F86FE26EFC4A3B8E4FA4C5F5341176EED7B727B8A248E", "3F419E1CB7079442AA37474C2EFBF8B8", "P0", 'T', 'E', 'E', "00", ""},
		{"A.7.3.1", "B8ED59E0A279A295E9F5ED7944FD06B9", "C0096B0TX12S0100KS1800604B120F9292800000BFB9B689CB567E66FC3FEE5AD5F52161FC6545B9D60989015D02155C", "EDB380DD340BC2620247D445F5B8D678", "B0", 'T', 'X', 'S', "12", "00604B120F9292800000"},
		{"A.7.3.2", "1D22BF32387C600AD97F9B97A51311AC", "B0104B0TX12S0100KS1800604B120F9292800000BB68BE8680A400D9191AD4ECE45B6E6C0D21C4738A52190E248719E24B433627", "E8BC63E5479455E26577F715D587FE68", "B0", 'T', 'X', 'S', "12", "00604B120F9292800000"},
		{"A.7.4", "88E1AB2A2E3DD38C1FA039A536500CC8A87AB9D62DC92C01058FA79F44657DE6", "D0112P0AE00E0000B82679114F470F540165EDFBF7E250FCEA43F810D215F8D207E2E417C07156A27E8E31DA05F7425509593D03A457DC34", "3F419E1CB7079442AA37474C2EFBF8B8", "P0", 'A', 'E', 'E', "00", ""},
		{"payShield D/TDES", strings.Repeat("41", 32), "D0112B0TN00N000037DB9B046B7B0048785690759580ABC3B9842AB4BB7717B49E92528E575785D8123559376A2553B27BE94F054F4E971C", "1FA1F7CEC798D91545DA8AE0C7796BD9", "B0", 'T', 'N', 'N', "00", ""},
		{"payShield D/AES-256", strings.Repeat("41", 32), "D0144D0AN00N0000127862F945C2DED04530FAF7CDBC8B0BA10C7AA79BD5E0C2C5D6AC173BF588E4B19ACF1357178D50EA0AB193228E13958304FC6149632DFDCADF3A5B3D57E814", "BE19E6A07A760F10EF8E83A226B63AAD141F463FDDD4F47DB244B4023EC3CACC", "D0", 'A', 'N', 'N', "00", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, key, err := Unwrap(hx(t, c.kbpk), c.block)
			if err != nil {
				t.Fatal(err)
			}
			if testvec.Upper(key) != c.key {
				t.Fatalf("key %X, want %s", key, c.key)
			}
			if h.Usage != c.usage || h.Algorithm != c.alg || h.ModeOfUse != c.mode || h.Exportability != c.exp || h.KeyVersion != c.keyVersion {
				t.Fatalf("header %s", h)
			}
			ks, ok := h.Block("KS")
			if (c.ks != "") != ok || ks != c.ks {
				t.Fatalf("KS block %q %v, want %q", ks, ok, c.ks)
			}
			// Any single-character change of the block must be refused.
			for _, i := range []int{0, 5, 9, 15, len(c.block) / 2, len(c.block) - 1} {
				b := []byte(c.block)
				if b[i] == '0' {
					b[i] = '1'
				} else {
					b[i] = '0'
				}
				if _, _, err := Unwrap(hx(t, c.kbpk), string(b)); err == nil {
					t.Errorf("altered character %d accepted", i)
				}
			}
			wrong := hx(t, c.kbpk)
			wrong[0] ^= 0x02
			if _, _, err := Unwrap(wrong, c.block); !errors.Is(err, ErrMAC) {
				t.Errorf("wrong KBPK: err = %v, want ErrMAC", err)
			}
		})
	}
}

// Wrap reproduces the published version B and D blocks byte for byte when given the
// same random padding, which is recovered by decrypting the published block.
func TestWrapReproducesPublishedBlocks(t *testing.T) {
	cases := []struct{ kbpk, block string }{
		{"DD7515F2BFC17F85CE48F3CA25CB21F6", "B0080P0TE00E000094B420079CC80BA3461F86FE26EFC4A3B8E4FA4C5F5341176EED7B727B8A248E"},
		{"1D22BF32387C600AD97F9B97A51311AC", "B0104B0TX12S0100KS1800604B120F9292800000BB68BE8680A400D9191AD4ECE45B6E6C0D21C4738A52190E248719E24B433627"},
		{"88E1AB2A2E3DD38C1FA039A536500CC8A87AB9D62DC92C01058FA79F44657DE6", "D0112P0AE00E0000B82679114F470F540165EDFBF7E250FCEA43F810D215F8D207E2E417C07156A27E8E31DA05F7425509593D03A457DC34"},
		{strings.Repeat("41", 32), "D0144D0AN00N0000127862F945C2DED04530FAF7CDBC8B0BA10C7AA79BD5E0C2C5D6AC173BF588E4B19ACF1357178D50EA0AB193228E13958304FC6149632DFDCADF3A5B3D57E814"},
	}
	for _, c := range cases {
		kbpk := hx(t, c.kbpk)
		h, key, err := Unwrap(kbpk, c.block)
		if err != nil {
			t.Fatal(err)
		}
		_, hlen, _ := ParseHeader(c.block)
		ml := h.Version.macHexLen()
		enc := hx(t, c.block[hlen:len(c.block)-ml])
		tag := hx(t, c.block[len(c.block)-ml:])
		k, _ := deriveKeys(h.Version, kbpk)
		payload := make([]byte, len(enc))
		cipher.NewCBCDecrypter(k.enc, tag).CryptBlocks(payload, enc)
		pad := payload[2+len(key):]
		got, err := Wrap(kbpk, h, key, bytes.NewReader(pad))
		if err != nil {
			t.Fatal(err)
		}
		if got != c.block {
			t.Errorf("Wrap =\n%s\nwant\n%s", got, c.block)
		}
	}
}

func TestWrapRoundTrip(t *testing.T) {
	cases := []struct {
		v    Version
		kbpk int
		alg  byte
		key  int
	}{
		{VersionB, 16, AlgTDES, 16}, {VersionB, 24, AlgTDES, 24}, {VersionB, 16, AlgTDES, 24},
		{VersionD, 16, AlgAES, 16}, {VersionD, 24, AlgAES, 24}, {VersionD, 32, AlgAES, 32}, {VersionD, 32, AlgTDES, 16},
	}
	for _, c := range cases {
		kbpk := bytes.Repeat([]byte{0x3C}, c.kbpk)
		key := bytes.Repeat([]byte{0xA5}, c.key)
		for _, blocks := range [][]OptionalBlock{nil, {{ID: "KS", Data: "00604B120F9292800000"}}, {{ID: "LB", Data: "x"}, {ID: "10", Data: strings.Repeat("y", 300)}}} {
			h := Header{Version: c.v, Usage: UsagePIN, Algorithm: c.alg, ModeOfUse: ModeEncDec, KeyVersion: "01", Exportability: ExportTrusted, Blocks: blocks}
			blk, err := Wrap(kbpk, h, key, nil)
			if err != nil {
				t.Fatalf("%c/%d: %v", c.v, c.kbpk, err)
			}
			h2, key2, err := Unwrap(kbpk, blk)
			if err != nil {
				t.Fatalf("%c/%d: unwrap own block: %v\n%s", c.v, c.kbpk, err, blk)
			}
			if !bytes.Equal(key, key2) || h2.Usage != h.Usage || h2.KeyVersion != "01" {
				t.Fatalf("round trip differs: %s", h2)
			}
			for _, b := range blocks {
				if d, ok := h2.Block(b.ID); !ok || d != b.Data {
					t.Fatalf("optional block %s lost", b.ID)
				}
			}
			if _, hl, _ := ParseHeader(blk); hl%c.v.blockSize() != 0 {
				t.Fatalf("header length %d not padded", hl)
			}
			// Two wraps differ (random padding) yet both unwrap.
			blk2, _ := Wrap(kbpk, h, key, nil)
			if blk2 == blk {
				t.Fatal("two wraps are identical: padding not random")
			}
		}
	}
}

func TestWrapRejects(t *testing.T) {
	k16 := make([]byte, 16)
	good := Header{Version: VersionD, Usage: UsagePIN, Algorithm: AlgAES, ModeOfUse: ModeEncDec, KeyVersion: "00", Exportability: ExportTrusted}
	bad := func(mut func(*Header)) Header { h := good; mut(&h); return h }
	cases := map[string]struct {
		h    Header
		kbpk []byte
		key  []byte
	}{
		"version A":           {bad(func(h *Header) { h.Version = VersionA }), k16, k16},
		"unknown usage":       {bad(func(h *Header) { h.Usage = "Q9" }), k16, k16},
		"bad algorithm":       {bad(func(h *Header) { h.Algorithm = 'Z' }), k16, k16},
		"bad mode":            {bad(func(h *Header) { h.ModeOfUse = 'Q' }), k16, k16},
		"bad export":          {bad(func(h *Header) { h.Exportability = 'X' }), k16, k16},
		"bad key version":     {bad(func(h *Header) { h.KeyVersion = "0" }), k16, k16},
		"caller PB":           {bad(func(h *Header) { h.Blocks = []OptionalBlock{{ID: "PB", Data: "00"}} }), k16, k16},
		"unprintable block":   {bad(func(h *Header) { h.Blocks = []OptionalBlock{{ID: "LB", Data: "\x01"}} }), k16, k16},
		"AES key length":      {good, k16, make([]byte, 8)},
		"D with 8-byte KBPK":  {good, make([]byte, 8), k16},
		"B with AES-256 KBPK": {bad(func(h *Header) { h.Version = VersionB; h.Algorithm = AlgTDES }), make([]byte, 32), k16},
	}
	for name, c := range cases {
		if _, err := Wrap(c.kbpk, c.h, c.key, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParseHeaderErrors(t *testing.T) {
	base := "D0112P0AE00E0000B82679114F470F540165EDFBF7E250FCEA43F810D215F8D207E2E417C07156A27E8E31DA05F7425509593D03A457DC34"
	set := func(i int, s string) string { return base[:i] + s + base[i+len(s):] }
	cases := map[string]struct {
		block, want string
	}{
		"short":       {"D0016P0AE00E00", "shorter than"},
		"length":      {set(1, "0111"), "length field says 111"},
		"length hex":  {set(1, "01A2"), "not 4 digits"},
		"version":     {set(0, "X"), "version ID"},
		"usage":       {set(5, "Q1"), "key usage \"Q1\""},
		"algorithm":   {set(7, "Z"), "algorithm"},
		"mode":        {set(8, "Q"), "mode of use"},
		"key version": {set(9, "0-"), "key version"},
		"export":      {set(11, "X"), "exportability"},
		"count":       {set(12, "0A"), "number of optional blocks"},
		"reserved":    {set(14, "01"), "reserved"},
		"opt overrun": {set(12, "99"), "optional block"},
		"unprintable": {set(20, "\x00"), "printable"},
	}
	for name, c := range cases {
		_, _, err := ParseHeader(c.block)
		if err == nil || !errors.Is(err, ErrHeader) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want ErrHeader mentioning %q", name, err, c.want)
		}
	}
	// Optional block lengths: too short, running over, and unpadded headers.
	for name, blk := range map[string]string{
		"opt len short": "B0032P0TE00E0100KS03" + strings.Repeat("0", 12),
		"opt len long":  "B0032P0TE00E0100KSFF" + strings.Repeat("0", 12),
		"unpadded":      "D0036P0TE00E0100KS08ABCD" + strings.Repeat("0", 12),
		"opt len lower": "B0032P0TE00E0100KS0c" + strings.Repeat("0", 12),
	} {
		if _, _, err := ParseHeader(blk); !errors.Is(err, ErrHeader) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	// Body errors.
	for name, blk := range map[string]string{
		"lower-case hex": "D0112P0AE00E0000b82679114F470F540165EDFBF7E250FCEA43F810D215F8D207E2E417C07156A27E8E31DA05F7425509593D03A457DC34",
		"no payload":     "D0048P0AE00E0000" + strings.Repeat("0", 32),
	} {
		if _, _, err := Unwrap(make([]byte, 32), blk); !errors.Is(err, ErrBlock) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func FuzzParseHeader(f *testing.F) {
	for _, s := range []string{
		"A0072P0TE00E0000F5161ED902807AF26F1D62263644BD24192FDB3193C730301CEE8701",
		"B0104B0TX12S0100KS1800604B120F9292800000BB68BE8680A400D9191AD4ECE45B6E6C0D21C4738A52190E248719E24B433627",
		"D0112P0AE00E0000B82679114F470F540165EDFBF7E250FCEA43F810D215F8D207E2E417C07156A27E8E31DA05F7425509593D03A457DC34",
		"D0048P0AE00E0200KS0800000000PB0400",
		"",
	} {
		f.Add(s)
	}
	kbpk := hx(f, "88E1AB2A2E3DD38C1FA039A536500CC8A87AB9D62DC92C01058FA79F44657DE6")
	long, err := Wrap(kbpk, Header{Version: VersionD, Usage: UsageData, Algorithm: AlgAES, ModeOfUse: ModeEncDec, KeyVersion: "00", Exportability: ExportNone,
		Blocks: []OptionalBlock{{ID: "LB", Data: strings.Repeat("L", 260)}, {ID: "KS", Data: "00604B120F9292800000"}}}, make([]byte, 16), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(long)
	f.Fuzz(func(t *testing.T, s string) {
		h, n, err := ParseHeader(s)
		if err == nil {
			if n < 16 || n > len(s) || n%h.Version.blockSize() != 0 {
				t.Fatalf("header length %d for a %d-character block", n, len(s))
			}
			if h.validate() != nil {
				t.Fatal("parsed header does not validate")
			}
			// Re-encoding the parsed header gives back the same characters.
			if enc := h.encode(len(s)); enc != s[:n] {
				t.Fatalf("header re-encodes to %q, was %q", enc, s[:n])
			}
		}
		_, key, err := Unwrap(kbpk, s)
		if err == nil && len(key) == 0 {
			t.Fatal("unwrap returned an empty key without error")
		}
	})
}
