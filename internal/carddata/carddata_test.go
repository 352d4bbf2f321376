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
		{"a word ending in B", "JOB4761739001010119", "JOB476173******0119", 1},
		{"an IP address and a date", "10.1.200.3 2026.12.07", "10.1.200.3 2026.12.07", 0},
		{"hex hash", "hash 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "hash 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", 0},
		// Since 8 December 2026 a card number glued to a letter is masked too
		// (TestMaskTextGlued); before, it was left in clear.
		{"digits glued to letters", "id4761739001010119", "id476173******0119", 1},
		{"digits then letters", "4761739001010119abc", "476173******0119abc", 1},
		{"D then word", "4761739001010119Dollars", "476173******0119Dollars", 1},
		{"empty", "", "", 0},
		{"no digits", "customer called about a refund", "customer called about a refund", 0},
	} {
		got, n := MaskText(c.in)
		if got != c.want || n != c.n {
			t.Errorf("%s: MaskText(%q) = %q, %d; want %q, %d", c.name, c.in, got, n, c.want, c.n)
		}
	}
}

// TestMaskTextHexHashes: a hex hash of a length the switch prints (32: the card
// hash; 40: SHA-1; 64: SHA-256, HMAC-SHA256), in lower or upper case, is left
// alone, though a digit run inside reads as a card number, wherever the run is and
// whatever stands around the hash. The same run in a token of another length, or
// with a letter that is no hex digit, is masked.
func TestMaskTextHexHashes(t *testing.T) {
	for _, h := range []string{
		"ab4761739001010119cdef0123456789",
		"4761739001010119cdef0123456789ab",
		"abcdef01234567894761739001010119",
		"AB4761739001010119CDEF0123456789",
		"0123456789012345abcdef0123456789",
		"da39a3ee5e6b4b0d3255bfef95601890afd80709",
		"ab4761739001010119cdef0123456789abcdef01",                         // 40
		"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822c4761739001010119", // 64, run last
		"5413330089010004d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d", // 64, run first
	} {
		for _, form := range []string{h, "hash " + h + ".", "sha256=" + h, "sha256:" + h, "(" + h + ")", "key_" + h, "vt-" + h + "-x"} {
			if got, n := MaskText(form); got != form || n != 0 {
				t.Errorf("MaskText(%q) = %q, %d; want it unchanged", form, got, n)
			}
		}
	}
	for in, want := range map[string]string{
		"ab4761739001010119cd":                "ab476173******0119cd",                // 20: no hash's length
		"4761739001010119cdef0123":            "476173******0119cdef0123",            // 24
		"ab4761739001010119cdef012345678":     "ab476173******0119cdef012345678",     // 31
		"ab4761739001010119cdef01234567890":   "ab476173******0119cdef01234567890",   // 33
		"xy4761739001010119cdef0123456789":    "xy476173******0119cdef0123456789",    // 32, but x and y are no hex digits
		"aB4761739001010119cdef0123456789":    "aB476173******0119cdef0123456789",    // 32, cases mixed
		"ab4761739001010119cdef0123456789-zz": "ab4761739001010119cdef0123456789-zz", // a hash, then a word
	} {
		if got, n := MaskText(in); got != want || (n > 0) != (got != in) {
			t.Errorf("MaskText(%q) = %q, %d; want %q", in, got, n, want)
		}
	}
}

// TestMaskTextGlued: a card number glued to a letter, before, after or both, in
// one piece or in groups, is masked when it passes an identifier's test (16 to 19
// digits passing the Luhn check, or 13 to 15 with a scheme's prefix, leading zeros
// put aside); the identifiers the switch writes glued to letters (merchant IDs,
// timestamps, IMEIs, ICCIDs, RRNs, STANs, zero-padded counters, chip data amounts)
// are not.
func TestMaskTextGlued(t *testing.T) {
	for _, c := range []struct {
		in, want string
		n        int
	}{
		{"X4761739001010119", "X476173******0119", 1},
		{"card4761739001010119end", "card476173******0119end", 1},
		{"4761739001010119x", "476173******0119x", 1},
		{"see card_4761739001010119_", "see card_476173******0119_", 1},
		{"pan:X4761739001010119, thanks", "pan:X476173******0119, thanks", 1},
		{"a4761739001010119b5413330089010004c", "a476173******0119b541333******0004c", 2},
		{"a378282246310005b", "a378282*****0005b", 1},                   // American Express, 15 digits
		{"x30569309025904", "x305693****5904", 1},                       // Diners, 14
		{"visa4222222222222", "visa422222***2222", 1},                   // Visa, 13
		{"n6011000000000000001", "n601100*********0001", 1},             // 19
		{"ref04761739001010119", "ref047617*******0119", 1},             // behind a zero
		{"X4761739001010119=29121010000012345", "X476173******0119", 1}, // track 2
		{"X4761739001010119D2912101", "X476173******0119", 1},           // track 2 with D
		// Mixed with separators: glued before the first group or after the last.
		{"ref:X4761-7390-0101-0119", "ref:X476173******0119", 1},
		{"4761 7390 0101 0119end", "476173******0119end", 1},
		{"X4761 7390 0101 0119Y", "X476173******0119Y", 1},
		{"id4761.7390.0101.0119 ok", "id476173******0119 ok", 1},
		{"abc3782 822463 10005xyz", "abc378282*****0005xyz", 1},
		{"卡号X４７６１７３９００１０１０１１９", "卡号X476173******0119", 1}, // full-width digits
	} {
		got, n := MaskText(c.in)
		if got != c.want || n != c.n {
			t.Errorf("MaskText(%q) = %q, %d; want %q", c.in, got, n, c.want)
		}
	}
	for _, in := range []string{
		"X4761739001010118",         // fails the Luhn check
		"MID102310048990014",        // a merchant ID: 15 digits passing Luhn, no scheme's prefix
		"rotate20261207173901",      // a timestamp: 14 digits passing Luhn
		"IMEI352099001761481",       // an IMEI: 15 digits passing Luhn
		"ICCID8986001234567890120x", // an ICCID: 19 digits passing Luhn, 89
		"rrn612345678901stan000123", // an RRN and a STAN
		"x476173900107",             // 12 digits passing Luhn
		"M0000000000000000000",      // zero-padded: 19 zeros pass Luhn
		"victim0000000000000000000", // a test's card hash
		"9F0206000000001000",        // chip data: the amount, 0206000000001000 passes Luhn
		"IM015352099001761481GL020", // DE 48: a length, then an IMEI
		"x47617390010101190000",     // 20 digits
		"X4761-7390-0101-0118",      // grouped, failing Luhn
	} {
		if got, n := MaskText(in); got != in || n != 0 {
			t.Errorf("MaskText(%q) = %q, %d; want it unchanged", in, got, n)
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
		// Found by a trial of the console: stored in clear until 8 December 2026.
		"4761,7390,0101,0119",                // commas
		"4761\uff0c7390\uff0c0101\uff0c0119", // full-width commas
		"4761\u30017390\u30010101\u30010119", // ideographic commas
		"4 7 6 1 7 3 9 0 0 1 0 1 0 1 1 9",    // a digit at a time
		"4-7-6-1-7-3-9-0-0-1-0-1-0-1-1-9",
		"4,7,6,1,7,3,9,0,0,1,0,1,0,1,1,9",
	} {
		if got, n := MaskText(in); n != 1 || got != "476173******0119" {
			t.Errorf("MaskText(%q) = %q, %d; want it masked", in, got, n)
		}
	}
	for in, want := range map[string]string{
		"card 4 7 6 1 7 3 9 0 0 1 0 1 0 1 1 9, refund it":               "card 476173******0119, refund it",
		"cards 4761,7390,0101,0119 and 4 7 6 1 7 3 9 0 0 1 0 1 0 1 4 3": "cards 476173******0119 and 476173******0143",
	} {
		if got, n := MaskText(in); n != 2 && n != 1 || got != want {
			t.Errorf("MaskText(%q) = %q, %d; want %q", in, got, n, want)
		}
	}
	// Left alone: amounts with thousands separators, lists of small numbers, a run
	// of single digits failing the Luhn check or too short, single digits glued.
	for _, in := range []string{
		"1,000,000,000 fen", "batch 1,2222,0,0", "steps 1, 2, 3 and 4",
		// A location (DE 48 GL) whose digits, read across the comma, pass the Luhn
		// check: masking it declined every request from its terminal 30.
		"31.230416,121.473701", "GL 31.230416,121.473701 then 12.50, 30.00",
		"4 7 6 1 7 3 9 0 0 1 0 1 0 1 1 8", "4 7 6 1 7 3 9 0 0 1 0 1", "x4 7 6 1 7 3 9 0 0 1 0 1 0 1 1 9",
		"4 7 6 1 7 3 9 0 0 1 0 1 0 1 1 9 2 0 0 0 0",
	} {
		if got, n := MaskText(in); n != 0 || got != in {
			t.Errorf("MaskText(%q) = %q, %d; want it unchanged", in, got, n)
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
