package cup

import (
	"bytes"
	"context"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/internal/syncbuf"
	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/internal/testswitch"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/registry"
)

// TestOwnKeyOfNoOtherTerminal: a key whose ID starts with the terminal's (TID.*) is
// its own only if no other terminal's record (not closed) names it too, which the
// registry answers (KeyUsers). Before, the prefix alone decided: T0000001's sign-in
// rotated T0000001.TPK and T0000001.TAK, which the registry also gives T0000003,
// and sent both under T0000001's TMK. Now its sign-in leaves them alone and makes
// it keys of its own, T0000001.PIK and T0000001.MAK (its conventional IDs being the
// shared ones), under which its sale is MAC'd and answered; once T0000003 is closed
// the registered keys are T0000001's own again and its sign-in rotates them. A
// terminal every candidate ID of whose PIK is another terminal's key is refused the
// sign-in (A7), nothing made.
func TestOwnKeyOfNoOtherTerminal(t *testing.T) {
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil).WithMemTableSize(8 << 20).WithValueLogFileSize(16 << 20))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	reg, err := registry.New(db, time.Now, registry.Options{SeenFlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close() })
	if _, err := registry.LoadDemoFleet(reg, testswitch.LoadTerminals); err != nil {
		t.Fatal(err)
	}
	operator, reviewer := registry.Actor{Name: "alice", Role: registry.RoleOperator}, registry.Actor{Name: "bob", Role: registry.RoleReviewer}
	apply := func(c registry.Change) {
		t.Helper()
		req, err := reg.RequestChange(operator, c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := reg.Approve(reviewer, req.ID, ""); err != nil {
			t.Fatal(err)
		}
	}
	keys := func(id string, k registry.KeyRefs) registry.Change {
		return registry.Change{Op: registry.OpTerminalChange, Target: id, TerminalPatch: &registry.TerminalPatch{Keys: &k}}
	}
	apply(keys("T0000001", registry.KeyRefs{TMK: "T0000001.TMK", TPK: "T0000001.TPK", TAK: "T0000001.TAK", PINMode: registry.PINModeTPK}))
	apply(keys("T0000003", registry.KeyRefs{TMK: "T0000003.TMK", TPK: "T0000001.TPK", TAK: "T0000001.TAK", PINMode: registry.PINModeTPK}))

	tmk, _ := hex.DecodeString("2315208C9110AD40F5B83C4A6E1D7F92")
	h := &versionedHSM{tmk: tmk}
	for _, k := range []struct {
		id string
		t  hsm.KeyType
	}{{"T0000001.TPK", hsm.TPK}, {"T0000001.TAK", hsm.TAK}} {
		if _, err := h.GenerateKey(context.Background(), hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: k.id, Type: k.t}}); err != nil {
			t.Fatal(err)
		}
	}
	var logs syncbuf.Buffer
	a := NewAdapter(Config{HSM: h, Terminals: reg, KeyVersion: h.version, KeyLifetime: -1, Logger: zerolog.New(&logs)}, &fakePipeline{})
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
	signIn := func(term *Terminal) *Frame {
		t.Helper()
		f := NewFrame(term.TPDU, term.Header, "0800").Set(11, term.NextSTAN()).Set(41, term.TID).Set(42, term.MID).Set(60, "00"+term.batch+"004")
		raw, err := f.Encode(nil)
		if err != nil {
			t.Fatal(err)
		}
		ans, _ := process(raw)
		if ans.Str(39) == "00" {
			if err := term.installKeys("004", ans.Bytes(62)); err != nil {
				t.Fatal(err)
			}
		}
		return ans
	}
	version := func(id string) int { v, _ := h.version(id); return v }
	latest := func(id string) []byte { return h.keys[id][version(id)-1] }
	t1 := &Terminal{TID: "T0000001", MID: "000000000000001", TMK: tmk, batch: "000007",
		TPDU: TPDU{0x60, 0, 3, 0, 0}, Header: Header{0x60, 0x31, 0, 0x31, 0, 0}}

	if got := reg.KeyUsers("T0000001.TAK"); strings.Join(got, ",") != "T0000001,T0000003" {
		t.Fatalf("registry: KeyUsers(T0000001.TAK) = %v", got)
	}
	if ans := signIn(t1); ans.Str(39) != "00" {
		t.Fatalf("T0000001's sign-in: %s", Summary(ans))
	}
	if version("T0000001.TPK") != 1 || version("T0000001.TAK") != 1 {
		t.Errorf("T0000001's sign-in made versions %d and %d of T0000001.TPK and .TAK, which T0000003 uses too; want them left at 1",
			version("T0000001.TPK"), version("T0000001.TAK"))
	}
	if version("T0000001.PIK") != 1 || version("T0000001.MAK") != 1 || !bytes.Equal(t1.pik, latest("T0000001.PIK")) || !bytes.Equal(t1.mak, latest("T0000001.MAK")) {
		t.Fatalf("T0000001's sign-in: T0000001.PIK v%d, T0000001.MAK v%d; want both made and sent", version("T0000001.PIK"), version("T0000001.MAK"))
	}
	if !strings.Contains(logs.String(), `"tak_users":["T0000001","T0000003"]`) {
		t.Errorf("no warning naming the TAK's other users:\n%s", logs.String())
	}
	f, err := t1.Build(Txn{Kind: "sale", PAN: "4761739001010119", Expiry: "2912", Amount: 100})
	if err != nil {
		t.Fatal(err)
	}
	body, err := f.Encode(t1.MACOf)
	if err != nil {
		t.Fatal(err)
	}
	if ans, raw := process(body); ans.Str(39) != "00" || !ans.Has(64) || !bytes.Equal(t1.mustMAC(t, MACInput(raw, ans)), ans.Bytes(64)) {
		t.Fatalf("sale MAC'd under T0000001.MAK: %s; want 00 with F64 under that key", Summary(ans))
	}

	// T0000003 closed: the registered keys are T0000001's alone again.
	apply(registry.Change{Op: registry.OpTerminalClose, Target: "T0000003"})
	if ans := signIn(t1); ans.Str(39) != "00" {
		t.Fatalf("T0000001's sign-in after T0000003 closed: %s", Summary(ans))
	}
	if version("T0000001.TPK") != 2 || version("T0000001.TAK") != 2 || !bytes.Equal(t1.mak, latest("T0000001.TAK")) || !bytes.Equal(t1.pik, latest("T0000001.TPK")) {
		t.Errorf("T0000001's sign-in once its keys are its own: T0000001.TPK v%d, T0000001.TAK v%d; want both rotated and sent", version("T0000001.TPK"), version("T0000001.TAK"))
	}

	// Every ID T0000009's PIK could have is named by another terminal.
	apply(registry.Change{Op: registry.OpTerminalRegister, Terminal: &registry.Terminal{ID: "T4300001", MerchantID: "000000000000001", Kind: registry.KindPOS,
		Keys: registry.KeyRefs{TMK: "T0000009.PIK", TPK: "T0000009.TPK", PINMode: registry.PINModeTPK}}})
	t9 := &Terminal{TID: "T0000009", MID: "000000000000009", TMK: tmk, batch: "000007",
		TPDU: TPDU{0x60, 0, 3, 0, 0}, Header: Header{0x60, 0x31, 0, 0x31, 0, 0}}
	if ans := signIn(t9); ans.Str(39) != RCNoMasterKey {
		t.Errorf("T0000009's sign-in with no PIK ID of its own: %s; want %s", Summary(ans), RCNoMasterKey)
	}
	if version("T0000009.TPK")+version("T0000009.PIK")+version("T0000009.TAK")+version("T0000009.MAK") != 0 {
		t.Error("T0000009's refused sign-in made keys")
	}
}
