package payshield_test

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/payshield"
)

// TestClientRefusesCUPECBScheme: M6 and M8 compute the key's own MAC (retail here);
// no payShield host command computes the UnionPay "ECB" MAC that a cup terminal's
// requests carry by default. The client ignored MACRequest.Scheme: asked for the ECB
// MAC it answered the retail MAC of the data (not the software HSM's ECB MAC, which
// the terminal checks), and it compared a terminal's correct ECB MAC with the retail
// MAC (ErrMACMismatch). It now refuses the scheme (ErrKeyUsage, saying why) and sends
// neither command.
func TestClientRefusesCUPECBScheme(t *testing.T) {
	var macs atomic.Int64
	addr, _ := serve(t, payshield.ServerOptions{BeforeCommand: func(_ context.Context, code string) {
		if code == "M6" || code == "M8" {
			macs.Add(1)
		}
	}})
	e := newEnv(t, payshield.ClientOptions{Addrs: []string{addr}})
	req := hsm.MACRequest{Key: hsm.KeyRef{ID: "T0000002.TAK"}, Data: []byte("0200 cup request"), Scheme: hsm.MACSchemeCUPECB}
	ecb, err := e.sw.GenerateMAC(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.client.GenerateMAC(e.ctx, req)
	if !errors.Is(err, hsm.ErrKeyUsage) {
		t.Errorf("GenerateMAC with scheme %s: %X (the ECB MAC is %X, equal: %v), err %v; want ErrKeyUsage", req.Scheme, got, ecb, bytes.Equal(got, ecb), err)
	}
	if err := e.client.VerifyMAC(e.ctx, req, ecb); !errors.Is(err, hsm.ErrKeyUsage) {
		t.Errorf("VerifyMAC of the correct ECB MAC: %v; want ErrKeyUsage", err)
	}
	if err := e.client.VerifyMAC(e.ctx, hsm.MACRequest{Key: req.Key, Data: req.Data, Scheme: "bogus"}, ecb); !errors.Is(err, hsm.ErrInput) {
		t.Errorf("VerifyMAC with an unknown scheme: %v; want ErrInput", err)
	}
	if n := macs.Load(); n != 0 {
		t.Errorf("%d M6/M8 command(s) sent for a scheme the HSM does not compute, want none", n)
	}
	// The key's own MAC is unchanged.
	own := hsm.MACRequest{Key: req.Key, Data: req.Data}
	m, err := e.client.GenerateMAC(e.ctx, own)
	want, _ := e.sw.GenerateMAC(e.ctx, own)
	if err != nil || !bytes.Equal(m, want) {
		t.Fatalf("retail MAC: %X, %v; want %X", m, err, want)
	}
}
