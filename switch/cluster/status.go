package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
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
	// PeersKnown says that the other servers' Current, Offline, Active and Lag
	// are known: only the meta leader tracks them (false on the other nodes,
	// and in external mode).
	PeersKnown bool `json:"peers_known"`
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
	// ConsumersMissing are the consumers whose servers did not answer the
	// listing (offline, or a server that died and is not known offline yet),
	// with the reason the server gave when it gave one.
	ConsumersMissing []string `json:"consumers_missing,omitempty"`
	// ConsumersError says why the consumers could not be listed (some may be).
	ConsumersError string `json:"consumers_error,omitempty"`
}

// Consumer is one durable consumer and its backlog.
type Consumer struct {
	Name       string `json:"name"`
	Leader     string `json:"leader"`
	Pending    uint64 `json:"pending"`     // messages not yet delivered
	AckPending int    `json:"ack_pending"` // delivered, not yet acknowledged
}

// Status asks JetStream for the cluster's state: one request for the stream
// list and one per stream for its consumers. It fails when the stream list does
// not come within ctx (no quorum); a stream's consumers that could not be listed,
// or did not answer (their server is gone), are named in the stream.
func (n *Node) Status(ctx context.Context) (*Status, error) {
	st := &Status{Mode: n.cfg.Mode, Server: n.ServerName(), Cluster: n.nc.ConnectedClusterName()}
	if n.srv != nil {
		jsz, err := n.srv.Jsz(&server.JSzOptions{})
		if err == nil && jsz.Meta != nil {
			st.Cluster = jsz.Meta.Name
			st.MetaLeader = jsz.Meta.Leader
			st.PeersKnown = jsz.Meta.Leader != "" && jsz.Meta.Leader == n.srv.Name()
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
	// The streams' consumers, each stream's listing at once: a listing waits up
	// to 4 s at the stream's leader for the consumers whose server is gone, and
	// one after another they took longer than the caller would wait.
	var wg sync.WaitGroup
	for i := range st.Streams {
		s := &st.Streams[i]
		if s.Leader == "" {
			continue // without a leader, its consumers cannot answer either
		}
		wg.Go(func() { n.listConsumers(ctx, s) })
	}
	wg.Wait()
	return st, nil
}

// consumerListWait bounds one consumer listing: the stream's leader answers
// within 4 s, with the consumers that did not answer named as missing.
const consumerListWait = 6 * time.Second

// listConsumers fills s's consumers from the JetStream API's consumer list (the
// API itself rather than nats.go's lister, which drops the servers' list of
// the consumers that did not answer).
func (n *Node) listConsumers(ctx context.Context, s *Stream) {
	seen := map[string]bool{}
	failed := func(why any) { s.ConsumersError = fmt.Sprintf("consumers of %s on %s: %v", s.Name, n.name(), why) }
	for offset := 0; ; {
		req, _ := json.Marshal(server.JSApiConsumersRequest{ApiPagedRequest: server.ApiPagedRequest{Offset: offset}})
		rctx, cancel := context.WithTimeout(ctx, consumerListWait)
		msg, err := n.nc.RequestWithContext(rctx, fmt.Sprintf(server.JSApiConsumerListT, s.Name), req)
		cancel()
		if err != nil {
			failed(err)
			return
		}
		var resp server.JSApiConsumerListResponse
		if err := json.Unmarshal(msg.Data, &resp); err != nil {
			failed(err)
			return
		}
		if resp.Error != nil {
			failed(resp.Error.Description)
			return
		}
		for _, ci := range resp.Consumers {
			if ci == nil {
				continue
			}
			name := ci.Name
			if name == "" && ci.Config != nil {
				// A consumer all of whose servers are offline, filled in by the
				// stream's leader from its configuration alone.
				name = cmp.Or(ci.Config.Name, ci.Config.Durable)
			}
			if _, off := resp.Offline[name]; off || name == "" || slices.Contains(resp.Missing, name) || seen[name] {
				continue // named below as missing
			}
			seen[name] = true
			c := Consumer{Name: ci.Name, Pending: ci.NumPending, AckPending: ci.NumAckPending}
			if ci.Cluster != nil {
				c.Leader = ci.Cluster.Leader
			}
			s.Consumers = append(s.Consumers, c)
		}
		for _, name := range resp.Missing {
			if seen[name] {
				continue
			}
			seen[name] = true
			if why := resp.Offline[name]; why != "" {
				name += " (" + why + ")"
			}
			s.ConsumersMissing = append(s.ConsumersMissing, name)
		}
		// A page covers Limit of the stream's consumers, those that did not
		// answer included (they are not in Consumers): counting only the
		// answers asked for overlapping pages, each waiting out the missing
		// ones again.
		page := resp.Limit
		if page <= 0 {
			page = len(resp.Consumers) + len(resp.Missing)
		}
		offset += page
		if page == 0 || offset >= resp.Total {
			slices.Sort(s.ConsumersMissing) // the server's order varies from one call to the next
			return
		}
	}
}

func peer(name string, current, offline bool, active time.Duration, lag uint64) Peer {
	return Peer{Name: name, Current: current, Offline: offline, Active: active, Lag: lag}
}
