package qr

import (
	"strings"
	"testing"
)

// The example of the EMVCo Merchant-Presented Mode specification (v1.1, "BEST
// TRANSPORT", Beijing), as published with its CRC A13A.
const emvcoExample = "00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678520441115802CN5914BEST TRANSPORT6007BEIJING64200002ZH0104最佳运输0202北京540523.7253031565502016233030412340603***0708A60086670902ME91320016A0112233449988770708123456786304A13A"

func TestCRCOfEMVCoExample(t *testing.T) {
	body := emvcoExample[:len(emvcoExample)-4]
	if got := CRC(body); got != "A13A" {
		t.Fatalf("CRC = %s, want A13A", got)
	}
	p, err := Decode(emvcoExample)
	if err != nil {
		t.Fatal(err)
	}
	if p.Get(IDName) != "BEST TRANSPORT" || p.Get(IDCity) != "BEIJING" || p.Get(IDAmount) != "23.72" {
		t.Fatalf("decoded %+v", p)
	}
	if got := p.Sub("64", "01"); got != "最佳运输" {
		t.Fatalf("language template name = %q", got)
	}
	if got := p.Sub("62", "03"); got != "1234" {
		t.Fatalf("62/03 = %q", got)
	}
}

func TestDecodeRefuses(t *testing.T) {
	bad := map[string]string{
		"crc":          emvcoExample[:len(emvcoExample)-4] + "A13B",
		"no crc":       "000201",
		"not first 00": "0102125802CN6304" + CRC("0102125802CN6304"),
		"truncated":    "00020101021",
		"length":       "0002010102X2",
		"after crc":    emvcoExample + "00",
	}
	for name, s := range bad {
		if _, err := Decode(s); err == nil {
			t.Errorf("%s: %q accepted", name, s)
		}
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	for _, amount := range []int64{0, 1, 2372, 100000} {
		o := Order{Accounts: map[string][]Object{
			"29": {{ID: "00", Value: "A000000333010101"}, {ID: "01", Value: "000000000000001"}},
			"30": {{ID: "00", Value: "WECHATPAY"}, {ID: "01", Value: "000000000000001"}},
		}, MCC: "5411", Currency: "156", Amount: amount, Country: "CN", Name: "Demo Grocery", City: "Beijing", Reference: "ORD0000000001"}
		s, err := Encode(o)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(s, "000201") || s[len(s)-8:len(s)-4] != "6304" {
			t.Fatalf("payload %q: not 00 first and 63 last", s)
		}
		p, err := Decode(s)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if p.Sub("62", "05") != o.Reference || p.Get(IDMCC) != "5411" || p.Get(IDCurrency) != "156" || p.Sub("30", "00") != "WECHATPAY" {
			t.Fatalf("round trip lost fields: %+v", p)
		}
		if (p.Get(IDAmount) != "") != (amount > 0) {
			t.Fatalf("amount %d: ID 54 %q", amount, p.Get(IDAmount))
		}
	}
}

// TestEncodeLanguageTemplate: a name in Chinese goes in the language template (ID
// 64, as in the EMVCo example) and round-trips, its lengths counted in characters;
// Encode refuses a name or city outside the common character set in IDs 59 and 60,
// and a template without a two-letter language.
func TestEncodeLanguageTemplate(t *testing.T) {
	o := Order{MCC: "4111", Currency: "156", Country: "CN", Name: "BEST TRANSPORT", City: "BEIJING",
		AltLanguage: "ZH", AltName: "最佳运输", AltCity: "北京"}
	s, err := Encode(o)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s, "64200002ZH0104最佳运输0202北京6304") {
		t.Fatalf("payload %q: want the EMVCo example's ID 64 just before the CRC", s)
	}
	p, err := Decode(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	if p.Sub(IDLanguage, "01") != "最佳运输" || p.Sub(IDLanguage, "02") != "北京" || p.Get(IDName) != "BEST TRANSPORT" {
		t.Fatalf("round trip lost the language template: %+v", p)
	}
	for _, bad := range []Order{
		{MCC: "4111", Currency: "156", Country: "CN", Name: "最佳运输", City: "BEIJING"},
		{MCC: "4111", Currency: "156", Country: "CN", Name: "BEST", City: "北京"},
		{MCC: "4111", Currency: "156", Country: "CN", Name: "BEST", City: "BEIJING", AltName: "最佳运输"},
	} {
		if s, err := Encode(bad); err == nil {
			t.Errorf("Encode(%+v) = %q, want an error", bad, s)
		}
	}
}

// TestWithoutLanguageTemplate: the ASCII form of a code is the code Encode gives
// without the language template, whose CRC is computed again.
func TestWithoutLanguageTemplate(t *testing.T) {
	o := Order{MCC: "4111", Currency: "156", Country: "CN", Name: "BEST TRANSPORT", City: "BEIJING",
		Reference: "000000000042", AltLanguage: "ZH", AltName: "最佳运输", AltCity: "北京"}
	full, err := Encode(o)
	if err != nil {
		t.Fatal(err)
	}
	o.AltLanguage, o.AltName, o.AltCity = "", "", ""
	want, _ := Encode(o)
	got, err := WithoutLanguageTemplate(full)
	if err != nil || got != want {
		t.Fatalf("WithoutLanguageTemplate = %q, %v; want %q", got, err, want)
	}
	if _, err := Decode(got); err != nil {
		t.Fatalf("%q: %v", got, err)
	}
	if same, err := WithoutLanguageTemplate(want); err != nil || same != want {
		t.Fatalf("a code without ID 64 came back %q, %v", same, err)
	}
	if _, err := WithoutLanguageTemplate(full[:len(full)-1] + "0"); err == nil {
		t.Fatal("a code whose CRC is wrong was taken")
	}
}

func TestClassify(t *testing.T) {
	tb, err := NewTable(DefaultRoutes())
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"6225880123456789012":      UnionPay,
		"134567890123456789":       WeChat,
		"281234567890123456":       Alipay, // 18 digits, 28: Alipay (WeChat needs 10-15)
		"2512345678901234":         Alipay,
		"301234567890123456789012": Alipay,
		"622588012345678901":       "", // 18 digits of 62: nobody's
		"1345678901234567":         "", // WeChat prefix, 16 digits
		"13456789012345678A":       "",
	}
	for code, want := range cases {
		r, ok := tb.Classify(code)
		if got := map[bool]string{true: r.Network}[ok]; got != want {
			t.Errorf("%s: %q, want %q", code, got, want)
		}
	}
	if _, err := NewTable([]Route{{Network: "x", Connector: "x", Prefixes: []string{"6a"}, MinLen: 10, MaxLen: 12}}); err == nil {
		t.Error("a prefix with a letter was accepted")
	}
	if got := Mask("6225880123456789012"); got != "622588*********9012" {
		t.Errorf("Mask = %s", got)
	}
}

// FuzzDecode: no input may panic the payload parser, and every payload it accepts
// ends with a CRC that matches and starts with ID 00.
func FuzzDecode(f *testing.F) {
	f.Add(emvcoExample)
	f.Add("000201010212520454115303156580" + "2CN6304")
	s, _ := Encode(Order{MCC: "5411", Currency: "156", Amount: 100, Country: "CN", Name: "N", City: "C", Reference: "R1"})
	f.Add(s)
	f.Fuzz(func(t *testing.T, in string) {
		p, err := Decode(in)
		if err != nil {
			return
		}
		if p.Objects[0].ID != IDFormat || p.Objects[len(p.Objects)-1].ID != IDCRC {
			t.Fatalf("accepted %q without 00 first and 63 last", in)
		}
		if !strings.EqualFold(CRC(in[:len(in)-4]), in[len(in)-4:]) {
			t.Fatalf("accepted %q with a wrong CRC", in)
		}
	})
}

// TestNameLanguage: the language preference a name's script implies: Han alone
// (with Latin letters, digits and full-width punctuation) is Chinese, Han with kana
// Japanese, Hangul Korean, Thai Thai; Latin alone, Cyrillic, Arabic and names
// mixing kana and Hangul imply none (the merchant's name_language must say).
func TestNameLanguage(t *testing.T) {
	for name, want := range map[string]string{
		"星巴克（南京西路店）":             "ZH",
		"上海鲜果超市 Fresh 24":        "ZH",
		"東京ラーメン":                 "JA",
		"すし処 銀座":                 "JA",
		"ラーメン":                   "JA",
		"서울 카페":                  "KO",
		"韓國館 서울":                 "KO",
		"ร้านกาแฟ":               "TH",
		"Καφενείο":               "EL",
		"Café Crème":             "",
		"Tea House":              "",
		"Кафе Москва":            "",
		"مقهى":                   "",
		"Café Crème, 東京 ラーメン 서울": "",
		"Москва 星巴克":             "",
		"":                       "",
	} {
		if got := NameLanguage(name); got != want {
			t.Errorf("NameLanguage(%q) = %q, want %q", name, got, want)
		}
	}
	for code, want := range map[string]bool{"zh": true, "ZH": true, "ja": true, "Ko": true, "ii": true,
		"cn": false, "CN": false, "jp": false, "xx": false, "z": false, "zho": false, "": false, "z1": false} {
		if got := ValidLanguage(code); got != want {
			t.Errorf("ValidLanguage(%q) = %v, want %v", code, got, want)
		}
	}
	// Encode takes only an ISO 639-1 code: "CN", the country, is refused.
	o := Order{MCC: "5814", Currency: "156", Country: "CN", Name: "000000000000001", City: "CN-SH", AltLanguage: "CN", AltName: "星巴克"}
	if s, err := Encode(o); err == nil || !strings.Contains(err.Error(), `language preference "CN"`) {
		t.Errorf("Encode with language CN = %q, %v; want refused", s, err)
	}
	o.AltLanguage = "JA"
	if s, err := Encode(o); err != nil || !strings.Contains(s, "0002JA") {
		t.Errorf("Encode with language JA = %q, %v", s, err)
	}
}

// TestEncodeAmountByCurrency: ID 54 is the amount in major units with the decimals
// of the order's currency (ISO 4217), never two for all: 1000 yen is "1000"
// (written "10.00" before, the payer was asked for a hundredth of it), 1500
// fils "1.500" (written "15.00", ten times the price), 2372 fen "23.72". An
// amount ID 54 cannot hold (more than 13 characters) is refused.
func TestEncodeAmountByCurrency(t *testing.T) {
	for _, c := range []struct {
		cur    string
		amount int64
		want   string
	}{
		{"156", 2372, "23.72"}, {"156", 5, "0.05"}, {"344", 100000, "1000.00"},
		{"392", 1000, "1000"}, {"410", 50000, "50000"}, {"414", 1500, "1.500"}, {"048", 7, "0.007"},
	} {
		s, err := Encode(Order{MCC: "5411", Currency: c.cur, Amount: c.amount, Country: "CN", Name: "N", City: "C", Reference: "R1"})
		if err != nil {
			t.Fatalf("currency %s amount %d: %v", c.cur, c.amount, err)
		}
		p, err := Decode(s)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if got := p.Get(IDAmount); got != c.want {
			t.Errorf("currency %s, %d minor units: ID 54 %q, want %q", c.cur, c.amount, got, c.want)
		}
	}
	if s, err := Encode(Order{MCC: "5411", Currency: "156", Amount: 100000000000000, Country: "CN", Name: "N", City: "C", Reference: "R1"}); err == nil {
		t.Errorf("an amount of 15 digits: encoded %q, want an error", s)
	}
}
