package cli

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/api"
	"github.com/switchyard/switchyard/switch/cluster"
	"github.com/switchyard/switchyard/switch/registry"
)

// TestClusterStatus runs `switchyard cluster status` against the admin API
// (its real handler, a made-up report): the table names the meta leader, the
// streams (with the journal's format) and buckets with their leaders and lag, a
// stream without a leader,
// the consumers' backlog, the shared stores (a follower without a consumer named
// so, for how long and why) and the leases, their times in the acquirer's zone;
// --json gives the report back whole;
// a switch that runs alone makes it fail with "not a cluster node".
func TestClusterStatus(t *testing.T) {
	at := time.Date(2026, 12, 1, 23, 0, 0, 0, time.UTC)
	rep := &cluster.Report{Node: 1, Status: &cluster.Status{Mode: "embedded", Server: "n1", Cluster: "sy", MetaLeader: "n2", PeersKnown: true,
		Servers: []cluster.Peer{{Name: "n1", Current: true}, {Name: "n2", Current: true, Active: 200 * time.Millisecond}, {Name: "n3", Offline: true, Lag: 7}},
		Streams: []cluster.Stream{
			{Name: "JOURNAL", Replicas: 3, Leader: "n2", Peers: []cluster.Peer{{Name: "n1", Current: true}, {Name: "n3", Offline: true, Lag: 42}}, Messages: 1000, Bytes: 65536, Format: "2"},
			{Name: "SAF", Replicas: 3, Consumers: []cluster.Consumer{{Name: "visa", Leader: "n1", Pending: 5, AckPending: 2}},
				ConsumersMissing: []string{"sy_n3_1"}},
			{Name: "STATE", Replicas: 3, Leader: "n2", ConsumersError: "consumers of STATE on n1: nats: timeout"},
		},
		Buckets: []cluster.Stream{{Name: "leases", Replicas: 3, Leader: "n1"}}},
		Leases: []cluster.LeaseHolder{
			{Node: 1, Server: "n1", Incarnation: 4, Started: at, Refreshed: at, Alive: true, Compacts: true, QRRequests: true, TTLSeconds: 10},
			{Node: 2, Server: "n2", Incarnation: 5, Started: at, Refreshed: at, Stopped: true, RecoveredBy: 3},
			{Node: 3, Server: "n3", Incarnation: 2, Started: at, Refreshed: at, RecoveredBy: 1},
		},
		State: []cluster.StoreState{
			{Store: "registry", Revision: 120, Commits: 14, Snapshot: &cluster.SnapshotInfo{Revision: 110, Keys: 2050, Taken: at}, Following: true},
			{Store: "cases", Error: "no quorum", NoConsumerSince: &at, NoConsumerFor: 45 * time.Second, FollowerError: "maximum consumers limit reached"},
		},
		ImportedUpTo: "000000123456", ImportMessages: 12}
	auth, err := admin.NewAuthenticator(api.DemoTokens())
	if err != nil {
		t.Fatal(err)
	}
	node := httptest.NewServer(api.New(api.Options{Auth: auth, ClusterStatus: func(context.Context) (any, error) { return rep, nil }}))
	defer node.Close()
	vars := map[string]string{"SWITCHYARD_TOKEN": registry.DemoAnalystToken, "SWITCHYARD_TIMEZONE": "Asia/Shanghai"}

	code, out, errs := runCLI(t, vars, "cluster", "status", "--admin", node.URL)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{
		"Node 1 (server n1, cluster sy, embedded): ready",
		"JetStream meta leader: n2",
		"n3      no       yes",
		"JOURNAL (format 2)  3         n2                n1,n3(offline)  42   1000      65536",
		"SAF                 3         NONE (no quorum)",
		"leases  3         n1",
		"SAF     visa      n1         5        2",
		"SAF     sy_n3_1   NO ANSWER  -        -",
		"Not listed: consumers of STATE on n1: nats: timeout",
		"1      n1      4            held",
		"2      n2      5            stopped  2026-12-02 07:00:00.000 +08:00  2026-12-02 07:00:00.000 +08:00  node 3",
		"3      n3      2            LAPSED   2026-12-02 07:00:00.000 +08:00  2026-12-02 07:00:00.000 +08:00  node 1        no",
		"held     2026-12-02 07:00:00.000 +08:00  2026-12-02 07:00:00.000 +08:00  -             yes",
		"registry  120       14            110          2050  2026-12-02 07:00:00.000 +08:00  following",
		"cases     0         0             -            -     -                               NO CONSUMER for 45s: maximum consumers limit reached  no quorum",
		"RECOVERED BY  SNAPSHOTS  QR REQUESTS  TTL",
		"yes          10s",
		"no           5s (earlier version)",
		"node 1        no         no",
		"Single switch's journal imported up to RRN 000000123456 (12 messages in the stream)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// Asked of a node that is not the meta leader: the other servers' state is
	// not known there; and a node not ready exits 1.
	rep.Status.PeersKnown, rep.NotReady = false, "cluster node 1: stream JOURNAL: no leader"
	rep.LeasesStale = "cluster: node 1's lease not refreshed for 7s (TTL 5s)"
	code, out, _ = runCLI(t, vars, "cluster", "status", "--admin", node.URL)
	for _, want := range []string{
		"Node 1 (server n1, cluster sy, embedded): NOT READY: cluster node 1: stream JOURNAL: no leader",
		"n1      yes      no",
		"n3      ?        ?        ?     ?",
		"(the other servers' state is known to the meta leader only: ask the node of n2)",
		"Leases as last seen (this node cannot judge them now: cluster: node 1's lease not refreshed for 7s (TTL 5s))",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if code != 1 {
		t.Errorf("a node not ready: exit %d, want 1", code)
	}
	rep.Status.PeersKnown, rep.NotReady, rep.LeasesStale = true, "", ""

	code, out, errs = runCLI(t, vars, "cluster", "status", "--json", "--admin", node.URL)
	var back cluster.Report
	if code != 0 || json.Unmarshal([]byte(out), &back) != nil || back.Status.Streams[0].Peers[1].Lag != 42 || len(back.Leases) != 3 || !back.Leases[1].Stopped ||
		back.State[1].NoConsumerSince == nil || back.State[1].FollowerError == "" || back.State[0].NoConsumerSince != nil {
		t.Fatalf("--json: exit %d, %s %s", code, out, errs)
	}

	alone := httptest.NewServer(api.New(api.Options{Auth: auth}))
	defer alone.Close()
	if code, _, errs := runCLI(t, vars, "cluster", "status", "--admin", alone.URL); code == 0 || !strings.Contains(errs, "404 not a cluster node") {
		t.Fatalf("alone: exit %d, %q", code, errs)
	}
	if code, _, errs := runCLI(t, vars, "cluster", "stats", "--admin", alone.URL); code != 2 || !strings.Contains(errs, "switchyard cluster status") {
		t.Fatalf("unknown subcommand: exit %d, %q", code, errs)
	}
}

// TestClusterCompact runs `switchyard cluster compact` against the admin API (its
// real handler, a made-up answer): an admin's token, the table of what each store
// did, exit 1 when a store failed; a reading role is refused; a switch that runs
// alone says it is not a cluster node.
func TestClusterCompact(t *testing.T) {
	at := time.Date(2026, 12, 3, 23, 0, 0, 0, time.UTC)
	answer := []cluster.CompactReport{
		{Store: "registry", Held: 10400, CompactResult: cluster.CompactResult{Compacted: true, Purged: 9800,
			Snapshot: &cluster.SnapshotInfo{Store: "registry", Revision: 123456, Keys: 2050, Taken: at}}},
		{Store: "keys", Held: 3, CompactResult: cluster.CompactResult{Snapshot: &cluster.SnapshotInfo{Store: "keys", Revision: 99, Keys: 12}}},
		{Store: "cases", Error: "cluster: count the commits of cases: nats: timeout"},
	}
	auth, err := admin.NewAuthenticator(api.DemoTokens())
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	node := httptest.NewServer(api.New(api.Options{Auth: auth, ClusterCompact: func(context.Context) (any, error) { calls++; return answer, nil }}))
	defer node.Close()

	code, _, errs := runCLI(t, map[string]string{"SWITCHYARD_TOKEN": registry.DemoAnalystToken}, "cluster", "compact", "--admin", node.URL)
	if code == 0 || !strings.Contains(errs, "403") || calls != 0 {
		t.Fatalf("an analyst compacting: exit %d, %q, %d calls", code, errs, calls)
	}
	vars := map[string]string{"SWITCHYARD_TOKEN": registry.DemoAdminToken}
	code, out, errs := runCLI(t, vars, "cluster", "compact", "--admin", node.URL)
	if code != 1 || calls != 1 {
		t.Fatalf("exit %d (want 1: a store failed), %d calls: %s", code, calls, errs)
	}
	for _, want := range []string{
		"registry  10400         123456       2050  9800    compacted",
		"keys      3             99           12    -       nothing new",
		"cases     0             -            -     -       FAILED: cluster: count the commits of cases: nats: timeout",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runCLI(t, vars, "cluster", "compact", "--json", "--admin", node.URL)
	var back []cluster.CompactReport
	if code != 1 || json.Unmarshal([]byte(out), &back) != nil || len(back) != 3 || back[0].Snapshot.Revision != 123456 || back[0].Purged != 9800 {
		t.Fatalf("--json: exit %d, %s", code, out)
	}

	alone := httptest.NewServer(api.New(api.Options{Auth: auth}))
	defer alone.Close()
	if code, _, errs := runCLI(t, vars, "cluster", "compact", "--admin", alone.URL); code == 0 || !strings.Contains(errs, "404 not a cluster node") {
		t.Fatalf("alone: exit %d, %q", code, errs)
	}
}

// TestClusterRemovePeer runs `switchyard cluster remove-peer` against the admin API
// (its real handler, a made-up node): an admin's token removes the server named, as
// that admin; a running server's refusal (409) is an error; a reading role is
// refused; --server is required; a switch that runs alone says it is not a
// cluster node.
func TestClusterRemovePeer(t *testing.T) {
	auth, err := admin.NewAuthenticator(api.DemoTokens())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	node := httptest.NewServer(api.New(api.Options{Auth: auth, ClusterRemovePeer: func(_ context.Context, server, actor string) (any, error) {
		got = append(got, server+" by "+actor)
		if server == "n2" {
			return nil, api.WithStatus(409, errors.New(`cluster: remove server "n2": the server is connected to this one: it runs; stop it first`))
		}
		return map[string]string{"removed": server}, nil
	}}))
	defer node.Close()
	adminVars := map[string]string{"SWITCHYARD_TOKEN": registry.DemoAdminToken}

	code, out, errs := runCLI(t, adminVars, "cluster", "remove-peer", "--server", "n4", "--admin", node.URL)
	if code != 0 || !strings.Contains(out, "Server n4 removed from JetStream's meta group.") || len(got) != 1 || !strings.HasPrefix(got[0], "n4 by ") {
		t.Fatalf("remove n4: exit %d, %q %q, calls %v", code, out, errs, got)
	}
	code, _, errs = runCLI(t, adminVars, "cluster", "remove-peer", "--server", "n2", "--admin", node.URL)
	if code != 1 || !strings.Contains(errs, "409") || !strings.Contains(errs, "stop it first") {
		t.Fatalf("remove a running server: exit %d, %q", code, errs)
	}
	if code, _, errs := runCLI(t, map[string]string{"SWITCHYARD_TOKEN": registry.DemoAnalystToken}, "cluster", "remove-peer", "--server", "n4", "--admin", node.URL); code == 0 || !strings.Contains(errs, "403") || len(got) != 2 {
		t.Fatalf("an analyst removing a server: exit %d, %q, calls %v", code, errs, got)
	}
	if code, _, errs := runCLI(t, adminVars, "cluster", "remove-peer", "--admin", node.URL); code == 0 || !strings.Contains(errs, "--server NAME is required") {
		t.Fatalf("without --server: exit %d, %q", code, errs)
	}
	alone := httptest.NewServer(api.New(api.Options{Auth: auth}))
	defer alone.Close()
	if code, _, errs := runCLI(t, adminVars, "cluster", "remove-peer", "--server", "n4", "--admin", alone.URL); code == 0 || !strings.Contains(errs, "404 not a cluster node") {
		t.Fatalf("alone: exit %d, %q", code, errs)
	}
}
