package cluster

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// TestReviveJetStream: nats-server shuts JetStream down on a server whose store ran
// out of disk space (server.handleOutOfSpace calls ShutdownJetStream) and does not
// start it again by itself. The node's Ready says so, the other two keep the
// quorum, and ReviveJetStream starts it again: the node catches up and publishes,
// and the write error that turned it off no longer keeps it from being ready.
func TestReviveJetStream(t *testing.T) {
	t.Run("plain routes", func(t *testing.T) { testRevive(t, false) })
	t.Run("TLS routes", func(t *testing.T) { testRevive(t, true) })
}

func testRevive(t *testing.T, withTLS bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	var ca *testCA
	if withTLS {
		ca = newTestCA(t, dir, "cluster")
	}
	nodes := startThree(t, ctx, dir, reservePorts(t, 3), ca, func(int) zerolog.Logger { return testLogger(t) })
	if _, err := nodes[0].JetStream().CreateStream(ctx, jetstream.StreamConfig{Name: "J", Subjects: []string{"j.>"}, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[0].Publish(ctx, "j.1", []byte("before"), "tx-1"); err != nil {
		t.Fatal(err)
	}
	if tried, err := nodes[2].ReviveJetStream(); tried || err != nil {
		t.Fatalf("revive while JetStream runs: tried %v, %v", tried, err)
	}

	n3 := nodes[2]
	// What nats-server logs first when its store is full: the write error that
	// stops a group, which alone (a read-only store) makes the node not ready.
	n3.natsLog.Errorf("RAFT [x - S-R3F-x] %s: write %s/1.blk: no space left on device", criticalWrite, n3.cfg.Embedded.StoreDir)
	if err := n3.Ready(); err == nil || !strings.Contains(err.Error(), "failed a write") || !strings.Contains(err.Error(), "restart the node") {
		t.Fatalf("Ready after a critical write error: %v", err)
	}
	if err := n3.srv.ShutdownJetStream(); err != nil { // what nats-server does when its store is full
		t.Fatal(err)
	}
	if err := n3.Ready(); err == nil || !strings.Contains(err.Error(), "JetStream is off on n3") || !strings.Contains(err.Error(), "disk space") {
		t.Fatalf("Ready with JetStream off: %v", err)
	}
	if _, err := waitPublishOK(ctx, nodes[0], "j.2", "tx-2"); err != nil {
		t.Fatalf("the other two lost the quorum: %v", err)
	}

	tried, err := n3.ReviveJetStream()
	if !tried || err != nil {
		t.Fatalf("revive: tried %v, %v", tried, err)
	}
	if err := n3.WaitJetStream(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n3.Ready(); err != nil {
		t.Fatalf("Ready after the revival: %v", err)
	}
	if _, err := waitPublishOK(ctx, n3, "j.3", "tx-3"); err != nil {
		t.Fatalf("publish through the revived node: %v", err)
	}
	s, err := n3.JetStream().Stream(ctx, "J")
	if err != nil {
		t.Fatal(err)
	}
	if info, err := s.Info(ctx); err != nil || info.State.Msgs != 3 {
		t.Fatalf("the stream seen from the revived node: %+v, %v", info, err)
	}
}

// waitPublishOK publishes through n until the stream acknowledges (a stream leader
// elected meanwhile), or ctx ends.
func waitPublishOK(ctx context.Context, n *Node, subj, id string) (*jetstream.PubAck, error) {
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ack, err := n.Publish(pctx, subj, []byte(subj), id)
		cancel()
		if err == nil || ctx.Err() != nil {
			return ack, err
		}
	}
}
