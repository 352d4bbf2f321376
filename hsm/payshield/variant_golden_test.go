package payshield_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/payshield"
	"github.com/switchyard/switchyard/hsm/pinblock"
	"github.com/switchyard/switchyard/keys"
)

// Request/answer pairs of the open-source Thales simulator (nickntg's
// ThalesSimulatorLibrary, ThalesCore.Tests/HostCommandTests.vb) under the Thales
// test LMK, re-derived here against hsm serve --lmk-scheme variant (values only).
// The simulator's BU answers a 16-digit check value, as hsm serve does under a
// variant LMK; its CB reports the PIN length (04) where hsm serve reports 00.
var (
	simZMK = "U93CB819F8FEE4F78BF9C4CDD84750DB1" // BU 00: check value B70AD25C94548822
	simZPK = "U1EF828AA8F6B80EB83E19FBC373F3A85" // BU 01: 6F1E3F74F826B7EB
	simTPK = "U8463435FC4B4DAA0C49025272C29B12C" // A8/FC: KCV 070753
	simZP2 = "U0E07CDC0161A0DE3B5AA44DF227EC9DE" // A6 result: KCV ABDEBC
	simCVK = "U9B4934384B19946B040CD702B4D58145" // CW: the Visa test CVK A|B
	simBDK = "U8E3D3E2FD5919657F05A1AA90D32A014" // CI: the X9.24 test BDK
	simZP3 = "U9D961F6AF1D24B38AB37B320022FF57D" // CI: the destination ZPK
)

// TestVariantSimulatorVectors sends the simulator's request frames to hsm serve
// under the test LMK and compares the answers.
func TestVariantSimulatorVectors(t *testing.T) {
	addr := serveVariant(t)
	for _, tc := range []struct{ code, req, want string }{
		// CW/CY with the Visa test CVK pair (402): CVV 561; 111 does not verify.
		{"CW", simCVK + "4123456789012345;8701101", "561"},
		{"CY", simCVK + "561" + "4123456789012345;8701101", ""},
		// CI: the X9.24-1 A.4 PIN block under the test BDK to a ZPK; the simulator
		// answers 00 04 7D26134E85E7DADF 01.
		{"CI", simBDK + simZP3 + "605" + "FFFF9876543210E00001" + "1B9C1845EB993A7A" + "01" + "401234567890", "007D26134E85E7DADF01"},
		{"BU", "001" + simZMK, "B70AD25C94548822"},
		{"BU", "011" + simZPK, "6F1E3F74F826B7EB"},
		{"BU", "021" + simTPK, "070753"},
		{"BU", "011" + simZP2, "ABDEBC"},
		// CA: TPK, ZPK, max PIN length 12, PIN block, format 01 to 01, account
		// 550000025321; the simulator answers 00 04 91DDDA0A7C12CFAA 01.
		{"CA", simTPK + simZPK + "12" + "6428EB94035AF53B" + "01" + "01" + "550000025321", "0091DDDA0A7C12CFAA01"},
	} {
		r := raw(t, addr, "0001", tc.code, []byte(tc.req))
		if r.ErrCode != payshield.CodeOK || !bytes.HasPrefix(r.Body, []byte(tc.want)) {
			t.Errorf("%s %s: %s %s %q, want 00 %s", tc.code, tc.req, r.Code, r.ErrCode, r.Body, tc.want)
		}
	}
	if r := raw(t, addr, "0002", "CY", []byte(simCVK+"111"+"4123456789012345;8701101")); r.ErrCode != payshield.CodeVerifyFailed {
		t.Errorf("CY 111: %+v, want 01 as the simulator", r)
	}
}

// TestClientSimulatorVectors: the client, with the simulator's tokens in its key
// store, builds the CA and BU frames the simulator answers as above.
func TestClientSimulatorVectors(t *testing.T) {
	addr := serveVariant(t)
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	store, err := keys.NewStore(db, keys.Options{Demo: true}) // the X9.24 BDK and Visa CVK are public test keys
	if err != nil {
		t.Fatal(err)
	}
	ctx := hsm.WithActor(context.Background(), "test")
	now := time.Now().UTC()
	// The simulator publishes no check value of ZP3: the record takes hsm serve's.
	zp3KCV := string(raw(t, addr, "0009", "BU", []byte("011"+simZP3)).Body)[:6]
	for _, k := range []struct {
		id, tok, kcv string
		typ          hsm.KeyType
	}{{"sim.TPK", simTPK, "070753", hsm.TPK}, {"sim.ZPK", simZPK, "6F1E3F", hsm.ZPK}, {"sim.ZMK", simZMK, "B70AD2", hsm.ZMK},
		{"sim.CVK", simCVK, "08D7B4", hsm.CVK}, {"sim.BDK", simBDK, "08D7B4", hsm.BDK}, {"sim.ZP3", simZP3, zp3KCV, hsm.ZPK}} {
		rec := hsm.KeyRecord{ID: k.id, Version: 1, Type: k.typ, Algorithm: hsm.TDES2KEY, KCV: k.kcv, KCVMethod: "tdes",
			Status: hsm.StatusActive, ActivateAt: now, CreatedAt: now, CreatedBy: "test", Block: k.tok}
		if err := store.Put(ctx, hsm.PutRequest{Record: rec, Event: hsm.AuditEvent{Actor: "test", Action: "import", KeyID: k.id, Version: 1, KeyType: string(k.typ), KCV: k.kcv}}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := payshield.NewClient(payshield.ClientOptions{Addrs: []string{addr}, Store: store, HealthEvery: -1, LMKScheme: payshield.LMKVariant})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	out, err := c.TranslatePIN(ctx, hsm.TranslatePINRequest{Source: hsm.KeyRef{ID: "sim.TPK"}, PINBlock: unhex("6428EB94035AF53B"),
		Dest: hsm.KeyRef{ID: "sim.ZPK"}, PAN: "45500000253210"})
	if err != nil || !bytes.Equal(out, unhex("91DDDA0A7C12CFAA")) {
		t.Fatalf("CA: %X, %v; want 91DDDA0A7C12CFAA", out, err)
	}
	// CW with the CVK (the simulator's CW vector) and G0 with the BDK to ZP3 (the
	// simulator's CI vector: the client sends G0, hsm serve answers both alike).
	if cvv, err := c.GenerateCVV(ctx, hsm.CVVRequest{Key: hsm.KeyRef{ID: "sim.CVK"}, PAN: "4123456789012345", Expiry: "8701", ServiceCode: "101"}); err != nil || cvv != "561" {
		t.Fatalf("CW: %s, %v; want 561", cvv, err)
	}
	out, err = c.TranslatePIN(ctx, hsm.TranslatePINRequest{Source: hsm.KeyRef{ID: "sim.BDK"}, KSN: "FFFF9876543210E00001", SourceFormat: pinblock.Format0,
		PINBlock: unhex("1B9C1845EB993A7A"), Dest: hsm.KeyRef{ID: "sim.ZP3"}, DestFormat: pinblock.Format0, PAN: "4012345678909"})
	if err != nil || !bytes.Equal(out, unhex("7D26134E85E7DADF")) {
		t.Fatalf("G0: %X, %v; want 7D26134E85E7DADF", out, err)
	}
	for _, id := range []string{"sim.TPK", "sim.ZPK", "sim.ZMK"} {
		if _, err := c.KCV(ctx, hsm.KeyRef{ID: id}); err != nil {
			t.Fatalf("BU %s: %v", id, err)
		}
	}
}
