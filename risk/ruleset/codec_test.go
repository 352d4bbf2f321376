package ruleset

import (
	"reflect"
	"testing"
	"time"
)

func TestInputCodecRoundTrip(t *testing.T) {
	in := Input{
		Txn: Txn{MTI: "0200", ProcCode: "000000", Type: TxnPurchase, Amount: 123456, Currency: "156", EntryMode: "071", Contactless: true,
			PINPresent: true, BIN: "476173", CardHash: "abc", STAN: "000001", RRN: "000000000001", OriginalCardHash: "def", OriginalAmount: 5, Wallet: "wechat",
			Time: time.Unix(1700000000, 42).UTC()},
		Terminal: Terminal{ID: "T0000001", Kind: "pos", Status: "active", AgeDays: 3, Region: "CN-BJ", AppVersion: "1.2", Bound: true, Lat: 39.9, Lon: 116.4, RadiusM: 1000},
		Merchant: Merchant{ID: "000000000000001", MCC: "5411", Tier: "standard", Rating: "B", SingleLimit: 1, DailyLimit: 2, MonthlyLimit: 3, DailyCount: 4, Status: "active", Group: "CHAIN-7", Currency: "392"},
		Binding:  Binding{Checked: true, LocationKnown: true, Lat: 39.91, Lon: 116.41, DistanceM: 812.5, LocationOK: true, SIMOK: true, IMEIOK: true, DeviceOK: true, NetworkOK: true},
		Device:   Device{ID: "SN-1", Findings: []string{"root", "hook"}, Attested: true, AttestationAgeS: 17},
	}
	b := in.AppendBinary(nil)
	var back Input
	if err := back.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, back) {
		t.Fatalf("round trip:\n%+v\n%+v", in, back)
	}
	for i := 0; i < len(b); i++ {
		var x Input
		_ = x.UnmarshalBinary(b[:i]) // no panic on any truncation
	}
	// Every journaled field is encoded (the local hour, time and weekday are derived by
	// the engine; Merchant.Profile is recomputed by the tools, see risk.ProfileReplay):
	// a field added to Input must be added to the codec and this count.
	if n := reflect.TypeOf(Txn{}).NumField() + reflect.TypeOf(Terminal{}).NumField() + reflect.TypeOf(Merchant{}).NumField() - 1 +
		reflect.TypeOf(Binding{}).NumField() + reflect.TypeOf(Device{}).NumField(); n != 59 {
		t.Fatalf("Input has %d fields; update AppendBinary, UnmarshalBinary and this count", n)
	}
}

// A record journaled before Merchant.Group existed decodes with no group, and one
// without a group encodes as before (old binaries read it).
func TestInputCodecGroupOptional(t *testing.T) {
	in := Input{Merchant: Merchant{ID: "000000000000001"}}
	old := in.AppendBinary(nil)
	in.Merchant.Group = "CHAIN-7"
	withGroup := in.AppendBinary(nil)
	if len(withGroup) != len(old)+1+len("CHAIN-7") {
		t.Fatalf("group encoding: %d bytes, without %d", len(withGroup), len(old))
	}
	var back Input
	if err := back.UnmarshalBinary(old); err != nil || back.Merchant.Group != "" {
		t.Fatalf("old record: group %q, err %v", back.Merchant.Group, err)
	}
	if err := back.UnmarshalBinary(withGroup); err != nil || back.Merchant.Group != "CHAIN-7" {
		t.Fatalf("new record: group %q, err %v", back.Merchant.Group, err)
	}
}

// A QR payment's wallet without a merchant group still round-trips (the group is
// written empty before it), and a record without either is as before.
func TestInputCodecWalletOptional(t *testing.T) {
	in := Input{Txn: Txn{Wallet: "alipay", QR: true}}
	var back Input
	if err := back.UnmarshalBinary(in.AppendBinary(nil)); err != nil || back.Txn.Wallet != "alipay" || back.Merchant.Group != "" {
		t.Fatalf("wallet %q group %q err %v", back.Txn.Wallet, back.Merchant.Group, err)
	}
}

// A merchant's daily count limit round-trips without a group or a wallet (both are
// written empty before it), and a record without it is as before: old records
// decode with no count limit.
func TestInputCodecDailyCountOptional(t *testing.T) {
	in := Input{Merchant: Merchant{ID: "000000000000001"}}
	old := in.AppendBinary(nil)
	in.Merchant.DailyCount = 300
	withCount := in.AppendBinary(nil)
	if len(withCount) <= len(old) {
		t.Fatalf("daily count encoding: %d bytes, without %d", len(withCount), len(old))
	}
	var back Input
	if err := back.UnmarshalBinary(old); err != nil || back.Merchant.DailyCount != 0 {
		t.Fatalf("old record: daily count %d, err %v", back.Merchant.DailyCount, err)
	}
	if err := back.UnmarshalBinary(withCount); err != nil || back.Merchant.DailyCount != 300 || back.Merchant.Group != "" || back.Txn.Wallet != "" {
		t.Fatalf("new record: daily count %d, group %q, wallet %q, err %v", back.Merchant.DailyCount, back.Merchant.Group, back.Txn.Wallet, err)
	}
}

// A merchant's currency round-trips without a group, a wallet or a daily count
// (each written empty before it), and a record without it is as before: old
// records decode with none (any currency).
func TestInputCodecCurrencyOptional(t *testing.T) {
	in := Input{Merchant: Merchant{ID: "000000000000001"}}
	old := in.AppendBinary(nil)
	in.Merchant.Currency = "392"
	withCur := in.AppendBinary(nil)
	var back Input
	if err := back.UnmarshalBinary(old); err != nil || back.Merchant.Currency != "" {
		t.Fatalf("old record: currency %q, err %v", back.Merchant.Currency, err)
	}
	if err := back.UnmarshalBinary(withCur); err != nil || back.Merchant.Currency != "392" || back.Merchant.DailyCount != 0 ||
		back.Merchant.Group != "" || back.Txn.Wallet != "" {
		t.Fatalf("new record: %+v, err %v", back.Merchant, err)
	}
}
