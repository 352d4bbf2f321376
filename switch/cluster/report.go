package cluster

import (
	"context"
	"time"
)

// Report is what the admin API's GET /api/v1/cluster/status answers and
// `switchyard cluster status` prints: this node, whether it is ready, the
// cluster's Status and the leases this node has seen. It is built even when
// JetStream does not answer (no quorum): StatusError then says why, and the
// leases are the last ones seen.
type Report struct {
	// Node is this switch node's number (cluster.node).
	Node int `json:"node"`
	// NotReady is Ready's error, empty when the node is ready.
	NotReady string `json:"not_ready,omitempty"`
	// Status is nil when JetStream did not answer; StatusError says why.
	Status      *Status `json:"status,omitempty"`
	StatusError string  `json:"status_error,omitempty"`
	// Leases are the nodes' leases as this node's watcher saw them (none
	// without a lease).
	Leases []LeaseHolder `json:"leases"`
	// LeasesStale, when set, says why Leases may be out of date: this node's
	// own lease is not refreshed (no quorum), and nor is its judgement of the
	// others' (held stays held until it can read the bucket again).
	LeasesStale string `json:"leases_stale,omitempty"`
	// State is each shared store's place in the STATE stream (filled by the
	// switch, which knows its stores).
	State []StoreState `json:"state,omitempty"`
	// ImportedUpTo and ImportMessages are how far an import of a single switch's
	// journal (switchyard cluster import) stands in the JOURNAL stream: the last RRN
	// and the messages it holds ("" and 0: none, or aged out); ImportError says why
	// they could not be read.
	ImportedUpTo   string `json:"imported_up_to,omitempty"`
	ImportMessages uint64 `json:"import_messages,omitempty"`
	ImportError    string `json:"import_error,omitempty"`
}

// StoreState is one shared store in the STATE stream, as a node sees it.
type StoreState struct {
	Store string `json:"store"`
	// Revision is the last commit this node's store applied.
	Revision uint64 `json:"revision"`
	// Commits is how many of the store's commits the stream holds.
	Commits uint64 `json:"commits"`
	// Snapshot is the store's latest snapshot (nil: none yet).
	Snapshot *SnapshotInfo `json:"snapshot,omitempty"`
	// Error says what could not be read (no quorum, say).
	Error string `json:"error,omitempty"`
	// Following says whether this node's follower of the store has a consumer of
	// the STATE stream. Without one: NoConsumerSince is when it last had one (or
	// started without one; nil before its first attempt), NoConsumerFor how long
	// ago that was by the node's clock, and FollowerError why (the server's last
	// refusal, commits purged before it applied them...).
	Following       bool          `json:"following"`
	NoConsumerSince *time.Time    `json:"no_consumer_since,omitempty"`
	NoConsumerFor   time.Duration `json:"no_consumer_for_ns,omitempty"`
	FollowerError   string        `json:"follower_error,omitempty"`
}

// Report builds the node's Report; l is its lease (nil: none yet).
func (n *Node) Report(ctx context.Context, l *Lease) *Report {
	r := &Report{Node: n.cfg.Node, Leases: []LeaseHolder{}}
	if err := n.Ready(); err != nil {
		r.NotReady = err.Error()
	}
	st, err := n.Status(ctx)
	if err != nil {
		r.StatusError = err.Error()
	} else {
		r.Status = st
	}
	if l != nil {
		r.Leases = l.Holders()
		for i := range r.Leases {
			// Only the node that won a lapsed lease's claim knows it won: the
			// others read the claim (a trial saw "RECOVERED BY -" on them).
			if h := &r.Leases[i]; !h.Alive && h.RecoveredBy == 0 {
				h.RecoveredBy = l.recoveredBy(ctx, h.Node, h.Incarnation)
			}
		}
		if err := l.Held(); err != nil {
			r.LeasesStale = err.Error()
		}
	}
	return r
}
