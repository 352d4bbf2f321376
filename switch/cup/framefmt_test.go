package cup

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/message"
)

// TestFrameFormatErrors: a request whose frame is sound (its outer length held) but
// not as the dialect has it is answered 30, MAC'd, with its F11 and F41 echoed,
// journaled as a refusal naming what is wrong, nothing forwarded, and the next good
// request approved:
//
//   - a secondary bitmap (bit 1) with F64 in the primary one, or with F128 (the MAC
//     as the last field, as ISO 8583 has it): format-error-F1;
//   - a length prefix that is wrong but within the field's maximum (F63's says 1
//     for 3 characters): the fields after it shift and bytes are left after the last
//     one, format-error-trailing-bytes (the MAC is the body's last 8 bytes);
//   - a 3-digit length prefix whose pad digit is not 0 (0x9003: moov read it as 3
//     and the request was approved, 0x9013 for F60): format-error-F63, -F60.
//
// Until the sixth release of 6 December 2026 the first three closed the connection
// without an answer and the last two were read as if the pad digit were 0. A length
// prefix over the field's maximum before F41 (F2's 25) still cannot be answered: the
// error names the field.
func TestFrameFormatErrors(t *testing.T) {
	fx := newMACFixture(time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC))
	a, p, refs, logs, term, conn := fx.a, fx.p, fx.refs, fx.logs, fx.term, fx.conn
	const pan = "4761739001010119"
	// sale returns a sale request, encoded and MAC'd, and its frame.
	sale := func() ([]byte, *Frame) {
		t.Helper()
		f, err := term.Build(Txn{Kind: "sale", PAN: pan, Expiry: "2912", Amount: 123456})
		if err != nil {
			t.Fatal(err)
		}
		f.Set(12, "120000").Set(13, "1206").Set(25, "00").Set(63, "CUP")
		body, err := f.Encode(term.MACOf)
		if err != nil {
			t.Fatal(err)
		}
		return body, f
	}
	remac := func(body []byte) []byte {
		copy(body[len(body)-8:], term.mustMAC(t, body[prefixLen:len(body)-8]))
		return body
	}
	const bm = prefixLen + 2 // the primary bitmap's offset
	withSecondary := func(mac128 bool) []byte {
		body, _ := sale()
		sec := make([]byte, 8)
		out := append([]byte(nil), body[:bm+8]...)
		out[bm] |= 0x80
		if mac128 { // F64 out of the primary bitmap, F128 in the secondary one
			out[bm+7] &^= 1
			sec[7] = 1
		}
		out = append(append(out, sec...), body[bm+8:]...)
		return remac(out)
	}
	patchPrefix := func(id int, prefix ...byte) func() []byte {
		return func() []byte {
			body, f := sale()
			at, err := f.Offset(id)
			if err != nil {
				t.Fatal(err)
			}
			copy(body[at:], prefix)
			return remac(body)
		}
	}
	for _, c := range []struct {
		name, reason string
		body         func() []byte
	}{
		{"secondary bitmap, F64", "format-error-F1", func() []byte { return withSecondary(false) }},
		{"secondary bitmap, F128", "format-error-F1", func() []byte { return withSecondary(true) }},
		{"F63 length 1 for 3 characters", "format-error-trailing-bytes", patchPrefix(63, 0x00, 0x01)},
		{"F63 length 0x9003", "format-error-F63", patchPrefix(63, 0x90, 0x03)},
		{"F60 length 0x9013", "format-error-F60", patchPrefix(60, 0x90, 0x13)},
	} {
		n, nref := len(p.reqs), len(refs.got)
		logs.Reset()
		resp, err := a.Process(context.Background(), conn, c.body())
		if err != nil {
			t.Errorf("%s: %v (the connection would close)", c.name, err)
			continue
		}
		ans, err := Decode(resp.Body)
		if err != nil {
			t.Fatalf("%s: the answer does not decode: %v", c.name, err)
		}
		if ans.Str(39) != message.RCFormatError || len(p.reqs) != n || !ans.Has(64) || ans.Str(11) == "" || ans.Str(41) != term.TID || ans.MTI() != "0210" {
			t.Errorf("%s: %s (pipeline saw %d), want 0210 30 MAC'd with F11 and F41, nothing forwarded", c.name, Summary(ans), len(p.reqs)-n)
		}
		if len(refs.got) != nref+1 || refs.got[nref].Reason != c.reason {
			t.Errorf("%s: journaled %+v, want one refusal %s", c.name, refs.got[nref:], c.reason)
		}
		if l := logs.String(); strings.Contains(l, pan) || !strings.Contains(l, "rc\":\"30") {
			t.Errorf("%s: log holds the PAN or no 30: %s", c.name, l)
		}
		body, _ := sale()
		if resp, err := a.Process(context.Background(), conn, body); err != nil {
			t.Fatalf("a good sale after %s: %v", c.name, err)
		} else if ans, _ := Decode(resp.Body); ans == nil || ans.Str(39) != "00" {
			t.Fatalf("a good sale after %s: %v", c.name, ans)
		}
	}
	// A length over the field's maximum before F41: where F41 is cannot be known.
	if _, err := a.Process(context.Background(), conn, patchPrefix(2, 0x25)()); err == nil || !strings.Contains(err.Error(), "field 2") {
		t.Errorf("F2 length 25: %v, want an error naming field 2", err)
	}
}

// TestWireLenMatchesPack: wireLen, the decode path's measure of a message without
// encoding it, is the length Pack gives, for the captures and a frame of every field
// the terminal side builds.
func TestWireLenMatchesPack(t *testing.T) {
	var bodies [][]byte
	for _, name := range []string{"codetd-5053461-sale-0200.hex", "wearapay-ic-sale-0200.hex", "wearapay-ic-sale-0210.hex", "donjin-https-signin-0800.hex", "j-iso8583-readme-sale-0210.hex"} {
		bodies = append(bodies, readCapture(t, name))
	}
	for _, b := range bodies {
		f, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		packed, err := f.Msg.Pack()
		if err != nil {
			t.Fatal(err)
		}
		if n, err := wireLen(f); err != nil || n != len(packed) {
			t.Errorf("%s: wireLen %d (%v), Pack %d", Summary(f), n, err, len(packed))
		}
	}
}
