package profile

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/switchyard/switchyard/risk/ruleset"
)

// slice is a Source over records in memory, in time order.
type slice []Txn

func (s slice) Scan(ctx context.Context, from, to time.Time, fn func(*Txn) error) error {
	for i := range s {
		if s[i].Time.Before(from) || !s[i].Time.Before(to) {
			continue
		}
		t := s[i]
		if err := fn(&t); err != nil {
			return err
		}
	}
	return nil
}

var shanghai = func() *time.Location {
	l, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		panic(err)
	}
	return l
}()

// card is a card hash like the switch's (32 hex digits, random-looking).
func card(i int) string { return fmt.Sprintf("%016x%016x", uint64(i)*0x9E3779B97F4A7C15, uint64(i)) }

// TestBuildShares builds a hand-made journal and checks every count-based field
// exactly.
func TestBuildShares(t *testing.T) {
	end := time.Date(2026, 11, 30, 19, 0, 0, 0, time.UTC) // 03:00 Dec 1 in Shanghai
	day := func(d, hour int) time.Time {                  // local day d before end, at local hour
		return time.Date(2026, 12, 1-d, hour, 30, 0, 0, shanghai)
	}
	m := "000000000000001"
	var recs slice
	add := func(at time.Time, typ string, amount int64, c int, rc string, riskDeclined bool) {
		recs = append(recs, Txn{Time: at, Merchant: m, Type: typ, Amount: amount, CardHash: card(c), RC: rc, Approved: rc == "00", RiskDeclined: riskDeclined})
	}
	// Before the window (look-back only): card 1 seen 33 days before end, card 2
	// 40 days before (outside the 7-day look-back, so new again).
	add(day(33, 10), ruleset.TxnPurchase, 1000, 1, "00", false)
	add(day(40, 10), ruleset.TxnPurchase, 1000, 2, "00", false)
	// Day 29 (first day of the window): card 1 (not new), card 2 (new), card 3 (new).
	add(day(29, 8), ruleset.TxnPurchase, 1000, 1, "00", false)
	add(day(29, 8), ruleset.TxnPurchase, 2000, 2, "51", false)
	add(day(29, 9), ruleset.TxnBalance, 0, 3, "14", false)
	// Day 20: card 1 again (11 days since: new), card 3 again (9 days: new), card 3
	// again (0 days: not new), a refund and a void.
	add(day(20, 12), ruleset.TxnPurchase, 3000, 1, "00", false)
	add(day(20, 12), ruleset.TxnPurchase, 4000, 3, "59", true)
	add(day(20, 13), ruleset.TxnPreauth, 5000, 3, "05", false)
	add(day(20, 14), ruleset.TxnRefund, 1000, 1, "00", false)
	add(day(20, 15), ruleset.TxnVoid, 3000, 1, "00", false)
	// Day 0 (the last day): an unavailable answer and an open one count as
	// attempts but not as answered; a refund declined is not a refund.
	add(day(1, 23), ruleset.TxnPurchase, 6000, 4, "91", false)
	add(day(1, 23), ruleset.TxnPurchase, 6000, 5, "", false)
	add(day(1, 23), ruleset.TxnRefund, 6000, 5, "05", false)
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].Time.Before(recs[j].Time) })

	tab, err := Build(context.Background(), recs, end, Options{Location: shanghai, MinDays: 3, MinTransactions: 8})
	if err != nil {
		t.Fatal(err)
	}
	p, ok := tab.Merchants[m]
	if !ok {
		t.Fatalf("no profile for %s: %+v", m, tab)
	}
	if p.Days != 3 || p.Transactions != 8 || !p.Learned {
		t.Errorf("days %d transactions %d learned %v, want 3, 8, true", p.Days, p.Transactions, p.Learned)
	}
	// New: card 2 and 3 on day 29, card 1 and 3 on day 20, card 4 and 5 on day 1.
	if want := 6.0 / 8; p.NewCardShare != want {
		t.Errorf("new card share %v, want %v", p.NewCardShare, want)
	}
	if p.InquiryShare != 1.0/8 {
		t.Errorf("inquiry share %v, want 1/8", p.InquiryShare)
	}
	// Answered: 6 (the 91 and the open one are not); declined: 51, 14, 59 by the rules, 05.
	for name, got := range map[string][2]float64{"decline": {p.DeclineShare, 4.0 / 6}, "card": {p.CardDeclineShare, 1.0 / 6},
		"funds": {p.FundsDeclineShare, 1.0 / 6}, "risk": {p.RiskDeclineShare, 1.0 / 6}, "other": {p.OtherDeclineShare, 1.0 / 6},
		"refund": {p.RefundShare, 1.0 / 2}, "void": {p.VoidShare, 1.0 / 2}} {
		if got[0] != got[1] {
			t.Errorf("%s share %v, want %v", name, got[0], got[1])
		}
	}
	if p.DailyAvg != 8.0/3 || p.HourlyAvg != 8.0/3/24 || p.Hourly[8] != 2.0/3 || p.Hourly[23] != 2.0/3 || p.Hourly[0] != 0 {
		t.Errorf("daily %v hourly %v by hour %v", p.DailyAvg, p.HourlyAvg, p.Hourly)
	}
	// Approved purchases: 1000 and 3000.
	if p.P50Amount < 990 || p.P50Amount > 1010 || p.P99Amount < 2970 || p.P99Amount > 3030 {
		t.Errorf("p50 %d p99 %d, want 1000 and 3000 within 1%%", p.P50Amount, p.P99Amount)
	}
	if tab.Records != len(recs)-1 { // card 2's first purchase is before the look-back
		t.Errorf("records %d, want %d", tab.Records, len(recs)-1)
	}

	// Too little history: the same merchant with the default thresholds.
	tab, err = Build(context.Background(), recs, end, Options{Location: shanghai})
	if err != nil {
		t.Fatal(err)
	}
	if tab.Merchants[m].Learned {
		t.Errorf("learned with 3 days and 8 attempts under the defaults (7 days, 100)")
	}
}

// TestQuantilesWithinSketchError draws 200,000 amounts from a log-normal and checks
// p50, p90 and p99 against the exact order statistics.
func TestQuantilesWithinSketchError(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var recs slice
	var amounts []int
	for i := range 200000 {
		a := int64(math.Exp(8 + 1.2*r.NormFloat64()))
		recs = append(recs, Txn{Time: start.Add(time.Duration(i) * 10 * time.Second), Merchant: "m", Type: ruleset.TxnPurchase, Amount: a, CardHash: card(i % 5000), RC: "00", Approved: true})
		amounts = append(amounts, int(a))
	}
	sort.Ints(amounts)
	tab, err := Build(context.Background(), recs, start.Add(30*24*time.Hour), Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := tab.Merchants["m"]
	for _, c := range []struct {
		q   float64
		got int
	}{{0.5, p.P50Amount}, {0.9, p.P90Amount}, {0.99, p.P99Amount}} {
		exact := amounts[int(math.Ceil(c.q*float64(len(amounts))))-1]
		if d := math.Abs(float64(c.got - exact)); d > SketchAccuracy*float64(exact)+0.5 {
			t.Errorf("p%v = %d, exact %d: off by %.2f%%", c.q*100, c.got, exact, 100*d/float64(exact))
		}
	}
	if p.Days != 24 { // 200,000 x 10 s = 23.1 days
		t.Errorf("days %d, want 24", p.Days)
	}
}

func TestUnorderedJournalIsAnError(t *testing.T) {
	at := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	recs := slice{{Time: at, Merchant: "m", Type: ruleset.TxnPurchase}, {Time: at.Add(-48 * time.Hour), Merchant: "m", Type: ruleset.TxnPurchase}}
	if _, err := Build(context.Background(), recs, at.Add(time.Hour), Options{}); err == nil {
		t.Fatal("no error for records out of time order")
	}
}

// TestTierFallback: a merchant without enough history, or unknown, gets its
// tier's defaults with learned false and its own days and transactions.
func TestTierFallback(t *testing.T) {
	s := NewSet(map[string]ruleset.Profile{"micro": {P90Amount: 777, Learned: true}})
	if p := s.Lookup("x", "micro"); p.Learned || p.P90Amount != 777 {
		t.Errorf("before any table: %+v, want the configured micro defaults", p)
	}
	s.Swap(&Table{Merchants: map[string]ruleset.Profile{
		"learned": {Learned: true, Days: 30, Transactions: 900, P90Amount: 1234},
		"young":   {Days: 2, Transactions: 40, P90Amount: 99}}})
	if p := s.Lookup("learned", "micro"); !p.Learned || p.P90Amount != 1234 {
		t.Errorf("learned merchant: %+v", p)
	}
	p := s.Lookup("young", "enterprise")
	if p.Learned || p.P90Amount != TierDefaults["enterprise"].P90Amount || p.Days != 2 || p.Transactions != 40 {
		t.Errorf("young enterprise merchant: %+v", p)
	}
	if p := s.Lookup("nobody", "boutique"); p.P90Amount != TierDefaults[DefaultTier].P90Amount || p.Days != 0 {
		t.Errorf("unknown tier: %+v, want %s's defaults", p, DefaultTier)
	}
	var m ruleset.Merchant
	m.ID, m.Tier = "learned", "micro"
	s.Fill(&m)
	if m.Profile.P90Amount != 1234 {
		t.Errorf("Fill: %+v", m.Profile)
	}
}

func TestTableRoundTrip(t *testing.T) {
	in := &Table{ComputedAt: time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC), Records: 5, Options: Options{Window: DefaultWindow, NewCardDays: 7},
		Merchants: map[string]ruleset.Profile{"m": {Learned: true, Days: 9, P50Amount: 10, Hourly: flat(1.5), VoidShare: 0.25}}}
	var buf bytes.Buffer
	if _, err := in.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	out, err := ReadTable(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !out.ComputedAt.Equal(in.ComputedAt) || out.Merchants["m"] != in.Merchants["m"] || out.Options.Window != DefaultWindow {
		t.Errorf("round trip: %+v", out)
	}
	if _, err := ReadTable(bytes.NewReader([]byte("{"))); err == nil {
		t.Error("no error for a truncated file")
	}
}

func TestNextRun(t *testing.T) {
	now := time.Date(2026, 11, 30, 18, 59, 0, 0, time.UTC) // 02:59 in Shanghai
	if got := NextRun(now, 3, 0, shanghai); !got.Equal(time.Date(2026, 11, 30, 19, 0, 0, 0, time.UTC)) {
		t.Errorf("next run at 02:59: %v", got)
	}
	if got := NextRun(now.Add(time.Minute), 3, 0, shanghai); !got.Equal(time.Date(2026, 12, 1, 19, 0, 0, 0, time.UTC)) {
		t.Errorf("next run at 03:00: %v", got)
	}
	if got := LastRun(now, 3, 0, shanghai); !got.Equal(time.Date(2026, 11, 29, 19, 0, 0, 0, time.UTC)) {
		t.Errorf("last run at 02:59: %v", got)
	}
}

// synthetic is a Source of n records at rate per second over merchants, cards
// drawn so that about 30% of attempts use a card new to the merchant.
type synthetic struct {
	n, merchants int
	start        time.Time
	step         time.Duration
}

func (s synthetic) Scan(ctx context.Context, from, to time.Time, fn func(*Txn) error) error {
	r := rand.New(rand.NewPCG(3, 4))
	ids := make([]string, s.merchants)
	for i := range ids {
		ids[i] = fmt.Sprintf("%015d", i)
	}
	cards := make([]string, 1<<16)
	for i := range cards {
		cards[i] = card(i)
	}
	types := []string{ruleset.TxnPurchase, ruleset.TxnPurchase, ruleset.TxnPurchase, ruleset.TxnPurchase, ruleset.TxnPurchase,
		ruleset.TxnPurchase, ruleset.TxnPreauth, ruleset.TxnBalance, ruleset.TxnRefund, ruleset.TxnVoid}
	rcs := []string{"00", "00", "00", "00", "00", "00", "00", "00", "51", "14"}
	var t Txn
	for i := range s.n {
		t.Time = s.start.Add(time.Duration(i) * s.step)
		t.Merchant = ids[r.IntN(len(ids))]
		t.Type = types[r.IntN(len(types))]
		t.Amount = int64(math.Exp(8 + r.NormFloat64()))
		t.CardHash = cards[r.IntN(len(cards))]
		t.RC = rcs[r.IntN(len(rcs))]
		t.Approved = t.RC == "00"
		if t.Time.Before(from) || !t.Time.Before(to) {
			continue
		}
		if err := fn(&t); err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkBuild reports the records per second Build takes in (without the
// journal's own reading): 1,000 merchants, 65,536 cards.
func BenchmarkBuild(b *testing.B) {
	const n = 2_000_000
	src := synthetic{n: n, merchants: 1000, start: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), step: 30 * 24 * time.Hour / n}
	b.ResetTimer()
	for range b.N {
		if _, err := Build(context.Background(), src, src.start.Add(30*24*time.Hour), Options{Location: shanghai}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkFill is the pipeline's cost per transaction: one atomic load, one map
// lookup in a table of 100,000 merchants, one copy of the profile; "spread"
// visits the merchants in a cache-hostile order, "hot" repeats a few.
func BenchmarkFill(b *testing.B) {
	s := NewSet(nil)
	t := &Table{Merchants: map[string]ruleset.Profile{}}
	ids := make([]string, 100000)
	for i := range ids {
		ids[i] = fmt.Sprintf("%015d", i)
		t.Merchants[ids[i]] = ruleset.Profile{Learned: i%2 == 0, Days: 30}
	}
	s.Swap(t)
	for _, c := range []struct {
		name string
		n    int
	}{{"spread", len(ids)}, {"hot", 8}} {
		b.Run(c.name, func(b *testing.B) {
			var m ruleset.Merchant
			m.Tier = "micro"
			i := 0
			for b.Loop() {
				m.ID = ids[i%c.n]
				s.Fill(&m)
				i += 7919
			}
		})
	}
}

// TestDaysCountTraffic: a day with only a batch close or a network message is not
// a day with traffic; a day with only a refund is.
func TestDaysCountTraffic(t *testing.T) {
	at := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	recs := slice{
		{Time: at, Merchant: "m", Type: ruleset.TxnPurchase, RC: "00", Approved: true, Amount: 100},
		{Time: at.Add(24 * time.Hour), Merchant: "m", Type: "batch"},
		{Time: at.Add(48 * time.Hour), Merchant: "m", Type: "network"},
		{Time: at.Add(72 * time.Hour), Merchant: "m", Type: ruleset.TxnRefund, RC: "00", Approved: true},
	}
	tab, err := Build(context.Background(), recs, at.Add(96*time.Hour), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p := tab.Merchants["m"]; p.Days != 2 || p.Transactions != 1 || p.RefundShare != 1 {
		t.Errorf("%+v: want 2 days, 1 attempt, refund share 1", p)
	}
}

// TestIncrementalMatchesFullBuild: 20 daily refreshes that read one day and drop
// one give exactly the profiles of full builds of the same windows; a refresh by
// hand between two (window ending at 11:00) too.
func TestIncrementalMatchesFullBuild(t *testing.T) {
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, shanghai)
	src := synthetic{n: 100_000, merchants: 40, start: start, step: 60 * 24 * time.Hour / 100_000}
	o := Options{Location: shanghai, MinDays: 3, MinTransactions: 10}
	inc := NewIncremental(o)
	inc.FullEvery = 1000
	var ends []time.Time
	for d := 35; d < 55; d++ {
		ends = append(ends, time.Date(2026, 10, 1+d, 3, 0, 0, 0, shanghai))
		if d == 40 {
			ends = append(ends, time.Date(2026, 10, 1+d, 11, 0, 0, 0, shanghai))
		}
	}
	for i, end := range ends {
		got, err := inc.Advance(context.Background(), src, end)
		if err != nil {
			t.Fatal(err)
		}
		want, err := Build(context.Background(), src, end, o)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && got.Records >= want.Records/3 {
			t.Errorf("refresh %d read %d records, a full build %d: not incremental", i, got.Records, want.Records)
		}
		if !got.From.Equal(want.From) || len(got.Merchants) != len(want.Merchants) {
			t.Fatalf("refresh %d (%v): from %v, %d merchants; full build from %v, %d", i, end, got.From, len(got.Merchants), want.From, len(want.Merchants))
		}
		for id, w := range want.Merchants {
			if g := got.Merchants[id]; g != w {
				t.Fatalf("refresh %d (%v), merchant %s:\nincremental %+v\nfull        %+v", i, end, id, g, w)
			}
		}
	}
	if inc.sinceFull != len(ends)-1 {
		t.Errorf("%d refreshes since the full build, want %d", inc.sinceFull, len(ends)-1)
	}
	// An end before the last one rebuilds from scratch.
	if _, err := inc.Advance(context.Background(), src, ends[0]); err != nil || inc.sinceFull != 0 {
		t.Errorf("going back: %v, %d since the full build", err, inc.sinceFull)
	}
}
