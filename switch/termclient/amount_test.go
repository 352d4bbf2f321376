package termclient

import (
	"strings"
	"testing"
)

// TestParseAmountExactInItsCurrency: an amount with a point is read exactly in the
// transaction's currency's decimals, and one with more decimals than the currency
// has, a sign, or more minor units than DE 4's 12 digits is refused with an error
// naming it. Before, a point made the amount a float times 100 whatever the
// currency ("1000.5" yen was 100050, "10.005" yuan 1001), with no upper bound and
// "0.29" rounding through binary floating point.
func TestParseAmountExactInItsCurrency(t *testing.T) {
	for _, c := range []struct {
		in, cur string
		want    int64
	}{
		{"1000", "156", 1000},
		{"10.00", "156", 1000},
		{"0.29", "156", 29},
		{"1.1", "156", 110},
		{".5", "156", 50},
		{"1000", "392", 1000},
		{"1000.", "392", 1000},
		{"1.500", "414", 1500},
		{"999999999999", "156", 999999999999},
		{"9999999999.99", "156", 999999999999},
		{"000001000000000", "156", 1000000000},
		{"0", "156", 0},
	} {
		got, err := ParseAmount(c.in, c.cur)
		if err != nil || got != c.want {
			t.Errorf("ParseAmount(%q, %q) = %d, %v; want %d", c.in, c.cur, got, err, c.want)
		}
	}
	for _, c := range []struct{ in, cur, says string }{
		{"10.005", "156", "3 decimals, currency 156 has 2"},
		{"1000.5", "392", "1 decimals, currency 392 has 0"},
		{"1.5000", "414", "4 decimals, currency 414 has 3"},
		{"-1", "156", "negative"},
		{"-1.00", "156", "negative"},
		{"+1.00", "156", "not a decimal number"},
		{"+100", "156", "not a number of minor units"},
		{"1e3", "156", "not a number of minor units"},
		{"1e3.0", "156", "not a decimal number"},
		{"NaN.", "156", "not a decimal number"},
		{"", "156", "not a number of minor units"},
		{".", "156", "not a decimal number"},
		{"1000000000000", "156", "12 digits"},
		{"10000000000.00", "156", "12 digits"},
		{"99999999999999999999.99", "156", "too large"},
		{"1000000000000.", "392", "12 digits"},
		{"1.00", "15", "not an ISO 4217 numeric code"},
		{"1.00", "CNY", "not an ISO 4217 numeric code"},
	} {
		got, err := ParseAmount(c.in, c.cur)
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("ParseAmount(%q, %q) = %d, %v; want an error saying %q", c.in, c.cur, got, err, c.says)
			continue
		}
		if c.cur == "156" && !strings.Contains(err.Error(), `"`+c.in+`"`) {
			t.Errorf("ParseAmount(%q, %q): error %q does not name the input", c.in, c.cur, err)
		}
	}
}
