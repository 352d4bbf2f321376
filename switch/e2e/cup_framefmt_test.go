package e2e

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchyard/switchyard/switch/cup"
	"github.com/switchyard/switchyard/switch/message"
)

// TestCUPFrameFormatError: over TCP, a sale whose bitmap announces a secondary
// bitmap (its MAC as F128, as ISO 8583 has it), and one with bytes left after its
// last field (F63's length prefix one short), are answered 30 with their STAN and
// terminal, MAC'd, counted in switchyard_format_errors_total, on a connection that
// stays open: the terminal's next sale on it is approved. Until the sixth release of
// 6 December 2026 each closed the connection without an answer.
func TestCUPFrameFormatError(t *testing.T) {
	f := startCUP(t)
	term := cupTerminal(t, f, "003", cupHome)
	const bm = 5 + 6 + 2 // TPDU, header, MTI: the primary bitmap's offset
	build := func() ([]byte, *cup.Frame) {
		t.Helper()
		req, err := term.Build(cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 1000, PIN: "1234"})
		if err != nil {
			t.Fatal(err)
		}
		req.Set(63, "CUP")
		body, err := req.Encode(term.MACOf)
		if err != nil {
			t.Fatal(err)
		}
		return body, req
	}
	remac := func(body []byte) []byte {
		sum, err := term.MACOf(body[bm-2 : len(body)-8])
		if err != nil {
			t.Fatal(err)
		}
		copy(body[len(body)-8:], sum)
		return body
	}
	secondary := func() []byte {
		body, _ := build()
		out := append([]byte(nil), body[:bm+8]...)
		out[bm] |= 0x80
		out[bm+7] &^= 1 // F64 out, F128 in
		out = append(append(out, 0, 0, 0, 0, 0, 0, 0, 1), body[bm+8:]...)
		return remac(out)
	}
	trailing := func() []byte {
		body, req := build()
		at, err := req.Offset(63)
		if err != nil {
			t.Fatal(err)
		}
		body[at], body[at+1] = 0x00, 0x02 // 2 for "CUP"'s 3
		return remac(body)
	}
	before := testutil.ToFloat64(f.s.Metrics.FormatErrors)
	for name, body := range map[string][]byte{"secondary bitmap": secondary(), "trailing bytes": trailing()} {
		ans, _, err := term.RoundTrip(body)
		if err != nil {
			t.Fatalf("%s: %v (the connection closed without an answer)", name, err)
		}
		if ans.Str(39) != message.RCFormatError || ans.Str(11) == "" || ans.Str(41) != "T0000001" || !ans.Has(64) || ans.Has(38) {
			t.Errorf("%s: %s, want 30 MAC'd with F11 and F41", name, cup.Summary(ans))
		}
		if ok := cupDo(t, term, cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 1100, PIN: "1234"}); ok.Str(39) != "00" {
			t.Fatalf("the next sale on the connection after the %s: %s", name, cup.Summary(ok))
		}
	}
	if n := testutil.ToFloat64(f.s.Metrics.FormatErrors) - before; n != 2 {
		t.Errorf("switchyard_format_errors_total went up by %v, want 2", n)
	}
}
