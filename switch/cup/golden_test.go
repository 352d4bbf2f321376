package cup

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

// readCapture reads a hex dump (whitespace ignored) of a framed message: the 2-byte
// length and the body.
func readCapture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := hex.DecodeString(strings.Join(strings.Fields(string(b)), ""))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if n := int(binary.BigEndian.Uint16(raw)); n != len(raw)-2 {
		t.Fatalf("%s: length header %d, body %d bytes", name, n, len(raw)-2)
	}
	return raw[2:]
}

// TestGoldenCaptures decodes published captures of real UnionPay POS traffic and
// re-encodes them byte for byte. Sources (see docs/cup-dialect.md):
//   - codetd-5053461-sale-0200.hex: a contactless IC sale request with F35, F48,
//     F52, F53, F55, F59 (base-station and location TLV) and F64, from "POS调试8583
//     报文-消费", https://www.codetd.com/article/5053461 (a copy of
//     https://blog.csdn.net/MaxWoods/article/details/86490475).
func TestGoldenCaptures(t *testing.T) {
	for _, c := range []struct {
		file   string
		mti    string
		fields map[int]string
	}{
		{"codetd-5053461-sale-0200.hex", "0200", map[int]string{
			2: "6224242900000113", 3: "000000", 4: "000000000001", 11: "000403", 14: "2806",
			22: "071", 23: "000", 25: "00", 26: "12", 35: "6224242900000113D28062013949031013",
			41: "10000019", 42: "850100082410002", 49: "156", 53: "2600000000000000",
			60: "22000024000600",
		}},
	} {
		t.Run(c.file, func(t *testing.T) {
			body := readCapture(t, c.file)
			f, err := Decode(body)
			if err != nil {
				t.Fatal(err)
			}
			if f.MTI() != c.mti {
				t.Errorf("MTI %s, want %s", f.MTI(), c.mti)
			}
			for id, want := range c.fields {
				if got := f.Str(id); got != want {
					t.Errorf("F%d = %q, want %q", id, got, want)
				}
			}
			if f.TPDU.Answer().Answer() != f.TPDU {
				t.Error("TPDU swap is not its own inverse")
			}
			mac := f.Bytes(64)
			again, err := f.Encode(func([]byte) ([]byte, error) { return mac, nil })
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, body) {
				t.Fatalf("re-encoded differs:\n got %X\nwant %X", again, body)
			}
		})
	}
}
