package cup

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/message"
)

// TestBadNumericField: a request whose numeric field holds a nibble A-F (F3, F4,
// F12, F13, F14, F22, F25, F53), or whose field after F42 has a length prefix that
// is not digits, is answered 30 format-error-F<n>, MAC'd, journaled as a refusal,
// nothing forwarded, the bad field neither echoed nor logged; the next good request
// is approved. One whose MTI, F11 or a field before F41 is unreadable cannot be
// answered: Process's error (the connection closes) names the field. Until 6
// December 2026 every one of these closed the connection without an answer.
func TestBadNumericField(t *testing.T) {
	fx := newMACFixture(time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC))
	a, p, refs, logs, term, conn := fx.a, fx.p, fx.refs, fx.logs, fx.term, fx.conn
	const pan = "4761739001010119"
	// send builds a sale, has patch change the bytes of field id (its length prefix
	// first), MACs the result and has the adapter process it.
	send := func(id int, patch func(b []byte)) (*Frame, error) {
		t.Helper()
		f, err := term.Build(Txn{Kind: "sale", PAN: pan, Expiry: "2912", Amount: 123456})
		if err != nil {
			t.Fatal(err)
		}
		f.Set(12, "120000").Set(13, "1206").Set(25, "00").Set(63, "CUP")
		if id == 53 {
			f.Set(53, "1000000000000000")
		}
		body, err := f.Encode(term.MACOf)
		if err != nil {
			t.Fatal(err)
		}
		if patch != nil {
			at, err := f.Offset(id)
			if err != nil {
				t.Fatal(err)
			}
			patch(body[at:])
			copy(body[len(body)-8:], term.mustMAC(t, MACInput(body, f)))
		}
		resp, err := a.Process(context.Background(), conn, body)
		if err != nil {
			return nil, err
		}
		return Decode(resp.Body)
	}
	hi := func(i int) func([]byte) { return func(b []byte) { b[i] = b[i]&0x0F | 0xA0 } } // nibble A, high
	lo := func(i int) func([]byte) { return func(b []byte) { b[i] = b[i]&0xF0 | 0x0B } } // nibble B, low
	for _, c := range []struct {
		id    int
		patch func([]byte)
	}{
		{3, hi(1)}, {4, lo(5)}, {12, hi(0)}, {13, lo(1)}, {14, hi(1)}, {22, lo(0)}, {25, hi(0)}, {53, lo(7)},
		{60, hi(0)}, // F60's LLL length: 0A.. is not digits
		{63, lo(1)}, // F63's LLL length
	} {
		n, nref := len(p.reqs), len(refs.got)
		logs.Reset()
		ans, err := send(c.id, c.patch)
		if err != nil {
			t.Errorf("F%d: %v (the connection would close)", c.id, err)
			continue
		}
		field := "F" + strconv.Itoa(c.id)
		if ans.Str(39) != message.RCFormatError || len(p.reqs) != n || !ans.Has(64) || ans.Str(11) == "" || ans.Str(41) != term.TID {
			t.Errorf("%s: %s (pipeline saw %d), want 30 MAC'd with F11 and F41, nothing forwarded", field, Summary(ans), len(p.reqs)-n)
		}
		if echoed := c.id != 12 && c.id != 13; echoed && ans.Has(c.id) { // the answer's F12, F13 are the host's
			t.Errorf("%s: echoed in the answer (%s)", field, Summary(ans))
		}
		if len(refs.got) != nref+1 || refs.got[nref].Reason != "format-error-"+field {
			t.Errorf("%s: journaled %+v, want one refusal format-error-%s", field, refs.got[nref:], field)
		}
		if l := logs.String(); !strings.Contains(l, field) || strings.Contains(l, pan) {
			t.Errorf("%s: log does not name the field, or holds the PAN: %s", field, l)
		}
		if ans, err := send(0, nil); err != nil || ans.Str(39) != "00" {
			t.Fatalf("a good sale after the bad %s: %v %v", field, err, ans)
		}
	}
	// Unanswerable: the MTI, F11, a length before F41. The error names the field.
	for _, c := range []struct {
		id    int
		patch func([]byte)
		want  string
	}{
		{11, hi(0), "field 11"},
		{2, hi(0), "field 2"},
	} {
		if _, err := send(c.id, c.patch); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("F%d unreadable: %v, want an error naming %s", c.id, err, c.want)
		}
	}
	f, _ := term.Build(Txn{Kind: "sale", PAN: pan, Expiry: "2912", Amount: 100})
	body, _ := f.Encode(term.MACOf)
	body[prefixLen] = 0x0A
	if _, err := a.Process(context.Background(), conn, body); err == nil || !strings.Contains(err.Error(), "MTI") {
		t.Errorf("MTI unreadable: %v, want an error naming the MTI", err)
	}
}
