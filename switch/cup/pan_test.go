package cup

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/message"
)

// TestPaddedPAN: an odd PAN padded with F, in F2 or in track 2, whether or not the
// field's length counts the pad, reaches the pipeline as its digits; a PAN or
// track with a hex digit inside is answered 30 (format-error-F2 / F35), journaled
// with no card and never forwarded, and no log line holds the digits. Until 6
// December 2026 an F2 whose length counted the F, or with a hex digit inside, did
// not decode and the connection was closed without an answer.
func TestPaddedPAN(t *testing.T) {
	fx := newMACFixture(time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC))
	a, p, refs, logs, term, conn := fx.a, fx.p, fx.refs, fx.logs, fx.term, fx.conn
	const pan15, pan19 = "476173900101015", "4761739001010123452"
	// send builds a sale, lets patch change its frame (F2, F35 as nibbles) and its
	// encoded body, MACs the result and has the adapter process it.
	send := func(tx Txn, f2, f35 string, patch func(body []byte)) (*Frame, error) {
		t.Helper()
		f, err := term.Build(tx)
		if err != nil {
			t.Fatal(err)
		}
		f.Set(2, f2).Set(35, f35)
		body, err := f.Encode(term.MACOf)
		if err != nil {
			t.Fatal(err)
		}
		if patch != nil {
			patch(body)
			copy(body[len(body)-8:], term.mustMAC(t, MACInput(body, f)))
		}
		resp, err := a.Process(context.Background(), conn, body)
		if err != nil {
			return nil, err
		}
		return Decode(resp.Body)
	}
	// F2 is the first field: its length byte at prefixLen+2+8, then the digits.
	const f2At = prefixLen + 2 + 8
	padF := func(digits int) func([]byte) {
		return func(b []byte) { b[f2At+1+digits/2] |= 0x0F } // the pad nibble the length does not count
	}
	for _, c := range []struct {
		name, f2, f35 string
		patch         func([]byte)
		pan, track    string
	}{
		{"F2 19 digits, F pad not counted", pan19, "", padF(19), pan19, ""},
		{"F2 15 digits, F pad not counted", pan15, "", padF(15), pan15, ""},
		{"F2 15 digits, F pad counted (16)", pan15 + "F", "", nil, pan15, ""},
		{"F2 19 digits, F pad counted (20)", pan19 + "F", "", nil, pan19, ""},
		{"track 2 of 33, F pad counted (34)", "", pan15 + "D29121010000000000F", nil, pan15, pan15 + "=29121010000000000"},
		{"track 2 of 37, F pad counted (38)", "", pan19 + "D29121010000000000F", nil, pan19, pan19 + "=29121010000000000"},
	} {
		n := len(p.reqs)
		tx := Txn{Kind: "sale", Expiry: "2912", Amount: 100}
		if c.f35 != "" {
			tx = Txn{Kind: "sale", Track2: "4761739001010119=2912", Amount: 100}
		}
		ans, err := send(tx, c.f2, c.f35, c.patch)
		if err != nil {
			t.Errorf("%s: %v (the connection would close)", c.name, err)
			continue
		}
		if ans.Str(39) != "00" || len(p.reqs) != n+1 {
			t.Errorf("%s: %s, want 00 from the pipeline", c.name, Summary(ans))
			continue
		}
		if r := p.last(); r.PAN != c.pan || r.Track2 != c.track {
			t.Errorf("%s: pipeline got PAN %q track of %d, want %q and %d", c.name, message.MaskPAN(r.PAN), len(r.Track2), message.MaskPAN(c.pan), len(c.track))
		}
		if c.f2 != "" && ans.Str(2) != c.pan {
			t.Errorf("%s: answer's F2 %s, want the PAN's digits", c.name, message.MaskPAN(ans.Str(2)))
		}
	}
	for _, c := range []struct{ name, f2, f35, field string }{
		{"F2 with a hex digit inside", "47617390A1010119", "", "F2"},
		{"F2 with an F inside", "4761739F01010119", "", "F2"},
		{"F2 of 20 digits", "47617390010101234520", "", "F2"},
		{"F2 odd, ending F (not a pad)", "476173900101011F9", "", "F2"},
		{"track 2 with a hex digit in the PAN", "", "47617390A1010119D2912101", "F35"},
		{"track 2 without separator", "", "47617390010101192912101", "F35"},
		{"track 2 of 38 without pad", "", pan19 + "D291210100000000000", "F35"},
	} {
		n, nref := len(p.reqs), len(refs.got)
		logs.Reset()
		tx := Txn{Kind: "sale", Expiry: "2912", Amount: 100}
		if c.f35 != "" {
			tx = Txn{Kind: "sale", Track2: "4761739001010119=2912", Amount: 100}
		}
		ans, err := send(tx, c.f2, c.f35, nil)
		if err != nil {
			t.Errorf("%s: %v (the connection would close)", c.name, err)
			continue
		}
		if ans.Str(39) != message.RCFormatError || len(p.reqs) != n || !ans.Has(64) {
			t.Errorf("%s: %s (pipeline saw %d), want 30, MAC'd, nothing forwarded", c.name, Summary(ans), len(p.reqs)-n)
		}
		if len(refs.got) != nref+1 || refs.got[nref].Reason != "format-error-"+c.field || refs.got[nref].PAN != "" {
			t.Errorf("%s: journaled %+v, want one refusal format-error-%s without a card", c.name, refs.got[nref:], c.field)
		}
		if l := logs.String(); !strings.Contains(l, c.field) || strings.Contains(l, "0101") {
			t.Errorf("%s: log does not name %s, or holds card digits: %s", c.name, c.field, l)
		}
	}
}
