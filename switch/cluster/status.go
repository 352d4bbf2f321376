package cluster

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Status is what `switchyard cluster status` prints: the servers this node
// knows, JetStream's meta leader, and each stream and KV bucket with its
// replicas, leader and consumers' backlog.
type Status struct {
	// Mode is embedded or external.
	Mode string `json:"mode"`
	// Server is this node's server name (embedded) or the server its
	// connection is on (external).
	Server string `json:"server"`
	// Cluster is the NATS cluster's name.
	Cluster string `json:"cluster"`
	// MetaLeader is JetStream's meta leader; empty when there is none, or in
	// external mode, where only the system account may ask.
	MetaLeader string `json:"meta_leader"`
	// Servers are the cluster's servers as this node sees them: the meta
	// group's peers in embedded mode, the connection's known URLs in external mode.
	Servers []Peer `json:"servers"`
	// Streams are the streams but the KV buckets' ones, by name.
	Streams []Stream `json:"streams"`
	// Buckets are the KV buckets (streams KV_<bucket>), by bucket name.
	Buckets []Stream `json:"buckets"`
}

// Peer is one server of a Raft group (the meta group or a stream's).
type Peer struct {
	Name    string        `json:"name"`
	Current bool          `json:"current"`   // caught up with its leader
	Offline bool          `json:"offline"`   // not seen recently
	Active  time.Duration `json:"active_ns"` // since it was last seen
	Lag     uint64        `json:"lag"`       // operations behind its leader
}

// FormatKey is the stream metadata key in which the package that writes a stream
// names the format of its content (the journal: cjournal.Format), so that a node of
// an older version refuses the stream and an operator sees it in the status.
const FormatKey = "switchyard.format"

// Stream is one stream or KV bucket.
type Stream struct {
	Name      string     `json:"name"`
	Replicas  int        `json:"replicas"` // configured
	Leader    string     `json:"leader"`   // empty while it has none (no quorum)
	Peers     []Peer     `json:"peers"`    // the followers
	Messages  uint64     `json:"messages"`
	Bytes     uint64     `json:"bytes"`
	Format    string     `json:"format,omitempty"` // its metadata's FormatKey, if set
	Consumers []Consumer `json:"consumers,omitempty"`
}

// Consumer is one durable consumer and its backlog.
type Consumer struct {
	Name       string `json:"name"`
	Leader     string `json:"leader"`
	Pending    uint64 `json:"pending"`     // messages not yet delivered
	AckPending int    `json:"ack_pending"` // delivered, not yet acknowledged
}

// Status asks JetStream for the cluster's state: one request for the stream
// list and one per stream for its consumers. It fails when JetStream does not
// answer within ctx (no quorum).
func (n *Node) Status(ctx context.Context) (*Status, error) {
	st := &Status{Mode: n.cfg.Mode, Server: n.ServerName(), Cluster: n.nc.ConnectedClusterName()}
	if n.srv != nil {
		jsz, err := n.srv.Jsz(&server.JSzOptions{})
		if err == nil && jsz.Meta != nil {
			st.Cluster = jsz.Meta.Name
			st.MetaLeader = jsz.Meta.Leader
			st.Servers = append(st.Servers, Peer{Name: n.srv.Name(), Current: n.srv.JetStreamIsCurrent()})
			for _, p := range jsz.Meta.Replicas {
				st.Servers = append(st.Servers, peer(p.Name, p.Current, p.Offline, p.Active, p.Lag))
			}
		} else {
			st.Servers = append(st.Servers, Peer{Name: n.srv.Name(), Current: true})
		}
	} else {
		for _, u := range n.nc.Servers() {
			st.Servers = append(st.Servers, Peer{Name: u, Current: u == n.nc.ConnectedUrlRedacted()})
		}
	}
	sort.Slice(st.Servers, func(i, j int) bool { return st.Servers[i].Name < st.Servers[j].Name })

	list := n.js.ListStreams(ctx)
	for si := range list.Info() {
		s := Stream{Name: si.Config.Name, Replicas: si.Config.Replicas, Messages: si.State.Msgs, Bytes: si.State.Bytes,
			Format: si.Config.Metadata[FormatKey]}
		if si.Cluster != nil {
			s.Leader = si.Cluster.Leader
			for _, p := range si.Cluster.Replicas {
				s.Peers = append(s.Peers, peer(p.Name, p.Current, p.Offline, p.Active, p.Lag))
			}
		}
		if b, ok := strings.CutPrefix(s.Name, "KV_"); ok {
			s.Name = b
			st.Buckets = append(st.Buckets, s)
		} else {
			st.Streams = append(st.Streams, s)
		}
	}
	if err := list.Err(); err != nil {
		return nil, fmt.Errorf("cluster: list streams on %s: %w", n.name(), err)
	}
	for i := range st.Streams {
		s := &st.Streams[i]
		if s.Leader == "" {
			continue // without a leader, its consumers cannot answer either
		}
		str, err := n.js.Stream(ctx, s.Name)
		if err != nil {
			return nil, fmt.Errorf("cluster: stream %s on %s: %w", s.Name, n.name(), err)
		}
		cl := str.ListConsumers(ctx)
		for ci := range cl.Info() {
			c := Consumer{Name: ci.Name, Pending: ci.NumPending, AckPending: ci.NumAckPending}
			if ci.Cluster != nil {
				c.Leader = ci.Cluster.Leader
			}
			s.Consumers = append(s.Consumers, c)
		}
		if err := cl.Err(); err != nil {
			return nil, fmt.Errorf("cluster: consumers of %s on %s: %w", s.Name, n.name(), err)
		}
	}
	return st, nil
}

func peer(name string, current, offline bool, active time.Duration, lag uint64) Peer {
	return Peer{Name: name, Current: current, Offline: offline, Active: active, Lag: lag}
}
