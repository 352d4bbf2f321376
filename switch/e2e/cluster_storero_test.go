package e2e

import (
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/termclient"
)

// TestClusterStoreReadOnly turns one node's JetStream store read-only under load, for
// real: node 3's store is an ext4 on a loop device whose image lives on a tmpfs of
// 48 MiB (a private mount namespace); a ballast file fills the tmpfs, the file
// system's next journal commit fails and ext4 turns read-only, as a disk does on an
// I/O error. nats-server does not turn JetStream off for that (only for "no space
// left on device"): each of the node's streams and consumers that meets the error
// stops on that server for good ("Critical write error"), and the node goes on
// serving through the other two servers. Until 6 December 2026 its /readyz stayed
// 200 "ok": the cluster had one copy fewer of its streams than it seemed to, and
// nothing but nats-server's log said to restart the node. Now /readyz says so
// (503, the write error, the store and what to do), the node's approvals stay
// durable (each reaches node 1's journal through the stream), the node stops
// cleanly, and started again (here on a new, empty store: a replaced disk) it
// catches up and serves.
func TestClusterStoreReadOnly(t *testing.T) {
	needTmpfs(t)
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		t.Skipf("mkfs.ext4: %v", err)
	}
	c := startCluster(t, clusterOptions{StoreTmpfsMB: 48, StoreExt4: true})
	n3 := c.node(3)
	seq := 0
	buy := func(n int) termclient.Result {
		seq++
		return c.purchaseOn(n, probeTxn(fmt.Sprintf("LT0003%02d", seq%50), testPAN(7400+seq), 1000+int64(seq%40)*100))
	}
	if r := buy(3); r.RC != "00" {
		t.Fatalf("node 3 before the fill: %s", r.RC)
	}
	ballast := filepath.Join("/proc", fmt.Sprint(n3.cmd.Process.Pid), "root", n3.storeBacking(), "ballast")
	out, _ := exec.Command("dd", "if=/dev/zero", "of="+ballast, "bs=1M").CombinedOutput()
	t.Logf("ballast: %s", strings.TrimSpace(string(out)))

	// Node 3 goes on being asked until its store fails a write and /readyz says so.
	answers := map[string]int{}
	var approved []termclient.Result
	var body string
	waitUntil(t, 90*time.Second, func() string {
		return fmt.Sprintf("node 3 still ready with its store failing writes (answers %v, /readyz %q); its log says:\n%s",
			answers, body, tail(n3.logGrep("Critical write error", "read-only"), 3000))
	}, func() bool {
		if !n3.running() {
			t.Fatalf("node 3 died with its store read-only; its log ends:\n%s", n3.logTail(3000))
		}
		r := buy(3)
		answers[r.RC]++
		if r.RC == "00" {
			approved = append(approved, r)
		}
		var code int
		code, body = n3.readyz()
		return code == http.StatusServiceUnavailable && strings.Contains(body, "failed a write")
	})
	t.Logf("node 3 not ready: %s (answers meanwhile %v)", body, answers)
	for _, want := range []string{"restart the node", n3.storeDir()} {
		if !strings.Contains(body, want) {
			t.Errorf("/readyz does not say %q: %s", want, body)
		}
	}
	// Still not ready a few seconds on (no flapping back to 200 while nothing changed).
	for range 3 {
		r := buy(3)
		answers[r.RC]++
		if r.RC == "00" {
			approved = append(approved, r)
		}
		if code, body := n3.readyz(); code != http.StatusServiceUnavailable {
			t.Errorf("node 3's /readyz turned %d with its store still read-only: %s", code, body)
		}
	}
	// Every approval is durable: in the stream, so in the journal of a node that
	// applies it. Each of nodes 1 and 2 follows the stream through a consumer that
	// may have had a copy on node 3's server, stopped with it; such an applier
	// usually moves on within seconds (switch/cluster/ordered), but one has been
	// seen to stand still for over 90 s (twice in a few runs on 6 December 2026:
	// its node not ready, saying so, answering 91 meanwhile; docs/cluster.md, Known
	// gaps). So what is checked is durability, not every applier's liveness: each
	// approval reaches node 1's or node 2's journal.
	final := func(n int, tid, rrn string) bool {
		recs, err := c.node(n).journal(tid)
		if err != nil {
			return false
		}
		for _, x := range recs {
			if x.RRN == rrn && x.Final() {
				return true
			}
		}
		return false
	}
	for _, r := range approved[max(0, len(approved)-20):] {
		waitUntil(t, 90*time.Second, func() string {
			code1, body1 := c.node(1).readyz()
			code2, body2 := c.node(2).readyz()
			return fmt.Sprintf("approval RRN %s of %s is in neither node 1's nor node 2's journal (node 1: %d %s; node 2: %d %s)", r.RRN, r.TID, code1, body1, code2, body2)
		}, func() bool { return final(1, r.TID, r.RRN) || final(2, r.TID, r.RRN) })
	}
	for _, n := range []int{1, 2} {
		if last := approved[len(approved)-1]; !final(n, last.TID, last.RRN) {
			code, body := c.node(n).readyz()
			t.Logf("node %d's applier has not applied the last approval (RRN %s) yet: /readyz %d %s", n, last.RRN, code, body)
		}
	}

	if err := n3.stop(); err != nil {
		t.Fatalf("node 3 did not stop cleanly with its store read-only: %v", err)
	}
	n3.launch() // a new namespace: a new, empty store, as on a replaced disk
	n3.waitReady(90 * time.Second)
	var rc string
	waitUntil(t, 30*time.Second, func() string { return "node 3 does not approve after its restart: " + rc }, func() bool {
		rc = buy(3).RC
		return rc == "00"
	})
}
