package cluster

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/switch/cluster/ordered"
)

// Leases: how the survivors learn that a switch node died, and which one of
// them recovers its open transactions.
//
// The KV bucket "leases" holds, per node N:
//
//	node.N            the lease: LeaseValue as JSON, republished every Refresh
//	                  with a per-message TTL (Nats-TTL) of TTL. When the node
//	                  stops refreshing, the server removes the last message
//	                  after TTL and, the bucket having LimitMarkerTTL, puts a
//	                  delete marker (reason MaxAge) that every watcher sees.
//	inc.N             the node's last incarnation (no TTL), bumped by a
//	                  compare-and-set at every start: the start's serialization
//	                  point, read without trusting a possibly lagging replica.
//	recover.N.I       the claim on the recovery of node N's incarnation I
//	                  (Claim as JSON, TTL ClaimTTL): whoever's KV Create wins
//	                  recovers it, exactly one of the survivors (which saw I's
//	                  lease lapse) and the restarted node itself (which bumps
//	                  inc.N past I and then claims I before it runs its own
//	                  start-up recovery).
//
// A survivor that wins runs OnDead(N), then marks the claim done. A restarted
// node that loses waits until the winner marks it done before it recovers
// anything itself, so that the two never reverse or settle the same
// transaction at once. The restarted node claims its previous incarnation
// before it bumps inc.N, so that a start that fails while it waits leaves
// inc.N where it was and the next start waits for the same claim.
//
// A claim names its holder's incarnation (ByIncarnation). A claim whose holder
// died or restarted (its lease gone, or of another incarnation), or which its
// holder released (its OnDead cut short by a stop), or which expired, is
// taken over by whoever waits for it (the restarted node, or a survivor that
// lost the claim), by a compare-and-set on the claim's revision: a dead
// survivor's recovery is finished by someone else instead of holding the
// restarted node back until the claim's TTL. Only Creates and compare-and-sets
// decide, never a read: a KV Get may be answered by a lagging replica.

// LeaseBucket is the KV bucket of the leases and recovery claims.
const LeaseBucket = "leases"

// Lease defaults.
const (
	DefaultLeaseRefresh = time.Second
	DefaultLeaseTTL     = 5 * time.Second
	DefaultClaimTTL     = 24 * time.Hour
	// MaxLeaseTTL bounds LeaseOptions.TTL (cluster.lease_ttl): a dead node's open
	// transactions wait that long (and the grace) for a survivor to settle them.
	MaxLeaseTTL = time.Minute
	// leaseMarkerTTL is how long the bucket keeps a lapsed lease's delete
	// marker: watchers see it live; it only has to outlast their start-up.
	leaseMarkerTTL = time.Minute
)

// LeaseOptions configure StartLease. Zero values take the defaults.
type LeaseOptions struct {
	// Refresh is how often the node republishes its lease (default 1 s).
	Refresh time.Duration
	// TTL is how long a lease lives without a refresh (default 5 s, whole
	// seconds as JetStream's message TTLs are, from 1 s to MaxLeaseTTL and at
	// least twice Refresh). A node is declared dead about TTL after its last
	// refresh. The lease value carries it (LeaseValue.TTLSeconds): the other
	// nodes judge this node's lease by this node's TTL, not by their own, so
	// that nodes configured with different TTLs are safe together.
	TTL time.Duration
	// ClaimTTL is how long a recovery claim is kept (default 24 h).
	ClaimTTL time.Duration
	// OnDead, if set, is called (on its own goroutine, one call at a time per
	// node) when this node won the claim on a dead node's recovery; the claim
	// is marked done when it returns nil. An error (logged) releases the
	// claim: whoever waits for it (the restarted node, another survivor)
	// takes it over.
	OnDead func(ctx context.Context, node int) error
	// Now is the clock for the lease values (default time.Now).
	Now func() time.Time

	// loseBumpAck (tests) turns the start's first stored bump of inc.N into an
	// unanswered one, its next read of inc.N into a read of the value before
	// it, and the first read after the conflict into a 503: an acknowledgement
	// lost in an election, a leader's read that does not show the bump yet, and
	// a server without a meta leader (takeIncarnation, ownBump).
	loseBumpAck bool
}

// LeaseValue is what a node's lease key holds.
type LeaseValue struct {
	Node        int       `json:"node"`
	Server      string    `json:"server"`
	Started     time.Time `json:"started"`
	Incarnation uint64    `json:"incarnation"`
	Refreshed   time.Time `json:"refreshed"`
	// TTLSeconds is the lease's TTL (LeaseOptions.TTL, cluster.lease_ttl) in
	// seconds: the other nodes judge the lease lapsed by it (since 6 December
	// 2026; 0 in leases of versions before, whose TTL was always
	// DefaultLeaseTTL).
	TTLSeconds int `json:"ttl_seconds,omitempty"`
	// Compacts says that the node's version knows the STATE stream's
	// snapshots (it restores one when its commits were purged); a node whose
	// lease lacks it holds compaction back (see snapshot.go).
	Compacts bool `json:"compacts,omitempty"`
	// DestroysKeys says that the node's version loads a key whose oldest versions
	// were destroyed (since 5 December 2026); a node whose lease lacks it holds
	// the destruction of working keys back (an older version refuses to open such
	// a key store).
	DestroysKeys bool `json:"destroys_keys,omitempty"`
	// QRRequests says that the node's version decides the QR order book's requests
	// (intent commits on state.qrorders, since 5 December 2026); while a node's
	// lease lacks it, the book commits with a compare-and-set on its revision, as
	// before (an older version's follower stops on a request, and such a node then
	// cannot start again).
	QRRequests bool `json:"qr_requests,omitempty"`
	// Stopped says that the node's process stopped gracefully (Stop's last put):
	// a start of the same node need not wait to tell it from a live process.
	Stopped bool `json:"stopped,omitempty"`
}

// Claim is what a recovery claim holds.
type Claim struct {
	Node        int    `json:"node"`        // the node recovered
	Incarnation uint64 `json:"incarnation"` // its incarnation that died
	By          int    `json:"by"`          // the node recovering it (Node itself at its restart)
	// ByIncarnation is the holder's incarnation: its own lease's while it
	// runs, the incarnation it is about to take at its restart (0 in claims
	// of versions before 5 December 2026).
	ByIncarnation uint64    `json:"by_incarnation,omitempty"`
	State         string    `json:"state"` // ClaimRunning, ClaimDone or ClaimReleased
	At            time.Time `json:"at"`
}

// Claim states.
const (
	ClaimRunning = "running"
	ClaimDone    = "done"
	// ClaimReleased: the holder gave the recovery up unfinished (its OnDead
	// failed or was cut short by a stop); whoever waits for it takes it over.
	ClaimReleased = "released"
)

// LeaseHolder is one node's lease as this node's watcher last saw it.
type LeaseHolder struct {
	Node        int       `json:"node"`
	Server      string    `json:"server"`
	Incarnation uint64    `json:"incarnation"`
	Started     time.Time `json:"started"`
	// Refreshed is the holder's clock at its last refresh seen.
	Refreshed time.Time `json:"refreshed"`
	// TTLSeconds is LeaseValue.TTLSeconds as last seen (0: a version before 6
	// December 2026, whose TTL is DefaultLeaseTTL).
	TTLSeconds int `json:"ttl_seconds,omitempty"`
	// Alive is false once the lease lapsed (until the node takes it back).
	Alive bool `json:"alive"`
	// RecoveredBy is the node that won the claim on the lapsed incarnation, 0
	// when none is known to this node.
	RecoveredBy int `json:"recovered_by,omitempty"`
	// Compacts is LeaseValue.Compacts as last seen.
	Compacts bool `json:"compacts,omitempty"`
	// DestroysKeys is LeaseValue.DestroysKeys as last seen.
	DestroysKeys bool `json:"destroys_keys,omitempty"`
	// QRRequests is LeaseValue.QRRequests as last seen.
	QRRequests bool `json:"qr_requests,omitempty"`
	// Stopped is LeaseValue.Stopped as last seen: the node's process stopped
	// gracefully (since 6 December 2026; before, a stopped node showed as held,
	// then lapsed, as a crashed one does).
	Stopped bool `json:"stopped,omitempty"`

	heard time.Time // this node's clock when it last heard of the lease
}

// Lease is this node's lease and its watch of the others'. Stop ends both.
type Lease struct {
	n    *Node
	kv   jetstream.KeyValue
	opts LeaseOptions
	self LeaseValue
	// token names this start in the header of its bump of inc.N
	// (startTokenHeader), so that it knows its own bump from another
	// process's when its compare-and-set conflicts (takeIncarnation).
	token string
	// failOwnRead (tests, LeaseOptions.loseBumpAck): ownBump's next read
	// fails as a server without a meta leader answers it (503).
	failOwnRead bool

	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	seen   map[int]*LeaseHolder
	lastOK time.Time // this node's clock at its last refresh acknowledged
	// writableSince is when this node's refreshes began to succeed again after
	// failing (or first did): before, the bucket may have been without a
	// leader, and every node's refreshes failed alike.
	writableSince time.Time
	refreshFailed bool
	refreshErr    error // the last failed refresh's error (Held says it)
	// rev is the revision of this node's last lease put acknowledged: each
	// refresh is a compare-and-set on it, so that a second process refreshing
	// the same node's lease is noticed.
	rev uint64
	// usurped, once set, says that another process took this node's lease, or
	// a survivor recovered this incarnation after it lapsed: this one no longer
	// refreshes it, and Held and Lost say so for good (lost is set with it).
	usurped error
	lost    atomic.Bool
	// capped is set, for the rest of the process, once a peer's lease carried no
	// TTL (a version before 6 December 2026, which judges every lease by
	// DefaultLeaseTTL) while this node's TTL is longer: this node then judges its
	// own lease by DefaultLeaseTTL (ownTTL), as that peer does.
	capped atomic.Bool
	// lostC is closed when lost is set (markLost): LostC.
	lostC chan struct{}

	// epoch is this node's clock (its monotonic reading) when the lease was
	// made; okAt is an offset from it (Confirm reads it without the mutex):
	// the start of the last refresh acknowledged.
	epoch time.Time
	okAt  atomic.Int64
	// failedSince is the end of the first of the refresh attempts failing in a
	// row up to the last (its offset, plus one), 0 when the last one succeeded.
	failedSince atomic.Int64
	// triedAt is the end of the last refresh attempt (its offset, plus one), 0
	// before the first: Confirm tells by it a refresh loop that runs (and fails)
	// from one a pause of the process stopped.
	triedAt atomic.Int64
	// tried is closed when a refresh attempt ends (and replaced, under mu):
	// Confirm waits on it.
	tried chan struct{}
}

// ErrLeaseLost is wrapped by Confirm's error when this node's lease is lost for
// good (Lost): another node recovers, or recovered, this incarnation's open
// transactions, or another process took the lease.
var ErrLeaseLost = errors.New("cluster: this node's lease is lost")

// confirmMargin is how much younger than the TTL Confirm wants the last
// acknowledged refresh (at most a quarter of the TTL): a transaction that goes on
// after the check acts well before any other node could judge the lease lapsed,
// even on a loaded machine.
const confirmMargin = time.Second

func (o *LeaseOptions) defaults() error {
	if o.Refresh == 0 {
		o.Refresh = DefaultLeaseRefresh
	}
	if o.TTL == 0 {
		o.TTL = DefaultLeaseTTL
	}
	if o.ClaimTTL == 0 {
		o.ClaimTTL = DefaultClaimTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Refresh <= 0 || o.TTL < time.Second || o.TTL > MaxLeaseTTL || o.TTL < 2*o.Refresh || o.TTL%time.Second != 0 {
		return fmt.Errorf("cluster: lease refresh %v and TTL %v: the TTL must be whole seconds, from 1 s to %v and at least twice the refresh", o.Refresh, o.TTL, MaxLeaseTTL)
	}
	if o.ClaimTTL < time.Second {
		return fmt.Errorf("cluster: lease claim TTL %v is under 1 s", o.ClaimTTL)
	}
	return nil
}

// LeaseKV creates (or updates) the leases bucket, with Config.Replicas.
// Each try is bounded: at a cluster's start a request may go unanswered while
// the meta leader is elected (one node was seen waiting for minutes), so it
// tries again until ctx ends.
func (n *Node) LeaseKV(ctx context.Context) (jetstream.KeyValue, error) {
	for try := 0; ; try++ {
		tctx, cancel := context.WithTimeout(ctx, TryWait(try))
		kv, err := n.js.CreateOrUpdateKeyValue(tctx, jetstream.KeyValueConfig{
			Bucket:         LeaseBucket,
			Description:    "switchyard node leases and recovery claims",
			History:        1,
			Replicas:       max(n.cfg.Replicas, 1),
			LimitMarkerTTL: leaseMarkerTTL,
		})
		cancel()
		if err == nil {
			return kv, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("cluster: KV bucket %s on %s: %w", LeaseBucket, n.name(), err)
		}
		n.log.Warn().Err(err).Str("bucket", LeaseBucket).Msg("KV bucket not created yet; trying again")
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// StartLease takes this node's lease under a new incarnation and starts
// refreshing it and watching the other nodes'. Before it publishes the
// lease, it claims the recovery of its previous incarnation: if a survivor
// won that claim first, StartLease waits (until ctx ends) for the survivor to
// mark it done, so that the caller's own start-up recovery, which follows,
// never races it. The lease lives until Stop, which must come before the
// Node's Close.
func (n *Node) StartLease(ctx context.Context, opts LeaseOptions) (*Lease, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	if n.cfg.Node < 1 || n.cfg.Node > 9 {
		return nil, fmt.Errorf("cluster: lease: cluster.node %d is not from 1 to 9", n.cfg.Node)
	}
	kv, err := n.LeaseKV(ctx)
	if err != nil {
		return nil, err
	}
	l := &Lease{n: n, kv: kv, opts: opts, seen: map[int]*LeaseHolder{}, epoch: time.Now(), tried: make(chan struct{}), lostC: make(chan struct{}),
		token: rand.Text()}
	if err := l.refuseLive(ctx); err != nil {
		return nil, err
	}
	if err := l.refuseNameTaken(ctx); err != nil {
		return nil, err
	}
	inc, err := l.takeIncarnation(ctx)
	if err != nil {
		return nil, err
	}
	now := opts.Now().UTC()
	l.self = LeaseValue{Node: n.cfg.Node, Server: n.ServerName(), Started: now, Incarnation: inc, TTLSeconds: int(opts.TTL / time.Second),
		Compacts: true, DestroysKeys: true, QRRequests: true}
	for {
		err := l.refresh(ctx)
		if err == nil {
			break
		}
		if !transient(err) || pause(ctx) != nil {
			return nil, err
		}
	}
	wctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	// The bucket's stream, read as its watcher would (each key's last value,
	// then every change), by a follower whose Stop does not wait: nats.go's
	// KeyWatcher deletes its consumer when stopped, a request that waited 5 s
	// in every graceful stop without a quorum. Its replaced consumers are
	// counted as the journal's and the shared stores' are (the node's metrics
	// as they are when one is replaced: they may be set after the lease).
	n.Metrics().PrepareConsumersReplaced(leaseStream)
	w, err := ordered.Follow(n.js, ordered.Config{
		Stream:         leaseStream,
		Subjects:       []string{leaseSubjects + "node.*"},
		LastPerSubject: true,
		Logger:         n.log.With().Str("bucket", LeaseBucket).Logger(),
		Replaced: func(reason string) {
			m := n.Metrics()
			m.PrepareConsumersReplaced(leaseStream)
			m.ObserveConsumerReplaced(leaseStream, reason)
		},
		Bridged: func(k int) { n.Metrics().ObserveReadsWithoutConsumer(leaseStream, k) },
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("cluster: watch the leases on %s: %w", n.name(), err)
	}
	l.wg.Add(2)
	go l.refreshLoop(wctx)
	go l.watch(wctx, w)
	n.log.Info().Int("node", n.cfg.Node).Uint64("incarnation", inc).Dur("ttl", opts.TTL).Dur("refresh", opts.Refresh).Msg("lease taken")
	return l, nil
}

// Incarnation is this start's incarnation of the node (1 the first time).
func (l *Lease) Incarnation() uint64 { return l.self.Incarnation }

func leaseKey(node int) string { return "node." + strconv.Itoa(node) }
func incKey(node int) string   { return "inc." + strconv.Itoa(node) }
func claimKey(node int, inc uint64) string {
	return "recover." + strconv.Itoa(node) + "." + strconv.FormatUint(inc, 10)
}

// refuseLive returns an error when another process holds this node's lease:
// one refreshed after this start began. A live-looking lease is watched for two
// refresh intervals: refreshed meanwhile, another process runs as this node (two
// processes with one cluster.node would hand out the same RRNs and overwrite
// each other's records); not, its process died or stopped and this is its
// restart, which then claims its previous incarnation before the lease lapses
// and the survivors would. A live process whose refresh came later than that
// (a stalled machine) is caught by the refreshes' compare-and-set instead.
func (l *Lease) refuseLive(ctx context.Context) error {
	key := leaseKey(l.n.cfg.Node)
	var (
		first     []byte
		firstAt   time.Time // the server's time of the lease first read
		firstRead time.Time // this node's clock when it read it
		seq0      uint64
		prevTTL   time.Duration // the TTL the lease read carries (the last process's)
	)
	tick := time.NewTicker(l.opts.Refresh / 4)
	defer tick.Stop()
	for {
		data, seq, at, err := l.n.readLeader(ctx, LeaseBucket, key)
		switch {
		case err != nil:
			// No leader yet (a bucket just created, an election): try again, and
			// watch afresh once it answers (a live process's refreshes failed too).
			if ctx.Err() != nil {
				return fmt.Errorf("cluster: read %s/%s: %w", LeaseBucket, key, err)
			}
			first = nil
		case data == nil:
			return nil // no lease: expired, or never taken
		case first == nil:
			first, firstAt, seq0, firstRead = data, at, seq, time.Now()
			prev, _ := decodeLease(data)
			prevTTL = prev.ttl()
			if time.Since(at) > prevTTL+leaseGrace {
				return nil // stale: its process is gone, the server just has not expired it yet
			}
			if v, ok := decodeLease(data); ok && v.Stopped {
				return nil // its process stopped gracefully: this is its restart
			}
		case seq != seq0:
			v, _ := decodeLease(data)
			return fmt.Errorf("%w: node %d's lease (server %q, incarnation %d, started %v) was refreshed again %v after this start first read it; cluster.node must be unique in the cluster, this process's server is %q%s",
				ErrNodeRunning, l.n.cfg.Node, v.Server, v.Incarnation, v.Started.Format(time.RFC3339), at.Sub(firstAt).Round(time.Millisecond), l.n.ServerName(), l.joinedHint(v.Server))
		case time.Since(firstRead) > min(2*l.opts.Refresh, prevTTL+leaseGrace):
			return nil // not refreshed since: its process died or stopped
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: node %d's lease: waiting for the last one to lapse: %w", l.n.cfg.Node, ctx.Err())
		case <-tick.C:
		}
	}
}

// decodeLease reads a lease value, and says whether it could.
func decodeLease(data []byte) (LeaseValue, bool) {
	var v LeaseValue
	return v, json.Unmarshal(data, &v) == nil
}

// ttl is the lease's TTL, which its holder's lapse is judged by: the one it
// carries, DefaultLeaseTTL when it carries none (a version before 6 December
// 2026, whose TTL was always the default).
func (v LeaseValue) ttl() time.Duration { return ttlOf(v.TTLSeconds) }

// ttl is the holder's lease's TTL as last seen (LeaseValue.ttl).
func (h *LeaseHolder) ttl() time.Duration { return ttlOf(h.TTLSeconds) }

// ttlOf is a lease's TTL from its TTLSeconds (LeaseValue.ttl).
func ttlOf(seconds int) time.Duration {
	if seconds <= 0 {
		return DefaultLeaseTTL
	}
	return min(time.Duration(seconds)*time.Second, MaxLeaseTTL)
}

// joinedHint tells the operator of a refused start what it left behind: an embedded
// server (not the running node's, other) that joined JetStream's meta group and stays
// in it, offline, until removed.
func (l *Lease) joinedHint(other string) string {
	name := l.n.ServerName()
	if l.n.cfg.Mode != ModeEmbedded || name == "" || name == other {
		return ""
	}
	return fmt.Sprintf(". Server %q has joined JetStream's meta group and stays in it, offline: unless it is to run as another node, remove it with `switchyard cluster remove-peer --server %s` on a running node", name, name)
}

// ErrNodeRunning: another live process holds this node's lease (StartLease).
var ErrNodeRunning = errors.New("cluster: a process already runs as this node")

// ErrServerNameTaken: another node's lease names this node's embedded server
// (StartLease): two nodes configured with one cluster.embedded.server_name.
var ErrServerNameTaken = errors.New("cluster: another node runs under this server name")

// refuseNameTaken returns ErrServerNameTaken when the lease of another node
// (one that ran within its TTL: a lease lives that long after its last refresh)
// names this node's embedded server. nats-server refuses a route between two
// servers of one name, but each may still be routed to the others (in an
// operator's trial on 6 December 2026 a fourth node given node 1's server name
// "n1" joined through nodes 2 and 3, took a lease as node 4 and served, while
// node 1 logged "Remote server has a duplicate name" several times a second);
// JetStream knows its Raft peers by their server names, so the two would stand
// for one peer. Embedded mode only: an external cluster's servers are not the
// nodes'. Each key is read from the bucket's leader; a read nobody answers is
// tried again until ctx ends.
func (l *Lease) refuseNameTaken(ctx context.Context) error {
	name := l.n.ServerName()
	if l.n.cfg.Mode != ModeEmbedded || name == "" {
		return nil
	}
	for node := 1; node <= 9; node++ {
		if node == l.n.cfg.Node {
			continue
		}
		for {
			v, _, err := l.readLeader(ctx, leaseKey(node))
			if err == nil {
				if v != nil && v.Server == name {
					state := "refreshed " + v.Refreshed.Format(time.RFC3339)
					if v.Stopped {
						state = "stopped " + v.Refreshed.Format(time.RFC3339)
					}
					return fmt.Errorf("%w: node %d's lease (incarnation %d, %s) names server %q, and this process, node %d, was given the same cluster.embedded.server_name; each node needs its own (JetStream knows its peers by these names): give this node another name (and an empty data directory if it has run under this one). Do not remove server %q from the meta group: it is node %d's",
						ErrServerNameTaken, node, v.Incarnation, state, name, l.n.cfg.Node, name, node)
				}
				break
			}
			if !transient(err) {
				return fmt.Errorf("cluster: read %s/%s: %w", LeaseBucket, leaseKey(node), err)
			}
			if pause(ctx) != nil {
				return fmt.Errorf("cluster: read %s/%s: %w", LeaseBucket, leaseKey(node), err)
			}
		}
	}
	return nil
}

// takeIncarnation takes this node's next incarnation. It reads inc.N from the
// bucket's leader, claims the recovery of the incarnation it holds (waiting
// while a survivor holds that claim), then moves inc.N to the next by a
// compare-and-set on the revision it read. Claiming before the bump means that
// a start which fails while it waits leaves inc.N unchanged, and the next start
// claims, and waits for, the same incarnation. The read being the leader's, a
// conflict means that inc.N moved on meanwhile: another process starting as
// this node (ErrNodeRunning), which may have waited for the same claim (and,
// its By and ByIncarnation being this start's, taken it as its own); or this
// start's own bump, stored though its acknowledgement was lost, when the read
// that followed did not show it yet (a leader just elected). The bump carries
// this start's token (startTokenHeader), and a conflict reads inc.N's last
// message again to tell the two apart (ownBump).
func (l *Lease) takeIncarnation(ctx context.Context) (uint64, error) {
	key := incKey(l.n.cfg.Node)
	var stale *leaderMsg // loseBumpAck: what the next read returns
	for ctx.Err() == nil {
		data, rev, _, rerr := l.n.readLeader(ctx, LeaseBucket, key)
		if stale != nil {
			data, rev, rerr, stale = stale.data, stale.seq, nil, nil
		}
		if rerr != nil {
			// No leader (a bucket just created, an election): again.
			if werr := pause(ctx); werr != nil {
				return 0, fmt.Errorf("cluster: read %s/%s: %w (last: %w)", LeaseBucket, key, werr, rerr)
			}
			continue
		}
		var p uint64
		if data != nil {
			var perr error
			if p, perr = strconv.ParseUint(string(data), 10, 64); perr != nil {
				return 0, fmt.Errorf("cluster: %s/%s holds %q, not an incarnation number", LeaseBucket, key, data)
			}
			if err := l.claimSelf(ctx, p, p+1); err != nil {
				return 0, err
			}
		}
		// Expected: the revision read (0: no message yet). A put the stream's
		// (lost) leader never acknowledges is, like a read, given up after a
		// while and read again.
		msg := &nats.Msg{Subject: leaseSubjects + key, Data: []byte(strconv.FormatUint(p+1, 10)),
			Header: nats.Header{startTokenHeader: []string{l.token}}}
		pctx, cancel := context.WithTimeout(ctx, leaderReadWait)
		_, err := l.n.js.PublishMsg(pctx, msg, jetstream.WithExpectLastSequencePerSubject(rev))
		cancel()
		if err == nil && l.opts.loseBumpAck {
			l.opts.loseBumpAck = false
			stale, err = &leaderMsg{data: data, seq: rev}, nats.ErrTimeout
			l.failOwnRead = true
		}
		switch {
		case err == nil:
			return p + 1, nil
		case isConflict(err):
			inc, own, oerr := l.ownBump(ctx, key, rev)
			if oerr != nil {
				return 0, oerr
			}
			if own {
				l.n.log.Info().Str("key", key).Uint64("incarnation", inc).
					Msg("cluster: this start's bump of its incarnation was stored though its acknowledgement was lost; taking it")
				return inc, nil
			}
			return 0, fmt.Errorf("%w: %s/%s moved past %d while this start read it and waited for its claims: another process started as node %d%s",
				ErrNodeRunning, LeaseBucket, key, p, l.n.cfg.Node, l.joinedHint(""))
		case transient(err):
			// Unknown outcome: read again (a bump of ours that was stored reads
			// as the next incarnation, claimed afresh, or conflicts and is
			// found by ownBump).
			if werr := pause(ctx); werr != nil {
				return 0, fmt.Errorf("cluster: bump %s/%s: %w (last: %w)", LeaseBucket, key, werr, err)
			}
		default:
			return 0, fmt.Errorf("cluster: bump %s/%s: %w", LeaseBucket, key, err)
		}
	}
	return 0, fmt.Errorf("cluster: bump %s/%s: %w", LeaseBucket, key, ctx.Err())
}

// startTokenHeader names the start (Lease.token) whose bump of inc.N a message
// is.
const startTokenHeader = "Switchyard-Start"

// ownBump reads key's last message from the bucket's leader after a bump
// expecting revision rev conflicted, and says whether it is this start's own
// bump (its token), with the incarnation it holds. A read that still shows rev
// or less (the leader not caught up), or that fails (nobody answers, or a
// server without a meta leader answers 503 at once: the elections a lost
// acknowledgement comes with), is tried again for up to ownBumpWait, then
// given up with an error that is not ErrNodeRunning (the start is tried
// again). A message that is another's says false: the start is refused as
// another process's (ErrNodeRunning), as it always was before the token. One case is
// left: a leader's read that shows this start's bump but not yet a later one of
// another process starting as this node (which a stale read had let through
// too) would let both run; the later one's claim on this start's incarnation
// then fences it.
func (l *Lease) ownBump(parent context.Context, key string, rev uint64) (uint64, bool, error) {
	ctx, cancel := context.WithTimeout(parent, ownBumpWait)
	defer cancel()
	for {
		m, err := l.n.readLeaderMsg(ctx, LeaseBucket, key)
		if l.failOwnRead {
			l.failOwnRead = false
			m, err = nil, fmt.Errorf("message get of %s in %s: 503 JetStream system temporarily unavailable", key, LeaseBucket)
		}
		if err == nil && m != nil && m.seq > rev {
			h, herr := nats.DecodeHeadersMsg(m.hdrs)
			if len(m.hdrs) == 0 || herr != nil || h.Get(startTokenHeader) != l.token {
				return 0, false, nil
			}
			inc, perr := strconv.ParseUint(string(m.data), 10, 64)
			if perr != nil {
				return 0, false, fmt.Errorf("cluster: %s/%s holds %q, not an incarnation number", LeaseBucket, key, m.data)
			}
			return inc, true, nil
		}
		if pause(ctx) != nil {
			if perr := parent.Err(); perr != nil {
				return 0, false, fmt.Errorf("cluster: read %s/%s after a conflicting bump at revision %d: %w (last: %v)", LeaseBucket, key, rev, perr, err)
			}
			// Undecided: not another process's either. The start fails with
			// an error a start tries again (the next reads this start's bump,
			// if it was one, as the incarnation before its own).
			last := "its last read showed no later revision"
			if err != nil {
				last = "its last read: " + err.Error()
			}
			return 0, false, fmt.Errorf("cluster: read %s/%s after a conflicting bump at revision %d: whose bump it was not known within %v (%s): %w",
				LeaseBucket, key, rev, ownBumpWait, last, context.DeadlineExceeded)
		}
	}
}

// ownBumpWait bounds ownBump's reads.
const ownBumpWait = 10 * time.Second

func isConflict(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) ||
		errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// transient says whether a KV operation may succeed if tried again: nobody
// answered (a bucket just created, or electing a leader after a server left).
func transient(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.As(err, &apiErr) && apiErr.Code == 503
}

// Refused says whether err holds JetStream's outright refusal of a request (an API
// error of the 4xx kind: a limit reached, a stream or consumer that does not
// exist, a bad configuration), as opposed to no answer, a timeout or an
// unavailable server (transient).
func Refused(err error) bool {
	var api *jetstream.APIError
	return errors.As(err, &api) && api.Code >= 400 && api.Code < 500
}

// retryPause spaces the tries of an operation that failed transiently.
const retryPause = 100 * time.Millisecond

// pause waits retryPause, or returns ctx's error.
func pause(ctx context.Context) error {
	t := time.NewTimer(retryPause)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// claimSelf claims the recovery of this node's incarnation inc, as the
// incarnation next it is about to take; when a survivor holds the claim, it
// waits until the survivor marks it done, or takes it over when the survivor
// died, restarted or released it.
func (l *Lease) claimSelf(ctx context.Context, inc, next uint64) error {
	me := l.n.cfg.Node
	won, _, err := l.claim(ctx, me, inc, next)
	if err != nil || won {
		return err
	}
	_, _, err = l.await(ctx, me, inc, next)
	return err
}

// claim tries to Create the claim on node's incarnation inc, as this node's
// incarnation byInc. It returns whether it won, and the claim's revision when
// it did (0 when it could not tell: a timeout stored it).
func (l *Lease) claim(ctx context.Context, node int, inc, byInc uint64) (bool, uint64, error) {
	c := Claim{Node: node, Incarnation: inc, By: l.n.cfg.Node, ByIncarnation: byInc, State: ClaimRunning, At: l.opts.Now().UTC()}
	b, _ := json.Marshal(c)
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		rev, err := l.kv.Create(actx, claimKey(node, inc), b, jetstream.KeyTTL(l.opts.ClaimTTL))
		cancel()
		switch {
		case err == nil:
			return true, rev, nil
		case isConflict(err):
			return false, 0, nil
		case transient(err) && ctx.Err() == nil:
			// Unknown outcome (a timeout may have stored it): trying again is
			// safe, a Create of what we stored fails as a conflict, and then
			// await finds the claim ours.
			if werr := pause(ctx); werr != nil {
				return false, 0, fmt.Errorf("cluster: claim %s/%s: %w (last: %w)", LeaseBucket, claimKey(node, inc), werr, err)
			}
		default:
			return false, 0, fmt.Errorf("cluster: claim %s/%s: %w", LeaseBucket, claimKey(node, inc), err)
		}
	}
}

// await follows the claim on node's incarnation inc, which this node (as its
// incarnation byInc) did not win, until the claim is done (took false) or this
// node holds it (took true, with the claim's revision): the claim was this
// node's all along (a timeout hid its Create's success, or an earlier start of
// this node made it), or this node took it over, by a compare-and-set, from a
// holder that released it, died or restarted (see orphaned), or after it
// expired. A survivor (node is not this node) returns took false at once when
// the claim is the dead node's own, made at its restart: it recovers itself.
func (l *Lease) await(ctx context.Context, node int, inc, byInc uint64) (took bool, rev uint64, err error) {
	me := l.n.cfg.Node
	key := claimKey(node, inc)
	w, err := ordered.Follow(l.n.js, ordered.Config{
		Stream:         leaseStream,
		Subjects:       []string{leaseSubjects + key},
		LastPerSubject: true,
		Logger:         l.n.log.With().Str("bucket", LeaseBucket).Str("key", key).Logger(),
	})
	if err != nil {
		return false, 0, fmt.Errorf("cluster: watch %s/%s: %w", LeaseBucket, key, err)
	}
	defer w.Stop()
	tick := time.NewTicker(l.opts.Refresh)
	defer tick.Stop()
	var (
		last     Claim
		lastRev  uint64
		silentAt time.Time // when the holder was first seen without a live lease
		gone     bool      // the claim's last message was its expiry or deletion
	)
	takeOver := func(why string) (bool, uint64, error) {
		c := Claim{Node: node, Incarnation: inc, By: me, ByIncarnation: byInc, State: ClaimRunning, At: l.opts.Now().UTC()}
		b, _ := json.Marshal(c)
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		r, err := l.putTTL(actx, key, b, l.opts.ClaimTTL, jetstream.WithExpectLastSequencePerSubject(lastRev))
		cancel()
		switch {
		case err == nil:
			l.n.log.Warn().Int("node", node).Uint64("incarnation", inc).Int("from", last.By).Str("why", why).Msg("took over a recovery claim")
			return true, r, nil
		case isConflict(err) || transient(err):
			return false, 0, nil // the next message, or tick, says what became of it
		default:
			return false, 0, fmt.Errorf("cluster: take over %s/%s from node %d: %w", LeaseBucket, key, last.By, err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return false, 0, fmt.Errorf("cluster: node %d's incarnation %d is being recovered by node %d (claim %s/%s %s since %v); gave up waiting for it: %w",
				node, inc, last.By, LeaseBucket, key, last.State, last.At, ctx.Err())
		case <-tick.C:
			switch {
			case gone:
				// Expired or deleted, and this node's Create did not win (or did
				// not get through): again, until the claim's stream says otherwise.
				won, r, err := l.claim(ctx, node, inc, byInc)
				if err != nil || won {
					return won, r, err
				}
				continue
			case lastRev != 0 && last.State == ClaimReleased:
				// A take-over that did not get through (a timeout, an election).
				if took, r, err := takeOver("released by its holder"); took || err != nil {
					return took, r, err
				}
				continue
			case lastRev == 0 || last.State != ClaimRunning:
				continue
			}
			why, sure, err := l.orphaned(ctx, last)
			switch {
			case err != nil:
				// The bucket does not answer (an election, no quorum): what was
				// seen of the holder before says nothing of it after, when every
				// lease may have lapsed at once.
				silentAt = time.Time{}
				l.n.log.Debug().Err(err).Str("claim", key).Msg("claim's holder not judged: its lease not read")
				continue
			case why == "":
				silentAt = time.Time{}
				continue
			case !sure:
				// A lease missing or stale may be a bucket that was without a
				// leader: judged when it stays so for a whole TTL and the grace.
				if silentAt.IsZero() {
					silentAt = time.Now()
				}
				if time.Since(silentAt) < l.holderTTL(last.By)+leaseGrace {
					continue
				}
			}
			if took, r, err := takeOver(why); took || err != nil {
				return took, r, err
			}
		case m := <-w.C():
			meta, merr := m.Metadata()
			if merr != nil {
				continue
			}
			lastRev = meta.Sequence.Stream
			if _, put := leaseEntry(m); !put {
				// Expired or deleted: claim it afresh.
				last, gone = Claim{}, true
				won, r, err := l.claim(ctx, node, inc, byInc)
				if err != nil || won {
					return won, r, err
				}
				continue
			}
			gone = false
			if err := json.Unmarshal(m.Data(), &last); err != nil {
				return false, 0, fmt.Errorf("cluster: %s/%s: %w", LeaseBucket, key, err)
			}
			silentAt = time.Time{}
			switch {
			case last.State == ClaimDone:
				return false, 0, nil
			case last.By == me && last.ByIncarnation == byInc:
				return true, lastRev, nil // ours (a Create whose answer was lost)
			case node != me && last.By == node:
				return false, 0, nil // the dead node restarted and recovers itself
			case last.State == ClaimReleased:
				if took, r, err := takeOver("released by its holder"); took || err != nil {
					return took, r, err
				}
			case last.By == me:
				// An earlier incarnation of this node made it and died with it.
				if took, r, err := takeOver(fmt.Sprintf("made by this node's incarnation %d", last.ByIncarnation)); took || err != nil {
					return took, r, err
				}
			default:
				l.n.log.Info().Int("node", node).Uint64("incarnation", inc).Int("by", last.By).Msg("waiting for another node's recovery of this node to finish")
			}
		}
	}
}

// holderTTL is the TTL node's lease was last seen with (this node's when it was
// not seen, or its own TTL if longer): how long a holder's lease may be missing or
// stale, the bucket maybe without a leader, before its claim is taken over.
func (l *Lease) holderTTL(node int) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if h := l.seen[node]; h != nil {
		return max(h.ttl(), l.opts.TTL)
	}
	return l.opts.TTL
}

// orphaned says whether c's holder can no longer be recovering it, read from
// the leases bucket's leader: why is "" while its lease is alive under the
// incarnation that made the claim. sure is true when the holder's lease names
// another incarnation (it restarted); a lease missing, or not refreshed within
// TTL and the grace, is not sure by itself (the bucket may have been without a
// leader, and every lease with it).
func (l *Lease) orphaned(ctx context.Context, c Claim) (why string, sure bool, err error) {
	v, at, err := l.readLeader(ctx, leaseKey(c.By))
	if err != nil {
		return "", false, err
	}
	why, sure = judgeHolder(c, v, at, time.Now())
	return why, sure, nil
}

// judgeHolder is orphaned's judgement of claim c given its holder's lease v
// (nil for none) stored at at, seen at now: stale once not refreshed for its
// TTL (the one it carries) plus the grace.
func judgeHolder(c Claim, v *LeaseValue, at, now time.Time) (why string, sure bool) {
	var stale time.Duration
	if v != nil {
		stale = v.ttl() + leaseGrace
	}
	switch {
	case v == nil:
		return fmt.Sprintf("node %d holds no lease", c.By), false
	case c.ByIncarnation != 0 && v.Incarnation != c.ByIncarnation:
		return fmt.Sprintf("node %d restarted (incarnation %d, the claim's %d)", c.By, v.Incarnation, c.ByIncarnation), true
	case now.Sub(at) > stale:
		return fmt.Sprintf("node %d's lease not refreshed for %v", c.By, now.Sub(at).Round(time.Millisecond)), false
	}
	return "", false
}

// refresh republishes this node's lease with its TTL. When this node's own clock
// says that the lease may have lapsed (its last acknowledged refresh is older than
// the TTL: a pause of this process, refreshes that failed), the claim on this
// incarnation's recovery is read after the put, whether or not the bucket expired
// the lease (putLease reads it only then); a claim that cannot be read fails the
// refresh.
func (l *Lease) refresh(ctx context.Context) error {
	defer l.noteTried()
	v := l.self
	v.Refreshed = l.opts.Now().UTC()
	b, _ := json.Marshal(v)
	pctx, cancel := context.WithTimeout(ctx, l.opts.TTL/2)
	defer cancel()
	start := time.Now()
	l.mu.Lock()
	mayHaveLapsed := !l.lastOK.IsZero() && start.Sub(l.lastOK) >= l.ownTTL()
	l.mu.Unlock()
	rev, err := l.putLease(pctx, b)
	if err == nil && mayHaveLapsed {
		err = l.claimedMeanwhile(pctx)
	}
	if err != nil {
		l.mu.Lock()
		l.refreshFailed = true
		l.refreshErr = err
		l.mu.Unlock()
		l.noteFailed()
		return fmt.Errorf("cluster: refresh the lease of node %d: %w", v.Node, err)
	}
	l.failedSince.Store(0)
	l.mu.Lock()
	l.rev = rev
	l.lastOK = start // the TTL runs from about when the server stored it, no earlier than start
	l.okAt.Store(int64(start.Sub(l.epoch)))
	if l.refreshFailed || l.writableSince.IsZero() {
		l.writableSince = start
		l.refreshFailed = false
	}
	l.mu.Unlock()
	return nil
}

// leaseConflictTries bounds putLease's puts of one refresh: after elections a
// put whose acknowledgement was lost may still be stored between the read of
// the leader and the next put (seen 6 December 2026: one retry was not enough,
// the refreshes of a live node failed for a whole TTL and another node claimed
// its recovery).
const leaseConflictTries = 4

// putLease puts this node's lease value b by a compare-and-set on the last
// revision this node put. On a conflict it reads the lease from the bucket's
// leader: none (it expired while the bucket was unwritable) or this
// incarnation's own (an earlier put whose acknowledgement was lost) is put over
// again, up to leaseConflictTries puts within ctx; another process's means this
// node was usurped (usurped is set, and returned).
func (l *Lease) putLease(ctx context.Context, b []byte) (uint64, error) {
	l.mu.Lock()
	rev, usurped := l.rev, l.usurped
	l.mu.Unlock()
	if usurped != nil {
		return 0, usurped
	}
	key := leaseKey(l.n.cfg.Node)
	lapsed := false
	for try := 0; ; try++ {
		var opts []jetstream.PublishOpt
		if rev != 0 {
			opts = append(opts, jetstream.WithExpectLastSequencePerSubject(rev))
		}
		r, err := l.putTTL(ctx, key, b, l.opts.TTL, opts...)
		if err == nil && lapsed {
			// Put back after it lapsed: a survivor may have claimed this
			// incarnation's recovery meanwhile. It reads the lease after its
			// claim (see lapsed), this node the claim after its put, so one of
			// the two sees the other.
			if uerr := l.recoveredMeanwhile(ctx); errors.Is(uerr, ErrLeaseLost) {
				return 0, uerr
			}
		}
		if err == nil || !isConflict(err) || try >= leaseConflictTries-1 || ctx.Err() != nil {
			return r, err
		}
		data, seq, _, rerr := l.n.readLeader(ctx, LeaseBucket, key)
		if rerr != nil {
			return 0, errors.Join(err, rerr)
		}
		var v LeaseValue
		if data != nil && (json.Unmarshal(data, &v) != nil || v.Incarnation != l.self.Incarnation || v.Server != l.self.Server) {
			uerr := lostf("cluster: another process took node %d's lease (server %q, incarnation %d, started %v): cluster.node must be unique in the cluster; this process (server %q, incarnation %d) no longer holds it",
				l.n.cfg.Node, v.Server, v.Incarnation, v.Started.Format(time.RFC3339), l.self.Server, l.self.Incarnation)
			l.markLost(uerr)
			l.n.log.Error().Err(uerr).Msg("lease usurped; this node is not ready from now on")
			return 0, uerr
		}
		rev = seq // none (0, or the expiry's marker), or ours
		lapsed = data == nil
	}
}

// claimedMeanwhile is recoveredMeanwhile for a refresh after this node's own
// clock saw the lease lapse: a claim it cannot read (after tries until ctx ends)
// is an error, so that the refresh is not taken as acknowledged (Confirm waits on).
func (l *Lease) claimedMeanwhile(ctx context.Context) error {
	for {
		err := l.recoveredMeanwhile(ctx)
		if err == nil || errors.Is(err, ErrLeaseLost) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// recoveredMeanwhile reads, from the bucket's leader, the claim on this node's
// own incarnation: another node's means that the lease lapsed long enough for a
// survivor to settle (or to be settling) this incarnation's open transactions,
// which this process must then not go on with. It marks the lease lost for good
// (Held says so; the refreshes stop) and returns why, wrapping ErrLeaseLost. A
// claim it cannot read is not taken as one by putLease (the error it returns
// otherwise is for claimedMeanwhile).
func (l *Lease) recoveredMeanwhile(ctx context.Context) error {
	data, _, _, err := l.n.readLeader(ctx, LeaseBucket, claimKey(l.n.cfg.Node, l.self.Incarnation))
	if err != nil {
		return fmt.Errorf("cluster: read the claim on node %d's incarnation %d: %w", l.n.cfg.Node, l.self.Incarnation, err)
	}
	var c Claim
	if data == nil || json.Unmarshal(data, &c) != nil || c.By == l.n.cfg.Node {
		return nil
	}
	uerr := lostf("cluster: node %d's lease lapsed and node %d claimed the recovery of its incarnation %d (%s since %v): this process must not go on with its transactions; restart it",
		l.n.cfg.Node, c.By, l.self.Incarnation, c.State, c.At.Format(time.RFC3339))
	l.markLost(uerr)
	l.n.log.Error().Err(uerr).Msg("lease lost; this node is not ready from now on")
	return uerr
}

// markLost records that this node's lease is lost for good (why), once: Lost and
// Held say so from now on, and LostC's channel is closed.
func (l *Lease) markLost(why error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.usurped != nil {
		return
	}
	l.usurped = why
	l.lost.Store(true)
	close(l.lostC)
}

// LostC returns a channel closed once this node's lease is lost for good (Lost
// says why): another node claimed this incarnation's recovery after the lease
// lapsed while the process lived (a pause), or another process took the lease.
// Nothing brings such a lease back: the process must stop and be started again
// (the server drains and exits; see docs/cluster.md).
func (l *Lease) LostC() <-chan struct{} { return l.lostC }

// Fresh returns nil when this node's lease is known held now: its last
// acknowledged refresh is younger than the TTL less the margin Confirm uses (two
// atomic loads and a clock read), so that no other node can have claimed this
// incarnation's recovery yet. Otherwise it returns why: Lost's error (wrapping
// ErrLeaseLost) when the lease is lost for good, else how old the last
// acknowledged refresh is. Unlike Confirm it never waits, and it does not let a
// node whose refreshes fail go on: it is for work that can wait for a later
// try (writes and advices of the background loops, the store-and-forward
// deliveries), which must not act beside a survivor's recovery of this node
// after a pause of the process, nor while the node cannot tell.
func (l *Lease) Fresh() error {
	if l.lost.Load() {
		return l.Lost()
	}
	ttl := l.ownTTL()
	stale := ttl - min(confirmMargin, ttl/4)
	if age := time.Duration(int64(time.Since(l.epoch)) - l.okAt.Load()); age >= stale {
		return fmt.Errorf("cluster: node %d's lease last refreshed %v ago (TTL %v): not known held now", l.self.Node, age.Round(time.Millisecond), ttl)
	}
	return nil
}

// ownTTL is the TTL this node judges its own lease by (Fresh, Confirm, Held, and
// whether a refresh must read the claim on its incarnation): its own, or
// DefaultLeaseTTL when shorter and a peer of an earlier version, which judges
// every lease by it, was seen (capped). The lease's message keeps its own TTL.
func (l *Lease) ownTTL() time.Duration {
	if l.capped.Load() {
		return min(l.opts.TTL, DefaultLeaseTTL)
	}
	return l.opts.TTL
}

// lostError says why this node's lease is lost; it is ErrLeaseLost (errors.Is)
// without that error's text in its own.
type lostError struct{ msg string }

func (e *lostError) Error() string        { return e.msg }
func (e *lostError) Is(target error) bool { return target == ErrLeaseLost }

// lostf is a lostError of the formatted message.
func lostf(format string, args ...any) error {
	return &lostError{msg: fmt.Sprintf(format, args...)}
}

// noteFailed records a failed refresh attempt ending now (failedSince). One
// that ends longer after the attempt before it than a running refresh loop
// allows (liveGap: a pause of the process since) starts a new run of failures:
// the failures before the pause, and the pause, do not count as the refreshes
// failing for a TTL.
func (l *Lease) noteFailed() {
	now := int64(time.Since(l.epoch)) + 1
	if last := l.triedAt.Load(); last != 0 && now-last > l.liveGap() {
		l.failedSince.Store(now)
		return
	}
	l.failedSince.CompareAndSwap(0, now)
}

// liveGap is the longest time between the ends of two refresh attempts while
// the refresh loop runs: a tick's wait, an attempt's bound (TTL/2), and a
// margin for a loaded machine. A longer one means the process was paused.
func (l *Lease) liveGap() int64 {
	return int64(l.opts.Refresh + l.opts.TTL/2 + confirmMargin)
}

// noteTried wakes Confirm's waiters at the end of a refresh attempt.
func (l *Lease) noteTried() {
	l.triedAt.Store(int64(time.Since(l.epoch)) + 1)
	l.mu.Lock()
	close(l.tried)
	l.tried = make(chan struct{})
	l.mu.Unlock()
}

// Confirm returns nil when this node may go on with its transactions (start one,
// or finish one in flight): its lease is known to be held, its last acknowledged
// refresh younger than the TTL less a margin (a claim on this incarnation's
// recovery comes only once the lease has lapsed, a TTL after that refresh was
// stored, and a refresh after a lapse reads the claim first). That is two atomic
// loads and a clock read as long as the refreshes succeed. When the lease went
// stale with no refresh failing before (this process was paused: a GC pause, a
// VM migration), it waits until a refresh says (the refresh loop's next tick is
// due at once): nil once the lease is refreshed, an error wrapping ErrLeaseLost
// once it turns out lost; after the refreshes have failed for a TTL, nil (the node
// goes on, as before). When the refreshes were failing already before the lease
// went stale (the bucket without a quorum, seen live; the other nodes judge its
// outage as one of every lease and claim nothing for it), nil at once: such a
// node's journal is usually without a quorum too, and its requests are not slowed
// down further. Both hold only while the refresh loop runs (its last attempt
// ended within liveGap): failures before a pause of the process, and the pause
// itself, do not let the woken node pass before a refresh after the wake says
// (until 6 December 2026 one failed refresh before the pause did). When ctx
// ends while it waits, it returns an error wrapping ctx's cause (not
// ErrLeaseLost): the caller does not go on unconfirmed.
func (l *Lease) Confirm(ctx context.Context) error {
	ttl := l.ownTTL()
	stale := int64(ttl - min(confirmMargin, ttl/4))
	failing := int64(ttl)
	var bound *time.Timer
	for {
		if l.lost.Load() {
			return l.Lost()
		}
		now, ok := int64(time.Since(l.epoch)), l.okAt.Load()
		if now-ok < stale {
			return nil
		}
		// The failures count only while the refresh loop runs: after a pause
		// the failures before it (a stalling VM's) say nothing of the bucket
		// now, and the pause is no TTL of failures; the wake's refresh says.
		if f := l.failedSince.Load(); f != 0 && now-l.triedAt.Load() <= l.liveGap() && (f <= ok+stale || now-f >= failing) {
			return nil
		}
		l.mu.Lock()
		next := l.tried
		l.mu.Unlock()
		if bound == nil {
			bound = time.NewTimer(3 * l.opts.TTL) // a stopped lease tries no more
			defer bound.Stop()
		}
		select {
		case <-next:
		case <-bound.C:
			return nil
		case <-ctx.Done():
			// Fail closed: the caller gave up before a refresh said the lease is
			// held, so it may not go on (until 6 December 2026, nil).
			return fmt.Errorf("cluster: node %d's lease not confirmed (last refresh %v ago) before the caller's context ended: %w",
				l.self.Node, time.Duration(int64(time.Since(l.epoch))-l.okAt.Load()).Round(time.Millisecond), context.Cause(ctx))
		}
	}
}

// Lost returns why this node's lease is lost for good (another process took
// it, or a survivor recovered this incarnation after it lapsed), nil otherwise
// (a lease merely not refreshed lately is not lost: see Held). The node must
// then start no transaction. Cheap: an atomic load while the lease is not lost.
func (l *Lease) Lost() error {
	if !l.lost.Load() {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.usurped
}

// Held returns nil while this node's lease is known to be alive (its last
// acknowledged refresh is within the TTL), or says since when it is not:
// survivors may then be recovering this node's open transactions, so it must
// not go on with them (for /readyz, next to Node.Ready).
func (l *Lease) Held() error {
	l.mu.Lock()
	last, failed, ferr, usurped := l.lastOK, l.refreshFailed, l.refreshErr, l.usurped
	l.mu.Unlock()
	if usurped != nil {
		return usurped
	}
	if since, ttl := time.Since(last), l.ownTTL(); since >= ttl {
		why := ""
		if failed && ferr != nil {
			// The usual cause: the lease bucket has no JetStream quorum. Say so, as
			// Node.Ready may not have noticed yet (its view of the meta leader lags).
			why = fmt.Sprintf(" (JetStream did not store its refresh, no quorum?: %v)", ferr)
		}
		return fmt.Errorf("cluster: node %d's lease not refreshed for %v (TTL %v)%s: the other nodes may be recovering its transactions",
			l.self.Node, since.Round(time.Millisecond), ttl, why)
	}
	return nil
}

// putTTL puts key with a per-message TTL, which the KV API's Put cannot, and
// returns its revision; opts add expectations (a compare-and-set).
func (l *Lease) putTTL(ctx context.Context, key string, value []byte, ttl time.Duration, opts ...jetstream.PublishOpt) (uint64, error) {
	ack, err := l.n.js.Publish(ctx, "$KV."+LeaseBucket+"."+key, value, append(opts, jetstream.WithMsgTTL(ttl))...)
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

func (l *Lease) refreshLoop(ctx context.Context) {
	defer l.wg.Done()
	t := time.NewTicker(l.opts.Refresh)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := l.refresh(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			l.mu.Lock()
			usurped := l.usurped != nil
			l.mu.Unlock()
			if usurped {
				return // refreshing would fight the other process for the lease
			}
			if !failing {
				l.n.log.Warn().Err(err).Msg("lease refresh failed; retrying")
			}
			failing = true
			continue
		}
		if failing {
			l.n.log.Info().Msg("lease refreshed again")
		}
		failing = false
	}
}

// watch follows the node.* keys: a Put is a live lease; a delete marker is a
// lapsed one, whose recovery this node then tries to claim. The marker is the
// quick path; a sweep every Refresh is the safe one: the watcher's consumer
// lives on one server, and when that server is the one that died the watcher
// hears nothing until its follower notices the missing heartbeats and
// recreates it (2 s and more; 10 s and more with nats.go's KV watcher). A lease not heard of for TTL plus a grace is
// read from the bucket's leader (never a replica, which may lag) and judged by
// the server's timestamp of its last refresh.
func (l *Lease) watch(ctx context.Context, w *ordered.Follower) {
	defer l.wg.Done()
	defer w.Stop()
	d := &deaths{running: map[int]chan struct{}{}}
	defer d.calls.Wait()
	sweep := time.NewTicker(l.opts.Refresh)
	defer sweep.Stop()
	for {
		var m jetstream.Msg
		select {
		case <-ctx.Done():
			return
		case <-sweep.C:
			l.sweep(ctx, d)
			continue
		case m = <-w.C():
		}
		key, put := leaseEntry(m)
		node, err := strconv.Atoi(strings.TrimPrefix(key, "node."))
		if err != nil {
			continue
		}
		if put {
			var v LeaseValue
			if err := json.Unmarshal(m.Data(), &v); err != nil {
				l.n.log.Warn().Str("key", key).Err(err).Msg("unreadable lease ignored")
				continue
			}
			l.alive(node, v)
			continue
		}
		l.lapsed(ctx, d, node, "its lease's delete marker")
	}
}

// The leases bucket's stream and the prefix of its keys' subjects.
const (
	leaseStream   = "KV_" + LeaseBucket
	leaseSubjects = "$KV." + LeaseBucket + "."
)

// leaseEntry reads a message of the leases bucket's stream as nats.go's KV
// watcher does: its key, and whether it is a value rather than a delete, a purge
// (KV-Operation) or the server's marker of a key that expired (Nats-Marker-Reason).
func leaseEntry(m jetstream.Msg) (key string, put bool) {
	h := m.Headers()
	return strings.TrimPrefix(m.Subject(), leaseSubjects), h.Get("KV-Operation") == "" && h.Get(jetstream.MarkerReasonHeader) == ""
}

// deaths are the watch's recoveries under way: one at a time per dead node.
type deaths struct {
	running map[int]chan struct{}
	calls   sync.WaitGroup
}

// leaseGrace is added to the TTL before the sweep reads a silent lease from
// the leader: the server's marker normally comes first, and the survivor's
// clock may be a little ahead of the leader's.
const leaseGrace = time.Second

// alive records a live lease v of node.
func (l *Lease) alive(node int, v LeaseValue) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.seen[node]
	if h == nil || h.Incarnation != v.Incarnation {
		if node != l.n.cfg.Node && (h == nil || h.TTLSeconds != v.TTLSeconds) {
			l.noteTTL(node, v)
		}
		h = &LeaseHolder{Node: node}
		l.seen[node] = h
	}
	h.Server, h.Incarnation, h.Started, h.Refreshed, h.Alive, h.Compacts = v.Server, v.Incarnation, v.Started, v.Refreshed, true, v.Compacts
	h.TTLSeconds = v.TTLSeconds
	h.DestroysKeys, h.QRRequests, h.Stopped = v.DestroysKeys, v.QRRequests, v.Stopped
	h.heard = time.Now()
}

// noteTTL logs, when this node first sees node's lease (or sees its TTL
// change), a TTL other than this node's: harmless between nodes of this version
// (each lease is judged by the TTL it carries), but the operator should know that
// the nodes take over from each other at different speeds. A lease that carries
// no TTL is a version's before 6 December 2026, which judges every lease by
// DefaultLeaseTTL: with a longer TTL here it could claim this node's recovery
// while this node still serves, so this node caps the TTL it judges its own lease
// by (capped, ownTTL) from then on, and says so at error level. l.mu is held.
func (l *Lease) noteTTL(node int, v LeaseValue) {
	own := l.opts.TTL
	switch {
	case v.TTLSeconds == 0 && own > DefaultLeaseTTL:
		l.capped.Store(true)
		l.n.log.Error().Int("node", node).Dur("ttl", own).Dur("their_ttl", DefaultLeaseTTL).
			Msgf("node %d runs a version that judges every node's lease by the default TTL (%v), not by the TTL the lease carries: it may declare this node dead after %v; this node now judges its own lease by %v too (goes unready, and stops its transactions, as soon as that peer could take over), so cluster.lease_ttl %v tolerates no longer cuts: set it back to %v until every node is upgraded, then restart the nodes",
				node, DefaultLeaseTTL, DefaultLeaseTTL, DefaultLeaseTTL, own, DefaultLeaseTTL)
	case v.ttl() != own:
		l.n.log.Warn().Int("node", node).Dur("ttl", own).Dur("their_ttl", v.ttl()).
			Msgf("node %d's lease TTL (cluster.lease_ttl) differs from this node's: each node's lease is judged by its own TTL, so this is safe, but the nodes survive cuts of different lengths and are taken over at different speeds", node)
	}
}

// sweep reads, from the bucket's leader, every other node's lease not heard
// of for its TTL plus leaseGrace.
func (l *Lease) sweep(ctx context.Context, d *deaths) {
	var silent []int
	l.mu.Lock()
	if l.refreshFailed || l.writableSince.IsZero() {
		// No lapse could be judged now; a stale lease read now would only be
		// marked heard (below), which would put its judgement off by another
		// TTL plus the grace once this node's refreshes have settled.
		l.mu.Unlock()
		return
	}
	for node, h := range l.seen {
		if node != l.n.cfg.Node && h.Alive && !l.unsettledLocked(h.ttl()) && time.Since(h.heard) > h.ttl()+leaseGrace {
			silent = append(silent, node)
		}
	}
	l.mu.Unlock()
	for _, node := range silent {
		v, at, err := l.readLeader(ctx, leaseKey(node))
		switch {
		case err != nil:
			// No leader (no quorum): nobody can recover anything now; the
			// next sweep tries again.
			l.n.log.Debug().Err(err).Int("node", node).Msg("lease sweep: leader read failed")
		case v == nil:
			l.lapsed(ctx, d, node, "no lease at the bucket's leader")
		case time.Since(at) > v.ttl()+leaseGrace:
			l.alive(node, *v) // the same incarnation, or a newer one that stopped too
			l.lapsed(ctx, d, node, fmt.Sprintf("its last refresh stored %v ago", time.Since(at).Round(time.Millisecond)))
		default:
			l.alive(node, *v) // alive: this node's watcher has fallen behind
		}
	}
}

// readLeader reads a lease key from the bucket's stream leader (Node.readLeader).
// It returns nil for no value (none, or a delete marker), with the server's time
// of the message.
func (l *Lease) readLeader(ctx context.Context, key string) (*LeaseValue, time.Time, error) {
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	data, _, at, err := l.n.readLeader(rctx, LeaseBucket, key)
	if err != nil || data == nil {
		return nil, at, err
	}
	var v LeaseValue
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, time.Time{}, fmt.Errorf("lease %s: %w", key, err)
	}
	return &v, at, nil
}

// leaderReadWait bounds one read from a stream leader. A message get that
// reaches the cluster while the stream has no leader (an election after its
// leader's server died) is answered by nobody, ever: the servers ignore what
// they do not lead, and they are subscribed, so it is not "no responders"
// either. A caller's context may be minutes long (a node's start), and one
// unbounded request then waited all of it for an answer that never came.
const leaderReadWait = 2 * time.Second

// readLeader reads key's last message in KV bucket from the bucket's stream
// leader (the JetStream API's message get, which replicas do not answer, unlike
// the direct get a KV Get uses). It returns the value (nil for none: no key, a
// delete marker, or no bucket), the key's revision and the server's time of the
// message. One read waits at most leaderReadWait (context.DeadlineExceeded
// then, which transient takes for a read to try again).
func (n *Node) readLeader(ctx context.Context, bucket, key string) ([]byte, uint64, time.Time, error) {
	m, err := n.readLeaderMsg(ctx, bucket, key)
	if err != nil || m == nil {
		return nil, 0, time.Time{}, err
	}
	if len(m.hdrs) > 0 && (strings.Contains(string(m.hdrs), "KV-Operation") || strings.Contains(string(m.hdrs), "Nats-Marker-Reason")) {
		return nil, m.seq, m.time, nil
	}
	if m.data == nil {
		m.data = []byte{}
	}
	return m.data, m.seq, m.time, nil
}

// leaderMsg is a key's last message as the stream's leader answers it
// (readLeaderMsg).
type leaderMsg struct {
	seq  uint64
	data []byte
	hdrs []byte // the headers, encoded (nats.DecodeHeadersMsg)
	time time.Time
}

// readLeaderMsg is readLeader's message itself, headers included, delete
// markers not told apart; nil, nil when the key (or the bucket) has none.
func (n *Node) readLeaderMsg(ctx context.Context, bucket, key string) (*leaderMsg, error) {
	req, _ := json.Marshal(map[string]string{"last_by_subj": "$KV." + bucket + "." + key})
	ctx, cancel := context.WithTimeout(ctx, leaderReadWait)
	defer cancel()
	msg, err := n.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET.KV_"+bucket, req)
	if err != nil {
		return nil, err
	}
	var resp struct {
		Error *struct {
			Code        int    `json:"code"`
			Description string `json:"description"`
		} `json:"error"`
		Message *struct {
			Seq  uint64    `json:"seq"`
			Data []byte    `json:"data"`
			Hdrs []byte    `json:"hdrs"`
			Time time.Time `json:"time"`
		} `json:"message"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return nil, fmt.Errorf("message get of %s in %s: %w", key, bucket, err)
	}
	if resp.Error != nil {
		if resp.Error.Code == 404 { // no such key, or no such bucket
			return nil, nil
		}
		return nil, fmt.Errorf("message get of %s in %s: %d %s", key, bucket, resp.Error.Code, resp.Error.Description)
	}
	if resp.Message == nil {
		return nil, fmt.Errorf("message get of %s in %s: empty answer", key, bucket)
	}
	return &leaderMsg{seq: resp.Message.Seq, data: resp.Message.Data, hdrs: resp.Message.Hdrs, time: resp.Message.Time}, nil
}

// unsettledLocked says that the lapse of a lease of TTL ttl (the holder's, which
// it carries) may not be judged yet: this node's own refreshes are failing, or
// succeeded again less than ttl plus the grace ago (or never yet): the holder
// has not had a whole TTL of its own to refresh since. l.mu is held.
func (l *Lease) unsettledLocked(ttl time.Duration) bool {
	ws := l.writableSince
	return l.refreshFailed || ws.IsZero() || time.Since(ws) < ttl+leaseGrace
}

// lapsed handles node's lease lapsing: when this node saw an incarnation of
// it alive, it claims that incarnation's recovery and, if it wins, runs
// OnDead. An incarnation a marker alone names is not claimed: it may already
// be the restarted node's (it bumps inc.N before publishing its lease).
func (l *Lease) lapsed(ctx context.Context, d *deaths, node int, why string) {
	l.mu.Lock()
	ttl := l.opts.TTL
	if h := l.seen[node]; h != nil {
		ttl = h.ttl()
	}
	if l.unsettledLocked(ttl) {
		// This node's own refreshes failed until lately: the bucket was without
		// a leader (a killed server held it; the election takes 4 to 9 s) or
		// without a quorum, and every node's refreshes failed alike. A lease's
		// silence means nothing until the others had a whole TTL to refresh
		// since; the sweep judges it again then.
		l.mu.Unlock()
		l.n.log.Debug().Int("node", node).Str("seen", why).Msg("lease lapse not judged yet: the bucket was not writable until lately")
		return
	}
	h := l.seen[node]
	alive := h != nil && h.Alive
	var inc uint64
	if alive {
		h.Alive = false
		inc = h.Incarnation
	}
	l.mu.Unlock()
	if !alive {
		return
	}
	l.n.log.Warn().Int("node", node).Uint64("incarnation", inc).Str("seen", why).Msg("a node's lease lapsed")
	if node == l.n.cfg.Node {
		return // our own lease lapsed (we could not refresh it): we are alive; the refresher puts it back
	}
	// The claim and the recovery run apart from the watch, one at a time
	// per dead node, so that a slow claim (a bucket electing a leader) or
	// a long recovery does not hold up the other nodes' leases.
	prev := d.running[node]
	done := make(chan struct{})
	d.running[node] = done
	d.calls.Add(1)
	go func() {
		defer d.calls.Done()
		defer close(done)
		if prev != nil {
			<-prev
		}
		won, rev, err := l.claim(ctx, node, inc, l.self.Incarnation)
		if err == nil && !won {
			// Another survivor won, or the dead node restarted and claimed
			// it itself: wait, to take it over should that survivor die or
			// give it up before it is done.
			won, rev, err = l.await(ctx, node, inc, l.self.Incarnation)
		}
		if err != nil {
			if ctx.Err() == nil {
				l.n.log.Error().Err(err).Int("node", node).Msg("claim a dead node's recovery")
			}
			return
		}
		if !won {
			return
		}
		if l.aliveAgain(ctx, node, inc, rev) {
			return
		}
		l.mu.Lock()
		h.RecoveredBy = l.n.cfg.Node
		l.mu.Unlock()
		l.n.log.Warn().Int("node", node).Uint64("incarnation", inc).Msg("recovering a dead node's open transactions")
		l.recover(ctx, node, inc, rev)
	}()
}

// aliveAgain reads, after this node won the claim on node's incarnation inc (at
// revision rev), that incarnation's lease from the bucket's leader: refreshed
// within the TTL, the node was not dead but paused or cut off, and has put its
// lease back; the claim is then deleted (so that a later death of the same
// incarnation can be claimed) and the recovery not run. The node, for its part,
// reads the claim after it puts its lease back (recoveredMeanwhile): of the two,
// one sees the other.
func (l *Lease) aliveAgain(ctx context.Context, node int, inc, rev uint64) bool {
	v, at, err := l.readLeader(ctx, leaseKey(node))
	if err != nil || v == nil || v.Incarnation != inc || time.Since(at) > v.ttl() {
		return false
	}
	var opts []jetstream.KVDeleteOpt
	if rev != 0 {
		opts = append(opts, jetstream.LastRevision(rev))
	}
	if derr := l.kv.Delete(ctx, claimKey(node, inc), opts...); derr != nil {
		l.n.log.Error().Err(derr).Int("node", node).Uint64("incarnation", inc).Msg("a node whose recovery this node claimed is alive again; its claim not deleted")
	}
	l.mu.Lock()
	if h := l.seen[node]; h != nil && h.Incarnation == inc {
		h.Alive, h.heard = true, time.Now()
	}
	l.mu.Unlock()
	l.n.log.Warn().Int("node", node).Uint64("incarnation", inc).Msg("a node whose lease lapsed put it back before its recovery began; not recovered")
	return true
}

// recover runs OnDead for node's incarnation inc and marks the claim, this
// node's at revision rev (0: not known), done; or released when OnDead fails,
// so that whoever waits for it takes it over.
func (l *Lease) recover(ctx context.Context, node int, inc, rev uint64) {
	state := ClaimDone
	if l.opts.OnDead != nil {
		if err := l.opts.OnDead(ctx, node); err != nil {
			l.n.log.Error().Err(err).Int("node", node).Uint64("incarnation", inc).Msg("recovery of a dead node failed; its claim released")
			state = ClaimReleased
		}
	}
	c := Claim{Node: node, Incarnation: inc, By: l.n.cfg.Node, ByIncarnation: l.self.Incarnation, State: state, At: l.opts.Now().UTC()}
	b, _ := json.Marshal(c)
	var opts []jetstream.PublishOpt
	if rev != 0 {
		// Unless someone took it over meanwhile (this node's lease lapsed).
		opts = append(opts, jetstream.WithExpectLastSequencePerSubject(rev))
	}
	key := claimKey(node, inc)
	// A stop may have ended ctx (and so OnDead): the claim's new state still goes.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if _, err := l.putTTL(pctx, key, b, l.opts.ClaimTTL, opts...); err != nil {
		l.n.log.Error().Err(err).Str("claim", key).Str("state", state).Msg("mark a recovery claim")
	}
}

// recoveredBy reads the claim on node's incarnation inc: the node that recovered
// (or recovers) it, 0 when no claim is there (none yet, or its TTL ended).
func (l *Lease) recoveredBy(ctx context.Context, node int, inc uint64) int {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	e, err := l.kv.Get(ctx, claimKey(node, inc))
	if err != nil {
		return 0
	}
	var c Claim
	if json.Unmarshal(e.Value(), &c) != nil {
		return 0
	}
	return c.By
}

// Holders are the leases this node has seen, by node number.
func (l *Lease) Holders() []LeaseHolder {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]LeaseHolder, 0, len(l.seen))
	for _, h := range l.seen {
		out = append(out, *h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}

// leaseStopWait bounds Stop's wait for the lease's goroutines once they are told to
// stop: a node's shutdown must end even if one of them does not.
var leaseStopWait = 10 * time.Second

// Stop stops refreshing (the lease then lapses after its TTL, unless the node
// restarts within it) and watching, and waits for a running OnDead to return, at
// most leaseStopWait: past it, it logs the stacks of the goroutines that have not
// returned and returns without them (a recovery of another node cut short leaves
// its claim running, as a crash in the middle of it would).
func (l *Lease) Stop() {
	if l.cancel != nil {
		l.cancel()
	}
	done := make(chan struct{})
	go func() {
		l.wg.Wait()
		close(done)
	}()
	t := time.NewTimer(leaseStopWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		l.n.log.Error().Str("goroutines", ownStacks(buf)).
			Msgf("lease: its goroutines did not stop within %v of the stop; stopping without them", leaseStopWait)
	}
	if l.cancel == nil || l.Lost() != nil {
		return
	}
	// The last put says the process stopped, so that its restart need not wait
	// to tell it from a live process (refuseLive) and, restarted within the TTL,
	// claims its incarnation before the survivors would. Best effort: without a
	// quorum, the restart waits as after a crash.
	v := l.self
	v.Refreshed, v.Stopped = l.opts.Now().UTC(), true
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := l.putLease(ctx, b); err != nil {
		l.n.log.Debug().Err(err).Msg("lease: its stop not recorded")
	}
}

// ownStacks keeps, of a dump of every goroutine's stack, those running this
// package's code.
func ownStacks(dump []byte) string {
	var keep []string
	for g := range strings.SplitSeq(string(dump), "\n\n") {
		if strings.Contains(g, "/switch/cluster.") {
			keep = append(keep, g)
		}
	}
	return strings.Join(keep, "\n\n")
}
