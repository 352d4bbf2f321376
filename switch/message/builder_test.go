package message

import (
	"bytes"
	"testing"

	"github.com/moov-io/iso8583"
)

// TestBuilderMatchesMoov: what the Builder writes, moov-io unpacks to the same values,
// and moov-io's own Pack of the same fields gives the same bytes.
func TestBuilderMatchesMoov(t *testing.T) {
	for _, d := range []Dialect{DialectASCII, DialectASCIIBinaryBitmap} {
		for _, withMAC := range []bool{false, true} {
			for _, with70 := range []bool{false, true} {
				b := NewBuilder(d, "0210").Set(3, "000000").Set(4, "000000001000").Set(7, "1121110613").Set(11, "000001").
					Set(37, "000000000042").Set(38, "123456").Set(39, "00").Set(41, "T0000001").Set(42, "000000000000001").
					Set(48, "RS005x-y-z").Set(49, "156")
				m := iso8583.NewMessage(d.Spec())
				m.MTI("0210")
				for id, v := range map[int]string{3: "000000", 4: "000000001000", 7: "1121110613", 11: "000001", 37: "000000000042",
					38: "123456", 39: "00", 41: "T0000001", 42: "000000000000001", 48: "RS005x-y-z", 49: "156"} {
					_ = m.Field(id, v)
				}
				if with70 {
					b.Set(70, "301")
					_ = m.Field(70, "301")
				}
				var mac MACFunc
				if withMAC {
					mac = func(data []byte) ([8]byte, error) { return [8]byte{1, 2, 3, 4, 5, 6, 7, byte(len(data))}, nil }
				}
				got, err := b.Bytes(mac)
				if err != nil {
					t.Fatal(err)
				}
				want, err := Pack(m, mac)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("%s mac=%v 70=%v:\n got %q\nwant %q", d, withMAC, with70, got, want)
				}
			}
		}
	}
}

func TestBuilderRefusesBadFields(t *testing.T) {
	for name, b := range map[string]*Builder{
		"short fixed":   NewBuilder(DialectASCII, "0210").Set(11, "12"),
		"hex via Set":   NewBuilder(DialectASCII, "0210").Set(52, "00"),
		"bad hex bytes": NewBuilder(DialectASCII, "0210").SetBytes(52, []byte{1}),
		"twice":         NewBuilder(DialectASCII, "0210").Set(39, "00").Set(39, "05"),
		"bad MTI":       NewBuilder(DialectASCII, "021"),
	} {
		if _, err := b.Bytes(nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func BenchmarkBuilderResponse(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_, _ = NewBuilder(DialectASCII, "0210").Set(3, "000000").Set(4, "000000001000").Set(7, "1121110613").Set(11, "000001").
			Set(37, "000000000042").Set(38, "123456").Set(39, "00").Set(41, "T0000001").Set(42, "000000000000001").Bytes(nil)
	}
}
