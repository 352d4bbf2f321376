package risk

import (
	"context"
	"fmt"
	"testing"
	"time"
)

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

// TestBacktestRecomputesProfiles: the journal does not keep merchant.profile; a
// backtest recomputes it as the switch had it: on a merchant's 5th day of traffic
// it is still the tier's defaults, from the 8th (7 days before the day's 03:00
// refresh) it is learned, with the merchant's own p50.
func TestBacktestRecomputesProfiles(t *testing.T) {
	rs, err := Compile([]SourceFile{{Name: "p.yaml", Data: []byte(`
timezone: Asia/Shanghai
rules:
  - id: learned-big-ticket
    condition: merchant.profile.learned && txn.amount > 2 * merchant.profile.p50_amount
    action: decline
    response_code: "59"
`)}}, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	loc := rs.Location
	h := &memHistory{}
	day0 := time.Date(2026, 11, 1, 0, 0, 0, 0, loc)
	for d := 0; d < 10; d++ {
		for i := 0; i < 30; i++ { // 30 purchases of 10.00 a day, 10:00 to 10:29
			at := day0.AddDate(0, 0, d).Add(10*time.Hour + time.Duration(i)*time.Minute)
			in := Input{Txn: Txn{Type: TxnPurchase, Amount: 1000, CardHash: fmt.Sprintf("%032x", i), Time: at.UTC()},
				Merchant: Merchant{ID: "000000000000002", Tier: "micro"}}
			if i == 29 {
				in.Txn.Amount = 5000 // one big ticket a day
			}
			h.recs = append(h.recs, Record{Time: at.UTC(), RRN: fmt.Sprintf("%d-%d", d, i), Input: in,
				Outcome: Outcome{Approved: true, ResponseCode: "00"}})
		}
	}
	declined := func(day int, opts BacktestOptions) int {
		opts.From, opts.To, opts.Warmup = day0.AddDate(0, 0, day), day0.AddDate(0, 0, day+1), 0
		rep, err := Backtest(context.Background(), h, rs, opts)
		if err != nil {
			t.Fatal(err)
		}
		return rep.DeclinesAfter
	}
	if n := declined(4, BacktestOptions{}); n != 0 {
		t.Errorf("day 5: %d declines, want 0 (4 days of history: the micro defaults, not learned)", n)
	}
	if n := declined(8, BacktestOptions{}); n != 1 {
		t.Errorf("day 9: %d declines, want 1 (the learned p50 is 10.00)", n)
	}
	if n := declined(8, BacktestOptions{Profiles: &ProfileReplay{Off: true}}); n != 0 {
		t.Errorf("day 9 with the profiles off: %d declines, want 0", n)
	}
}
