package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/dukpt"
	"github.com/switchyard/switchyard/internal/boundfile"
	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/keys"
	"github.com/switchyard/switchyard/switch/api"
	"github.com/switchyard/switchyard/switch/cluster"
	"github.com/switchyard/switchyard/switch/cluster/cjournal"
	"github.com/switchyard/switchyard/switch/cluster/jsaf"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/metrics"
	"github.com/switchyard/switchyard/switch/pipeline"
	"github.com/switchyard/switchyard/switch/registry"
)

// clusterStartTimeout bounds how long Open waits for JetStream (a quorum of the
// cluster's servers) before it gives up: nodes started together wait for each other.
const clusterStartTimeout = 2 * time.Minute

// clusterNode is what a node of a cluster adds to the switch (docs/cluster.md): the
// JetStream connection (or embedded server), the replicated journal, the ordered log
// of the shared stores with a follower per store, the node's lease, and the cluster's
// metrics. A switch that runs alone has none (Server.cl is nil).
// Both journals the pipeline runs on give a terminal's batch (0500) the index of
// late changes: without it a batch would leave out the records approved or journaled
// long after they were received.
var (
	_ pipeline.LateScanner = (*journal.Store)(nil)
	_ pipeline.LateScanner = (*cjournal.Journal)(nil)
)

type clusterNode struct {
	cfg      cluster.Config
	node     *cluster.Node
	state    *cluster.StateLog
	journal  *cjournal.Journal
	applied  *cluster.Progress             // the appliers' positions, for imports (appliedTopic)
	sharedMu sync.Mutex                    // guards followed
	followed []followed                    // the shared stores this node follows
	lease    atomic.Pointer[cluster.Lease] // set once taken, read by /readyz
	metrics  *cluster.Metrics
	log      zerolog.Logger
	stopSeen func() // ends shareSeen

	// A refresh of the merchant profiles by hand, shared (shareProfileRefresh).
	askProfiles  func(end time.Time) error // nil: not shared
	stopProfiles func()

	// stateConsumers' limits (the defaults below; shorter in tests), and when
	// ready last found JetStream or the journal's applier wanting (unix ns).
	stateWithout  time.Duration
	journalHolder time.Duration
	jsWanting     atomic.Int64
}

// A shared store's follower without a consumer of the STATE stream for
// stateWithoutConsumer, whose last attempt JetStream refused outright (an API
// error of the 4xx kind: a consumer limit, a stream gone; not a timeout, no
// responders or a 503, which say that the STATE stream's leader or the quorum is
// missing, on every node alike, and that no commit reaches any node either),
// while the journal's applier has held its own consumer for journalConsumerHeld
// and /readyz's JetStream checks have passed as long, makes the node not ready:
// the other nodes' changes to that store (a terminal suspended, a key retired)
// would not reach it. The follower asks for a consumer every 2 to 12 s
// (switch/cluster/ordered), so 30 s is several refused attempts.
const (
	stateWithoutConsumer = 30 * time.Second
	journalConsumerHeld  = 15 * time.Second
)

// startCluster starts (or connects to) JetStream and waits for a quorum.
func (s *Server) startCluster(cfg cluster.Config) (*clusterNode, error) {
	ctx, cancel := context.WithTimeout(context.Background(), clusterStartTimeout)
	defer cancel()
	clog := s.log.With().Str("component", "cluster").Logger()
	n, err := cluster.Start(ctx, cfg, cluster.Options{Logger: clog})
	if err != nil {
		return nil, err
	}
	c := &clusterNode{cfg: cfg, node: n, log: clog, stateWithout: stateWithoutConsumer, journalHolder: journalConsumerHeld}
	clog.Info().Int("node", cfg.Node).Str("mode", cfg.Mode).Msg("waiting for JetStream (a quorum of the cluster's servers)")
	if err := n.WaitJetStream(ctx); err != nil {
		_ = n.Close()
		return nil, fmt.Errorf("cluster: node %d: JetStream not available within %s: %w", cfg.Node, clusterStartTimeout, err)
	}
	if err := c.retry("state log", func(ctx context.Context) (err error) {
		c.state, err = n.StateLog(ctx)
		return err
	}); err != nil {
		_ = n.Close()
		return nil, err
	}
	return c, nil
}

// clusterCertificates sets the expiry of the cluster's TLS certificates in the
// metrics (switchyard_tls_certificate_expiry_timestamp_seconds): the embedded
// server's certificate and CAs, or the client certificate and CAs of an external
// cluster. They are read from their files once the node has started with them,
// which it did moments before (nats-server and nats.go load them themselves); a
// file that cannot be read now is logged, and the start goes on.
func (s *Server) clusterCertificates(cfg cluster.Config) {
	var files []struct{ use, path string }
	add := func(use, path string) {
		if path != "" {
			files = append(files, struct{ use, path string }{use, path})
		}
	}
	switch cfg.Mode {
	case cluster.ModeEmbedded:
		add(metrics.CertUseCluster, cfg.Embedded.TLS.CertFile)
		add(metrics.CertUseClusterCA, cfg.Embedded.TLS.CAFile)
	case cluster.ModeExternal:
		add(metrics.CertUseNATSClient, cfg.External.TLSCertFile)
		add(metrics.CertUseNATSCA, cfg.External.TLSCAFile)
	}
	for _, f := range files {
		data, err := boundfile.Read(f.path, boundfile.MaxPEMBytes)
		if err != nil {
			s.log.Warn().Err(err).Str("use", f.use).Msg("cluster: certificate file not read again for its expiry metric")
			continue
		}
		s.Metrics.CertificatesLoaded(f.use, "", metrics.ParseCertificatesPEM(data))
	}
}

// retry runs fn until it succeeds or clusterStartTimeout has passed, each try with
// a short deadline (cluster.TryWait: 2 s, growing to 10 s): at a cluster's start,
// requests to streams and buckets whose leaders are being elected go unanswered
// ("no responders", timeouts) for a few seconds, and a fixed 10 s try made a
// node's start wait 10 s for nothing in a third of the starts. A journal written by a newer version (cjournal.ErrNewerFormat) is not
// tried again: the node must be upgraded; nor a store whose next commits were
// purged (cluster.ErrCommitsPurged): the node must be started again, which
// restores the store's snapshot; nor a store's commit this version cannot read
// (cluster.ErrNewerCommit): the node must be upgraded; nor a lease refused
// because another process runs as this node (cluster.ErrNodeRunning) or another
// node under this server name (cluster.ErrServerNameTaken): the configuration
// must be mended.
func (c *clusterNode) retry(what string, fn func(ctx context.Context) error) error {
	deadline := time.Now().Add(clusterStartTimeout)
	for try := 0; ; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), cluster.TryWait(try))
		err := fn(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || errors.Is(err, cjournal.ErrNewerFormat) || errors.Is(err, cluster.ErrCommitsPurged) ||
			errors.Is(err, cluster.ErrNodeRunning) || errors.Is(err, cluster.ErrServerNameTaken) || errors.Is(err, cluster.ErrNewerCommit) {
			return fmt.Errorf("%s: %w", what, err)
		}
		c.log.Warn().Err(err).Str("what", what).Msg("cluster not answering yet; trying again")
		time.Sleep(250 * time.Millisecond) // a pause between tries, not a synchronization
	}
}

// rrnPrefix is the digit this node's RRNs start with ("" alone).
func (c *clusterNode) rrnPrefix() string {
	if c == nil {
		return ""
	}
	return strconv.Itoa(c.cfg.Node)
}

// storeLog returns the ordered log of a shared store (nil alone, so that the store
// runs on Badger only).
func (c *clusterNode) storeLog(name string) (*cluster.StoreLog, error) {
	if c == nil {
		return nil, nil
	}
	if _, ok := findShared(name); !ok {
		return nil, fmt.Errorf("cluster: store %q is not among the shared stores (server.sharedStores), so its snapshot would not be restored", name)
	}
	return c.state.Store(name)
}

// follow makes r follow its store's log (the other nodes' commits) and waits until it
// has caught up with what the log held.
func (c *clusterNode) follow(l *cluster.StoreLog, r statelog.Replica) error {
	if c == nil || l == nil {
		return nil
	}
	f := l.Follow(context.Background(), badgerBusy{r})
	c.sharedMu.Lock()
	c.followed = append(c.followed, followed{log: l, r: r, f: f})
	c.sharedMu.Unlock()
	return c.retry("catch up", func(ctx context.Context) error {
		err := l.CatchUp(ctx, r)
		if ferr := f.Err(); err != nil && (errors.Is(ferr, cluster.ErrCommitsPurged) || errors.Is(ferr, cluster.ErrNewerCommit)) {
			// Compacted between restoreStores and now: a restart restores. Or a
			// commit of a newer version: only an upgrade mends it.
			return ferr
		}
		return err
	})
}

// badgerBusy is a Replica whose ApplyRemote says statelog.ErrBusy where Badger
// refused the write because it blocks writes for a moment (a DropPrefix flushing its
// memtables: the start's clean-up of stored text, compactAway), so that the follower
// tries again at once and quietly instead of logging an error.
type badgerBusy struct{ statelog.Replica }

func (b badgerBusy) ApplyRemote(rev uint64, c statelog.Commit) error {
	err := b.Replica.ApplyRemote(rev, c)
	if errors.Is(err, badger.ErrBlockedWrites) {
		return fmt.Errorf("%w: %w", statelog.ErrBusy, err)
	}
	return err
}

// asLog turns a possibly nil *StoreLog into a statelog.Log that is nil too (a typed
// nil pointer in an interface would not be).
func asLog(l *cluster.StoreLog) statelog.Log {
	if l == nil {
		return nil
	}
	return l
}

// nodeNumber is the node's number in the cluster (0 on a single node).
func (c *clusterNode) nodeNumber() int {
	if c == nil {
		return 0
	}
	return c.cfg.Node
}

// catchUp is the CatchUp option of a store on l (nil alone).
func catchUp(l *cluster.StoreLog) func(context.Context, statelog.Replica) error {
	if l == nil {
		return nil
	}
	return l.CatchUp
}

// openJournal opens the replicated journal over the node's local one; every other
// node's record versions are applied to the local journal and handed to onRemote.
func (c *clusterNode) openJournal(local *journal.Store, s *Server, onRemote func(rec, prev *journal.Record, latest cjournal.Latest)) error {
	err := c.retry("journal", func(ctx context.Context) (err error) {
		c.journal, err = cjournal.Open(ctx, c.node, local, s.db, cjournal.Options{Node: c.cfg.Node, Replicas: c.cfg.Replicas, GroupPause: zeroNone(c.cfg.Pause()), ShedAfter: zeroNone(c.cfg.Shed()),
			OnRemote: onRemote, OnRestored: s.onRestoredRecord, BeforeFlush: s.syncDUKPT, ImportWait: c.importWait, Fence: c.fence,
			Logger: c.log.With().Str("part", "journal").Logger()})
		return err
	})
	if err != nil {
		return err
	}
	c.applied, err = c.node.ShareProgress(appliedTopic, func() uint64 {
		applied, _ := c.journal.Position()
		return applied
	})
	if err != nil {
		return fmt.Errorf("share the applier's position: %w", err)
	}
	return nil
}

// LockMerchant takes merchant mid's cluster-wide lock for the QR desk's checks of its
// limits (merchantLocker; cjournal.Journal.LockMerchant), and for the pipeline's card
// purchases near those limits (pipeline.MerchantLocker). Before the cluster journal
// is open it fails: no payment is checked without it.
func (c *clusterNode) LockMerchant(ctx context.Context, mid string) (unlock, keep func(), err error) {
	if c.journal == nil {
		return nil, nil, fmt.Errorf("merchant %s: the cluster journal is not open: %w", mid, journal.ErrUnavailable)
	}
	return c.journal.LockMerchant(ctx, mid)
}

// appliedTopic is the broadcast topic of the journal appliers' positions.
const appliedTopic = "applied"

// importWait returns once this node's applier and every other live node's (by
// their leases) have applied the journal stream's message at seq, with their
// numbers: an import of a single switch's journal goes at their pace
// (cjournal.Options.ImportWait).
func (c *clusterNode) importWait(ctx context.Context, seq uint64) ([]int, error) {
	// This node's applier, for as long as it moves.
	for {
		before, _ := c.journal.Position()
		wctx, cancel := context.WithTimeout(ctx, importStall)
		err := c.journal.WaitApplied(wctx, seq)
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil || wctx.Err() == nil {
			return nil, fmt.Errorf("this node (%d): %w", c.cfg.Node, err)
		}
		if after, _ := c.journal.Position(); after == before {
			return nil, fmt.Errorf("%w: this node's (%d) applier stood at %d for %s", cjournal.ErrImportBehind, c.cfg.Node, after, importStall)
		}
	}
	live := func() []int {
		nodes := []int{c.cfg.Node}
		if l := c.currentLease(); l != nil {
			for _, h := range l.Holders() {
				if h.Alive && h.Node != c.cfg.Node {
					nodes = append(nodes, h.Node)
				}
			}
		}
		slices.Sort(nodes)
		return nodes
	}
	if c.applied == nil {
		return []int{c.cfg.Node}, nil
	}
	err := c.applied.WaitAll(ctx, live, seq, importStall)
	if errors.Is(err, cluster.ErrStalled) {
		return nil, fmt.Errorf("%w: %w", cjournal.ErrImportBehind, err)
	}
	if err != nil {
		return nil, err
	}
	// The nodes live now: one whose lease lapsed during the wait applies the import
	// when it comes back.
	return live(), nil
}

// importStall is how long an import waits for an applier that does not move (a
// node stuck, or one running a version that does not answer the broadcast) before
// it stops (cjournal.ErrImportBehind).
const importStall = 2 * time.Minute

// safAckWait is how long an advice a node took stays with it without news: a node
// killed mid-send gives its advices back to the survivors after it (they go as
// repeats). A slow send keeps its advice by reporting progress.
const safAckWait = 10 * time.Second

// safPublishTimeout bounds the enqueueing of an advice: longer than a stream's
// leader election after a kill (4 to 9 s), so that a reversal owed is not given up
// for one. It delays only answers that are already failures (91, reversals).
const safPublishTimeout = 12 * time.Second

// openClusterQueue opens the store-and-forward queue on JetStream, shared by every
// node.
func (s *Server) openClusterQueue() (*jsaf.Queue, error) {
	c, log := s.cl, s.log.With().Str("component", "saf").Logger()
	var q *jsaf.Queue
	err := c.retry("store-and-forward queue", func(ctx context.Context) (err error) {
		q, err = jsaf.Open(ctx, c.node, jsaf.Options{Replicas: c.cfg.Replicas, AckWait: safAckWait, PublishTimeout: safPublishTimeout, ParkAfter: s.cfg.SAF.ParkAfter, Logger: log,
			Fence: c.held})
		return err
	})
	return q, err
}

// startLease takes this node's lease: if a survivor is still settling what this
// node's last run left open, it waits for it first (so that the start-up recovery
// that follows never races it). onDead settles another node's open transactions.
func (c *clusterNode) startLease(onDead func(ctx context.Context, node int, since time.Time) error) error {
	refresh, ttl := c.cfg.LeaseTimes() // cluster.lease_refresh, cluster.lease_ttl
	opts := cluster.LeaseOptions{Refresh: refresh, TTL: ttl, OnDead: func(ctx context.Context, node int) error {
		// The dead incarnation's records are those since it started: what came
		// before was settled when it started (by itself, or by a survivor then).
		l := c.currentLease()
		if l == nil {
			// Close has taken the lease and waits, in Stop, for this call.
			return fmt.Errorf("recover node %d: this node is stopping", node)
		}
		since := time.Time{}
		for _, h := range l.Holders() {
			if h.Node == node && !h.Started.IsZero() {
				since = h.Started.Add(-time.Minute)
			}
		}
		return onDead(ctx, node, since)
	}}
	// The wait for a survivor still settling this node's last run is bounded by
	// the start timeout, not by one try's.
	return c.retry("lease", func(context.Context) (err error) {
		ctx, cancel := context.WithTimeout(context.Background(), clusterStartTimeout)
		defer cancel()
		l, err := c.node.StartLease(ctx, opts)
		if err == nil {
			c.lease.Store(l)
		}
		return err
	})
}

// settleCatchUp bounds how long a settlement waits for the local journal to catch up
// with the cluster's stream.
const settleCatchUp = 10 * time.Second

// caughtUp waits (up to settleCatchUp) until the local journal holds every record the
// cluster's stream held when it was called, so that a settlement made on this node
// counts every node's transactions, not only those its applier had reached (right
// after a failover it may be seconds behind). Alone (c nil) there is nothing to wait
// for.
func (c *clusterNode) caughtUp(ctx context.Context) error {
	if c == nil || c.journal == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, settleCatchUp)
	defer cancel()
	if err := c.journal.CaughtUp(ctx); err != nil {
		return fmt.Errorf("the local journal has not caught up with the cluster's records (a settlement now would leave some out): %w", err)
	}
	return nil
}

// fence refuses new transactions once the node's lease is lost for good
// (cjournal.Options.Fence): another process runs as this node, or a survivor
// recovered it after its lease lapsed. It is the pipeline's LeaseLost too: a
// transaction in flight is not finished then. While the lease is not known held
// after a pause of this process, it waits for a refresh to say
// (cluster.Lease.Confirm), so that a node woken after its recovery starts and
// finishes nothing in the moment before its refresh finds the claim.
func (c *clusterNode) fence(ctx context.Context) error {
	if l := c.currentLease(); l != nil {
		return l.Confirm(ctx)
	}
	return nil
}

// held returns nil while the node's lease is known held now, or before it is
// taken (cluster.Lease.Fresh): the gate of the work that can wait for a later try,
// the pipeline's housekeeping (Config.LeaseHeld) and the store-and-forward
// deliveries (jsaf.Options.Fence), so that a node woken from a pause sends and
// writes nothing of it before a refresh says that no other node recovers it.
func (c *clusterNode) held() error {
	if l := c.currentLease(); l != nil {
		return l.Fresh()
	}
	return nil
}

// currentLease is the node's lease (nil until taken, and after Close stops it).
func (c *clusterNode) currentLease() *cluster.Lease { return c.lease.Load() }

// report is what `switchyard cluster status` shows.
func (c *clusterNode) report(ctx context.Context) (*cluster.Report, error) {
	r := c.node.Report(ctx, c.currentLease())
	r.State = c.storeStates(ctx)
	if c.journal != nil {
		if st, err := c.journal.ImportState(ctx); err != nil {
			r.ImportError = err.Error()
		} else {
			r.ImportedUpTo, r.ImportMessages = st.LastRRN, st.Messages
		}
	}
	return r, nil
}

// ready is the cluster's part of /readyz.
func (c *clusterNode) ready() error {
	if err := c.node.Ready(); err != nil {
		c.jsWanting.Store(time.Now().UnixNano())
		return fmt.Errorf("cluster node %d: %w", c.cfg.Node, err)
	}
	if c.journal != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.journal.Following(ctx)
		cancel()
		if err != nil {
			c.jsWanting.Store(time.Now().UnixNano())
			return fmt.Errorf("cluster node %d: %w", c.cfg.Node, err)
		}
	}
	if l := c.currentLease(); l != nil {
		if err := l.Held(); err != nil {
			return err
		}
	}
	if err := c.purgedFollower(); err != nil {
		return fmt.Errorf("cluster node %d: %w", c.cfg.Node, err)
	}
	if err := c.stateConsumers(time.Now()); err != nil {
		return fmt.Errorf("cluster node %d: %w", c.cfg.Node, err)
	}
	return nil
}

// stateConsumers returns an error naming the first shared store whose follower
// stopped on a commit this version cannot read (cluster.ErrNewerCommit: a newer
// version's; at once, whatever JetStream does, since only an upgrade mends it), or
// has had no consumer of the STATE stream for c.stateWithout while the journal's
// applier has held one, and ready's JetStream checks have passed, for
// c.journalHolder; or nil.
func (c *clusterNode) stateConsumers(now time.Time) error {
	if err := c.newerCommitFollower(); err != nil {
		return err
	}
	if c.journal == nil || now.Sub(time.Unix(0, c.jsWanting.Load())) < c.journalHolder {
		return nil // JetStream itself was in question: the checks before say so
	}
	if has, since := c.journal.Consumer(); !has || now.Sub(since) < c.journalHolder {
		return nil
	}
	c.sharedMu.Lock()
	defer c.sharedMu.Unlock()
	for _, f := range c.followed {
		has, since, err := f.f.Consumer()
		if has || since.IsZero() || now.Sub(since) < c.stateWithout || !cluster.Refused(err) {
			continue
		}
		return fmt.Errorf("store %s: its follower has had no consumer of the STATE stream for %s (%v), while the journal's applier has one: changes made on the other nodes do not reach this node's copy",
			f.log.Name(), now.Sub(since).Round(time.Second), err)
	}
	return nil
}

// newerCommitFollower returns an error naming the first shared store whose follower
// met a commit this version cannot read (a newer version's), or nil: the node's copy
// of that store no longer follows the others' changes until the node is upgraded.
func (c *clusterNode) newerCommitFollower() error {
	c.sharedMu.Lock()
	defer c.sharedMu.Unlock()
	for _, f := range c.followed {
		if err := f.f.Err(); errors.Is(err, cluster.ErrNewerCommit) {
			return fmt.Errorf("store %s: its follower stopped on a commit this node's version cannot read (%v): the other nodes run a newer version; upgrade this node",
				f.log.Name(), err)
		}
	}
	return nil
}

// watchMetrics refreshes the cluster's gauges (replication lag, consumer backlog)
// every 5 s until ctx ends and, on the same tick,
// starts JetStream again on the embedded server if nats-server turned it off (a
// store out of disk space): the node recovers by itself once space is freed.
func (c *clusterNode) watchMetrics(ctx context.Context) error {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if tried, err := c.node.ReviveJetStream(); err != nil {
			c.log.Error().Err(err).Msg("JetStream is off on this node's server (out of disk space?); trying again in 5 s")
		} else if tried {
			c.log.Warn().Msg("JetStream was off on this node's server (nats-server turns it off when its store runs out of disk space); started again")
		}
		if c.journal != nil {
			applied, last := c.journal.Position()
			if last >= applied {
				c.metrics.SetReplicationLag("JOURNAL", last-applied)
			}
		}
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := c.node.Status(sctx)
		cancel()
		if err == nil {
			c.metrics.UpdateFromStatus(st)
		}
	}
}

// closeFollowers stops applying other nodes' commits and last-seen data (before the
// stores close).
//
// They close at once, not one after the other: a follower's Close waits for its
// ordered consumer's Stop, which nats.go (v1.55.0, jetstream/ordered.go) makes wait
// for a reset in progress (re-creating the consumer after missed heartbeats, under
// the consumer's lock, an attempt of up to 10 s and a pause of up to 10 s between
// attempts), and the nodes of a cluster stopping together take JetStream's quorum
// away from such a reset: one after the other, the six followers could wait that
// long each (TestClusterQuorumLost, 3 December 2026: a node's graceful stop did not
// end within 30 s, its main goroutine in a follower's Stop). Together they wait as
// long as the slowest.
func (c *clusterNode) closeFollowers() {
	c.sharedMu.Lock()
	followed := c.followed
	c.followed = nil
	c.sharedMu.Unlock()
	var wg sync.WaitGroup
	for _, f := range followed {
		wg.Go(f.f.Close)
	}
	wg.Wait()
	c.stopSharingSeen()
	if c.stopProfiles != nil {
		c.stopProfiles()
		c.stopProfiles = nil
	}
}

// profilesTopic is the broadcast topic of a refresh of the merchant profiles by hand.
const profilesTopic = "profiles"

// profileAsk is a node's request that the others refresh their merchant profiles
// with the window it used.
type profileAsk struct {
	End time.Time `json:"end"`
}

// shareProfileRefresh makes a refresh of the merchant profiles by hand
// (POST /api/v1/risk/profiles/refresh) on one node reach the others: each node
// computes its profiles from its own copy of the journal, so the node asked sends
// its window's end, and every other node refreshes with the same end once its
// journal has caught up with the stream, and so computes the same table. Best effort
// (a broadcast): a node not connected at the time keeps its table until its next
// scheduled refresh, which realigns every node. One goroutine runs the refreshes
// asked for, the latest first (an ask that comes while one runs replaces any
// waiting); closeFollowers joins it.
func (c *clusterNode) shareProfileRefresh(r *profileRefresher) error {
	asks := make(chan time.Time, 1)
	base, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	b, err := c.node.Broadcast(profilesTopic, func(data []byte) {
		var a profileAsk
		if err := json.Unmarshal(data, &a); err != nil || a.End.IsZero() {
			c.log.Warn().Err(err).Int("bytes", len(data)).Msg("a refresh of the merchant profiles asked by another node not read")
			return
		}
		for {
			select {
			case asks <- a.End:
				return
			default:
			}
			select { // replace the waiting ask with this later one
			case <-asks:
			default:
			}
		}
	})
	if err != nil {
		stop()
		return err
	}
	go func() {
		defer close(done)
		for {
			select {
			case <-base.Done():
				return
			case end := <-asks:
				ctx, cancel := context.WithTimeout(base, 5*time.Minute)
				c.refreshAsked(ctx, r, end)
				cancel()
			}
		}
	}()
	c.askProfiles = func(end time.Time) error {
		data, err := json.Marshal(profileAsk{End: end})
		if err != nil {
			return err
		}
		return b.Send(data)
	}
	c.stopProfiles = func() {
		_ = b.Close()
		stop()
		<-done
	}
	return nil
}

// refreshAsked refreshes the profiles with the window another node used, once the
// journal holds what that node's held (it waits up to 10 s for the applier, and
// refreshes anyway after, saying so).
func (c *clusterNode) refreshAsked(ctx context.Context, r *profileRefresher, end time.Time) {
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := c.journal.CaughtUp(wctx)
	cancel()
	if err != nil {
		c.log.Warn().Err(err).Time("window_end", end).Msg("merchant profiles refreshed as another node asked, before this node's journal caught up: its table may lack that node's latest records")
	}
	if _, err := r.refresh(ctx, end); err != nil {
		c.log.Error().Err(err).Time("window_end", end).Msg("merchant profiles not refreshed as another node asked; the previous table stays in force")
	}
}

// stopSharingSeen sends this node's last sightings and stops sharing them; it is
// safe to call more than once.
func (c *clusterNode) stopSharingSeen() {
	if c.stopSeen != nil {
		c.stopSeen()
		c.stopSeen = nil
	}
}

// seenTopic is the broadcast topic of the nodes' last-seen data, and seenChunk the
// most terminals a message carries (about 130 bytes each, well under NATS's 1 MB).
const (
	seenTopic = "seen"
	seenChunk = 2000
)

// shareSeen shares the registry's last-seen data with the other nodes: each flush
// (every 10 s) sends the terminals seen on this node since the last, and what the
// others send is merged (later times only), so that every node's offline monitor
// and console see every node's terminals. Best effort: a message lost is made good
// by the terminal's next message (an echo, a sale) on its node.
func (c *clusterNode) shareSeen(reg *registry.Registry) error {
	b, err := c.node.Broadcast(seenTopic, func(data []byte) {
		var es []registry.SeenEntry
		if err := json.Unmarshal(data, &es); err != nil {
			c.log.Warn().Err(err).Int("bytes", len(data)).Msg("last-seen data from another node not read")
			return
		}
		reg.MergeSeen(es)
	})
	if err != nil {
		return err
	}
	reg.SetSeenSink(func(es []registry.SeenEntry) {
		for len(es) > 0 {
			n := min(len(es), seenChunk)
			data, err := json.Marshal(es[:n])
			if err == nil {
				err = b.Send(data)
			}
			if err != nil {
				c.log.Warn().Err(err).Int("terminals", len(es)).Msg("last-seen data not sent to the other nodes")
				return
			}
			es = es[n:]
		}
	})
	c.stopSeen = func() {
		if err := reg.FlushSeen(); err != nil { // the last sightings, to the others too
			c.log.Warn().Err(err).Msg("last-seen flush at stop")
		}
		reg.SetSeenSink(nil)
		if err := b.Close(); err != nil {
			c.log.Warn().Err(err).Msg("last-seen broadcast close")
		}
	}
	return nil
}

// monitorActive reports whether this node runs the offline monitor
// (registry.MonitorOptions.Active): only while it holds its own lease (a node cut
// off from the others, whose lease lapses, stops at once, as the others take over),
// and only if it is monitorNode.
func (c *clusterNode) monitorActive() bool {
	l := c.currentLease()
	if l == nil || l.Held() != nil {
		return false // not serving yet, stopping, or cut off
	}
	return monitorNode(c.cfg.Node, l.Holders(), time.Now()) == c.cfg.Node
}

// monitorNode is the node that runs the offline monitor: of the live leases, the one
// that started first, the lower number on a tie. A node that restarts does not take
// the monitor back from one whose last-seen data are warm. self counts as started now
// when its own lease is not among holders yet.
func monitorNode(self int, holders []cluster.LeaseHolder, now time.Time) int {
	best, bestAt := self, now
	for _, h := range holders {
		if !h.Alive {
			continue
		}
		if h.Started.Before(bestAt) || h.Started.Equal(bestAt) && h.Node < best {
			best, bestAt = h.Node, h.Started
		}
	}
	return best
}

// closeJournal stops the replicated journal's applier and publisher (before the local
// journal closes).
func (c *clusterNode) closeJournal() error {
	if c.journal == nil {
		return nil
	}
	if c.applied != nil {
		if err := c.applied.Close(); err != nil {
			c.log.Warn().Err(err).Msg("applier position broadcast close")
		}
	}
	return c.journal.Close()
}

// close stops the lease and the node, last of all.
func (c *clusterNode) close() error {
	var errs []error
	if l := c.lease.Swap(nil); l != nil {
		l.Stop()
	}
	if err := c.node.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// stanPartition is the issuer links' STAN partition (0 alone).
func (c *clusterNode) stanPartition() int {
	if c == nil {
		return 0
	}
	return c.cfg.Node
}

// clusterStatus is what `switchyard cluster status` shows: the node's report, whose
// readiness is /readyz's own (a trial saw the command say ready while /readyz, which
// also checks the lease and the followers, answered 503).
func (s *Server) clusterStatus() func(context.Context) (any, error) {
	if s.cl == nil {
		return nil
	}
	return func(ctx context.Context) (any, error) {
		r, err := s.cl.report(ctx)
		if err != nil {
			return nil, err
		}
		r.NotReady = ""
		if err := s.readiness(); err != nil {
			r.NotReady = err.Error()
		}
		return r, nil
	}
}

// syncDUKPT makes the DUKPT counters raised for the records the applier applied
// durable, before it writes the position that covers them (one sync for a group of
// records, not one a record: an imported single switch's history raises a counter with
// almost every record).
func (s *Server) syncDUKPT() error {
	if s.Keys == nil {
		return nil
	}
	return s.Keys.SyncDUKPT()
}

// raiseDUKPT raises the local DUKPT counter of the device of a remote record's KSN,
// so that the KSN replayed on this node is refused (docs/cluster.md, Keys); the raise
// is durable once the applier has called syncDUKPT.
func (s *Server) raiseDUKPT(rec *journal.Record) {
	device, counter, err := dukpt.DeviceCounter(rec.KSN)
	if err == nil {
		err = s.Keys.RaiseDUKPTCounter(device, counter)
	}
	if err != nil {
		s.log.Error().Err(err).Str("rrn", rec.RRN).Str("tid", rec.TID).Msg("DUKPT counter of a journaled transaction (another node's, or this node's given back by the stream) not recorded: a replay of its KSN here would not be caught")
	}
}

// recoverNode settles what a dead node left open (its records since since), as that
// node's own start-up recovery would: run by the survivor that won the claim. It
// tries again until it succeeds or ctx ends (the lease stops): the claim it holds
// keeps everyone else, the restarted node included, from settling that node's
// transactions, and right after a kill the journal's stream may be electing a new
// leader (4 to 9 s) and answer nothing. Settling is idempotent: a record made final
// by an earlier try is left alone by the next.
func (s *Server) recoverNode(ctx context.Context, node int, since time.Time) error {
	for try := 1; ; try++ {
		err := s.recoverNodeOnce(ctx, node, since)
		if err == nil || ctx.Err() != nil {
			return err
		}
		s.log.Warn().Err(err).Int("node", node).Int("try", try).Msg("settling a lost node's transactions failed; trying again")
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Second):
		}
	}
}

func (s *Server) recoverNodeOnce(ctx context.Context, node int, since time.Time) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := s.cl.journal.CaughtUp(cctx)
	if err == nil {
		// A write the dead node published just before it died may be committed by
		// the journal stream's next leader, after the election: then it comes
		// before a barrier published now, and is here when the scan starts.
		// Without it, the scan could miss an open transaction for good.
		err = s.cl.journal.Barrier(cctx)
	}
	cancel()
	if err != nil {
		return fmt.Errorf("recover node %d: catch up with the journal: %w", node, err)
	}
	// Its records since since, and any node's record whose 0420 it owed (the
	// original of a void it took, say): recovery finds those by the node's number.
	n, err := s.Pipeline.RecoverRecords(ctx, fmt.Sprintf("node %d lost", node), strconv.Itoa(node), func(ctx context.Context, fn func(*journal.Record) bool) error {
		return s.cl.journal.ScanNode(ctx, node, func(r *journal.Record) bool {
			if r.Received.Before(since) {
				return true
			}
			return fn(r)
		})
	})
	if err != nil {
		return fmt.Errorf("recover node %d: %w", node, err)
	}
	s.log.Warn().Int("node", node).Int("records", n).Msg("settled what a lost node left open")
	return nil
}

// loadDemoKeys loads the demo keys; nodes of a cluster starting together may meet
// each other's loading, which the loader, idempotent, then runs again to see.
func (s *Server) loadDemoKeys() error {
	var err error
	for range 10 {
		if err = keys.LoadDemo(hsm.WithActor(context.Background(), "demo"), s.Keys, s.HSM); err == nil || s.cl == nil {
			return err
		}
		l, lerr := s.cl.storeLog("keys")
		if lerr != nil {
			return errors.Join(err, lerr)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = l.CatchUp(ctx, s.Keys)
		cancel()
	}
	return err
}

// zeroNone turns a cluster key's duration whose 0 means none (cluster.group_pause,
// cluster.shed_after) into the cjournal option's, whose zero is the default and
// whose negative is none.
func zeroNone(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// removePeerFunc is the admin API's removal of a server from JetStream's meta
// group (nil alone).
func (c *clusterNode) removePeerFunc() func(ctx context.Context, name, actor string) (any, error) {
	if c == nil {
		return nil
	}
	return func(ctx context.Context, name, actor string) (any, error) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := c.node.RemovePeer(ctx, name); err != nil {
			status := http.StatusBadRequest
			switch {
			case errors.Is(err, cluster.ErrPeerConnected):
				status = http.StatusConflict
			case errors.Is(err, cluster.ErrNoMetaLeader):
				status = http.StatusServiceUnavailable
			}
			return nil, api.WithStatus(status, err)
		}
		c.log.Warn().Str("server", name).Str("actor", actor).Msg("server removed from JetStream's meta group")
		return map[string]string{"removed": name}, nil
	}
}

// leaseLost is the pipeline's Config.LeaseLost: the cluster node's fence, nil on a
// single switch.
func (s *Server) leaseLost() func(ctx context.Context) error {
	if s.cl == nil {
		return nil
	}
	return s.cl.fence
}

// leaseHeld is the pipeline's Config.LeaseHeld: the cluster node's held, nil on a
// single switch.
func (s *Server) leaseHeld() func() error {
	if s.cl == nil {
		return nil
	}
	return s.cl.held
}

// Fenced returns a channel closed once this cluster node's lease is lost for good
// (cluster.Lease.LostC): another node claimed the recovery of this incarnation
// after its lease lapsed while the process lived (a pause: SIGSTOP, a VM
// migration), or another process took the lease. Such a node answers what it has
// in flight 91 node-lease-lost and starts nothing; only a new process, started
// with the same data directory, serves as this node again (its start waits for
// the recovering node, then recovers the rest). `switchyard serve` then drains
// and exits with status 75, for its supervisor to start it again. A single
// switch's channel (and one whose lease is not taken) is nil: never ready.
func (s *Server) Fenced() <-chan struct{} {
	if s.cl == nil {
		return nil
	}
	if l := s.cl.currentLease(); l != nil {
		return l.LostC()
	}
	return nil
}

// FenceReason says why Fenced's channel is closed (the lease's Lost), nil while
// it is not.
func (s *Server) FenceReason() error {
	if s.cl == nil {
		return nil
	}
	if l := s.cl.currentLease(); l != nil {
		return l.Lost()
	}
	return nil
}
