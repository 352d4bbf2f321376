package payshield_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/payshield"
	"github.com/switchyard/switchyard/keys"
)

// laxHSM is hsm serve's handler behind a loopback listener, except that it answers
// A6 with the check value 123456 whatever key it imported: a HSM that does not read
// the expected KCV field of A6 (whose layout is this project's reading).
func laxHSM(t *testing.T) string {
	t.Helper()
	srv, err := payshield.NewServer(keys.DemoLMK(), payshield.ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return scriptedHSM(t, func(req payshield.Request) []byte {
		resp := srv.Handle(context.Background(), req)
		if req.Code == "A6" && resp.ErrCode == payshield.CodeOK && len(resp.Body) >= 6 {
			resp.Body = append(append([]byte(nil), resp.Body[:len(resp.Body)-6]...), "123456"...)
		}
		out, _ := payshield.AppendResponse(nil, resp)
		return out
	})
}

// TestClientImportChecksKCV: the payShield client checks an imported key's check
// value itself and, as the software HSM, wants one for every ECB key. Before 6
// December 2026 it stored whatever A7 returned (a HSM that ignored the KCV field
// imported a wrong, damaged or spliced key unchecked), and sent an ECB key without
// a KCV to the HSM (the software HSM refuses it: the KCV is the one guard against a
// key spliced from halves of ECB forms).
func TestClientImportChecksKCV(t *testing.T) {
	m, err := payshield.NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, payshield.ClientOptions{Addrs: []string{laxHSM(t)}, Metrics: m})
	ctx := e.ctx
	tmk := hsm.KeyRef{ID: "T0000001.TMK"}
	gen, err := e.client.GenerateKey(ctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000001.TAK", Type: hsm.TAK},
		Export: &hsm.ExportSpec{KEK: tmk, Format: hsm.ExportECB}})
	if err != nil {
		t.Fatal(err)
	}
	ecb, kcv, _ := strings.Cut(gen.Exported, ":")

	// The HSM answers KCV 123456 for a key whose KCV is gen.KCV: not stored.
	_, err = e.client.ImportKey(ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000001.TPK", Type: hsm.TPK}, KEK: tmk, ECB: ecb, KCV: kcv})
	if !errors.Is(err, hsm.ErrKCVMismatch) {
		t.Fatalf("A6 answered with another KCV: %v, want ErrKCVMismatch", err)
	}
	if rec, err := e.store.Key(ctx, hsm.KeyRef{ID: "T0000001.TPK"}); err == nil && rec.KCV == "123456" {
		t.Fatalf("stored %s with the HSM's KCV %s", rec.Ref(), rec.KCV)
	}
	// The colon form is read by the client too.
	if _, err = e.client.ImportKey(ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000001.TPK", Type: hsm.TPK}, KEK: tmk, ECB: gen.Exported}); !errors.Is(err, hsm.ErrKCVMismatch) {
		t.Fatalf("A6 HEX:KCV answered with another KCV: %v, want ErrKCVMismatch", err)
	}

	// An ECB key without a KCV is refused before anything is sent.
	_, err = e.client.ImportKey(ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000001.XTPK", Type: hsm.TPK, Owner: "T0000001"}, KEK: tmk, ECB: ecb})
	if !errors.Is(err, hsm.ErrInput) {
		t.Fatalf("A6 of an ECB key without KCV: %v, want ErrInput", err)
	}
	if n := testutil.ToFloat64(m.Errors.WithLabelValues("A6", payshield.CodeInvalidInput)); n != 0 {
		t.Fatalf("an ECB key without KCV was sent to the HSM (%v error 15)", n)
	}
}

// TestClientKEKStrength: the client refuses, before sending A0, A6 or A8, to move a
// key under a weaker KEK (hsm.CheckKEKStrength), whatever the HSM would do: an
// AES-256 key neither generated for export, nor exported, nor imported under the
// demo TDES-2KEY TMK.
func TestClientKEKStrength(t *testing.T) {
	m, err := payshield.NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := serve(t, payshield.ServerOptions{})
	e := newEnv(t, payshield.ClientOptions{Addrs: []string{addr}, Metrics: m})
	ctx := e.ctx
	tmk := hsm.KeyRef{ID: "T0000001.TMK"}
	spec := hsm.KeySpec{ID: "aes.ZPK", Type: hsm.ZPK, Algorithm: hsm.AES256}
	if _, err := e.client.GenerateKey(ctx, hsm.GenerateKeyRequest{KeySpec: spec, Export: &hsm.ExportSpec{KEK: tmk, Format: hsm.ExportTR31}}); !errors.Is(err, hsm.ErrPolicy) {
		t.Fatalf("A0 of an AES-256 key exported under a TDES TMK: %v, want ErrPolicy", err)
	}
	if _, err := e.client.GenerateKey(ctx, hsm.GenerateKeyRequest{KeySpec: spec}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.ExportKey(ctx, hsm.ExportKeyRequest{Key: hsm.KeyRef{ID: "aes.ZPK"}, ExportSpec: hsm.ExportSpec{KEK: tmk, Format: hsm.ExportTR31}}); !errors.Is(err, hsm.ErrPolicy) {
		t.Fatalf("A8 of an AES-256 key under a TDES TMK: %v, want ErrPolicy", err)
	}
	if _, err := e.client.ImportKey(ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "in.ZPK", Type: hsm.ZPK, Algorithm: hsm.AES256}, KEK: tmk,
		TR31: "D0112P0AE00N0000" + strings.Repeat("0", 96)}); !errors.Is(err, hsm.ErrPolicy) {
		t.Fatalf("A6 of an AES-256 key under a TDES TMK: %v, want ErrPolicy", err)
	}
	for _, cmd := range []string{"A0", "A6", "A8"} {
		if n := testutil.ToFloat64(m.Errors.WithLabelValues(cmd, payshield.CodeFormatDisabled)); n != 0 {
			t.Errorf("%s sent and refused by the HSM %v time(s)", cmd, n)
		}
	}
}
