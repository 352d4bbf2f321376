package e2e

import (
	"encoding/base64"
	"testing"

	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/qr"
	"github.com/switchyard/switchyard/switch/registry"
)

// TestQROrderMerchantNameLatin: over TCP, once a reviewed change gives T0000001's
// merchant a long name and an ASCII name (name_latin), its order's code carries the
// ASCII name in ID 59; once a second change takes it away, the name cut to 25
// characters; named in Chinese, its answer carries QP without the language
// template (DE 48 is ASCII) and QU, the whole code. The registry's fields reach the
// code through the terminal check's merchant.
func TestQROrderMerchantNameLatin(t *testing.T) {
	f, _ := startQRWith(t, nil)
	const mid = "000000000000001"
	change := func(p registry.MerchantPatch) {
		t.Helper()
		req, err := f.s.Registry.RequestChange(registry.Actor{Name: "demo-operator", Role: registry.RoleOperator},
			registry.Change{Op: registry.OpMerchantChange, Target: mid, MerchantPatch: &p})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.Registry.Approve(registry.Actor{Name: "demo-reviewer", Role: registry.RoleReviewer}, req.ID, "ok"); err != nil {
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

	// A merchant named in Chinese: DE 48 is ASCII, so QP is the code without its
	// language template, and QU the whole code in base64. Until the fix the
	// terminal client could not decode the answer and got none.
	zh, latin := "星巴克南京西路店", "Starbucks Nanjing W Rd"
	change(registry.MerchantPatch{Name: &zh, NameLatin: &latin})
	a := f.send(orderTx(message.PCQROrder, 2500, ""))
	if a.RC != "00" {
		t.Fatalf("order of a merchant named in Chinese: %+v", a)
	}
	plain, err := qr.Decode(orderTLV(t, a).QRPayload)
	if err != nil || plain.Get(qr.IDName) != latin || plain.Get(qr.IDLanguage) != "" {
		t.Fatalf("QP of a merchant named in Chinese: %+v: %v", plain, err)
	}
	qu, ok := message.TLVValue(a.DE48, message.TagQRPayloadUTF8)
	raw, berr := base64.StdEncoding.DecodeString(qu)
	if !ok || berr != nil {
		t.Fatalf("QU %q (present %v): %v", qu, ok, berr)
	}
	whole, err := qr.Decode(string(raw))
	if err != nil || whole.Sub(qr.IDLanguage, "01") != zh || whole.Sub(qr.IDLanguage, "00") != "ZH" ||
		whole.Sub(qr.IDAdditional, "05") != plain.Sub(qr.IDAdditional, "05") || whole.Get(qr.IDAmount) != plain.Get(qr.IDAmount) {
		t.Fatalf("QU's code %+v against QP's %+v: %v", whole, plain, err)
	}
}
