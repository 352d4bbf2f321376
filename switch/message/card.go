package message

import "github.com/switchyard/switchyard/internal/carddata"

// Luhn reports whether the digits of s pass the Luhn (mod 10) check.
func Luhn(s string) bool { return carddata.Luhn(s) }

// DemoCard returns the i-th Luhn-valid 16-digit card of the demo BIN 476173 in a range
// (4761738...) that holds none of the demo fleet's special cards, for tests and load
// generators that need many distinct good cards.
func DemoCard(i int) string {
	b := []byte("476173800000000")
	for p, n := len(b)-1, i; n > 0 && p >= 7; p, n = p-1, n/10 {
		b[p] = byte('0' + n%10)
	}
	for d := byte('0'); d <= '9'; d++ {
		if pan := string(b) + string(d); Luhn(pan) {
			return pan
		}
	}
	return ""
}
