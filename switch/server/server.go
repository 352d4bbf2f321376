// Package server assembles a running switch from its configuration: the Badger
// database, journal, issuer links (and the built-in demo issuer), the transaction
// pipeline, the terminal listeners and the admin HTTP server, and takes it down
// gracefully. The admin routes themselves are switch/api's.
//
// # Loggers (the switch's one convention)
//
// A component takes its zerolog.Logger as a value in the Logger field of its
// Options or Config (the zero value logs nothing): never as a parameter, never as a
// pointer. The wiring tags it once with the component's name,
// log.With().Str("component", name).Logger(): Open for the stores, the links, the
// pipeline, the listeners and the API; the commands in internal/cli for what they
// start themselves (the issuer simulator is "issuer-sim"). A component never tags
// itself (it may add its instance: the listener's name, the issuer's ID) and never
// logs through a global logger or to stdout/stderr. The exceptions, all in this
// package: New and Open take the command's root logger as an argument (it enters
// the wiring there); OpenDB, which has no options, takes one for Badger and tags it
// "badger"; the StartDemoIssuer (and StartDemoWallet) hook hands the root logger to
// the demo wiring to tag; Reload sets zerolog's global level, the one knob that reaches every logger
// already handed out. TestLoggerConvention (loggers_test.go) enforces this.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/payshield"
	"github.com/switchyard/switchyard/internal/cpubusy"
	"github.com/switchyard/switchyard/keys"
	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/risk/profile"
	"github.com/switchyard/switchyard/rules"
	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/api"
	"github.com/switchyard/switchyard/switch/apps"
	"github.com/switchyard/switchyard/switch/attest"
	"github.com/switchyard/switchyard/switch/cases"
	"github.com/switchyard/switchyard/switch/cluster"
	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/console"
	"github.com/switchyard/switchyard/switch/cup"
	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/internal/seal"
	"github.com/switchyard/switchyard/switch/issuer"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/listreview"
	"github.com/switchyard/switchyard/switch/merchantrisk"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/metrics"
	"github.com/switchyard/switchyard/switch/notify"
	"github.com/switchyard/switchyard/switch/pipeline"
	"github.com/switchyard/switchyard/switch/registry"
	"github.com/switchyard/switchyard/switch/saf"
	"github.com/switchyard/switchyard/switch/sched"
	"github.com/switchyard/switchyard/switch/wallet"
)

// Server is a running switch.
type Server struct {
	cfg       *config.Config
	log       zerolog.Logger
	version   string // the release, for GET /api/v1/info (WithVersion)
	db        *badger.DB
	newStore  bool // db held no key when this start opened it (storedtext.go)
	Journal   *journal.Store
	Metrics   *metrics.Metrics
	Pipeline  *pipeline.Pipeline
	Registry  *registry.Registry
	Queue     saf.Store // the Badger queue, or the cluster's JetStream queue
	HSM       hsm.HSM
	hsmClient *payshield.Client // hsm.backend payshield: closed by Close
	Risk      *risk.Engine
	Profiles  *profile.Set // the merchant profiles the rules read (merchant.profile.*)
	Cases     *cases.Store
	Keys      *keys.Store
	Apps      *apps.Manager    // terminal applications (tasks.go, docs/apps.md)
	Tasks     *sched.Scheduler // the scheduled tasks (tasks.go, docs/tasks.md)
	demoSim   DemoIssuer
	monitor   *registry.Monitor
	profiles  *profileRefresher
	ratings   *merchantrisk.Ratings // merchantrisk.go
	notices   *notify.Outbox        // merchantrisk.go
	lists     *listreview.Review    // the risk-list edits under review
	loops     *loops
	cpu       *cpubusy.Meter // the CPUs' busy share for journal.window_cpu, sampled by a loop
	links     map[string]*issuer.Link
	listeners []*frontend.Listener
	adminSrv  *http.Server
	adminLn   net.Listener
	adminReqs *inFlight
	auth      *admin.Authenticator
	// proxies are admin.trusted_proxies and admin.trusted_proxy_header: the
	// reverse proxies whose X-Forwarded-For or Forwarded names the client
	// (admin.ClientAddr) to the refusals' log and the console.
	proxies admin.Proxies
	// hosts are admin.allowed_hosts, checked before every admin request
	// (admin.CheckHost); hostRefused logs and counts a refusal (adminrefused.go).
	hosts       admin.AllowedHosts
	hostRefused func(admin.HostRefusal)
	mux         *http.ServeMux
	console     *console.Console // the web console (console.go); nil when disabled
	ready       atomic.Bool
	draining    atomic.Bool                  // set by Drain and Close: /readyz says draining, not starting
	readyHook   atomic.Pointer[func() error] // SetReadyCheck's
	disk        *diskGuard                   // nil with journal.min_free_mb -1 (diskguard.go)
	// cl is what a node of a cluster adds (nil alone); remotePipe is the pipeline
	// for the cluster journal's applier, which starts before the pipeline exists.
	cl         *clusterNode
	remotePipe atomic.Pointer[pipeline.Pipeline]
	early      earlyStandIns // stand-ins applied before remotePipe was set (fold.go)
	startOnce  sync.Once
	closeOnce  sync.Once
	reloaders  []func() error
	// beforeStores, if set (by tests), is called in the shutdown once every goroutine
	// has returned, right before the stores close.
	beforeStores func()
	// foldOwn is set while the cluster journal's applier gives back this node's
	// own records at the start of a node whose velocity counters do not hold them
	// (fold.go): they are folded into the counters as the other nodes' are.
	foldOwn atomic.Bool

	// cupSessions are the signed-in terminals of the cup listeners (server/cup.go).
	cupSessions *cup.Sessions
	// QR payments (qr.go): the wallet connectors and demo mode's wallet simulator.
	wallets    map[string]*wallet.Connector
	demoWallet DemoWallet
	orders     *orderDesk
	// cardHash describes the card hash key (cardhash.go).
	cardHash cardHashKey

	// journalBroken is closed, once (brokenOnce), when the journal's log breaks
	// (journal.Options.OnBroken): JournalBroken.
	journalBroken chan struct{}
	brokenOnce    sync.Once

	// dirSync, when set (by tests, to see it called or fail it), replaces
	// syncDir, which makes a rename in a directory durable: the settlement
	// file's (tasks.go).
	dirSync func(dir string) error
	// certs are the certificates a reload reads again (certreload.go): the TLS
	// listeners' and the HSM link's client certificate.
	certs []*certFiles
	// attest verifies SoftPOS attestation tokens; a reload replaces its keys and
	// apps (attest.go, reloadAttestation).
	attest *attest.Verifier
}

// OpenDB opens (creating if missing) the Badger database under dir with the options the
// switch uses: no sync per write (the journal syncs its group commits). It narrows the
// process umask to 077 and makes dir readable by its owner only (restrictDataDir).
func OpenDB(dir string, log zerolog.Logger) (*badger.DB, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory %s: %w", dir, err)
	}
	if err := restrictDataDir(dir); err != nil {
		return nil, err
	}
	if err := checkManifest(dir); err != nil {
		return nil, err
	}
	opts := badger.DefaultOptions(dir).
		WithSyncWrites(false).
		WithLogger(badgerLogger{log.With().Str("component", "badger").Logger()}).
		WithNumVersionsToKeep(1).
		WithCompactL0OnClose(true).
		WithValueThreshold(1 << 20).
		WithCompression(options.None). // journal records are small and compact already: spend no CPU on it
		// Every table's checksums are verified as it is opened (at start, and each
		// new one a flush or compaction writes): a damaged table stops the open,
		// named, instead of crashing a compaction or being served. Until 7 December
		// 2026 none was verified (TestDamagedTableRefused).
		WithChecksumVerificationMode(options.OnTableRead).
		// Every read-modify-write of the switch is serialized by its owner's lock (the
		// registry's, the key store's, the risk lists'; the journal has one writer), so
		// Badger's optimistic conflict tracking would only cost a map per transaction.
		WithDetectConflicts(false)
	db, err := badger.Open(opts)
	if err != nil {
		// Badger formats the errors of its own writes with %v: ENOSPC cannot be
		// unwrapped, so the free space is looked at again.
		if hint := openDBHint(dir, err); hint != "" {
			return nil, fmt.Errorf("open database in %s: %w (%s)", dir, err, hint)
		}
		return nil, fmt.Errorf("open database in %s: %w", dir, err)
	}
	return db, nil
}

// checkManifest refuses a database directory that holds Badger's tables (*.sst) but
// not its MANIFEST, which lists them: Badger would start an empty database there and
// delete them as files it does not know. Until 7 December 2026 the switch so started
// ready with a new demo fleet, its journal replayed from its first frame. (The
// journal refuses a log with frames under a database without its j/applied, which
// catches the tables lost with it: journal.Open.)
func checkManifest(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST")); !errors.Is(err, fs.ErrNotExist) {
		return nil // there, or not known: Badger's open says
	}
	tables, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	if err != nil || len(tables) == 0 {
		return nil // a new database
	}
	return fmt.Errorf("open database in %s: it holds %d table files (%s, ...) but no MANIFEST, without which Badger would start an empty database and delete them: restore MANIFEST, or the whole data directory, from its backup, then start again", dir, len(tables), filepath.Base(tables[0]))
}

// openDBHint says what most likely kept Badger from opening dir with err: its disk
// full, its file system read-only or failing writes (a probe file cannot be created),
// or another switch holding its LOCK; "" when it is none of them (a damaged file,
// which err names). Until 6 December 2026 a read-only file system was answered "is
// another switchyard using it?" (e2e TestReadOnlyDataDirAtStart), and until 7
// December 2026 so was every other error, a damaged MANIFEST's too (TestOpenDBHint).
func openDBHint(dir string, err error) string {
	if free, err := freeSpace(dir); err == nil && free < 1<<20 {
		return fmt.Sprintf("its disk has %d KiB free: free space on it, then start again", free>>10)
	}
	f, perr := os.CreateTemp(dir, ".write-probe-*")
	switch {
	case errors.Is(perr, syscall.EROFS):
		return "its file system is read-only (remounted so after an I/O error?): check the disk and its kernel log, remount it read-write, then start again"
	case perr != nil:
		return fmt.Sprintf("the directory cannot be written (%v): check the disk and its kernel log, then start again", perr)
	}
	f.Close()
	os.Remove(f.Name())
	if strings.Contains(err.Error(), "checksum mismatch") {
		return "a file of the database is damaged (the disk? see its kernel log): restore the data directory from its backup, then start again"
	}
	// Badger formats its flock error with %v too: its words are all there is.
	if errors.Is(err, syscall.EWOULDBLOCK) || strings.Contains(err.Error(), "Cannot acquire directory lock") {
		return "is another switchyard using it?"
	}
	return ""
}

// JournalDir is where the journal's log lives in a data directory.
func JournalDir(dataDir string) string { return filepath.Join(dataDir, "journal") }

// New opens and starts a switch (Open, then Start): after New returns, the listeners
// accept connections. Drain or Close stop it. In demo mode, opts must include
// WithDemoIssuer unless demo_issuer.external is set.
func New(cfg *config.Config, log zerolog.Logger, opts ...Option) (*Server, error) {
	s, err := Open(cfg, log, opts...)
	if err != nil {
		return nil, err
	}
	s.Start()
	return s, nil
}

// Open builds a switch and starts none of its loops: the stores are open, what a crash
// left open is recovered, the issuer links are dialled and the terminal listeners and
// the admin server are bound (their addresses known), but nothing is accepted until
// Start or Run. The components' own workers (the journal's group commit and indexer,
// the store-and-forward workers, the issuer links) start with them and stop with
// their Close, which Close calls in order.
func Open(cfg *config.Config, log zerolog.Logger, opts ...Option) (_ *Server, err error) {
	var o newOptions
	for _, opt := range opts {
		opt(&o)
	}
	if err := cfg.CheckRulesDir(); err != nil {
		return nil, err
	}
	// cupSessions exist before the cluster journal's applier starts (it tells them
	// of other nodes' requests, fold.go), whether or not a cup listener is set up.
	s := &Server{cfg: cfg, log: log, version: o.version, links: map[string]*issuer.Link{}, Metrics: metrics.New(), loops: newLoops(), cupSessions: cup.NewSessions(), journalBroken: make(chan struct{})}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	tokens := cfg.Admin.Tokens
	if cfg.Demo {
		tokens = append(append([]admin.Token(nil), tokens...), api.DemoTokens()...)
	}
	if s.auth, err = admin.NewAuthenticator(tokens); err != nil {
		return nil, err
	}
	if s.proxies, err = cfg.Admin.Proxies(); err != nil {
		return nil, err
	}
	s.auth.TrustProxies(s.proxies)
	if s.hosts, err = cfg.Admin.Hosts(); err != nil {
		return nil, err
	}
	s.watchAdminRefusals()
	webhookSecret, err := cfg.WebhookSecret()
	if err != nil {
		return nil, err
	}
	webhookPrevious, err := cfg.WebhookSecretPrevious()
	if err != nil {
		return nil, err
	}
	loc, err := time.LoadLocation(cfg.Timezone)
	if err != nil {
		return nil, fmt.Errorf("timezone: %w", err)
	}
	// The LMK and the card hash key are opened before the data directory (a
	// start refused for them leaves a new directory as it found it: absent or
	// empty, where Badger's files stayed before the fifteenth release), and so
	// before the registry, which keys its webhook URL fingerprints with a key
	// derived from the card hash key (registry.Options.WebhookURLKey). So are
	// the listeners' certificates, read here and used when the listeners are
	// bound.
	var lmk []byte
	if !cfg.HSM.IsPayShield() { // a payShield holds the LMK itself
		if lmk, err = keys.LoadLMK(keys.LMKSource{File: cfg.Security.LMKFile, Env: cfg.Security.LMKEnv, Demo: cfg.Demo}); err != nil {
			key := "security"
			switch {
			case cfg.Security.LMKFile != "":
				key = "security.lmk_file"
			case cfg.Security.LMKEnv != "":
				key = "security.lmk_env"
			}
			return nil, fmt.Errorf("%s: %w", key, err)
		}
	}
	defer clear(lmk) // on every return; the software HSM keeps its own copy
	cardKey, err := s.openCardHashKey(lmk)
	if err != nil {
		return nil, err
	}
	listenerTLS := make([]*tls.Config, len(cfg.Listeners))
	for i, lc := range cfg.Listeners {
		if lc.TLS != nil {
			var cf *certFiles
			if cf, listenerTLS[i], err = newListenerCert(lc.TLS, s.Metrics, lc.Name); err != nil {
				return nil, err
			}
			s.certs = append(s.certs, cf)
		}
	}
	if err := checkStartSpace(cfg.DataDir, cfg.Journal.MinFreeMB, freeSpace); err != nil {
		return nil, err // diskguard.go: Badger could crash the process as it opens
	}
	if s.db, err = OpenDB(cfg.DataDir, log); err != nil {
		return nil, err
	}
	if s.newStore, err = newStore(s.db); err != nil {
		return nil, fmt.Errorf("data directory %s: read whether it is new: %w", cfg.DataDir, err)
	}
	mode := dataMode{}
	if cfg.Cluster != nil {
		mode.node = cfg.Cluster.Node
	}
	unrecorded, err := checkDataMode(s.db, cfg.DataDir, mode)
	if err != nil {
		return nil, err
	}
	serverName := ""
	if cfg.Cluster != nil && cfg.Cluster.Mode == cluster.ModeEmbedded {
		serverName = cfg.Cluster.Embedded.ServerName
	}
	nameUnrecorded, err := checkServerName(s.db, cfg.DataDir, serverName)
	if err != nil {
		return nil, err
	}
	if cfg.Cluster != nil {
		if s.cl, err = s.startCluster(*cfg.Cluster); err != nil {
			return nil, err
		}
		s.clusterCertificates(*cfg.Cluster)
		if s.cl.metrics, err = cluster.NewMetrics(s.Metrics.Registry); err != nil {
			return nil, err
		}
		s.cl.node.SetMetrics(s.cl.metrics)
		s.SetReadyCheck(s.cl.ready)
		if err := s.cl.restoreStores(s.db); err != nil {
			return nil, err
		}
	}
	s.cpu = cpubusy.New()
	cpu := s.cpu
	if s.Journal, err = journal.Open(s.db, journal.Options{Dir: JournalDir(cfg.DataDir), MaxBatch: cfg.Journal.MaxBatch, RRNPrefix: s.cl.rrnPrefix(), IndexKSN: s.cl != nil,
		Window: cfg.Journal.Window.D(), Gap: cfg.Journal.Gap.D(), WindowCPU: cfg.Journal.WindowCPU, Busy: cpu.Busy, SegmentSize: int64(cfg.Journal.SegmentMB) << 20, IndexDelay: cfg.Journal.IndexDelay.D(),
		LateReceipt: cfg.QR.Orders.TTL.D(),
		OnPreallocError: func(err error) {
			s.Metrics.JournalPrealloc.Inc()
			log.Warn().Err(err).Msg("journal log not zero-filled ahead of its writes (is the disk filling up?); writes go on")
		},
		OnBroken: func(err error) {
			log.Error().Err(err).Msg("journal log refuses every write until a restart (what a failed write or sync left on the disk is unknown): every transaction is answered 96 and /readyz is 503; check the disk (its kernel log, its free space), then restart the switch, which reads the log back")
			s.brokenOnce.Do(func() { close(s.journalBroken) })
		}}); err != nil {
		return nil, err
	}
	s.Journal.OnSync(s.Metrics.JournalCommitted)
	s.Metrics.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "switchyard_journal_broken", Help: "1 once the journal's log refuses every write until a restart (a failed fdatasync, or a failed write it could not cut back): every transaction is answered 96.",
	}, func() float64 {
		if s.Journal.Broken() != nil {
			return 1
		}
		return 0
	}), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		// What /readyz answers, for the alerting rules (docs/alerts.md): a cluster
		// node's quorum, applier, lease and shared stores have no metric of their own.
		// Each scrape asks readiness as a load balancer's poll of /readyz does (on a
		// cluster node one JetStream request, at most a second or two).
		Name: "switchyard_ready", Help: "1 while /readyz answers 200; 0 while it answers 503 (starting, draining, the disk guard refusing, the journal log broken, or on a cluster node no JetStream quorum, the journal's applier behind, the node's lease lost or a shared store's follower stopped: /readyz and the log say which).",
	}, func() float64 {
		if s.readiness() != nil {
			return 0
		}
		return 1
	}))
	if s.disk = newDiskGuard(diskGuardOptions{Dir: cfg.DataDir, LogDir: JournalDir(cfg.DataDir), MinFreeMB: cfg.Journal.MinFreeMB, Refuse: s.Journal.RefuseNew,
		Metrics: s.Metrics.Registry, Logger: log.With().Str("component", "disk").Logger()}); s.disk != nil {
		s.disk.check() // a switch started on a full disk refuses from its first transaction
	}
	s.Journal.OnIndexError(func(err error) {
		log.Error().Err(err).Msg("journal index not written; retrying (records stay readable from memory)")
	})
	s.Journal.OnDamage(func(u journal.Unreadable) {
		log.Error().Str("rrn", u.RRN).Str("file", u.File).Int64("offset", u.Offset).Str("reason", u.Reason).
			Msg("journal record unreadable: its frame in the log is damaged, and the log holds its only copy; the read went on without it (a settlement is marked incomplete); check the disk and its kernel log, and restore the data directory from its backup to read it")
	})
	s.Metrics.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "switchyard_journal_damaged_reads_total", Help: "Reads of journal records whose frame in the log is damaged (a checksum that does not hold): each was skipped and named (a settlement marked incomplete); the log says which record, file and offset.",
	}, func() float64 { return float64(s.Journal.DamagedReads()) }))
	regLog, err := s.cl.storeLog("registry")
	if err != nil {
		return nil, err
	}
	if s.Registry, err = registry.New(s.db, nil, registry.Options{Log: asLog(regLog), CatchUp: catchUp(regLog), Logger: log.With().Str("component", "registry").Logger(), Metrics: s.Metrics.Registry, Persist: s.Journal.PutDurableBatch,
		Keys: s.keyInfo, WebhookAllow: cfg.Alerts.WebhookAllow, Node: s.cl.nodeNumber(),
		WebhookURLKey: seal.Key(cardKey, registry.WebhookURLFingerprintLabel), TokenRoles: s.tokenRoles,
		ChangeTTL: cfg.Registry.ChangeTTL.D()}); err != nil {
		return nil, err
	}
	if err := s.cl.follow(regLog, s.Registry); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	if s.cl != nil {
		if err := s.cl.shareSeen(s.Registry); err != nil {
			return nil, fmt.Errorf("registry: last-seen data: %w", err)
		}
	}
	if cfg.Demo {
		n, err := registry.LoadDemoFleet(s.Registry, cfg.DemoLoadTerminals)
		if err != nil {
			return nil, fmt.Errorf("demo fleet: %w", err)
		}
		if n > 0 {
			log.Info().Int("created", n).Msg("demo fleet loaded into the registry")
		}
	}
	if s.cl != nil {
		q, err := s.openClusterQueue()
		if err != nil {
			return nil, err
		}
		s.Queue = q // assigned only when open: Close tests it for nil
	} else {
		q, err := saf.Open(s.db, saf.Options{Persist: s.Journal.PutDurable, ParkAfter: cfg.SAF.ParkAfter, Logger: log.With().Str("component", "saf").Logger()})
		if err != nil {
			return nil, err
		}
		s.Queue = q // assigned only when open: Close tests it for nil
	}
	s.Metrics.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "switchyard_saf_queued", Help: "Advices waiting in the store-and-forward queue, all issuers.",
	}, func() float64 { return float64(s.Queue.Len("")) }), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "switchyard_journal_unindexed", Help: "Journal log frames committed but not yet written to the index.",
	}, func() float64 { return float64(s.Journal.Unindexed()) }), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "switchyard_journal_write_rate", Help: "Writes a second into the journal's group commit (moving average over about 50 ms, measured as groups start).",
	}, func() float64 { r, _ := s.Journal.WriteRate(); return r }), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "switchyard_journal_window_engaged", Help: "1 while group commits gather for journal.window (the write rate is high enough for a window to gather 8 writes, and the CPUs busy from journal.window_cpu), else 0.",
	}, func() float64 {
		if _, on := s.Journal.WriteRate(); on {
			return 1
		}
		return 0
	}), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "switchyard_cpu_busy", Help: "Share (0 to 1) of the CPUs' time in use, a moving average over about a second: of the cgroup's quota when it has one, else of the CPUs the process may run on (journal.window_cpu); -1 when not known.",
	}, func() float64 {
		if b, known := cpu.Busy(); known {
			return b
		}
		return -1
	}), storeCollector(), metrics.SAFCollector(s.safCounts))
	klog := log.With().Str("component", "keys").Logger()
	keysLog, err := s.cl.storeLog("keys")
	if err != nil {
		return nil, err
	}
	if s.Keys, err = keys.NewStore(s.db, keys.Options{Demo: cfg.Demo, Logger: klog, Log: asLog(keysLog), CatchUp: catchUp(keysLog),
		MayDestroy: s.cl.mayDestroyKeys()}); err != nil {
		return nil, err
	}
	if err := s.cl.follow(keysLog, s.Keys); err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	s.Metrics.Registry.MustRegister(metrics.KeyExpiryCollector(s.keyExpiries))
	if cfg.HSM.IsPayShield() {
		if s.hsmClient, err = s.openPayShield(cfg.HSM); err != nil {
			return nil, err
		}
		s.HSM = s.hsmClient
	} else {
		sw, err := hsm.NewSoftware(context.Background(), s.Keys, lmk, hsm.Options{Logger: klog})
		if err != nil {
			return nil, err
		}
		s.HSM = sw
		s.Keys.OnDestroy(sw.Forget) // a destroyed version's unwrapped copy goes too
	}
	clear(lmk)
	if cfg.Demo {
		if err := s.loadDemoKeys(); err != nil {
			return nil, fmt.Errorf("demo keys: %w", err)
		}
	}

	issuers := cfg.Issuers
	if cfg.Demo {
		addr := cfg.DemoIssuer.External
		if addr == "" {
			if o.startDemoIssuer == nil {
				return nil, errNoDemoIssuer
			}
			d, err := o.startDemoIssuer(cfg.DemoIssuer.Addr, log)
			if err != nil {
				return nil, err
			}
			s.demoSim = d
			addr = d.Addr()
			log.Info().Str("addr", addr).Msg("demo issuer started")
			if err := s.syncDemoZoneKey(d); err != nil {
				return nil, err
			}
		}
		issuers = append([]config.Issuer{{ID: "demo", Addrs: []string{addr}, Timeout: cfg.DemoIssuer.Timeout,
			EchoEvery: config.Duration(30 * time.Second), Connections: 2}}, issuers...)
	}
	for _, ic := range issuers {
		late, unmatched, wrong := s.issuerAnswerHandlers(ic.ID)
		l, err := issuer.Dial(issuer.Config{ID: ic.ID, Addrs: ic.Addrs, Timeout: ic.Timeout.D(), EchoEvery: ic.EchoEvery.D(),
			Connections: ic.Connections, AcquirerID: ic.AcquirerID, STANPartition: s.cl.stanPartition(), Logger: log.With().Str("component", "issuer").Logger(),
			OnLate: late, OnUnmatched: unmatched, OnWrongAnswer: wrong, Now: s.now})
		if err != nil {
			return nil, err
		}
		s.links[ic.ID] = l
	}
	s.Metrics.Prepare(preparedMetrics(cfg, issuers))
	routes := map[string]string{}
	for _, r := range cfg.Routes {
		routes[r.Prefix] = r.Issuer
	}
	router, err := issuer.NewRouter(routes)
	if err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	key := cardKey
	txnLog := log.With().Str("component", "pipeline").Logger()
	if !*cfg.Log.TxnLines {
		txnLog = txnLog.Level(zerolog.WarnLevel)
	}
	rlog := log.With().Str("component", "risk").Logger()
	// Without its rules directory (a demo switch started away from a checkout) the
	// switch runs the default pack built into the binary, and says so at start. The engine
	// logs each reload itself (docs/rules.md quotes its lines).
	listsLog, err := s.cl.storeLog("lists")
	if err != nil {
		return nil, err
	}
	// Outside demo mode there is no fallback: a rules_dir that does not exist was
	// refused at the top of Open (config.CheckRulesDir), and one removed while running
	// makes a reload fail (the rules in force stay) rather than swap in the default pack.
	ropts := risk.Options{DB: s.db, ListsLog: asLog(listsLog), Location: loc, Logger: rlog, FlushInterval: cfg.Risk.CounterFlush.D(),
		MaxBytes: int64(cfg.Risk.CounterMemoryMB) << 20, RequireRules: !cfg.Risk.AllowEmptyRules}
	if cfg.Demo {
		ropts.Fallback = rules.Files
	}
	if s.Risk, err = risk.New(cfg.RulesDir, ropts); err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	if err := s.cl.follow(listsLog, s.Risk.Lists()); err != nil {
		return nil, fmt.Errorf("rule lists: %w", err)
	}
	s.lists = listreview.New(s.Registry, s.Risk.Lists(), listreview.Options{Logger: log.With().Str("component", "listreview").Logger()})
	if n, err := s.lists.Reconcile(); err != nil {
		log.Error().Err(err).Msg("listreview: approved list changes not reconciled")
	} else if n > 0 {
		log.Warn().Int("applied", n).Msg("listreview: approved list changes the lists lacked applied")
	}
	s.OnReload(func() error { _, err := s.Risk.Reload(); return err })
	s.Metrics.Registry.MustRegister(metrics.RiskCollector(func() metrics.RiskCounts {
		st := s.Risk.Stats()
		return metrics.RiskCounts{Evaluations: st.Evaluations, RuleErrors: s.Risk.RuleErrors(), Reloads: st.Reloads,
			ReloadsRefused: st.ReloadsRefused, LastReloadOK: s.Risk.LastReload().Error == "",
			Series: st.Series, SeriesBytes: st.SeriesBytes, MaxBytes: st.MaxBytes, MaxSeries: st.MaxSeries,
			Evicted: st.Evicted, EvictedLive: st.EvictedLive}
	}))
	if err := s.openProfiles(loc); err != nil {
		return nil, err
	}
	if s.cl != nil {
		if err := s.cl.shareProfileRefresh(s.profiles); err != nil {
			return nil, fmt.Errorf("merchant profiles: %w", err)
		}
	}
	if err := s.openRatings(loc); err != nil {
		return nil, err
	}
	if err := s.openNotices(key); err != nil {
		return nil, err
	}
	casesLog, err := s.cl.storeLog("cases")
	if err != nil {
		return nil, err
	}
	if s.Cases, err = cases.New(s.db, cases.Options{Log: asLog(casesLog), CatchUp: catchUp(casesLog), Rules: s.Risk, Lists: s.Risk.Lists(), Registry: ratingNudger{s.Registry, s.ratings},
		Metrics: s.Metrics.Registry, Logger: log.With().Str("component", "cases").Logger()}); err != nil {
		return nil, err
	}
	if err := s.cl.follow(casesLog, s.Cases); err != nil {
		return nil, fmt.Errorf("review cases: %w", err)
	}
	s.maskStoredText() // free text stored in clear before masking (storedtext.go)
	if err := s.openApps(key); err != nil {
		return nil, err
	}
	standIn := map[string]pipeline.StandInLimits{}
	zones := pipeline.ZoneKeys{}
	for _, ic := range issuers {
		if ic.ZPK != "" {
			zones[ic.ID] = pipeline.ZoneKey{ZPK: ic.ZPK}
		}
		if si := ic.StandIn; si.Enabled {
			standIn[ic.ID] = pipeline.StandInLimits{Enabled: true, MaxAmount: si.MaxAmount, PerCardCount: si.PerCardCount, PerCardSum: si.PerCardSum}
		}
	}
	qrRoutes, err := s.openQR(o)
	if err != nil {
		return nil, fmt.Errorf("qr: %w", err)
	}
	if s.orders, err = s.newOrderDesk(); err != nil {
		return nil, err
	}
	rt := routeTable{router, s.links}
	breaker := pipeline.BreakerConfig{Window: cfg.Breaker.Window.D(), Buckets: cfg.Breaker.Buckets, MinRequests: cfg.Breaker.MinRequests,
		FailureRate: cfg.Breaker.FailureRate, OpenFor: cfg.Breaker.OpenFor.D(), Probes: cfg.Breaker.Probes,
		ProbeTimeout: probeTimeout(cfg)}
	var jr pipeline.Journal = s.Journal
	if s.cl != nil {
		// Counters that did not come back with the disk (a node rebuilt on an
		// empty one) get the node's own records from the stream, as the local
		// journal does.
		counted, err := ownCounted(s.db)
		if err != nil {
			return nil, err
		}
		s.foldOwn.Store(!counted)
		if err := s.cl.openJournal(s.Journal, s, s.onRemoteRecord); err != nil {
			return nil, err
		}
		s.foldOwn.Store(false)
		if !counted {
			if err := s.markOwnCounted(); err != nil {
				log.Warn().Err(err).Msg("velocity counters not marked as holding this node's own transactions: the next start folds into them again any of its records the stream gives back to the local journal")
			}
		}
		jr = s.cl.journal
	}
	// A card purchase near its merchant's limits takes the merchant's cluster-wide
	// lock, as the QR desk's payments and the offline captures do (a single switch
	// takes none: its counters see every approval).
	var mlocks pipeline.MerchantLocker
	var lockWithin float64
	if s.cl != nil {
		mlocks, lockWithin = s.cl, cfg.Cluster.LockWithin()
	}
	verifier, warning, err := attestationVerifier(cfg)
	if err != nil {
		return nil, err
	}
	s.attest = verifier
	if warning != "" {
		s.log.Warn().Msg(warning)
	}
	s.Pipeline, err = pipeline.New(pipeline.Config{
		CardHashKey:       key,
		IsTimeout:         func(err error) bool { return errors.Is(err, issuer.ErrTimeout) },
		IsUnavailable:     func(err error) bool { return errors.Is(err, issuer.ErrUnavailable) },
		RefundWindow:      cfg.Refunds.Window.D(),
		Location:          loc,
		StandIn:           standIn,
		StandIns:          standInStore{s.db},
		Breaker:           breaker,
		ReversalMismatch:  cfg.Reversals.AmountMismatch,
		HSM:               s.HSM,
		Risk:              s.Risk,
		Profiles:          s.Profiles,
		Zones:             zones,
		KeyGrace:          cfg.Security.KeyGrace.D(),
		KeyChangeInterval: cfg.Security.KeyChangeInterval.D(),
		Cases:             s.Cases,
		Updates:           s.Apps,
		Attestation:       verifier,
		Ratings:           s.ratings.Book(),
		Notices:           s.notices,
		TxnPolicies:       txnPolicies(cfg),
		QR:                qrRoutes,
		Orders:            s.orders,
		MerchantLimits:    offlineLimits{s.orders},
		MerchantLocks:     mlocks,
		Logger:            txnLog,
		Now:               cfg.Clock,
		// (apart, so that the fields above keep their alignment)
		CompletionTolerance: cfg.Completions.Tolerance(),
		MerchantLockWithin:  lockWithin,
		LeaseLost:           s.leaseLost(),
		LeaseHeld:           s.leaseHeld(),
	}, jr, s.Queue, rt, s.Registry, s.Metrics)
	if err != nil {
		return nil, err
	}
	s.attachPipeline(s.Pipeline)
	if s.cl != nil {
		// Take the node's lease (waiting for a survivor still settling this node's
		// last run), so that the recovery below and a survivor's never race.
		if err := s.cl.startLease(s.recoverNode); err != nil {
			return nil, err
		}
	}
	// Settle what a crash left open before taking traffic, then deliver what is owed.
	if n, err := s.Pipeline.Recover(context.Background()); err != nil {
		return nil, fmt.Errorf("recovery: %w", err)
	} else if n > 0 {
		log.Warn().Int("records", n).Msg("recovered transactions left open by the last run")
	}
	for id, l := range s.links {
		s.Queue.Register(id, s.adviceSender(l))
	}
	s.registerWallets()
	mopts := registry.MonitorOptions{WebhookSecret: webhookSecret, WebhookSecretPrevious: webhookPrevious,
		SuspendMaxShare: cfg.Alerts.SuspendMaxShare, SuspendMin: cfg.Alerts.SuspendMin, SuspendWindow: cfg.Alerts.SuspendWindow.D(),
		MassSilenceShare: cfg.Alerts.MassSilenceShare, MassSilenceMin: cfg.Alerts.MassSilenceMin, ReAlertAfter: cfg.Alerts.ReAlertAfter.D(),
		WebhookMaxPerRun: cfg.Alerts.WebhookMaxPerRun}
	if mopts.ReAlertAfter == 0 {
		mopts.ReAlertAfter = -1 // alerts.realert_after: 0s, no hold (0 would mean the default)
	}
	if s.cl != nil {
		mopts.Active = s.cl.monitorActive // one node at a time: they share last-seen data
	}
	s.monitor = registry.NewMonitor(s.Registry, nil, mopts)
	if err := s.openTasks(loc); err != nil {
		return nil, err
	}

	if err := s.startAdmin(); err != nil {
		return nil, err
	}
	s.startOrders()
	limit := frontend.NewLimiter(cfg.Limits.MaxInFlight)
	maxConns := make([]int, len(cfg.Listeners))
	for i, lc := range cfg.Listeners {
		maxConns[i] = lc.MaxConns
	}
	fds := fdLimit()
	maxConns, lowered := connBudget(fds, maxConns)
	if lowered {
		// One line for all the listeners (each is lowered in the same proportion).
		applied := make([]string, len(cfg.Listeners))
		for i, lc := range cfg.Listeners {
			applied[i] = fmt.Sprintf("%s %d→%d", lc.Name, lc.MaxConns, maxConns[i])
		}
		log.Warn().Str("key", "listeners[].max_conns").Str("applied", strings.Join(applied, ", ")).
			Uint64("fd_limit", fds).Msg("max_conns lowered to leave file descriptors for the admin server and the stores: raise the limit (ulimit -n, LimitNOFILE) or lower max_conns")
	}
	for i, lc := range cfg.Listeners {
		d, _ := message.ParseDialect(lc.Dialect)
		fc := frontend.Config{Name: lc.Name, Addr: lc.Addr, Dialect: d, IdleTimeout: lc.IdleTimeout.D(), MaxInFlightPerConn: lc.MaxInFlight,
			MaxConns: maxConns[i], MaxConnsPerSource: min(lc.MaxConnsPerSource, maxConns[i]), FirstFrameTimeout: lc.FirstFrameTimeout.D(),
			HTTP: lc.Kind == "https", Logger: log.With().Str("component", "frontend").Logger()}
		fc.MaxInFlightPerSource = lc.MaxInFlightPerSource
		if pp := lc.ProxyProtocol; pp != nil {
			nets, err := pp.Networks()
			if err != nil {
				return nil, fmt.Errorf("listener %s: proxy_protocol: %w", lc.Name, err)
			}
			fc.ProxyProtocol = &frontend.ProxyProtocol{Trusted: nets, Required: pp.Required}
		}
		fc.TLS = listenerTLS[i] // read before the data directory was opened
		var proc frontend.Processor = s.Pipeline
		if d == message.DialectCUP {
			proc = newCUPAdapter(lc, s)
		}
		l, err := frontend.Listen(fc, proc, limit, s.Metrics)
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				return nil, fmt.Errorf("%w (is another switch running? move it: listeners' addr in the configuration, or serve --listen %s=HOST:PORT)", err, lc.Name)
			}
			return nil, err
		}
		s.listeners = append(s.listeners, l)
		log.Info().Str("listener", lc.Name).Str("addr", l.Addr().String()).Str("dialect", string(d)).Bool("tls", fc.TLS != nil).
			Bool("proxy_protocol", fc.ProxyProtocol != nil).Msg("terminal listener started")
	}
	if unrecorded {
		if err := recordDataMode(s.db, cfg.DataDir, mode); err != nil {
			return nil, err
		}
	}
	if nameUnrecorded {
		if err := recordServerName(s.db, cfg.DataDir, serverName); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Start starts every loop of the switch under the server's group: the pipeline's
// housekeeping, the offline monitor, the rules watcher, the admin server and the
// terminal listeners' accept loops, then turns /readyz to 200. Drain, Close or Run stop
// them and wait for each before closing the stores. Calls after the first do nothing.
func (s *Server) Start() {
	s.startOnce.Do(func() {
		s.Pipeline.Start() // joined by Pipeline.Stop
		if s.cl != nil {
			s.loops.Go("cluster metrics", s.cl.watchMetrics)
			s.loops.Go("state compaction", s.cl.compactLoop)
		}
		s.loops.Go("CPU meter", s.cpu.Run) // journal.window_cpu
		if s.disk != nil {
			s.loops.Go("disk guard", s.disk.run) // journal.min_free_mb
		}
		s.loops.Go("offline monitor", func(ctx context.Context) error {
			s.monitor.Run(ctx)
			return nil
		})
		s.loops.Go("merchant profiles", s.profiles.startUp)
		s.loops.Go("scheduler", s.Tasks.Run)
		s.loops.Go("apps", s.Apps.Run)
		s.loops.Go("merchant ratings", s.ratings.Run)
		s.loops.Go("merchant notices", s.notices.Run)
		if s.orders != nil {
			s.loops.Go("qr payments owed to the journal", s.orders.sweepLoop)
		}
		if s.console != nil {
			s.loops.Go("console sampler", s.console.Run)
		}
		s.loops.Go("rules watcher", func(ctx context.Context) error {
			if err := s.Risk.Watch(ctx); err != nil && ctx.Err() == nil {
				s.log.Error().Str("component", "risk").Err(err).Msg("rules directory not watched; reload with SIGHUP or the admin API")
				return err
			}
			return nil
		})
		s.loops.Go("admin server", func(context.Context) error {
			if err := s.adminSrv.Serve(s.adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error().Err(err).Msg("admin server stopped")
				return err
			}
			return nil
		})
		for i, l := range s.listeners {
			name := s.cfg.Listeners[i].Name
			s.loops.Go("listener "+name, func(context.Context) error {
				err := l.Serve() // returns when the listener stops accepting
				if err != nil {
					s.log.Error().Err(err).Str("listener", name).Msg("listener stopped")
				}
				return err
			})
		}
		s.ready.Store(true)
	})
}

// probeTimeout is how long a half-open breaker waits for its probes' outcomes before
// it probes again (pipeline.BreakerConfig.ProbeTimeout): the longest issuer timeout,
// plus 10 s for the PIN translation and the write-ahead before the request goes.
func probeTimeout(cfg *config.Config) time.Duration {
	longest := cfg.DemoIssuer.Timeout.D()
	for _, ic := range cfg.Issuers {
		longest = max(longest, ic.Timeout.D())
	}
	return longest + 10*time.Second
}

// routeTable resolves BIN routes to live links.
type routeTable struct {
	r     *issuer.Router
	links map[string]*issuer.Link
}

func (t routeTable) Issuer(id string) (pipeline.IssuerLink, bool) {
	l, ok := t.links[id]
	return l, ok
}

func (t routeTable) Route(pan string) (pipeline.IssuerLink, bool) {
	id, ok := t.r.Route(pan)
	if !ok {
		return nil, false
	}
	l, ok := t.links[id]
	return l, ok
}

// ListenerAddr returns the bound address of the named terminal listener ("" if none).
func (s *Server) ListenerAddr(name string) string {
	for i, l := range s.listeners {
		if s.cfg.Listeners[i].Name == name {
			return l.Addr().String()
		}
	}
	return ""
}

// AdminAddr returns the bound address of the admin server.
func (s *Server) AdminAddr() string { return s.adminLn.Addr().String() }

// Handle mounts an admin API handler on the admin server.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// SetReadyCheck adds a check to /readyz: while it returns an error, /readyz
// answers 503 with it (a cluster node without a JetStream quorum says why).
// nil removes it. It must answer quickly: load balancers poll /readyz.
func (s *Server) SetReadyCheck(check func() error) {
	if check == nil {
		s.readyHook.Store(nil)
		return
	}
	s.readyHook.Store(&check)
}

// JournalBroken returns a channel closed once the journal's log is broken
// (journal.Store.Broken: a failed fdatasync, or a failed write it could not cut
// back): from then on every transaction is answered 96 and /readyz is 503, and
// only a new process, which reads the log back from disk, serves again. With
// journal.exit_on_broken_log (the default) `switchyard serve` then drains and
// exits with status 75, for its supervisor to start it again; the restart's
// recovery reverses what the issuer approved that the journal did not record.
// Single switch and cluster node alike; Journal.Broken says why.
func (s *Server) JournalBroken() <-chan struct{} {
	return s.journalBroken
}

// readiness is /readyz's answer: nil when ready, else every reason why not, so
// that an operator fixing one cause is not surprised by the next (a full disk and
// a broken journal log, say, or a full disk and a failing cluster check).
func (s *Server) readiness() error {
	var why []error
	switch {
	case s.draining.Load():
		why = append(why, errors.New("draining (shutting down)"))
	case !s.ready.Load():
		why = append(why, errors.New("starting"))
	}
	// The check (a cluster node's JetStream probe, up to a second or two) is asked
	// only of a switch that serves, as before: starting or draining says enough.
	check := s.readyHook.Load()
	if len(why) > 0 {
		check = nil
	}
	if err := s.disk.notReady(); err != nil {
		why = append(why, err)
	}
	if err := s.Journal.Broken(); err != nil {
		why = append(why, fmt.Errorf("journal log broken, restart the switch: %w", err))
	}
	// Every HSM down is not a cause: the nodes share their HSMs, so no other
	// node would do better, and a switch that answers PIN and MAC transactions
	// 96 at once (and serves the others) is better for terminals than one the
	// load balancer has removed; as with the issuers, switchyard_hsm_up says it.
	if check != nil {
		if err := (*check)(); err != nil {
			why = append(why, err)
		}
	}
	return joinReasons(why)
}

// joinReasons is nil for no reasons, else one error listing them on one line,
// separated by "; " (a /readyz body a load balancer logs whole).
func joinReasons(why []error) error {
	if len(why) == 0 {
		return nil
	}
	parts := make([]string, len(why))
	for i, e := range why {
		parts[i] = e.Error()
	}
	return errors.New(strings.Join(parts, "; "))
}

// tokenRoles returns the roles of the admin tokens held by name, as they are
// now (a reload replaces them): the registry refuses the approval of a change
// whose requester no longer holds a token that may request one
// (registry.Options.TokenRoles).
func (s *Server) tokenRoles(name string) []string {
	var out []string
	for _, r := range s.auth.RolesOf(name) {
		out = append(out, string(r))
	}
	return out
}

// Auth is the admin API's authenticator.
func (s *Server) Auth() *admin.Authenticator { return s.auth }

func (s *Server) startAdmin() error {
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	s.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := s.readiness(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.Metrics.Registry, promhttp.HandlerOpts{Registry: s.Metrics.Registry}))
	loc, _ := time.LoadLocation(s.cfg.Timezone) // validated with the configuration
	importState, importJournal := s.cl.importFuncs()
	api.Register(s.mux, api.Options{
		Auth:       s.auth,
		Logger:     s.log.With().Str("component", "api").Logger(),
		Registry:   s.Registry,
		Cases:      s.Cases,
		Keys:       s.Keys,
		HSM:        s.HSM,
		Risk:       s.Risk,
		ListReview: s.lists,
		Journal:    s.Journal,
		Location:   loc,
		Version:    s.version,
		Settle: func(ctx context.Context, date string) (any, error) {
			if err := s.cl.caughtUp(ctx); err != nil {
				return nil, api.WithStatus(http.StatusServiceUnavailable, err)
			}
			return Settle(ctx, s.Journal, settlementDate(date, s.now(), loc), loc)
		},
		SAF: func(issuer string) (any, error) {
			items, err := s.Queue.Pending(issuer)
			if items == nil && err == nil {
				items = []saf.Item{} // a list, never null: nothing is owed
			}
			return items, err
		},
		SAFParked:   func(issuer string) (any, error) { return s.parkedView(issuer) },
		SAFActions:  func(f saf.ActionFilter) (any, error) { return s.actionsView(f) },
		SAFRequeue:  s.requeueParked,
		SAFResolve:  s.resolveParked,
		CardHashKey: s.exportCardHashKey,
		ZoneKeyChange: func(ctx context.Context, issuer, actor string) (any, error) {
			return s.ChangeZoneKey(ctx, issuer, actor)
		},
		ClusterStatus:      s.clusterStatus(),
		ClusterCompact:     s.cl.compactFunc(),
		ClusterRemovePeer:  s.cl.removePeerFunc(),
		ClusterImportState: importState,
		ClusterImport:      importJournal,
		Pprof:              true,
		PprofOpen:          s.cfg.Demo,

		Profiles:        s.Profiles,
		RefreshProfiles: s.refreshProfiles,

		Apps:               s.Apps,
		Tasks:              s.Tasks,
		MerchantRisk:       merchantRiskAPI{s},
		MerchantRiskErrors: merchantRiskErrors,
	})
	s.mux.Handle("/apps/v1/", s.Apps.Handler()) // the terminals' downloads and reports (own token)
	if err := s.startConsole(); err != nil {
		return fmt.Errorf("console: %w", err)
	}
	ln, err := net.Listen("tcp", s.cfg.Admin.Addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("admin server: %w (is another switch running? move it: admin.addr in the configuration, or serve --admin-addr HOST:PORT; the CLI then needs SWITCHYARD_ADMIN=http://HOST:PORT)", err)
		}
		return fmt.Errorf("admin server: %w", err)
	}
	s.adminLn = ln
	// The Host check comes first: a request for a name the switch does not answer
	// to reaches no handler (DNS rebinding, docs/console.md).
	s.adminReqs = &inFlight{h: admin.CheckHost(boundBodies(s.mux), s.hosts, s.hostRefused)}
	s.adminSrv = &http.Server{Handler: s.adminReqs, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: adminIdleTimeout}
	if s.console != nil {
		s.adminSrv.RegisterOnShutdown(s.console.Stop) // open dashboards' event streams end first
	}
	s.log.Info().Str("addr", ln.Addr().String()).Msg("admin server started")
	s.warnOpenHosts(ln.Addr())
	return nil
}

// adminIdleTimeout closes an admin connection kept alive this long without a
// request. Without it Go waits for a kept-alive connection's next request for
// ever: one request each, and idle sockets would use up the file descriptors the
// terminal listeners share. ReadTimeout and WriteTimeout stay unset: they would
// cut the dashboard's event stream, the journal's JSON lines and a paced cluster
// import; the one body read before any credential, the console's login, has a
// deadline of its own (switch/console).
var adminIdleTimeout = 2 * time.Minute

// Drain stops taking new work, answers what is in progress within the drain timeout,
// then closes everything (Close). In order: the listeners stop accepting (and /readyz
// turns 503), the requests in progress see their context cancelled and are answered
// within shutdown.drain_timeout, the store-and-forward queue delivers what it owes
// within what is left of it, then Close stops the rest.
func (s *Server) Drain() error {
	// Refuse new connections first, so that whoever sees /readyz turn 503 also finds
	// the port closed.
	for _, l := range s.listeners {
		l.StopAccepting()
	}
	s.draining.Store(true)
	s.ready.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Shutdown.DrainTimeout.D())
	defer cancel()
	// At the deadline, while the requests left are still where they wait, log
	// every goroutine's stack (no arguments, so no card data): what held the drain.
	drained, watched := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-drained:
		case <-ctx.Done():
			select {
			case <-drained: // drained at the deadline itself
				return
			default:
			}
			var b strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
			s.log.Error().Dur("drain_timeout", s.cfg.Shutdown.DrainTimeout.D()).Str("goroutines", b.String()).
				Msg("drain deadline passed with requests in progress; the goroutines at that moment")
		}
	}()
	var errs []error
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, l := range s.listeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Drain(ctx); err != nil { // cancels the front-end's context first
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(drained)
	<-watched
	s.listeners = nil
	// Deliver what is owed to issuers while there is time; the rest waits on disk.
	// A node whose lease is lost delivers nothing more (its queue's fence): what
	// it enqueued is in the cluster's stream, which the other nodes deliver.
	if s.Queue != nil && s.FenceReason() == nil {
		if err := s.Queue.Flush(ctx); err != nil {
			s.log.Warn().Err(err).Msg("store-and-forward queue not empty at shutdown; it is delivered at the next start")
		}
	}
	s.Close()
	return errors.Join(errs...)
}

// Close stops everything at once, in an order where nothing writes to a store after it
// closed: the terminal listeners (their connections cut), the admin server (its last
// handler returned), the store-and-forward workers, then every loop of the server's
// group (monitor, rules watcher, accept loops) is joined, the pipeline's housekeeping
// writes its last checkpoint, and only then do the risk engine, the registry, the
// journal and the database close.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.startOnce.Do(func() {}) // a Start after Close starts nothing
		s.draining.Store(true)
		s.ready.Store(false)
		for _, l := range s.listeners {
			l.Close()
		}
		if s.adminSrv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if err := s.adminSrv.Shutdown(ctx); err != nil {
				_ = s.adminSrv.Close() // cancels the requests still running
			}
			cancel()
			_ = s.adminLn.Close() // if never served (Open without Start)
			s.adminReqs.close()
		}
		if s.cl != nil {
			if l := s.cl.lease.Swap(nil); l != nil {
				l.Stop() // waits for a recovery of another node in progress
			}
		}
		if s.hsmClient != nil {
			s.hsmClient.Close()
		}
		if s.Queue != nil {
			if err := s.Queue.Close(); err != nil {
				s.log.Error().Err(err).Msg("closing store-and-forward queue")
			}
		}
		if err := s.loops.stop(); err != nil {
			s.log.Debug().Err(err).Msg("a loop of the server had stopped with an error (logged when it happened)")
		}
		if s.Pipeline != nil {
			s.Pipeline.Stop()
		}
		if s.Cases != nil {
			_ = s.Cases.Close() // writes the cases still queued
		}
		for _, l := range s.links {
			_ = l.Close()
		}
		if s.demoSim != nil {
			_ = s.demoSim.Close()
		}
		if s.demoWallet != nil {
			_ = s.demoWallet.Close()
		}
		if s.beforeStores != nil {
			s.beforeStores()
		}
		if s.cl != nil {
			s.cl.stopSharingSeen() // the last sightings, sent while the registry is open
		}
		// The registry before the followers: its incident writer's last attempt
		// may meet another node's commit, or need to settle one whose
		// acknowledgement was lost, and both wait for the follower.
		if s.Registry != nil {
			if err := s.Registry.Close(); err != nil {
				s.log.Error().Err(err).Msg("closing registry")
			}
		}
		if s.cl != nil {
			// Together: each may wait up to ~20 s for nats.go's ordered consumer to
			// stop when JetStream's quorum went away (closeFollowers).
			var wg sync.WaitGroup
			wg.Go(s.cl.closeFollowers)
			wg.Go(func() {
				if err := s.cl.closeJournal(); err != nil {
					s.log.Error().Err(err).Msg("closing the cluster journal")
				}
			})
			wg.Wait()
		}
		if s.Risk != nil {
			if err := s.Risk.Close(); err != nil {
				s.log.Error().Err(err).Msg("closing risk engine")
			}
		}
		if s.Journal != nil {
			if err := s.Journal.Close(); err != nil {
				s.log.Error().Err(err).Msg("closing journal")
			}
		}
		if s.db != nil {
			if err := s.db.Close(); err != nil {
				s.log.Error().Err(err).Msg("closing database")
			}
		}
		if s.cl != nil {
			if err := s.cl.close(); err != nil {
				s.log.Error().Err(err).Msg("closing the cluster node")
			}
		}
	})
}

// badgerLogger sends Badger's log to zerolog, its info chatter at debug level.
type badgerLogger struct{ l zerolog.Logger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.l.Error().Msgf(f, a...) }
func (b badgerLogger) Warningf(f string, a ...any) { b.l.Warn().Msgf(f, a...) }
func (b badgerLogger) Infof(f string, a ...any)    { b.l.Debug().Msgf(f, a...) }
func (b badgerLogger) Debugf(f string, a ...any)   { b.l.Debug().Msgf(f, a...) }

// ReloadResult is what a reload did not apply, for its caller (serve's SIGHUP)
// to report: every line of it is in the log too.
type ReloadResult struct {
	// Restart names the settings that changed and are read only at start: they
	// take effect at the next restart.
	Restart []string
	// Refused holds a part's error for each part that kept its running state
	// because its new one was refused (a certificate file that does not load,
	// the admin tokens, the webhook secrets, the rules).
	Refused []error
}

// Reload re-reads what can change without a restart (SIGHUP, the admin reload call):
// the rules, the alert webhooks' secrets (their files, or variables, as the new
// configuration names them, else as the running one does), the TLS certificates
// from their files (the listeners' certificates and client CAs, the HSM link's
// client certificate: certreload.go), and, given a new configuration, the admin
// tokens, the log level and the SoftPOS attestation keys and apps (attest.go). Keys that need a restart are named in the log and in
// the result. Every part keeps its running state when its new one is refused, and
// says so in the log and the result. No connection is dropped.
func (s *Server) Reload(newCfg *config.Config) ReloadResult {
	var res ReloadResult
	refused := func(err error, msg string) {
		s.log.Error().Err(err).Msg(msg)
		res.Refused = append(res.Refused, err)
	}
	if newCfg != nil {
		tokens := newCfg.Admin.Tokens
		if s.cfg.Demo {
			tokens = append(append([]admin.Token(nil), tokens...), api.DemoTokens()...)
		}
		if err := s.auth.SetTokens(tokens); err != nil {
			refused(fmt.Errorf("admin tokens: %w", err), "reload: admin tokens refused; the running ones stay")
		} else {
			s.log.Info().Int("tokens", len(tokens)).Msg("reload: admin tokens applied")
			if s.console != nil {
				s.warnTokenUsers(newCfg.Admin.Tokens)
			}
		}
		if lvl, err := zerolog.ParseLevel(newCfg.Log.Level); err == nil {
			zerolog.SetGlobalLevel(lvl)
		}
		if err := s.reloadAttestation(newCfg); err != nil {
			refused(err, "reload: attestation keys and apps refused; the running ones stay")
		}
		res.Restart = restartKeys(s.cfg, newCfg)
		for _, k := range res.Restart {
			s.log.Warn().Str("key", k).Msg("reload: this setting changed and takes effect at the next restart")
		}
	}
	if err := s.reloadWebhookSecrets(newCfg); err != nil {
		res.Refused = append(res.Refused, err)
	}
	for _, c := range s.certs {
		old := c.leaf()
		if err := c.reload(); err != nil {
			refused(err, "reload: certificate refused; the running one stays")
			continue
		}
		cur := c.leaf()
		s.log.Info().Str("tls", c.what).Str("subject", metrics.CertSubject(cur)).Str("serial", metrics.CertSerial(cur)).
			Time("not_after", cur.NotAfter.UTC()).Bool("changed", !cur.Equal(old)).
			Msg("reload: certificate read again; new handshakes present it")
	}
	for _, f := range s.reloaders {
		if err := f(); err != nil {
			refused(err, "reload refused; the running configuration stays")
		}
	}
	return res
}

// reloadWebhookSecrets reads the alert webhooks' secrets again, from cfg (nil: the
// running configuration), and hands them to the monitor: the way to rotate the
// secret without a restart (alerts.webhook_secret_previous_file). A secret that
// cannot be read leaves the running ones in force, and is returned.
func (s *Server) reloadWebhookSecrets(cfg *config.Config) error {
	if cfg == nil {
		cfg = s.cfg
	}
	cur, err := cfg.WebhookSecret()
	if err == nil && cur == nil && len(cfg.Alerts.WebhookAllow) > 0 {
		err = errors.New("alerts: no webhook secret configured")
	}
	var prev []byte
	if err == nil {
		prev, err = cfg.WebhookSecretPrevious()
	}
	if err != nil {
		s.log.Error().Err(err).Msg("reload: alert webhook secrets refused; the running ones stay")
		return fmt.Errorf("alert webhook secrets: %w", err)
	}
	s.monitor.SetWebhookSecrets(cur, prev)
	if cur != nil {
		s.log.Info().Bool("previous", prev != nil).Msg("reload: alert webhook secrets applied")
	}
	return nil
}

// liveKeys are the settings Reload applies to the running switch (a list or a
// struct among them with all it holds); restartKeys names every other one that
// changed.
var liveKeys = map[string]bool{
	"admin.tokens": true, "admin.tokens_file": true,
	"log.level":        true,
	"attestation.keys": true, "attestation.apps": true, // reloadAttestation
	"alerts.webhook_secret_file": true, "alerts.webhook_secret_env": true, // reloadWebhookSecrets
	"alerts.webhook_secret_previous_file": true, "alerts.webhook_secret_previous_env": true,
}

// restartKeys names the settings that differ between old and cur and are read only
// at start: every key but liveKeys, by its YAML path (admin.addr), a list as a whole
// (listeners). It compares the two configurations field by field, so that a setting
// added to config is covered without a list to keep here (a hand-kept one missed
// timezone, shutdown.drain_timeout, security.key_grace and most others).
func restartKeys(old, cur *config.Config) []string {
	var out []string
	diffKeys(reflect.ValueOf(old).Elem(), reflect.ValueOf(cur).Elem(), "", &out)
	return out
}

// diffKeys adds to out the path of each setting under path that differs between a
// and b (two values of one type), but liveKeys.
func diffKeys(a, b reflect.Value, path string, out *[]string) {
	if liveKeys[path] {
		return
	}
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() {
				*out = append(*out, path)
			}
			return
		}
		diffKeys(a.Elem(), b.Elem(), path, out)
	case reflect.Struct:
		t := a.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || name == "-" || f.Type.Kind() == reflect.Func {
				continue // not read from the file (Clock)
			}
			key := path
			if !strings.Contains(","+opts+",", ",inline,") {
				if name == "" {
					name = strings.ToLower(f.Name) // the YAML package's default
				}
				if key != "" {
					key += "."
				}
				key += name
			}
			diffKeys(a.Field(i), b.Field(i), key, out)
		}
	default:
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			*out = append(*out, path)
		}
	}
}

// exitOnBrokenLog is c's journal.exit_on_broken_log (true when not set).
func exitOnBrokenLog(c *config.Config) bool {
	return c.Journal.ExitOnBrokenLog == nil || *c.Journal.ExitOnBrokenLog
}

// OnReload adds a function that Reload calls.
func (s *Server) OnReload(f func() error) { s.reloaders = append(s.reloaders, f) }

// storeCollector exports Badger's own counters (its expvars) as switchyard_store_*: how
// much the switch writes, how much the LSM tree rewrites in compactions (the write
// amplification behind throughput dips under sustained load), and compactions running.
// The expvar collector exposes them untyped; typedCollector gives each its type, so
// that a scraper knows the _total ones only grow.
func storeCollector() prometheus.Collector {
	types := map[*prometheus.Desc]prometheus.ValueType{}
	d := func(name, help string, vt prometheus.ValueType, labels ...string) *prometheus.Desc {
		desc := prometheus.NewDesc("switchyard_store_"+name, help, labels, nil)
		types[desc] = vt
		return desc
	}
	c, g := prometheus.CounterValue, prometheus.GaugeValue
	inner := collectors.NewExpvarCollector(map[string]*prometheus.Desc{
		"badger_write_bytes_user":           d("written_bytes_total", "Bytes of keys and values written to Badger by the switch.", c),
		"badger_write_bytes_l0":             d("flushed_bytes_total", "Bytes of entries written into Badger's memtables (Badger's \"L0\" counter: it grows with every write, not at a flush).", c),
		"badger_write_bytes_compaction":     d("compacted_bytes_total", "Bytes written by compactions, by target level.", c, "level"),
		"badger_compaction_current_num_lsm": d("compacting_tables", "Tables being compacted now.", g),
		"badger_size_bytes_lsm":             d("lsm_bytes", "Size of the LSM tree on disk, by directory.", g, "dir"),
		"badger_put_num_user":               d("puts_total", "Keys written to Badger by the switch.", c),
	})
	return typedCollector{inner: inner, types: types}
}

// typedCollector re-emits the untyped metrics of inner with the type types gives
// their descriptor (untyped when it gives none).
type typedCollector struct {
	inner prometheus.Collector
	types map[*prometheus.Desc]prometheus.ValueType
}

func (t typedCollector) Describe(ch chan<- *prometheus.Desc) { t.inner.Describe(ch) }

func (t typedCollector) Collect(ch chan<- prometheus.Metric) {
	in := make(chan prometheus.Metric)
	go func() {
		t.inner.Collect(in)
		close(in)
	}()
	for m := range in {
		vt, ok := t.types[m.Desc()]
		var pb dto.Metric
		if !ok || m.Write(&pb) != nil || pb.Untyped == nil {
			ch <- m
			continue
		}
		// Each descriptor has at most one variable label, so the values in the
		// metric's (sorted) label order are the descriptor's.
		values := make([]string, 0, len(pb.GetLabel()))
		for _, lp := range pb.GetLabel() {
			values = append(values, lp.GetValue())
		}
		tm, err := prometheus.NewConstMetric(m.Desc(), vt, pb.GetUntyped().GetValue(), values...)
		if err != nil {
			ch <- m
			continue
		}
		ch <- tm
	}
}

// preparedMetrics names the label values, known at the start, whose counters the
// alerting rules read with increase(): see metrics.Metrics.Prepare.
func preparedMetrics(cfg *config.Config, issuers []config.Issuer) metrics.Prepared {
	p := metrics.Prepared{Cluster: cfg.Cluster != nil}
	for _, ic := range issuers {
		p.Issuers = append(p.Issuers, ic.ID)
	}
	for _, lc := range cfg.Listeners {
		p.Listeners = append(p.Listeners, lc.Name)
		if lc.Dialect == string(message.DialectCUP) {
			p.CUP = true
		}
	}
	return p
}
