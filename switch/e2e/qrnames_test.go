package e2e

import (
	"testing"

	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/qr"
	"github.com/switchyard/switchyard/switch/registry"
)

// TestQROrderMerchantNameLatin: over TCP, once a reviewed change gives T0000001's
// merchant a long name and an ASCII name (name_latin), its order's code carries the
// ASCII name in ID 59; once a second change takes it away, the name cut to 25
// characters. The registry's field reaches the code through the terminal check's
// merchant. (The names are ASCII: an answer whose DE 48 holds a name in another
// script is not ASCII, which the terminal interface's encoding is; see
// docs/qr.md, "Known limits".)
func TestQROrderMerchantNameLatin(t *testing.T) {
	f, _ := startQRWith(t, nil)
	const mid = "000000000000001"
	change := func(p registry.MerchantPatch) {
		t.Helper()
		req, err := f.s.Registry.RequestChange(registry.Actor{Name: "alice", Role: registry.RoleOperator},
			registry.Change{Op: registry.OpMerchantChange, Target: mid, MerchantPatch: &p})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.Registry.Approve(registry.Actor{Name: "bob", Role: registry.RoleReviewer}, req.ID, "ok"); err != nil {
			t.Fatal(err)
		}
	}
	order := func() *qr.Payload {
		t.Helper()
		a := f.send(orderTx(message.PCQROrder, 2500, ""))
		p, err := qr.Decode(orderTLV(t, a).QRPayload)
		if a.RC != "00" || err != nil {
			t.Fatalf("order: %+v: %v", a, err)
		}
		return p
	}
	name, latin := "Shanghai Pudong Airport Duty Free Shop T2", "Pudong Duty Free T2"
	change(registry.MerchantPatch{Name: &name, NameLatin: &latin})
	if p := order(); p.Get(qr.IDName) != latin || p.Get(qr.IDLanguage) != "" {
		t.Fatalf("code of the merchant with an ASCII name: %+v", p.Objects)
	}
	none := ""
	change(registry.MerchantPatch{NameLatin: &none})
	if p := order(); p.Get(qr.IDName) != "Shanghai Pudong Airport D" {
		t.Fatalf("code after the ASCII name was taken away: %+v", p.Objects)
	}
}
