package cluster

import (
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
)

// broadcastPrefix is the subject space of Broadcast: <prefix><topic>.<node>.
const broadcastPrefix = "switchyard.broadcast."

// Broadcast is a best-effort channel between the nodes on one topic, over core NATS
// (not stored): what a node sends reaches the nodes connected at the time, once.
// It suits data that each node sends again as it changes, such as last-seen times;
// nothing that must not be lost goes through it.
type Broadcast struct {
	nc  *nats.Conn
	sub *nats.Subscription
	own string
}

// Broadcast subscribes to topic (no '.', '*', '>' or spaces) and calls receive with
// each message another node sends on it, on the subscription's goroutine (one at a
// time, in order per sender). Close stops it.
func (n *Node) Broadcast(topic string, receive func(data []byte)) (*Broadcast, error) {
	if topic == "" || strings.ContainsAny(topic, ".*> \t\n") {
		return nil, fmt.Errorf("cluster: broadcast topic %q is empty or has '.', '*', '>' or a space", topic)
	}
	b := &Broadcast{nc: n.nc, own: fmt.Sprintf("%s%s.%d", broadcastPrefix, topic, n.cfg.Node)}
	sub, err := n.nc.Subscribe(broadcastPrefix+topic+".*", func(m *nats.Msg) {
		if m.Subject != b.own {
			receive(m.Data)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: broadcast %s: %w", topic, err)
	}
	b.sub = sub
	return b, nil
}

// Send sends data to the other nodes (at most the connection's maximum payload,
// 1 MB by default). An error means it was not handed to the connection.
func (b *Broadcast) Send(data []byte) error {
	return b.nc.Publish(b.own, data)
}

// MaxPayload is the largest message Send takes.
func (b *Broadcast) MaxPayload() int64 { return b.nc.MaxPayload() }

// Close stops receiving. It does not wait for a message being delivered: the
// receive function may still run once, shortly after (until the node's connection
// closes, which waits for it).
func (b *Broadcast) Close() error {
	return b.sub.Drain()
}
