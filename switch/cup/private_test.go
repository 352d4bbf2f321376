package cup

import (
	"strings"
	"testing"
	"time"
)

// TestPrivateFieldsNumeric: F60 (n..017) and F61 (n..029) with a hex letter or more
// digits than the spec allows are answered 30 without the pipeline, with a log line
// naming the field; the longest valid ones go through. Until 5 December 2026 the
// codec's 40 nibbles, hex letters included, reached the pipeline.
func TestPrivateFieldsNumeric(t *testing.T) {
	fx := newMACFixture(time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC))
	a, p, logs, term, conn := fx.a, fx.p, fx.logs, fx.term, fx.conn
	const card = "6225880212345678"
	send := func(f *Frame, mac bool) *Frame {
		t.Helper()
		var macf MACFunc
		if mac {
			macf = term.MACOf
		}
		return exchange(t, a, conn, f, macf)
	}
	sale := func(f60, f61 string) *Frame {
		f, err := term.Build(Txn{Kind: "void", PAN: card, Expiry: "2912", Amount: 100, RRN: "000000000042"})
		if err != nil {
			t.Fatal(err)
		}
		return f.Set(60, f60).Set(61, f61)
	}
	for _, c := range []struct {
		name, f60, f61, rc string
		field              string
	}{
		{"valid, longest", "23000007000000000", "00000700001212050000000000000", "00", ""},
		{"F60 hex letter", "2300000700A", "000007000012", "30", "F60"},
		{"F60 18 digits", "230000070000000000", "000007000012", "30", "F60"},
		{"F60 40 digits", strings.Repeat("23", 20), "000007000012", "30", "F60"},
		{"F61 hex letter", "23000007", "0000070000B2", "30", "F61"},
		{"F61 30 digits", "23000007", strings.Repeat("0", 30), "30", "F61"},
	} {
		logs.Reset()
		n := len(p.reqs)
		ans := send(sale(c.f60, c.f61), true)
		if ans.Str(39) != c.rc {
			t.Errorf("%s: %s, want %s", c.name, Summary(ans), c.rc)
		}
		if c.rc == "30" {
			if len(p.reqs) != n {
				t.Errorf("%s: reached the pipeline", c.name)
			}
			if l := logs.String(); !strings.Contains(l, c.field) || strings.Contains(l, card) {
				t.Errorf("%s: log does not name %s, or has the PAN: %s", c.name, c.field, l)
			}
		}
	}
	// A sign-in with a hex letter in F60 is a format error too (before any key).
	f := NewFrame(term.TPDU, term.Header, "0800").Set(11, "000100").Set(41, term.TID).Set(42, term.MID).Set(60, "00000007003A")
	if ans := send(f, false); ans.Str(39) != "30" {
		t.Errorf("sign-in with F60 00000007003A: %s, want 30", Summary(ans))
	}
}
