package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// ErrPeerConnected: RemovePeer refuses a server that is routed to this one (it
// runs: stop it first).
var ErrPeerConnected = errors.New("the server is connected to this one: it runs")

// ErrNoMetaLeader: RemovePeer's request was not answered (no meta leader, no
// quorum).
var ErrNoMetaLeader = errors.New("no answer from JetStream's meta leader (no quorum?)")

// RemovePeer removes the server named name, which has left the cluster for good
// (a machine retired, a server started by mistake), from JetStream's meta group,
// so that it no longer counts towards the group's quorum: nats-server keeps
// every server that ever joined as an offline peer until it is removed. It asks
// the meta leader through this node's embedded server, as its system account
// (the only one JetStream takes the request from). It refuses this node's own
// server, a server routed to this one (running), a name the meta group does not
// hold, external mode (the NATS cluster's own tools remove its servers) and a
// node whose client_addr is none (ask another node).
func (n *Node) RemovePeer(ctx context.Context, name string) error {
	switch {
	case n.srv == nil:
		return fmt.Errorf("cluster: remove server %q: in external mode the NATS cluster's own tools remove its servers", name)
	case n.sysPass == "":
		return fmt.Errorf("cluster: remove server %q: node %d's client_addr is none, and with it its system account: ask another node", name, n.cfg.Node)
	case name == n.srv.Name():
		return fmt.Errorf("cluster: remove server %q: it is this node's own server", name)
	}
	rz, err := n.srv.Routez(&server.RoutezOptions{})
	if err != nil {
		return fmt.Errorf("cluster: remove server %q: list this server's routes: %w", name, err)
	}
	for _, r := range rz.Routes {
		if r.RemoteName == name {
			return fmt.Errorf("cluster: remove server %q: %w; stop it first", name, ErrPeerConnected)
		}
	}
	if jsz, err := n.srv.Jsz(&server.JSzOptions{}); err == nil && jsz.Meta != nil &&
		!slices.ContainsFunc(jsz.Meta.Replicas, func(p *server.PeerInfo) bool { return p.Name == name }) {
		return fmt.Errorf("cluster: remove server %q: JetStream's meta group has no such server (it has %s)", name, metaNames(n.srv.Name(), jsz.Meta))
	}
	nc, err := nats.Connect(n.srv.ClientURL(), nats.InProcessServer(n.srv), nats.UserInfo(sysUser, n.sysPass), nats.Name("switchyard-peer-remove"))
	if err != nil {
		return fmt.Errorf("cluster: remove server %q: connect as the system account: %w", name, err)
	}
	defer nc.Close()
	req, _ := json.Marshal(server.JSApiMetaServerRemoveRequest{Server: name})
	msg, err := nc.RequestWithContext(ctx, server.JSApiRemoveServer, req)
	if err != nil {
		return fmt.Errorf("cluster: remove server %q: %w: %w", name, ErrNoMetaLeader, err)
	}
	var resp server.JSApiMetaServerRemoveResponse
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return fmt.Errorf("cluster: remove server %q: the meta leader's answer: %w", name, err)
	}
	if resp.Error != nil {
		return fmt.Errorf("cluster: remove server %q: %s (code %d)", name, resp.Error.Description, resp.Error.ErrCode)
	}
	if !resp.Success {
		return fmt.Errorf("cluster: remove server %q: the meta leader did not say it was removed", name)
	}
	n.log.Warn().Str("server", name).Msg("server removed from JetStream's meta group")
	return nil
}

// metaNames lists the meta group's servers, self (this one) first.
func metaNames(self string, m *server.MetaClusterInfo) string {
	names := self
	for _, p := range m.Replicas {
		names += ", " + p.Name
	}
	return names
}
