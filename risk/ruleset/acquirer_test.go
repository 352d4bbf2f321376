package ruleset

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/risk/state"
)

const acquirerRules = `
counters:
  - {name: acq_n, dimension: acquirer, window: 10m, where: 'outcome.approved'}
  - {name: acq_sum, dimension: acquirer, measure: sum, window: 10m, where: 'outcome.approved', retract: [void, reversal, refund]}
  - {name: card_n, dimension: card, window: 10m, where: 'outcome.approved'}
rules:
  - {id: r, condition: "velocity.acq_n + velocity.acq_sum + velocity.card_n >= 0", action: alert}
`

// acqInput is a purchase by card at merchant m, i minutes after 06:00.
func acqInput(card, m string, i int, amount int) *Input {
	in := purchase(amount)
	in.Txn.CardHash, in.Merchant.ID, in.Terminal.ID = card, m, "T"+m[len(m)-7:]
	in.Txn.Time = in.Txn.Time.Add(time.Duration(i) * time.Second)
	return in
}

// acqRead returns counter name as a transaction at 06:05 reads it.
func acqRead(t *testing.T, rs *RuleSet, store *state.Velocity, name string) int {
	t.Helper()
	probe := acqInput("probe", "000000000099999", 300, 1)
	return rs.Prepare(probe, store, nil).Velocity[rs.counterByName[name].Index]
}

// An acquirer counter is one series for every transaction, whatever its card,
// terminal or merchant (or without any of them), kept as stripes; a void takes
// back from the stripe its sale fed, so that every retraction lands.
func TestAcquirerDimension(t *testing.T) {
	rs, err := Load(writeRules(t, map[string]string{"a.yaml": acquirerRules}), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s := rs.counterByName["acq_n"].spec.Stripes; s != state.AcquirerStripes {
		t.Fatalf("acq_n has %d stripes, want %d", s, state.AcquirerStripes)
	}
	if s := rs.counterByName["card_n"].spec.Stripes; s != 0 {
		t.Fatalf("card_n has %d stripes, want 0", s)
	}
	store := state.NewVelocity(nil, 0, 0)
	ok := Outcome{Approved: true, ResponseCode: "00"}
	var sales []*Input
	for i := range 60 {
		in := acqInput(fmt.Sprintf("card%04d", i), fmt.Sprintf("0000000000%05d", i%7), i, 100+i)
		if i%10 == 9 {
			in.Txn.CardHash = "" // a QR payment: no card, still the acquirer's
		}
		rs.Observe(in, ok, store)
		sales = append(sales, in)
	}
	sum := 0
	for _, in := range sales {
		sum += in.Txn.Amount
	}
	if got := acqRead(t, rs, store, "acq_n"); got != 60 {
		t.Errorf("acq_n = %d, want 60", got)
	}
	if got := acqRead(t, rs, store, "acq_sum"); got != sum {
		t.Errorf("acq_sum = %d, want %d", got, sum)
	}
	if got := store.Series(); got < 60+8 {
		t.Errorf("%d series: 60 cards and the acquirer's stripes should be more than 68", got)
	}
	for i, in := range sales[:30] {
		rs.Retract(in, ok, Retraction{Kind: RetractVoid}, store)
		sum -= in.Txn.Amount
		if got := acqRead(t, rs, store, "acq_sum"); got != sum {
			t.Fatalf("after %d voids: acq_sum = %d, want %d", i+1, got, sum)
		}
	}
	if got := acqRead(t, rs, store, "acq_n"); got != 30 {
		t.Errorf("after 30 voids: acq_n = %d, want 30", got)
	}
}

// Two nodes of a cluster each observe their own transactions and fold the other's
// (one Observe per record, as switch/server's foldVelocity does): both read the
// acquirer-wide count of the cluster, each transaction counted once.
func TestAcquirerClusterFold(t *testing.T) {
	rs, err := Load(writeRules(t, map[string]string{"a.yaml": acquirerRules}), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nodes := []*state.Velocity{state.NewVelocity(nil, 0, 0), state.NewVelocity(nil, 0, 0)}
	ok := Outcome{Approved: true, ResponseCode: "00"}
	for i := range 40 {
		in := acqInput(fmt.Sprintf("card%04d", i), fmt.Sprintf("0000000000%05d", i), i, 100)
		rs.Observe(in, ok, nodes[i%2])     // the node that answered it
		rs.Observe(in, ok, nodes[(i+1)%2]) // the other, from the cluster journal
	}
	for n, store := range nodes {
		if got := acqRead(t, rs, store, "acq_n"); got != 40 {
			t.Errorf("node %d: acq_n = %d, want 40", n, got)
		}
	}
}

func TestAcquirerDimensionProblems(t *testing.T) {
	for _, c := range []struct{ counter, want string }{
		{`{name: x, dimension: [acquirer, merchant], window: 10m}`,
			`d.yaml:2: counter x: dimension acquirer is the whole switch: it cannot be combined with merchant (use those alone)`},
		{`{name: x, dimension: acquirer, measure: distinct_cards, window: 10m}`,
			`d.yaml:2: counter x: measure distinct_cards with dimension acquirer`},
	} {
		got := problems(t, map[string]string{"d.yaml": "counters:\n  - " + c.counter + "\nrules:\n  - {id: r, condition: \"velocity.x > 0\", action: alert}\n"})
		if !strings.Contains(got, c.want) {
			t.Errorf("%s:\n got %s\nwant %s", c.counter, got, c.want)
		}
	}
}
