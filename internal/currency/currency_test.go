package currency

import (
	"strings"
	"testing"
)

// TestFormat: amounts are written with their currency's decimals, negative ones
// with their sign, small ones with their leading zeros.
func TestFormat(t *testing.T) {
	for _, c := range []struct {
		minor int64
		cur   string
		want  string
	}{
		{1234, "156", "12.34"},
		{5, "156", "0.05"},
		{-5, "156", "-0.05"},
		{-1250, "344", "-12.50"},
		{1000, "392", "1000"},
		{-1000, "392", "-1000"},
		{1500, "414", "1.500"},
		{7, "048", "0.007"},
		{12345, "990", "1.2345"},
		{0, "156", "0.00"},
		{0, "392", "0"},
		{100, "", "1.00"},
		{-9223372036854775808, "156", "-92233720368547758.08"},
	} {
		if got := Format(c.minor, c.cur); got != c.want {
			t.Errorf("Format(%d, %q) = %q, want %q", c.minor, c.cur, got, c.want)
		}
	}
}

// TestParse: Parse reads Format's output back exactly and refuses what is not an
// amount of the currency.
func TestParse(t *testing.T) {
	for _, c := range []struct {
		s, cur string
		want   int64
	}{
		{"12.34", "156", 1234}, {"0.29", "156", 29}, {"12.3", "156", 1230}, {"12", "156", 1200},
		{"1000", "392", 1000}, {"1.500", "414", 1500}, {"1.5", "414", 1500}, {"0.00", "156", 0}, {".5", "156", 50},
	} {
		got, err := Parse(c.s, c.cur)
		if err != nil || got != c.want {
			t.Errorf("Parse(%q, %q) = %d, %v; want %d", c.s, c.cur, got, err, c.want)
		}
	}
	for _, c := range [][2]string{{"10.50", "392"}, {"1.2345", "414"}, {"-1.00", "156"}, {"1e3", "156"}, {"", "156"}, {".", "156"},
		{"1.2.3", "156"}, {" 1", "156"}, {"99999999999999999999", "156"}} {
		if got, err := Parse(c[0], c[1]); err == nil {
			t.Errorf("Parse(%q, %q) = %d, want an error", c[0], c[1], got)
		}
	}
	for _, cur := range []string{"156", "392", "414", "990"} {
		for _, n := range []int64{0, 1, 99, 100, 123456789012} {
			if got, err := Parse(Format(n, cur), cur); err != nil || got != n {
				t.Errorf("Parse(Format(%d, %s)) = %d, %v", n, cur, got, err)
			}
		}
	}
}

// TestFormatSums: sums by currency are written each in its decimals, never added.
func TestFormatSums(t *testing.T) {
	for _, c := range []struct {
		sums map[string]int64
		want string
	}{
		{map[string]int64{"392": 1000, "156": 3500}, "35.00 156, 1000 392"},
		{nil, "0.00"},
		{map[string]int64{"": 1234}, "12.34"},
		{map[string]int64{"": 5, "414": 1500}, "0.05, 1.500 414"},
	} {
		if got := FormatSums(c.sums); got != c.want {
			t.Errorf("FormatSums(%v) = %q, want %q", c.sums, got, c.want)
		}
	}
}

// TestPayable: the codes of currencies payments are made in pass; funds codes,
// "no currency", withdrawn codes, alphabetic codes and malformed text do not,
// and the error says what is wanted (the numeric code of an alphabetic one).
func TestPayable(t *testing.T) {
	for _, c := range []string{"156", "840", "392", "344", "978", "414", "008", "986"} {
		if !Payable(c) || CheckPayable(c) != nil {
			t.Errorf("Payable(%q) = false or CheckPayable(%q) = %v, want a payable currency", c, c, CheckPayable(c))
		}
	}
	for _, c := range []struct{ code, want string }{
		{"999", "want 3 digits such as 156 (CNY)"},
		{"990", "not the ISO 4217 numeric code"},
		{"191", "not the ISO 4217 numeric code"},
		{"15", "not the ISO 4217 numeric code"},
		{"", "not the ISO 4217 numeric code"},
		{" 156", "not the ISO 4217 numeric code"},
		{"CNY", "want its ISO 4217 numeric code, 156 (CNY is the alphabetic one)"},
		{"usd", "840 (USD is the alphabetic one)"},
	} {
		err := CheckPayable(c.code)
		if Payable(c.code) || err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("CheckPayable(%q) = %v, want an error with %q", c.code, err, c.want)
		}
	}
	if Alpha("392") != "JPY" || Alpha("999") != "" {
		t.Errorf("Alpha(392) = %q, Alpha(999) = %q: want JPY and none", Alpha("392"), Alpha("999"))
	}
}
