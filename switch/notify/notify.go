// Package notify pushes merchant notices: each approval, void and refund of a
// merchant that registered a webhook is posted to it, in order per merchant, through
// a durable outbox.
//
// The transaction path only hands a notice over (Notice: a copy into a bounded
// channel, no I/O). A writer stores what arrived in Badger in batches (every 20 ms
// at most), and only then does a worker post it, so nothing is posted that a
// restart could forget. Each merchant's notices go out one at a time, in the order
// they were stored: a failed post (no connection, a timeout, any answer but 2xx) is
// tried again after a backoff (RetryMin doubling up to RetryMax) and the
// merchant's later notices wait behind it. A post without an answer holds its
// host: the other merchants on it are not posted to for the host's backoff. So does
// an answer 429 or 503 with a Retry-After, until the time it asks for (at most
// RetryAfterMax), the merchant's next attempt too (internal/retryafter reads it, as
// for the offline-alert webhooks). A delivered notice leaves the outbox and
// its entry in the delivery log (kept LogTTL) says when, after how many attempts.
//
// Bodies are JSON signed like the alert webhooks: X-Switchyard-Timestamp, and
// X-Switchyard-Signature = "sha256=" + hex HMAC-SHA256(secret, timestamp + "." +
// body) with the merchant's secret; X-Switchyard-Notice is the notice's ID (merchant
// and sequence) for a receiver to drop a notice it has seen. A notice holds the
// card only as first 6 and last 4 digits. The secrets are stored sealed under a
// key derived from the card hash key (secrets.go), in the clear only in memory.
//
// A notice in the channel but not yet stored is lost by a crash; Recover, at start,
// reads the journal since the last stored notice (less a margin) and enqueues the
// approvals, voids and refunds that have no notice yet, so the crash loses none.
// A notice dropped (the channel full) or not stored (its batch failed) is found
// the same way: the stored mark never passes the oldest such notice.
// In a cluster the webhooks are shared through the cluster's state log (every node
// knows every merchant's webhook), and each node keeps the outbox of the
// transactions it answered: a node that is down delivers its notices when it is
// back.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/carddata"
	"github.com/switchyard/switchyard/internal/retryafter"
	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/internal/statelog/kvsync"
	"github.com/switchyard/switchyard/switch/internal/seal"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/registry"
)

// Badger keys.
const (
	pfxEndpoint = "notify/ep/"  // + merchant -> Endpoint
	pfxQueue    = "notify/q/"   // + merchant + "/" + 20-digit seq -> Notice
	pfxLog      = "notify/log/" // + merchant + "/" + 20-digit seq -> Delivery
	pfxRRN      = "notify/rrn/" // + RRN -> "" (a notice exists)
	keyMark     = "notify/mark" // received time of the newest stored notice
	keyRev      = "notify/rev"  // the webhooks' statelog revision (cluster only)
)

// RevisionKey is the Badger key of the webhooks' statelog revision, for a restore
// of their snapshot before the outbox opens (its value: kvsync.EncodeRevision).
const RevisionKey = keyRev

// Notice is one merchant notice, the body posted (JSON).
type Notice struct {
	ID          string    `json:"id"` // merchant-seq
	Seq         uint64    `json:"seq"`
	Merchant    string    `json:"merchant"`
	Terminal    string    `json:"terminal"`
	Event       string    `json:"event"` // purchase, preauth, void, refund
	RRN         string    `json:"rrn"`
	OriginalRRN string    `json:"original_rrn,omitempty"`
	Amount      int64     `json:"amount"` // minor units
	Currency    string    `json:"currency,omitempty"`
	PAN         string    `json:"pan"` // first 6, last 4
	AuthCode    string    `json:"auth_code,omitempty"`
	Time        time.Time `json:"time"`
}

// Delivery is a notice's entry in the delivery log.
type Delivery struct {
	Notice      Notice     `json:"notice"`
	Status      string     `json:"status"` // pending, delivered
	Attempts    int        `json:"attempts"`
	LastError   string     `json:"last_error,omitempty"`
	LastAttempt *time.Time `json:"last_attempt,omitempty"`
	DeliveredAt *time.Time `json:"delivered_at,omitempty"`
}

// Endpoint is a merchant's webhook, in memory: its secret in the clear. It is
// stored as an endpointRecord, the secret sealed (secrets.go).
type Endpoint struct {
	URL    string    `json:"url"`
	Secret string    `json:"-"`
	By     string    `json:"by"`
	Change string    `json:"change,omitempty"` // the approved change that set it (review.go)
	At     time.Time `json:"at"`
	// held says why nothing is posted to the webhook: its sealed secret does not
	// open on this node (secrets.go). Empty: in force.
	held string
	// prev is the secret this one replaced (rotation.go), with which notices are
	// also signed (HeaderSignaturePrevious) before prevUntil; empty: none, or
	// it does not open. prevUntil is kept (zero: none) so that the sealed
	// secret is dropped at rest once past.
	prev      string
	prevUntil time.Time
}

// Options configure an Outbox.
type Options struct {
	RetryMin time.Duration // first retry after a failure (default 1 s)
	RetryMax time.Duration // longest wait between retries (default 5 min)
	Timeout  time.Duration // per post (default 5 s)
	Workers  int           // merchants delivered at once (default 4)
	Queue    int           // notices waiting to be stored (default 65536)
	LogTTL   time.Duration // how long the delivery log keeps a delivered notice (default 30 days)
	// RetryAfterMax is the longest Retry-After (of a 429 or 503 answer) honoured:
	// a longer one holds the host this long only (default DefaultRetryAfterMax).
	RetryAfterMax time.Duration
	// Client posts the notices; nil is a client that connects only to public
	// addresses and to AllowPrivate (target.go).
	Client *http.Client
	// AllowPrivate lists the internal networks (loopback, private, link-local...)
	// webhooks may reach besides public addresses: none by default.
	AllowPrivate []netip.Prefix
	Now          func() time.Time
	Logger       zerolog.Logger
	// Registry, when set, logs webhook changes in the operation log.
	Registry interface {
		LogOp(e registry.OpEntry, write func(txn *badger.Txn) error) (registry.OpEntry, error)
	}
	// Log, when set, shares the webhooks with the other nodes of a cluster (each
	// node keeps the outbox of the transactions it answered); their changes arrive
	// through the Outbox's statelog.Replica methods. Nil is a single node.
	Log statelog.Log
	// CatchUp, with Log, waits after a conflict until the webhooks have applied
	// every commit the Log held.
	CatchUp func(ctx context.Context, r statelog.Replica) error
	// Metrics, when set, receives the outbox's series (metrics.go).
	Metrics *prometheus.Registry
	// SecretOverlap is how long after a change of a merchant's webhook secret
	// (same URL) its notices are also signed with the secret it replaced
	// (rotation.go); default DefaultSecretOverlap.
	SecretOverlap time.Duration
	// CardHashKey is the switch's card hash key (security.card_hash_key_hex),
	// required: the webhook secrets are sealed at rest under a key derived from
	// it, and their fingerprints keyed by another (secrets.go). Every node of a
	// cluster must have the same.
	CardHashKey []byte
}

// ErrConflict is wrapped by a webhook change that conflicted twice with another
// node's.
var ErrConflict = errors.New("webhook changed concurrently on another node")

// Outbox is the durable outbox and its delivery. Start runs it; its methods are
// safe for concurrent use.
type Outbox struct {
	db  *badger.DB
	o   Options
	log zerolog.Logger
	// in holds pointers, not Notices: its whole buffer (Queue entries) is scanned by
	// every garbage collection, and 64 Ki Notices made 12 MB of it, a third of the
	// switch's pointer-holding heap (issue 15: longer marks, a longer tail).
	in   chan *Notice
	eps  atomic.Pointer[map[string]Endpoint]
	seq  atomic.Uint64
	kick chan string

	mu      sync.Mutex
	pending map[string][]Notice // stored, not delivered, by merchant, in order
	busy    map[string]bool     // a worker or a retry timer holds the merchant
	attempt map[string]int      // attempts of the merchant's head notice
	lastErr map[string]string
	hosts   map[string]*hostDown // webhook hosts whose last post got no answer

	dropped atomic.Int64
	m       outboxMetrics
	// lostAt is the received time (Unix ns) of the oldest notice this process
	// lost before storing it (the channel full, or its batch not stored); 0: none.
	// The stored mark never passes it, so that Recover finds it at the next start.
	lostAt atomic.Int64
	wg     sync.WaitGroup
	sync   *kvsync.Sync   // the webhooks' writes, shared in a cluster
	reg    ReviewRegistry // set by UseReview: webhook changes under review

	secrets   *seal.Sealer // seals the webhook secrets at rest (secrets.go)
	fpKey     []byte       // keys the secrets' fingerprints
	resealDue atomic.Bool  // a webhook with a clear secret was loaded or applied
}

// ApplyRemote implements statelog.Replica: another node's webhook change.
func (b *Outbox) ApplyRemote(rev uint64, c statelog.Commit) error { return b.sync.ApplyRemote(rev, c) }

// Revision implements statelog.Replica.
func (b *Outbox) Revision() uint64 { return b.sync.Revision() }

// applied puts another node's webhook changes in force.
func (b *Outbox) applied(c statelog.Commit) {
	changed := map[string]*Endpoint{}
	for _, kv := range c.Writes {
		k := string(kv.Key)
		if !strings.HasPrefix(k, pfxEndpoint) {
			continue
		}
		m := strings.TrimPrefix(k, pfxEndpoint)
		if len(kv.Value) == 0 {
			changed[m] = nil
			continue
		}
		e, clear, err := b.openEndpoint(m, kv.Value)
		if err != nil {
			b.log.Error().Err(err).Str("merchant", m).Msg("another node's webhook is not one: removed here")
			changed[m] = nil
			continue
		}
		if clear {
			b.resealDue.Store(true) // from a node not upgraded yet
		}
		changed[m] = &e
	}
	if len(changed) > 0 {
		b.logHeld(changed)
		b.putInMemory(changed)
	}
}

// Open loads the endpoints and the outbox from db.
func Open(db *badger.DB, o Options) (*Outbox, error) {
	if o.RetryMin <= 0 {
		o.RetryMin = time.Second
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 5 * time.Minute
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.RetryAfterMax <= 0 {
		o.RetryAfterMax = DefaultRetryAfterMax
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.Queue <= 0 {
		o.Queue = 65536
	}
	if o.LogTTL <= 0 {
		o.LogTTL = 30 * 24 * time.Hour
	}
	if o.SecretOverlap <= 0 {
		o.SecretOverlap = DefaultSecretOverlap
	}
	if o.Client == nil {
		o.Client = o.newClient()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	b := &Outbox{db: db, o: o, log: o.Logger, in: make(chan *Notice, o.Queue), kick: make(chan string, 1024),
		pending: map[string][]Notice{}, busy: map[string]bool{}, attempt: map[string]int{}, lastErr: map[string]string{},
		hosts: map[string]*hostDown{}}
	if err := b.newSecrets(o.CardHashKey); err != nil {
		return nil, err
	}
	if err := b.newMetrics(o.Metrics); err != nil {
		return nil, err
	}
	eps := map[string]Endpoint{}
	held := map[string]*Endpoint{}
	var maxSeq uint64
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("notify/"), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := string(it.Item().Key())
			switch {
			case strings.HasPrefix(k, pfxEndpoint):
				m := strings.TrimPrefix(k, pfxEndpoint)
				var e Endpoint
				var clear bool
				err := it.Item().Value(func(v []byte) (err error) {
					e, clear, err = b.openEndpoint(m, v)
					return err
				})
				if err != nil {
					return fmt.Errorf("%s: %w", k, err)
				}
				if clear {
					b.resealDue.Store(true)
				}
				if e.held != "" {
					held[m] = &e
				}
				eps[m] = e
			case strings.HasPrefix(k, pfxQueue):
				var n Notice
				if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &n) }); err != nil {
					return fmt.Errorf("%s: %w", k, err)
				}
				b.pending[n.Merchant] = append(b.pending[n.Merchant], n)
				maxSeq = max(maxSeq, n.Seq)
			case strings.HasPrefix(k, pfxLog):
				if i := strings.LastIndexByte(k, '/'); i > 0 {
					if s, err := strconv.ParseUint(k[i+1:], 10, 64); err == nil {
						maxSeq = max(maxSeq, s)
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("notify: load the outbox: %w", err)
	}
	for m := range b.pending {
		q := b.pending[m]
		sort.Slice(q, func(i, j int) bool { return q[i].Seq < q[j].Seq })
	}
	b.logHeld(held)
	b.eps.Store(&eps)
	b.seq.Store(maxSeq)
	if b.sync, err = kvsync.New(db, kvsync.Config{Name: "merchant webhooks", RevKey: keyRev, Log: o.Log, CatchUp: o.CatchUp,
		Conflict: ErrConflict, Applied: b.applied}); err != nil {
		return nil, err
	}
	return b, nil
}

// Notice hands the notice of an answered transaction to the outbox, if it is an
// approved purchase, pre-authorization, void or refund of a merchant with a
// webhook. It copies what it needs and never blocks: when the channel is full the
// notice is counted as dropped and Recover finds it at the next start. original is
// the RRN a void or refund names.
func (b *Outbox) Notice(rec *journal.Record, original string) {
	if !message.Approved(rec.RC) {
		return
	}
	switch rec.Type {
	case "purchase", "preauth", "void", "refund":
	default:
		return
	}
	mid := strings.TrimRight(rec.MID, " ")
	if _, ok := (*b.eps.Load())[mid]; !ok {
		return
	}
	n := &Notice{Merchant: mid, Terminal: rec.TID, Event: rec.Type, RRN: rec.RRN, OriginalRRN: original, Amount: rec.Amount,
		Currency: rec.Currency, PAN: mask(rec.PANMasked), AuthCode: rec.AuthCode, Time: rec.Received.UTC()}
	select {
	case b.in <- n:
	default:
		b.lost(n.Time)
		b.m.dropped.Inc()
		if b.dropped.Add(1) == 1 {
			b.log.Warn().Msg("merchant notices: queue full, notices left to the recovery at the next start")
		}
	}
}

// lost remembers that the notice of a transaction received at t was not stored:
// the mark (keyMark) stays at or before the oldest such time, so that Recover,
// which reads the journal from the mark, finds it at the next start. Safe for
// concurrent use (Notice calls it on the transaction path: no I/O, no lock).
func (b *Outbox) lost(t time.Time) {
	if t.IsZero() {
		return // no time to recover from
	}
	ns := t.UnixNano()
	for {
		cur := b.lostAt.Load()
		if cur != 0 && cur <= ns {
			return
		}
		if b.lostAt.CompareAndSwap(cur, ns) {
			return
		}
	}
}

// mask keeps first 6 and last 4 digits whatever the journal holds.
func mask(p string) string {
	if len(p) < 10 {
		return strings.Repeat("*", len(p))
	}
	return p[:6] + strings.Repeat("*", len(p)-10) + p[len(p)-4:]
}

func qKey(n Notice) []byte   { return []byte(fmt.Sprintf("%s%s/%020d", pfxQueue, n.Merchant, n.Seq)) }
func logKey(n Notice) []byte { return []byte(fmt.Sprintf("%s%s/%020d", pfxLog, n.Merchant, n.Seq)) }

// Run stores and delivers notices until ctx ends; the notices still in the channel
// are stored before it returns.
func (b *Outbox) Run(ctx context.Context) error {
	for i := 0; i < b.o.Workers; i++ {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.worker(ctx)
		}()
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.retryStaged(ctx)
	}()
	b.mu.Lock()
	for m := range b.pending {
		b.schedule(m)
	}
	b.mu.Unlock()
	b.writer(ctx)
	b.wg.Wait()
	return nil
}

// writer stores the notices of the channel in batches.
func (b *Outbox) writer(ctx context.Context) {
	batch := make([]Notice, 0, 256)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if err := b.store(batch); err != nil {
			for i := range batch {
				b.lost(batch[i].Time)
			}
			b.log.Error().Err(err).Int("notices", len(batch)).Msg("merchant notices not stored; left to the recovery at the next start")
		}
		batch = batch[:0]
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			for {
				select {
				case n := <-b.in:
					batch = append(batch, *n)
				default:
					flush()
					return
				}
			}
		case n := <-b.in:
			batch = append(batch, *n)
			if len(batch) == cap(batch) {
				flush()
			}
		case <-tick.C:
			flush()
		}
	}
}

// store writes a batch to the outbox and hands it to the workers.
func (b *Outbox) store(batch []Notice) error {
	var newest time.Time
	err := b.db.Update(func(txn *badger.Txn) error {
		for i := range batch {
			n := &batch[i]
			if _, err := txn.Get([]byte(pfxRRN + n.RRN)); err == nil {
				n.Seq = 0 // already noticed (a recovery overlap)
				continue
			}
			n.Seq = b.seq.Add(1)
			n.ID = fmt.Sprintf("%s-%d", n.Merchant, n.Seq)
			v, err := json.Marshal(n)
			if err != nil {
				return err
			}
			if err := txn.Set(qKey(*n), v); err != nil {
				return err
			}
			if err := txn.SetEntry(badger.NewEntry([]byte(pfxRRN+n.RRN), nil).WithTTL(b.o.LogTTL)); err != nil {
				return err
			}
			if n.Time.After(newest) {
				newest = n.Time
			}
		}
		ns := b.lostAt.Load()
		if newest.IsZero() && ns == 0 {
			return nil
		}
		var mark time.Time
		if item, err := txn.Get([]byte(keyMark)); err == nil {
			_ = item.Value(func(v []byte) error { return mark.UnmarshalText(v) })
		}
		if ns != 0 {
			// A notice was lost since the start: the mark stays at or before it
			// (lowered if need be), however many notices are stored after it.
			if lost := time.Unix(0, ns).UTC(); mark.IsZero() || lost.Before(mark) {
				t, _ := lost.MarshalText()
				return txn.Set([]byte(keyMark), t)
			}
			return nil
		}
		if newest.After(mark) {
			t, _ := newest.MarshalText()
			return txn.Set([]byte(keyMark), t)
		}
		return nil
	})
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, n := range batch {
		if n.Seq == 0 {
			continue
		}
		b.pending[n.Merchant] = append(b.pending[n.Merchant], n)
		b.schedule(n.Merchant)
	}
	return nil
}

// schedule hands a merchant with pending notices to a worker unless one (or a
// retry timer) holds it. b.mu held.
func (b *Outbox) schedule(m string) {
	if b.busy[m] || len(b.pending[m]) == 0 {
		return
	}
	b.busy[m] = true
	select {
	case b.kick <- m:
	default:
		// Workers busy and the kick queue full: try again shortly.
		time.AfterFunc(10*time.Millisecond, func() {
			b.mu.Lock()
			b.busy[m] = false
			b.schedule(m)
			b.mu.Unlock()
		})
	}
}

func (b *Outbox) worker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-b.kick:
			b.deliverMerchant(ctx, m)
		}
	}
}

// deliverMerchant posts a merchant's notices in order until none is left or one
// fails (then a retry is scheduled after the backoff).
func (b *Outbox) deliverMerchant(ctx context.Context, m string) {
	for ctx.Err() == nil {
		b.mu.Lock()
		q := b.pending[m]
		if len(q) == 0 {
			b.busy[m] = false
			b.mu.Unlock()
			return
		}
		n := q[0]
		b.attempt[m]++
		attempts := b.attempt[m]
		b.mu.Unlock()
		ep, ok := (*b.eps.Load())[m]
		var err error
		result := "held"
		switch {
		case !ok:
			err = errors.New("no webhook registered (removed): kept until one is")
		case ep.held != "":
			err = errors.New(ep.held)
		default:
			host := hostOf(ep.URL)
			if err = b.hostHeld(host); err == nil {
				err = b.post(ctx, ep, n)
				if ctx.Err() == nil {
					b.hostResult(host, err)
				}
				result = "failed"
				if err == nil {
					result = "delivered"
				}
			}
		}
		if ctx.Err() == nil {
			b.m.posts.WithLabelValues(result).Inc()
		}
		now := b.o.Now().UTC()
		if err == nil {
			d := Delivery{Notice: n, Status: "delivered", Attempts: attempts, LastAttempt: &now, DeliveredAt: &now}
			v, _ := json.Marshal(d)
			if werr := b.db.Update(func(txn *badger.Txn) error {
				if err := txn.Delete(qKey(n)); err != nil {
					return err
				}
				return txn.SetEntry(badger.NewEntry(logKey(n), v).WithTTL(b.o.LogTTL))
			}); werr != nil {
				// Posted but not marked: it would be posted again after a restart;
				// the receiver drops it by its ID.
				b.log.Error().Err(werr).Str("notice", n.ID).Msg("merchant notice delivered but not marked")
			}
			b.mu.Lock()
			b.pending[m] = b.pending[m][1:]
			delete(b.attempt, m)
			delete(b.lastErr, m)
			b.mu.Unlock()
			continue
		}
		if ctx.Err() != nil {
			return
		}
		wait := b.o.RetryMin << min(attempts-1, 20)
		if wait > b.o.RetryMax || wait <= 0 {
			wait = b.o.RetryMax
		}
		// A host that asked to wait (Retry-After) is not tried before then.
		if until := b.askedUntil(hostOf(ep.URL)); !until.IsZero() {
			wait = max(wait, until.Sub(b.o.Now()))
		}
		b.log.Warn().Err(err).Str("notice", n.ID).Int("attempts", attempts).Dur("retry_in", wait).Msg("merchant notice not delivered")
		b.mu.Lock()
		b.lastErr[m] = fmt.Sprintf("%s: %v", now.Format(time.RFC3339), err)
		b.mu.Unlock()
		time.AfterFunc(wait, func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.busy[m] = false
			b.schedule(m)
		})
		return
	}
	b.mu.Lock()
	b.busy[m] = false
	b.mu.Unlock()
}

// Headers of a notice post (besides registry.WebhookTimestampHeader and
// registry.WebhookSignatureHeader).
const (
	HeaderNotice = "X-Switchyard-Notice"
	// HeaderSignaturePrevious is the signature under the secret that the
	// webhook's current one replaced, during the rotation's overlap
	// (rotation.go); absent otherwise. Same form as X-Switchyard-Signature.
	HeaderSignaturePrevious = "X-Switchyard-Signature-Previous"
)

func (b *Outbox) post(ctx context.Context, ep Endpoint, n Notice) error {
	body, err := json.Marshal(n)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, b.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	now := b.o.Now()
	ts := strconv.FormatInt(now.Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(registry.WebhookTimestampHeader, ts)
	req.Header.Set(registry.WebhookSignatureHeader, registry.SignWebhook([]byte(ep.Secret), ts, body))
	if ep.prev != "" && now.Before(ep.prevUntil) {
		req.Header.Set(HeaderSignaturePrevious, registry.SignWebhook([]byte(ep.prev), ts, body))
	}
	req.Header.Set(HeaderNotice, n.ID)
	resp, err := b.o.Client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if d, ok := retryafter.Of(resp, now); ok {
		return answered{&askedToWait{url: ep.URL, status: resp.Status, wait: d}}
	}
	if resp.StatusCode/100 == 3 {
		return answered{fmt.Errorf("webhook %s answered %s to %q: redirects are not followed (request the webhook's new URL)", ep.URL, resp.Status, resp.Header.Get("Location"))}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return answered{fmt.Errorf("webhook %s answered %s", ep.URL, resp.Status)}
	}
	return nil
}

// answered is the error of a post that the webhook's host answered (not 2xx): the
// host is up, the failure is the merchant's receiver's.
type answered struct{ error }

func (a answered) Unwrap() error { return a.error }

// DefaultRetryAfterMax is the longest Retry-After honoured when
// Options.RetryAfterMax gives none.
const DefaultRetryAfterMax = time.Hour

// askedToWait is a post answered 429 or 503 with a Retry-After (read by
// internal/retryafter, as the offline-alert webhooks read it): the host is held
// until then (hostResult), at most Options.RetryAfterMax.
type askedToWait struct {
	url, status string
	wait        time.Duration // as asked (not capped)
}

func (e *askedToWait) Error() string {
	return fmt.Sprintf("webhook %s answered %s, Retry-After %s", e.url, e.status, e.wait.Round(time.Second))
}

// hostDown is a webhook host whose last post got no answer (no connection, a
// timeout, a TLS failure), or was answered 429 or 503 with a Retry-After (asked):
// until until, its merchants' notices are not posted.
type hostDown struct {
	failures int       // posts without an answer in a row
	until    time.Time // no post before
	err      string    // the last one's error
	asked    bool      // held by the host's Retry-After, not for a missing answer
}

// hostOf returns the host (and port) of a webhook URL, lowercased.
func hostOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	return strings.ToLower(u.Host)
}

// hostHeld says why nothing is posted to host now: its last post got no answer,
// and its backoff (RetryMin doubling to RetryMax with each such post in a row)
// has not ended. One merchant's post then finds out whether it is back; the
// others do not each spend a worker for the timeout (a service provider's
// receiver for hundreds of merchants, down, held every worker and every other
// merchant's notices).
func (b *Outbox) hostHeld(host string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := b.hosts[host]
	if d == nil || !b.o.Now().Before(d.until) {
		return nil
	}
	if d.asked {
		return fmt.Errorf("not posted: webhook host %s asked for no post before %s (%s)", host, d.until.UTC().Format(time.RFC3339), d.err)
	}
	return fmt.Errorf("not posted: webhook host %s got no answer to its last post (%s); next post to it after %s",
		host, d.err, d.until.UTC().Format(time.RFC3339))
}

// askedUntil returns the end of host's hold by its Retry-After, zero when it
// is not so held now.
func (b *Outbox) askedUntil(host string) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	if d := b.hosts[host]; d != nil && d.asked && b.o.Now().Before(d.until) {
		return d.until
	}
	return time.Time{}
}

// hostResult records the outcome of a post to host: a 429 or 503 with a
// Retry-After holds it until then (at most RetryAfterMax), err nil or another
// answer clears it, an error without an answer holds it for its backoff.
func (b *Outbox) hostResult(host string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ra := (*askedToWait)(nil); errors.As(err, &ra) {
		until := b.o.Now().Add(min(ra.wait, b.o.RetryAfterMax))
		b.hosts[host] = &hostDown{until: until, err: ra.Error(), asked: true}
		b.log.Warn().Str("host", host).Str("status", ra.status).Dur("retry_after", ra.wait).Time("until", until.UTC()).
			Msg("merchant notices: webhook host asked to wait (Retry-After): no notice posted to it until then")
		return
	}
	if err == nil || errors.As(err, new(answered)) {
		delete(b.hosts, host)
		return
	}
	d := b.hosts[host]
	if d == nil {
		d = &hostDown{}
		b.hosts[host] = d
	}
	d.failures++
	wait := b.o.RetryMin << min(d.failures-1, 20)
	if wait > b.o.RetryMax || wait <= 0 {
		wait = b.o.RetryMax
	}
	d.until, d.err = b.o.Now().Add(wait), err.Error()
}

// ErrInvalid is wrapped by the errors of a bad webhook.
var ErrInvalid = errors.New("invalid")

// SetEndpoint registers (url non-empty) or removes a merchant's webhook at once,
// on one principal's word, logged as merchant.webhook; in a cluster every node has
// it once this returns. The switch's admin API goes through review instead
// (RequestEndpoint, review.go).
func (b *Outbox) SetEndpoint(merchant, rawURL, secret, by, reason string) error {
	if err := b.checkEndpoint(merchant, rawURL, secret); err != nil {
		return err
	}
	w := &endpointWrite{merchant: merchant, set: true}
	var after json.RawMessage
	if rawURL != "" {
		w.ep = &Endpoint{URL: rawURL, Secret: secret, By: by, At: b.o.Now().UTC()}
		after, _ = json.Marshal(map[string]string{"url": rawURL}) // never the secret
	}
	var via kvsync.Via
	if b.o.Registry != nil {
		via = func(write func(txn *badger.Txn) error) error {
			_, err := b.o.Registry.LogOp(registry.OpEntry{Actor: by, Action: "merchant.webhook", TargetType: "merchant", Target: merchant,
				Reason: reason, After: after}, write)
			return err
		}
	}
	return b.writeEndpoint(func() (*endpointWrite, error) { return w, nil }, via)
}

// checkEndpoint says whether rawURL (empty: a removal) and secret make a webhook.
func (b *Outbox) checkEndpoint(merchant, rawURL, secret string) error {
	if rawURL == "" {
		return nil
	}
	if shown := carddata.MaskField(rawURL); shown != rawURL {
		// The URL is shown to the reviewer and kept in the change and the oplog.
		return fmt.Errorf("webhook URL %q: %w: holds a card number", shown, ErrInvalid)
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("webhook URL %q: %w: want an http or https URL", rawURL, ErrInvalid)
	}
	if u.User != nil {
		return fmt.Errorf("webhook URL %q: %w: user information in the URL is refused", rawURL, ErrInvalid)
	}
	if pr := registry.NoteProblem(rawURL); pr != "" {
		// A reviewer reads the URL: a bidi or zero-width character could make it
		// read as another.
		return fmt.Errorf("webhook URL %+q: %w: %s", rawURL, ErrInvalid, pr)
	}
	if err := b.o.checkTarget(u); err != nil {
		return fmt.Errorf("webhook URL %q: %w: %v", rawURL, ErrInvalid, err)
	}
	if len(secret) < 16 {
		return fmt.Errorf("webhook of %s: %w: the secret must be at least 16 bytes", merchant, ErrInvalid)
	}
	return nil
}

// endpointWrite is one commit of the webhooks: a merchant's endpoint (when set:
// ep, or its removal when ep is nil) and keys to delete with it.
type endpointWrite struct {
	merchant string
	set      bool
	ep       *Endpoint
	del      [][]byte
}

// writeEndpoint commits what build returns (nothing when nil), built afresh for
// each attempt (after a conflict with another node's commit, once that is in),
// and puts it in force in memory under the same lock as the other nodes' commits
// (applied), so that neither loses the other's change. A webhook set carries the
// previous secret of a rotation (rotated, rotation.go).
func (b *Outbox) writeEndpoint(build func() (*endpointWrite, error), via kvsync.Via) error {
	var merchant string
	err := b.sync.Do(context.Background(), func() (statelog.Commit, func(), error) {
		w, err := build()
		if err != nil || w == nil {
			return statelog.Commit{}, nil, err
		}
		merchant = w.merchant
		var kc kvsync.Commit
		key := []byte(pfxEndpoint + w.merchant)
		if w.set && w.ep != nil {
			ep := b.rotated(w.merchant, *w.ep)
			w = &endpointWrite{merchant: w.merchant, set: true, ep: &ep, del: w.del}
		}
		if w.set {
			if w.ep == nil {
				kc.Delete(key)
			} else {
				v, err := b.endpointValue(w.merchant, w.ep)
				if err != nil {
					return statelog.Commit{}, nil, err
				}
				kc.Set(key, v)
			}
		}
		for _, k := range w.del {
			kc.Delete(k)
		}
		return kc.Commit, func() {
			if w.set {
				b.putInMemory(map[string]*Endpoint{w.merchant: w.ep})
			}
		}, nil
	}, via)
	if err != nil {
		if merchant == "" {
			return err
		}
		return fmt.Errorf("notify: store the webhook of %s: %w", merchant, err)
	}
	return nil
}

// putInMemory puts the merchants' endpoints (nil: none) in force. The caller holds
// the webhooks' sync lock (kvsync: a commit's done, or another node's applied), so
// that no two replace the map at once.
func (b *Outbox) putInMemory(changed map[string]*Endpoint) {
	old := *b.eps.Load()
	eps := make(map[string]Endpoint, len(old)+len(changed))
	for k, v := range old {
		eps[k] = v
	}
	for m, ep := range changed {
		if ep == nil {
			delete(eps, m)
		} else {
			eps[m] = *ep
		}
	}
	b.eps.Store(&eps)
	b.mu.Lock()
	for m := range changed {
		b.schedule(m)
	}
	b.mu.Unlock()
}

// Log is a merchant's notices: those pending, then the delivered ones, newest first.
type Log struct {
	Merchant  string     `json:"merchant"`
	Webhook   string     `json:"webhook,omitempty"`
	Held      string     `json:"held,omitempty"` // why nothing is posted to it (its secret does not open)
	Pending   []Delivery `json:"pending"`
	Delivered []Delivery `json:"delivered"`
	Dropped   int64      `json:"dropped_since_start,omitempty"` // all merchants
	// PreviousSecretUntil is when the notices stop being signed also with the
	// secret the webhook's replaced (the rotation's overlap); absent: none.
	PreviousSecretUntil *time.Time `json:"previous_secret_until,omitempty"`
}

// Deliveries returns a merchant's delivery log (at most limit delivered ones,
// default 100).
func (b *Outbox) Deliveries(merchant string, limit int) (*Log, error) {
	if limit <= 0 {
		limit = 100
	}
	out := &Log{Merchant: merchant, Pending: []Delivery{}, Delivered: []Delivery{}, Dropped: b.dropped.Load()}
	if ep, ok := (*b.eps.Load())[merchant]; ok {
		out.Webhook, out.Held = ep.URL, ep.held
		if ep.prev != "" && b.o.Now().Before(ep.prevUntil) {
			until := ep.prevUntil
			out.PreviousSecretUntil = &until
		}
	}
	b.mu.Lock()
	for i, n := range b.pending[merchant] {
		d := Delivery{Notice: n, Status: "pending"}
		if i == 0 {
			d.Attempts, d.LastError = b.attempt[merchant], b.lastErr[merchant]
		}
		out.Pending = append(out.Pending, d)
	}
	b.mu.Unlock()
	err := b.db.View(func(txn *badger.Txn) error {
		prefix := []byte(pfxLog + merchant + "/")
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, Reverse: true, PrefetchValues: true})
		defer it.Close()
		seek := append(append([]byte(nil), prefix...), 0xff)
		for it.Seek(seek); it.Valid() && len(out.Delivered) < limit; it.Next() {
			var d Delivery
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &d) }); err != nil {
				return err
			}
			out.Delivered = append(out.Delivered, d)
		}
		return nil
	})
	return out, err
}

// Recover enqueues the notices of approvals, voids and refunds the journal holds
// since the newest stored notice (less margin) that have none: those a crash lost
// between the transaction and the outbox. Call it before Run.
func (b *Outbox) Recover(ctx context.Context, j interface {
	Scan(ctx context.Context, q journal.Query, fn func(*journal.Record) bool) error
}, margin time.Duration) (int, error) {
	var mark time.Time
	if err := b.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(keyMark))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error { return mark.UnmarshalText(v) })
	}); err != nil {
		return 0, err
	}
	if mark.IsZero() {
		return 0, nil // nothing ever noticed: no webhook before this start
	}
	var batch []Notice
	err := b.db.View(func(txn *badger.Txn) error {
		return j.Scan(ctx, journal.Query{From: mark.Add(-margin), To: b.o.Now().Add(time.Minute)}, func(rec *journal.Record) bool {
			if !message.Approved(rec.RC) {
				return true
			}
			switch rec.Type {
			case "purchase", "preauth", "void", "refund":
			default:
				return true
			}
			mid := strings.TrimRight(rec.MID, " ")
			if _, ok := (*b.eps.Load())[mid]; !ok {
				return true
			}
			if _, err := txn.Get([]byte(pfxRRN + rec.RRN)); err == nil {
				return true
			}
			batch = append(batch, Notice{Merchant: mid, Terminal: rec.TID, Event: rec.Type, RRN: rec.RRN, OriginalRRN: rec.OriginalRRN,
				Amount: rec.Amount, Currency: rec.Currency, PAN: mask(rec.PANMasked), AuthCode: rec.AuthCode, Time: rec.Received.UTC()})
			return true
		})
	})
	if err != nil || len(batch) == 0 {
		return 0, err
	}
	sort.SliceStable(batch, func(i, k int) bool { return batch[i].Time.Before(batch[k].Time) })
	return len(batch), b.store(batch)
}
