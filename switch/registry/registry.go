package registry

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/statelog"
)

// SystemActor is the principal name recorded for changes the switch makes by itself
// (a SoftPOS suspended for a device-integrity finding, a suspend alert action).
const SystemActor = "system"

// DefaultMaxAttestationAge is the default for Options.MaxAttestationAge.
const DefaultMaxAttestationAge = 120 * time.Second

// Options tune a Registry. The zero value is usable.
type Options struct {
	// Logger receives audit-relevant events (suspensions, incidents, alerts). The zero
	// value logs nothing. Nothing the registry logs contains card data.
	Logger zerolog.Logger
	// TokenRoles returns the roles of the admin API's tokens held by name (none
	// when no token of the configuration has that name), read at each approval and
	// preview: a change requested by a name that is no console user is applied
	// only while a token of that name may still request changes (operator or
	// admin), so that removing a token, or giving it another role, also stops the
	// approval of the changes its holder requested. Nil: such requesters are not
	// checked (the tools' --data mode, tests).
	TokenRoles func(name string) []string
	// Metrics, when set, receives the registry's counters. Registration fails if
	// another registry's counters are already on it.
	Metrics *prometheus.Registry
	// MaxAttestationAge is how old a SoftPOS attestation (DE 48 AT) may be; an
	// attestation dated further in the future than this is refused too. Default 120 s.
	MaxAttestationAge time.Duration
	// ChangeTTL is how long a requested change may wait for its review
	// (registry.change_ttl): a change is stamped with its expiry when it is
	// requested (Change.ExpiresAt), and past it can no longer be approved, only
	// rejected or cancelled; reads show it "expired". Default DefaultChangeTTL.
	ChangeTTL time.Duration
	// SeenFlushInterval is how often last-seen data is written to Badger. Default
	// 10 s; a negative value disables the background flush (FlushSeen and Close
	// still write it).
	SeenFlushInterval time.Duration
	// IncidentQueue is the capacity of the queue of incidents waiting to be written.
	// Default 1024. When it is full, Check writes the incident itself (with Log,
	// it drops it instead, counted and logged: Check never waits for a quorum).
	IncidentQueue int
	// Persist, when set, stores incidents durably (returning once they are on disk),
	// in place of a Badger transaction and sync of the registry's own: the switch
	// hands them to the journal's group commit.
	Persist func(ctx context.Context, kvs [][2][]byte) error
	// Keys, when set, looks a key of the key store up by ID, so that the key
	// references of imported terminals can be checked: it returns an error when the
	// key does not exist or has no usable version. Nil skips the check.
	Keys func(id string) (KeyInfo, error)
	// Log, when set, shares the registry with the other nodes of a cluster: each
	// write (a change requested, approved, rejected; an alert rule; an automatic
	// suspension; an oplog entry) is ordered by Log after the revision this node
	// last applied before it is committed to Badger, and the other nodes' writes
	// come in through ApplyRemote (the Registry is a statelog.Replica; the caller
	// follows the Log into it). Nil: a single node, as before, at no cost.
	Log statelog.Log
	// CatchUp, with Log, waits until this registry has applied every commit the
	// Log held when it was called (passing the registry itself); a write that met
	// another node's commit calls it before it runs again. Nil: wait until the
	// revision moves, up to CatchUpTimeout.
	CatchUp func(ctx context.Context, r statelog.Replica) error
	// LogTimeout bounds the Log's ordering of one write. Default 5 s.
	LogTimeout time.Duration
	// CatchUpTimeout bounds CatchUp. Default 5 s.
	CatchUpTimeout time.Duration
	// WebhookAllow lists the URLs alert rules' webhook actions may post to (see
	// alerts.webhook_allow in the configuration); empty allows none.
	WebhookAllow []string
	// WebhookURLKey keys the fingerprint an alert rule's webhook URL is shown with
	// (RedactWebhookURL, "hmac:"): the switch derives it from its card hash key
	// with WebhookURLFingerprintLabel, so that it is the same on every node of a
	// cluster and across restarts, and no role reads it (hookurl.go says why this
	// key). Nil: a random key of this process's own, whose fingerprints match no
	// other process's (the tools' offline mode, which has no card hash key).
	WebhookURLKey []byte
	// Node is this node's number in a cluster (cluster.node), recorded in the
	// incidents and alerts it raises; 0 on a single node.
	Node int
	// MaxPendingIncidents bounds, with Log, the incidents held in memory while
	// they cannot be ordered (no quorum). Default 10,000; beyond it new incidents
	// are dropped, counted and logged.
	MaxPendingIncidents int
}

// KeyInfo is what the registry needs to know of a key of the key store.
type KeyInfo struct {
	Type  string // TMK, TPK, TAK, BDK, ZPK, ...
	Owner string // terminal ID, issuer ID, or KSN prefix (BDK)
}

// Registry holds merchants and terminals, their lifecycle (changes under two-person
// review and the operation log), incidents and offline alerts. All its methods are
// safe for concurrent use. Check, Seen, Terminal and Merchant read an in-memory
// snapshot and never touch Badger or a lock shared with writers.
//
// A Registry is a thin composition of components with one job each, whose methods
// it promotes:
//
//   - store (store.go, seen.go, oplog.go): merchants, terminals and their last-seen
//     data in Badger and in the snapshot Check reads; the operation log; the write
//     lock every oplog-writing component takes.
//   - review (changes.go, apply.go, importcsv.go): changes under two-person review,
//     the CSV import, and the switch's own suspensions.
//   - checker (check.go): the binding and SoftPOS checks of every financial request.
//   - incidents (incidents.go, fraud.go): incidents, queued off the hot path.
//   - alerting (alerts.go, webhook.go): alert rules and alerts; the Monitor
//     (monitor.go, wave.go) runs them, with webhooks and the suspension wave limit.
type Registry struct {
	*store
	*review
	*checker
	*incidents
	*alerting

	closeErr error
	once     sync.Once
}

// New loads the registry stored under "reg/" in db (an open database shared with
// other subsystems) and starts its background writers. clock is the time source for
// everything the registry stamps (nil means time.Now). Call Close before closing db.
func New(db *badger.DB, clock func() time.Time, opts Options) (*Registry, error) {
	if db == nil {
		return nil, errors.New("registry: nil Badger database")
	}
	if clock == nil {
		clock = time.Now
	}
	if opts.MaxAttestationAge <= 0 {
		opts.MaxAttestationAge = DefaultMaxAttestationAge
	}
	if opts.ChangeTTL <= 0 {
		opts.ChangeTTL = DefaultChangeTTL
	}
	if opts.SeenFlushInterval == 0 {
		opts.SeenFlushInterval = 10 * time.Second
	}
	if opts.LogTimeout <= 0 {
		opts.LogTimeout = 5 * time.Second
	}
	if opts.CatchUpTimeout <= 0 {
		opts.CatchUpTimeout = 5 * time.Second
	}
	if opts.IncidentQueue <= 0 {
		opts.IncidentQueue = 1024
	}
	if opts.MaxPendingIncidents <= 0 {
		opts.MaxPendingIncidents = 10_000
	}
	m, err := newMetrics(opts.Metrics)
	if err != nil {
		return nil, err
	}
	hookKey := slices.Clone(opts.WebhookURLKey)
	if len(hookKey) == 0 {
		hookKey = make([]byte, 32)
		if _, err := rand.Read(hookKey); err != nil {
			return nil, fmt.Errorf("registry: webhook URL fingerprint key: %w", err)
		}
	}
	opts.WebhookURLKey = nil // kept once, in hookKey
	st := &store{db: db, clock: clock, log: opts.Logger, opts: opts, m: m, hookKey: hookKey, stop: make(chan struct{})}
	al := &alerting{store: st, rules: map[string]*AlertRule{}, alertIdx: map[string]alertRef{}, recoveries: map[uint64]time.Time{}}
	rv := &review{store: st, alerts: al}
	inc := &incidents{store: st, incQ: make(chan incItem, opts.IncidentQueue), stop: make(chan struct{}),
		landed: map[string]uint64{}, awaited: map[string]struct{}{}}
	ck := &checker{store: st, incidents: inc, review: rv}
	if err := db.View(func(txn *badger.Txn) error {
		for _, load := range []func(*badger.Txn) error{st.load, rv.load, inc.load, al.load} {
			if err := load(txn); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	reg := &Registry{store: st, review: rv, checker: ck, incidents: inc, alerting: al}
	st.replica = reg
	st.warnUnboundSoftPOS()
	st.warnUnboundDUKPT()
	st.warnSharedDUKPT()
	st.warnSharedBinding()
	inc.start()
	st.startSeenFlusher()
	return reg, nil
}

// Close stops the background writers, writes queued incidents and last-seen data,
// and returns the first error. It does not close the Badger database.
func (r *Registry) Close() error {
	r.once.Do(func() {
		r.incidents.shutdown()
		r.closeErr = r.store.shutdown()
	})
	return r.closeErr
}

// warnUnboundDUKPT logs the DUKPT terminals (not closed) whose records name no
// DUKPT device: each is bound by its BDK only, and takes any KSN under the BDK's
// KSN prefix, another terminal's device's among them, until a reviewed change
// binds it (KeyRefs.DUKPTDevice).
func (r *store) warnUnboundDUKPT() {
	var ids []string
	n := 0
	for id, sl := range r.snap.Load().terminals {
		if t := sl.rec.Load(); t.Keys.PINMode == PINModeDUKPT && t.Keys.DUKPTDevice == "" && t.Status != TerminalClosed {
			if n++; len(ids) < 20 {
				ids = append(ids, id)
			}
		}
	}
	if n == 0 {
		return
	}
	slices.Sort(ids)
	r.log.Warn().Int("terminals", n).Strs("first", ids).
		Msg("DUKPT terminals without a DUKPT device: each takes any KSN under its BDK's KSN prefix, those of other terminals' devices " +
			"sharing the BDK among them, until bound (`switchyard terminal change ID --dukpt-device KSN`, approved by another reviewer; " +
			"`switchyard terminal list --csv` shows them with pin_mode dukpt and an empty dukpt_device)")
}

// sharedClaims counts the claims of kinds held by more than one terminal (not
// closed) and lists the first 20 in order, each as its claimText and the
// terminals holding it (`imei "860000000000001": T0000001,T4300001`).
func (r *store) sharedClaims(kinds ...claimKind) (n int, first []string) {
	ix := r.refs.Load()
	for _, k := range kinds {
		for v, ids := range ix.claims[k] {
			if len(ids) > 1 {
				n++
				first = append(first, claimText(k, v)+": "+strings.Join(ids, ","))
			}
		}
	}
	slices.Sort(first)
	return n, first[:min(len(first), 20)]
}

// warnSharedDUKPT logs the DUKPT devices bound to more than one terminal (not
// closed): records stored before 6 December 2026, when the registry began to refuse
// a device already bound to another terminal. Each of those terminals takes the
// device's KSNs, so each can use PIN blocks the device enciphered for another.
func (r *store) warnSharedDUKPT() {
	n, shared := r.sharedClaims(claimDUKPT)
	if n == 0 {
		return
	}
	r.log.Warn().Int("devices", n).Strs("first", shared).
		Msg("DUKPT devices bound to more than one terminal: each of them takes the device's KSNs; keep the device on its own terminal " +
			"and bind the others to theirs (`switchyard terminal change ID --dukpt-device KSN`, approved by another reviewer)")
}

// warnSharedBinding logs, in one line, the device serials, SIMs and IMEIs bound to
// more than one terminal (not closed): records stored before 6 December 2026, when
// the registry began to refuse a value already bound to another terminal. One
// device can act as each of those terminals, which makes the binding meaningless.
// Their other changes still go through.
func (r *store) warnSharedBinding() {
	n, shared := r.sharedClaims(claimSerial, claimSIM, claimIMEI)
	if n == 0 {
		return
	}
	r.log.Warn().Int("values", n).Strs("first", shared).
		Msg("device serials, SIMs or IMEIs bound to more than one terminal: one device can act as each of them; keep each value on the " +
			"terminal of the device that has it and correct or unbind it on the others (`switchyard terminal change ID --device-serial SERIAL`, " +
			"`--iccid ICCID` or `--imei IMEI`, an empty value unbinding, approved by another reviewer)")
}

// warnUnboundSoftPOS logs the SoftPOS terminals (not closed) whose records have no
// device serial: stored before validation required one, each is declined 58
// softpos-device-unbound until a reviewed change binds it.
func (r *store) warnUnboundSoftPOS() {
	var ids []string
	n := 0
	for id, sl := range r.snap.Load().terminals {
		if t := sl.rec.Load(); t.Kind == KindSoftPOS && t.Binding.DeviceSerial == "" && t.Status != TerminalClosed {
			if n++; len(ids) < 20 {
				ids = append(ids, id)
			}
		}
	}
	if n == 0 {
		return
	}
	slices.Sort(ids)
	r.log.Warn().Int("terminals", n).Strs("first", ids).
		Msg("SoftPOS terminals without a device serial: each is declined 58 softpos-device-unbound until bound " +
			"(`switchyard terminal change ID --device-serial SERIAL`, approved by another reviewer; " +
			"`switchyard terminal list --kind softpos --csv` shows them with an empty device_serial)")
}
