// Package cluster runs or connects to the NATS JetStream cluster that a
// clustered Switchyard shares (issue 14): either this node embeds a nats-server
// with JetStream that routes to its peers (three copies of the binary make an R3
// cluster, nothing else to install), or it connects to an existing NATS cluster
// by URL with TLS and credentials.
//
// This package is the foundation only: configuration, the lifecycle of the
// embedded server and of the client connection (Start, WaitJetStream, Close, in
// the NATS server's own style), a Status for `switchyard cluster status`, and
// ErrNoQuorum, which tells a publish that failed for want of a JetStream quorum
// from any other failure (a node without quorum must never approve without
// durability). The journal, duplicate filter, counters, store-and-forward and
// leases that later sit on top of it are not here yet; docs/cluster.md keeps
// their places.
//
// NATS types stay in this package and the ones built on it: the pipeline sees
// only its own small interfaces.
package cluster
