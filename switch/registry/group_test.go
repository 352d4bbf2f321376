package registry

import (
	"strings"
	"testing"
)

// A merchant's group is optional, validated like the region, set at registration and
// by a change, and taken away by a change to "".
func TestMerchantGroup(t *testing.T) {
	f := newFixture(t)
	const mid = "000000000000077"
	m := Merchant{ID: mid, Name: "Chain Shop 7", MCC: "5411", Region: "CN-BJ", Group: "CHAIN-1", Tier: TierMicro, Rating: RatingLow, Status: MerchantActive}
	f.apply(t, Change{Op: OpMerchantRegister, Target: mid, Merchant: &m})
	if got, _ := f.reg.Merchant(mid); got == nil || got.Group != "CHAIN-1" {
		t.Fatalf("registered merchant: %+v", got)
	}
	bad := m
	bad.ID, bad.Group = "000000000000078", "chain one"
	if _, err := f.reg.RequestChange(alice, Change{Op: OpMerchantRegister, Target: bad.ID, Merchant: &bad}); err == nil ||
		!strings.Contains(err.Error(), `merchant 000000000000078: group "chain one": want 1 to 32 letters, digits`) {
		t.Fatalf("bad group: %v", err)
	}
	f.apply(t, Change{Op: OpMerchantChange, Target: mid, MerchantPatch: &MerchantPatch{Group: strp("CHAIN-2")}})
	if got, _ := f.reg.Merchant(mid); got.Group != "CHAIN-2" || got.Region != "CN-BJ" {
		t.Fatalf("changed merchant: %+v", got)
	}
	f.apply(t, Change{Op: OpMerchantChange, Target: mid, MerchantPatch: &MerchantPatch{Group: strp("")}})
	if got, _ := f.reg.Merchant(mid); got.Group != "" {
		t.Fatalf("merchant taken out of its group: %+v", got)
	}
}
