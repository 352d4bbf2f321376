package pipeline

import (
	"bytes"
	"testing"

	"github.com/moov-io/iso8583"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/termclient"
)

// TestRefuse: a request the front end refuses (its source at max_in_flight_per_source)
// is answered 91 with RS source-busy and its fields echoed, without a record, a
// request to the issuer or a MAC; one that does not decode gets the usual 30.
func TestRefuse(t *testing.T) {
	h := newHarness(t)
	tx := h.purchase(1000)
	resp, err := h.p.Refuse(h.conn, h.frame(tx), frontend.ReasonSourceBusy)
	if err != nil {
		t.Fatal(err)
	}
	m := iso8583.NewMessage(message.SpecASCII)
	if err := m.Unpack(resp.Body); err != nil {
		t.Fatal(err)
	}
	r, err := termclient.Decode(m)
	if err != nil {
		t.Fatal(err)
	}
	if mti, _ := m.GetMTI(); mti != "0210" || r.RC != "91" || r.Reason != frontend.ReasonSourceBusy || r.RRN != "" || r.MAC != "" {
		t.Fatalf("refusal %s %+v; want 0210 91 source-busy, no RRN, no MAC", mti, r)
	}
	if stan, _ := m.GetString(11); stan != tx.STAN {
		t.Errorf("refusal DE 11 %q, want the request's %s", stan, tx.STAN)
	}
	if n := h.j.count(); n != 0 || len(h.bank.sent()) != 0 || resp.Sent != nil {
		t.Fatalf("refused request: %d records, %d sent to the issuer; want none", n, len(h.bank.sent()))
	}
	body := h.frame(h.purchase(1000))
	i := bytes.Index(body, []byte("000000001000"))
	if i < 0 {
		t.Fatal("no DE 4 in the request")
	}
	body[i+5] = 'X' // DE 4 no longer digits
	resp, err = h.p.Refuse(h.conn, body, frontend.ReasonSourceBusy)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Unpack(resp.Body); err != nil {
		t.Fatal(err)
	}
	if rc, _ := m.GetString(39); rc != message.RCFormatError {
		t.Fatalf("refusal of a malformed request answered %q, want 30", rc)
	}
}
