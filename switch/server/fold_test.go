package server

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/pipeline"
	"github.com/switchyard/switchyard/switch/termclient"
)

// ownFoldRules count a card's approved purchases (voids and reversals take them
// back, the default for such a where), and the same acquirer-wide (the tests'
// purchases are all of one card); the allow rule reads the counters, so that
// countApproved can show them.
const ownFoldRules = `
counters:
  - {name: card_approved_30m, dimension: card, measure: count, window: 30m, where: 'outcome.approved && txn.txn_type == "purchase"'}
  - {name: acquirer_approved_30m, dimension: acquirer, measure: count, window: 30m, where: 'outcome.approved && txn.txn_type == "purchase"'}
rules:
  - {id: watch, condition: 'velocity.card_approved_30m >= 0 && velocity.acquirer_approved_30m >= 0', action: allow}
`

// ownFoldNode is node 1 of a one-node cluster whose JetStream store (the stream,
// which outlives a node's disk) is under base, with the rules above, on the data
// directory dir.
func ownFoldNode(t *testing.T, base, dir string) *config.Config {
	t.Helper()
	cfg := oneNodeCluster(t, dir, filepath.Join(base, "jetstream"))
	cfg.RulesDir = filepath.Join(base, "rules")
	return cfg
}

// countApproved is the card's count of approved purchases in s's velocity
// counters, as a rule reads it now. The acquirer-wide count (every purchase of the
// tests is of that card) must be the same: a record folded counts once there too,
// and a folded void takes back from the stripe its purchase fed.
func countApproved(t *testing.T, s *Server, pan string) int {
	t.Helper()
	in := risk.Input{Txn: risk.Txn{Type: risk.TxnPurchase, Amount: 1000, Currency: "156", CardHash: s.Pipeline.CardHash(pan), Time: time.Now().UTC()}}
	d := s.Risk.Evaluate(&in)
	got := map[string]int{}
	for _, tr := range s.Risk.Snapshot(&in).HitValues(&d) {
		for _, v := range tr.Values {
			if v.Name == "velocity.card_approved_30m" || v.Name == "velocity.acquirer_approved_30m" {
				n, ok := v.Value.(int)
				if !ok {
					t.Fatalf("%s is %#v (%s)", v.Name, v.Value, v.Error)
				}
				got[v.Name] = n
			}
		}
	}
	card, ok1 := got["velocity.card_approved_30m"]
	acq, ok2 := got["velocity.acquirer_approved_30m"]
	if !ok1 || !ok2 {
		t.Fatalf("the rule reading the counters did not hit: %+v (values %v)", d, got)
	}
	if acq != card {
		t.Fatalf("velocity.acquirer_approved_30m = %d, velocity.card_approved_30m = %d: the acquirer-wide count should be the card's", acq, card)
	}
	return card
}

// approveOnCard sends n approved purchases of 10.00 by the card to s and voids the
// last of them: the card's count is n-1.
func approveOnCard(t *testing.T, s *Server, pan string, n int) {
	t.Helper()
	c := dial(t, s, "ascii", message.DialectASCII)
	var last termclient.Result
	for range n {
		if last = send(t, c, message.DialectASCII, loadPurchase(1, pan, 1000)); last.RC != "00" {
			t.Fatalf("purchase: %+v", last)
		}
	}
	v := loadPurchase(1, pan, 1000)
	v.ProcCode, v.RRN, v.AuthCode = message.PCVoid, last.RRN, last.AuthCode
	if r := send(t, c, message.DialectASCII, v); r.RC != "00" {
		t.Fatalf("void of %s: %+v", last.RRN, r)
	}
}

// TestRebuiltNodeCountsItsOwn: a node rebuilt on an empty disk gets its own records
// back from the stream (the cluster journal's applier, OnRestored), and folds them
// into its velocity counters as it folds the other nodes' (a void taking its
// purchase back): a card-testing burst that went through it before the disk was
// lost counts in its rules. Before, it folded only the other nodes' records, and
// its counters showed none of its own transactions until the window had passed.
func TestRebuiltNodeCountsItsOwn(t *testing.T) {
	base := t.TempDir()
	writeRules(t, base, ownFoldRules)
	pan := testCard(70)

	s1 := start(t, ownFoldNode(t, base, filepath.Join(base, "a")), nil)
	approveOnCard(t, s1, pan, 4)
	if n := countApproved(t, s1, pan); n != 3 {
		t.Fatalf("the node that handled them counts %d approved purchases of the card, want 3 (4, one voided)", n)
	}
	if err := s1.Drain(); err != nil {
		t.Fatal(err)
	}

	s2 := start(t, ownFoldNode(t, base, filepath.Join(base, "b")), nil) // the disk lost
	if n := countApproved(t, s2, pan); n != 3 {
		t.Fatalf("the node rebuilt on an empty disk counts %d approved purchases of the card, want 3: its own records came back from the stream and were not folded", n)
	}
}

// TestRestartedNodeCountsItsOwnOnce: a node that restarts on its own disk has its
// counters back from it and does not fold its own records again, nor does a node
// rebuilt on an empty disk when it restarts on that disk (its counters hold what
// it folded, and what it observed since).
func TestRestartedNodeCountsItsOwnOnce(t *testing.T) {
	base := t.TempDir()
	writeRules(t, base, ownFoldRules)
	pan := testCard(71)
	a, b := filepath.Join(base, "a"), filepath.Join(base, "b")

	s1 := start(t, ownFoldNode(t, base, a), nil)
	approveOnCard(t, s1, pan, 3)
	if err := s1.Drain(); err != nil {
		t.Fatal(err)
	}
	s2 := start(t, ownFoldNode(t, base, a), nil) // the same disk
	if n := countApproved(t, s2, pan); n != 2 {
		t.Fatalf("the node restarted on its disk counts %d approved purchases of the card, want 2", n)
	}
	if err := s2.Drain(); err != nil {
		t.Fatal(err)
	}

	s3 := start(t, ownFoldNode(t, base, b), nil) // the disk lost
	if n := countApproved(t, s3, pan); n != 2 {
		t.Fatalf("the node rebuilt on an empty disk counts %d approved purchases of the card, want 2", n)
	}
	approveOnCard(t, s3, pan, 2)
	if err := s3.Drain(); err != nil {
		t.Fatal(err)
	}
	s4 := start(t, ownFoldNode(t, base, b), nil) // the rebuilt node's disk
	if n := countApproved(t, s4, pan); n != 3 {
		t.Fatalf("the rebuilt node restarted on its disk counts %d approved purchases of the card, want 3", n)
	}
}

// qrFoldRules count the merchant's and the card's approved purchases; the allow rule
// reads both, so that merchantApproved can show them.
const qrFoldRules = `
counters:
  - {name: merchant_approved_24h, dimension: merchant, measure: count, window: 24h, where: 'outcome.approved && txn.txn_type == "purchase"'}
  - {name: card_approved_24h, dimension: card, measure: count, window: 24h, where: 'outcome.approved && txn.txn_type == "purchase"'}
rules:
  - {id: watch, condition: 'velocity.merchant_approved_24h >= 0 && velocity.card_approved_24h >= 0', action: allow}
`

// merchantApproved is merchant mid's count of approved purchases in s's velocity
// counters, and that of the empty card (what a QR payment counted as a card would
// count in), as a rule reads them now.
func merchantApproved(t *testing.T, s *Server, mid string) (merchant, noCard int) {
	t.Helper()
	in := risk.Input{Txn: risk.Txn{Type: risk.TxnPurchase, Amount: 1000, Currency: "156", Time: time.Now().UTC()}, Merchant: risk.Merchant{ID: mid}}
	d := s.Risk.Evaluate(&in)
	found := 0
	for _, tr := range s.Risk.Snapshot(&in).HitValues(&d) {
		for _, v := range tr.Values {
			n, _ := v.Value.(int)
			switch v.Name {
			case "velocity.merchant_approved_24h":
				merchant, found = n, found+1
			case "velocity.card_approved_24h":
				noCard = n
			}
		}
	}
	if found == 0 {
		t.Fatalf("the rule reading velocity.merchant_approved_24h did not hit: %+v", d)
	}
	return merchant, noCard
}

// TestQRPaymentCountsForItsMerchant: a merchant-presented QR payment went through no
// velocity counter, so a merchant's daily count on cards did not see it. Journaled by
// the pipeline, it counts in its merchant's counters on the node that journals it and,
// from its record's facts, on a node that folds it from the stream (here the node
// rebuilt on an empty disk, which folds its own records as it folds the other nodes':
// server.foldVelocity); in no card counter.
func TestQRPaymentCountsForItsMerchant(t *testing.T) {
	base := t.TempDir()
	writeRules(t, base, qrFoldRules)
	const mid = "000000000000001" // the demo's merchant of T0000001

	s1 := start(t, ownFoldNode(t, base, filepath.Join(base, "a")), nil)
	rrn, err := s1.Journal.NextRRN()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s1.Pipeline.RecordOrderPayment(t.Context(), pipeline.OrderPayment{RRN: rrn, TID: "T0000001", MID: mid, Currency: "156",
		Amount: 2500, Network: "wechat", Connector: "wechat", AuthCode: "123456", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if m, c := merchantApproved(t, s1, mid); m != 1 || c != 0 {
		t.Fatalf("the node that journaled a QR payment counts %d approved purchases of its merchant and %d of no card, want 1 and 0", m, c)
	}
	if err := s1.Drain(); err != nil {
		t.Fatal(err)
	}

	s2 := start(t, ownFoldNode(t, base, filepath.Join(base, "b")), nil) // folds the stream's records
	if m, c := merchantApproved(t, s2, mid); m != 1 || c != 0 {
		t.Fatalf("a node folding the QR payment's record counts %d approved purchases of its merchant and %d of no card, want 1 and 0", m, c)
	}
}
