package cup

import (
	"bytes"
	"context"
	"crypto/des"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/mac"
	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/registry"
)

// fakeHSM MACs with one fixed MAK (CUP ECB) and knows no other key.
type fakeHSM struct{ mak []byte }

func (h *fakeHSM) sum(data []byte) []byte {
	c, _ := des.NewTripleDESCipher(append(append([]byte{}, h.mak...), h.mak[:8]...))
	return mac.CUPECB(nil, c, data)
}
func (h *fakeHSM) GenerateKey(context.Context, hsm.GenerateKeyRequest) (hsm.KeyResult, error) {
	return hsm.KeyResult{}, errors.New("not in this test")
}
func (h *fakeHSM) GenerateMAC(_ context.Context, r hsm.MACRequest) ([]byte, error) {
	return h.sum(r.Data), nil
}
func (h *fakeHSM) VerifyMAC(_ context.Context, r hsm.MACRequest, m []byte) error {
	if string(h.sum(r.Data)) != string(m) {
		return hsm.ErrMACMismatch
	}
	return nil
}
func (h *fakeHSM) TranslatePIN(context.Context, hsm.TranslatePINRequest) ([]byte, error) {
	return nil, errors.New("not in this test")
}
func (h *fakeHSM) DecryptData(context.Context, hsm.KeyRef, []byte) ([]byte, error) {
	return nil, errors.New("not in this test")
}

type fakeTerminals struct{}

func (fakeTerminals) Terminal(id string) (*registry.Terminal, bool) {
	return &registry.Terminal{ID: id, Keys: registry.KeyRefs{TPK: id + ".TPK", TMK: id + ".TMK"}}, true
}

// KeyUsers: each terminal's keys are its own (TID.TPK is TID's alone).
func (fakeTerminals) KeyUsers(id string) []string {
	if i := strings.LastIndexByte(id, '.'); i > 0 {
		return []string{id[:i]}
	}
	return nil
}

// fakePipeline records the ASCII requests and approves them with RRN 000000000042.
type fakePipeline struct {
	mu   sync.Mutex
	reqs []*message.Request
	rc   string
	// reason, when set, is the DE 48 reason (RS) of the answer.
	reason string
	// sums are the content fingerprints the adapter gave with each request
	// (frontend.Conn.ContentSum).
	sums []uint64
	// balance, when set, is DE 54 of the answers to balance inquiries.
	balance string
}

func (p *fakePipeline) Process(_ context.Context, c *frontend.Conn, body []byte) (frontend.Response, error) {
	if c.Dialect != message.DialectASCII {
		return frontend.Response{}, fmt.Errorf("the pipeline was given dialect %s", c.Dialect)
	}
	req, err := message.Decode(append([]byte(nil), body...), message.DialectASCII)
	if err != nil {
		return frontend.Response{}, err
	}
	p.mu.Lock()
	p.reqs = append(p.reqs, req)
	p.sums = append(p.sums, c.ContentSum)
	rc, reason, balance := p.rc, p.reason, p.balance
	p.mu.Unlock()
	if rc == "" {
		rc = "00"
	}
	b := message.NewResponseBuilder(req)
	if rc == message.RCPartialApproval && req.TLV.AcceptsPartial() {
		b = message.NewResponseBuilderAmount(req, fmt.Sprintf("%012d", req.Amount*6/10)) // 60 % approved
	}
	b.Set(37, "000000000042").Set(38, "123456").Set(39, rc)
	if reason != "" {
		b.Set(48, message.ReasonTLV(reason))
	}
	if req.ProcCode == message.PCBalance {
		b.Set(54, balance)
	}
	raw, err := b.Bytes(nil)
	return frontend.Response{Body: raw}, err
}

func (p *fakePipeline) last() *message.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.reqs) == 0 {
		return nil
	}
	return p.reqs[len(p.reqs)-1]
}

// TestMapping: each transaction of the dialect reaches the pipeline as the ASCII
// request of the same meaning, and the answer comes back in the dialect.
func TestMapping(t *testing.T) {
	mak := []byte("0123456789ABCDEF")
	p := &fakePipeline{}
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	var countMu sync.Mutex
	counted := map[string]int{}
	a := NewAdapter(Config{HSM: &fakeHSM{mak: mak}, Terminals: fakeTerminals{}, Now: func() time.Time { return now },
		Answered: func(mti, rc string) { countMu.Lock(); counted[mti+"/"+rc]++; countMu.Unlock() }}, p)
	term := &Terminal{TID: "T0000001", MID: "000000000000001", mak: mak, batch: "000007",
		TPDU: TPDU{0x60, 0, 3, 0, 0}, Header: Header{0x60, 0x31, 0, 0x31, 0, 0}}
	conn := &frontend.Conn{Listener: "cup", Dialect: message.DialectCUP}
	send := func(tx Txn) *Frame {
		t.Helper()
		f, err := term.Build(tx)
		if err != nil {
			t.Fatal(err)
		}
		body, err := f.Encode(term.MACOf)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := a.Process(context.Background(), conn, body)
		if err != nil {
			t.Fatal(err)
		}
		ans, err := Decode(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if ans.Has(64) && string(term.mustMAC(t, MACInput(resp.Body, ans))) != string(ans.Bytes(64)) {
			t.Fatalf("answer MAC does not verify")
		}
		return ans
	}
	card := "4761739001010119"
	for _, c := range []struct {
		tx              Txn
		mti, proc, rrn  string
		ansMTI, de90pre string
	}{
		{Txn{Kind: "sale", PAN: card, Expiry: "2912", Amount: 100, STAN: "000001"}, "0200", "000000", "", "0210", ""},
		{Txn{Kind: "balance", PAN: card, Expiry: "2912", STAN: "000002"}, "0200", "310000", "", "0210", ""},
		{Txn{Kind: "void", PAN: card, Expiry: "2912", Amount: 100, RRN: "000000000042", OrigSTAN: "000001", STAN: "000003"}, "0200", "020000", "000000000042", "0210", ""},
		{Txn{Kind: "refund", PAN: card, Expiry: "2912", Amount: 50, RRN: "000000000042", OrigSTAN: "000001", STAN: "000004"}, "0200", "200000", "000000000042", "0230", ""},
		{Txn{Kind: "preauth", PAN: card, Expiry: "2912", Amount: 300, STAN: "000005"}, "0100", "000000", "", "0110", ""},
		{Txn{Kind: "completion", PAN: card, Expiry: "2912", Amount: 300, RRN: "000000000042", Auth: "123456", STAN: "000006"}, "0220", "000000", "000000000042", "0210", ""},
		{Txn{Kind: "completion-void", PAN: card, Expiry: "2912", Amount: 300, RRN: "000000000042", OrigSTAN: "000006", STAN: "000007"}, "0200", "020000", "000000000042", "0210", ""},
		{Txn{Kind: "preauth-void", PAN: card, Expiry: "2912", Amount: 300, OrigSTAN: "000005", STAN: "000008"}, "0400", "000000", "", "0110", "0100000005"},
		{Txn{Kind: "reversal", PAN: card, Expiry: "2912", Amount: 100, STAN: "000001"}, "0400", "000000", "", "0410", "0200000001"},
	} {
		ans := send(c.tx)
		r := p.last()
		if r.MTI != c.mti || r.ProcCode != c.proc || r.RRN != c.rrn || !strings.HasPrefix(r.Original, c.de90pre) {
			t.Errorf("%s: pipeline got %s/%s RRN %q DE 90 %q, want %s/%s %q %q...", c.tx.Kind, r.MTI, r.ProcCode, r.RRN, r.Original, c.mti, c.proc, c.rrn, c.de90pre)
		}
		if ans.MTI() != c.ansMTI || ans.Str(39) != "00" || ans.Str(37) != "000000000042" || ans.TPDU != (TPDU{0x60, 0, 0, 0, 3}) {
			t.Errorf("%s: answer %s TPDU %X", c.tx.Kind, Summary(ans), ans.TPDU)
		}
		// No session since the start: the header asks for a sign-in.
		if ans.Header.ProcessingRequirement() != ReqSignIn {
			t.Errorf("%s: processing requirement %d, want %d", c.tx.Kind, ans.Header.ProcessingRequirement(), ReqSignIn)
		}
	}
	// A reversal names the DE 7 its original was given, not its own.
	sale, rev := p.reqs[0], p.reqs[len(p.reqs)-1]
	if rev.Original != "0200000001"+sale.DE7+strings.Repeat("0", 22) || rev.DE7 == sale.DE7 {
		t.Errorf("reversal DE 90 %q DE 7 %s; sale DE 7 %s", rev.Original, rev.DE7, sale.DE7)
	}
	// A resend of the sale (same STAN, amount, type) gets the same DE 7: a duplicate.
	send(Txn{Kind: "sale", PAN: card, Expiry: "2912", Amount: 100, STAN: "000001"})
	if p.last().DE7 != sale.DE7 {
		t.Errorf("resend DE 7 %s, first %s", p.last().DE7, sale.DE7)
	}
	// Settlement: F48 becomes DE 48 BT; the answer's settlement code says balanced.
	ans := send(Txn{Kind: "settlement", Totals: message.BatchTotals{PurchaseCount: 2, PurchaseSum: 400, RefundCount: 1, RefundSum: 50}})
	if r := p.last(); r.MTI != "0500" || r.ProcCode != message.PCBatch || r.TLV.BatchTotals != "2,400,1,50" {
		t.Errorf("settlement reached the pipeline as %s/%s BT %q", r.MTI, r.ProcCode, r.TLV.BatchTotals)
	}
	if f48 := ans.Str(48); len(f48) < 31 || f48[30] != '1' || ans.MTI() != "0510" {
		t.Errorf("settlement answer %s F48 %q", Summary(ans), f48)
	}
	p.rc = "95"
	if ans := send(Txn{Kind: "settlement", Totals: message.BatchTotals{PurchaseCount: 9}}); ans.Str(48)[30] != '2' {
		t.Errorf("unbalanced settlement F48 %q", ans.Str(48))
	}
	p.rc = ""
	// Refused before the pipeline: a void without F37 (30), an unknown 60.1 (12), a
	// bad MAC (A0, no MAC on the answer), a batch upload that names no transaction
	// (30, nothing forwarded; upload_test.go).
	n := len(p.reqs)
	if ans := send(Txn{Kind: "void", PAN: card, Expiry: "2912", Amount: 1}); ans.Str(39) != "30" {
		t.Errorf("void without F37: %s", Summary(ans))
	}
	f, _ := term.Build(Txn{Kind: "sale", PAN: card, Expiry: "2912", Amount: 1})
	f.Set(60, "99000007")
	body, _ := f.Encode(term.MACOf)
	resp, _ := a.Process(context.Background(), conn, body)
	if ans, _ := Decode(resp.Body); ans.Str(39) != "12" {
		t.Errorf("60.1 = 99: %s", Summary(ans))
	}
	f, _ = term.Build(Txn{Kind: "sale", PAN: card, Expiry: "2912", Amount: 1})
	body, _ = f.Encode(func([]byte) ([]byte, error) { return []byte("00000000"), nil })
	resp, _ = a.Process(context.Background(), conn, body)
	if ans, _ := Decode(resp.Body); ans.Str(39) != RCMACFailure || ans.Has(64) || ans.Header.ProcessingRequirement() != ReqSignIn {
		t.Errorf("bad MAC: %s", Summary(ans))
	}
	// A terminal whose MAC does not verify gets no session (made-up terminal IDs
	// cannot fill the memory).
	stranger := &Terminal{TID: "ZZ000001", MID: term.MID, mak: []byte("FEDCBA9876543210"), batch: "000001", TPDU: term.TPDU, Header: term.Header}
	f, _ = stranger.Build(Txn{Kind: "sale", PAN: card, Expiry: "2912", Amount: 1})
	body, _ = f.Encode(stranger.MACOf)
	if resp, err := a.Process(context.Background(), conn, body); err != nil || a.sess.get("ZZ000001") != nil {
		t.Errorf("bad MAC of an unknown terminal: %v, session %v", err, a.sess.get("ZZ000001"))
	} else if ans, _ := Decode(resp.Body); ans.Str(39) != RCMACFailure {
		t.Errorf("bad MAC of an unknown terminal: %s", Summary(ans))
	}
	if ans := send(Txn{Kind: "upload"}); ans.Str(39) != "30" || ans.MTI() != "0330" {
		t.Errorf("batch upload: %s", Summary(ans))
	}
	if len(p.reqs) != n {
		t.Errorf("%d requests reached the pipeline that should not have", len(p.reqs)-n)
	}
	// The adapter's own answers are counted (the pipeline counts the others).
	if counted["0200/"+RCMACFailure] != 2 || counted["0320/30"] != 1 || counted["0200/30"] != 1 || counted["0200/12"] != 1 {
		t.Errorf("counted %v", counted)
	}
	// A body that does not decode is an error (the connection closes).
	if _, err := a.Process(context.Background(), conn, []byte{0x60, 1, 2}); err == nil {
		t.Error("an undecodable body was answered")
	}
	// Nor is a message whose MTI is no request's: its answer's MTI would be another
	// request's (0210 answered 0220, the refund's) or not BCD at all (0190).
	f, _ = stranger.Build(Txn{Kind: "sale", PAN: card, Expiry: "2912", Amount: 1})
	body, _ = f.Encode(stranger.MACOf)
	at := len(f.TPDU) + len(f.Header) // the MTI, in BCD
	if !bytes.Equal(body[at:at+2], []byte{0x02, 0x00}) {
		t.Fatalf("no MTI 0200 at %d of %x", at, body)
	}
	for _, mti := range [][2]byte{{0x02, 0x10}, {0x08, 0x10}, {0x01, 0x90}, {0x09, 0x90}} {
		bad := append([]byte(nil), body...)
		copy(bad[at:], mti[:])
		if resp, err := a.Process(context.Background(), conn, bad); err == nil || !strings.Contains(err.Error(), "is not a request") {
			t.Errorf("MTI %x: answered (%x) or %v; want the connection closed, the message named not a request", mti, resp.Body, err)
		}
	}
}

func (t *Terminal) mustMAC(tb testing.TB, data []byte) []byte {
	m, err := t.MACOf(data)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// TestTPDUAndHeader: the answer's TPDU swaps the addresses; the processing
// requirement is the header's 6th digit.
func TestTPDUAndHeader(t *testing.T) {
	if got := (TPDU{0x60, 0x00, 0x06, 0x00, 0x00}).Answer(); got != (TPDU{0x60, 0x00, 0x00, 0x00, 0x06}) {
		t.Errorf("answer TPDU %X", got)
	}
	h := Header{0x60, 0x31, 0x00, 0x31, 0x10, 0x03}
	if h.ProcessingRequirement() != 0 || h.WithProcessingRequirement(3) != (Header{0x60, 0x31, 0x03, 0x31, 0x10, 0x03}) || h.AppType() != "60" {
		t.Errorf("header %X -> %X", h, h.WithProcessingRequirement(3))
	}
	if s := (Header{0x61, 0x31, 0x13, 0, 0, 0}); s.Status() != 1 || s.ProcessingRequirement() != 3 {
		t.Errorf("status %d requirement %d", s.Status(), s.ProcessingRequirement())
	}
}

// TestPartialApprovalAnswer: a sale whose 60.6 says the terminal accepts partial
// approvals reaches the pipeline with DE 48 PA = 1, and the answer's F4 is the amount
// the pipeline approved (what the terminal prints), not the amount asked; a sale
// without 60.6 = 1 carries no PA.
func TestPartialApprovalAnswer(t *testing.T) {
	mak := []byte("0123456789ABCDEF")
	p := &fakePipeline{rc: message.RCPartialApproval}
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	a := NewAdapter(Config{HSM: &fakeHSM{mak: mak}, Terminals: fakeTerminals{}, Now: func() time.Time { return now }}, p)
	term := &Terminal{TID: "T0000001", MID: "000000000000001", mak: mak, batch: "000007",
		TPDU: TPDU{0x60, 0, 3, 0, 0}, Header: Header{0x60, 0x31, 0, 0x31, 0, 0}}
	conn := &frontend.Conn{Listener: "cup", Dialect: message.DialectCUP}
	send := func(tx Txn) *Frame {
		t.Helper()
		f, err := term.Build(tx)
		if err != nil {
			t.Fatal(err)
		}
		return exchange(t, a, conn, f, term.MACOf)
	}
	ans := send(Txn{Kind: "sale", PAN: "4761739001010119", Expiry: "2912", Amount: 1000, STAN: "000001", PartialOK: true})
	if req := p.last(); req == nil || !req.TLV.AcceptsPartial() {
		t.Fatalf("60.6 = 1 did not reach the pipeline as DE 48 PA = 1: %+v", req)
	}
	if ans.Str(39) != "10" || ans.Str(4) != "000000000600" {
		t.Fatalf("answer F39 %s F4 %s, want 10 for 000000000600 (the amount approved)", ans.Str(39), ans.Str(4))
	}
	ans = send(Txn{Kind: "sale", PAN: "4761739001010119", Expiry: "2912", Amount: 1000, STAN: "000002"})
	if req := p.last(); req.TLV.Has&message.HasPartialOK != 0 {
		t.Fatalf("a sale without 60.6 sent PA %q", req.TLV.PartialOK)
	}
	if ans.Str(4) != "000000001000" {
		t.Fatalf("answer F4 %s, want the amount asked", ans.Str(4))
	}
}

// exchange encodes f with mac (a terminal's MACOf, or nil), has a process it on conn
// and decodes the answer, failing the test on any error.
func exchange(t *testing.T, a *Adapter, conn *frontend.Conn, f *Frame, mac MACFunc) *Frame {
	t.Helper()
	body, err := f.Encode(mac)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := a.Process(context.Background(), conn, body)
	if err != nil {
		t.Fatal(err)
	}
	ans, err := Decode(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return ans
}
