package cup

import (
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
)

// TestRefuse: a sale past the listener's per-source limit is answered at once in the
// dialect (TPDU swapped, the echoed fields, F39 91, no F64), without the pipeline.
func TestRefuse(t *testing.T) {
	mak := []byte("0123456789ABCDEF")
	p := &fakePipeline{}
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	a := NewAdapter(Config{HSM: &fakeHSM{mak: mak}, Terminals: fakeTerminals{}, Now: func() time.Time { return now }}, p)
	term := &Terminal{TID: "T0000001", MID: "000000000000001", mak: mak, batch: "000007",
		TPDU: TPDU{0x60, 0, 3, 0, 0}, Header: Header{0x60, 0x31, 0, 0x31, 0, 0}}
	f, err := term.Build(Txn{Kind: "sale", PAN: "4761739001010119", Expiry: "2912", Amount: 100, STAN: "000321"})
	if err != nil {
		t.Fatal(err)
	}
	body, err := f.Encode(term.MACOf)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := a.Refuse(&frontend.Conn{Listener: "cup", Dialect: message.DialectCUP}, body, frontend.ReasonSourceBusy)
	if err != nil {
		t.Fatal(err)
	}
	ans, err := Decode(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ans.MTI() != "0210" || ans.Str(39) != "91" || ans.Str(11) != "000321" || ans.Str(41) != "T0000001" || ans.Has(64) || ans.TPDU != f.TPDU.Answer() {
		t.Fatalf("refusal: MTI %s F39 %q F11 %s F41 %s F64 %v TPDU %X", ans.MTI(), ans.Str(39), ans.Str(11), ans.Str(41), ans.Has(64), ans.TPDU)
	}
	if p.last() != nil {
		t.Fatal("the pipeline was given the refused request")
	}
	if _, err := a.Refuse(&frontend.Conn{Dialect: message.DialectCUP}, []byte{0x60, 1}, frontend.ReasonSourceBusy); err == nil {
		t.Fatal("an undecodable message was answered")
	}
}
