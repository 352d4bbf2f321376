package qrorder

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/internal/statelog"
)

// legacyPaid is order id as a version before 6 December 2026 (third release)
// stored it once paid by network's transaction txn (the JSON it wrote: the network
// beside the transaction ID, every version stored it; network "" for an order with
// none recorded).
func legacyPaid(id, network, txn string, at time.Time) []byte {
	net := ""
	if network != "" {
		net = fmt.Sprintf(`"network":%q,"connector":%q,`, network, network)
	}
	return fmt.Appendf(nil, `{"id":%q,"tid":"T0000001","mid":"000000000000001","currency":"156","amount":1000,"created":%q,"expires":%q,"state":"paid","payload":"000201",%s"transaction_id":%q,"paid_amount":1000,"paid_at":%q}`,
		id, at.Format(time.RFC3339Nano), at.Add(time.Minute).Format(time.RFC3339Nano), net, txn, at.Format(time.RFC3339Nano))
}

// TestBookNetworksShareTransactionIDs: a transaction ID is its network's, and two
// networks may give one ID to two payments. Two orders paid by WeChat Pay and Alipay
// under the same ID are both paid, and each network's repeat is a repeat; Alipay's
// payment under that ID on the order WeChat Pay paid is another payment (late: the
// network refunds it), not a repeat of WeChat Pay's, which it was taken for (the
// network answered SUCCESS, the payer's money in no journal). Orders stored by an
// earlier version (the network beside the ID, or none) still see their repeat.
func TestBookNetworksShareTransactionIDs(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	c := &clock{t: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)}
	b, err := NewBook(db, Options{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, id := range []string{"000000000041", "000000000042"} {
		if err := b.Create(ctx, Order{ID: id, TID: "T0000001", MID: "000000000000001", Currency: "156", Amount: 1000,
			Created: c.now(), Expires: c.now().Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	wx := Payment{Network: "wechat", Connector: "wechat", TransactionID: "4200000041", Amount: 1000}
	ali := Payment{Network: "alipay", Connector: "alipay", TransactionID: "4200000041", Amount: 1000}
	pay := func(id string, p Payment, want Outcome, what string) Order {
		t.Helper()
		o, out, err := b.Pay(ctx, id, p)
		if err != nil || out != want {
			t.Fatalf("%s: %v %v, want %v", what, out, err, want)
		}
		return o
	}
	if o := pay("000000000041", wx, Taken, "WeChat Pay's payment"); o.State != Paid || o.Network != "wechat" {
		t.Fatalf("order 41: %+v", o)
	}
	if o := pay("000000000042", ali, Taken, "Alipay's payment under the same ID, another order"); o.State != Paid || o.Network != "alipay" {
		t.Fatalf("order 42: %+v", o)
	}
	pay("000000000041", wx, Again, "WeChat Pay's repeat")
	pay("000000000042", ali, Again, "Alipay's repeat")
	if o := pay("000000000041", ali, Late, "Alipay's payment under WeChat Pay's ID on WeChat Pay's order"); o.State != Paid || o.Network != "wechat" {
		t.Fatalf("order 41 after Alipay's payment: %+v, want paid by WeChat Pay still", o)
	}

	// Orders stored before the upgrade.
	put := func(id string, v []byte) {
		if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(prefix+id), v) }); err != nil {
			t.Fatal(err)
		}
	}
	put("000000000043", legacyPaid("000000000043", "wechat", "4200000043", c.now()))
	put("000000000044", legacyPaid("000000000044", "", "4200000044", c.now()))
	pay("000000000043", Payment{Network: "wechat", Connector: "wechat", TransactionID: "4200000043", Amount: 1000}, Again, "a repeat of a payment taken before the upgrade")
	pay("000000000043", Payment{Network: "alipay", Connector: "alipay", TransactionID: "4200000043", Amount: 1000}, Late, "another network's ID on an order paid before the upgrade")
	pay("000000000044", Payment{Network: "wechat", Connector: "wechat", TransactionID: "4200000044", Amount: 1000}, Again, "a repeat on an order stored without its network")
	if o, _ := b.Get("000000000043"); o.State != Paid || o.Network != "wechat" || o.TransactionID != "4200000043" {
		t.Fatalf("order 43: %+v", o)
	}
}

// TestBookSharedNetworksShareTransactionIDs: in a cluster, WeChat Pay's payment
// taken on node A, then Alipay's payment under the same ID notified to node B, is
// late on B (refunded), not a repeat; WeChat Pay's repeat on B is a repeat. Every
// node stores the order as an earlier version decides it (the other network's
// payment changes nothing), so nodes of both versions agree during an upgrade: the
// request of Alipay's payment resolves to no write.
func TestBookSharedNetworksShareTransactionIDs(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)}
	a, b, mem, decided := twoNodes(t, c)
	ctx := context.Background()
	if err := a.b.Create(ctx, Order{ID: "100000000041", TID: "T0000001", MID: "000000000000001", Currency: "156", Amount: 1000,
		Created: c.now(), Expires: c.now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	wx := Payment{Network: "wechat", Connector: "wechat", TransactionID: "4200000041", Amount: 1000}
	ali := Payment{Network: "alipay", Connector: "alipay", TransactionID: "4200000041", Amount: 1000}
	if _, out, err := a.b.Pay(ctx, "100000000041", wx); err != nil || out != Taken {
		t.Fatalf("WeChat Pay's payment on A: %v %v", out, err)
	}
	if o, out, err := b.b.Pay(ctx, "100000000041", ali); err != nil || out != Late || o.Network != "wechat" || o.State != Paid {
		t.Fatalf("Alipay's payment under the same ID on B: %v %v %+v; want late, the order paid by WeChat Pay", out, err, o)
	}
	if _, out, err := b.b.Pay(ctx, "100000000041", wx); err != nil || out != Again {
		t.Fatalf("WeChat Pay's repeat on B: %v %v", out, err)
	}
	deliver(t, mem)
	if ra, rb := rawOrder(t, a.b, "100000000041"), rawOrder(t, b.b, "100000000041"); ra != rb {
		t.Fatalf("the nodes differ: A %s, B %s", ra, rb)
	}
	if n := decided.count("100000000041"); n != 1 {
		t.Fatalf("the order was decided %d times in the log, want once", n)
	}
	// Alipay's request as the stream holds it, resolved again: no write, as a node
	// of an earlier version resolves it.
	var req statelog.Commit
	for _, cm := range b.log.Commits() {
		if cm.Intent && len(cm.Writes) == 1 && bytes.Contains(cm.Writes[0].Value, []byte(`"network":"alipay"`)) {
			req = cm
		}
	}
	if len(req.Writes) == 0 {
		t.Fatal("Alipay's payment request is not among node B's commits")
	}
	raw := rawOrder(t, a.b, "100000000041")
	out, err := Resolve(99, func([]byte) ([]byte, error) { return []byte(raw), nil }, req)
	if err != nil || len(out.Writes) != 0 {
		t.Fatalf("Alipay's request on the paid order resolves to %d writes (%v); want none", len(out.Writes), err)
	}

	// An order paid on a node of an earlier version (a plain commit of its value):
	// its network's repeat on this version's node is a repeat.
	rev := a.b.Revision()
	old := statelog.Commit{Writes: []statelog.KV{{Key: []byte(prefix + "100000000043"), Value: legacyPaid("100000000043", "wechat", "4200000043", c.now())}}}
	if _, err := mem.Append(ctx, old, rev); err != nil {
		t.Fatal(err)
	}
	deliver(t, mem)
	if _, out, err := b.b.Pay(ctx, "100000000043", Payment{Network: "wechat", Connector: "wechat", TransactionID: "4200000043", Amount: 1000}); err != nil || out != Again {
		t.Fatalf("a repeat, on B, of a payment taken by an earlier version: %v %v", out, err)
	}
}
