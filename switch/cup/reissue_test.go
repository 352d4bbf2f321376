package cup

import (
	"bytes"
	"context"
	"encoding/hex"
	"testing"
	"time"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
)

// TestReplayedSignInKeepsKeys: the dialect's 0800 carries no MAC, so anyone who saw
// a terminal's sign-in can send it again. Within the key lifetime such a sign-in gets
// the keys the terminal already holds (the same F62), and the terminal's next sale is
// answered with F64 and asks nothing. Until 6 December 2026 it made new keys: the
// sale, MAC'd under the key the terminal held (now in its grace), reached the pipeline
// but was answered without F64 and asked for a sign-in, and the terminal reversed it.
// Past the lifetime, after a rotation of the MAK (keys.rotate), or for another
// scheme, a sign-in makes new keys; with a negative lifetime every one does.
func TestReplayedSignInKeepsKeys(t *testing.T) {
	tmk, _ := hex.DecodeString("2315208C9110AD40F5B83C4A6E1D7F92")
	h := &versionedHSM{tmk: tmk}
	now := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	term := &Terminal{TID: "T0000001", MID: "000000000000001", TMK: tmk, batch: "000007",
		TPDU: TPDU{0x60, 0, 3, 0, 0}, Header: Header{0x60, 0x31, 0, 0x31, 0, 0}}
	conn := &frontend.Conn{Listener: "cup", Dialect: message.DialectCUP}
	process := func(a *Adapter, body []byte) (*Frame, []byte) {
		t.Helper()
		resp, err := a.Process(context.Background(), conn, body)
		if err != nil {
			t.Fatal(err)
		}
		ans, err := Decode(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return ans, resp.Body
	}
	signIn := func(a *Adapter, scheme string) ([]byte, []byte) { // the 0800 as sent, the answer's F62
		t.Helper()
		f := NewFrame(term.TPDU, term.Header, "0800").Set(11, term.NextSTAN()).Set(41, term.TID).Set(42, term.MID).Set(60, "00"+term.batch+scheme)
		raw, err := f.Encode(nil)
		if err != nil {
			t.Fatal(err)
		}
		ans, _ := process(a, raw)
		if ans.Str(39) != "00" {
			t.Fatalf("sign-in: %s", Summary(ans))
		}
		if err := term.installKeys(scheme, ans.Bytes(62)); err != nil {
			t.Fatal(err)
		}
		return raw, ans.Bytes(62)
	}
	replay := func(a *Adapter, raw []byte) []byte {
		t.Helper()
		ans, _ := process(a, raw)
		if ans.Str(39) != "00" {
			t.Fatalf("replayed sign-in: %s", Summary(ans))
		}
		return ans.Bytes(62)
	}
	sale := func(a *Adapter) *Frame {
		t.Helper()
		f, err := term.Build(Txn{Kind: "sale", PAN: "4761739001010119", Expiry: "2912", Amount: 100})
		if err != nil {
			t.Fatal(err)
		}
		body, err := f.Encode(term.MACOf)
		if err != nil {
			t.Fatal(err)
		}
		ans, raw := process(a, body)
		if ans.Has(64) && !bytes.Equal(term.mustMAC(t, MACInput(raw, ans)), ans.Bytes(64)) {
			t.Fatalf("the answer's MAC does not verify under the terminal's MAK")
		}
		return ans
	}
	// SingleLengthMAC: scheme 003 (an 8-byte MAK), and 004.
	a := NewAdapter(Config{HSM: h, Terminals: fakeTerminals{}, KeyVersion: h.version, Now: clock, SingleLengthMAC: true}, &fakePipeline{})
	raw, keys := signIn(a, "003")
	for i := range 3 {
		now = now.Add(time.Minute)
		if again := replay(a, raw); !bytes.Equal(again, keys) {
			t.Errorf("replayed sign-in %d within the key lifetime made new keys", i+1)
		}
		if ans := sale(a); ans.Str(39) != "00" || !ans.Has(64) || ans.Header.ProcessingRequirement() != ReqNone {
			t.Fatalf("sale after a replayed sign-in: %s, F64 %v; want 00 with F64, nothing asked", Summary(ans), ans.Has(64))
		}
	}
	// Another scheme makes new keys.
	_, keys4 := signIn(a, "004")
	if bytes.Equal(keys4[:16], keys[:16]) {
		t.Errorf("a sign-in for scheme 004 after one for 003 sent the same PIK")
	}
	// Past the lifetime, new keys.
	raw, keys = signIn(a, "003")
	now = now.Add(DefaultKeyLifetime)
	if again := replay(a, raw); bytes.Equal(again, keys) {
		t.Errorf("a sign-in past the key lifetime sent the same keys")
	}
	// After a rotation of the MAK by someone else (keys.rotate, another node), new keys.
	raw, keys = signIn(a, "003")
	if _, err := h.GenerateKey(context.Background(), hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000001.TAK", Type: hsm.TAK}}); err != nil {
		t.Fatal(err)
	}
	if again := replay(a, raw); bytes.Equal(again, keys) {
		t.Errorf("a sign-in after the MAK was rotated sent the old keys")
	}
	// A negative lifetime: every sign-in makes new keys (the earlier behaviour).
	b := NewAdapter(Config{HSM: h, Terminals: fakeTerminals{}, KeyVersion: h.version, Now: clock, KeyLifetime: -1, SingleLengthMAC: true}, &fakePipeline{})
	raw, keys = signIn(b, "003")
	if again := replay(b, raw); bytes.Equal(again, keys) {
		t.Errorf("with a negative key lifetime a sign-in sent the same keys")
	}
}
