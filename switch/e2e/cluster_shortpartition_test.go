package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/switch/cluster"
	"github.com/switchyard/switchyard/switch/issuersim"
	"github.com/switchyard/switchyard/switch/message"
)

// TestClusterShortPartition: a node's server is cut off from both peers for much
// less than the lease TTL (healed as soon as its /readyz says 503 and the issuer
// has answered, about 1.5 s after the cut) while the issuer holds four of its
// purchases, approved, and answers them during the cut, and a new purchase comes
// to it. Its lease never lapses, so nothing fences it: no other node claims
// its recovery, it does not exit, it turns ready again by itself and approves a new
// purchase; its held purchases and the one sent during the cut end once each,
// either approved (journaled once, approved and not reversed at the issuer) or 91
// (reversed at the issuer, or never sent), as the terminals were told. Every node's
// journal, the issuer's books and every node's settlement agree with the
// terminals. TestClusterPartition is the long partition (past the TTL).
//
// The node cut off leads the streams its writes need (JOURNAL, KV_RECORD_LOCKS,
// SAF, STATE), so that what it proposed during the cut is committed, or not, by
// its own Raft groups after the heal (the cut is shorter than an election, 4 to
// 9 s); a node of the majority leads the leases bucket, so that the majority's
// refreshes and its watch of the cut node's lease go on throughout the cut (it
// would claim the recovery as soon as the lease lapsed). It is node 3, unless node
// 3 leads the meta group: a meta leader cut off still answers JetStream's account
// requests (its /readyz stays 200 until its lease is stale, at the TTL), and the
// test cannot move the meta leader (that needs the system account), so node 2 is
// cut off then.
func TestClusterShortPartition(t *testing.T) {
	t.Parallel() // see startCluster
	shortPartition(t, 0)
}

// TestClusterLongTTLPartition: TestClusterShortPartition's cut on nodes with
// cluster.lease_ttl 10s, healed only once the majority's view of the cut node's
// lease (node 1's cluster status) shows no refresh for the default TTL plus the
// sweep's grace (6 s: with the default TTL the majority would have judged it
// lapsed by then, and a cut of 4.3 s was fenced in a trial), so a cut of 5 s or
// more: the node survives it as a short one, since its lease, and the
// majority's judgement of it, follow its own TTL of 10 s.
func TestClusterLongTTLPartition(t *testing.T) {
	t.Parallel() // see startCluster
	shortPartition(t, 10*time.Second)
}

// shortPartition is TestClusterShortPartition with every node's lease TTL
// (cluster.lease_ttl) at ttl, the default when 0; a TTL over the default is cut
// off until the majority has not heard of the cut node's lease for the default
// TTL plus the grace.
func shortPartition(t *testing.T, ttl time.Duration) {
	o := clusterOptions{IssuerTimeout: 60 * time.Second, Partitionable: true}
	longTTL := ttl > cluster.DefaultLeaseTTL
	if ttl == 0 {
		ttl = cluster.DefaultLeaseTTL
	} else {
		o.LeaseTTL = ttl.String()
	}
	// The issuer timeout is longer than the issuer's 5 s hold: the node reads the
	// issuer's approvals of the held purchases.
	c := startCluster(t, o)
	begin := time.Now()
	tids := map[string]bool{}
	var toldSum int64 // approvals the terminals were told

	cut, keeper := 3, 1
	if rep := c.report(t, 1); rep.Status == nil || rep.Status.MetaLeader == "" {
		t.Fatalf("node 1's cluster status names no meta leader: %+v", rep)
	} else if rep.Status.MetaLeader == "n3" {
		cut = 2
	}
	server := fmt.Sprintf("n%d", cut)
	t.Logf("node %d is cut off (node 3 leads the meta group: %v)", cut, cut != 3)
	node := c.node(cut)
	if r := c.purchaseOn(cut, probeTxn("LT001550", testPAN(959000), 1300)); r.RC != "00" {
		t.Fatalf("node %d before the partition: %+v", cut, r)
	}
	tids["LT001550"], toldSum = true, 1300
	placeLeaders(t, c, map[string]string{"JOURNAL": server, "KV_RECORD_LOCKS": server, "SAF": server, "STATE": server, "KV_leases": fmt.Sprintf("n%d", keeper)})
	before := c.leaseSeen(t, keeper, cut)
	if !before.Alive {
		t.Fatalf("node %d's lease in node %d's status before the cut: %+v", cut, keeper, before)
	}

	var stored func() (time.Time, error)
	if longTTL {
		stored = c.leaseStoredAt(t, cut)
	}

	// Four purchases with the issuer when the link goes, approved at once and
	// answered 1.5 s later, during the cut (the node reads approvals it cannot
	// make durable yet), and a new purchase sent to the node after the cut.
	p := c.cutOff(t, cut, 1500*time.Millisecond, "LT00155%d", 960000, "LT001556", 961000, tids)

	// Short: healed as soon as the node says it is cut off (/readyz 503: no meta
	// leader answers it) and the issuer has answered the held purchases, well
	// before the node's lease could lapse. With a longer TTL, not before the
	// majority has gone without the node's refreshes for longer than the default
	// TTL would survive: the bucket's leader, on node 1, still holds the last
	// one stored before the cut (with the default TTL it would have expired it).
	var why, silence string
	unready := false
	waitUntil(t, ttl, func() string {
		return fmt.Sprintf("node %d's /readyz while cut off: %s; the issuer's answers: %s; %s", cut, why, answeredAt(c.sim.Ledger(), p.held), silence)
	}, func() bool {
		if longTTL {
			at, err := stored()
			silence = fmt.Sprintf("node %d's last refresh stored %s ago (%v)", cut, time.Since(at).Round(time.Millisecond), err)
			if err != nil || time.Since(at) <= cluster.DefaultLeaseTTL+time.Second {
				return false
			}
		}
		if !unready {
			code, body := node.readyz()
			why = fmt.Sprintf("%d %s", code, body)
			unready = code == http.StatusServiceUnavailable
		}
		ledger := c.sim.Ledger()
		for rrn := range p.held {
			if ledger[rrn].AnsweredAt.IsZero() {
				return false
			}
		}
		return unready
	})
	healedAt := p.heal()
	cutFor := healedAt.Sub(p.cutAt)
	t.Logf("node %d cut off for %s (lease TTL %s): /readyz %s; the issuer's answers: %s; %s", cut, cutFor.Round(time.Millisecond), ttl, tail(why, 300),
		answeredAt(c.sim.Ledger(), p.held), silence)
	for rrn, e := range c.sim.Ledger() {
		if _, ok := p.held[rrn]; ok && e.AnsweredAt.Before(p.cutAt) {
			t.Logf("RRN %s: the issuer answered %s before the cut (a slow start of the hold): not during the cut", rrn, p.cutAt.Sub(e.AnsweredAt).Round(time.Millisecond))
		}
	}
	// Its last refresh before the cut was up to one refresh (1 s) earlier, and
	// its first after the heal waits for the routes to come back (about 1 s):
	// past the TTL less 3 s (half the default one), the test would no longer be
	// of a partition the lease survives.
	if cutFor > ttl-3*time.Second+time.Second/2 {
		t.Fatalf("node %d was cut off for %s before its /readyz said so: not a partition clearly shorter than the lease TTL (%s); this run tests nothing", cut, cutFor.Round(time.Millisecond), ttl)
	}

	// The node serves on by itself: ready again, with no exit.
	var state string
	took := waitUntil(t, 30*time.Second, func() string {
		return fmt.Sprintf("node %d after the heal: %s\n%s", cut, state, node.logTail(2000))
	}, func() bool {
		if !node.running() {
			state = "exited"
			return true
		}
		code, body := node.readyz()
		state = fmt.Sprintf("/readyz %d %s", code, tail(body, 300))
		return code == http.StatusOK
	})
	if state == "exited" {
		t.Fatalf("node %d exited (status %d) after a partition of %s, shorter than the lease TTL; its log:\n%s\n%s", cut,
			node.cmd.ProcessState.ExitCode(), cutFor.Round(time.Millisecond), tail(node.logGrep("lost for good", "lease"), 2000), node.logTail(2000))
	}
	t.Logf("node %d ready again %s after the heal", cut, took.Round(time.Millisecond))
	prefix := fmt.Sprint(cut)
	if r := c.purchaseOn(cut, probeTxn("LT001557", testPAN(962000), 2100)); r.RC != "00" || !strings.HasPrefix(r.RRN, prefix) {
		t.Errorf("node %d after the heal answered %s (%s) with RRN %s; want an approval under RRN %s...", cut, r.RC, r.Reason, r.RRN, prefix)
	} else {
		toldSum += 2100
	}
	tids["LT001557"] = true

	// The held purchases and the one sent during the cut: each answered 00 or 91.
	told := collectAnswers(t, p.answers, len(p.held)+1, 75*time.Second, fmt.Sprintf("node %d", cut))
	for tid, a := range told {
		t.Logf("terminal %s of node %d (cut off %s): rc %q rrn %s reason %q, err %v", tid, cut, cutFor.Round(time.Millisecond), a.r.RC, a.r.RRN, a.r.Reason, a.err)
		switch {
		case a.err != nil:
			t.Errorf("terminal %s: no answer from node %d: %v", tid, cut, a.err)
		case a.r.RC == "00":
			toldSum += a.amount
		case a.r.RC != message.RCIssuerUnavailable:
			t.Errorf("terminal %s: node %d answered %q (%s); want 00, or 91 for what the cut kept from the journal", tid, cut, a.r.RC, a.r.Reason)
		}
	}
	// Each once in every node's journal, as its terminal was told, and so at
	// the issuer; none of the held purchases lost.
	c.journalsAsTold(t, told, p.held, 30*time.Second)
	c.booksAgree(t, begin, tids, toldSum)

	// Nobody claimed the node's recovery, and it did not exit, for three default
	// TTLs (and its own TTL and 5 s) after the cut at least: a lapse would have
	// been claimed TTL + 1 s after the node's last refresh, and the claim found by
	// the node's next refresh.
	var seen string
	quiet := max(3*cluster.DefaultLeaseTTL, ttl+5*time.Second)
	waitUntil(t, quiet+5*time.Second, func() string { return seen }, func() bool {
		if !node.running() {
			t.Fatalf("node %d exited (status %d) %s after a partition shorter than the lease TTL; its log:\n%s", cut,
				node.cmd.ProcessState.ExitCode(), time.Since(healedAt).Round(time.Millisecond), tail(node.logGrep("lost for good", "lease"), 2000))
		}
		if got := c.recoveryClaims(t, cut); len(got) > 0 {
			t.Fatalf("node %d's recovery claimed after a partition of %s (its lease never lapsed): %s", cut, cutFor.Round(time.Millisecond), strings.Join(got, "; "))
		}
		seen = fmt.Sprintf("node %d up %s after the cut, no claim on it", cut, time.Since(p.cutAt).Round(time.Millisecond))
		return time.Since(p.cutAt) > quiet
	})
	for _, n := range c.nodes {
		if l := c.leaseSeen(t, n.n, cut); !l.Alive || l.RecoveredBy != 0 || l.Incarnation != before.Incarnation {
			t.Errorf("node %d's lease in node %d's status: %+v; want alive, recovered by nobody, incarnation %d as before the cut", cut, n.n, l, before.Incarnation)
		}
	}
	if lost := node.logGrep("lost for good", "lease lapsed", "claimed the recovery"); lost != "" {
		t.Errorf("node %d's log after a short partition:\n%s", cut, tail(lost, 2000))
	}
	t.Logf("%s; its lease: %+v", seen, c.leaseSeen(t, keeper, cut))
	for _, n := range c.nodes {
		if err := n.stop(); err != nil {
			t.Errorf("graceful stop of node %d: %v; log ends:\n%s", n.n, err, n.logTail(2000))
		}
	}
}

// report reads node n's cluster status (GET /api/v1/cluster/status).
func (c *testCluster) report(t *testing.T, n int) cluster.Report {
	t.Helper()
	var rep cluster.Report
	var last string
	waitUntil(t, 20*time.Second, func() string { return fmt.Sprintf("node %d's cluster status: %s", n, last) }, func() bool {
		code, b, err := c.node(n).api("GET", "/api/v1/cluster/status", tokOperator, nil)
		if err == nil && code == http.StatusOK {
			err = json.Unmarshal(b, &rep)
		}
		last = fmt.Sprintf("%d %v %.300s", code, err, b)
		return err == nil && code == http.StatusOK
	})
	return rep
}

// leaseSeen is node of's lease in node n's cluster status.
func (c *testCluster) leaseSeen(t *testing.T, n, of int) cluster.LeaseHolder {
	t.Helper()
	for _, l := range c.report(t, n).Leases {
		if l.Node == of {
			return l
		}
	}
	t.Fatalf("node %d's cluster status shows no lease of node %d", n, of)
	return cluster.LeaseHolder{}
}

// leaseStoredAt returns a function that reads, through node 1's client port, when
// the leases bucket stored node of's lease (its last refresh; an error once it is
// gone). Node 1 leads the bucket in the tests that use it, so that a read answers
// at once while of is cut off.
func (c *testCluster) leaseStoredAt(t *testing.T, of int) func() (time.Time, error) {
	t.Helper()
	nc, kv := c.leasesBucket(t)
	t.Cleanup(nc.Close)
	return func() (time.Time, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		e, err := kv.Get(ctx, fmt.Sprintf("node.%d", of))
		if err != nil {
			return time.Time{}, fmt.Errorf("node %d's lease: %w", of, err)
		}
		return e.Created(), nil
	}
}

// recoveryClaims lists the claims another node holds on the recovery of an
// incarnation of node of (keys recover.<of>.<incarnation> of the leases bucket, read
// through node 1's client port); a node's claim on its own previous incarnation at
// a restart is not listed.
func (c *testCluster) recoveryClaims(t *testing.T, of int) []string {
	t.Helper()
	nc, kv := c.leasesBucket(t)
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	keys, err := kv.Keys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil
	}
	if err != nil {
		t.Fatalf("keys of bucket %s: %v", cluster.LeaseBucket, err)
	}
	var out []string
	for _, k := range keys {
		if !strings.HasPrefix(k, fmt.Sprintf("recover.%d.", of)) {
			continue
		}
		e, err := kv.Get(ctx, k)
		if err != nil {
			t.Fatalf("%s/%s: %v", cluster.LeaseBucket, k, err)
		}
		var cl cluster.Claim
		if err := json.Unmarshal(e.Value(), &cl); err != nil {
			t.Fatalf("%s/%s: %q: %v", cluster.LeaseBucket, k, e.Value(), err)
		}
		if cl.By != of {
			out = append(out, fmt.Sprintf("%s %+v", k, cl))
		}
	}
	return out
}

// answeredAt says when the issuer answered each of held, after the first of them.
func answeredAt(ledger, held map[string]issuersim.Entry) string {
	var first time.Time
	for rrn := range held {
		if at := ledger[rrn].AnsweredAt; !at.IsZero() && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	var out []string
	for rrn := range held {
		if at := ledger[rrn].AnsweredAt; at.IsZero() {
			out = append(out, rrn+" not yet")
		} else {
			out = append(out, fmt.Sprintf("%s +%s", rrn, at.Sub(first).Round(time.Millisecond)))
		}
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// journalsAsTold checks, within d on every node, that the journal holds each of
// the terminals' purchases in told once and final, as the terminal was told: an
// approval (00) approved and not reversed, journaled under the RRN the terminal
// got, approved and not reversed at the issuer, sent to it once; a 91 neither, and
// reversed at the issuer if the issuer approved it. Every RRN of held (purchases
// the issuer held) is one of them: none lost.
func (c *testCluster) journalsAsTold(t *testing.T, told map[string]pausedAnswer, held map[string]issuersim.Entry, d time.Duration) {
	t.Helper()
	for _, n := range c.nodes {
		var last string
		waitUntilOr(t.Errorf, d, func() string { return fmt.Sprintf("node %d's journal: %s", n.n, last) }, func() bool {
			recs, err := n.journal("")
			if err != nil {
				last = err.Error()
				return false
			}
			ledger := c.sim.Ledger()
			byTID := map[string][]string{}
			found := map[string]bool{}
			var wrong []string
			for _, r := range recs {
				a, ok := told[r.TID]
				if !ok {
					continue
				}
				byTID[r.TID] = append(byTID[r.TID], r.RRN)
				found[r.RRN] = true
				e := ledger[r.RRN]
				switch {
				case !r.Final():
					wrong = append(wrong, "not final: "+describe(r))
				case a.r.RC == "00" && (!r.Approved() || r.Reversed() || r.RRN != a.r.RRN || !e.Approved || e.Reversed || e.Requests != 1):
					wrong = append(wrong, fmt.Sprintf("told 00 under RRN %s: %s; issuer %+v", a.r.RRN, describe(r), e))
				case a.r.RC != "00" && ((r.Approved() && !r.Reversed()) || (e.Approved && !e.Reversed)):
					wrong = append(wrong, fmt.Sprintf("told %s: %s; issuer %+v", a.r.RC, describe(r), e))
				}
			}
			for tid := range told {
				if len(byTID[tid]) != 1 {
					wrong = append(wrong, fmt.Sprintf("terminal %s: records %v, want one", tid, byTID[tid]))
				}
			}
			for rrn := range held {
				if !found[rrn] {
					wrong = append(wrong, fmt.Sprintf("RRN %s held by the issuer: no record", rrn))
				}
			}
			last = strings.Join(wrong, "; ")
			return len(wrong) == 0
		})
	}
}

// leasesBucket opens the leases bucket through node 1's client port; the caller
// closes the connection.
func (c *testCluster) leasesBucket(t *testing.T) (*nats.Conn, jetstream.KeyValue) {
	t.Helper()
	nc, err := nats.Connect("nats://" + c.node(1).nats)
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, cluster.LeaseBucket)
	if err != nil {
		nc.Close()
		t.Fatalf("bucket %s: %v", cluster.LeaseBucket, err)
	}
	return nc, kv
}
