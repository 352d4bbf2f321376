package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/issuersim"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/qr"
	"github.com/switchyard/switchyard/switch/server"
	"github.com/switchyard/switchyard/switch/termclient"
	"github.com/switchyard/switchyard/switch/wallet"
)

// The cluster tests of issue 14 (docs/cluster.md): three switch processes with embedded
// JetStream on loopback. TestClusterServes covers traffic through every node, registry
// replication and conflicts, and velocity across nodes (scenarios 1, 3, 4);
// TestClusterNodeKilled a SIGKILL under load and the killed node's return (2, 6);
// TestClusterQuorumLost two of three nodes down (5).

// purchaseOn sends one purchase to node n on a fresh connection and returns the answer.
func (c *testCluster) purchaseOn(n int, tx termclient.Txn) termclient.Result {
	c.t.Helper()
	if tx.STAN == "" {
		tx.STAN = termclient.NextSTAN()
	}
	if tx.Time.IsZero() {
		tx.Time = time.Now()
	}
	ft := singleNodeTerm(c, n, 15*time.Second)
	defer ft.close()
	r, _, _, err := ft.send(tx, 15*time.Second)
	if err != nil {
		c.t.Fatalf("node %d: %v", n, err)
	}
	return r
}

// probeTxn is a purchase from a load terminal of the demo's enterprise merchant.
func probeTxn(tid, pan string, amount int64) termclient.Txn {
	return termclient.Txn{PAN: pan, Amount: amount, Expiry: "2912", TID: tid, MID: "000000000000003", STAN: termclient.NextSTAN(), Time: time.Now()}
}

// waitJournaled waits until node n's journal holds rrn with a final answer.
func (c *testCluster) waitJournaled(n int, tid, rrn string, d time.Duration) time.Duration {
	c.t.Helper()
	var last string
	return waitUntil(c.t, d, func() string { return fmt.Sprintf("node %d's journal lacks RRN %s of %s (%s)", n, rrn, tid, last) }, func() bool {
		recs, err := c.node(n).journal(tid)
		if err != nil {
			last = err.Error()
			return false
		}
		for _, r := range recs {
			if r.RRN == rrn && r.Final() {
				return true
			}
		}
		last = fmt.Sprintf("%d records of %s", len(recs), tid)
		return false
	})
}

func TestClusterServes(t *testing.T) {
	t.Parallel() // see startCluster
	c := startCluster(t, clusterOptions{})
	t.Run("TrafficThroughEveryNode", c.testTraffic)
	t.Run("RegistryChangeAndConflict", c.testRegistry)
	t.Run("VelocityAcrossNodes", c.testVelocity)
	t.Run("OriginalChangedOnTwoNodes", c.testOriginalRace)
	t.Run("DUKPTReplayAcrossNodes", c.testDUKPTReplay)
	t.Run("KSNWithoutPINResentAcrossNodes", c.testKSNWithoutPINResent)
	t.Run("LastSeenAcrossNodes", c.testLastSeen)
	t.Run("ProfilesRefreshedEverywhere", c.testProfilesRefresh)
	t.Run("IncidentsAcrossNodes", c.testIncidents)
	t.Run("OfflineAlertOnce", c.testOfflineAlert)
	t.Run("ImportSeenEverywhere", c.testImport)
	t.Run("QROrderAcrossNodes", c.testQROrder)
	for _, n := range c.nodes {
		if err := n.stop(); err != nil {
			t.Errorf("graceful stop: %v; log ends:\n%s", err, n.logTail(2000))
		}
	}
}

// testDUKPTReplay: a DUKPT PIN accepted on node 1 advances the device's counter on
// the other nodes too: the same KSN sent to node 2 (a new request, captured and
// replayed) is refused there as a replay once node 2 has node 1's record, and on node 3
// at once, whether or not it has (the stream's order refuses it then). A KSN that
// node 1 refused before its HSM took it (a bad MAC) does not: a forged request with a
// high counter must not block the device's next real KSN elsewhere.
func (c *testCluster) testDUKPTReplay(t *testing.T) {
	c = c.rebind(t)
	mac, err := termclient.RetailMAC(demoTAK)
	if err != nil {
		t.Fatal(err)
	}
	badMAC, err := termclient.RetailMAC("0123456789ABCDEFFEDCBA9876543210")
	if err != nil {
		t.Fatal(err)
	}
	send := func(n int, ksn string, mac message.MACFunc) termclient.Result {
		tx := softpos(2000) // a STAN of its own, and the attestation token bound to it
		b, err := termclient.PINBlockDUKPT(demoBDK, ksn, "1234", tx.PAN)
		if err != nil {
			t.Fatal(err)
		}
		tx.PINBlock, tx.TLV = b, append(tx.TLV, [2]string{"KS", ksn})
		m, err := termclient.Build(tx, message.DialectASCII)
		if err != nil {
			t.Fatal(err)
		}
		ft := singleNodeTerm(c, n, 15*time.Second)
		defer ft.close()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		resp, _, _, err := ft.f.Send(ctx, m, mac)
		if err != nil {
			t.Fatalf("node %d: %v", n, err)
		}
		r, err := termclient.Decode(resp)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	ksn := nextKSN()
	first := send(1, ksn, mac)
	if first.RC != "00" {
		t.Fatalf("DUKPT PIN on node 1 (KSN %s): %s (%s)", ksn, first.RC, first.Reason)
	}
	c.waitJournaled(2, "T0000002", first.RRN, 10*time.Second)
	if r := send(2, ksn, mac); r.RC != "63" || r.Reason != "dukpt-replay" {
		t.Fatalf("KSN %s, accepted on node 1, sent again to node 2: %s (%s); want 63 dukpt-replay", ksn, r.RC, r.Reason)
	}
	// The same without waiting: node 3 may not have applied node 1's record yet (its
	// HSM's counter then does not know the KSN), and the stream's order refuses it.
	ksn = nextKSN()
	if r := send(1, ksn, mac); r.RC != "00" {
		t.Fatalf("DUKPT PIN on node 1 (KSN %s): %s (%s)", ksn, r.RC, r.Reason)
	}
	if r := send(3, ksn, mac); r.RC != "63" || r.Reason != "dukpt-replay" {
		t.Fatalf("KSN %s, accepted on node 1, sent at once to node 3: %s (%s); want 63 dukpt-replay", ksn, r.RC, r.Reason)
	}

	high := fmt.Sprintf("FFFF9876543210E%05X", ksnCounter.Load()+0x800)
	forged := send(1, high, badMAC)
	if forged.RC != "63" || forged.RRN == "" {
		t.Fatalf("a bad MAC with KSN %s on node 1: %s (%s), RRN %q; want 63 with an RRN", high, forged.RC, forged.Reason, forged.RRN)
	}
	c.waitJournaled(2, "T0000002", forged.RRN, 10*time.Second)
	if next := nextKSN(); send(2, next, mac).RC != "00" {
		t.Fatalf("KSN %s on node 2, after node 1 refused a forged %s: not approved; a refused KSN blocked the device", next, high)
	}
}

// testKSNWithoutPINResent: the cluster form of TestReplayedKSNWithoutPINForwardedOnce.
// A request's MAC is under the terminal's static TAK on the message path (no dialect
// verifies a DUKPT MAC), and a KSN without a PIN block takes no counter, so a request
// carrying a KSN and no PIN, captured and sent again byte for byte to another node, is
// no DUKPT matter: it is the journal's duplicate, decided in stream order, answered
// with the first answer and not sent to the issuer again, on node 2 after it applied
// node 1's record and on node 3 at once. Changed in any byte it would fail its MAC.
func (c *testCluster) testKSNWithoutPINResent(t *testing.T) {
	c = c.rebind(t)
	mac, err := termclient.RetailMAC(demoTAK)
	if err != nil {
		t.Fatal(err)
	}
	tx := softpos(2100)      // its STAN and DE 7 fixed: every send is the same bytes
	tx.PAN = testPAN(959000) // a card of its own: the softpos card's earlier purchases trip the repeat-card rule
	tx.TLV = append(tx.TLV, [2]string{"KS", nextKSN()})
	m, err := termclient.Build(tx, message.DialectASCII)
	if err != nil {
		t.Fatal(err)
	}
	send := func(n int) termclient.Result {
		ft := singleNodeTerm(c, n, 15*time.Second)
		defer ft.close()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		resp, _, _, err := ft.f.Send(ctx, m, mac)
		if err != nil {
			t.Fatalf("node %d: %v", n, err)
		}
		r, err := termclient.Decode(resp)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	first := send(1)
	if first.RC != "00" {
		t.Fatalf("purchase with a KSN and no PIN on node 1: %s (%s)", first.RC, first.Reason)
	}
	// Node 3 first, at once (it may not have applied node 1's record: the stream's
	// order decides), then node 2 once it has.
	r3 := send(3)
	c.waitJournaled(2, tx.TID, first.RRN, 10*time.Second)
	r2 := send(2)
	for n, r := range map[int]termclient.Result{2: r2, 3: r3} {
		if r.RC != first.RC || r.RRN != first.RRN || r.AuthCode != first.AuthCode {
			t.Errorf("the same bytes on node %d: %s (%s) RRN %s auth %s; want node 1's answer %s RRN %s auth %s",
				n, r.RC, r.Reason, r.RRN, r.AuthCode, first.RC, first.RRN, first.AuthCode)
		}
	}
	if e := c.sim.Ledger()[first.RRN]; e.Requests != 1 {
		t.Fatalf("RRN %s: the issuer saw %d requests; want 1 (the resends repeat the first answer)", first.RRN, e.Requests)
	}
}

// testLastSeen: a terminal that only signs on on node 2 is seen on nodes 1 and 3 too
// (last-seen data shared at each flush, every 10 s), so that the offline monitor,
// which runs on one node, does not take it for offline. (A sign-on that passes the
// checks, not an echo: since 6 December 2026 an echo without a verified MAC makes
// no terminal seen.)
func (c *testCluster) testLastSeen(t *testing.T) {
	c = c.rebind(t)
	const tid = "LT001957"
	lastSeen := func(n int) (time.Time, string) {
		code, b, err := c.node(n).api("GET", "/api/v1/terminals/"+tid, tokOperator, nil)
		if err != nil || code != http.StatusOK {
			return time.Time{}, fmt.Sprintf("error %d %v %s", code, err, b)
		}
		var v struct {
			LastSeen *struct {
				Time time.Time `json:"time"`
			} `json:"last_seen"`
		}
		if err := json.Unmarshal(b, &v); err != nil {
			return time.Time{}, err.Error()
		}
		if v.LastSeen == nil {
			return time.Time{}, "never seen"
		}
		return v.LastSeen.Time, ""
	}
	if at, _ := lastSeen(1); !at.IsZero() {
		t.Fatalf("%s seen on node 1 at %v before the test's sign-on", tid, at)
	}
	signOn := termclient.Txn{MTI: "0800", NetCode: message.NMSignOn, TID: tid, MID: "000000000000003", STAN: termclient.NextSTAN(), Time: time.Now()}
	ft := singleNodeTerm(c, 2, 15*time.Second)
	defer ft.close()
	sent := time.Now()
	if r, _, _, err := ft.send(signOn, 15*time.Second); err != nil || r.RC != "00" {
		t.Fatalf("sign-on on node 2: %+v, %v", r, err)
	}
	for _, n := range []int{1, 3} {
		var why string
		took := waitUntil(t, 30*time.Second, func() string {
			return fmt.Sprintf("node %d: %s not seen after its sign-on on node 2 (%s)", n, tid, why)
		}, func() bool {
			at, e := lastSeen(n)
			why = e
			if e == "" && at.Before(sent.Add(-2*time.Second)) {
				why = fmt.Sprintf("last seen %v", at)
			}
			return why == ""
		})
		t.Logf("a sign-on on node 2 seen on node %d after %v", n, took.Round(time.Millisecond))
	}
}

// testProfilesRefresh: a refresh of the merchant profiles by hand on node 1 reaches
// nodes 2 and 3, which refresh with node 1's window (the same end), so that every
// node's rules see the same profiles.
func (c *testCluster) testProfilesRefresh(t *testing.T) {
	c = c.rebind(t)
	const mid = "000000000000003"
	var sum struct {
		To         time.Time `json:"to"`
		OtherNodes string    `json:"other_nodes"`
	}
	code, b, err := c.node(1).api("POST", "/api/v1/risk/profiles/refresh", tokOperator, nil)
	if err != nil || code != http.StatusOK || json.Unmarshal(b, &sum) != nil || sum.To.IsZero() || sum.OtherNodes != "asked" {
		t.Fatalf("refresh on node 1: %d %v %s; want 200, the window's end and the other nodes asked", code, err, b)
	}
	for _, n := range []int{1, 2, 3} {
		var why string
		took := waitUntil(t, 30*time.Second, func() string {
			return fmt.Sprintf("node %d: profile of %s not refreshed to %v (%s)", n, mid, sum.To, why)
		}, func() bool {
			code, b, err := c.node(n).api("GET", "/api/v1/merchants/"+mid+"/profile", tokOperator, nil)
			var v struct {
				To time.Time `json:"to"`
			}
			if err != nil || code != http.StatusOK || json.Unmarshal(b, &v) != nil {
				why = fmt.Sprintf("%d %v %s", code, err, b)
				return false
			}
			why = "window ends " + v.To.String()
			return v.To.Equal(sum.To)
		})
		t.Logf("node %d's profiles end at node 1's refresh's window end after %v", n, took.Round(time.Millisecond))
	}
}

// testIncidents: a binding violation on node 2 is an incident every node lists,
// with the node that saw it, under the same ID; an acknowledgement on node 3 is
// seen on node 1, which then refuses a second one.
func (c *testCluster) testIncidents(t *testing.T) {
	c = c.rebind(t)
	if r := c.purchaseOn(2, pos(1000, [2]string{"DI", "SN-STOLEN01"})); r.RC != "59" || r.Reason != "device-mismatch" {
		t.Fatalf("a purchase from another device on node 2: %s (%s), want 59 device-mismatch", r.RC, r.Reason)
	}
	type incident struct {
		ID     string `json:"id"`
		Node   int    `json:"node"`
		Status string `json:"status"`
		AckBy  string `json:"acknowledged_by"`
	}
	list := func(n int) ([]incident, string) {
		code, b, err := c.node(n).api("GET", "/api/v1/incidents?terminal=T0000001&reason=device-mismatch", tokOperator, nil)
		if err != nil || code != http.StatusOK {
			return nil, fmt.Sprintf("error %d %v %s", code, err, b)
		}
		var v []incident
		if err := json.Unmarshal(b, &v); err != nil {
			return nil, fmt.Sprintf("%v: %s", err, b)
		}
		return v, ""
	}
	var id string
	for _, n := range []int{2, 1, 3} {
		var why string
		took := waitUntil(t, 15*time.Second, func() string { return fmt.Sprintf("node %d: %s", n, why) }, func() bool {
			v, e := list(n)
			switch {
			case e != "":
				why = e
			case len(v) != 1 || v[0].Node != 2 || v[0].Status != "open" || (id != "" && v[0].ID != id):
				why = fmt.Sprintf("incidents %+v; want one, open, from node 2, ID %q", v, id)
			default:
				id, why = v[0].ID, ""
			}
			return why == ""
		})
		t.Logf("node 2's incident %s listed on node %d after %v", id, n, took.Round(time.Millisecond))
	}
	if code, b, err := c.node(3).api("POST", "/api/v1/incidents/"+id+"/ack", tokOperator, strings.NewReader(`{"note":"calling the merchant"}`)); err != nil || code != http.StatusOK {
		t.Fatalf("acknowledge %s on node 3: %d %v %s", id, code, err, b)
	}
	var why string
	waitUntil(t, 15*time.Second, func() string { return "node 1: " + why }, func() bool {
		v, e := list(1)
		why = e
		if e == "" && (len(v) != 1 || v[0].Status != "acknowledged") {
			why = fmt.Sprintf("incidents %+v; want %s acknowledged", v, id)
		}
		return why == ""
	})
	if code, b, err := c.node(1).api("POST", "/api/v1/incidents/"+id+"/ack", tokOperator, nil); err != nil || code != http.StatusConflict {
		t.Errorf("a second acknowledgement of %s, on node 1: %d %v %s; want 409", id, code, err, b)
	}
}

// testOfflineAlert: the offline monitor runs on one node of the three. A rule
// for one never-seen terminal (T0000009, activated when the demo fleet was
// loaded) with a threshold of a minute, and the offline check as a task (defined
// through review on node 1): run by hand on every node until the alert is
// raised, it runs on one node and reports "skipped" on the two others, always
// the same one; the one alert is then listed on every node, under the same ID.
func (c *testCluster) testOfflineAlert(t *testing.T) {
	c = c.rebind(t)
	rule := `{"id":"e2e-t9","threshold":"1m","filter":{"merchants":["000000000000009"]},"actions":[{"type":"log"}]}`
	if code, b, err := c.node(1).api("POST", "/api/v1/alert-rules", tokOperator, strings.NewReader(rule)); err != nil || code/100 != 2 {
		t.Fatalf("alert rule on node 1: %d %v %s", code, err, b)
	}
	type alert struct {
		ID         string `json:"id"`
		TerminalID string `json:"terminal_id"`
		Node       int    `json:"node"`
	}
	alerts := func(n int) ([]alert, string) {
		code, b, err := c.node(n).api("GET", "/api/v1/alerts?rule=e2e-t9", tokOperator, nil)
		if err != nil || code != http.StatusOK {
			return nil, fmt.Sprintf("error %d %v %s", code, err, b)
		}
		var v []alert
		if err := json.Unmarshal(b, &v); err != nil {
			return nil, fmt.Sprintf("%v: %s", err, b)
		}
		return v, ""
	}
	// The offline check as a task (reviewed), to run by hand on each node.
	task := `{"name":"e2e-offline","kind":"offline.check","schedule":"0 0 1 1 *","reason":"e2e"}`
	code, b, err := c.node(1).api("PUT", "/api/v1/tasks/e2e-offline", tokOperator, strings.NewReader(task))
	var chg struct {
		ID string `json:"id"`
	}
	if err != nil || code != http.StatusAccepted || json.Unmarshal(b, &chg) != nil {
		t.Fatalf("task e2e-offline on node 1: %d %v %s", code, err, b)
	}
	if code, b, err := c.node(1).api("POST", "/api/v1/changes/"+chg.ID+"/approve", tokReviewer, nil); err != nil || code != http.StatusOK {
		t.Fatalf("approve %s on node 1: %d %v %s", chg.ID, code, err, b)
	}
	for n := 1; n <= 3; n++ {
		var why string
		waitUntil(t, 15*time.Second, func() string { return fmt.Sprintf("node %d: %s", n, why) }, func() bool {
			code, b, err := c.node(n).api("GET", "/api/v1/tasks/e2e-offline/history", tokOperator, nil)
			why = fmt.Sprintf("task e2e-offline: %d %v %s", code, err, b)
			return err == nil && code == http.StatusOK
		})
	}
	monitor := 0
	var why string
	took := waitUntil(t, 120*time.Second, func() string { return why }, func() bool {
		for n := 1; n <= 3; n++ {
			code, b, err := c.node(n).api("POST", "/api/v1/tasks/e2e-offline/run", tokOperator, nil)
			if err != nil || code != http.StatusOK {
				t.Fatalf("offline.check on node %d: %d %v %s", n, code, err, b)
			}
			var run struct {
				Outcome, Output, Error string
			}
			if err := json.Unmarshal(b, &run); err != nil {
				t.Fatalf("offline.check on node %d: %v: %s", n, err, b)
			}
			if strings.HasPrefix(run.Output, "skipped") {
				continue
			}
			if monitor != 0 && monitor != n {
				t.Fatalf("the offline check ran on node %d and on node %d (%q): one monitor at a time", monitor, n, run.Output)
			}
			monitor = n
		}
		v, e := alerts(monitor)
		why = fmt.Sprintf("no alert for T0000009 yet on the monitor, node %d (%s %v)", monitor, e, v)
		return e == "" && len(v) == 1
	})
	if monitor == 0 {
		t.Fatal("the offline check was skipped on every node")
	}
	t.Logf("node %d runs the offline monitor; the alert raised after %v of runs", monitor, took.Round(time.Millisecond))
	var first []alert
	for n := 1; n <= 3; n++ {
		waitUntil(t, 15*time.Second, func() string { return fmt.Sprintf("node %d: %s", n, why) }, func() bool {
			v, e := alerts(n)
			switch {
			case e != "":
				why = e
			case len(v) != 1 || v[0].TerminalID != "T0000009" || v[0].Node != monitor || (first != nil && v[0].ID != first[0].ID):
				why = fmt.Sprintf("alerts %+v; want one for T0000009 raised by node %d", v, monitor)
			default:
				first, why = v, ""
			}
			return why == ""
		})
	}
}

// rebind is the cluster as seen from a subtest (whose t fails).
func (c *testCluster) rebind(t *testing.T) *testCluster { cc := *c; cc.t = t; return &cc }

// testTraffic (scenario 1): purchases through all three nodes; every node's journal
// holds each of them exactly once, under an RRN whose first digit is the node that
// answered, and the issuer was asked once per RRN.
func (c *testCluster) testTraffic(t *testing.T) {
	c = c.rebind(t)
	const per = 5
	tids := map[string]bool{}
	want := map[string]clusterTold{} // by DE 41 + 11 + 7
	rrns := map[string]bool{}
	for n := 1; n <= 3; n++ {
		tid := fmt.Sprintf("LT0019%02d", n)
		tids[tid] = true
		for i := range per {
			tx := probeTxn(tid, testPAN(900000+n*100+i), int64(1000+100*i))
			r := c.purchaseOn(n, tx)
			if r.RC != "00" {
				t.Fatalf("node %d, %s/%s: answered %s (%s)", n, tid, tx.STAN, r.RC, r.Reason)
			}
			if !strings.HasPrefix(r.RRN, fmt.Sprint(n)) || len(r.RRN) != 12 {
				t.Errorf("node %d handed out RRN %q: want 12 digits starting with %d", n, r.RRN, n)
			}
			if rrns[r.RRN] {
				t.Errorf("RRN %s handed out twice", r.RRN)
			}
			rrns[r.RRN] = true
			w := clusterTold{tid: tid, stan: tx.STAN, de7: message.FormatDE7(tx.Time), amount: tx.Amount, rc: r.RC, rrn: r.RRN, node: n}
			want[w.key()] = w
		}
	}
	for _, n := range c.nodes {
		var last string
		took := waitUntil(t, 5*time.Second, func() string { return fmt.Sprintf("node %d does not see the cluster's records: %s", n.n, last) }, func() bool {
			byKey := map[string][]*journal.Record{}
			for tid := range tids {
				recs, err := n.journal(tid)
				if err != nil {
					last = err.Error()
					return false
				}
				for _, r := range recs {
					byKey[r.TID+"/"+r.STAN+"/"+r.DE7] = append(byKey[r.TID+"/"+r.STAN+"/"+r.DE7], r)
				}
			}
			var missing []string
			for k, w := range want {
				if len(byKey[k]) == 0 {
					missing = append(missing, fmt.Sprintf("%s (RRN %s, node %d)", k, w.rrn, w.node))
				}
			}
			if len(missing) > 0 {
				last = fmt.Sprintf("%d of %d records missing: %v", len(missing), len(want), missing)
				return false
			}
			// A record may be there in its write-ahead version only (no answer yet):
			// its final version follows it in the stream.
			for k, rs := range byKey {
				if w, ok := want[k]; ok && len(rs) == 1 && rs[0].RRN == w.rrn && rs[0].RC == "" {
					last = fmt.Sprintf("request %s (RRN %s) applied without its answer yet", k, w.rrn)
					return false
				}
			}
			for k, rs := range byKey {
				w, ok := want[k]
				switch {
				case !ok:
					t.Errorf("node %d: %s in the journal, never sent", n.n, k)
				case len(rs) != 1:
					t.Errorf("node %d: request %s journaled %d times", n.n, k, len(rs))
				case rs[0].RRN != w.rrn || rs[0].RC != w.rc:
					t.Errorf("node %d: request %s journaled as %s %s; node %d told %s %s", n.n, k, rs[0].RRN, rs[0].RC, w.node, w.rrn, w.rc)
				}
			}
			return true
		})
		t.Logf("node %d's journal holds all %d records of the three nodes after %s", n.n, len(want), took.Round(time.Millisecond))
	}
	ledger := c.sim.Ledger()
	for _, w := range want {
		if e := ledger[w.rrn]; e.Requests != 1 || !e.Approved || e.Amount != w.amount {
			t.Errorf("RRN %s: the issuer's ledger %+v, want one approved request of %d", w.rrn, e, w.amount)
		}
	}
}

// terminalStatus reads a terminal's status on node n.
func (c *testCluster) terminalStatus(n int, tid string) string {
	code, b, err := c.node(n).api("GET", "/api/v1/terminals/"+tid, tokOperator, nil)
	if err != nil || code != http.StatusOK {
		return fmt.Sprintf("error %d %v %s", code, err, b)
	}
	var v struct {
		Status string `json:"status"`
	}
	_ = json.Unmarshal(b, &v)
	return v.Status
}

// requestChange requests a terminal action on node n as the operator and returns the
// change's ID.
func (c *testCluster) requestChange(n int, tid, action string) string {
	c.t.Helper()
	code, b, err := c.node(n).api("POST", "/api/v1/terminals/"+tid+"/"+action, tokOperator, strings.NewReader(`{"reason":"e2e cluster"}`))
	if err != nil || code/100 != 2 {
		c.t.Fatalf("node %d: %s %s: %d %v %s", n, action, tid, code, err, b)
	}
	var ch struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &ch); err != nil || ch.ID == "" {
		c.t.Fatalf("node %d: %s %s: no change ID in %s", n, action, tid, b)
	}
	return ch.ID
}

func (c *testCluster) changeStatus(n int, id string) string {
	code, b, err := c.node(n).api("GET", "/api/v1/changes/"+id, tokOperator, nil)
	if err != nil || code != http.StatusOK {
		return fmt.Sprintf("error %d %v %s", code, err, b)
	}
	var v struct {
		Status string `json:"status"`
		Change struct {
			Status string `json:"status"`
		} `json:"change"`
	}
	_ = json.Unmarshal(b, &v)
	if v.Change.Status != "" {
		return v.Change.Status
	}
	return v.Status
}

// testRegistry (scenario 3): a suspension approved on node 1 is enforced on node 3
// within a second; two conflicting changes approved at once on two nodes: one wins,
// the other is refused with 409 and a message that says why, and every node ends in
// the same state.
func (c *testCluster) testRegistry(t *testing.T) {
	c = c.rebind(t)
	const tid = "LT001990"
	if r := c.purchaseOn(3, probeTxn(tid, testPAN(910001), 1200)); r.RC != "00" {
		t.Fatalf("before: node 3 answered %s (%s)", r.RC, r.Reason)
	}
	id := c.requestChange(1, tid, "suspend")
	code, b, err := c.node(1).api("POST", "/api/v1/changes/"+id+"/approve", tokReviewer, strings.NewReader(`{"note":"ok"}`))
	if err != nil || code != http.StatusOK {
		t.Fatalf("approve %s on node 1: %d %v %s", id, code, err, b)
	}
	approved := time.Now()
	waitUntil(t, 3*time.Second, func() string { return "node 3 never saw the suspension: " + c.terminalStatus(3, tid) }, func() bool {
		return c.terminalStatus(3, tid) == "suspended"
	})
	r := c.purchaseOn(3, probeTxn(tid, testPAN(910002), 1200))
	took := time.Since(approved)
	if r.RC != "58" || r.Reason != "terminal-suspended" {
		t.Fatalf("after the suspension approved on node 1, node 3 answered %s (%s)", r.RC, r.Reason)
	}
	t.Logf("suspension approved on node 1 enforced on node 3 after %s", took.Round(time.Millisecond))
	if took > time.Second {
		t.Errorf("node 3 enforced the suspension %s after its approval on node 1: want within 1 s", took)
	}

	// Two operators ask to resume the terminal, one on node 1, one on node 2; two
	// reviewers approve at the same moment. Only one resumption can apply.
	id1 := c.requestChange(1, tid, "resume")
	waitUntil(t, 3*time.Second, func() string { return fmt.Sprintf("node 2 never saw %s pending: %s", id1, c.changeStatus(2, id1)) }, func() bool {
		return c.changeStatus(2, id1) == "pending"
	})
	id2 := c.requestChange(2, tid, "resume")
	if id1 == id2 {
		t.Fatalf("two changes requested on two nodes got the same ID %s", id1)
	}
	waitUntil(t, 3*time.Second, func() string { return fmt.Sprintf("node 1 never saw %s pending: %s", id2, c.changeStatus(1, id2)) }, func() bool {
		return c.changeStatus(1, id2) == "pending"
	})
	type outcome struct {
		code int
		body string
		err  error
	}
	out := make([]outcome, 2)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, x := range []struct {
		node  int
		id    string
		token string
	}{{1, id1, tokReviewer}, {2, id2, tokReviewer2}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			code, b, err := c.node(x.node).api("POST", "/api/v1/changes/"+x.id+"/approve", x.token, strings.NewReader(`{"note":"ok"}`))
			out[i] = outcome{code, string(b), err}
		}()
	}
	close(start)
	wg.Wait()
	wins, conflicts := 0, 0
	for i, o := range out {
		switch {
		case o.err == nil && o.code == http.StatusOK:
			wins++
		case o.err == nil && o.code == http.StatusConflict:
			conflicts++
			t.Logf("approval on node %d refused: %d %s", i+1, o.code, strings.TrimSpace(o.body))
			if !strings.Contains(o.body, tid) && !strings.Contains(strings.ToLower(o.body), "another node") {
				t.Errorf("the conflict on node %d does not say what conflicted: %s", i+1, o.body)
			}
		default:
			t.Errorf("approval on node %d: %d %v %s (want 200 or 409)", i+1, o.code, o.err, o.body)
		}
	}
	if wins != 1 || conflicts != 1 {
		t.Fatalf("two conflicting approvals: %d won, %d refused with 409; want one each", wins, conflicts)
	}
	// Every node ends the same: the terminal active, one change approved, the other not.
	for n := 1; n <= 3; n++ {
		var last string
		waitUntil(t, 3*time.Second, func() string { return fmt.Sprintf("node %d: %s", n, last) }, func() bool {
			st, s1, s2 := c.terminalStatus(n, tid), c.changeStatus(n, id1), c.changeStatus(n, id2)
			last = fmt.Sprintf("terminal %s, %s %s, %s %s", st, id1, s1, id2, s2)
			return st == "active" && (s1 == "approved") != (s2 == "approved")
		})
	}
	if r := c.purchaseOn(3, probeTxn(tid, testPAN(910003), 1200)); r.RC != "00" {
		t.Errorf("after the resumption: node 3 answered %s (%s)", r.RC, r.Reason)
	}
}

// testVelocity (scenario 4): a card used on node 1 then on node 2 counts twice on node
// 2, and so do a terminal's purchases across nodes; a request resent to other nodes
// (a retried publish of the same transaction) does not count again.
func (c *testCluster) testVelocity(t *testing.T) {
	c = c.rebind(t)
	// Card: the rule declines its third purchase on LT001998.
	const ctid = "LT001998"
	pan := testPAN(920001)
	first := probeTxn(ctid, pan, 1500)
	r1 := c.purchaseOn(1, first)
	if r1.RC != "00" {
		t.Fatalf("first use on node 1: %s (%s)", r1.RC, r1.Reason)
	}
	took := c.waitJournaled(2, ctid, r1.RRN, 3*time.Second)
	t.Logf("node 1's record on node 2 after %s", took.Round(time.Millisecond))
	// The same request again, on node 2 and node 3: the first answer, not a new use.
	for n := 2; n <= 3; n++ {
		if r := c.purchaseOn(n, first); r.RRN != r1.RRN || r.RC != r1.RC || r.AuthCode != r1.AuthCode {
			t.Errorf("the first use resent to node %d: %+v; want node 1's answer %+v", n, r, r1)
		}
	}
	r2 := c.purchaseOn(2, probeTxn(ctid, pan, 1600))
	if r2.RC != "00" {
		t.Fatalf("second use, on node 2: %s (%s); the resends must not count", r2.RC, r2.Reason)
	}
	c.waitJournaled(3, ctid, r2.RRN, 3*time.Second)
	if r := c.purchaseOn(3, probeTxn(ctid, pan, 1700)); r.RC != "65" || r.Reason != "e2e-card-velocity" {
		t.Errorf("third use, on node 3: %s (%s); want 65 e2e-card-velocity (node 1's and node 2's uses count)", r.RC, r.Reason)
	}
	// Terminal: the rule declines its fourth purchase (other cards each time).
	const ttid = "LT001999"
	var last termclient.Result
	for i, n := range []int{1, 2, 3} {
		last = c.purchaseOn(n, probeTxn(ttid, testPAN(930000+i), 1100))
		if last.RC != "00" {
			t.Fatalf("purchase %d on node %d: %s (%s)", i+1, n, last.RC, last.Reason)
		}
		for m := 1; m <= 3; m++ {
			if m != n {
				c.waitJournaled(m, ttid, last.RRN, 3*time.Second)
			}
		}
	}
	if r := c.purchaseOn(1, probeTxn(ttid, testPAN(930009), 1100)); r.RC != "65" || r.Reason != "e2e-terminal-velocity" {
		t.Errorf("fourth purchase on the terminal, on node 1: %s (%s); want 65 e2e-terminal-velocity", r.RC, r.Reason)
	}
}

// testOriginalRace: refunds and voids of one original sent to two nodes at the same
// moment. Each node checks them against its copy of the original, so without a
// cluster-wide order both could pass: two full refunds of one purchase, or a void
// and a refund of it (the cardholder credited twice). At most one may be approved.
func (c *testCluster) testOriginalRace(t *testing.T) {
	c = c.rebind(t)
	const pairs = 6
	for i := range pairs {
		pan := testPAN(940000 + i)
		p := c.purchaseOn(1, probeTxn("LT001996", pan, 2000))
		if p.RC != "00" {
			t.Fatalf("purchase %d on node 1: %s (%s)", i, p.RC, p.Reason)
		}
		c.waitJournaled(2, "LT001996", p.RRN, 3*time.Second)
		// Refund and refund, then void and refund, each on node 1 and node 2.
		procs := [2]string{message.PCRefund, message.PCRefund}
		if i%2 == 1 {
			procs[0] = message.PCVoid
		}
		var terms [2]*failoverTerm
		var txs [2]termclient.Txn
		for k, tid := range []string{"LT001996", "LT001997"} {
			terms[k] = singleNodeTerm(c, k+1, 15*time.Second)
			defer terms[k].close()
			txs[k] = probeTxn(tid, pan, 2000)
			txs[k].ProcCode, txs[k].RRN = procs[k], p.RRN
		}
		var got [2]termclient.Result
		var errs [2]error
		var wg sync.WaitGroup
		start := make(chan struct{})
		for k := range 2 {
			wg.Go(func() {
				<-start
				got[k], _, _, errs[k] = terms[k].send(txs[k], 15*time.Second)
			})
		}
		close(start)
		wg.Wait()
		approved := 0
		for k := range 2 {
			if errs[k] != nil {
				t.Fatalf("pair %d: %s on node %d: %v", i, procs[k], k+1, errs[k])
			}
			if got[k].RC == "00" {
				approved++
			}
		}
		t.Logf("pair %d (%s of %s): node 1 %s %s, node 2 %s %s", i, procs, p.RRN, got[0].RC, got[0].Reason, got[1].RC, got[1].Reason)
		if approved != 1 {
			t.Errorf("pair %d: %s on node 1 answered %s (%s), %s on node 2 answered %s (%s); want exactly one approved",
				i, procs[0], got[0].RC, got[0].Reason, procs[1], got[1].RC, got[1].Reason)
		}
	}
}

// TestClusterNodeKilled (scenarios 2 and 6): twelve terminals spread over the three
// nodes buy one purchase at a time, the issuer drops 5% of the answers and answers 5%
// late; node 2 is killed with SIGKILL mid-load. Its terminals fail over and resend
// what had no answer. Afterwards: nothing lost, nothing authorized twice, every
// reversal node 2 owed delivered by a survivor, the survivors' settlement equal to the
// issuer's books to the cent. Then node 2 restarts on its data directory, catches up
// and serves again.
func TestClusterNodeKilled(t *testing.T) {
	t.Parallel() // see startCluster
	c := startCluster(t, clusterOptions{Faults: faultsDropDelay})
	const terminals = 12
	tids := map[string]bool{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	results := make(chan clusterTold, 100000)
	var wg sync.WaitGroup
	begin := time.Now()
	for i := 1; i <= terminals; i++ {
		tid := fmt.Sprintf("LT0001%02d", i)
		tids[tid] = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			clusterTerminalLoop(ctx, c, 1+i%3, tid, 100+i, results)
		}()
	}
	// Kill node 2 once the load runs on every node.
	var told []clusterTold
	collect := func(until func() bool, d time.Duration) {
		deadline := time.After(d)
		for !until() {
			select {
			case r := <-results:
				told = append(told, r)
			case <-deadline:
				return
			}
		}
	}
	perNode := func() [4]int {
		var k [4]int
		for _, r := range told {
			k[r.node]++
		}
		return k
	}
	collect(func() bool { k := perNode(); return k[1] >= 20 && k[2] >= 20 && k[3] >= 20 }, 20*time.Second)
	if k := perNode(); k[2] == 0 {
		t.Fatalf("no load reached node 2 before the kill: %v", k)
	}
	// Make node 2 owe reversals when it dies: the issuer takes requests and drops
	// every answer for a moment (the nodes time out and reverse), then hangs (the
	// reversals go unanswered, and unrecorded). Node 2 is killed once it has answered
	// its terminals for the dropped requests, that is once their reversals are queued.
	c.sim.SetFaults(issuersim.Faults{Drop: 1})
	owed := map[string]bool{}
	owedOf := func() {
		for rrn, e := range c.sim.Ledger() {
			if strings.HasPrefix(rrn, "2") && e.Fault == "dropped" && e.Requests > 0 && !e.Reversed {
				owed[rrn] = true
			}
		}
	}
	collect(func() bool { owedOf(); return len(owed) >= 2 }, 5*time.Second)
	if err := c.sim.StartOutage(issuersim.OutageSilent); err != nil {
		t.Fatal(err)
	}
	clear(owed)
	owedOf() // what node 2 sent, the issuer dropped the answer to and never saw reversed
	answeredOwed := func() bool {
		n := 0
		for _, r := range told {
			if owed[r.rrn] && r.answered {
				n++
			}
		}
		return n == len(owed)
	}
	collect(answeredOwed, 5*time.Second)
	killed := c.node(2)
	killedAt := time.Now()
	killed.kill()
	// A reversal the simulator was already taking when the outage began is recorded
	// after owedOf's snapshot (the outage records nothing new): node 2 delivered
	// it before it died, and did not owe it (a CI run met this once).
	for rrn, e := range c.sim.Ledger() {
		if owed[rrn] && e.Reversed {
			delete(owed, rrn)
		}
	}
	if err := c.sim.EndOutage(); err != nil {
		t.Fatal(err)
	}
	c.sim.SetFaults(faultsDropDelay)
	t.Logf("node 2 killed after %s of load (%d answers so far: %v by node), owing the issuer %d reversals (all answered to the terminals: %v)",
		killedAt.Sub(begin).Round(time.Millisecond), len(told), perNode(), len(owed), answeredOwed())
	if len(owed) == 0 {
		t.Errorf("the test did not make node 2 owe a reversal before the kill")
	}
	// Go on until every terminal has had answers from the survivors for a while.
	before := len(told)
	collect(func() bool { return len(told) >= before+150 && time.Since(killedAt) > 4*time.Second }, 30*time.Second)
	cancel()
	wg.Wait()
	close(results)
	for r := range results {
		told = append(told, r)
	}
	end := time.Now()

	survivors := []*clusterNode{c.node(1), c.node(3)}
	// The survivors settle node 2's open transactions (its lease lapses) and deliver
	// the reversals it owed (its store-and-forward work goes back to the queue).
	var recs []*journal.Record
	var last, lastRRN string
	// Not fatal: the books below say what is still wrong.
	took := waitUntilOr(t.Errorf, 60*time.Second, func() string {
		var about string
		if lastRRN != "" {
			// Every node's log lines on the record still wrong.
			about = "\nevery node's log on " + lastRRN + ":\n" + tail(c.node(1).logGrep(lastRRN)+"\n"+c.node(2).logGrep(lastRRN)+"\n"+c.node(3).logGrep(lastRRN), 8000)
		}
		var saf []string
		for _, n := range survivors {
			code, b, err := n.api("GET", "/api/v1/saf", tokOperator, nil)
			saf = append(saf, fmt.Sprintf("node %d GET /api/v1/saf: %d %v %.600s", n.n, code, err, b))
		}
		words := []string{"lease", "lost", "recover", "dead", "saf", "advice", "queue"}
		c.keepGoroutines(survivors...)
		return "node 2's work not taken over: " + last + "\n" + strings.Join(saf, "\n") + "\nthe survivors' logs on leases, recovery and store-and-forward:\n" +
			tail(c.node(1).logGrep(words...), 6000) + "\n" + tail(c.node(3).logGrep(words...), 6000) + about
	}, func() bool {
		var err error
		recs, err = c.node(1).journal("")
		if err != nil {
			last = err.Error()
			return false
		}
		ledger := c.sim.Ledger()
		open, owed := 0, 0
		for _, r := range recs {
			if !tids[r.TID] {
				continue
			}
			if !r.Final() {
				open++
				last, lastRRN = fmt.Sprintf("RRN %s still open (%s)", r.RRN, r.State), r.RRN
			}
			e := ledger[r.RRN]
			if r.Type == "purchase" && r.Reversed() && r.Issuer != "" && e.Requests > 0 && !e.Reversed {
				owed++
				last = fmt.Sprintf("RRN %s reversed (%s), the issuer has no reversal: %+v", r.RRN, r.ReversedBy, e)
			}
			if r.Type == "purchase" && e.Approved && !e.Reversed && (!r.Approved() || r.Reversed()) {
				owed++
				last = fmt.Sprintf("the issuer approved RRN %s, the cluster did not (%s) and has not reversed it at the issuer yet", r.RRN, describe(r))
			}
		}
		if open+owed > 0 {
			last = fmt.Sprintf("%d open, %d reversals owed; e.g. %s", open, owed, last)
		}
		return open+owed == 0
	})
	t.Logf("node 2's open transactions settled and its reversals delivered %s after the load ended (%s after the kill)",
		took.Round(time.Millisecond), time.Since(killedAt).Round(time.Millisecond))
	ledger := c.sim.Ledger()
	for rrn := range owed {
		if e := ledger[rrn]; !e.Reversed || e.ReversedAt.Before(killedAt) {
			t.Errorf("RRN %s: node 2 owed its reversal when it died; the issuer's ledger: %+v", rrn, e)
		}
	}
	c.checkBooks(t, told, recs, tids, killedAt, shanghaiDates(begin, end), survivors)

	// Scenario 6: node 2 comes back on its data directory, catches up, serves again.
	// The issuer answers everything from here: its faults served the load, and a
	// dropped answer would make the restarted node's probe a 91 by chance (one in
	// ten).
	c.sim.SetFaults(issuersim.Faults{})
	restartAt := time.Now()
	killed.launch()
	killed.waitReady(60 * time.Second)
	t.Logf("node 2 ready %s after its restart", time.Since(restartAt).Round(time.Millisecond))
	want := map[string]bool{}
	for _, r := range recs {
		if tids[r.TID] {
			want[r.RRN] = true
		}
	}
	took = waitUntil(t, 20*time.Second, func() string { return "node 2 did not catch up: " + last }, func() bool {
		got, err := killed.journal("")
		if err != nil {
			last = err.Error()
			return false
		}
		have := map[string]bool{}
		for _, r := range got {
			have[r.RRN] = true
		}
		missing := 0
		for rrn := range want {
			if !have[rrn] {
				missing++
				last = fmt.Sprintf("%d of %d records missing, e.g. %s", missing, len(want), rrn)
			}
		}
		return missing == 0
	})
	t.Logf("node 2 caught up with %d records %s after it was ready", len(want), took.Round(time.Millisecond))
	// A request the survivors answered while node 2 was down, resent to node 2: the
	// same answer, not a second authorization.
	var resent *clusterTold
	for i := range told {
		if told[i].answered && told[i].node != 2 && told[i].at.After(killedAt) && told[i].rc == "00" {
			resent = &told[i]
			break
		}
	}
	if resent != nil {
		r := c.purchaseOn(2, c.rebuild(t, *resent))
		if r.RRN != resent.rrn || r.RC != resent.rc || r.AuthCode != resent.auth {
			t.Errorf("%s resent to the restarted node 2: %+v; want the survivor's answer %s %s %s", resent.key(), r, resent.rc, resent.rrn, resent.auth)
		}
	}
	r := c.purchaseOn(2, probeTxn("LT001980", testPAN(940001), 2200))
	if r.RC != "00" || !strings.HasPrefix(r.RRN, "2") {
		t.Errorf("the restarted node 2 answered %s (%s) with RRN %s; want an approval under RRN 2...", r.RC, r.Reason, r.RRN)
	}
	// Its settlement agrees with the survivors'.
	dates := shanghaiDates(begin, time.Now())
	_, a1, err1 := settledFor(c.node(1), dates, tids)
	_, a2, err2 := settledFor(killed, dates, tids)
	if err1 != nil || err2 != nil || a1 != a2 {
		t.Errorf("settlement after the restart: node 1 %d (%v), node 2 %d (%v)", a1, err1, a2, err2)
	}
	for _, n := range c.nodes {
		if err := n.stop(); err != nil {
			t.Errorf("graceful stop: %v; log ends:\n%s", err, n.logTail(2000))
		}
	}
}

// faultsDropDelay: 5% of the issuer's answers dropped, 5% late (after the nodes' 300 ms
// issuer timeout).
var faultsDropDelay = issuersim.Faults{Drop: 0.05, Delay: 0.05, DelayBy: 700 * time.Millisecond}

// rebuild makes the purchase a clusterTerminalLoop sent for told again, byte for byte
// in the fields that identify it.
func (c *testCluster) rebuild(t *testing.T, told clusterTold) termclient.Txn {
	t.Helper()
	var seq, i int
	if _, err := fmt.Sscanf(told.tid, "LT0001%02d", &seq); err != nil {
		t.Fatalf("tid %s: %v", told.tid, err)
	}
	if _, err := fmt.Sscanf(told.stan, "%06d", &i); err != nil {
		t.Fatalf("stan %s: %v", told.stan, err)
	}
	i-- // STAN i+1
	return termclient.Txn{PAN: testPAN((100+seq)*10000 + i), Amount: told.amount, Expiry: "2912", TID: told.tid,
		MID: "000000000000003", STAN: told.stan, Time: told.at}
}

// checkBooks reconciles what the terminals were told, the cluster's journal (recs, read
// from a survivor), the issuer's ledger and every survivor's settlement.
func (c *testCluster) checkBooks(t *testing.T, told []clusterTold, recs []*journal.Record, tids map[string]bool, killedAt time.Time, dates []string, survivors []*clusterNode) {
	t.Helper()
	byRRN := map[string]*journal.Record{}
	byKey := map[string][]*journal.Record{}
	for _, r := range recs {
		if !tids[r.TID] || r.Type != "purchase" {
			continue
		}
		if byRRN[r.RRN] != nil {
			t.Errorf("RRN %s twice in the journal", r.RRN)
		}
		byRRN[r.RRN] = r
		if r.OwnsDupKey() {
			k := r.TID + "/" + r.STAN + "/" + r.DE7
			byKey[k] = append(byKey[k], r)
		}
	}
	ledger := c.sim.Ledger()
	for k, rs := range byKey {
		if len(rs) > 1 {
			var desc []string
			approvals := 0
			for _, r := range rs {
				desc = append(desc, fmt.Sprintf("%s %s %s", r.RRN, r.RC, r.ReversedBy))
				if e := ledger[r.RRN]; e.Approved && !e.Reversed {
					approvals++
				}
			}
			t.Errorf("request %s journaled %d times (%s)", k, len(rs), strings.Join(desc, "; "))
			if approvals > 1 {
				t.Errorf("request %s authorized %d times at the issuer", k, approvals)
			}
		}
	}
	var toldSum, journalSum, issuerSum int64
	answered, unanswered, resent, approvals, inDoubt := 0, 0, 0, 0, 0
	for _, r := range told {
		if r.sends > 1 {
			resent++
		}
		if !r.answered {
			unanswered++
			if !r.reversed {
				t.Errorf("%s: no node answered it, nor its reversals within 15 s of the load's end", r.key())
			}
			for _, rec := range byKey[r.key()] {
				if rec.Approved() && !rec.Reversed() {
					t.Errorf("%s: no node answered and the terminal reversed it, but the journal keeps it approved: %+v", r.key(), rec)
				}
			}
			continue
		}
		answered++
		rec := byRRN[r.rrn]
		if rec == nil {
			t.Errorf("%s: node %d told %s with RRN %s, which is not in the journal (lost)", r.key(), r.node, r.rc, r.rrn)
			continue
		}
		// An approval whose answer did not reach the terminal is reversed, and its
		// resend (on another node after the failover) is answered 91 from then on.
		if (rec.RC != r.rc || rec.AuthCode != r.auth) && !(rec.Reversed() && r.rc == message.RCIssuerUnavailable) {
			t.Errorf("RRN %s: the terminal was told %s/%s, the journal says %s/%s", r.rrn, r.rc, r.auth, rec.RC, rec.AuthCode)
		}
		if !message.Approved(r.rc) {
			continue
		}
		approvals++
		if rec.Reversed() && strings.HasPrefix(rec.ReversedBy, "switch:") && r.node == 2 && !r.at.After(killedAt) {
			// Answered by node 2 just before the kill, its delivery mark not yet
			// replicated: in doubt, so reversed by the recovery (as after a single
			// node's crash). The terminal's copy of the approval is void.
			inDoubt++
			continue
		}
		toldSum += r.amount
		if rec.Reversed() {
			t.Errorf("RRN %s: node %d told the terminal it was approved, the cluster reversed it (%s)", r.rrn, r.node, rec.ReversedBy)
		}
	}
	for _, rec := range byRRN {
		e := ledger[rec.RRN]
		if rec.Approved() && !rec.Reversed() {
			journalSum += rec.Amount
		}
		if e.Requests > 1 {
			t.Errorf("RRN %s forwarded %d times: ledger %+v", rec.RRN, e.Requests, e)
		}
	}
	for rrn, e := range ledger {
		if !e.Approved || e.Reversed {
			continue
		}
		rec := byRRN[rrn]
		if rec == nil {
			// Another test's traffic on the same simulator is not the load's.
			if !c.loadRRN(rrn, recs, tids) {
				continue
			}
		}
		issuerSum += e.Amount
		if rec == nil || !rec.Approved() || rec.Reversed() {
			t.Errorf("RRN %s: the issuer holds an approval the cluster does not: %s; ledger %+v", rrn, describe(rec), e)
		}
	}
	t.Logf("terminals: %d answered (%d approved, %d in doubt at the kill), %d resent after a failover, %d unanswered and reversed; issuer: %d requests, %d dropped, %d delayed",
		answered, approvals, inDoubt, resent, unanswered, c.sim.Stats.Requests.Load(), c.sim.Stats.Dropped.Load(), c.sim.Stats.Delayed.Load())
	t.Logf("approved and not reversed (minor units): terminals %d, journal %d, issuer %d", toldSum, journalSum, issuerSum)
	if inDoubt > 4 {
		t.Errorf("%d approvals in doubt at the kill: more than one per terminal of node 2", inDoubt)
	}
	if toldSum != journalSum || journalSum != issuerSum || approvals == 0 {
		t.Errorf("books do not reconcile: terminals %d, journal %d, issuer %d", toldSum, journalSum, issuerSum)
	}
	for _, n := range survivors {
		_, amount, err := settledFor(n, dates, tids)
		if err != nil {
			t.Errorf("node %d: %v", n.n, err)
			continue
		}
		if amount != journalSum {
			t.Errorf("node %d settles %d for the load terminals; the journal's approvals sum to %d%s", n.n, amount, journalSum, c.timeScanGap(n, byRRN))
		}
	}
}

// describe is a record in one line: its outcome and its history.
func describe(r *journal.Record) string {
	if r == nil {
		return "no record"
	}
	var ev []string
	for _, e := range r.Events {
		x := string(e.State)
		if e.Note != "" {
			x += " (" + e.Note + ")"
		}
		ev = append(ev, x)
	}
	return fmt.Sprintf("RRN %s %s/%s/%s rc %q by %s, reversed by %q, state %s, events %s", r.RRN, r.TID, r.STAN, r.DE7, r.RC, r.DecidedBy,
		r.ReversedBy, r.State, strings.Join(ev, " > "))
}

// timeScanGap says which of the load's approved records node n's journal leaves out of
// a scan bounded in time (the settlement's), by the node whose RRN they carry.
func (c *testCluster) timeScanGap(n *clusterNode, byRRN map[string]*journal.Record) string {
	q := url.Values{}
	q.Set("from", "1h")
	recs, err := n.journalQuery(q)
	if err != nil {
		return fmt.Sprintf(" (journal?from=1h: %v)", err)
	}
	seen := map[string]bool{}
	for _, r := range recs {
		seen[r.RRN] = true
	}
	missing := map[byte]int{}
	var example string
	for rrn, r := range byRRN {
		if r.Approved() && !r.Reversed() && !seen[rrn] {
			missing[rrn[0]]++
			example = rrn
		}
	}
	if len(missing) == 0 {
		return "; a scan of the last hour on that node holds every approval"
	}
	var parts []string
	for d := byte('1'); d <= '3'; d++ {
		parts = append(parts, fmt.Sprintf("node %c's: %d", d, missing[d]))
	}
	// Whether the node holds the record at all (its terminal's index), and where its
	// applier stands: a time index without the record's class, or a record never
	// applied.
	held := "not found by its terminal either"
	if byTID, err := n.journal(byRRN[example].TID); err != nil {
		held = "by its terminal: " + err.Error()
	} else {
		for _, r := range byTID {
			if r.RRN == example {
				held = "found by its terminal (the time index misses it)"
			}
		}
	}
	_, status, err := n.api("GET", "/api/v1/cluster/status", tokOperator, nil)
	if err != nil {
		status = []byte(err.Error())
	}
	return fmt.Sprintf("; a scan of the last hour on that node (journal?from=1h, %d records) misses approvals (%s), e.g. RRN %s received %s, %s; cluster status: %.3000s",
		len(recs), strings.Join(parts, ", "), example, byRRN[example].Received.Format(time.RFC3339Nano), held, status)
}

// loadRRN reports whether the issuer's RRN belongs to the load: every RRN the load's
// terminals got is in recs; an approval the issuer holds under an RRN the journal does
// not know at all is counted as the load's (a lost record), others' are not.
func (c *testCluster) loadRRN(rrn string, recs []*journal.Record, tids map[string]bool) bool {
	for _, r := range recs {
		if r.RRN == rrn {
			return tids[r.TID]
		}
	}
	return true
}

// TestClusterQuorumLost (scenario 5): with two of the three nodes down the survivor
// has no JetStream quorum: it answers 91 and never approves without durability, its
// /readyz says why, and it serves again by itself once the two are back.
func TestClusterQuorumLost(t *testing.T) {
	t.Parallel() // see startCluster
	c := startCluster(t, clusterOptions{})
	n1 := c.node(1)
	if r := c.purchaseOn(1, probeTxn("LT001970", testPAN(950001), 1300)); r.RC != "00" {
		t.Fatalf("before: %s (%s)", r.RC, r.Reason)
	}
	requestsBefore := c.sim.Stats.Requests.Load()
	c.node(2).kill()
	c.node(3).kill()
	downAt := time.Now()
	var body string
	took := waitUntil(t, 20*time.Second, func() string { return "node 1's /readyz still answers 200 with two of three nodes down: " + body }, func() bool {
		var code int
		code, body = n1.readyz()
		return code == http.StatusServiceUnavailable
	})
	t.Logf("node 1 /readyz %s after the two nodes went down: %q", took.Round(time.Millisecond), body)
	low := strings.ToLower(body)
	// Which reason comes first is a race: the lost quorum, or the applier whose
	// consumer's server went (then it names the stream's replicas and when each was
	// last seen).
	if !strings.Contains(low, "quorum") && !strings.Contains(low, "jetstream") && !strings.Contains(low, "stream journal: leader") {
		t.Errorf("/readyz does not say why: %q", body)
	}
	var keys []string
	for i := range 2 {
		start := time.Now()
		tx := probeTxn("LT001971", testPAN(950010+i), 1300)
		keys = append(keys, tx.TID+"/"+tx.STAN+"/"+message.FormatDE7(tx.Time))
		r := c.purchaseOn(1, tx)
		t.Logf("purchase %d without a quorum: %s (%s) after %s", i+1, r.RC, r.Reason, time.Since(start).Round(time.Millisecond))
		if r.RC != "91" {
			t.Errorf("purchase %d without a quorum answered %s (%s); want 91", i+1, r.RC, r.Reason)
		}
	}
	if n := c.sim.Stats.Requests.Load() - requestsBefore; n != 0 {
		t.Errorf("the issuer was asked %d times without a quorum: nothing may go to the issuer before its record is durable", n)
	}
	// The two come back; node 1 recovers without a restart.
	c.node(2).launch()
	c.node(3).launch()
	c.node(2).waitReady(60 * time.Second)
	c.node(3).waitReady(60 * time.Second)
	took = waitUntil(t, 30*time.Second, func() string { code, b := n1.readyz(); return fmt.Sprintf("node 1 not ready again: %d %q", code, b) }, func() bool {
		code, _ := n1.readyz()
		return code == http.StatusOK
	})
	if n1.runs != 1 || !n1.running() {
		t.Fatal("node 1 was restarted")
	}
	t.Logf("node 1 ready again %s after its peers (%s after the outage began)", took.Round(time.Millisecond), time.Since(downAt).Round(time.Millisecond))
	if r := c.purchaseOn(1, probeTxn("LT001972", testPAN(950020), 1300)); r.RC != "00" {
		t.Errorf("after the quorum returned: node 1 answered %s (%s)", r.RC, r.Reason)
	}
	// What node 1 answered 91 to reaches every node's journal at most once (a publish
	// retried with its Nats-Msg-Id after the outage counts once), and none of it
	// approved. Whether a 91 given without a quorum is journaled at all afterwards is
	// the journal's choice; the test reports it.
	for _, n := range c.nodes {
		var count map[string]int
		deadline := time.Now().Add(5 * time.Second)
		for {
			recs, err := n.journal("LT001971")
			if err != nil {
				t.Fatalf("node %d: %v", n.n, err)
			}
			count = map[string]int{}
			for _, r := range recs {
				count[r.TID+"/"+r.STAN+"/"+r.DE7]++
				if r.Approved() && !r.Reversed() {
					t.Fatalf("node %d: %s approved without a quorum: %+v", n.n, r.RRN, r)
				}
			}
			once := 0
			for _, k := range keys {
				if count[k] > 1 {
					t.Fatalf("node %d: %s journaled %d times", n.n, k, count[k])
				}
				once += count[k]
			}
			if once == len(keys) || time.Now().After(deadline) {
				t.Logf("node %d's journal holds %d of the %d requests answered 91 without a quorum, each once", n.n, once, len(keys))
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for _, n := range c.nodes {
		if err := n.stop(); err != nil {
			t.Errorf("graceful stop: %v; log ends:\n%s", err, n.logTail(2000))
		}
	}
}

// notifyOrder posts a network's signed payment notification (the demo secret) to
// node n's admin server, as the network would, and returns its answer.
func (c *testCluster) notifyOrder(n int, note wallet.Notification) (int, wallet.Result, error) {
	body, err := json.Marshal(note)
	if err != nil {
		return 0, wallet.Result{}, err
	}
	req, err := http.NewRequest(http.MethodPost, "http://"+c.node(n).adminAddr+server.NotifyPath, bytes.NewReader(body))
	if err != nil {
		return 0, wallet.Result{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(wallet.NotifySignatureHeader, wallet.Sign([]byte(config.DemoNotifySecret), body))
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		return 0, wallet.Result{}, err
	}
	defer resp.Body.Close()
	var res wallet.Result
	err = json.NewDecoder(resp.Body).Decode(&res)
	return resp.StatusCode, res, err
}

// testQROrder: a merchant-presented order made on node 1 is served by every node
// (qr.orders.wait is 20 s here): the terminal's inquiry waiting on node 3 is
// answered paid when the payment, notified to nodes 2 and 1 at once (the network
// repeating it), reaches node 3; both notifications are answered SUCCESS, and the
// journal holds the payment once, not reversed. Before the orders were shared,
// node 2 answered ORDER_NOT_FOUND and node 3 declined the inquiry (25).
func (c *testCluster) testQROrder(t *testing.T) {
	c = c.rebind(t)
	t1 := singleNodeTerm(c, 1, 15*time.Second)
	defer t1.close()
	tx := orderTx(message.PCQROrder, 2600, "")
	tx.STAN, tx.Time = termclient.NextSTAN(), time.Now()
	a, _, _, err := t1.send(tx, 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	o := orderTLV(t, a)
	if a.RC != "00" || o.QRState != "open" || o.QROrder == "" {
		t.Fatalf("order on node 1: %+v (%+v)", a, o)
	}

	// The terminal waits on node 3 for the payment.
	t3 := singleNodeTerm(c, 3, 30*time.Second)
	defer t3.close()
	answered := make(chan termclient.Result, 1)
	inq := orderTx(message.PCQRInquiry, 0, o.QROrder)
	inq.STAN, inq.Time = termclient.NextSTAN(), time.Now()
	asked := time.Now()
	go func() {
		r, _, _, err := t3.send(inq, 30*time.Second)
		if err != nil {
			t.Errorf("inquiry on node 3: %v", err)
		}
		answered <- r
	}()
	select {
	case r := <-answered:
		t.Fatalf("node 3 answered before the payment: %+v (%+v)", r, orderTLV(t, r))
	case <-time.After(500 * time.Millisecond): // the inquiry is held (a bound, not a synchronization)
	}

	// The network notifies node 2 and, at the same time, node 1 (a repeat).
	note := wallet.Notification{Network: qr.WeChat, OrderID: o.QROrder, TransactionID: "4200000000" + o.QROrder, TotalFee: 2600}
	type told struct {
		code int
		res  wallet.Result
		err  error
	}
	var got [2]told
	var wg sync.WaitGroup
	start := make(chan struct{})
	for k, n := range []int{2, 1} {
		wg.Go(func() {
			<-start
			got[k].code, got[k].res, got[k].err = c.notifyOrder(n, note)
		})
	}
	close(start)
	wg.Wait()
	for k, n := range []int{2, 1} {
		if g := got[k]; g.err != nil || g.code != http.StatusOK || g.res.Result != wallet.Success {
			t.Fatalf("notification to node %d: %d %+v %v", n, g.code, g.res, g.err)
		}
	}

	select {
	case r := <-answered:
		if st := orderTLV(t, r).QRState; r.RC != "00" || st != "paid" || r.Amount != "000000002600" || len(r.AuthCode) != 6 {
			t.Fatalf("node 3's held inquiry: %+v (%s)", r, st)
		}
		if waited := time.Since(asked); waited > 15*time.Second {
			t.Fatalf("node 3 answered after %s: at its wait's end, not when it applied the payment", waited)
		}
	case <-time.After(25 * time.Second):
		t.Fatal("node 3's held inquiry was not answered")
	}

	// The journal holds the payment once, approved and not reversed, on every node.
	for n := 1; n <= 3; n++ {
		c.waitJournaled(n, "T0000001", o.QROrder, 10*time.Second)
		recs, err := c.node(n).journal("T0000001")
		if err != nil {
			t.Fatal(err)
		}
		var found []*journal.Record
		for _, r := range recs {
			if r.RRN == o.QROrder {
				found = append(found, r)
			}
		}
		if len(found) != 1 {
			t.Fatalf("node %d's journal holds %d records of the order", n, len(found))
		}
		r := found[0]
		received := 0
		for _, e := range r.Events {
			if e.State == journal.StateReceived {
				received++
			}
		}
		if !r.Approved() || r.Type != "purchase" || r.QR != qr.WeChat || r.Amount != 2600 || r.Reversed() || received != 1 {
			t.Fatalf("node %d's record of the payment (%d received events): %+v", n, received, r)
		}
	}
}
