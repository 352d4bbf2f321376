package payshield_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/payshield"
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
)

// TestVariantSimulatorVectors sends the simulator's request frames to hsm serve
// under the test LMK and compares the answers.
func TestVariantSimulatorVectors(t *testing.T) {
	addr := serveVariant(t)
	for _, tc := range []struct{ code, req, want string }{
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
	store, err := keys.NewStore(db, keys.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := hsm.WithActor(context.Background(), "test")
	now := time.Now().UTC()
	for _, k := range []struct {
		id, tok, kcv string
		typ          hsm.KeyType
	}{{"sim.TPK", simTPK, "070753", hsm.TPK}, {"sim.ZPK", simZPK, "6F1E3F", hsm.ZPK}, {"sim.ZMK", simZMK, "B70AD2", hsm.ZMK}} {
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
	for _, id := range []string{"sim.TPK", "sim.ZPK", "sim.ZMK"} {
		if _, err := c.KCV(ctx, hsm.KeyRef{ID: id}); err != nil {
			t.Fatalf("BU %s: %v", id, err)
		}
	}
}
