package payshield_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"errors"
	"sync"
	"testing"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/payshield"
	"github.com/switchyard/switchyard/hsm/pinblock"
	"github.com/switchyard/switchyard/keys"
)

// TestClientFormatPolicy: the client applies the software HSM's PIN block format
// policy (hsm.CheckTranslation) before it sends CA, CC or G0. The HSM here is lax
// (`hsm serve` allowing format 4 to TDES, as a payShield with ISO 4 to ISO 0
// enabled): the client ignored ErrPolicy and sent format 4 to 0 and 3, which that
// HSM translated, and format 1 translations, which it refused only by its own
// settings. Every refused translation is ErrPolicy and reaches no HSM; with the
// client's policy allowing it, format 4 to 0 is sent and translated.
func TestClientFormatPolicy(t *testing.T) {
	var mu sync.Mutex
	sent := map[string]int{}
	addr, _ := serve(t, payshield.ServerOptions{Policy: hsm.FormatPolicy{Allow4ToTDES: true}, BeforeCommand: func(_ context.Context, code string) {
		mu.Lock()
		sent[code]++
		mu.Unlock()
	}})
	translations := func() int {
		mu.Lock()
		defer mu.Unlock()
		return sent["CA"] + sent["CC"] + sent["G0"]
	}
	e := newEnv(t, payshield.ClientOptions{Addrs: []string{addr}})
	tpk := bytes.Repeat([]byte{0x11}, 16)
	c1 := bytes.Repeat([]byte{0x5A}, 16)
	c2 := make([]byte, 16)
	for i := range tpk {
		c2[i] = tpk[i] ^ c1[i]
	}
	if _, err := e.client.FormKey(e.ctx, hsm.FormKeyRequest{KeySpec: hsm.KeySpec{ID: "AES.TPK", Type: hsm.TPK, Algorithm: hsm.AES128}, Components: [][]byte{c1, c2}}); err != nil {
		t.Fatalf("FK AES.TPK: %v", err)
	}
	const pan = "4012345678909"
	ac, _ := aes.NewCipher(tpk)
	aesBlock, err := pinblock.Encrypt(ac, pinblock.Format4, []byte("1234"), pan, nil)
	if err != nil {
		t.Fatal(err)
	}
	tdesBlock := tdesECB(t, demoHex("T0000001.TPK"), unhex("041274EDCBA9876F"), false)
	zpk := hsm.KeyRef{ID: keys.DemoIssuer + ".ZPK"}
	for _, tc := range []struct {
		name string
		req  hsm.TranslatePINRequest
	}{
		{"CA format 4 to 0", hsm.TranslatePINRequest{Source: hsm.KeyRef{ID: "AES.TPK"}, SourceFormat: pinblock.Format4, PINBlock: aesBlock, Dest: zpk, DestFormat: pinblock.Format0, PAN: pan}},
		{"CA format 4 to 3", hsm.TranslatePINRequest{Source: hsm.KeyRef{ID: "AES.TPK"}, SourceFormat: pinblock.Format4, PINBlock: aesBlock, Dest: zpk, DestFormat: pinblock.Format3, PAN: pan}},
		{"CA format 0 to 1", hsm.TranslatePINRequest{Source: hsm.KeyRef{ID: "T0000001.TPK"}, SourceFormat: pinblock.Format0, PINBlock: tdesBlock, Dest: zpk, DestFormat: pinblock.Format1, PAN: pan}},
		{"CC format 0 to 1", hsm.TranslatePINRequest{Source: zpk, SourceFormat: pinblock.Format0, PINBlock: tdesBlock, Dest: zpk, DestFormat: pinblock.Format1, PAN: pan}},
		{"G0 format 0 to 1", hsm.TranslatePINRequest{KSN: "FFFF9876543210E00001", SourceFormat: pinblock.Format0, PINBlock: unhex("1B9C1845EB993A7A"), Dest: zpk, DestFormat: pinblock.Format1, PAN: pan}},
	} {
		before := translations()
		if _, err := e.client.TranslatePIN(e.ctx, tc.req); !errors.Is(err, hsm.ErrPolicy) {
			t.Errorf("%s: %v, want ErrPolicy", tc.name, err)
		}
		if n := translations() - before; n != 0 {
			t.Errorf("%s: %d PIN translation command(s) reached the HSM, want none", tc.name, n)
		}
	}
	if t.Failed() {
		return
	}

	// The client's own policy decides, as the software HSM's Options.Policy does.
	lax := newEnv(t, payshield.ClientOptions{Addrs: []string{addr}, Policy: hsm.FormatPolicy{Allow4ToTDES: true}})
	if _, err := lax.client.FormKey(lax.ctx, hsm.FormKeyRequest{KeySpec: hsm.KeySpec{ID: "AES.TPK", Type: hsm.TPK, Algorithm: hsm.AES128}, Components: [][]byte{c1, c2}}); err != nil {
		t.Fatalf("FK AES.TPK: %v", err)
	}
	out, err := lax.client.TranslatePIN(lax.ctx, hsm.TranslatePINRequest{Source: hsm.KeyRef{ID: "AES.TPK"}, SourceFormat: pinblock.Format4, PINBlock: aesBlock, Dest: zpk, DestFormat: pinblock.Format0, PAN: pan})
	if err != nil {
		t.Fatalf("format 4 to 0 allowed by the client's policy: %v", err)
	}
	if got := tdesECB(t, demoHex(zpk.ID), out, true); !bytes.Equal(got, unhex("041274EDCBA9876F")) {
		t.Fatalf("format 4 to 0: clear block %X under the ZPK, want 041274EDCBA9876F", got)
	}
	if n := translations(); n != 1 {
		t.Fatalf("%d PIN translation command(s) sent, want the one allowed", n)
	}
}
