// Package currency knows how many decimals (the ISO 4217 minor unit, or
// exponent) each currency's amounts have, so that an amount the switch holds in
// minor units (DE 4) is written in major units correctly: 1000 yen is "1000",
// not "10.00"; 1500 fils (KWD) is "1.500", not "15.00". Every place the switch
// writes an amount with a decimal point for another system or a person (a QR
// code's amount, the console) goes through Format; Parse reads such an amount
// back exactly, without floating point.
package currency

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Acquirer is the acquirer's currency (ISO 4217 numeric, CNY), in which the
// switch shows the amount limits of a merchant that has no currency of its own
// (registry Merchant.Currency empty: it takes any); a merchant with one has its
// limits shown in it. It is the currency the switch's own defaults are in (a QR
// order without one at a merchant of any currency, a cup terminal's F49,
// switchyard term's --currency). It is for display only: the limits of a
// merchant of any currency are compared with a transaction's DE 4 as they are,
// minor units against minor units, whatever the transaction's currency
// (docs/merchant-risk.md, "Currency of the limits").
const Acquirer = "156"

// exponents are the ISO 4217 minor units that are not 2, by numeric code (DE 49).
var exponents = map[string]int{
	// no minor unit
	"108": 0, // BIF
	"152": 0, // CLP
	"174": 0, // KMF
	"262": 0, // DJF
	"324": 0, // GNF
	"352": 0, // ISK
	"392": 0, // JPY
	"410": 0, // KRW
	"548": 0, // VUV
	"600": 0, // PYG
	"646": 0, // RWF
	"704": 0, // VND
	"800": 0, // UGX
	"940": 0, // UYI
	"950": 0, // XAF
	"952": 0, // XOF
	"953": 0, // XPF
	// three decimals
	"048": 3, // BHD
	"368": 3, // IQD
	"400": 3, // JOD
	"414": 3, // KWD
	"434": 3, // LYD
	"512": 3, // OMR
	"788": 3, // TND
	// four decimals
	"927": 4, // UYW
	"990": 4, // CLF
}

// Exponent is the number of decimals of the currency of ISO 4217 numeric code
// numeric ("156" CNY: 2, "392" JPY: 0, "414" KWD: 3). A code it does not know,
// or none, has 2, as CNY, HKD, USD and most currencies do.
func Exponent(numeric string) int {
	if e, ok := exponents[numeric]; ok {
		return e
	}
	return 2
}

// Format writes minor units of the currency numeric in major units with the
// currency's decimals: Format(1234, "156") is "12.34", Format(1000, "392") is
// "1000", Format(1500, "414") is "1.500", Format(-5, "156") is "-0.05".
func Format(minor int64, numeric string) string {
	e := Exponent(numeric)
	sign := ""
	u := uint64(minor)
	if minor < 0 {
		sign, u = "-", uint64(-minor) // -MinInt64 wraps to itself: as uint64 it is 2^63
	}
	s := strconv.FormatUint(u, 10)
	if e == 0 {
		return sign + s
	}
	if len(s) <= e {
		s = strings.Repeat("0", e-len(s)+1) + s
	}
	return sign + s[:len(s)-e] + "." + s[len(s)-e:]
}

// FormatSums writes sums of minor units by currency (ISO 4217 numeric code) for
// people, in code order, each with its decimals and its code: "35.00 156, 1000
// 392". Amounts of different currencies are never added together. No sums, or
// sums of an unknown currency ("") alone, are written as Format writes them.
func FormatSums(sums map[string]int64) string {
	if len(sums) == 0 {
		return Format(0, "")
	}
	if v, ok := sums[""]; ok && len(sums) == 1 {
		return Format(v, "")
	}
	parts := make([]string, 0, len(sums))
	for _, cur := range slices.Sorted(maps.Keys(sums)) {
		parts = append(parts, strings.TrimSpace(Format(sums[cur], cur)+" "+cur))
	}
	return strings.Join(parts, ", ")
}

// Parse reads an amount in major units of the currency numeric ("12.34",
// "1000", "1.5") as minor units, exactly. It refuses a sign, more decimals than
// the currency has (a yen amount "10.50"), anything but digits and one point,
// and an amount of more than 18 digits.
func Parse(s, numeric string) (int64, error) {
	e := Exponent(numeric)
	whole, frac, _ := strings.Cut(s, ".")
	if whole+frac == "" || !digits(whole) || !digits(frac) {
		return 0, fmt.Errorf("amount %q: not a decimal number", s)
	}
	if len(frac) > e {
		return 0, fmt.Errorf("amount %q: %d decimals, currency %s has %d", s, len(frac), numeric, e)
	}
	all := strings.TrimLeft(whole+frac+strings.Repeat("0", e-len(frac)), "0")
	if all == "" {
		return 0, nil
	}
	if len(all) > 18 {
		return 0, fmt.Errorf("amount %q: too large", s)
	}
	return strconv.ParseInt(all, 10, 64)
}

// digits reports whether s is made of ASCII digits only ("" is).
func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
