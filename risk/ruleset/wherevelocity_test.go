package ruleset

import (
	"fmt"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/risk/state"
)

// A counter of new cards only: its where filter reads a card counter declared in
// another file (before or after it), whose value is what a rule evaluating the
// transaction would have read: before the transaction itself is counted,
// whichever counter is declared first.

var whereVelocityFiles = map[string]string{
	"10-acq.yaml": `
counters:
  - name: acq_new_attempts
    dimension: acquirer
    window: 10m
    where: txn.amount <= 3000 && velocity.card_seen_24h == 0
  - name: acq_new_declines
    dimension: acquirer
    window: 10m
    where: txn.amount <= 3000 && velocity.card_seen_24h == 0 && !outcome.approved
  - {name: acq_attempts, dimension: acquirer, window: 10m, where: txn.amount <= 3000}
rules:
  - id: r
    condition: velocity.acq_new_declines * 100 >= velocity.acq_new_attempts * 30 && velocity.acq_attempts >= 0
    action: alert
`,
	"card.yaml": `
counters:
  - {name: card_seen_24h, dimension: card, window: 24h, resolution: 10m}
`,
}

func TestWhereReadsVelocity(t *testing.T) {
	for _, cardFile := range []string{"05-card.yaml", "20-card.yaml"} {
		t.Run(cardFile, func(t *testing.T) {
			testWhereReadsVelocity(t, map[string]string{"10-acq.yaml": whereVelocityFiles["10-acq.yaml"], cardFile: whereVelocityFiles["card.yaml"]})
		})
	}
}

// testWhereReadsVelocity runs TestWhereReadsVelocity over files.
func testWhereReadsVelocity(t *testing.T, files map[string]string) {
	rs, err := Load(writeRules(t, files), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range rs.Warnings {
		if strings.Contains(w.Message, "card_seen_24h") {
			t.Errorf("a counter read by a where filter is read: %s", w)
		}
	}
	store := state.NewVelocity(nil, 0, 0)
	ok, declined := Outcome{Approved: true, ResponseCode: "00"}, Outcome{ResponseCode: "14"}
	// 30 commuters rode at 05:00 and ride again from 06:00; 10 new cards pay too,
	// 4 of them declined; one commuter also pays a 50.00 ticket.
	for i := range 30 {
		in := acqInput(fmt.Sprintf("commuter%02d", i), "000000000000011", i, 100)
		in.Txn.Time = in.Txn.Time.Add(-60 * 60e9)
		rs.Observe(in, ok, store)
	}
	for i := range 30 {
		out := ok
		if i%10 == 0 {
			out = declined
		}
		rs.Observe(acqInput(fmt.Sprintf("commuter%02d", i), "000000000000011", 10+i, 100), out, store)
	}
	for i := range 10 {
		out := ok
		if i < 4 {
			out = declined
		}
		rs.Observe(acqInput(fmt.Sprintf("new%02d", i), "000000000000012", 50+i, 200), out, store)
	}
	rs.Observe(acqInput("commuter00", "000000000000013", 70, 5000), ok, store)
	for name, want := range map[string]int{"acq_new_attempts": 10, "acq_new_declines": 4, "acq_attempts": 40} {
		if got := acqRead(t, rs, store, name); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
	// No rule reads card_seen_24h: Observe alone does, from the store.
	seen := rs.counterByName["card_seen_24h"]
	commuter := acqInput("commuter05", "000000000000011", 300, 100)
	if key, ok := counterKey(seen.dims, commuter); !ok || store.Read(&seen.spec, key, commuter.Txn.Time.UnixNano()) != 2 {
		t.Errorf("card_seen_24h of a commuter = %d, want 2", store.Read(&seen.spec, key, commuter.Txn.Time.UnixNano()))
	}
	// A new card's second attempt is no longer new.
	rs.Observe(acqInput("new00", "000000000000012", 80, 200), declined, store)
	if got := acqRead(t, rs, store, "acq_new_attempts"); got != 10 {
		t.Errorf("after a new card's second attempt: acq_new_attempts = %d, want 10", got)
	}
	if d := rs.Evaluate(acqInput("probe", "000000000000014", 300, 100), store, nil); d.Action != ActionAlert {
		t.Errorf("5 new-card declines of 10 new-card attempts: decision %s, want alert", d.Action)
	}
}
