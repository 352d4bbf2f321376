package cluster

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestRemovePeer: a fourth server that joined and left for good (in the field: a
// copy of a node's configuration started by mistake) stays in JetStream's meta
// group, where three servers of four are a quorum; removed with RemovePeer, the
// three make a group of their own again and keep their quorum with one of them
// down. RemovePeer refuses a server still running, this node's own, and a name
// the group does not hold.
func TestRemovePeer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cfgs := nodeConfigs(t, 4)
	nodes := startLeaseCluster(t, ctx, cfgs)
	metaPeers := func(n *Node) int {
		jsz, err := n.srv.Jsz(nil)
		if err != nil || jsz.Meta == nil {
			t.Fatalf("jsz: %v", err)
		}
		return jsz.Meta.Size
	}
	// Every server known to the group before n4 goes.
	for metaPeers(nodes[0]) != 4 {
		select {
		case <-ctx.Done():
			t.Fatalf("meta group of %d", metaPeers(nodes[0]))
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err := nodes[0].RemovePeer(ctx, "n4"); !errors.Is(err, ErrPeerConnected) {
		t.Fatalf("removing a running server: %v; want ErrPeerConnected", err)
	}
	for _, name := range []string{"n1", "n9"} {
		if err := nodes[0].RemovePeer(ctx, name); err == nil {
			t.Fatalf("removing %s accepted", name)
		} else {
			t.Log(err)
		}
	}
	if err := nodes[3].Close(); err != nil {
		t.Fatal(err)
	}
	nodes[3] = nil
	// n4 is seen gone (its routes closed) before the removal is asked.
	for {
		// Each try has its own 5 s: a request sent while the meta group elects a
		// leader (n4 may have been it) gets no answer, and waiting the whole test's
		// context on it failed a loaded CI run.
		try, stop := context.WithTimeout(ctx, 5*time.Second)
		err := nodes[0].RemovePeer(try, "n4")
		stop()
		if err == nil {
			break
		}
		if !errors.Is(err, ErrPeerConnected) && !strings.Contains(err.Error(), "no answer") {
			t.Fatal(err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("n4 not removed: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	for _, n := range nodes[:3] {
		for metaPeers(n) != 3 {
			select {
			case <-ctx.Done():
				t.Fatalf("%s's meta group of %d after the removal", n.srv.Name(), metaPeers(n))
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	// One of the three down: two of three are a quorum (two of four would not be).
	if err := nodes[2].Close(); err != nil {
		t.Fatal(err)
	}
	nodes[2] = nil
	for _, n := range nodes[:2] {
		if err := n.WaitJetStream(ctx); err != nil {
			t.Fatalf("%s with one of the three down: %v", n.srv.Name(), err)
		}
	}
}
