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

// testPAN returns the i-th distinct good demo card.
func testPAN(i int) string { return message.DemoCard(i) }

func keysNone() keys.LMKSource { return keys.LMKSource{} }
