package registry

import (
	"errors"
	"strings"
	"testing"
)

// TestMerchantNameText checks the merchant name's validation: names in Chinese and
// other scripts are accepted, up to 100 characters counted in runes (300 bytes of
// Chinese pass, 101 characters do not); control characters, bidi overrides and
// isolates, zero-width and other invisible characters, invalid UTF-8 and blank
// names are refused with an error that says why.
func TestMerchantNameText(t *testing.T) {
	base := Merchant{ID: "000000000000301", MCC: "5411", Region: "CN-SH", Tier: TierMicro, Rating: RatingLow, Status: MerchantActive}
	cases := []struct {
		name string
		ok   bool
		why  string // part of the error when refused
	}{
		{"Tea House", true, ""},
		{"上海鲜果超市", true, ""},
		{"星巴克（南京西路店）", true, ""},
		{"星巴克　南京西路店", true, ""}, // ideographic space
		{"Café Crème, 東京 ラーメン 서울", true, ""},
		{" Tea House ", true, ""}, // as before: ASCII spaces around a name are kept
		{strings.Repeat("鲜", 100), true, ""},
		{strings.Repeat("鲜", 101), false, "101 characters, more than 100"},
		{strings.Repeat("a", 101), false, "101 characters"},
		{"", false, "empty"},
		{"  \u3000 ", false, "empty"},
		{"上海\u202e市超果鲜", false, "U+202E"},     // right-to-left override
		{"上海\u2066鲜果\u2069", false, "U+2066"}, // left-to-right isolate
		{"上海\u202a鲜果", false, "U+202A"},
		{"上海\u200f鲜果", false, "U+200F"}, // right-to-left mark
		{"星巴\u200b克", false, "U+200B"},  // zero-width space
		{"星巴\u200d克", false, "U+200D"},  // zero-width joiner
		{"\ufeff星巴克", false, "U+FEFF"},
		{"星巴克\ufe00", false, "U+FE00"}, // variation selector
		{"星巴克\u3164", false, "U+3164"}, // Hangul filler
		{"Tea\u00a0House", false, "U+00A0"},
		{"Tea\tHouse", false, "U+0009"},
		{"Tea\nHouse", false, "U+000A"},
		{"Tea\x1b[31mHouse", false, "U+001B"},
		{"Tea\u0085House", false, "U+0085"},
		{"Tea\u2028House", false, "U+2028"},
		{"Tea\ue000House", false, "U+E000"}, // private use
		{"Tea \xff House", false, "not valid UTF-8"},
		{"星巴克４１１１１１１１１１１１１１１１", false, "full-width digits"},
		{"星巴克４１１１　１１１１　１１１１　１１１１", false, "full-width digits"},
		{"７-Ｅｌｅｖｅｎ　便利店　１２３号", true, ""}, // full-width digits, no card number
	}
	for _, c := range cases {
		m := base
		m.Name = c.name
		err := m.Validate()
		if c.ok {
			if err != nil {
				t.Errorf("name %q: %v, want accepted", c.name, err)
			}
			continue
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("name %q: error %v, want ErrInvalid", c.name, err)
			continue
		}
		if !strings.Contains(err.Error(), c.why) || !strings.Contains(err.Error(), "counted in characters") && c.why != "full-width digits" {
			t.Errorf("name %q: error %q, want it to say %q and how the length is counted", c.name, err, c.why)
		}
		if strings.ContainsAny(err.Error(), "\u202e\u2066\u200b\x1b４") {
			t.Errorf("name %q: error %q carries the character in clear", c.name, err)
		}
	}
}

// TestMerchantNameChineseStoredAndMasked registers a merchant named in Chinese
// through review and reads it back unchanged, and checks that a card number glued
// to Chinese text in a name is still masked before it is stored.
func TestMerchantNameChineseStoredAndMasked(t *testing.T) {
	f := newFixture(t)
	mid := "000000000000302"
	f.apply(t, Change{Op: OpMerchantRegister, Merchant: &Merchant{ID: mid, Name: "星巴克（南京西路店）", MCC: "5814", Region: "CN-SH",
		Tier: TierMicro, Rating: RatingLow, Limits: DemoLimitsMicro}})
	if m, ok := f.reg.Merchant(mid); !ok || m.Name != "星巴克（南京西路店）" {
		t.Fatalf("merchant %s: %+v, want the Chinese name as registered", mid, m)
	}
	f.apply(t, Change{Op: OpMerchantChange, Target: mid, MerchantPatch: &MerchantPatch{Name: strp("星巴克4111111111111111店")}})
	m, _ := f.reg.Merchant(mid)
	if strings.Contains(m.Name, "4111111111111111") || m.Name != "星巴克411111******1111店" {
		t.Fatalf("renamed merchant %s: name %q, want the card number masked (星巴克411111******1111店)", mid, m.Name)
	}
}

// TestMerchantNameChineseCSVImport imports merchants named in Chinese from a UTF-8
// CSV file with a byte order mark (as spreadsheets write it): the names are stored
// as written, and a row with a bidi override is reported, the others taken.
func TestMerchantNameChineseCSVImport(t *testing.T) {
	f := newFixture(t)
	csv := "\ufeffmerchant_id,name,mcc,region,tier\n" +
		"000000000000311,上海鲜果超市,5411,CN-SH,micro\n" +
		"000000000000312,\"星巴克（南京西路店）\",5814,CN-SH,micro\n" +
		"000000000000313,上海\u202e鲜果,5411,CN-SH,micro\n"
	rep, err := f.reg.ImportMerchants(alice, strings.NewReader(csv), "", false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Accepted != 2 || rep.Rejected != 1 {
		t.Fatalf("report %+v, want 2 accepted, 1 rejected (line 4)", rep)
	}
	for _, row := range rep.Rows {
		if row.Line == 4 && (row.OK || !strings.Contains(row.Error, "U+202E")) {
			t.Errorf("line 4: ok=%v error %q, want refused naming U+202E", row.OK, row.Error)
		}
	}
	if _, err := f.reg.Approve(bob, rep.Change.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	for id, name := range map[string]string{"000000000000311": "上海鲜果超市", "000000000000312": "星巴克（南京西路店）"} {
		if m, ok := f.reg.Merchant(id); !ok || m.Name != name {
			t.Errorf("merchant %s: %+v, want named %q", id, m, name)
		}
	}
}
