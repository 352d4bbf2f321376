package server

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
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
