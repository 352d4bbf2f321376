package risk

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

// memHistory is an in-memory journal: test data for the History interface.
type memHistory struct{ recs []Record }

func (h *memHistory) Range(ctx context.Context, from, to time.Time, fn func(Record) error) error {
	for _, r := range h.recs {
		if r.Time.Before(from) || !r.Time.Before(to) {
			continue
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

func (h *memHistory) ByRRN(ctx context.Context, rrn string) (Record, error) {
	for _, r := range h.recs {
		if r.RRN == rrn {
			return r, nil
		}
	}
	return Record{}, fmt.Errorf("RRN %s: %w", rrn, ErrNotFound)
}

// journalCounts are what the generated journal holds, by construction.
type journalCounts struct {
	ordinary, round, softpos int
	roundAmount              int64
	start, end               time.Time
}

// generateJournal runs a day of traffic through the rules of dir the way the
// switch would and journals it: ordinary grocery purchases, round amounts of
// 5,000.00 to 29,000.00 at the grocery, and SoftPOS purchases over the limit.
func generateJournal(t testing.TB, dir string) (*memHistory, journalCounts) {
	t.Helper()
	e, err := New(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	start := time.Date(2025, 6, 4, 1, 0, 0, 0, time.UTC)
	c := journalCounts{ordinary: 2000, round: 25, softpos: 10, start: start}
	var ins []Input
	for i := 0; i < c.ordinary; i++ {
		amount := 1000 + (i*7919)%39000
		if r := amount % 100; r == 5 || r == 51 || r == 91 {
			amount++
		}
		in := simPurchase(start.Add(time.Duration(i)*10*time.Second), simGrocery.t, simGrocery.m, fmt.Sprintf("shopper%05d", i), amount)
		ins = append(ins, in)
	}
	for k := 0; k < c.round; k++ {
		amount := (5 + k) * 100000
		c.roundAmount += int64(amount)
		ins = append(ins, simPurchase(start.Add(time.Duration(k)*13*time.Minute+3*time.Second), simGrocery.t, simGrocery.m, fmt.Sprintf("round%03d", k), amount))
	}
	for k := 0; k < c.softpos; k++ {
		ins = append(ins, simPurchase(start.Add(time.Duration(k)*31*time.Minute+7*time.Second), simStall.t, simStall.m, fmt.Sprintf("big%03d", k), 150000))
	}
	sort.SliceStable(ins, func(i, j int) bool { return ins[i].Txn.Time.Before(ins[j].Txn.Time) })
	h := &memHistory{}
	for i := range ins {
		in := &ins[i]
		in.Txn.RRN = fmt.Sprintf("%012d", i+1)
		d := e.Evaluate(in)
		out := demoIssuer(in.Txn.Amount)
		if d.Declined() {
			out = OutcomeOf(&d, d.ResponseCode)
		}
		e.Observe(in, out)
		h.recs = append(h.recs, Record{Time: in.Txn.Time, RRN: in.Txn.RRN, Input: *in, Outcome: out, Decision: d})
	}
	c.end = h.recs[len(h.recs)-1].Time.Add(time.Second)
	return h, c
}

// copyRules copies the default pack into a new directory and adds extra files.
func copyRules(t testing.TB, extra map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	files, err := filepath.Glob("../rules/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("default pack: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range extra {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestBacktestGeneratedJournal(t *testing.T) {
	h, c := generateJournal(t, "../rules")
	candidate, err := Load(copyRules(t, map[string]string{"90-analyst.yaml": bigRound}), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var progress []float64
	rep, err := Backtest(context.Background(), h, candidate, BacktestOptions{From: c.start, To: c.end, Warmup: -1,
		Progress: func(done float64, read int) { progress = append(progress, done) }})
	if err != nil {
		t.Fatal(err)
	}
	total := c.ordinary + c.round + c.softpos
	if rep.Transactions != total || rep.WarmupTxns != 0 {
		t.Errorf("transactions %d (warm-up %d), want %d", rep.Transactions, rep.WarmupTxns, total)
	}
	if rep.DeclinesBefore != c.softpos || rep.DeclinesAfter != c.softpos+c.round {
		t.Errorf("declines before %d after %d, want %d and %d", rep.DeclinesBefore, rep.DeclinesAfter, c.softpos, c.softpos+c.round)
	}
	if rep.DeclineAmountAfter-rep.DeclineAmountBefore != c.roundAmount {
		t.Errorf("decline amounts %d -> %d, want a difference of %d", rep.DeclineAmountBefore, rep.DeclineAmountAfter, c.roundAmount)
	}
	stats := map[string]*RuleStats{}
	for _, s := range rep.Rules {
		stats[s.Rule] = s
	}
	br := stats["big-round"]
	if br == nil || br.Hits != c.round || br.WouldDecline != c.round || br.Decided != c.round || br.WouldDeclineAmount != c.roundAmount || br.HitsBefore != 0 {
		t.Errorf("big-round stats %+v", br)
	}
	sp := stats["softpos-limit"]
	if sp == nil || sp.Hits != c.softpos || sp.HitsBefore != c.softpos || sp.Decided != c.softpos || sp.WouldDeclineAmount != int64(c.softpos)*150000 {
		t.Errorf("softpos-limit stats %+v", sp)
	}
	for id, s := range stats {
		if id != "big-round" && id != "softpos-limit" && s.Decided > 0 {
			t.Errorf("rule %s decided %d transactions of an ordinary journal", id, s.Decided)
		}
	}
	if rep.Changed != c.round || len(rep.Changes) != c.round {
		t.Fatalf("changed %d (%d listed), want %d", rep.Changed, len(rep.Changes), c.round)
	}
	for _, ch := range rep.Changes {
		if ch.Before.Action != ActionAllow || ch.After.Action != ActionDecline || ch.After.Rule != "big-round" ||
			ch.After.ResponseCode != "05" || ch.After.Reason != "round-amount" || ch.Amount%100000 != 0 || ch.Terminal != "T0000001" {
			t.Errorf("change %+v", ch)
		}
	}
	if len(progress) == 0 || progress[len(progress)-1] != 1 {
		t.Errorf("progress %v", progress)
	}

	// The same rules as the journal's: nothing changes.
	same, _ := Load("../rules", LoadOptions{})
	rep, err = Backtest(context.Background(), h, same, BacktestOptions{From: c.start, To: c.end, Warmup: -1, MaxChanges: 3})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Changed != 0 || rep.DeclinesAfter != rep.DeclinesBefore {
		t.Errorf("same rules: %d changed, declines %d -> %d: %+v", rep.Changed, rep.DeclinesBefore, rep.DeclinesAfter, rep.Changes)
	}

	// Half the day, with the first half as warm-up.
	mid := c.start.Add(c.end.Sub(c.start) / 2)
	rep, err = Backtest(context.Background(), h, candidate, BacktestOptions{From: mid, To: c.end, Warmup: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if rep.WarmupTxns+rep.Transactions != total || rep.WarmupTxns == 0 {
		t.Errorf("warm-up %d + reported %d, want %d", rep.WarmupTxns, rep.Transactions, total)
	}
	if _, err := Backtest(context.Background(), h, candidate, BacktestOptions{From: c.end, To: c.start}); err == nil {
		t.Error("backtest with --to before --from")
	}
}

func TestExplain(t *testing.T) {
	h, _ := generateJournal(t, "../rules")
	rs, err := Load("../rules", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var rrn string
	for _, r := range h.recs {
		if r.Decision.Rule == "softpos-limit" {
			rrn = r.RRN
			break
		}
	}
	ex, err := Explain(context.Background(), h, rs, rrn, -1)
	if err != nil {
		t.Fatal(err)
	}
	if !ex.SameVersion || ex.Decision.Rule != "softpos-limit" || ex.Record.RRN != rrn || ex.Replayed == 0 {
		t.Errorf("explanation %+v", ex)
	}
	if len(ex.Rules) != len(rs.Rules) || !ex.Rules[0].Hit {
		t.Fatalf("traces %+v", ex.Rules)
	}
	var found bool
	for _, tr := range ex.Rules {
		if tr.Rule != "softpos-limit" {
			continue
		}
		found = true
		vals := map[string]string{}
		for _, v := range tr.Values {
			vals[v.Name] = v.Text()
		}
		if vals["terminal.kind"] != `"softpos"` || vals["txn.amount"] != "150000" || !tr.Hit || tr.Reason != "softpos-limit" {
			t.Errorf("softpos-limit trace %+v", tr)
		}
	}
	if !found {
		t.Error("no trace of softpos-limit")
	}
	// Velocity values are rebuilt from the journal before the transaction:
	// the grocery takes a purchase every 10 s.
	ex, err = Explain(context.Background(), h, rs, h.recs[1000].RRN, -1)
	if err != nil {
		t.Fatal(err)
	}
	seen := false
	for _, tr := range ex.Rules {
		for _, v := range tr.Values {
			if v.Name == "velocity.terminal_attempts_1m" {
				seen = true
				if n := v.Value.(int); n < 5 || n > 7 {
					t.Errorf("terminal_attempts_1m %d, want about 6: counters not rebuilt", n)
				}
			}
		}
	}
	if !seen {
		t.Error("no rule showed velocity.terminal_attempts_1m")
	}
	if _, err := Explain(context.Background(), h, rs, "999999999999", -1); err == nil {
		t.Error("explained an unknown RRN")
	}
}

// TestBacktestUndecided: a merchant-presented QR payment (Record.Undecided: the
// counters saw it, the rules never decided it) is replayed into the counters in a
// backtest's window but not evaluated or reported: the card purchase after it sees
// it in the merchant's count, and the report holds the card purchase alone.
func TestBacktestUndecided(t *testing.T) {
	dir := t.TempDir()
	rules := `
counters:
  - {name: m_count, dimension: merchant, measure: count, window: 24h, where: 'outcome.approved && txn.txn_type == "purchase"'}
rules:
  - {id: second-of-the-day, condition: 'txn.txn_type == "purchase" && velocity.m_count >= 1', action: decline, response_code: "61"}
`
	if err := os.WriteFile(filepath.Join(dir, "r.yaml"), []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := New(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	qr := Input{Txn: Txn{Type: TxnPurchase, Amount: 500, Time: t0, QR: true, Wallet: "wechat", RRN: "000000000001"}, Merchant: Merchant{ID: "M1"}}
	card := Input{Txn: Txn{Type: TxnPurchase, Amount: 700, Time: t0.Add(time.Minute), CardHash: "c1", RRN: "000000000002"}, Merchant: Merchant{ID: "M1"}}
	approved := Outcome{Approved: true, ResponseCode: "00"}
	h := &memHistory{recs: []Record{
		{Time: qr.Txn.Time, RRN: qr.Txn.RRN, Input: qr, Outcome: approved, Decision: Decision{Action: ActionAllow}, Undecided: true},
		{Time: card.Txn.Time, RRN: card.Txn.RRN, Input: card, Outcome: approved, Decision: Decision{Action: ActionAllow}},
	}}
	rep, err := Backtest(t.Context(), h, e.RuleSet(), BacktestOptions{From: t0.Add(-time.Minute), To: t0.Add(time.Hour), Warmup: 0})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Transactions != 1 || rep.WarmupTxns != 0 || rep.DeclinesAfter != 1 {
		t.Fatalf("backtest of a QR payment then a card purchase of the merchant: %d transactions, %d warm-up, %d declines after; want 1, 0, 1 (the QR payment counted, not evaluated)",
			rep.Transactions, rep.WarmupTxns, rep.DeclinesAfter)
	}
}

// TestBacktestAmountsByCurrency: the amounts a backtest reports are by currency as
// well: a decline of 1000 yen and one of 1500 fen are 1000 of 392 and 1500 of 156,
// not 2500 of nothing; a changed decision names its currency.
func TestBacktestAmountsByCurrency(t *testing.T) {
	dir := t.TempDir()
	rules := `
rules:
  - {id: big, condition: 'txn.amount >= 1000', action: decline, response_code: "61"}
`
	if err := os.WriteFile(filepath.Join(dir, "r.yaml"), []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := New(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	approved := Outcome{Approved: true, ResponseCode: "00"}
	var recs []Record
	for i, c := range []struct {
		cur    string
		amount int
	}{{"392", 1000}, {"156", 1500}, {"156", 2000}} {
		in := Input{Txn: Txn{Type: TxnPurchase, Amount: c.amount, Currency: c.cur, Time: t0.Add(time.Duration(i) * time.Minute), CardHash: "c1",
			RRN: fmt.Sprintf("00000000000%d", i+1)}, Merchant: Merchant{ID: "M1"}}
		recs = append(recs, Record{Time: in.Txn.Time, RRN: in.Txn.RRN, Input: in, Outcome: approved, Decision: Decision{Action: ActionAllow}})
	}
	rep, err := Backtest(t.Context(), &memHistory{recs: recs}, e.RuleSet(), BacktestOptions{From: t0.Add(-time.Minute), To: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"392": 1000, "156": 3500}
	if !maps.Equal(rep.DeclineAmountsAfter, want) || len(rep.DeclineAmountsBefore) != 0 {
		t.Errorf("declines after by currency %v (before %v), want %v", rep.DeclineAmountsAfter, rep.DeclineAmountsBefore, want)
	}
	if len(rep.Rules) != 1 || !maps.Equal(rep.Rules[0].WouldDeclineAmounts, want) {
		t.Errorf("rule's would-decline amounts by currency: %+v, want %v", rep.Rules, want)
	}
	if len(rep.Changes) != 3 || rep.Changes[0].Currency != "392" || rep.Changes[1].Currency != "156" {
		t.Errorf("changes: %+v, want their currencies", rep.Changes)
	}
}
