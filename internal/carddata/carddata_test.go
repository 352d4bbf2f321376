package carddata

import (
	"strings"
	"testing"
)

func TestMaskText(t *testing.T) {
	for _, c := range []struct {
		name, in, want string
		n              int
	}{
		{"visa bare", "card 4761739001010119 stolen", "card 476173******0119 stolen", 1},
		{"mastercard bare", "5413330089010004", "541333******0004", 1},
		{"whole note", "PAN: 4761739001010119.", "PAN: 476173******0119.", 1},
		{"spaces", "customer read 4761 7390 0101 0119 on the phone", "customer read 476173******0119 on the phone", 1},
		{"dashes", "4761-7390-0101-0119", "476173******0119", 1},
		{"amex 4-6-5", "amex 3782 822463 10005 ok", "amex 378282*****0005 ok", 1},
		{"6-10", "476173-9001010119", "476173******0119", 1},
		{"13 digits", "old visa 4222222222222", "old visa 422222***2222", 1},
		{"19 digits", "4761739001010119005 x", "476173*********9005 x", 1},
		{"19 digits 4-4-4-4-3", "5413 3300 8901 0004 004", "541333*********4004", 1},
		{"two cards", "4761739001010119 and 5413330089010004", "476173******0119 and 541333******0004", 2},
		{"track 2 =", "swiped 4761739001010119=29121010000012345 at POS", "swiped 476173******0119 at POS", 1},
		{"track 2 D", "4761739001010119D29121010000012345", "476173******0119", 1},
		{"track 2 sentinels", ";4761739001010119=2912101?", ";476173******0119?", 1},
		{"track 2 cut", "x 5413330089010004=2512 y", "x 541333******0004 y", 1},
		{"track 1", "%B4761739001010119^DOE/JOHN^2912101000?", "476173******0119?", 1},
		{"after a date", "2026-05-01 4761 7390 0101 0119", "2026-05-01 476173******0119", 1},
		{"after a short group", "ref 12-4761 7390 0101 0119", "ref 12-476173******0119", 1},
		{"after an RRN", "RRN 612345678901 4761 7390 0101 0119", "RRN 612345678901 476173******0119", 1},
		{"pan then stan", "4761 7390 0101 0119 123456", "476173******0119 123456", 1},
		{"unicode around", "carte «4761739001010119»", "carte «476173******0119»", 1},
		{"json-ish", `{"pan":"5413330089010004"}`, `{"pan":"541333******0004"}`, 1},
		{"number before a PAN passing with its first groups", "amount 1505 4761 7390 0101 0119", "amount 150547**********0119", 1},
		{"number before a PAN failing with it", "amount 1500 4761 7390 0101 0119", "amount 1500 476173******0119", 1},
		{"newline separated", "card:\n4761739001010119\n", "card:\n476173******0119\n", 1},

		// Near misses: left as they are.
		{"luhn fails", "4761739001010118", "4761739001010118", 0},
		{"luhn fails spaced", "4761 7390 0101 0118", "4761 7390 0101 0118", 0},
		{"12-digit RRN", "RRN 612345678901", "RRN 612345678901", 0},
		{"12 digits luhn", "476173900107", "476173900107", 0},
		{"20 digits", "47617390010101190000", "47617390010101190000", 0},
		{"STAN and amount", "STAN 000123 amount 1500.00 EUR", "STAN 000123 amount 1500.00 EUR", 0},
		{"amount with separators", "refund 1 000 000.00", "refund 1 000 000.00", 0},
		{"date time", "2026-05-01 12:30:00", "2026-05-01 12:30:00", 0},
		{"phone failing luhn", "call +49 170 1234 5679", "call +49 170 1234 5679", 0},
		{"short groups", "47 61 73 90 01 01 01 19", "47 61 73 90 01 01 01 19", 0},
		// Since 7 December 2026: up to three separators of any of space, tab, '-',
		// '.', '/' and '_', mixed (before, one kind, one character).
		{"double space", "4761  7390  0101  0119", "476173******0119", 1},
		{"mixed separators", "4761-7390 0101-0119", "476173******0119", 1},
		{"dots", "card 4761.7390.0101.0119.", "card 476173******0119.", 1},
		{"spaced dashes", "4761 - 7390 - 0101 - 0119", "476173******0119", 1},
		{"tabs, slashes, underscores", "4761\t7390/0101_0119", "476173******0119", 1},
		{"four separators", "4761    7390    0101    0119", "4761    7390    0101    0119", 0},
		{"track 1 without its sentinel", "B4761739001010119^DOE/J^2912101", "476173******0119", 1},
		{"a word ending in B", "JOB4761739001010119", "JOB4761739001010119", 0},
		{"an IP address and a date", "10.1.200.3 2026.12.07", "10.1.200.3 2026.12.07", 0},
		{"hex hash", "hash 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "hash 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", 0},
		{"digits glued to letters", "id4761739001010119", "id4761739001010119", 0},
		{"digits then letters", "4761739001010119abc", "4761739001010119abc", 0},
		{"D then word", "4761739001010119Dollars", "4761739001010119Dollars", 0},
		{"empty", "", "", 0},
		{"no digits", "customer called about a refund", "customer called about a refund", 0},
	} {
		got, n := MaskText(c.in)
		if got != c.want || n != c.n {
			t.Errorf("%s: MaskText(%q) = %q, %d; want %q, %d", c.name, c.in, got, n, c.want, c.n)
		}
	}
}

// TestMaskTextHexHashes: a hex card hash with a Luhn-valid digit run inside is
// left alone, wherever the run is.
func TestMaskTextHexHashes(t *testing.T) {
	for _, h := range []string{
		"ab4761739001010119cd",
		"4761739001010119cdef0123",
		"abcdef0123454761739001010119",
	} {
		if got, n := MaskText(h); got != h || n != 0 {
			t.Errorf("MaskText(%q) = %q, %d", h, got, n)
		}
	}
}

func TestMaskTextLeavesNoPAN(t *testing.T) {
	pans := []string{"4761739001010119", "5413330089010004", "378282246310005", "6011000000000000001"}
	for _, p := range pans {
		for _, form := range []string{p, spaced(p, " "), spaced(p, "-"), p + "=2912101", "note: " + p + ", thanks"} {
			got, n := MaskText(form)
			if n != 1 || strings.Contains(strings.NewReplacer(" ", "", "-", "").Replace(got), p) {
				t.Errorf("MaskText(%q) = %q, %d", form, got, n)
			}
		}
	}
}

func spaced(p, sep string) string {
	var parts []string
	for len(p) > 4 {
		parts, p = append(parts, p[:4]), p[4:]
	}
	return strings.Join(append(parts, p), sep)
}

func TestLuhnAndMaskPAN(t *testing.T) {
	if !Luhn("4761739001010119") || Luhn("4761739001010118") || Luhn("") || Luhn("47a1") {
		t.Error("Luhn")
	}
	if got := MaskPAN("4761739001010119"); got != "476173******0119" {
		t.Errorf("MaskPAN = %q", got)
	}
	if got := MaskPAN("123456"); got != "******" {
		t.Errorf("MaskPAN short = %q", got)
	}
}

func TestLike(t *testing.T) {
	for _, v := range []string{"4761739001010119", "4761-7390-0101-0119", "4761739001010119=2912", "476173-9001010119", "5500-0000-0000-0004-extra"} {
		if !Like(v) {
			t.Errorf("Like(%q) = false", v)
		}
	}
	for _, v := range []string{"9f86d081884c7d659a2feaa0c55ad015", "T0000001", "476173", "M-100"} {
		if Like(v) {
			t.Errorf("Like(%q) = true", v)
		}
	}
}

// TestMaskTextOtherDigits: a card number in full-width digits (a Chinese input
// method in full-width mode) or Arabic-Indic digits is masked, its digits given back
// in ASCII; text whose other-script digits hold no card number comes back as it was.
func TestMaskTextOtherSeparators(t *testing.T) {
	for _, in := range []string{
		"4761\u00a07390\u00a00101\u00a00119", // no-break spaces
		"4761\u20137390\u20130101\u20130119", // en dashes
		"4761\u20117390\u20110101\u20110119", // non-breaking hyphens
		"4761\uff0e7390\uff0e0101\uff0e0119", // full-width full stops
		"4761\u202f7390\u202f0101\u202f0119", // narrow no-break spaces
	} {
		if got, n := MaskText(in); n != 1 || got != "476173******0119" {
			t.Errorf("MaskText(%q) = %q, %d; want it masked", in, got, n)
		}
	}
}

func TestMaskTextOtherDigits(t *testing.T) {
	for in, want := range map[string]string{
		"卡号４７６１７３９００１０１０１１９请退款":    "卡号476173******0119请退款",
		"card ４７６１　７３９０　０１０１　０１１９": "card 476173******0119",
		"４７６１－７３９０－０１０１－０１１９":      "476173******0119",
		"٤٧٦١٧٣٩٠٠١٠١٠١١٩":         "476173******0119",
		"訂單 １２３４５６ 金額 ５０００":        "訂單 １２３４５６ 金額 ５０００", // no card number: unchanged
		"４７６１７３９００１０１０１１８":         "４７６１７３９００１０１０１１８",  // fails the Luhn check
	} {
		got, n := MaskText(in)
		if got != want || (n > 0) != (got != in) {
			t.Errorf("MaskText(%q) = %q, %d; want %q", in, got, n, want)
		}
	}
}

// TestMaskIDKeepsOtherText: a value without a card number comes back as it is,
// its other digits not folded to ASCII.
func TestMaskIDKeepsOtherText(t *testing.T) {
	for _, s := range []string{"２０２６年１２月０７日 批次", "批次 ２０２６１２０７１７３９０５"} {
		if got := MaskID(s); got != s {
			t.Errorf("MaskID(%q) = %q, want it unchanged", s, got)
		}
		if got := MaskField(s); got != s {
			t.Errorf("MaskField(%q) = %q, want it unchanged", s, got)
		}
	}
}

func TestInID(t *testing.T) {
	for s, want := range map[string]string{
		"z4761739001010267":        "z476173******0267", // glued to a letter, MaskText's blind spot
		"4761739001010119":         "476173******0119",
		"key-4761739001010119.TPK": "key-476173******0119.TPK",
		"a378282246310005b":        "a378282*****0005b", // American Express, 15 digits
		"x30569309025904":          "x305693****5904",   // Diners, 14
		"４７６１７３９００１０１０１１９": "476173******0119", // full-width
		"4761739001010118":         "", // fails the Luhn check
		"merchant-102310048990014": "", // 15 digits passing Luhn, no scheme's prefix: a merchant ID
		"rotate-20261207173901":    "", // a timestamp
		"T0000001.TMK":             "",
		"8986001234567890120":      "", // an ICCID: 19 digits passing the Luhn check
		"9f2c41d0aa17e3b5c0ffee01": "",
		"":                         "",
	} {
		if got := InID(s); got != (want != "") {
			t.Errorf("InID(%q) = %v, want %v", s, got, want != "")
		}
		if want != "" {
			if got := MaskID(s); got != want {
				t.Errorf("MaskID(%q) = %q, want %q", s, got, want)
			}
		}
	}
}
