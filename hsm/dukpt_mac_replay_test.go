package hsm_test

import (
	"errors"
	"testing"

	"github.com/switchyard/switchyard/hsm"
)

// TestDUKPTMACReplayRefused: a request's DUKPT MAC takes its KSN's counter as a PIN
// block does. The ANSI X9.24-1 Annex A.4 request MAC verifies once; the same request
// again (same KSN, no PIN block) is ErrReplay, also with a wrong MAC (refused before
// any MAC is computed: the answer says nothing of the MAC); a wrong MAC under a new
// KSN burns nothing; a PIN block under a KSN a MAC took is a replay too; and the
// counter is the key store's, on disk: after a restart the replay is still refused.
// Until 6 December 2026 only PIN blocks were checked and the replay verified.
func TestDUKPTMACReplayRefused(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	data := []byte("4012345678909D987")
	good := hx(t, "9CCC78173FC4FB64")
	req := hsm.MACRequest{KSN: "FFFF9876543210E00001", Data: data}
	if err := e.hsm.VerifyMAC(e.ctx, req, good); err != nil {
		t.Fatalf("request MAC: %v", err)
	}
	if err := e.hsm.VerifyMAC(e.ctx, req, good); !errors.Is(err, hsm.ErrReplay) {
		t.Fatalf("the same request again: %v; want ErrReplay", err)
	}
	if err := e.hsm.VerifyMAC(e.ctx, req, hx(t, "0000000000000000")); !errors.Is(err, hsm.ErrReplay) {
		t.Fatalf("the same KSN with a wrong MAC: %v; want ErrReplay (before the MAC is computed)", err)
	}
	// The response MAC of the same KSN is the switch's to make, not a replay.
	if _, err := e.hsm.GenerateMAC(e.ctx, hsm.MACRequest{KSN: req.KSN, Response: true, Data: data}); err != nil {
		t.Fatalf("response MAC: %v", err)
	}
	// A wrong MAC does not take the counter: the device's next request still goes.
	next := hsm.MACRequest{KSN: "FFFF9876543210E00003", Data: data}
	if err := e.hsm.VerifyMAC(e.ctx, next, good); !errors.Is(err, hsm.ErrMACMismatch) {
		t.Fatalf("wrong MAC under a new KSN: %v; want ErrMACMismatch", err)
	}
	m, err := e.hsm.GenerateMAC(e.ctx, next)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.hsm.VerifyMAC(e.ctx, next, m); err != nil {
		t.Fatalf("the right MAC under the new KSN after a wrong one: %v", err)
	}
	// A PIN block under a KSN whose counter a MAC took is refused as a replay.
	_, err = e.hsm.TranslatePIN(e.ctx, hsm.TranslatePINRequest{KSN: "FFFF9876543210E00001", PINBlock: hx(t, "1B9C1845EB993A7A"),
		PAN: "4012345678909", Dest: hsm.KeyRef{ID: "demo.ZPK"}})
	if !errors.Is(err, hsm.ErrReplay) {
		t.Fatalf("a PIN block under a KSN a MAC took: %v; want ErrReplay", err)
	}
	// The counter is the key store's (keys.Store, in its Badger, synced when
	// advanced): a restart does not forget it.
	e.reopen(hsm.Options{})
	if err := e.hsm.VerifyMAC(e.ctx, next, m); !errors.Is(err, hsm.ErrReplay) {
		t.Fatalf("the request MAC again after a restart: %v; want ErrReplay", err)
	}
}
