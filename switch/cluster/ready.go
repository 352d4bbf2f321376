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
	if n.srv != nil && !n.srv.JetStreamEnabled() {
		return fmt.Errorf("cluster: JetStream is off on %s (nats-server turns it off when its store runs out of disk space, %s): it is restarted once it can be", n.name(), n.cfg.Embedded.StoreDir)
	}
	if err := n.storeWriteError(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := n.jetStreamReady(ctx); err != nil {
		return fmt.Errorf("cluster: JetStream not ready on %s: %w", n.name(), err)
	}
	return nil
}

// ReviveJetStream restarts JetStream on the embedded server when the server turned it
// off by itself: nats-server shuts JetStream down on a server whose store met "no
// space left on device", and only a reload brings it back. It reports whether it
// tried; the error says why JetStream did not start again (space still short, say),
// and the next call tries again. Nothing to do in external mode or while JetStream
// runs.
func (n *Node) ReviveJetStream() (tried bool, err error) {
	if n.srv == nil || n.srv.JetStreamEnabled() {
		return false, nil
	}
	// A reload with the options the server runs with: nats-server sees JetStream
	// configured but not running, and restarts it (server/reload.go), opening its
	// groups again: a write error met before it was turned off (its groups were
	// idle since) is no longer theirs, and one met from here on is kept.
	n.natsLog.writeErr.Store(nil)
	if err := n.srv.ReloadOptions(n.srvOpts.Clone()); err != nil {
		return true, fmt.Errorf("cluster: restart JetStream on %s: %w", n.name(), err)
	}
	if !n.srv.JetStreamEnabled() {
		return true, fmt.Errorf("cluster: JetStream on %s did not start again (store %s: is there space now?)", n.name(), n.cfg.Embedded.StoreDir)
	}
	return true, nil
}

// storeWriteError returns why this server's JetStream store is known to have failed
// a write while JetStream stayed on, or nil. A write error other than a full disk (a
// read-only remount, an I/O error) stops, on this server, each stream, consumer or
// Raft group that met it, for good, and nats-server does not turn JetStream off for
// it: the node goes on serving through the other servers' copies, but keeps none of
// its own, and the cluster has one copy fewer than it seems to until the node is
// restarted. Until 6 December 2026 nothing but nats-server's log lines said so:
// /readyz stayed 200 (TestClusterStoreReadOnly).
func (n *Node) storeWriteError() error {
	if n.natsLog == nil {
		return nil
	}
	msg := n.natsLog.writeErr.Load()
	if msg == nil {
		return nil
	}
	return fmt.Errorf("cluster: JetStream's store on %s failed a write and this server's copies that met it stopped (%s): the node serves through the other servers, but holds none of their copies until restarted: check the disk of %s (read-only? its kernel log), then restart the node",
		n.name(), *msg, n.cfg.Embedded.StoreDir)
}
