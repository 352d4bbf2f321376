package cli

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/cli/kit"
	"github.com/switchyard/switchyard/switch/cluster"
)

func init() {
	registerTool("cluster", "cluster status (nodes, JetStream leader, streams and buckets, lag, backlog, leases, shared stores), compaction, import of a single switch's journal, removal of a departed server", "Usage:\n"+clusterUsage,
		[]string{"status", "compact", "import", "remove-peer"}, runCluster)
}

const clusterUsage = `switchyard cluster status [--json]
  asks a running node (--admin URL --token T, default $SWITCHYARD_ADMIN and $SWITCHYARD_TOKEN;
  any reading role) what it sees of the cluster: the NATS servers, JetStream's meta leader,
  each stream and KV bucket (replicas, leader, followers' lag), each consumer's backlog,
  who holds which node lease, and each shared store's commits held and latest snapshot
switchyard cluster compact [--json]
  asks a running node (an admin's token) to compact the shared stores (registry, keys, lists,
  ratings, notices, cases) into snapshots now, as it does by itself when a store holds more
  than cluster.state_compact_above commits; the commits below each store's previous
  snapshot are purged from the STATE stream
switchyard cluster import --from DIR
  imports a stopped single switch's journal (data directory DIR, read here) into the cluster
  through a running node (an admin's token): its terminals' last batch closes and its records,
  as node 0's, so that queries, settlement and duplicate checks on every node see its history.
  It refuses a directory whose switch still runs or still owes store-and-forward advices, and
  records that are not final; interrupted, it is run again and goes on after the last record
  imported (docs/cluster.md, "From a single switch to a cluster")
switchyard cluster remove-peer --server NAME
  asks a running node (an admin's token; one whose client_addr is not none) to remove the
  embedded NATS server NAME, which left the cluster for good (a machine retired, a server
  started by mistake), from JetStream's meta group: until then it counts towards the group's
  quorum. A server still connected is refused: stop it first`

func runCluster(env *Env, args []string) int {
	conn, rest, err := kit.ExtractConn(args, env.Getenv)
	if err != nil {
		return fail(env, "cluster: %v", err)
	}
	if len(rest) == 0 || (rest[0] != "status" && rest[0] != "compact" && rest[0] != "import" && rest[0] != "remove-peer") {
		if len(rest) > 0 {
			fmt.Fprintf(env.Stderr, "switchyard: cluster: unknown subcommand %q (want status, compact, import or remove-peer)\n", rest[0])
		}
		fmt.Fprintln(env.Stderr, "Usage:\n"+clusterUsage)
		return kit.ExitUsage
	}
	sub := rest[0]
	if conn.DataDir != "" {
		return fail(env, "cluster %s: --data is not supported: it asks a running node; give --admin URL", sub)
	}
	fs := newFlags(env, "cluster "+sub, "")
	fs.Usage = func() { fmt.Fprintln(env.Stderr, "Usage:\n"+clusterUsage+"\n\nFlags:"); fs.PrintDefaults() }
	asJSON := fs.Bool("json", false, "print the node's answer as JSON")
	from := fs.String("from", "", "import: the stopped single switch's data directory")
	peer := fs.String("server", "", "remove-peer: the embedded NATS server's name (its cluster.embedded.server_name)")
	if ok, code := parse(fs, rest[1:]); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return fail(env, "cluster %s: unexpected argument %q", sub, fs.Arg(0))
	}
	switch {
	case sub == "import":
		if *peer != "" {
			return fail(env, "cluster import: --server is a flag of cluster remove-peer")
		}
		return runClusterImport(env, conn, *from, *asJSON)
	case *from != "":
		return fail(env, "cluster %s: --from is a flag of cluster import", sub)
	case sub == "remove-peer":
		return runClusterRemovePeer(env, conn, *peer, *asJSON)
	case *peer != "":
		return fail(env, "cluster %s: --server is a flag of cluster remove-peer", sub)
	case sub == "compact":
		return runClusterCompact(env, conn, *asJSON)
	}
	var rep cluster.Report
	if err := conn.Client().Do(env.Ctx, "GET", "/api/v1/cluster/status", nil, &rep); err != nil {
		return fail(env, "cluster status: %v", err)
	}
	if *asJSON {
		return printJSON(env, &rep)
	}
	loc, err := acquirerZone(env)
	if err != nil {
		return fail(env, "cluster status: %v", err)
	}
	printClusterReport(env, &rep, loc)
	if rep.NotReady != "" || rep.StatusError != "" {
		return 1 // a problem found, as the README's exit statuses say
	}
	return 0
}

// printClusterReport shows the report for people, its times in loc (the acquirer's zone).
func printClusterReport(env *Env, rep *cluster.Report, loc *time.Location) {
	w := env.Stdout
	ready := "ready"
	if rep.NotReady != "" {
		ready = "NOT READY: " + rep.NotReady
	}
	st := rep.Status
	if st == nil {
		fmt.Fprintf(w, "Node %d: %s\nJetStream status unavailable: %s\n", rep.Node, ready, rep.StatusError)
	} else {
		fmt.Fprintf(w, "Node %d (server %s, cluster %s, %s): %s\n", rep.Node, st.Server, orDash(st.Cluster), st.Mode, ready)
		fmt.Fprintf(w, "JetStream meta leader: %s\n\n", orDash(st.MetaLeader))
		var rows [][]string
		for _, p := range st.Servers {
			if !st.PeersKnown && p.Name != st.Server {
				rows = append(rows, []string{p.Name, "?", "?", "?", "?"})
				continue
			}
			rows = append(rows, []string{p.Name, yesNo(p.Current), yesNo(p.Offline), since(p.Active), u64(p.Lag)})
		}
		kit.Table(w, "SERVER\tCURRENT\tOFFLINE\tSEEN\tLAG", rows)
		if !st.PeersKnown && st.MetaLeader != "" {
			fmt.Fprintf(w, "(the other servers' state is known to the meta leader only: ask the node of %s)\n", st.MetaLeader)
		}
		for _, group := range []struct {
			title string
			list  []cluster.Stream
		}{{"STREAM", st.Streams}, {"BUCKET", st.Buckets}} {
			if len(group.list) == 0 {
				continue
			}
			fmt.Fprintln(w)
			rows = rows[:0]
			for _, s := range group.list {
				var lag uint64
				var peers []string
				for _, p := range s.Peers {
					lag = max(lag, p.Lag)
					mark := ""
					if !p.Current || p.Offline {
						mark = "(behind)"
						if p.Offline {
							mark = "(offline)"
						}
					}
					peers = append(peers, p.Name+mark)
				}
				leader := s.Leader
				if leader == "" {
					leader = "NONE (no quorum)"
				}
				name := s.Name
				if s.Format != "" {
					name += " (format " + s.Format + ")"
				}
				rows = append(rows, []string{name, strconv.Itoa(s.Replicas), leader, orDash(strings.Join(peers, ",")), u64(lag), u64(s.Messages), u64(s.Bytes)})
			}
			kit.Table(w, group.title+"\tREPLICAS\tLEADER\tFOLLOWERS\tLAG\tMESSAGES\tBYTES", rows)
		}
		rows = rows[:0]
		var notListed []string
		for _, s := range st.Streams {
			for _, c := range s.Consumers {
				rows = append(rows, []string{s.Name, c.Name, orDash(c.Leader), u64(c.Pending), strconv.Itoa(c.AckPending)})
			}
			for _, c := range s.ConsumersMissing {
				rows = append(rows, []string{s.Name, c, "NO ANSWER", "-", "-"})
			}
			if s.ConsumersError != "" {
				notListed = append(notListed, s.ConsumersError)
			}
		}
		if len(rows) > 0 {
			fmt.Fprintln(w)
			kit.Table(w, "STREAM\tCONSUMER\tLEADER\tPENDING\tUNACKED", rows)
		}
		for _, e := range notListed {
			fmt.Fprintf(w, "Not listed: %s\n", e)
		}
	}
	if len(rep.State) > 0 {
		fmt.Fprintln(w)
		var rows [][]string
		for _, s := range rep.State {
			snap, taken, keys := "-", "-", "-"
			if s.Snapshot != nil {
				snap, taken = u64(s.Snapshot.Revision), kit.LocalTime(s.Snapshot.Taken, loc)
				keys = strconv.Itoa(s.Snapshot.Keys)
			}
			follower := "following"
			if !s.Following {
				follower = "NO CONSUMER"
				if s.NoConsumerSince != nil {
					follower += " for " + s.NoConsumerFor.Round(time.Second).String()
				}
				if s.FollowerError != "" {
					follower += ": " + s.FollowerError
				}
			}
			rows = append(rows, []string{s.Store, u64(s.Revision), u64(s.Commits), snap, keys, taken, follower, orDash(s.Error)})
		}
		kit.Table(w, "STORE\tREVISION\tCOMMITS HELD\tSNAPSHOT AT\tKEYS\tTAKEN\tFOLLOWER\tERROR", rows)
	}
	switch {
	case rep.ImportError != "":
		fmt.Fprintf(w, "\nSingle switch's journal imported: unknown (%s)\n", rep.ImportError)
	case rep.ImportMessages > 0:
		fmt.Fprintf(w, "\nSingle switch's journal imported up to RRN %s (%d messages in the stream)\n", orDash(rep.ImportedUpTo), rep.ImportMessages)
	}
	fmt.Fprintln(w)
	if len(rep.Leases) == 0 {
		fmt.Fprintln(w, "No leases seen (this node holds none yet).")
		return
	}
	if rep.LeasesStale != "" {
		fmt.Fprintf(w, "Leases as last seen (this node cannot judge them now: %s)\n", rep.LeasesStale)
	}
	var rows [][]string
	for _, l := range rep.Leases {
		state := "held"
		switch {
		case l.Stopped: // its process stopped gracefully: no crash to look into
			state = "stopped"
		case !l.Alive:
			state = "LAPSED"
		}
		rec := "-"
		if l.RecoveredBy != 0 {
			rec = "node " + strconv.Itoa(l.RecoveredBy)
		}
		rows = append(rows, []string{strconv.Itoa(l.Node), orDash(l.Server), strconv.FormatUint(l.Incarnation, 10), state,
			kit.LocalTime(l.Started, loc), kit.LocalTime(l.Refreshed, loc), rec, yesNo(l.Compacts), yesNo(l.QRRequests), leaseTTL(l.TTLSeconds)})
	}
	kit.Table(w, "LEASE\tSERVER\tINCARNATION\tSTATE\tSTARTED\tREFRESHED\tRECOVERED BY\tSNAPSHOTS\tQR REQUESTS\tTTL", rows)
}

// leaseTTL is a lease's TTL as the other nodes judge it (cluster.lease_ttl): a lease
// of a version before 6 December 2026 carries none, and its TTL is the default.
func leaseTTL(seconds int) string {
	if seconds <= 0 {
		return cluster.DefaultLeaseTTL.String() + " (earlier version)"
	}
	return (time.Duration(seconds) * time.Second).String()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func u64(v uint64) string { return strconv.FormatUint(v, 10) }

// since prints how long ago a peer was last seen (0: this server, or unknown).
func since(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return d.Round(time.Millisecond).String() + " ago"
}

func runClusterRemovePeer(env *Env, conn kit.Conn, name string, asJSON bool) int {
	if name == "" {
		return fail(env, "cluster remove-peer: --server NAME is required (the server's cluster.embedded.server_name)")
	}
	var res map[string]string
	if err := conn.Client().Do(env.Ctx, "POST", "/api/v1/cluster/peers/"+url.PathEscape(name)+"/remove", nil, &res); err != nil {
		return fail(env, "cluster remove-peer: %v", err)
	}
	if asJSON {
		return printJSON(env, res)
	}
	fmt.Fprintf(env.Stdout, "Server %s removed from JetStream's meta group.\n", name)
	return 0
}

func runClusterCompact(env *Env, conn kit.Conn, asJSON bool) int {
	var reps []cluster.CompactReport
	if err := conn.Client().Do(env.Ctx, "POST", "/api/v1/cluster/compact", nil, &reps); err != nil {
		return fail(env, "cluster compact: %v", err)
	}
	failed := false
	for _, r := range reps {
		failed = failed || r.Error != ""
	}
	if asJSON {
		if code := printJSON(env, reps); code != 0 || !failed {
			return code
		}
		return 1
	}
	var rows [][]string
	for _, r := range reps {
		what := "nothing new"
		if r.Compacted {
			what = "compacted"
		}
		snap, keys, purged := "-", "-", "-"
		if r.Snapshot != nil {
			snap, keys = u64(r.Snapshot.Revision), strconv.Itoa(r.Snapshot.Keys)
		}
		if r.Compacted {
			purged = u64(r.Purged)
		} else if r.Note != "" {
			what = r.Note
		}
		if r.Error != "" {
			what = "FAILED: " + r.Error
		}
		rows = append(rows, []string{r.Store, u64(r.Held), snap, keys, purged, what})
	}
	kit.Table(env.Stdout, "STORE\tCOMMITS HELD\tSNAPSHOT AT\tKEYS\tPURGED\tRESULT", rows)
	if failed {
		return 1
	}
	return 0
}
