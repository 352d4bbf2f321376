package hsm_test

import (
	"errors"
	"testing"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/cvv"
)

func TestCVV(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	ref := hsm.KeyRef{ID: "demo.CVK"}
	got, err := e.hsm.GenerateCVV(e.ctx, hsm.CVVRequest{Key: ref, PAN: pan, Expiry: "2912", ServiceCode: "201"})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := cvv.Compute(hx(t, demoCVK), pan, "2912", "201")
	if got != want {
		t.Fatalf("CVV %s, want %s", got, want)
	}
	if err := e.hsm.VerifyCVV(e.ctx, hsm.CVVRequest{Key: ref, PAN: pan, Expiry: "2912", ServiceCode: "201"}, got); err != nil {
		t.Fatal(err)
	}
	wrong := "000"
	if got == wrong {
		wrong = "001"
	}
	if err := e.hsm.VerifyCVV(e.ctx, hsm.CVVRequest{Key: ref, PAN: pan, Expiry: "2912", ServiceCode: "201"}, wrong); !errors.Is(err, hsm.ErrCVVMismatch) {
		t.Fatalf("wrong CVV: %v", err)
	}
	// The published Visa test CVK pair and CVV (the demo BDK's value too).
	visa := e.formShared(hsm.KeySpec{ID: "visa.CVK", Type: hsm.CVK}, "0123456789ABCDEFFEDCBA9876543210")
	if err := e.hsm.VerifyCVV(e.ctx, hsm.CVVRequest{Key: visa, PAN: "4123456789012345", Expiry: "8701", ServiceCode: "101"}, "561"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.hsm.GenerateCVV(e.ctx, hsm.CVVRequest{Key: hsm.KeyRef{ID: "demo.ZPK"}, PAN: pan, Expiry: "2912", ServiceCode: "201"}); !errors.Is(err, hsm.ErrKeyUsage) {
		t.Fatalf("CVV with a ZPK: %v", err)
	}
	if _, err := e.hsm.GenerateCVV(e.ctx, hsm.CVVRequest{Key: ref, PAN: pan, Expiry: "2913", ServiceCode: "201"}); !errors.Is(err, hsm.ErrInput) {
		t.Fatalf("bad expiry: %v", err)
	}
}
