package payshield_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/payshield"
)

// TestClientDUKPTMACReplayRefused: the payShield client checks a DUKPT request MAC's
// KSN counter as it does a PIN block's: the X9.24-1 Annex A.4 request MAC verifies
// once (M8); the same request again, with its MAC or a wrong one, is ErrReplay and no
// M8 is sent; a wrong MAC under a new KSN burns nothing. Until 6 December 2026 the
// replay was sent to the HSM, which keeps no counters, and verified.
func TestClientDUKPTMACReplayRefused(t *testing.T) {
	var m8 atomic.Int64
	addr, _ := serve(t, payshield.ServerOptions{BeforeCommand: func(_ context.Context, code string) {
		if code == "M8" {
			m8.Add(1)
		}
	}})
	e := newEnv(t, payshield.ClientOptions{Addrs: []string{addr}})
	data := []byte("4012345678909D987")
	good := unhex("9CCC78173FC4FB64")
	req := hsm.MACRequest{KSN: "FFFF9876543210E00001", Data: data}
	if err := e.client.VerifyMAC(e.ctx, req, good); err != nil {
		t.Fatalf("request MAC: %v", err)
	}
	sent := m8.Load()
	if err := e.client.VerifyMAC(e.ctx, req, good); !errors.Is(err, hsm.ErrReplay) {
		t.Fatalf("the same request again: %v; want ErrReplay", err)
	}
	if err := e.client.VerifyMAC(e.ctx, req, unhex("0000000000000000")); !errors.Is(err, hsm.ErrReplay) {
		t.Fatalf("the same KSN with a wrong MAC: %v; want ErrReplay", err)
	}
	if n := m8.Load() - sent; n != 0 {
		t.Errorf("%d M8 sent for replayed KSNs, want none", n)
	}
	next := hsm.MACRequest{KSN: "FFFF9876543210E00003", Data: data}
	if err := e.client.VerifyMAC(e.ctx, next, good); !errors.Is(err, hsm.ErrMACMismatch) {
		t.Fatalf("wrong MAC under a new KSN: %v; want ErrMACMismatch", err)
	}
	m, err := e.client.GenerateMAC(e.ctx, next)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.client.VerifyMAC(e.ctx, next, m); err != nil {
		t.Fatalf("the right MAC under the new KSN after a wrong one: %v", err)
	}
}
