package cup

import (
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
)

// TestSignOffWithoutMACKeepsSession: an 0820 sign-off carries no MAC in the dialect,
// so one without an F64 that verifies under the terminal's MAK (anyone's, naming the
// terminal's ID) is answered but does not end the terminal's session: its sign-in's
// identity and batch stay, and its next request is not asked to sign in again. A
// sign-off whose F64 verifies ends it. Until 6 December 2026 every sign-off did.
func TestSignOffWithoutMACKeepsSession(t *testing.T) {
	mak := []byte("0123456789ABCDEF")
	p := &fakePipeline{}
	a := NewAdapter(Config{HSM: &fakeHSM{mak: mak}, Terminals: fakeTerminals{},
		Now: func() time.Time { return time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC) }}, p)
	term := &Terminal{TID: "T0000001", MID: "000000000000001", mak: mak, batch: "000007",
		TPDU: TPDU{0x60, 0, 3, 0, 0}, Header: Header{0x60, 0x31, 0, 0x31, 0, 0}}
	conn := &frontend.Conn{Listener: "cup", Dialect: message.DialectCUP}
	// The terminal's session as its sign-in left it.
	const identity = "DI0083150SXX0"
	s := a.sess.open(term.TID)
	s.mu.Lock()
	s.tlv, s.batch, s.signedIn = identity, "000007", time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	s.mu.Unlock()
	signOff := func() *Frame {
		return NewFrame(term.TPDU, term.Header, "0820").Set(11, term.NextSTAN()).Set(41, term.TID).Set(42, term.MID).
			Set(60, "00000007"+message.NMSignOff)
	}
	if ans := exchange(t, a, conn, signOff(), nil); ans.Str(39) != "00" {
		t.Fatalf("sign-off without MAC: %s", Summary(ans))
	}
	if got := a.sess.get(term.TID); got == nil || !got.isSignedIn() || got.tlv != identity {
		t.Fatalf("a sign-off without MAC ended the terminal's session")
	}
	sale, err := term.Build(Txn{Kind: "sale", PAN: "6225880212345678", Expiry: "2912", Amount: 100})
	if err != nil {
		t.Fatal(err)
	}
	ans := exchange(t, a, conn, sale, term.MACOf)
	if ans.Str(39) != "00" || ans.Header.ProcessingRequirement() != ReqNone || p.last().TLV.Device != "3150SXX0" {
		t.Errorf("sale after a sign-off without MAC: %s, identity %+v; want 00, no sign-in asked, the sign-in's identity", Summary(ans), p.last().TLV)
	}
	// A sign-off the terminal MAC'd ends the session.
	if ans := exchange(t, a, conn, signOff(), term.MACOf); ans.Str(39) != "00" {
		t.Fatalf("MAC'd sign-off: %s", Summary(ans))
	}
	if a.sess.get(term.TID) != nil {
		t.Errorf("a sign-off MAC'd under the terminal's MAK left its session")
	}
}
