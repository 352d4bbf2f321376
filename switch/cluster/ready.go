package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// readyTimeout bounds Ready's JetStream probe: /readyz must answer quickly.
const readyTimeout = time.Second

// Ready returns nil when this node can make writes durable: connected to
// NATS, JetStream answering (a meta leader, so a quorum of the meta group)
// and, embedded, this server caught up with it. Otherwise it says why, for
// /readyz. It costs one JetStream request (at most readyTimeout).
func (n *Node) Ready() error {
	if n.nc == nil {
		return errors.New("cluster: not connected to NATS")
	}
	switch st := n.nc.Status(); st {
	case nats.CONNECTED:
	case nats.RECONNECTING:
		return fmt.Errorf("cluster: NATS connection lost, reconnecting (last error: %v)", n.nc.LastError())
	default:
		return fmt.Errorf("cluster: NATS connection %s", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := n.jetStreamReady(ctx); err != nil {
		return fmt.Errorf("cluster: JetStream not ready on %s: %w", n.name(), err)
	}
	return nil
}
