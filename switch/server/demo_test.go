package server

import (
	"context"
	"testing"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/termclient"
)

// After the README's `keys rotate --id T0000001.TPK` (or a terminal's key change) the
// demo data directory still starts: the rotated key is the operator's, not a clash
// with the demo key (issue 12, item 5). Traffic without PIN still flows.
func TestDemoRestartsAfterKeyRotation(t *testing.T) {
	dir := t.TempDir()
	s := start(t, demoConfig(t, dir), nil)
	ctx := hsm.WithActor(context.Background(), "test")
	for _, spec := range []hsm.KeySpec{
		{ID: "T0000001.TPK", Type: hsm.TPK, Owner: "T0000001"},
		{ID: "T0000002.TAK", Type: hsm.TAK, MACAlgorithm: hsm.MACRetail, Owner: "T0000002"},
	} {
		if _, err := s.HSM.GenerateKey(ctx, hsm.GenerateKeyRequest{KeySpec: spec}); err != nil {
			t.Fatalf("rotate %s: %v", spec.ID, err)
		}
	}
	if err := s.Drain(); err != nil {
		t.Fatal(err)
	}
	s2 := start(t, demoConfig(t, dir), nil) // once failed: "T0000001.TPK is in the store with KCV ..."
	rec, err := s2.Keys.Key(ctx, hsm.KeyRef{ID: "T0000001.TPK"})
	if err != nil || rec.Version != 2 {
		t.Fatalf("current T0000001.TPK after restart: version %d, %v (want the rotated version 2)", rec.Version, err)
	}
	c := dial(t, s2, "ascii", message.DialectASCII)
	if r := send(t, c, message.DialectASCII, purchase("4761739001010119", 1000)); r.RC != "00" {
		t.Fatalf("purchase after restart: RC %s %s", r.RC, r.Reason)
	}
}

// After the README's `zone-key-change demo` and a restart, PINs are still verified:
// the demo issuer starts on the initial zone key, and the switch gives it its current
// one (a trial saw every PIN declined 55 after a restart).
func TestDemoZoneKeyAfterRestart(t *testing.T) {
	dir := t.TempDir()
	s := start(t, demoConfig(t, dir), nil)
	if _, err := s.ChangeZoneKey(context.Background(), "demo", "test"); err != nil {
		t.Fatal(err)
	}
	if err := s.Drain(); err != nil {
		t.Fatal(err)
	}
	s2 := start(t, demoConfig(t, dir), nil)
	c := dial(t, s2, "ascii", message.DialectASCII)
	tx := purchase("4761739001010119", 1000)
	var err error
	if tx.PINBlock, err = termclient.PINBlockTPK("C1D0F8FB4958670DBA40AB1F3752EF0D", "1234", tx.PAN); err != nil {
		t.Fatal(err)
	}
	if r := send(t, c, message.DialectASCII, tx); r.RC != "00" {
		t.Fatalf("a PIN purchase after a zone key change and a restart: RC %s %s", r.RC, r.Reason)
	}
}
