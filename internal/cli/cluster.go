package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/cli/kit"
	"github.com/switchyard/switchyard/switch/cluster"
)

func init() {
	registerTool("cluster", "cluster status: nodes, JetStream leader, streams and buckets, lag, backlog, leases", "Usage:\n"+clusterUsage,
		[]string{"status"}, runCluster)
}

const clusterUsage = `switchyard cluster status [--json]
  asks a running node (--admin URL --token T, default $SWITCHYARD_ADMIN and $SWITCHYARD_TOKEN;
  any reading role) what it sees of the cluster: the NATS servers, JetStream's meta leader,
  each stream and KV bucket (replicas, leader, followers' lag), each consumer's backlog,
  and who holds which node lease`

func runCluster(env *Env, args []string) int {
	conn, rest, err := kit.ExtractConn(args, env.Getenv)
	if err != nil {
		return fail(env, "cluster: %v", err)
	}
	if len(rest) == 0 || rest[0] != "status" {
		fmt.Fprintln(env.Stderr, "Usage:\n"+clusterUsage)
		return kit.ExitUsage
	}
	if conn.DataDir != "" {
		return fail(env, "cluster status: --data is not supported: the status is a running node's view; give --admin URL")
	}
	fs := newFlags(env, "cluster status", "")
	fs.Usage = func() { fmt.Fprintln(env.Stderr, "Usage:\n"+clusterUsage+"\n\nFlags:"); fs.PrintDefaults() }
	asJSON := fs.Bool("json", false, "print the node's report as JSON")
	if ok, code := parse(fs, rest[1:]); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return fail(env, "cluster status: unexpected argument %q", fs.Arg(0))
	}
	var rep cluster.Report
	if err := conn.Client().Do(env.Ctx, "GET", "/api/v1/cluster/status", nil, &rep); err != nil {
		return fail(env, "cluster status: %v", err)
	}
	if *asJSON {
		return printJSON(env, &rep)
	}
	printClusterReport(env, &rep)
	return 0
}

func printClusterReport(env *Env, rep *cluster.Report) {
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
			rows = append(rows, []string{p.Name, yesNo(p.Current), yesNo(p.Offline), since(p.Active), u64(p.Lag)})
		}
		kit.Table(w, "SERVER\tCURRENT\tOFFLINE\tSEEN\tLAG", rows)
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
		for _, s := range st.Streams {
			for _, c := range s.Consumers {
				rows = append(rows, []string{s.Name, c.Name, orDash(c.Leader), u64(c.Pending), strconv.Itoa(c.AckPending)})
			}
		}
		if len(rows) > 0 {
			fmt.Fprintln(w)
			kit.Table(w, "STREAM\tCONSUMER\tLEADER\tPENDING\tUNACKED", rows)
		}
	}
	fmt.Fprintln(w)
	if len(rep.Leases) == 0 {
		fmt.Fprintln(w, "No leases seen (this node holds none yet).")
		return
	}
	var rows [][]string
	for _, l := range rep.Leases {
		state := "held"
		if !l.Alive {
			state = "LAPSED"
		}
		rec := "-"
		if l.RecoveredBy != 0 {
			rec = "node " + strconv.Itoa(l.RecoveredBy)
		}
		rows = append(rows, []string{strconv.Itoa(l.Node), orDash(l.Server), strconv.FormatUint(l.Incarnation, 10), state,
			l.Started.Format(time.RFC3339), l.Refreshed.Format(time.RFC3339Nano), rec})
	}
	kit.Table(w, "LEASE\tSERVER\tINCARNATION\tSTATE\tSTARTED\tREFRESHED\tRECOVERED BY", rows)
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
