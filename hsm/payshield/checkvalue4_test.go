package payshield_test

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/payshield"
	"github.com/switchyard/switchyard/keys"
)

// serveHandler answers the payShield host protocol on a loopback port with h, one
// goroutine per connection, until the test ends.
func serveHandler(t *testing.T, h func(context.Context, payshield.Request) payshield.Response) string {
	t.Helper()
	return scriptedHSM(t, func(req payshield.Request) []byte {
		out, _ := payshield.AppendResponse(nil, h(context.Background(), req))
		return out
	})
}

// demoTMK is the clear value of the demo terminals' TMK (keys.demo: T0000001.TMK).
const demoTMK = "2315208C9110AD40F5B83C4A6E1D7F92"

// TestClientGenerateKeyCheckValue4: a TDES key generated with an ECB export (a cup
// sign-in's working keys) comes with the 4-byte check value UnionPay terminals
// check: the first 8 digits of the key encrypting zeros, from BU's 16-digit check
// value, under a key-block LMK and a variant LMK. The key is found by decrypting
// its export under the TMK's clear value, apart from the server. The client left
// CheckValue4 empty, and every cup sign-in on a payShield failed.
func TestClientGenerateKeyCheckValue4(t *testing.T) {
	for _, scheme := range []string{payshield.LMKKeyBlock, payshield.LMKVariant} {
		t.Run(scheme, func(t *testing.T) {
			addr := ""
			if scheme == payshield.LMKVariant {
				addr = serveVariant(t)
			} else {
				addr, _ = serve(t, payshield.ServerOptions{})
			}
			e := newEnv(t, payshield.ClientOptions{Addrs: []string{addr}, LMKScheme: scheme})
			types := []hsm.KeyType{hsm.TPK, hsm.TAK, hsm.TDK}
			if scheme == payshield.LMKVariant {
				types = types[:2] // a TDK is no key the variant LMK exports in ECB form (policy)
			}
			for _, typ := range types {
				id := "T0000001." + string(typ)
				res, err := e.client.GenerateKey(e.ctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: id, Type: typ, Owner: "T0000001"},
					Export: &hsm.ExportSpec{KEK: hsm.KeyRef{ID: "T0000001.TMK"}, Format: hsm.ExportECB}})
				if err != nil {
					t.Fatalf("%s: %v", id, err)
				}
				enc := unhex(strings.SplitN(res.Exported, ":", 2)[0])
				if len(enc) != 16 {
					t.Fatalf("%s: export %q is not a 16-byte ECB key", id, res.Exported)
				}
				key := append(tdesECB(t, demoTMK, enc[:8], true), tdesECB(t, demoTMK, enc[8:], true)...)
				z := tdesECB(t, strings.ToUpper(hex.EncodeToString(key)), make([]byte, 8), false)
				want := strings.ToUpper(hex.EncodeToString(z[:4]))
				if res.CheckValue4 != want {
					t.Errorf("%s: CheckValue4 %q, the exported key gives %s", id, res.CheckValue4, want)
				}
				if res.KCV != want[:6] {
					t.Errorf("%s: KCV %s, the exported key gives %s", id, res.KCV, want[:6])
				}
			}
		})
	}
}

// TestClientGenerateKeyShortCheckValue: a HSM that answers BU's 16-digit check
// value with 6 digits (restricted by its security settings) or with 6 digits padded
// with zeros gives no 4-byte check value: the key is stored (the ASCII key change
// needs none) with CheckValue4 empty, never the padding taken for one. A 16-digit
// value of another key (not starting with A1's KCV) fails the generation and
// nothing is stored. A generation without an ECB export does not ask BU.
func TestClientGenerateKeyShortCheckValue(t *testing.T) {
	srv, err := payshield.NewServer(keys.DemoLMK(), payshield.ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var answer atomic.Value // "", "6", "pad" or "other": how the fake HSM answers BU
	answer.Store("")
	var bus atomic.Int64
	addr := serveHandler(t, func(ctx context.Context, req payshield.Request) payshield.Response {
		resp := srv.Handle(ctx, req)
		if req.Code != "BU" || resp.ErrCode != payshield.CodeOK {
			return resp
		}
		bus.Add(1)
		switch answer.Load().(string) {
		case "6":
			resp.Body = resp.Body[:6]
		case "pad":
			resp.Body = append(append([]byte(nil), resp.Body[:6]...), "0000000000"...)
		case "other":
			resp.Body = []byte("0123456789ABCDEF")
		}
		return resp
	})
	e := newEnv(t, payshield.ClientOptions{Addrs: []string{addr}})
	ecb := &hsm.ExportSpec{KEK: hsm.KeyRef{ID: "T0000001.TMK"}, Format: hsm.ExportECB}
	gen := func() (hsm.KeyResult, error) {
		return e.client.GenerateKey(e.ctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000001.TDK", Type: hsm.TDK, Owner: "T0000001"}, Export: ecb})
	}
	for _, a := range []string{"6", "pad"} {
		answer.Store(a)
		res, err := gen()
		if err != nil || res.CheckValue4 != "" || res.Exported == "" {
			t.Errorf("BU answering %s: %+v, %v; want the key stored without a 4-byte check value", a, res, err)
		}
	}
	answer.Store("other")
	before, _, _ := e.store.NextVersion(e.ctx, "T0000001.TDK")
	if _, err := gen(); !errors.Is(err, hsm.ErrKCVMismatch) {
		t.Errorf("BU answering another key's check value: %v; want ErrKCVMismatch", err)
	}
	if after, _, _ := e.store.NextVersion(e.ctx, "T0000001.TDK"); after != before {
		t.Errorf("BU answering another key's check value: a key was stored (next version %d, was %d)", after, before)
	}
	answer.Store("")
	n := bus.Load()
	res, err := e.client.GenerateKey(e.ctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: "x.ZPK", Type: hsm.ZPK}})
	if err != nil || res.CheckValue4 != "" || bus.Load() != n {
		t.Errorf("generate without export: %+v, %v, %d BU sent; want no check value and no BU", res, err, bus.Load()-n)
	}
}

// TestClientRefusesSingleLengthGenerate: a payShield makes no TDES-2KEY key of
// equal halves (KeySpec.SingleLength, cup sign-in schemes 001 and 003). The client
// ignored the flag and made a double-length key, whose first half the terminal then
// took for its 8-byte key; it now refuses (ErrPolicy) and sends no A0.
func TestClientRefusesSingleLengthGenerate(t *testing.T) {
	var a0 atomic.Int64
	addr, _ := serve(t, payshield.ServerOptions{BeforeCommand: func(_ context.Context, code string) {
		if code == "A0" {
			a0.Add(1)
		}
	}})
	e := newEnv(t, payshield.ClientOptions{Addrs: []string{addr}})
	_, err := e.client.GenerateKey(e.ctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000001.TAK", Type: hsm.TAK, Owner: "T0000001", SingleLength: true},
		Export: &hsm.ExportSpec{KEK: hsm.KeyRef{ID: "T0000001.TMK"}, Format: hsm.ExportECB}})
	if !errors.Is(err, hsm.ErrPolicy) || !strings.Contains(err.Error(), "004") {
		t.Errorf("single-length generate: %v; want ErrPolicy pointing to scheme 004", err)
	}
	if n := a0.Load(); n != 0 {
		t.Errorf("%d A0 sent for a single-length key", n)
	}
}
