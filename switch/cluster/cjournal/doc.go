// Package cjournal is the journal of a Switchyard cluster node: the node's own
// journal.Store (write-ahead log and Badger index, exactly as a single node has it)
// replicated through a JetStream stream, JOURNAL, that every node publishes its record
// versions, delivery marks and batch closes to and applies the other nodes' from.
//
// Every read stays local: Get, LookupDuplicate, Scan, LastReceived and LastBatch read
// the local store, which holds the whole cluster's records once the applier (a
// goroutine started by Open, joined by Close) has caught up. Writes go to both: a
// durable Write returns once the local log's sync and the stream's acknowledgement
// (a quorum of its replicas holds the version) are both done, started together so
// that the slower one alone sets the wait. Without a quorum a durable Write fails
// with an error wrapping journal.ErrUnavailable and cluster.ErrNoQuorum, and the
// pipeline answers 91: a node never approves what the cluster may not keep.
//
// Duplicates are cluster-wide, decided by the stream's order (first.go): the first
// write of a request that owns its duplicate key (DE 41, 11, 7) goes to the stream in
// a group like every other write, and every node's applier, meeting it in stream
// order, takes it when no earlier record holds its key under another RRN, and skips
// it otherwise. The writer waits for its own applier's verdict: when another RRN
// came first, Write returns a *journal.DuplicateError naming it, and no node holds
// the request's record. Every message (a group) carries a Nats-Msg-Id unique to this
// node process (node, boot nonce, counter), so that a publish retried after a lost
// acknowledgement is stored once.
//
// RRNs are unique without a round trip: each node's store hands out RRNs under its
// own first digit (journal.Options.RRNPrefix = the node number); ScanFrom (crash
// recovery) walks only this node's RRNs, ScanNode another node's (a survivor
// recovering a dead node's open transactions). Checkpoints stay local.
//
// Writes go to the stream in groups (group.go): concurrent writers hand their
// encoded entries to the grouper, which sends what has gathered as one message (kind
// g) while up to two earlier groups wait for their acknowledgements, and wakes each
// durable writer when its group is acknowledged; JetStream's CPU is per message, so
// a busy node sends few, large messages.
//
// The applier follows the whole stream: up to the position it stood at when Open ran
// it restores this node's own messages a lost disk lacks; past it, of this node's
// messages it looks only at the first versions, to decide them.
//
// Stream layout: subjects journal.<node>.<kind>, with the headers Sy-Node, Sy-Kind
// and Sy-First. Kinds: g (a group: entries one after the other, each a kind byte f,
// r, d or b, a uvarint length and the payload), f (only in a group: a first version
// that owns its duplicate key, led by its RRN's length and RRN), r (a record version,
// rec.AppendBinary), d (delivery marks) and b (a batch close). Earlier versions
// published r, d and b alone, and then every first version that owns a duplicate
// key alone (with the key as its Nats-Msg-Id); those messages still apply. A node of
// an earlier version cannot read f entries: upgrade every node of a cluster
// together.
package cjournal
