package risk

import "testing"

// profileRuleFile is a rule on the merchant's learned profile, with its tests in
// the file as in docs/rules.md, "Merchant profiles".
const profileRuleFile = `
timezone: Asia/Shanghai
test_base:
  txn: {mti: "0200", proc_code: "000000", txn_type: purchase, amount: 12000, currency: "156", card_hash: c1}
  merchant: {id: "000000000000002", tier: micro, status: active,
             profile: {learned: true, days: 30, transactions: 2400, p50_amount: 1800, p90_amount: 3500, p99_amount: 6000,
                       new_card_share: 0.2, hourly: [0,0,0,0,0,0,1,9,12,4,2,3,10,8,2,1,1,2,6,5,2,1,0,0]}}
rules:
  - id: far-above-usual-ticket
    description: A ticket far above what the merchant usually takes (learned profiles only).
    condition: merchant.profile.learned && txn.amount > 3 * merchant.profile.p99_amount
    action: review
    reason: unusual-ticket
    tests:
      - {name: three times the p99, input: {txn: {amount: 18001}}, expect: hit}
      - {name: a usual ticket, input: {txn: {amount: 3000}}, expect: miss}
      - {name: tier defaults are not enough to judge, input: {txn: {amount: 18001}, merchant: {profile: {learned: false}}}, expect: miss}
  - id: off-hours-at-a-quiet-stall
    description: Traffic in an hour the merchant is normally closed.
    condition: merchant.profile.learned && merchant.profile.hourly[txn.local_hour] < 0.1
    action: alert
    tests:
      - {name: "03:00 local", input: {txn: {time: "2026-12-01T19:00:00Z"}}, expect: hit}
      - {name: "08:00 local", input: {txn: {time: "2026-12-01T00:00:00Z"}}, expect: miss}
`

// TestRuleOnMerchantProfile: merchant.profile.* compiles, lints clean and is
// read by a rule file's own tests.
func TestRuleOnMerchantProfile(t *testing.T) {
	rs, err := Compile([]SourceFile{{Name: "profile.yaml", Data: []byte(profileRuleFile)}}, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range rs.Warnings {
		t.Errorf("lint warning: %s", w)
	}
	results := rs.RunTests()
	if len(results) != 5 {
		t.Fatalf("%d test results, want 5", len(results))
	}
	for _, r := range results {
		if !r.Passed {
			t.Errorf("%s / %s: %s", r.Rule, r.Case, r.Failure)
		}
	}
}
