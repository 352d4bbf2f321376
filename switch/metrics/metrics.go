// Package metrics holds the switch's Prometheus collectors, registered on a registry of
// the switch's own (never the global one), and served on the admin port at /metrics.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the switch's collectors.
type Metrics struct {
	Registry *prometheus.Registry

	Transactions  *prometheus.CounterVec   // by mti, rc, issuer, decided_by
	Latency       *prometheus.HistogramVec // end-to-end in the switch, by mti, issuer
	IssuerLatency *prometheus.HistogramVec // the issuer leg, by issuer
	IssuerErrors  *prometheus.CounterVec   // by issuer, kind (timeout, payer-not-confirmed, unavailable, error; late, unmatched, wrong-mti: answers)
	IssuerBreaker *prometheus.GaugeVec     // circuit breaker state by issuer: 0 closed, 1 half-open, 2 open
	Conns         *prometheus.GaugeVec     // open terminal connections by listener
	ConnsTotal    *prometheus.CounterVec   // accepted, by listener
	ConnsClosed   *prometheus.CounterVec   // by listener, reason
	ProtoErrors   *prometheus.CounterVec   // by listener, reason
	ConnsRefused  *prometheus.CounterVec   // closed at accept by a limit, or for a PROXY header, by listener, reason
	ReqsRefused   *prometheus.CounterVec   // answered without processing by a limit, by listener, reason
	FormatErrors  prometheus.Counter       // answered with 30
	JournalBatch  prometheus.Histogram     // records per group commit
	JournalSync   prometheus.Histogram     // seconds per group commit
	JournalErrors prometheus.Counter
	// JournalPrealloc counts failures to zero-fill the journal's log ahead of its
	// appends (the disk filling up, most likely).
	JournalPrealloc prometheus.Counter
	Answers         *prometheus.HistogramVec // terminal turnaround (read to written), by listener
	Stages          *Stages                  // a transaction's stages, by stage (stages.go)
	RuleHits        *prometheus.CounterVec   // risk rule hits by rule, mode (enforce, shadow)
	// CUPUploadsUnmatched counts the cup batch uploads (0320) answered other than 00,
	// by reason (cup.Upload*): transactions the terminal keeps and an operator
	// reconciles, offline approvals the switch refused to capture among them.
	CUPUploadsUnmatched *prometheus.CounterVec
	// CUPKeyRefusals counts the cup requests refused A0 because the MAC key they
	// verified under must be renewed (the terminal signs in for new keys), by reason
	// (cup.KeyTooOld, cup.KeyTooManySTANs).
	CUPKeyRefusals *prometheus.CounterVec
	// CUPTestMode counts the cup card messages of terminals in test status (the
	// header's terminal status 1) by action: rejected (answered 58, nothing
	// forwarded) or answered (00 by the switch, listener test_mode answer).
	CUPTestMode *prometheus.CounterVec
	// NetworkUnproven counts the sign-offs and echoes (0800 by network code) that
	// did not make their terminal seen: no MAC verified under its key, not on its
	// signed-in cup connection. They are answered; nothing else records them.
	NetworkUnproven *prometheus.CounterVec
	// OfflineFinalWrites counts the offline captures (the cup dialect's uploads of
	// card approvals) whose final, approved record the journal did not take when
	// they were answered, by outcome: failed (answered 91 or 96; the approval kept
	// and written again by the housekeeping), written (written later, without a
	// restart), dropped (too many records waiting: left open to a restart's
	// recovery). failed less written and dropped is what still waits.
	OfflineFinalWrites *prometheus.CounterVec
	// MerchantLocks counts the card purchases and pre-authorizations of a cluster
	// node that took their merchant's cluster-wide lock because they came near one
	// of its limits (pipeline's merchantlock.go), by outcome: taken (checked by the
	// rules once the node caught up, the lock held until the record was durable),
	// unavailable (the lock not taken in 5 s or no quorum: answered 91
	// merchant-limits-unavailable). A purchase far from its merchant's limits takes
	// none and is not counted; a single switch never counts.
	MerchantLocks *prometheus.CounterVec
	// CertExpiry is the NotAfter of every X.509 certificate the switch loaded, by
	// use, listener, subject and serial (expiry.go, CertificatesLoaded).
	CertExpiry *prometheus.GaugeVec
}

// New creates the collectors and registers them, with the Go and process collectors,
// on a new registry.
func New() *Metrics {
	r := prometheus.NewRegistry()
	lat := []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15}
	m := &Metrics{
		Registry: r,
		Transactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_transactions_total", Help: "Transactions answered, by request MTI, response code, issuer and who decided.",
		}, []string{"mti", "rc", "issuer", "decided_by"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "switchyard_transaction_duration_seconds", Help: "Time from request decoded to response ready, by request MTI and issuer.", Buckets: lat,
		}, []string{"mti", "issuer"}),
		IssuerLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "switchyard_issuer_duration_seconds", Help: "Issuer round trip time, by issuer.", Buckets: lat,
		}, []string{"issuer"}),
		IssuerErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_issuer_errors_total", Help: "Issuer requests without an answer, by issuer and kind.",
		}, []string{"issuer", "kind"}),
		IssuerBreaker: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchyard_issuer_breaker_state", Help: "Circuit breaker state by issuer: 0 closed, 1 half-open (probing), 2 open (no request sent).",
		}, []string{"issuer"}),
		Conns: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchyard_terminal_connections", Help: "Open terminal connections by listener.",
		}, []string{"listener"}),
		ConnsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			// Not switchyard_terminal_connections_total: in OpenMetrics that counter's
			// family would be the gauge's name (renamed 6 December 2026).
			Name: "switchyard_terminal_connections_accepted_total", Help: "Terminal connections accepted, by listener.",
		}, []string{"listener"}),
		ConnsClosed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_terminal_connections_closed_total", Help: "Terminal connections closed, by listener and reason.",
		}, []string{"listener", "reason"}),
		ConnsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_terminal_connections_refused_total", Help: "Terminal connections refused, by listener and reason: a listener limit reached (max-conns, per-source), or their PROXY protocol header (proxy-untrusted, proxy-missing, proxy-invalid, proxy-timeout).",
		}, []string{"listener", "reason"}),
		ReqsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_terminal_requests_refused_total", Help: "Terminal requests answered at once without processing because a listener limit was reached, by listener and reason (source-busy: the source address had max_in_flight_per_source requests in progress).",
		}, []string{"listener", "reason"}),
		CUPUploadsUnmatched: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_cup_batch_uploads_unmatched_total",
			Help: "cup batch uploads (0320) answered other than 00 (the terminal keeps the transaction), by reason: not-in-journal, unreadable, journal-error, and for offline approvals offline-refused (by the pipeline's checks), offline-out-of-window, invalid-amount, currency-not-accepted (an F49 the listener does not take), offline-no-certificate (no TC of F4 in F55), offline-over-limit (over the listener's offline_max_amount, or the merchant's per-transaction, daily, monthly or daily count limit), offline-not-captured (no capturer configured).",
		}, []string{"reason"}),
		CUPKeyRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_cup_mac_key_refusals_total",
			Help: "cup requests refused A0, nothing forwarded, because the MAC key they verified under must be renewed by a sign-in, by reason: mac-key-too-old (made more than 7 days ago), mac-key-too-many-stans (the terminal's STANs under it passed the listener's max_stans_per_key).",
		}, []string{"reason"}),
		CUPTestMode: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_cup_test_mode_total",
			Help: "cup card messages of terminals whose header says they are in test status, never forwarded, by action: rejected (answered 58 terminal-test-mode, journaled), answered (00 by the switch, for a listener with test_mode answer).",
		}, []string{"action"}),
		NetworkUnproven: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_network_unproven_total",
			Help: "Sign-offs and echoes answered without making their terminal seen (no MAC verified under its key, not on its signed-in cup connection), by network code (301 echo, 002 sign-off).",
		}, []string{"net_code"}),
		OfflineFinalWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_offline_capture_final_writes_total",
			Help: "Offline captures (cup 0320 uploads of card approvals) whose final, approved record the journal did not take when they were answered, by outcome: failed (answered 91 journal-unavailable or 96 system-malfunction; the approval kept and written again every 5 s), written (written later, without a restart: the upload's resend is answered 00), dropped (too many records waiting: left open to a restart's recovery).",
		}, []string{"outcome"}),
		MerchantLocks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_purchase_merchant_locks_total",
			Help: "Card purchases and pre-authorizations of a cluster node that took their merchant's cluster-wide lock, being near one of its daily, daily count or monthly limits (within cluster.merchant_lock_within), by outcome: taken (checked exactly once the node caught up), unavailable (lock not taken: answered 91 merchant-limits-unavailable).",
		}, []string{"outcome"}),
		ProtoErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_protocol_errors_total", Help: "Protocol errors that closed a terminal connection, by listener and reason.",
		}, []string{"listener", "reason"}),
		FormatErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchyard_format_errors_total", Help: "Requests answered with DE 39 = 30.",
		}),
		JournalBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "switchyard_journal_batch_records", Help: "Records written per journal group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14),
		}),
		JournalSync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "switchyard_journal_commit_seconds", Help: "Duration of a journal group commit (write and fsync).", Buckets: lat,
		}),
		Answers: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "switchyard_terminal_turnaround_seconds", Help: "Time from a request's last byte read to its answer written to the socket, by listener: what a terminal waits, less the network.", Buckets: lat,
		}, []string{"listener"}),
		Stages:     newStages(),
		CertExpiry: newCertExpiry(),
		JournalErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchyard_journal_errors_total", Help: "Journal writes that failed.",
		}),
		JournalPrealloc: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchyard_journal_prealloc_errors_total", Help: "Failures to zero-fill the journal's log ahead of its appends (most likely the disk filling up); the appends go on, extending the file.",
		}),
		RuleHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_risk_rule_hits_total", Help: "Risk rule hits, shadow ones included, by rule and mode (the console's early warning watches them).",
		}, []string{"rule", "mode"}),
	}
	r.MustRegister(m.Transactions, m.Latency, m.IssuerLatency, m.IssuerErrors, m.IssuerBreaker, m.Conns, m.ConnsTotal,
		m.ConnsClosed, m.ConnsRefused, m.ReqsRefused, m.ProtoErrors, m.FormatErrors, m.JournalBatch, m.JournalSync, m.JournalErrors, m.JournalPrealloc, m.Answers, m.Stages, m.RuleHits, m.CUPUploadsUnmatched, m.CUPKeyRefusals, m.CUPTestMode, m.NetworkUnproven, m.OfflineFinalWrites, m.MerchantLocks, m.CertExpiry,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ConnOpened implements the front-end's metrics.
func (m *Metrics) ConnOpened(listener string) {
	m.Conns.WithLabelValues(listener).Inc()
	m.ConnsTotal.WithLabelValues(listener).Inc()
}

// ConnClosed implements the front-end's metrics.
func (m *Metrics) ConnClosed(listener, reason string) {
	m.Conns.WithLabelValues(listener).Dec()
	m.ConnsClosed.WithLabelValues(listener, reasonLabel(reason)).Inc()
}

// ProtocolError implements the front-end's metrics.
func (m *Metrics) ProtocolError(listener, reason string) {
	m.ProtoErrors.WithLabelValues(listener, reason).Inc()
}

// Prepared names the label values known at a switch's start whose counters an
// alert reads with increase() or rate(): see Metrics.Prepare.
type Prepared struct {
	Issuers   []string // configured issuer ids (the demo issuer's "demo" included)
	Listeners []string // terminal listener names
	CUP       bool     // a listener speaks the cup dialect
	Cluster   bool     // the switch is a cluster node (merchant locks)
}

// Prepare creates, at zero, the series of the counters that docs/alerts/
// switchyard.rules.yml reads with increase() or rate() and whose label values
// are known at the start: a series that appears with its first count has no
// sample before it, so increase() over it is 0 and the first failure after a
// start would raise no alert (Prometheus's advice: initialise the series you
// know). The issuers' unanswered requests (timeout, unavailable), the listeners'
// limit refusals (max-conns, per-source), the cup MAC key refusals, the offline
// captures' final writes and, on a cluster node, the merchant locks.
func (m *Metrics) Prepare(p Prepared) {
	for _, id := range p.Issuers {
		for _, kind := range []string{"timeout", "unavailable"} {
			m.IssuerErrors.WithLabelValues(id, kind)
		}
	}
	for _, l := range p.Listeners {
		for _, reason := range []string{"max-conns", "per-source"} {
			m.ConnsRefused.WithLabelValues(l, reason)
		}
	}
	if p.CUP {
		for _, reason := range []string{"mac-key-too-old", "mac-key-too-many-stans"} {
			m.CUPKeyRefusals.WithLabelValues(reason)
		}
		for _, outcome := range []string{"failed", "written", "dropped"} {
			m.OfflineFinalWrites.WithLabelValues(outcome)
		}
		for _, action := range []string{"rejected", "answered"} {
			m.CUPTestMode.WithLabelValues(action)
		}
	}
	if p.Cluster {
		for _, outcome := range []string{"taken", "unavailable"} {
			m.MerchantLocks.WithLabelValues(outcome)
		}
	}
}

// ConnRefused implements the front-end's metrics.
func (m *Metrics) ConnRefused(listener, reason string) {
	m.ConnsRefused.WithLabelValues(listener, reason).Inc()
}

// RequestRefused implements the front-end's metrics.
func (m *Metrics) RequestRefused(listener, reason string) {
	m.ReqsRefused.WithLabelValues(listener, reason).Inc()
}

// Turnaround implements frontend.Metrics.
func (m *Metrics) Turnaround(listener string) func(seconds float64) {
	return m.Answers.WithLabelValues(listener).Observe
}

// JournalCommitted records one group commit.
func (m *Metrics) JournalCommitted(batch int, d time.Duration) {
	m.JournalBatch.Observe(float64(batch))
	m.JournalSync.Observe(d.Seconds())
}

// reasonLabel keeps the label's cardinality bounded: free-text reasons become "other".
func reasonLabel(r string) string {
	switch r {
	case "closed by peer", "idle timeout", "frame too long", "empty frame", "draining", "read error",
		"write error", "listener closed", "closed", "handler panic", "first frame timeout", "proxy header refused", "per-source":
		return r
	}
	return "other"
}

// SAFCounts are one issuer's store-and-forward figures.
type SAFCounts struct {
	Queued                           int
	Tries, Acked, Failed, Suppressed int64
	// Held and HeldLong: reversal advices held back behind an earlier advice of
	// their transaction (saf.Stats).
	Held, HeldLong int64
	// Parked: advices parked out of the queue, answered again and again without an
	// acknowledgement (saf.Stats.Parked).
	Parked int64
}

// SAFCollector exports the store-and-forward queue's figures by issuer, read from
// the queue at each scrape: the rate of switchyard_saf_acked_total is the drain rate.
func SAFCollector(read func() map[string]SAFCounts) prometheus.Collector {
	return safCollector{read}
}

type safCollector struct{ read func() map[string]SAFCounts }

var (
	safQueued = prometheus.NewDesc("switchyard_saf_issuer_queued",
		"Advices waiting in the store-and-forward queue, by issuer.", []string{"issuer"}, nil)
	safTries = prometheus.NewDesc("switchyard_saf_tries_total",
		"Advices sent to the issuer (first tries and repeats), by issuer.", []string{"issuer"}, nil)
	safAcked = prometheus.NewDesc("switchyard_saf_acked_total",
		"Advices the issuer acknowledged (delivered, removed from the queue), by issuer.", []string{"issuer"}, nil)
	safFailed = prometheus.NewDesc("switchyard_saf_failed_total",
		"Advice tries that failed (issuer down, no answer in time), by issuer; each is repeated after a backoff.", []string{"issuer"}, nil)
	safSuppressed = prometheus.NewDesc("switchyard_saf_failure_logs_suppressed_total",
		"Failed advice tries left out of the log by its rate limit (one warning per issuer per minute), by issuer.", []string{"issuer"}, nil)
	safHeld = prometheus.NewDesc("switchyard_saf_reversals_held_total",
		"Reversal advices held back behind an earlier advice of their transaction still queued (so that the issuer never gets a reversal before the advice it reverses), by issuer.", []string{"issuer"}, nil)
	safParked = prometheus.NewDesc("switchyard_saf_parked_total",
		"Advices parked out of the store-and-forward queue: the issuer answered them saf.park_after times without an acknowledgement (no DE 39); they are no longer sent, and wait for an operator (GET /api/v1/saf/parked). By issuer.", []string{"issuer"}, nil)
	safHeldLong = prometheus.NewDesc("switchyard_saf_reversals_held_long_total",
		"Reversal advices still held back after 5 min (logged): the earlier advice of their transaction is not being delivered, and they wait for it. By issuer.", []string{"issuer"}, nil)
)

func (c safCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{safQueued, safTries, safAcked, safFailed, safSuppressed, safHeld, safHeldLong, safParked} {
		ch <- d
	}
}

func (c safCollector) Collect(ch chan<- prometheus.Metric) {
	for issuer, s := range c.read() {
		ch <- prometheus.MustNewConstMetric(safQueued, prometheus.GaugeValue, float64(s.Queued), issuer)
		ch <- prometheus.MustNewConstMetric(safTries, prometheus.CounterValue, float64(s.Tries), issuer)
		ch <- prometheus.MustNewConstMetric(safAcked, prometheus.CounterValue, float64(s.Acked), issuer)
		ch <- prometheus.MustNewConstMetric(safFailed, prometheus.CounterValue, float64(s.Failed), issuer)
		ch <- prometheus.MustNewConstMetric(safSuppressed, prometheus.CounterValue, float64(s.Suppressed), issuer)
		ch <- prometheus.MustNewConstMetric(safHeld, prometheus.CounterValue, float64(s.Held), issuer)
		ch <- prometheus.MustNewConstMetric(safHeldLong, prometheus.CounterValue, float64(s.HeldLong), issuer)
		ch <- prometheus.MustNewConstMetric(safParked, prometheus.CounterValue, float64(s.Parked), issuer)
	}
}
