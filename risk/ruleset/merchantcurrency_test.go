package ruleset

import "testing"

// TestMerchantCurrencyInRules: a rule reads the merchant's currency as
// merchant.currency (a tier limit by currency, docs/merchant-risk.md): a yen
// micro merchant's purchase over 500000 yen is declined, the same amount at a
// merchant of any currency ("") and a yuan one is not.
func TestMerchantCurrencyInRules(t *testing.T) {
	dir := writeRules(t, map[string]string{"a.yaml": `
rules:
  - id: micro-yen-single
    condition: merchant.currency == "392" && txn.amount > 500000
    action: decline
    response_code: "61"
    reason: micro-yen-single
`})
	rs, err := Load(dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cur  string
		want Action
	}{{"392", ActionDecline}, {"", ActionAllow}, {"156", ActionAllow}} {
		in := purchase(600000)
		in.Merchant.Currency = c.cur
		if d := rs.evaluate(in, nil, nil, nil); d.Action != c.want || len(d.Errors) > 0 {
			t.Errorf("merchant of currency %q: %+v, want %v", c.cur, d, c.want)
		}
	}
}
