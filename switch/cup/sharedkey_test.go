package cup

import (
	"bytes"
	"context"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/internal/syncbuf"
	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/registry"
)

// sharedTAKTerminals registers every terminal with its own TMK and TPK and the MAC
// key tak (a key ID that is not the terminal's own: shared by a fleet, or another
// terminal's), except T0000001, registered with its own T0000001.TAK.
type sharedTAKTerminals struct{ tak string }

func (s sharedTAKTerminals) Terminal(id string) (*registry.Terminal, bool) {
	tak := s.tak
	if id == "T0000001" {
		tak = "T0000001.TAK"
	}
	return &registry.Terminal{ID: id, Keys: registry.KeyRefs{TPK: id + ".TPK", TMK: id + ".TMK", TAK: tak}}, true
}

// KeyUsers: T0000001 and T0000003 (the terminals of the test) use the shared TAK;
// T0000001 uses T0000001.TAK; every other key is its terminal's alone.
func (s sharedTAKTerminals) KeyUsers(id string) []string {
	switch {
	case id == s.tak && id == "T0000001.TAK":
		return []string{"T0000001", "T0000003"}
	case id == s.tak:
		return []string{"T0000003"}
	}
	return fakeTerminals{}.KeyUsers(id)
}

// TestSharedTAKNotRotatedBySignIn: a terminal registered with a TAK that is not its
// own (one a fleet shares, or another terminal's) signs in: the switch neither makes a
// new version of that key nor sends it to the terminal (under its TMK); it makes the
// terminal a MAK of its own, TID.TAK, and its sale MAC'd under that key is answered
// 00 with F64. Before, the sign-in rotated the shared key (every other terminal's MAC
// under it failing once the grace ended) and handed its clear value to whoever holds
// that one terminal's TMK. A terminal registered with its own TAK still has that key
// rotated, as the PIN key's rule (pikID) has it.
func TestSharedTAKNotRotatedBySignIn(t *testing.T) {
	tmk, _ := hex.DecodeString("2315208C9110AD40F5B83C4A6E1D7F92")
	for _, shared := range []string{"FLEET.TAK", "T0000001.TAK"} {
		t.Run(shared, func(t *testing.T) {
			h := &versionedHSM{tmk: tmk}
			if _, err := h.GenerateKey(context.Background(), hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: shared, Type: hsm.TAK}}); err != nil {
				t.Fatal(err)
			}
			sharedKey := append([]byte(nil), h.keys[shared][0]...)
			var logs syncbuf.Buffer
			now := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
			a := NewAdapter(Config{HSM: h, Terminals: sharedTAKTerminals{tak: shared}, KeyVersion: h.version,
				Now: func() time.Time { return now }, Logger: zerolog.New(&logs)}, &fakePipeline{})
			conn := &frontend.Conn{Listener: "cup", Dialect: message.DialectCUP}
			process := func(body []byte) (*Frame, []byte) {
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
			term := &Terminal{TID: "T0000003", MID: "000000000000001", TMK: tmk, batch: "000007",
				TPDU: TPDU{0x60, 0, 3, 0, 0}, Header: Header{0x60, 0x31, 0, 0x31, 0, 0}}
			signIn := func(term *Terminal) {
				t.Helper()
				f := NewFrame(term.TPDU, term.Header, "0800").Set(11, term.NextSTAN()).Set(41, term.TID).Set(42, term.MID).Set(60, "00"+term.batch+"004")
				raw, err := f.Encode(nil)
				if err != nil {
					t.Fatal(err)
				}
				ans, _ := process(raw)
				if ans.Str(39) != "00" {
					t.Fatalf("sign-in of %s: %s", term.TID, Summary(ans))
				}
				if err := term.installKeys("004", ans.Bytes(62)); err != nil {
					t.Fatal(err)
				}
			}
			signIn(term)
			if v, _ := h.version(shared); v != 1 {
				t.Errorf("T0000003's sign-in made version %d of the shared TAK %s, want it left at 1", v, shared)
			}
			if bytes.Equal(term.mak, sharedKey) || bytes.Equal(term.mak, h.keys[shared][len(h.keys[shared])-1]) {
				t.Fatalf("T0000003's sign-in sent it the shared TAK %s under its TMK", shared)
			}
			if v, err := h.version("T0000003.TAK"); err != nil || v != 1 {
				t.Errorf("T0000003.TAK: version %d, %v; want the sign-in to make it", v, err)
			}
			if !strings.Contains(logs.String(), `"registered_tak":"`+shared+`"`) {
				t.Errorf("no warning naming the registered TAK %s: %s", shared, logs.String())
			}
			f, err := term.Build(Txn{Kind: "sale", PAN: "4761739001010119", Expiry: "2912", Amount: 100})
			if err != nil {
				t.Fatal(err)
			}
			body, err := f.Encode(term.MACOf)
			if err != nil {
				t.Fatal(err)
			}
			ans, raw := process(body)
			if ans.Str(39) != "00" || !ans.Has(64) || !bytes.Equal(term.mustMAC(t, MACInput(raw, ans)), ans.Bytes(64)) {
				t.Fatalf("sale MAC'd under T0000003's own MAK: %s, F64 %v; want 00 with F64 under that key", Summary(ans), ans.Has(64))
			}
			// A terminal registered with its own TAK: its sign-in rotates it. Not
			// when other terminals use it too (T0000001.TAK shared): T0000001 then
			// gets T0000001.MAK (TestOwnKeyOfNoOtherTerminal).
			own := &Terminal{TID: "T0000001", MID: "000000000000001", TMK: tmk, batch: "000007",
				TPDU: TPDU{0x60, 0, 3, 0, 0}, Header: Header{0x60, 0x31, 0, 0x31, 0, 0}}
			before, _ := h.version("T0000001.TAK")
			signIn(own)
			mak := "T0000001.TAK"
			if shared == mak {
				if v, _ := h.version(mak); v != before {
					t.Errorf("T0000001's sign-in made version %d of its TAK %s, which T0000003 uses too; want it left at %d", v, mak, before)
				}
				mak = "T0000001.MAK"
			} else if v, _ := h.version(mak); v != before+1 {
				t.Errorf("T0000001's sign-in: its own TAK at version %d (was %d); want a new version", v, before)
			}
			if v, _ := h.version(mak); v == 0 || !bytes.Equal(own.mak, h.keys[mak][v-1]) {
				t.Errorf("T0000001's sign-in did not send it the latest version of %s", mak)
			}
		})
	}
}
