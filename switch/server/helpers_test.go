package server

import (
	"github.com/moov-io/iso8583"

	"github.com/switchyard/switchyard/switch/message"
)

func newMsg() *iso8583.Message { return iso8583.NewMessage(message.SpecASCII) }

// testCard returns the i-th Luhn-valid demo card of BIN 476173 (never a special demo
// card), so that tests do not trip the per-card velocity rules.
func testCard(i int) string {
	base := []byte("476173800000000")
	for p, n := len(base)-1, i; n > 0 && p >= 6; p, n = p-1, n/10 {
		base[p] = byte('0' + n%10)
	}
	for d := byte('0'); d <= '9'; d++ {
		pan := string(base) + string(d)
		if luhn(pan) {
			return pan
		}
	}
	panic("unreachable")
}

func luhn(s string) bool {
	sum, dbl := 0, false
	for i := len(s) - 1; i >= 0; i-- {
		d := int(s[i] - '0')
		if dbl {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
		dbl = !dbl
	}
	return sum%10 == 0
}
