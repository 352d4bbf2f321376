// Package cluster runs or connects to the NATS JetStream cluster that a
// clustered Switchyard shares (issue 14): either this node embeds a nats-server
// with JetStream that routes to its peers (three copies of the binary make an R3
// cluster, nothing else to install; with cluster.embedded.tls the routes and the
// client port are mutual TLS), or it connects to an existing NATS cluster by URL
// with TLS and credentials.
//
// This package holds the configuration, the lifecycle of the embedded server and
// of the client connection (Start, WaitJetStream, Close, in the NATS server's own
// style), a Status for `switchyard cluster status`, readiness, metrics, the
// nodes' leases and the recovery of a dead node's open transactions (Lease), the
// replicated log of the registry and the other stores (statelog.go), and
// ErrNoQuorum, which tells a publish that failed for want of a JetStream quorum
// from any other failure (a node without quorum must never approve without
// durability). The journal is in cjournal, the store-and-forward queue in jsaf;
// docs/cluster.md says what lives where and why.
//
// NATS types stay in this package and the ones built on it: the pipeline sees
// only its own small interfaces.
package cluster
