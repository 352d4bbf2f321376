package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/internal/statelog"
)

// TestMerchantCurrencyValidated: a merchant's currency is the ISO 4217 numeric
// code of a currency payments are made in, or none (any currency); anything else
// is refused with an error naming the field and what is wanted.
func TestMerchantCurrencyValidated(t *testing.T) {
	base := Merchant{ID: "000000000000501", Name: "寿司", MCC: "5814", Region: "CN-SH", Tier: TierMicro,
		Rating: RatingLow, Status: MerchantActive}
	for _, c := range []struct {
		cur, why string // why: "" for accepted
	}{
		{"", ""},
		{"156", ""},
		{"392", ""},
		{"840", ""},
		{"CNY", `currency "CNY": want its ISO 4217 numeric code, 156`},
		{"999", `currency "999": not the ISO 4217 numeric code`},
		{"15", `currency "15"`},
		{"1560", `currency "1560"`},
		{" 156", `currency " 156"`},
	} {
		m := base
		m.Currency = c.cur
		err := m.Validate()
		if c.why == "" {
			if err != nil {
				t.Errorf("currency %q: %v, want accepted", c.cur, err)
			}
			continue
		}
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.why) || !strings.Contains(err.Error(), "or none for any currency") {
			t.Errorf("currency %q: %v, want ErrInvalid with %q", c.cur, err, c.why)
		}
	}
	if got := (&Merchant{}).LimitsCurrency(); got != "156" {
		t.Errorf("limits currency of a merchant without one: %q, want the acquirer's 156", got)
	}
	if got := (&Merchant{Currency: "392"}).LimitsCurrency(); got != "392" {
		t.Errorf("limits currency of a yen merchant: %q, want 392", got)
	}
}

// TestMerchantCurrencyReviewedAndStored: the currency is set at registration and
// by a change, both through two-person review, shown in the change's preview
// (its effect's before and after), kept across a restart and taken away by a
// change to ""; a bad code is refused when requested, and a change to the
// currency the merchant has is nothing to change.
func TestMerchantCurrencyReviewedAndStored(t *testing.T) {
	f := newFixture(t)
	const mid = "000000000000502"
	m := Merchant{ID: mid, Name: "东京拉面", MCC: "5814", Region: "CN-SH", Tier: TierMicro, Rating: RatingLow, Currency: "156",
		Limits: Limits{PerTransaction: 50000}}
	req, err := f.reg.RequestChange(alice, Change{Op: OpMerchantRegister, Merchant: &m})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.reg.Merchant(mid); ok {
		t.Fatal("merchant registered before review")
	}
	if _, err := f.reg.Approve(alice, req.ID, ""); err == nil {
		t.Fatal("the requester approved her own registration")
	}
	if _, err := f.reg.Approve(bob, req.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	f.reopen(t)
	if got, _ := f.reg.Merchant(mid); got == nil || got.Currency != "156" {
		t.Fatalf("registered merchant after restart: %+v", got)
	}
	req, err = f.reg.RequestChange(alice, Change{Op: OpMerchantChange, Target: mid, MerchantPatch: &MerchantPatch{Currency: strp("392")}})
	if err != nil {
		t.Fatal(err)
	}
	pv, err := f.reg.GetChange(req.ID)
	if err != nil || len(pv.Effects) != 1 {
		t.Fatalf("preview: %+v, %v", pv, err)
	}
	var before, after Merchant
	if json.Unmarshal(pv.Effects[0].Before, &before) != nil || json.Unmarshal(pv.Effects[0].After, &after) != nil ||
		before.Currency != "156" || after.Currency != "392" {
		t.Fatalf("preview's effect: before %s, after %s; want currency 156 -> 392", pv.Effects[0].Before, pv.Effects[0].After)
	}
	if got, _ := f.reg.Merchant(mid); got.Currency != "156" {
		t.Fatalf("currency changed before review: %+v", got)
	}
	if _, err := f.reg.Approve(bob, req.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.reg.Merchant(mid); got.Currency != "392" || got.Limits.PerTransaction != 50000 || got.Version != 2 {
		t.Fatalf("changed merchant: %+v", got)
	}
	if _, err := f.reg.RequestChange(alice, Change{Op: OpMerchantChange, Target: mid,
		MerchantPatch: &MerchantPatch{Currency: strp("JPY")}}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "392 (JPY is the alphabetic one)") {
		t.Fatalf("a change to currency JPY: %v, want refused, naming 392", err)
	}
	if _, err := f.reg.RequestChange(alice, Change{Op: OpMerchantChange, Target: mid,
		MerchantPatch: &MerchantPatch{Currency: strp("392")}}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "currency") {
		t.Fatalf("a change to the currency the merchant has: %v, want nothing to change", err)
	}
	f.apply(t, Change{Op: OpMerchantChange, Target: mid, MerchantPatch: &MerchantPatch{Currency: strp("")}})
	if got, _ := f.reg.Merchant(mid); got.Currency != "" {
		t.Fatalf("merchant whose currency was taken away: %+v", got)
	}
	bad := Merchant{ID: "000000000000503", Name: "x", MCC: "5814", Region: "CN-SH", Tier: TierMicro, Rating: RatingLow, Currency: "000"}
	if _, err := f.reg.RequestChange(alice, Change{Op: OpMerchantRegister, Merchant: &bad}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `currency "000"`) {
		t.Fatalf("registration in currency 000: %v, want refused", err)
	}
}

// TestMerchantCurrencyCSV: the merchant CSV takes a currency column (a bad code
// rejects its row, naming it; a code a spreadsheet cut to "8" is read as 008),
// and the export writes it, so that an export imports back into the same
// merchants; a file without the column imports merchants of any currency.
func TestMerchantCurrencyCSV(t *testing.T) {
	f := newFixture(t)
	in := "merchant_id,name,mcc,region,tier,limit_txn,currency\n" +
		"000000000000511,东京寿司,5814,CN-SH,micro,100000,392\n" +
		"000000000000512,Tirana Cafe,5814,CN-SH,micro,,8\n" +
		"000000000000513,上海超市,5411,CN-SH,micro,,CNY\n" +
		"000000000000514,上海超市,5411,CN-SH,micro,,\n"
	rep, err := f.reg.ImportMerchants(alice, strings.NewReader(in), "", false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Accepted != 3 || rep.Rejected != 1 {
		t.Fatalf("report %+v, want line 4 alone rejected", rep)
	}
	for _, row := range rep.Rows {
		if row.Line == 4 && !strings.Contains(row.Error, `currency "CNY": want its ISO 4217 numeric code, 156`) {
			t.Errorf("line %d: %q", row.Line, row.Error)
		}
	}
	if _, err := f.reg.Approve(bob, rep.Change.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{"000000000000511": "392", "000000000000512": "008", "000000000000514": ""} {
		if got, _ := f.reg.Merchant(id); got == nil || got.Currency != want {
			t.Errorf("imported merchant %s: %+v, want currency %q", id, got, want)
		}
	}
	got, _ := f.reg.Merchant("000000000000511")
	var out bytes.Buffer
	if err := WriteMerchantsCSV(&out, []*Merchant{got}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.HasSuffix(lines[0], ",name_latin,name_language,currency") || !strings.HasSuffix(lines[1], ",,,392") {
		t.Fatalf("export:\n%s", out.String())
	}
	back := strings.Replace(out.String(), "000000000000511", "000000000000515", 1)
	rep, err = f.reg.ImportMerchants(alice, strings.NewReader(back), "", false)
	if err != nil || rep.Accepted != 1 {
		t.Fatalf("export imported back: %+v, %v", rep, err)
	}
	if _, err := f.reg.Approve(bob, rep.Change.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.reg.Merchant("000000000000515"); got == nil || got.Currency != "392" || got.Limits.PerTransaction != 100000 {
		t.Fatalf("imported back: %+v", got)
	}
}

// TestMerchantCurrencyReplicated: in a cluster a merchant's currency, given at
// registration on one node and changed on the other, reaches both through the
// state log (the merchant's JSON in the commit).
func TestMerchantCurrencyReplicated(t *testing.T) {
	mem := &statelog.Memory{}
	a, b := newNode(t, mem, mem), newNode(t, mem, mem)
	deliver(t, mem)
	m := Merchant{ID: "000000000000521", Name: "ソウル食堂", MCC: "5814", Region: "CN-SH", Tier: TierMicro, Rating: RatingLow, Currency: "392"}
	req, err := a.reg.RequestChange(alice, Change{Op: OpMerchantRegister, Merchant: &m})
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, mem)
	if _, err := b.reg.Approve(bob, req.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	deliver(t, mem)
	req, err = b.reg.RequestChange(alice, Change{Op: OpMerchantChange, Target: m.ID, MerchantPatch: &MerchantPatch{Currency: strp("410")}})
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, mem)
	for name, n := range map[string]*node{"A": a, "B": b} {
		if got, _ := n.reg.Merchant(m.ID); got == nil || got.Currency != "392" {
			t.Errorf("node %s before the change's review: merchant %+v", name, got)
		}
	}
	if _, err := a.reg.Approve(bob, req.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	deliver(t, mem)
	for name, n := range map[string]*node{"A": a, "B": b} {
		if got, _ := n.reg.Merchant(m.ID); got == nil || got.Currency != "410" {
			t.Errorf("node %s after the change: merchant %+v", name, got)
		}
	}
}
