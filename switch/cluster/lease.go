package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
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
// node that loses waits until the winner marks it done (WaitClaims) before it
// recovers anything itself, so that the two never reverse or settle the same
// transaction at once. Only Creates and compare-and-sets decide, never a read:
// a KV Get may be answered by a lagging replica.

// LeaseBucket is the KV bucket of the leases and recovery claims.
const LeaseBucket = "leases"

// Lease defaults.
const (
	DefaultLeaseRefresh = time.Second
	DefaultLeaseTTL     = 5 * time.Second
	DefaultClaimTTL     = 24 * time.Hour
	// leaseMarkerTTL is how long the bucket keeps a lapsed lease's delete
	// marker: watchers see it live; it only has to outlast their start-up.
	leaseMarkerTTL = time.Minute
)

// LeaseOptions configure StartLease. Zero values take the defaults.
type LeaseOptions struct {
	// Refresh is how often the node republishes its lease (default 1 s).
	Refresh time.Duration
	// TTL is how long a lease lives without a refresh (default 5 s, at least
	// 1 s and at least twice Refresh: JetStream's message TTLs are in whole
	// seconds). A node is declared dead about TTL after its last refresh.
	TTL time.Duration
	// ClaimTTL is how long a recovery claim is kept (default 24 h).
	ClaimTTL time.Duration
	// OnDead, if set, is called (on its own goroutine, one call at a time per
	// node) when this node won the claim on a dead node's recovery; the claim
	// is marked done when it returns nil. An error leaves the claim running
	// (logged): the restarted node will wait for it until its context ends.
	OnDead func(ctx context.Context, node int) error
	// Now is the clock for the lease values (default time.Now).
	Now func() time.Time
}

// LeaseValue is what a node's lease key holds.
type LeaseValue struct {
	Node        int       `json:"node"`
	Server      string    `json:"server"`
	Started     time.Time `json:"started"`
	Incarnation uint64    `json:"incarnation"`
	Refreshed   time.Time `json:"refreshed"`
}

// Claim is what a recovery claim holds.
type Claim struct {
	Node        int       `json:"node"`        // the node recovered
	Incarnation uint64    `json:"incarnation"` // its incarnation that died
	By          int       `json:"by"`          // the node recovering it (Node itself at its restart)
	State       string    `json:"state"`       // ClaimRunning or ClaimDone
	At          time.Time `json:"at"`
}

// Claim states.
const (
	ClaimRunning = "running"
	ClaimDone    = "done"
)

// LeaseHolder is one node's lease as this node's watcher last saw it.
type LeaseHolder struct {
	Node        int       `json:"node"`
	Server      string    `json:"server"`
	Incarnation uint64    `json:"incarnation"`
	Started     time.Time `json:"started"`
	// Refreshed is the holder's clock at its last refresh seen.
	Refreshed time.Time `json:"refreshed"`
	// Alive is false once the lease lapsed (until the node takes it back).
	Alive bool `json:"alive"`
	// RecoveredBy is the node that won the claim on the lapsed incarnation, 0
	// when none is known to this node.
	RecoveredBy int `json:"recovered_by,omitempty"`
}

// Lease is this node's lease and its watch of the others'. Stop ends both.
type Lease struct {
	n    *Node
	kv   jetstream.KeyValue
	opts LeaseOptions
	self LeaseValue

	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	seen   map[int]*LeaseHolder
}

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
	if o.Refresh <= 0 || o.TTL < time.Second || o.TTL < 2*o.Refresh || o.TTL%time.Second != 0 {
		return fmt.Errorf("cluster: lease refresh %v and TTL %v: the TTL must be whole seconds, at least 1 s and at least twice the refresh", o.Refresh, o.TTL)
	}
	if o.ClaimTTL < time.Second {
		return fmt.Errorf("cluster: lease claim TTL %v is under 1 s", o.ClaimTTL)
	}
	return nil
}

// LeaseKV creates (or updates) the leases bucket, with Config.Replicas.
func (n *Node) LeaseKV(ctx context.Context) (jetstream.KeyValue, error) {
	kv, err := n.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:         LeaseBucket,
		Description:    "switchyard node leases and recovery claims",
		History:        1,
		Replicas:       max(n.cfg.Replicas, 1),
		LimitMarkerTTL: leaseMarkerTTL,
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: KV bucket %s on %s: %w", LeaseBucket, n.name(), err)
	}
	return kv, nil
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
	l := &Lease{n: n, kv: kv, opts: opts, seen: map[int]*LeaseHolder{}}
	prev, inc, err := l.bumpIncarnation(ctx)
	if err != nil {
		return nil, err
	}
	if prev > 0 {
		if err := l.claimSelf(ctx, prev); err != nil {
			return nil, err
		}
	}
	now := opts.Now().UTC()
	l.self = LeaseValue{Node: n.cfg.Node, Server: n.ServerName(), Started: now, Incarnation: inc}
	if err := l.refresh(ctx); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	w, err := kv.Watch(ctx, "node.*")
	if err != nil {
		cancel()
		return nil, fmt.Errorf("cluster: watch the leases on %s: %w", n.name(), err)
	}
	l.wg.Add(2)
	go l.refreshLoop(wctx)
	go l.watch(wctx, w)
	n.log.Info().Int("node", n.cfg.Node).Uint64("incarnation", inc).Msg("lease taken")
	return l, nil
}

// Incarnation is this start's incarnation of the node (1 the first time).
func (l *Lease) Incarnation() uint64 { return l.self.Incarnation }

func leaseKey(node int) string { return "node." + strconv.Itoa(node) }
func incKey(node int) string   { return "inc." + strconv.Itoa(node) }
func claimKey(node int, inc uint64) string {
	return "recover." + strconv.Itoa(node) + "." + strconv.FormatUint(inc, 10)
}

// bumpIncarnation moves inc.N from its value to the next by a compare-and-set
// (retried on a conflict or a stale read): the previous incarnation it
// returns is the latest, whichever replica answered the read.
func (l *Lease) bumpIncarnation(ctx context.Context) (prev, next uint64, err error) {
	key := incKey(l.n.cfg.Node)
	for ctx.Err() == nil {
		e, gerr := l.kv.Get(ctx, key)
		switch {
		case errors.Is(gerr, jetstream.ErrKeyNotFound):
			if _, err = l.kv.Create(ctx, key, []byte("1")); err == nil {
				return 0, 1, nil
			}
		case gerr != nil:
			return 0, 0, fmt.Errorf("cluster: read %s/%s: %w", LeaseBucket, key, gerr)
		default:
			p, perr := strconv.ParseUint(string(e.Value()), 10, 64)
			if perr != nil {
				return 0, 0, fmt.Errorf("cluster: %s/%s holds %q, not an incarnation number", LeaseBucket, key, e.Value())
			}
			if _, err = l.kv.Update(ctx, key, []byte(strconv.FormatUint(p+1, 10)), e.Revision()); err == nil {
				return p, p + 1, nil
			}
		}
		if !isConflict(err) {
			return 0, 0, fmt.Errorf("cluster: bump %s/%s: %w", LeaseBucket, key, err)
		}
	}
	return 0, 0, fmt.Errorf("cluster: bump %s/%s: %w", LeaseBucket, key, ctx.Err())
}

func isConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)
}

// claimSelf claims the recovery of this node's incarnation inc; when a
// survivor holds the claim, it waits until the survivor marks it done.
func (l *Lease) claimSelf(ctx context.Context, inc uint64) error {
	me := l.n.cfg.Node
	won, err := l.claim(ctx, me, inc)
	if err != nil || won {
		return err
	}
	return l.waitDone(ctx, me, inc)
}

// claim tries to Create the claim on node's incarnation inc, as this node.
func (l *Lease) claim(ctx context.Context, node int, inc uint64) (bool, error) {
	c := Claim{Node: node, Incarnation: inc, By: l.n.cfg.Node, State: ClaimRunning, At: l.opts.Now().UTC()}
	b, _ := json.Marshal(c)
	_, err := l.kv.Create(ctx, claimKey(node, inc), b, jetstream.KeyTTL(l.opts.ClaimTTL))
	if err == nil {
		return true, nil
	}
	var apiErr *jetstream.APIError
	if isConflict(err) || errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return false, nil
	}
	return false, fmt.Errorf("cluster: claim %s/%s: %w", LeaseBucket, claimKey(node, inc), err)
}

// waitDone watches the claim on node's incarnation inc until it is done.
func (l *Lease) waitDone(ctx context.Context, node int, inc uint64) error {
	key := claimKey(node, inc)
	w, err := l.kv.Watch(ctx, key)
	if err != nil {
		return fmt.Errorf("cluster: watch %s/%s: %w", LeaseBucket, key, err)
	}
	defer w.Stop()
	var last Claim
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: node %d's incarnation %d is being recovered by node %d (claim %s/%s %s since %v); gave up waiting for it: %w",
				node, inc, last.By, LeaseBucket, key, last.State, last.At, ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("cluster: watch %s/%s ended", LeaseBucket, key)
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue // end of the initial values, or the claim expired
			}
			if err := json.Unmarshal(e.Value(), &last); err != nil {
				return fmt.Errorf("cluster: %s/%s: %w", LeaseBucket, key, err)
			}
			if last.State == ClaimDone {
				return nil
			}
			l.n.log.Info().Int("node", node).Uint64("incarnation", inc).Int("by", last.By).Msg("waiting for a survivor's recovery of this node to finish")
		}
	}
}

// WaitClaims waits until the claim on node's incarnation inc is done; it
// returns at once when nobody claimed it. For callers that learn of a claim
// otherwise (StartLease already waits for its own previous incarnation).
func (l *Lease) WaitClaims(ctx context.Context, node int, inc uint64) error {
	if _, err := l.kv.Get(ctx, claimKey(node, inc)); errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	return l.waitDone(ctx, node, inc)
}

// refresh republishes this node's lease with its TTL.
func (l *Lease) refresh(ctx context.Context) error {
	v := l.self
	v.Refreshed = l.opts.Now().UTC()
	b, _ := json.Marshal(v)
	pctx, cancel := context.WithTimeout(ctx, l.opts.TTL/2)
	defer cancel()
	if err := l.putTTL(pctx, leaseKey(v.Node), b, l.opts.TTL); err != nil {
		return fmt.Errorf("cluster: refresh the lease of node %d: %w", v.Node, err)
	}
	return nil
}

// putTTL puts key with a per-message TTL, which the KV API's Put cannot.
func (l *Lease) putTTL(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	_, err := l.n.js.Publish(ctx, "$KV."+LeaseBucket+"."+key, value, jetstream.WithMsgTTL(ttl))
	return err
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
// lapsed one, whose recovery this node then tries to claim.
func (l *Lease) watch(ctx context.Context, w jetstream.KeyWatcher) {
	defer l.wg.Done()
	defer w.Stop()
	running := map[int]chan struct{}{} // per dead node: its OnDead call, one at a time
	var calls sync.WaitGroup
	defer calls.Wait()
	for {
		var e jetstream.KeyValueEntry
		var ok bool
		select {
		case <-ctx.Done():
			return
		case e, ok = <-w.Updates():
		}
		if !ok {
			return
		}
		if e == nil {
			continue
		}
		node, err := strconv.Atoi(strings.TrimPrefix(e.Key(), "node."))
		if err != nil {
			continue
		}
		if e.Operation() == jetstream.KeyValuePut {
			var v LeaseValue
			if err := json.Unmarshal(e.Value(), &v); err != nil {
				l.n.log.Warn().Str("key", e.Key()).Err(err).Msg("unreadable lease ignored")
				continue
			}
			l.mu.Lock()
			h := l.seen[node]
			if h == nil || h.Incarnation != v.Incarnation {
				h = &LeaseHolder{Node: node}
				l.seen[node] = h
			}
			h.Server, h.Incarnation, h.Started, h.Refreshed, h.Alive = v.Server, v.Incarnation, v.Started, v.Refreshed, true
			l.mu.Unlock()
			continue
		}
		// A delete marker: the lease lapsed. Only an incarnation this node saw
		// alive is claimed: the one a marker alone does not name may already be
		// the restarted node's (it bumps inc.N before publishing its lease).
		l.mu.Lock()
		h := l.seen[node]
		alive := h != nil && h.Alive
		var inc uint64
		if alive {
			h.Alive = false
			inc = h.Incarnation
		}
		l.mu.Unlock()
		if !alive {
			continue
		}
		l.n.log.Warn().Int("node", node).Uint64("incarnation", inc).Msg("a node's lease lapsed")
		if node == l.n.cfg.Node {
			continue // our own lease lapsed (we could not refresh it): we are alive; the refresher puts it back
		}
		won, err := l.claim(ctx, node, inc)
		if err != nil {
			l.n.log.Error().Err(err).Int("node", node).Msg("claim a dead node's recovery")
			continue
		}
		if !won {
			continue
		}
		l.mu.Lock()
		h.RecoveredBy = l.n.cfg.Node
		l.mu.Unlock()
		l.n.log.Warn().Int("node", node).Uint64("incarnation", inc).Msg("recovering a dead node's open transactions")
		prev := running[node]
		done := make(chan struct{})
		running[node] = done
		calls.Add(1)
		go func() {
			defer calls.Done()
			defer close(done)
			if prev != nil {
				<-prev
			}
			l.recover(ctx, node, inc)
		}()
	}
}

// recover runs OnDead for node's incarnation inc and marks the claim done.
func (l *Lease) recover(ctx context.Context, node int, inc uint64) {
	if l.opts.OnDead != nil {
		if err := l.opts.OnDead(ctx, node); err != nil {
			l.n.log.Error().Err(err).Int("node", node).Uint64("incarnation", inc).Msg("recovery of a dead node failed; its claim stays running")
			return
		}
	}
	c := Claim{Node: node, Incarnation: inc, By: l.n.cfg.Node, State: ClaimDone, At: l.opts.Now().UTC()}
	b, _ := json.Marshal(c)
	// A plain put: the claim is this node's alone once won.
	key := claimKey(node, inc)
	if err := l.putTTL(ctx, key, b, l.opts.ClaimTTL); err != nil {
		l.n.log.Error().Err(err).Str("claim", key).Msg("mark a recovery claim done")
	}
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

// Stop stops refreshing (the lease then lapses after its TTL, unless the node
// restarts within it) and watching, and waits for a running OnDead to return.
func (l *Lease) Stop() {
	if l.cancel != nil {
		l.cancel()
	}
	l.wg.Wait()
}
