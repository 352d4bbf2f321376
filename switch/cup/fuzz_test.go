package cup

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
)

// FuzzCUPDecode feeds the decoder arbitrary bodies: it must never panic or hang, and
// whatever it accepts must encode again, to bytes that decode to the same message (a
// fixed point; the captures are re-encoded byte for byte by TestGoldenCaptures, while
// arbitrary input may carry pad nibbles other than 0, which are not kept).
func FuzzCUPDecode(f *testing.F) {
	sale := readCapture(f, "codetd-5053461-sale-0200.hex")
	f.Add(sale)
	f.Add(sale[:40])
	f.Add([]byte{0x60, 0, 3, 0, 0, 0x60, 0x31, 0, 0x31, 0, 0, 0x08, 0x00, 0, 0x20, 0, 0, 0, 0x80, 0, 0, 0x00, 0x00, 0x01, 'T', '0', '0', '0', '0', '0', '0', '1'})
	f.Fuzz(func(t *testing.T, body []byte) {
		fr, err := Decode(body)
		if err != nil {
			return
		}
		var macf MACFunc
		if fr.Has(64) {
			m := fr.Bytes(64)
			macf = func([]byte) ([]byte, error) { return m, nil }
		}
		again, err := fr.Encode(macf)
		if err != nil {
			t.Fatalf("decoded %X but cannot encode it again: %v", body, err)
		}
		fr2, err := Decode(again)
		if err != nil {
			t.Fatalf("%X decoded, was encoded as %X, which does not decode: %v", body, again, err)
		}
		again2, err := fr2.Encode(macf)
		if err != nil || !bytes.Equal(again, again2) {
			t.Fatalf("encoding is not a fixed point:\n %X\n %X (%v)", again, again2, err)
		}
	})
}

// FuzzCUPProcess feeds the adapter's decode-to-request path (Adapter.Process in
// front of a pipeline that approves) arbitrary bodies, MAC'd with the terminal's key
// when their bitmap has F64, so that they get past the MAC check to the field checks
// and the mapping. It must never panic or hang; a body is either answered (an answer
// that decodes, with F39) or refused with an error naming what could not be read
// (a field, the MTI, the TPDU, the length): the connection would close.
func FuzzCUPProcess(f *testing.F) {
	mak := []byte("0123456789ABCDEF")
	term := &Terminal{TID: "T0000001", MID: "000000000000001", mak: mak, batch: "000007",
		TPDU: TPDU{0x60, 0, 3, 0, 0}, Header: Header{0x60, 0x31, 0, 0x31, 0, 0}}
	for _, tx := range []Txn{
		{Kind: "sale", PAN: "4761739001010119", Expiry: "2912", Amount: 100},
		{Kind: "sale", Track2: "4761739001010119=2912", Amount: 100},
		{Kind: "refund", PAN: "4761739001010119", Expiry: "2912", Amount: 100, RRN: "000000000042", Auth: "123456"},
		{Kind: "reversal", PAN: "4761739001010119", Expiry: "2912", Amount: 100, OrigSTAN: "000001"},
		{Kind: "settlement", Totals: message.BatchTotals{PurchaseCount: 1, PurchaseSum: 100}},
		{Kind: "balance", PAN: "4761739001010119", Expiry: "2912"},
	} {
		fr, err := term.Build(tx)
		if err != nil {
			continue
		}
		if body, err := fr.Encode(term.MACOf); err == nil {
			f.Add(body)
		}
	}
	f.Add(readCapture(f, "codetd-5053461-sale-0200.hex"))
	f.Add(readCapture(f, "wearapay-ic-sale-0200.hex"))
	f.Add(readCapture(f, "donjin-https-signin-0800.hex"))
	// The frame's format errors (TestFrameFormatErrors): a secondary bitmap (F64,
	// then F128 as the MAC), bytes after the last field, F63's length prefix with a
	// pad digit other than 0 and one in range but short.
	if fr, err := term.Build(Txn{Kind: "sale", PAN: "4761739001010119", Expiry: "2912", Amount: 100}); err == nil {
		fr.Set(63, "CUP")
		if body, err := fr.Encode(term.MACOf); err == nil {
			const bm = prefixLen + 2
			for _, mac128 := range []bool{false, true} {
				sec := make([]byte, 8)
				b := append([]byte(nil), body[:bm+8]...)
				b[bm] |= 0x80
				if mac128 {
					b[bm+7] &^= 1
					sec[7] = 1
				}
				f.Add(append(append(b, sec...), body[bm+8:]...))
			}
			f.Add(append(append([]byte(nil), body...), 0, 0, 0))
			if at, err := fr.Offset(63); err == nil {
				for _, pre := range [][2]byte{{0x90, 0x03}, {0x00, 0x01}} {
					b := append([]byte(nil), body...)
					b[at], b[at+1] = pre[0], pre[1]
					f.Add(b)
				}
			}
		}
	}
	named := regexp.MustCompile(`field \d+|F\d+|MTI|TPDU|bitmap|shorter than|after the last field|decoder panic`)
	f.Fuzz(func(t *testing.T, body []byte) {
		a := NewAdapter(Config{HSM: &fakeHSM{mak: mak}, Terminals: fakeTerminals{}, Refusals: &fakeRefusals{}, Logger: zerolog.Nop(),
			Now: func() time.Time { return time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC) }}, fuzzPipeline{&fakePipeline{}})
		body = append([]byte(nil), body...)
		if len(body) >= prefixLen+2+8+8 && body[prefixLen+2+7]&1 == 1 { // F64 in the bitmap: MAC it
			copy(body[len(body)-8:], term.mustMAC(t, body[prefixLen:len(body)-8]))
		}
		conn := &frontend.Conn{Listener: "cup", Dialect: message.DialectCUP}
		resp, err := a.Process(context.Background(), conn, body)
		if err != nil {
			if strings.Contains(err.Error(), "decoder panic") {
				t.Fatalf("%X: %v", body, err)
			}
			if !named.MatchString(err.Error()) {
				t.Fatalf("%X: refused with an error that names no field: %v", body, err)
			}
			return
		}
		ans, err := Decode(resp.Body)
		if err != nil {
			t.Fatalf("%X answered %X, which does not decode: %v", body, resp.Body, err)
		}
		if ans.Str(39) == "" {
			t.Fatalf("%X answered without F39: %s", body, Summary(ans))
		}
	})
}

// fuzzPipeline is fakePipeline that answers a request it cannot decode as the
// pipeline does (formatError: 30 when the ASCII message names its terminal and
// STAN), so that the fuzzer finds the adapter's faults, not the fake's.
type fuzzPipeline struct{ *fakePipeline }

func (p fuzzPipeline) Process(ctx context.Context, c *frontend.Conn, body []byte) (frontend.Response, error) {
	resp, err := p.fakePipeline.Process(ctx, c, body)
	var fe *message.FormatError
	if err != nil && errors.As(err, &fe) && fe.Answerable() {
		raw, perr := message.NewFormatErrorResponse(fe, c.Dialect).Pack()
		return frontend.Response{Body: raw}, perr
	}
	return resp, err
}
