package payshield_test

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/payshield"
)

// Through a payShield, which does not compare key values for the switch, an ECB
// import (A6) whose KCV is that of a key stored under another ID is refused by the
// key store: a TPK's ECB export (A0 with export under the TMK, as in a key change)
// does not come back as a TAK, whose M6 would encipher chosen PIN blocks under the
// TPK. The same key re-sent as a new version of its own ID comes in.
func TestClientECBImportOfAStoredValue(t *testing.T) {
	addr, _ := serve(t, payshield.ServerOptions{})
	e := newEnv(t, payshield.ClientOptions{Addrs: []string{addr}})
	ctx := e.ctx
	tmk := hsm.KeyRef{ID: "T0000001.TMK"}
	gen, err := e.client.GenerateKey(ctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000001.TPK8", Type: hsm.TPK, Owner: "T0000001"},
		Export: &hsm.ExportSpec{KEK: tmk, Format: hsm.ExportECB}})
	if err != nil {
		t.Fatal(err)
	}
	ecb, _, _ := strings.Cut(gen.Exported, ":")
	_, err = e.client.ImportKey(ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000001.TAK8", Type: hsm.TAK, Owner: "T0000001"}, KEK: tmk, ECB: ecb, KCV: gen.KCV})
	if err == nil {
		enc := unhex(ecb)
		tpkHex := strings.ToUpper(hex.EncodeToString(append(tdesECB(t, demoHex("T0000001.TMK"), enc[:8], true), tdesECB(t, demoHex("T0000001.TMK"), enc[8:], true)...)))
		clearBlock := unhex("041274EDCBA9876F")
		m, merr := e.client.GenerateMAC(ctx, hsm.MACRequest{Key: hsm.KeyRef{ID: "T0000001.TAK8"}, Data: clearBlock})
		t.Errorf("A6 stored the TPK's ECB form as a TAK: its M6 of the clear PIN block %X is %X (%v), the block enciphered under the TPK: %X",
			clearBlock, m, merr, tdesECB(t, tpkHex, clearBlock, false))
	} else if !errors.Is(err, hsm.ErrPolicy) || !strings.Contains(err.Error(), "T0000001.TPK8") {
		t.Errorf("A6 of the TPK's ECB form as a TAK: %v, want ErrPolicy naming T0000001.TPK8", err)
	}
	re, err := e.client.ImportKey(ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000001.TPK8", Type: hsm.TPK, Owner: "T0000001"}, KEK: tmk, ECB: ecb, KCV: gen.KCV})
	if err != nil || re.Ref.Version != 2 || re.KCV != gen.KCV {
		t.Fatalf("A6 of the TPK's ECB form as a new version of T0000001.TPK8: %+v, %v", re, err)
	}
}

// TestClientFormKeyRefusesAStoredValue: as the software HSM, the client has the key
// store refuse a key formed from components whose KCV is that of a key stored under
// another ID (hsm.UniqueValue): the same two components entered as a ZMK and then
// as a TAK made one value serve both. The refusal names the stored key; the key
// formed again as a new version of its own ID comes in.
func TestClientFormKeyRefusesAStoredValue(t *testing.T) {
	addr, _ := serve(t, payshield.ServerOptions{})
	e := newEnv(t, payshield.ClientOptions{Addrs: []string{addr}})
	c1 := unhex("E4452875AABEC56C9278CE44D4932F84")
	c2 := unhex("503E787826667AEDD3D39E5A0AC725AC")
	form := func(id string, kt hsm.KeyType) (hsm.KeyResult, error) {
		return e.client.FormKey(e.ctx, hsm.FormKeyRequest{KeySpec: hsm.KeySpec{ID: id, Type: kt, Owner: "bank-a"}, Components: [][]byte{c1, c2}})
	}
	zmk, err := form("bank-a.ZMK", hsm.ZMK)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := form("bank-a.TAK", hsm.TAK); !errors.Is(err, hsm.ErrPolicy) || !strings.Contains(err.Error(), "bank-a.ZMK v1") {
		t.Errorf("FK of the ZMK's components as a TAK: %+v, %v; want ErrPolicy naming bank-a.ZMK v1", res, err)
	}
	if re, err := form("bank-a.ZMK", hsm.ZMK); err != nil || re.Ref.Version != 2 || re.KCV != zmk.KCV {
		t.Fatalf("FK of the ZMK's components as a new version of bank-a.ZMK: %+v, %v", re, err)
	}
}
