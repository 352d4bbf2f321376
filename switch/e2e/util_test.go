package e2e

import (
	"crypto/des"
	"strings"

	"github.com/moov-io/iso8583"

	"github.com/switchyard/switchyard/keys"
	"github.com/switchyard/switchyard/switch/message"
)

func newMsg() *iso8583.Message { return iso8583.NewMessage(message.SpecASCII) }

func stringsIndex(s, sub string) int { return strings.Index(s, sub) }

func decryptECB(t interface{ Fatal(...any) }, key, data []byte) []byte {
	if len(key) == 16 {
		key = append(append([]byte{}, key...), key[:8]...)
	}
	c, err := des.NewTripleDESCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, len(data))
	for i := 0; i+8 <= len(data); i += 8 {
		c.Decrypt(out[i:i+8], data[i:i+8])
	}
	return out
}

// testPAN returns the i-th Luhn-valid demo card of BIN 476173 (never a special one).
func testPAN(i int) string {
	base := []byte("476173800000000")
	for p, n := len(base)-1, i; n > 0 && p >= 6; p, n = p-1, n/10 {
		base[p] = byte('0' + n%10)
	}
	for d := byte('0'); d <= '9'; d++ {
		pan := string(base) + string(d)
		if luhnOK(pan) {
			return pan
		}
	}
	panic("unreachable")
}

func luhnOK(s string) bool {
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

func keysNone() keys.LMKSource { return keys.LMKSource{} }
