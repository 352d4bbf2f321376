package payshield_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/payshield"
)

// TestVerifyCVVErrorWithoutTheCVV: a card verification value the HSM refuses as
// malformed (a 4-digit CID, a CVV with a space) is never quoted in the error, which
// callers log: the software HSM's error does not carry it, nor may the payShield
// client's.
func TestVerifyCVVErrorWithoutTheCVV(t *testing.T) {
	addr, _ := serve(t, payshield.ServerOptions{})
	e := newEnv(t, payshield.ClientOptions{Addrs: []string{addr}})
	// The Visa test CVK, formed over the wire (the software HSM shares the store).
	cvk := unhex("0123456789ABCDEFFEDCBA9876543210")
	c1 := unhex("1111111111111111111111111111111A")
	c2 := make([]byte, 16)
	for i := range c2 {
		c2[i] = cvk[i] ^ c1[i]
	}
	// AllowStoredValue: the Visa test CVK is the demo BDK's value.
	if _, err := e.client.FormKey(e.ctx, hsm.FormKeyRequest{KeySpec: hsm.KeySpec{ID: "VISA.CVK", Type: hsm.CVK}, Components: [][]byte{c1, c2}, AllowStoredValue: true}); err != nil {
		t.Fatal(err)
	}
	cv := hsm.CVVRequest{Key: hsm.KeyRef{ID: "VISA.CVK"}, PAN: "4123456789012345", Expiry: "8701", ServiceCode: "101"}
	for _, h := range []struct {
		name string
		hsm  interface {
			VerifyCVV(ctx context.Context, req hsm.CVVRequest, cvv string) error
		}
	}{{"payshield", e.client}, {"software", e.sw}} {
		for _, bad := range []string{"4817", "56 1", "5612"} {
			err := h.hsm.VerifyCVV(e.ctx, cv, bad)
			if err == nil {
				t.Fatalf("%s: CVV %d characters verified", h.name, len(bad))
			}
			if strings.Contains(err.Error(), bad) {
				t.Errorf("%s: the CVV in the clear in the error: %v", h.name, err)
			}
			if !errors.Is(err, hsm.ErrInput) && !errors.Is(err, hsm.ErrCVVMismatch) {
				t.Errorf("%s: %v, want a refusal of the input", h.name, err)
			}
		}
	}
}
