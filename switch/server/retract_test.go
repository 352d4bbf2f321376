package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/journal"
)

// The other nodes of a cluster fold a void, a terminal's reversal and the switch's own
// reversal of an approval from the journal's record versions, each exactly once, as
// the node that handled them does: a voided sale rung up again on another node is not
// a split purchase.
func TestRemoteFoldRetracts(t *testing.T) {
	dir := t.TempDir()
	rules := writeRules(t, dir, `
counters:
  - {name: card_sum_30m, dimension: card, measure: sum, window: 30m, where: 'outcome.approved && txn.txn_type == "purchase"'}
rules:
  - {id: split, condition: 'txn.txn_type == "purchase" && velocity.card_sum_30m + txn.amount > 1500', action: decline}
`)
	f := newFoldRig(t, dir, rules)
	record, write := f.record, f.write
	declined := f.declined

	sale := record("purchase", 1000, "")
	write(sale, nil)
	if !declined(1000) {
		t.Fatal("a second sale of 10.00 after a remote one passes: the remote sale was not observed")
	}
	// The void: the original's version that names it, then the void's own record.
	v := record("void", 1000, sale.RRN)
	reversed := *sale
	reversed.ReversedBy = v.RRN
	write(&reversed, sale)
	if !declined(1000) {
		t.Fatal("retracted before the void was answered")
	}
	write(v, nil)
	if declined(1000) {
		t.Fatal("a voided remote sale rung up again is declined")
	}
	// A later version of the void (a delivery mark) retracts nothing more.
	sale2 := record("purchase", 600, "")
	write(sale2, nil)
	again := *v
	again.Events = append(again.Events, journal.Event{State: journal.StateResponded, At: time.Now().UTC()})
	write(&again, v)
	if !declined(1000) {
		t.Fatal("a second version of the void retracted again")
	}
	// A terminal's reversal answered 00 that reversed nothing (the original was not
	// reversed by it) takes nothing back.
	rev := record("reversal", 600, sale2.RRN)
	write(rev, nil)
	if !declined(1000) {
		t.Fatal("a reversal that reversed nothing retracted")
	}
	// The switch's own reversal: the original's version that first carries it.
	und := *sale2
	und.ReversedBy = "switch:undelivered"
	write(&und, sale2)
	if declined(1500) {
		t.Fatal("a sale the switch reversed still counts")
	}
	und2 := und
	und2.Events = append(und2.Events, journal.Event{State: journal.StateInDoubt, At: time.Now().UTC()})
	sale3 := record("purchase", 500, "")
	write(sale3, nil)
	write(&und2, &und)
	if !declined(1001) {
		t.Fatal("the switch's reversal retracted twice")
	}
}

// TestRemoteFoldPartialRefunds: a purchase refunded in full by two partial refunds
// whose reservations were both made before either was answered (two terminals of the
// merchant, or one node with two refunds in flight: the original's lock is given up
// once a refund's reservation is written, before its issuer answers) loses its count
// once, as on the node that handled the refunds: the first refund reserved half
// (Partial), the second the rest. A node that folds the refunds' final records reads
// the original as it is when each final version comes, with both reservations in
// it, and takes each refund for the one that made the original whole: the
// purchase's count goes twice, and the card's other live purchase with it.
func TestRemoteFoldPartialRefunds(t *testing.T) {
	dir := t.TempDir()
	rules := writeRules(t, dir, `
counters:
  - {name: card_count_30m, dimension: card, measure: count, window: 30m,
     where: 'outcome.approved && txn.txn_type == "purchase"', retract: [void, reversal, refund]}
rules:
  - {id: busy_card, condition: 'txn.txn_type == "purchase" && velocity.card_count_30m >= 1', action: decline}
`)
	f := newFoldRig(t, dir, rules)
	record := f.record
	// write journals r as the cluster journal applies another node's version, and
	// folds it with the version the store held before.
	write := func(r *journal.Record) {
		t.Helper()
		prev, err := f.j.Get(r.RRN)
		if err != nil {
			prev = nil
		}
		f.write(r, prev)
	}
	busy := func() bool { return f.declined(100) }

	sale := record("purchase", 1000, "")
	write(sale)
	other := record("purchase", 300, "") // stays: the card has one live purchase
	write(other)
	// The stream's order: refund 1 reserves 5.00 and goes to its issuer; refund 2
	// reserves the other 5.00 and goes too; then both are answered 00.
	r1, r2 := record("refund", 500, sale.RRN), record("refund", 500, sale.RRN)
	// As the handling node wrote them: the original's Refunded once each refund's
	// amount was reserved on it.
	r1.RefundedTo, r2.RefundedTo = 500, 1000
	res1 := *sale
	res1.Refunded, res1.Rev = 500, 2
	write(&res1)
	w1 := *r1
	w1.RC = ""
	write(&w1)
	res2 := res1
	res2.Refunded, res2.Rev = 1000, 3
	write(&res2)
	w2 := *r2
	w2.RC = ""
	write(&w2)
	write(r1)
	write(r2)
	if !busy() {
		t.Fatal("after a purchase refunded in full in two parts, the card's other purchase (3.00, not refunded) no longer counts: the refunded purchase's count was taken out twice (each refund folded as the one that made it whole)")
	}
}

// writeRules writes a rules directory under dir holding one file of yaml, and
// returns it.
func writeRules(t *testing.T, dir, yaml string) string {
	t.Helper()
	rules := filepath.Join(dir, "rules")
	if err := os.Mkdir(rules, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rules, "r.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return rules
}

// testJournal opens a journal on a Badger under dir, closed when the test ends.
func testJournal(t *testing.T, dir string) *journal.Store {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, "db")).WithLogger(nil).WithSyncWrites(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	j, err := journal.Open(db, journal.Options{Dir: filepath.Join(dir, "journal")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = j.Close() })
	return j
}

// foldRig is a server folding other nodes' records (onRemoteRecord) into a risk
// engine with the rules under rules, over a journal under dir.
type foldRig struct {
	t  *testing.T
	e  *risk.Engine
	j  *journal.Store
	s  *Server
	t0 time.Time
	n  int
}

func newFoldRig(t *testing.T, dir, rules string) *foldRig {
	t.Helper()
	e, err := risk.New(rules, risk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	j := testJournal(t, dir)
	return &foldRig{t: t, e: e, j: j, s: &Server{Risk: e, Journal: j}, t0: time.Now().UTC().Add(-10 * time.Minute)}
}

// record makes the final record of an approved transaction of card c1, a second
// after the previous one.
func (f *foldRig) record(typ string, amount int64, orig string) *journal.Record {
	f.t.Helper()
	f.n++
	rrn, err := f.j.NextRRN()
	if err != nil {
		f.t.Fatal(err)
	}
	at := f.t0.Add(time.Duration(f.n) * time.Second)
	in := risk.Input{Txn: risk.Txn{Type: typ, Amount: int(amount), CardHash: "c1", Time: at}}
	return &journal.Record{RRN: rrn, Received: at, MTI: "0200", Type: typ, Amount: amount, CardHash: "c1", RC: "00",
		TID: "T0000001", STAN: fmt.Sprintf("%06d", f.n), DE7: "1201120000", OriginalRRN: orig, Facts: in.AppendBinary(nil)}
}

// write journals r (as the cluster journal applies a remote version) and folds it
// with prev, the version the store held before.
func (f *foldRig) write(r, prev *journal.Record) {
	f.t.Helper()
	c := *r
	if err := f.j.Write(context.Background(), &c, prev == nil, true); err != nil {
		f.t.Fatal(err)
	}
	f.s.onRemoteRecord(&c, prev, f.j.Get)
}

// declined says whether the rules decline a purchase of amount by card c1 now.
func (f *foldRig) declined(amount int) bool {
	in := risk.Input{Txn: risk.Txn{Type: risk.TxnPurchase, Amount: amount, CardHash: "c1", Time: time.Now().UTC()}}
	d := f.e.Evaluate(&in)
	return d.Declined()
}
