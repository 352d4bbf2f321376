package e2e

import (
	"testing"

	"github.com/switchyard/switchyard/switch/cup"
	"github.com/switchyard/switchyard/switch/message"
)

// TestCUPBadNumericField, over TCP: a sale whose amount (F4) holds a nibble A, whose
// entry mode (F22) holds a nibble B, or whose F60 length prefix is not digits is
// answered 30 (format-error-F4 / F22 / F60), MAC'd, journaled by cup without the
// field, nothing sent to the issuer, on a connection that stays open: the next sale
// on it is approved. A currency (F49, ASCII) of "15F" is answered 30 by the
// pipeline, as before. Until 6 December 2026 the first three closed the connection
// without an answer.
func TestCUPBadNumericField(t *testing.T) {
	f := startCUP(t)
	term := cupTerminal(t, f, "003", cupHome)
	// send builds tx, has patch change the bytes of field id (its length prefix
	// first), MACs the result as the terminal would and returns the answer.
	send := func(tx cup.Txn, id int, patch func(b []byte)) *cup.Frame {
		t.Helper()
		req, err := term.Build(tx)
		if err != nil {
			t.Fatal(err)
		}
		body, err := req.Encode(term.MACOf)
		if err != nil {
			t.Fatal(err)
		}
		at, err := req.Offset(id)
		if err != nil {
			t.Fatal(err)
		}
		patch(body[at:])
		sum, err := term.MACOf(cup.MACInput(body, req))
		if err != nil {
			t.Fatal(err)
		}
		copy(body[len(body)-8:], sum)
		ans, _, err := term.RoundTrip(body)
		if err != nil {
			t.Fatalf("F%d not decimal: %v (the connection closed without an answer)", id, err)
		}
		return ans
	}
	amount := int64(1000)
	for _, c := range []struct {
		id     int
		patch  func(b []byte)
		reason string
	}{
		{4, func(b []byte) { b[5] = 0xA0 }, "format-error-F4"},               // 0000000010A0
		{22, func(b []byte) { b[1] = b[1]&0x0F | 0xB0 }, "format-error-F22"}, // 02B
		{60, func(b []byte) { b[0] = 0x0A }, "format-error-F60"},             // length 0A..
		{49, func(b []byte) { b[2] = 'F' }, ""},                              // "15F": the pipeline's
	} {
		amount += 100
		sent := len(f.sim().Ledger())
		ans := send(cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: amount}, c.id, c.patch)
		if ans.Str(39) != message.RCFormatError || !ans.Has(64) {
			t.Fatalf("F%d not decimal: %s, want 30 MAC'd", c.id, cup.Summary(ans))
		}
		if c.id != 49 {
			rec := f.record(ans.Str(37))
			if rec.Reason != c.reason || rec.DecidedBy != "cup" || rec.RC != message.RCFormatError {
				t.Errorf("F%d not decimal journaled %s %s by %s, want 30 %s by cup", c.id, rec.RC, rec.Reason, rec.DecidedBy, c.reason)
			}
			if ans.Has(c.id) {
				t.Errorf("F%d not decimal echoed in the answer: %s", c.id, cup.Summary(ans))
			}
		}
		if n := len(f.sim().Ledger()); n != sent {
			t.Errorf("F%d not decimal: the issuer saw %d requests", c.id, n-sent)
		}
		amount += 100
		if ans := cupDo(t, term, cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: amount}); ans.Str(39) != "00" {
			t.Fatalf("a sale on the same connection after the 30 for F%d: %s", c.id, cup.Summary(ans))
		}
	}
}
