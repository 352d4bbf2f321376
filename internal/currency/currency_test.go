package currency

import "testing"

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
