package server

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard/switchyard/switch/cluster"
	"github.com/switchyard/switchyard/switch/qrorder"
)

// TestQROrdersUnreadableCommitNotReady: docs/cluster.md ("QR orders", Versions)
// says that a node of a version that cannot read a commit of state.qrorders (an
// older node meeting an intent commit, encoding 3 or 4) stops following the store
// and says so "in the log and the status (/readyz once it has had no consumer for
// 30 s)". The node's follower meets here a commit of an encoding it does not know
// (9: as an older node meets 3), and /readyz's check of the shared stores'
// followers (stateConsumers, asked as if an hour had passed) must then name the
// store.
func TestQROrdersUnreadableCommitNotReady(t *testing.T) {
	base := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := start(t, oneNodeCluster(t, filepath.Join(base, "a"), filepath.Join(base, "js")), nil)
	if _, err := s.cl.node.JetStream().PublishMsg(ctx, &nats.Msg{Subject: "state.qrorders", Data: []byte{9, 0}}); err != nil {
		t.Fatal(err)
	}
	var f followed
	for _, x := range s.cl.followed {
		if x.log.Name() == "qrorders" {
			f = x
		}
	}
	if f.f == nil {
		t.Fatal("the node does not follow qrorders")
	}
	for f.f.Err() == nil || !strings.Contains(f.f.Err().Error(), "unknown commit encoding") {
		select {
		case <-ctx.Done():
			t.Fatalf("the follower did not stop on the unreadable commit: %v", f.f.Err())
		case <-time.After(10 * time.Millisecond): // polling the follower's state
		}
	}
	later := time.Now().Add(time.Hour)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := s.cl.stateConsumers(later); err != nil {
			if !strings.Contains(err.Error(), "qrorders") {
				t.Fatalf("stateConsumers: %v; want the qrorders store named", err)
			}
			return
		}
		if time.Now().After(deadline) {
			has, since, ferr := f.f.Consumer()
			t.Fatalf("/readyz's check of the followers passes an hour after qrorders' follower stopped (consumer %v since %v, error %v; ready() = %v)",
				has, since.Format(time.RFC3339), ferr, s.cl.ready())
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(10 * time.Millisecond): // polling the follower's state
		}
	}
}

// TestQROrdersOlderNodeCompareAndSet: while a node whose lease does not advertise
// QR requests (a version before 5 December 2026: ghost node 7 here) holds a lease,
// the book commits its orders as plain values with a compare-and-set (encoding 1,
// which that version reads), so that the older node keeps following state.qrorders
// and can start again; once every lease advertises them, the book submits requests
// (encoding 3). Before, an older node's follower stopped at the first request, and
// that node could no longer start.
func TestQROrdersOlderNodeCompareAndSet(t *testing.T) {
	base := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := start(t, oneNodeCluster(t, filepath.Join(base, "a"), filepath.Join(base, "js")), nil)
	kv, err := s.cl.node.LeaseKV(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := s.cl.node.JetStream().Stream(ctx, "STATE")
	if err != nil {
		t.Fatal(err)
	}
	ghost := func(requests bool) {
		t.Helper()
		b, _ := json.Marshal(cluster.LeaseValue{Node: 7, Server: "ghost", Incarnation: 3, Started: time.Now(), Refreshed: time.Now(),
			Compacts: true, DestroysKeys: true, QRRequests: requests})
		if _, err := kv.Put(ctx, "node.7", b); err != nil {
			t.Fatal(err)
		}
		for {
			seen := false
			for _, h := range s.cl.currentLease().Holders() {
				seen = seen || (h.Node == 7 && h.QRRequests == requests && h.Alive)
			}
			if seen && s.cl.qrRequests()() == requests {
				return
			}
			select {
			case <-ctx.Done():
				t.Fatalf("node 1 did not see node 7's lease (QR requests %v)", requests)
			case <-time.After(10 * time.Millisecond): // polling the lease watcher's view
			}
		}
	}
	// encoding is the encoding byte of the last commit on state.qrorders.
	encoding := func() byte {
		t.Helper()
		m, err := stream.GetLastMsgForSubject(ctx, "state.qrorders")
		if err != nil {
			t.Fatal(err)
		}
		return m.Data[0]
	}
	book := s.orders.book
	now := time.Now()
	mk := func(id string) {
		t.Helper()
		if err := book.Create(ctx, qrorder.Order{ID: id, TID: "T0000001", Amount: 500, Created: now, Expires: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}

	ghost(false)
	mk("100000000001")
	if e := encoding(); e != 1 {
		t.Fatalf("an order made while node 7's lease lacks QR requests: commit encoding %d, want 1 (plain)", e)
	}
	if o, out, err := book.Pay(ctx, "100000000001", qrorder.Payment{Network: "wechat", TransactionID: "TXV1", Amount: 500}); err != nil || out != qrorder.Taken {
		t.Fatalf("pay: %+v %v %v", o, out, err)
	}
	if e := encoding(); e != 1 {
		t.Fatalf("a payment while node 7's lease lacks QR requests: commit encoding %d, want 1 (plain)", e)
	}

	ghost(true)
	mk("100000000002")
	if e := encoding(); e != 3 {
		t.Fatalf("an order made once every lease advertises QR requests: commit encoding %d, want 3 (a request)", e)
	}
	if o, out, err := book.Pay(ctx, "100000000001", qrorder.Payment{Network: "wechat", TransactionID: "TXV1", Amount: 500}); err != nil || out != qrorder.Again || o.State != qrorder.Paid {
		t.Fatalf("the payment made with a compare-and-set, repeated as a request: %+v %v %v; want again, paid", o, out, err)
	}
}
