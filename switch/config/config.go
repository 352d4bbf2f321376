// Package config is the switch's configuration: one YAML file, typed, with defaults,
// validated at start with errors that name the key and the problem.
package config

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/switchyard/switchyard/hsm/tr31"
	"github.com/switchyard/switchyard/risk/ruleset"
	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/attest"
	"github.com/switchyard/switchyard/switch/cluster"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/notify"
	"github.com/switchyard/switchyard/switch/registry"
)

// Duration is a time.Duration written as "10s", "5m".
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration like 10s, 5m or 1h30m (units ns, us, ms, s, m, h; a bare number has none)", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Config is the whole configuration of `switchyard serve`.
type Config struct {
	// DataDir holds the Badger database (journal, registry, keys, risk state).
	DataDir string `yaml:"data_dir"`
	// Demo loads the demo fleet, its test keys and the built-in demo issuer.
	Demo bool `yaml:"demo"`
	// DemoLoadTerminals is how many load terminals (LT000001 ...) the demo fleet has:
	// 1 to 999,999; registry.DemoLoadTerminals (2,000, as many as `switchyard bench`
	// drives) when unset. Demo mode only.
	DemoLoadTerminals int `yaml:"demo_load_terminals"`
	// RulesDir is the directory of risk rule files.
	RulesDir string `yaml:"rules_dir"`
	// Timezone is the acquirer's local time zone (IANA name), for rules on local time.
	Timezone string `yaml:"timezone"`

	Log        Log        `yaml:"log"`
	Admin      Admin      `yaml:"admin"`
	Listeners  []Listener `yaml:"listeners"`
	Limits     Limits     `yaml:"limits"`
	Issuers    []Issuer   `yaml:"issuers"`
	Routes     []Route    `yaml:"routes"`
	DemoIssuer DemoIssuer `yaml:"demo_issuer"`
	Journal    Journal    `yaml:"journal"`
	Security   Security   `yaml:"security"`
	Shutdown   Shutdown   `yaml:"shutdown"`
	// SAF tunes the store-and-forward queue of advices owed to issuers.
	SAF       SAF       `yaml:"saf"`
	Refunds   Refunds   `yaml:"refunds"`
	Risk      Risk      `yaml:"risk"`
	Breaker   Breaker   `yaml:"breaker"`
	Reversals Reversals `yaml:"reversals"`
	// Completions bounds pre-authorization completions (completions.go).
	Completions Completions `yaml:"completions"`
	Alerts      Alerts      `yaml:"alerts"`
	// Registry configures the two-person review of registry changes.
	Registry Registry `yaml:"registry"`
	// HSM chooses the software HSM (default) or payShield-compatible HSMs.
	HSM   HSM    `yaml:"hsm"`
	Apps  Apps   `yaml:"apps"`
	Tasks []Task `yaml:"tasks"`
	// Attestation pins the SoftPOS attestation service's keys (merchantrisk.go).
	Attestation Attestation `yaml:"attestation"`
	// Ratings recompute the merchants' ratings (merchantrisk.go).
	Ratings Ratings `yaml:"ratings"`
	// Notices push approvals, voids and refunds to merchants' webhooks (merchantrisk.go).
	Notices Notices `yaml:"notices"`
	// QR configures QR payments: payment codes and merchant-presented orders (qr.go).
	QR QR `yaml:"qr"`
	// Cluster, when set, makes this switch one node of a cluster on NATS JetStream
	// (docs/cluster.md); absent, the switch runs alone on its Badger data directory.
	Cluster *cluster.Config `yaml:"cluster"`

	// Clock stamps the transactions (nil: time.Now). It is not read from the file:
	// tests whose result depends on the day inject one.
	Clock func() time.Time `yaml:"-"`
}

// Registry configures the review of merchant, terminal and other reviewed changes.
type Registry struct {
	// ChangeTTL is how long a requested change may wait for its review (default
	// 168h, from 1h to 90 days): past it, it can be rejected or cancelled but not
	// approved. Each change is stamped with its expiry when requested.
	ChangeTTL Duration `yaml:"change_ttl"`
}

// Alerts configures what the registry's offline alert rules may do.
type Alerts struct {
	// WebhookAllow lists the URLs webhook actions may post to: a target needs an
	// entry's scheme and host (port included) and a path equal to or below the
	// entry's. Empty (the default): no webhook action is allowed.
	WebhookAllow []string `yaml:"webhook_allow"`
	// WebhookSecretFile holds the key of the HMAC-SHA256 signature of every webhook
	// body (at least 16 bytes; refused when readable by others); required with
	// webhook_allow.
	WebhookSecretFile string `yaml:"webhook_secret_file"`
	// WebhookSecretEnv names an environment variable holding it instead.
	WebhookSecretEnv string `yaml:"webhook_secret_env"`
	// WebhookSecretPreviousFile holds the secret being replaced during a rotation:
	// while it is set, every webhook also carries the signature under it
	// (X-Switchyard-Signature-Previous), so that a receiver still verifying with the
	// old secret accepts the posts until it switches. Same rules as
	// WebhookSecretFile; needs webhook_secret_file or webhook_secret_env. The
	// secrets are read again on SIGHUP.
	WebhookSecretPreviousFile string `yaml:"webhook_secret_previous_file"`
	// WebhookSecretPreviousEnv names an environment variable holding it instead.
	WebhookSecretPreviousEnv string `yaml:"webhook_secret_previous_env"`
	// SuspendMaxShare is the share of the fleet's terminals, and of each merchant's,
	// that suspend actions may suspend within SuspendWindow; further suspensions are
	// requested as changes for a reviewer (default 0.1).
	SuspendMaxShare float64 `yaml:"suspend_max_share"`
	// SuspendMin is the least that limit is, in terminals (default 3).
	SuspendMin int `yaml:"suspend_min"`
	// SuspendWindow is how far back a suspension counts toward the limit (default 1h),
	// and an offline alert toward the mass-silence share.
	SuspendWindow Duration `yaml:"suspend_window"`
	// MassSilenceShare is the share of the fleet's terminals, of a region's or of a
	// merchant's, alerted offline within SuspendWindow, beyond which the monitor
	// assumes a common cause (a network or issuer outage) and suspends none of
	// them (default 0.05; 1 turns the brake off).
	MassSilenceShare float64 `yaml:"mass_silence_share"`
	// MassSilenceMin is the least that share is, in terminals (default 20).
	MassSilenceMin int `yaml:"mass_silence_min"`
	// WebhookMaxPerRun is how many posts a run of the offline monitor makes to one
	// webhook target (default 200); the others wait for the next runs.
	WebhookMaxPerRun int `yaml:"webhook_max_per_run"`
	// ReAlertAfter is how long after a rule's alert for a terminal, once recovered,
	// the rule may alert for it again (default 1h; 0s: at once): a terminal
	// flapping on a bad link alerts once per this.
	ReAlertAfter Duration `yaml:"realert_after"`
}

// Risk configures the rules engine's state.
type Risk struct {
	// CounterFlush is how often changed velocity counters are written to the database
	// (default 5s): a crash loses at most this much of their counts. Each flush
	// rewrites every changed series, so a short interval costs write volume.
	CounterFlush Duration `yaml:"counter_flush"`
	// CounterMemoryMB is the memory budget of the velocity counters in memory, in
	// MiB (default 2048): at it the store evicts the series seen least, counted
	// in switchyard_risk_velocity_evictions_total (docs/rules.md, "Where counts live").
	CounterMemoryMB int `yaml:"counter_memory_mb"`
	// Profiles configures the merchant profiles learned from the journal
	// (merchant.profile.* in the rules).
	Profiles Profiles `yaml:"profiles"`
	// CandidatesDir is where the console's backtest looks for the candidate rule
	// directory an analyst names, and the only place it reads one from (default:
	// candidates beside rules_dir; Config.CandidatesRoot).
	CandidatesDir string `yaml:"candidates_dir"`
	// AllowEmptyRules lets the switch run a rule set without a rule (default false).
	// Otherwise a rules_dir with no rule (empty, a wrong path, files renamed .YAML)
	// stops the start with an error naming the directory and what it holds, and a
	// reload to such a set is refused while the rules in force stay: an empty set
	// approves every transaction with no fraud check. Restart to change.
	AllowEmptyRules bool `yaml:"allow_empty_rules"`
}

// Profiles configures the merchant profiles: docs/rules.md, "Merchant profiles".
type Profiles struct {
	// RefreshAt is the local time (HH:MM, the acquirer's zone) of the daily
	// refresh (default "03:00").
	RefreshAt string `yaml:"refresh_at"`
	// Window is how far back a profile looks (default 720h, 30 days).
	Window Duration `yaml:"window"`
	// NewCardDays: a card is new at a merchant when it made no transaction there
	// in that many days before (default 7).
	NewCardDays int `yaml:"new_card_days"`
	// MinDays and MinTransactions: a merchant with fewer days with traffic or
	// fewer attempts in the window gets its tier's defaults (default 7 and 100).
	MinDays         int `yaml:"min_days"`
	MinTransactions int `yaml:"min_transactions"`
	// FullEvery: every FullEvery-th refresh re-reads the whole window; the others
	// read the journal since the last refresh and the day that leaves the window
	// (default 7; 1: every refresh is a full one).
	FullEvery int `yaml:"full_every"`
	// Defaults replace the built-in tier defaults, tier by tier (each tier given
	// wholly: fields left out are 0).
	Defaults map[string]ruleset.Profile `yaml:"defaults"`
}

// RefreshClock returns the hour and minute of RefreshAt.
func (p Profiles) RefreshClock() (hour, minute int, err error) {
	t, err := time.Parse("15:04", p.RefreshAt)
	if err != nil {
		return 0, 0, fmt.Errorf("%q is not a local time HH:MM", p.RefreshAt)
	}
	return t.Hour(), t.Minute(), nil
}

// Refunds configures refunds.
type Refunds struct {
	// Window is how old an original purchase may be for a refund (default 720h, 30 days).
	Window Duration `yaml:"window"`
	// Policies are the void and refund policies by terminal kind and merchant tier
	// (merchantrisk.go); SoftPOS defaults to void same day, refund from the next day.
	Policies []TxnPolicy `yaml:"policies"`
}

// Breaker configures the issuers' circuit breakers: each opens when the share of
// timeouts among the outcomes of the last Window reaches FailureRate (with at least
// MinRequests outcomes), stays open OpenFor, then lets Probes requests through.
type Breaker struct {
	Window      Duration `yaml:"window"`           // sliding window of outcomes (default 10s)
	Buckets     int      `yaml:"buckets"`          // slices of the window (default 10)
	MinRequests int      `yaml:"min_requests"`     // outcomes the window needs before it can open (default 20)
	FailureRate float64  `yaml:"failure_rate"`     // share of timeouts that opens it, 0 < r <= 1 (default 0.5)
	OpenFor     Duration `yaml:"open_for"`         // how long it stays open (default 5s)
	Probes      int      `yaml:"half_open_probes"` // requests let through half-open (default 3)
	// Threshold was "timeouts in a row" (before the failure-rate breaker); a file that
	// still sets it is refused with a pointer to the new keys.
	Threshold int `yaml:"threshold,omitempty"`
	// Cooldown is the old name of OpenFor, likewise refused.
	Cooldown Duration `yaml:"cooldown,omitempty"`
}

// Reversals configures how terminal reversals (0400) are checked.
type Reversals struct {
	// AmountMismatch is what a reversal whose DE 4 differs from its original's amount
	// gets: "decline" (answered 13, nothing reversed; the default) or "reverse_full"
	// (the original is reversed in full, answered 00).
	AmountMismatch string `yaml:"amount_mismatch"`
}

// StandIn bounds the approvals the switch gives when an issuer is unreachable.
type StandIn struct {
	Enabled      bool  `yaml:"enabled"`
	MaxAmount    int64 `yaml:"max_amount"`     // per transaction, minor units
	PerCardCount int   `yaml:"per_card_count"` // approvals per card per day
	PerCardSum   int64 `yaml:"per_card_sum"`   // sum per card per day, minor units
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error (default info)
	Format string `yaml:"format"` // json (default) or console
	// TxnLines logs one line per transaction (default true).
	TxnLines *bool `yaml:"txn_lines"`
}

// Admin configures the admin HTTP server.
type Admin struct {
	Addr   string        `yaml:"addr"` // default 127.0.0.1:8080
	Tokens []admin.Token `yaml:"tokens"`
	// TokensFile is a YAML list of tokens, kept out of the main file.
	TokensFile string `yaml:"tokens_file"`
	// fromFile is how many of Tokens, at the end, came from TokensFile (for errors).
	fromFile int
	// TrustedProxies are the reverse proxies in front of the admin address, CIDRs
	// or single IP addresses (admin.ParseTrustedProxy): from a peer among them the
	// client's address is taken from X-Forwarded-For, or Forwarded
	// (TrustedProxyHeader), by admin.ClientAddr, for the console's per-address
	// login limit, its oplog entries and the log of refused admin requests. Empty
	// (the default): none, the connection's peer is the client. Read at start only.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// TrustedProxyHeader is the one header the trusted proxies name the client
	// in: "x-forwarded-for" (the default) or "forwarded" (RFC 7239). The other is
	// ignored: a proxy that manages one header passes the other on as the client
	// wrote it. Read at start only.
	TrustedProxyHeader string `yaml:"trusted_proxy_header"`
	// AllowedHosts are the host names the admin address answers to, each a name
	// (any port) or name:port (admin.ParseAllowedHost): a request naming another
	// Host is refused 421 before any handler (admin.CheckHost), against DNS
	// rebinding (docs/console.md). A Host that is an IP address is always
	// answered. Empty (the default): every Host, with a warning at start when
	// Addr is not a loopback address. Read at start only.
	AllowedHosts []string `yaml:"allowed_hosts"`
	// Console is the web console under /console/ (console.go).
	Console Console `yaml:"console"`
}

// Proxies returns TrustedProxies and TrustedProxyHeader parsed (Validate has
// checked them).
func (a Admin) Proxies() (admin.Proxies, error) {
	p, err := admin.ParseTrustedProxies(a.TrustedProxies)
	if err != nil {
		return admin.Proxies{}, fmt.Errorf("admin.trusted_proxies: %w", err)
	}
	h, err := admin.ParseProxyHeader(a.TrustedProxyHeader)
	if err != nil {
		return admin.Proxies{}, fmt.Errorf("admin.trusted_proxy_header: %w", err)
	}
	return admin.Proxies{Nets: p, Header: h}, nil
}

// Hosts returns AllowedHosts parsed (Validate has checked them).
func (a Admin) Hosts() (admin.AllowedHosts, error) {
	h, err := admin.ParseAllowedHosts(a.AllowedHosts)
	if err != nil {
		return admin.AllowedHosts{}, fmt.Errorf("admin.allowed_hosts: %w", err)
	}
	return h, nil
}

// Listener is one terminal listener.
type Listener struct {
	Name        string   `yaml:"name"`
	Addr        string   `yaml:"addr"`
	Dialect     string   `yaml:"dialect"`      // ascii (default), ascii-binary-bitmap or cup
	IdleTimeout Duration `yaml:"idle_timeout"` // default 5m
	MaxInFlight int      `yaml:"max_in_flight"`
	TLS         *TLS     `yaml:"tls"`

	// MaxConns bounds the listener's open connections (default 10000); past it a new
	// connection is closed at accept, so idle sockets cannot use up the file descriptors.
	MaxConns int `yaml:"max_conns"`
	// MaxConnsPerSource bounds the open connections from one IP address (default 1000;
	// raise it for terminals behind one NAT or concentrator).
	MaxConnsPerSource int `yaml:"max_conns_per_source"`
	// MaxInFlightPerSource bounds the requests in progress from one IP address over
	// all its connections to the listener (default 2000, or limits.max_in_flight if
	// lower): past it a request is answered 91 (RS source-busy) at once, so that one
	// host cannot fill limits.max_in_flight and hold up every other terminal.
	MaxInFlightPerSource int `yaml:"max_in_flight_per_source"`
	// FirstFrameTimeout closes a connection that sent no complete frame (TLS handshake
	// included) this long after connecting (default 10s; idle_timeout if shorter).
	FirstFrameTimeout Duration `yaml:"first_frame_timeout"`
	// Kind is the transport: tcp (default; 2-byte length framing) or https (each
	// message the body of a POST with Content-Type x-ISO-TPDU/x-auth; TLS from tls,
	// plain HTTP without it, e.g. behind a TLS-terminating proxy).
	Kind string `yaml:"kind"`
	// CUP configures a listener of dialect cup (docs/cup-dialect.md).
	CUP *CUPListener `yaml:"cup"`
	// ProxyProtocol, when set, takes each connection's terminal address from the
	// PROXY protocol header (version 1 or 2) that the trusted proxies in front of
	// the listener (a TCP load balancer, a TLS terminator) open it with
	// (docs/terminal-interface.md, Behind a load balancer). Absent: the socket's
	// peer is the terminal. Read at start only.
	ProxyProtocol *ProxyProtocol `yaml:"proxy_protocol"`
}

// ProxyProtocol configures the PROXY protocol on a terminal listener.
type ProxyProtocol struct {
	// Trusted are the proxies, CIDRs or single IP addresses (at least one): only a
	// connection from one of them may carry a header, one from any other address
	// with a header is refused (closed, logged, counted).
	Trusted []string `yaml:"trusted"`
	// Required refuses a connection from a trusted proxy without a header (false by
	// default: such a connection is the proxy's own, e.g. a health check).
	Required bool `yaml:"required"`
}

// Networks returns Trusted parsed (Validate has checked them).
func (p *ProxyProtocol) Networks() ([]netip.Prefix, error) {
	nets := make([]netip.Prefix, 0, len(p.Trusted))
	for i, e := range p.Trusted {
		n, err := parseProxyNet(e)
		if err != nil {
			return nil, fmt.Errorf("trusted[%d]: %q: %w", i, e, err)
		}
		nets = append(nets, n)
	}
	return nets, nil
}

// parseProxyNet parses a trusted proxy of a listener: as admin.trusted_proxies (a
// CIDR without host bits, or one address), not /0.
func parseProxyNet(e string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(strings.TrimSpace(e)); err == nil && p.Bits() == 0 {
		return netip.Prefix{}, errors.New("a /0 lets any address name itself any terminal address (and pass the allowed networks): list the proxies")
	}
	return admin.ParseTrustedProxy(e)
}

// CUPListener configures the UnionPay-style POS dialect of a listener.
type CUPListener struct {
	// MAC is the terminals' MAC algorithm: ecb (the CUP "ECB" algorithm, default) or
	// x919 (ANSI X9.19); MACByTerminal overrides it per terminal ID.
	MAC           string            `yaml:"mac"`
	MACByTerminal map[string]string `yaml:"mac_by_terminal"`
	// AcquirerID is F32 of the answers (digits, at most 11; default none).
	AcquirerID string `yaml:"acquirer_id"`
	// SingleLengthPINKeys allows sign-ins that ask for single-length keys (60.3 =
	// 001: an 8-byte PIK). PCI PIN requires PIN keys of double-length TDES at least,
	// so such a sign-in is refused (63) unless this is set, for a fleet of old
	// terminals that know no other scheme (false by default).
	SingleLengthPINKeys bool `yaml:"single_length_pin_keys"`
	// SingleLengthMACKeys allows sign-ins whose key scheme issues a single-length
	// (56-bit DES) MAC key: 60.3 = 001 and 003, whose F62 carries an 8-byte MAK (only
	// 004 carries a double-length one). Such a sign-in is refused (63) unless this is
	// set, for terminals that know no 004 (false by default; scheme 001 needs
	// single_length_pin_keys as well).
	SingleLengthMACKeys bool `yaml:"single_length_mac_keys"`
	// KeyLifetime: a terminal's sign-in less than this after its last sign-in that
	// made working keys gets the same keys again, unless one of them or its TMK was
	// rotated since (docs/cup-dialect.md, Sign-in; default 12h; negative: every
	// sign-in makes new keys). The dialect's sign-in carries no MAC: each new key
	// it makes costs the terminal its next transaction, so anyone could deny it
	// service by signing it in over and over.
	KeyLifetime Duration `yaml:"key_lifetime"`
	// SignInMaxAge is how long the identity and location a terminal reported at its
	// sign-in (F62) stand for its transactions (default 24h, at least 10m, at most
	// 168h). Past three quarters of it the answers ask the terminal to sign in again;
	// past it the sign-in no longer vouches for the terminal, whose transactions
	// meet the binding checks with only what they carry (F59), until it signs in.
	SignInMaxAge Duration `yaml:"sign_in_max_age"`
	// OfflineMaxAmount is the most one uploaded offline approval (0320, 60.1 = 36 or
	// 60.3 = 205) may capture, in minor units of its currency: one above it is
	// refused 61 offline-over-limit and kept by the terminal, whatever the merchant's
	// own per-transaction limit, which applies too (docs/cup-dialect.md, Offline
	// approvals). 0: the default, 5000000 (cup.DefaultOfflineMaxAmount: 50,000.00
	// CNY); -1: no ceiling.
	OfflineMaxAmount int64 `yaml:"offline_max_amount"`
	// Currencies are the currencies (F49, ISO 4217 numeric codes) the listener's
	// terminals may sell, pre-authorize, ask balances and upload offline
	// approvals in; a request in another is refused 12 currency-not-accepted
	// (docs/cup-dialect.md, Currency). Default ["156"]: the UnionPay terminal
	// specification's only F49, and the currency the merchants' limits and the
	// offline ceiling are meant in (they are minor units of no currency).
	Currencies []string `yaml:"currencies"`
	// MaxSTANsPerKey bounds the STAN entries a terminal's session holds for its
	// requests under one MAC key (its latest 2048 and an index of the older ones,
	// read from the journal so that a replay is told from a new request; about 230
	// bytes each): a request that would need more is refused A0
	// mac-key-too-many-stans, and so is every later one under that key, until the
	// terminal signs in and gets new keys (docs/cup-dialect.md, "A MAC'd request sent
	// again"). 0: the default, 50000 (cup.DefaultMaxSTANsPerKey); else 2048 to
	// 1000000 (F11 has 6 digits).
	MaxSTANsPerKey int `yaml:"max_stans_per_key"`
	// TestMode is what the listener does with the card messages of a terminal whose
	// header says it is in test status (terminal status digit 1): reject (the
	// default) refuses them 58 terminal-test-mode, journaled, nothing forwarded;
	// answer has the switch answer them 00 itself, with no issuer and nothing
	// journaled or settled (a listener for installing terminals). Reversals go on
	// to the pipeline either way (docs/cup-dialect.md, Test status).
	TestMode string `yaml:"test_mode"`
}

// TLS configures TLS on a listener.
type TLS struct {
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	ClientCAFile string `yaml:"client_ca_file"` // when set, client certificates are required
}

// Limits bound the work in progress.
type Limits struct {
	// MaxInFlight is the most requests in progress over all connections (default 20000).
	MaxInFlight int `yaml:"max_in_flight"`
}

// Issuer is one issuer host.
type Issuer struct {
	ID          string   `yaml:"id"`
	Addrs       []string `yaml:"addrs"`
	Timeout     Duration `yaml:"timeout"`    // default 10s
	EchoEvery   Duration `yaml:"echo_every"` // default 30s
	Connections int      `yaml:"connections"`
	AcquirerID  string   `yaml:"acquirer_id"`
	StandIn     StandIn  `yaml:"stand_in"`
	// ZPK is the key ID of the issuer's zone PIN key (default "<id>.ZPK"); ZMK its
	// zone master key, for zone key changes (default "<id>.ZMK").
	ZPK string `yaml:"zpk"`
	ZMK string `yaml:"zmk"`
}

// Route sends PANs starting with Prefix to Issuer.
type Route struct {
	Prefix string `yaml:"prefix"`
	Issuer string `yaml:"issuer"`
}

// DemoIssuer configures the built-in demo issuer (demo mode only).
type DemoIssuer struct {
	Addr string `yaml:"addr"` // default 127.0.0.1:0 (any free port)
	// External is the address of an issuer simulator already running (for example in a
	// process of its own, as the bench harness runs it); when set, none is started.
	External string `yaml:"external"`
	// Timeout is how long the switch waits for the demo issuer (default 10s).
	Timeout Duration `yaml:"timeout"`
}

// DefaultJournalWindow is journal.window when a configuration file does not set it.
const DefaultJournalWindow = time.Millisecond

// DefaultJournalWindowCPU is journal.window_cpu when a configuration file does not
// set it: the window engages once the CPUs are 70% busy (and disengages below 35%,
// wal.BusyBand). On the 2-core test machine, with the bench's harness and issuer
// simulator beside the switch, 4,000 authorizations a second kept the CPUs 63-74%
// busy with the window off and 5,000 a second 65-76% (issue 15, docs/performance.md).
const DefaultJournalWindowCPU = 0.7

// DefaultMinFreeMB is journal.min_free_mb when it is not set: room for Badger's
// memtables (64 MiB each) and their flush, a log segment (64 MiB) and what is in
// flight, with a margin.
const DefaultMinFreeMB = 512

// Journal configures the journal.
type Journal struct {
	MaxBatch int `yaml:"max_batch"`
	// Window is the longest a group commit gathers writes before its sync, once the
	// write rate is high enough for it to gather 8 (default 1ms; 0: never).
	Window Duration `yaml:"window"`
	// WindowCPU is the share (0 to 1) of the CPUs' time in use from which the window
	// engages (default 0.7; it disengages 0.35 below): a sync's CPU is saved at the
	// price of the writers' wait only when CPU is scarce. The share is the cgroup's
	// (v2, when it has a CPU quota) or that of the CPUs the process may run on. 0: by the write rate alone.
	WindowCPU float64 `yaml:"window_cpu"`
	// Gap is how long the queue may stay empty before a group is synced before its
	// window is over (default 50µs).
	Gap Duration `yaml:"gap"`
	// SegmentMB is the size of the log's segment files, in MiB (default 64).
	SegmentMB int `yaml:"segment_mb"`
	// IndexDelay is how long the journal's indexer lets committed records gather
	// before it writes their Badger index entries (default 200ms): long enough for
	// most transactions to be complete, so that their versions share one entry.
	IndexDelay Duration `yaml:"index_delay"`
	// MinFreeMB is the free space, in MiB, below which the data directory's file
	// system counts as full (default 512; -1: never): new transactions are declined
	// 91 and /readyz answers 503 until a quarter more than that is free again. It is
	// the room left for what is in flight (their final versions, reversals, the
	// store-and-forward queue) and for Badger, which crashes the process with SIGBUS
	// when the disk fills under its memory-mapped files (docs/wire.md, "A full disk").
	// With less than a quarter of it free the switch does not start: it exits with
	// an error saying so before it opens its database.
	MinFreeMB int `yaml:"min_free_mb"`
	// ExitOnBrokenLog makes `switchyard serve` drain and exit with status 75 once
	// the log is broken (a failed fdatasync, or a failed write it could not cut
	// back), for its supervisor (systemd Restart=on-failure, Kubernetes) to start
	// it again: the restart reads the log back from disk and reverses what the
	// issuer approved that the log did not record (default true). False keeps the
	// switch up answering every transaction 96, /readyz 503, until a person
	// restarts it (the behaviour before 6 December 2026). Read at start.
	ExitOnBrokenLog *bool `yaml:"exit_on_broken_log"`
}

// Security holds the secrets of the switch that are not keys of the key store.
type Security struct {
	// CardHashKeyBlock is the key of the HMAC that stands for PANs (16 to 64
	// bytes) as a TR-31 key block under the LMK (keys.WrapCardHashKey; `switchyard
	// keys card-hash-key` gives the block of the key a running switch has). Needs
	// the software HSM: with a payShield the switch holds no LMK.
	CardHashKeyBlock string `yaml:"card_hash_key_block"`
	// CardHashKeyHex is the same key in the clear (at least 16 bytes, hex);
	// accepted with a warning at start outside demo mode.
	CardHashKeyHex string `yaml:"card_hash_key_hex"`
	// CardHashKeyFile holds the clear key in a file (refused when readable by
	// others); accepted with a warning at start.
	CardHashKeyFile string `yaml:"card_hash_key_file"`
	// LMKFile holds the master key (LMK, AES-256, hex) under which every key of the
	// key store is wrapped; refused when readable by others. Demo mode uses the
	// public demo LMK.
	LMKFile string `yaml:"lmk_file"`
	// LMKEnv names an environment variable holding the LMK (hex) instead.
	LMKEnv string `yaml:"lmk_env"`
	// KeyGrace is how long previous working keys stay valid after a key change
	// (default 10m).
	KeyGrace Duration `yaml:"key_grace"`
	// KeyChangeInterval is the least time between two working-key changes
	// (0800/161) of one terminal (default 1m): one sooner is answered with the
	// last one's keys again, none generated. Each node of a cluster counts its own.
	KeyChangeInterval Duration `yaml:"key_change_interval"`
}

// Shutdown configures graceful drain.
type Shutdown struct {
	DrainTimeout Duration `yaml:"drain_timeout"` // default 30s
}

// SAF tunes the store-and-forward queue (switch/saf, and a cluster's jsaf).
type SAF struct {
	// ParkAfter is how many answers without an acknowledgement (no DE 39) an advice
	// may get from its issuer before it is parked: taken out of the queue, kept for
	// an operator (GET /api/v1/saf/parked), counted (switchyard_saf_parked_total) and
	// logged. 0: the default, 20; -1: never (repeated for ever, as before the fifth
	// release of 6 December 2026). Tries the issuer does not answer never park an
	// advice.
	ParkAfter int `yaml:"park_after"`
}

// DemoCardHashKey is the public card hash key of demo mode.
const DemoCardHashKey = "5357495443485941524444454d4f2d4b45592d464f522d504154482d48415348"

// Demo returns the configuration of `serve --demo`.
func Demo() *Config {
	c := &Config{
		DataDir:  "./data",
		Demo:     true,
		RulesDir: "./rules",
		Listeners: []Listener{
			{Name: "ascii", Addr: "127.0.0.1:8583", Dialect: string(message.DialectASCII)},
			{Name: "binary-bitmap", Addr: "127.0.0.1:8584", Dialect: string(message.DialectASCIIBinaryBitmap)},
			// Countertop terminals, fewer than the load: a smaller connection budget
			// leaves the file descriptors to the ASCII listeners.
			// single_length_mac_keys: the demo's cup terminals (T0000001/3/9, the
			// LT load terminals of the bench, `switchyard term --dialect cup`)
			// sign in with scheme 003, as most UnionPay terminals do, whose MAK
			// is single-length DES: allowed here explicitly, refused by default.
			{Name: "cup", Addr: "127.0.0.1:8585", Dialect: string(message.DialectCUP), MaxConns: 1000,
				CUP: &CUPListener{SingleLengthMACKeys: true}},
		},
		Admin:    Admin{Addr: "127.0.0.1:8080"},
		Security: Security{CardHashKeyHex: DemoCardHashKey},
		Journal:  Journal{Window: Duration(DefaultJournalWindow), WindowCPU: DefaultJournalWindowCPU},
		// The app `switchyard term` and the bench put in their tokens.
		Attestation: Attestation{Apps: []string{attest.DemoAppID}},
	}
	c.ApplyDefaults()
	return c
}

// Load reads and validates a YAML configuration file. Unknown keys are errors.
func Load(path string) (*Config, error) {
	b, err := readFile(path, MaxConfigBytes)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(b, path)
}

// Parse parses and validates YAML configuration; name is used in errors.
func Parse(b []byte, name string) (*Config, error) {
	var c Config
	// Defaults that an explicit zero overrides.
	c.Journal.Window = Duration(DefaultJournalWindow)
	c.Journal.WindowCPU = DefaultJournalWindowCPU
	c.Alerts.ReAlertAfter = Duration(registry.DefaultReAlertAfter)
	doc, err := checkDocument(b)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", name, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("config %s: %w", name, err)
	}
	zeros := explicitZeros(doc, &c)
	c.ApplyDefaults()
	if err := c.loadTokensFile(); err != nil {
		return nil, fmt.Errorf("config %s: %w", name, err)
	}
	if err := errors.Join(checkZeros(doc, &c, zeros), c.Validate()); err != nil {
		return nil, fmt.Errorf("config %s: %w", name, err)
	}
	return &c, nil
}

// checkDocument reads b as one YAML document and checks its keys and values against
// Config (checkKeys), so that every unknown key and undecodable value is named by its
// path; an empty file and a second document (after ---, which would be ignored) are
// refused. It returns the document's node.
func checkDocument(b []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc yaml.Node
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return nil, errors.New("the file is empty (at least one listener is required)")
	} else if err != nil {
		return nil, err
	}
	var second yaml.Node
	if err := dec.Decode(&second); err == nil {
		line := second.Line
		if len(second.Content) > 0 {
			line = second.Content[0].Line
		}
		return nil, fmt.Errorf("a second YAML document at line %d: the configuration is one document (remove the ---)", line)
	} else if !errors.Is(err, io.EOF) {
		return nil, err
	}
	var errs []error
	checkKeys(&doc, reflect.TypeFor[Config](), "", func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	})
	return &doc, errors.Join(errs...)
}

// loadTokensFile adds the tokens of admin.tokens_file, a YAML list of {name, role,
// token}, which must not be readable by others.
func (c *Config) loadTokensFile() error {
	f := c.Admin.TokensFile
	if f == "" {
		return nil
	}
	fi, err := os.Stat(f)
	if err != nil {
		return fmt.Errorf("admin.tokens_file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("admin.tokens_file: %s is readable by others (mode %v); chmod 600 it", f, fi.Mode().Perm())
	}
	b, err := readFile(f, MaxSecretBytes)
	if err != nil {
		return fmt.Errorf("admin.tokens_file: %w", err)
	}
	var toks []admin.Token
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&toks); err != nil {
		return fmt.Errorf("admin.tokens_file %s: %w", f, err)
	}
	c.Admin.Tokens = append(c.Admin.Tokens, toks...)
	c.Admin.fromFile = len(toks)
	return nil
}

// MinTokenLength is the shortest admin token accepted outside demo mode: 32
// characters, as from `openssl rand -hex 32` (64) or `head -c 24 /dev/urandom | base64`
// (32). A token is a password that never expires; a short one can be guessed.
const MinTokenLength = 32

// checkTokenStrength refuses, outside demo mode, a token too short or too uniform to
// be random (fewer than 8 distinct characters), naming where it was configured.
func (c *Config) checkTokenStrength(bad func(key, format string, args ...any)) {
	if c.Demo {
		return
	}
	inFile := len(c.Admin.Tokens) - c.Admin.fromFile
	for i, t := range c.Admin.Tokens {
		key := fmt.Sprintf("admin.tokens[%d] (%s)", i, t.Name)
		if i >= inFile {
			key = fmt.Sprintf("admin.tokens_file %s: token %d (%s)", c.Admin.TokensFile, i-inFile, t.Name)
		}
		if t.Token == "" {
			continue // admin.NewAuthenticator's check says so, once
		}
		distinct := map[rune]bool{}
		for _, r := range t.Token {
			distinct[r] = true
		}
		if len(t.Token) < MinTokenLength || len(distinct) < 8 {
			bad(key, "the token is %d characters with %d distinct ones; outside demo mode an admin token must be at least %d random characters: generate one with `openssl rand -hex 32` or `head -c 24 /dev/urandom | base64`",
				len(t.Token), len(distinct), MinTokenLength)
		}
	}
}

// ApplyDefaults fills unset values with their defaults.
func (c *Config) ApplyDefaults() {
	if c.DataDir == "" {
		c.DataDir = "./data"
	}
	if c.RulesDir == "" {
		c.RulesDir = "./rules"
	}
	if c.Timezone == "" {
		c.Timezone = "Asia/Shanghai"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "json"
	}
	if c.Log.TxnLines == nil {
		t := true
		c.Log.TxnLines = &t
	}
	if c.Admin.Addr == "" {
		c.Admin.Addr = "127.0.0.1:8080"
	}
	for i := range c.Listeners {
		l := &c.Listeners[i]
		if l.Dialect == "" {
			l.Dialect = string(message.DialectASCII)
		}
		if l.IdleTimeout == 0 {
			l.IdleTimeout = Duration(5 * time.Minute)
		}
		if l.MaxInFlight == 0 {
			l.MaxInFlight = 256
		}
		if l.MaxConns == 0 {
			l.MaxConns = 10000
		}
		if l.MaxConnsPerSource == 0 {
			l.MaxConnsPerSource = min(1000, l.MaxConns)
		}
		if l.FirstFrameTimeout == 0 {
			l.FirstFrameTimeout = Duration(10 * time.Second)
		}
		if l.Name == "" {
			l.Name = fmt.Sprintf("listener-%d", i)
		}
	}
	if c.Limits.MaxInFlight == 0 {
		c.Limits.MaxInFlight = 20000
	}
	for i := range c.Listeners {
		if l := &c.Listeners[i]; l.MaxInFlightPerSource == 0 {
			l.MaxInFlightPerSource = min(2000, max(1, c.Limits.MaxInFlight))
		}
	}
	for i := range c.Issuers {
		is := &c.Issuers[i]
		if is.Timeout == 0 {
			is.Timeout = Duration(10 * time.Second)
		}
		if is.EchoEvery == 0 {
			is.EchoEvery = Duration(30 * time.Second)
		}
		if is.Connections == 0 {
			is.Connections = 2
		}
	}
	if c.DemoIssuer.Addr == "" {
		c.DemoIssuer.Addr = "127.0.0.1:0"
	}
	c.QR.applyDefaults(c.Demo)
	if c.DemoIssuer.Timeout == 0 {
		c.DemoIssuer.Timeout = Duration(10 * time.Second)
	}
	if c.Demo && c.DemoLoadTerminals == 0 {
		c.DemoLoadTerminals = registry.DemoLoadTerminals
	}
	if c.Demo {
		routed := false
		for _, r := range c.Routes {
			// A route to the demo issuer, or one of its BIN elsewhere: that one
			// stands (two routes of one prefix are refused).
			routed = routed || r.Issuer == "demo" || r.Prefix == "476173"
		}
		if !routed {
			c.Routes = append(c.Routes, Route{Prefix: "476173", Issuer: "demo"})
		}
	}
	if c.Journal.MaxBatch == 0 {
		c.Journal.MaxBatch = journal.DefaultMaxBatch
	}
	if c.Journal.SegmentMB == 0 {
		c.Journal.SegmentMB = journal.DefaultSegmentMB
	}
	if c.Journal.Gap == 0 {
		c.Journal.Gap = Duration(journal.DefaultGap)
	}
	if c.Journal.MinFreeMB == 0 {
		c.Journal.MinFreeMB = DefaultMinFreeMB
	}
	if c.Journal.ExitOnBrokenLog == nil {
		t := true
		c.Journal.ExitOnBrokenLog = &t
	}
	if c.Journal.IndexDelay == 0 {
		c.Journal.IndexDelay = Duration(journal.DefaultIndexDelay)
	}
	if c.Security.KeyGrace == 0 {
		c.Security.KeyGrace = Duration(10 * time.Minute)
	}
	if c.Security.KeyChangeInterval == 0 {
		c.Security.KeyChangeInterval = Duration(time.Minute)
	}
	if c.Risk.CounterFlush == 0 {
		c.Risk.CounterFlush = Duration(5 * time.Second)
	}
	if c.Risk.CounterMemoryMB == 0 {
		c.Risk.CounterMemoryMB = 2048
	}
	if c.Risk.Profiles.RefreshAt == "" {
		c.Risk.Profiles.RefreshAt = "03:00"
	}
	if c.Refunds.Window == 0 {
		c.Refunds.Window = Duration(30 * 24 * time.Hour)
	}
	if c.Breaker.Window == 0 {
		c.Breaker.Window = Duration(10 * time.Second)
	}
	if c.Breaker.Buckets == 0 {
		c.Breaker.Buckets = 10
	}
	if c.Breaker.MinRequests == 0 {
		c.Breaker.MinRequests = 20
	}
	if c.Breaker.FailureRate == 0 {
		c.Breaker.FailureRate = 0.5
	}
	if c.Breaker.OpenFor == 0 {
		c.Breaker.OpenFor = Duration(5 * time.Second)
	}
	if c.Breaker.Probes == 0 {
		c.Breaker.Probes = 3
	}
	if c.Reversals.AmountMismatch == "" {
		c.Reversals.AmountMismatch = "decline"
	}
	if c.Shutdown.DrainTimeout == 0 {
		c.Shutdown.DrainTimeout = Duration(30 * time.Second)
	}
	if c.Alerts.SuspendMaxShare == 0 {
		c.Alerts.SuspendMaxShare = registry.DefaultSuspendMaxShare
	}
	if c.Alerts.SuspendMin == 0 {
		c.Alerts.SuspendMin = registry.DefaultSuspendMin
	}
	if c.Alerts.SuspendWindow == 0 {
		c.Alerts.SuspendWindow = Duration(registry.DefaultSuspendWindow)
	}
	if c.Alerts.MassSilenceShare == 0 {
		c.Alerts.MassSilenceShare = registry.DefaultMassSilenceShare
	}
	if c.Alerts.MassSilenceMin == 0 {
		c.Alerts.MassSilenceMin = registry.DefaultMassSilenceMin
	}
	if c.Alerts.WebhookMaxPerRun == 0 {
		c.Alerts.WebhookMaxPerRun = registry.DefaultWebhookMaxPerRun
	}
	if c.Registry.ChangeTTL == 0 {
		c.Registry.ChangeTTL = Duration(registry.DefaultChangeTTL)
	}
	if c.Notices.SecretOverlap == 0 {
		c.Notices.SecretOverlap = Duration(notify.DefaultSecretOverlap)
	}
	if c.Cluster != nil {
		c.Cluster.ApplyDefaults(c.DataDir)
	}
}

// Validate checks the configuration and names the first key at fault.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if _, err := time.LoadLocation(c.Timezone); err != nil {
		bad("timezone", "%q is not an IANA time zone", c.Timezone)
	}
	c.validateMerchantRisk(bad)
	if c.Cluster != nil {
		if err := c.Cluster.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "console":
	default:
		bad("log.format", "%q is not json or console", c.Log.Format)
	}
	// checkAddr checks an address the switch listens on (port 0: any free one);
	// checkDial one it connects to (a port 1 to 65535).
	checkAddr := func(key, addr string) { checkHostPort(key, addr, 0, bad) }
	checkDial := func(key, addr string) { checkHostPort(key, addr, 1, bad) }
	checkAddr("admin.addr", c.Admin.Addr)
	nonNegative := func(key string, d Duration) {
		if d < 0 {
			bad(key, "%s is negative", d.D())
		}
	}
	nonNegative("security.key_grace", c.Security.KeyGrace)
	nonNegative("security.key_change_interval", c.Security.KeyChangeInterval)
	nonNegative("risk.counter_flush", c.Risk.CounterFlush)
	if m := c.Risk.CounterMemoryMB; m < 16 || m > 1<<20 {
		bad("risk.counter_memory_mb", "%d is not between 16 and 1048576 (MiB)", m)
	}
	nonNegative("refunds.window", c.Refunds.Window)
	nonNegative("shutdown.drain_timeout", c.Shutdown.DrainTimeout)
	if p := c.SAF.ParkAfter; p < -1 || p > 10000 {
		bad("saf.park_after", "%d is not -1 (never), 0 (the default, 20) or 1 to 10000 answers", p)
	}
	nonNegative("demo_issuer.timeout", c.DemoIssuer.Timeout)
	for i, e := range c.Admin.TrustedProxies {
		if _, err := admin.ParseTrustedProxy(e); err != nil {
			bad(fmt.Sprintf("admin.trusted_proxies[%d]", i), "%q: %v", e, err)
		}
	}
	if _, err := admin.ParseProxyHeader(c.Admin.TrustedProxyHeader); err != nil {
		bad("admin.trusted_proxy_header", "%v", err)
	}
	for i, e := range c.Admin.AllowedHosts {
		if _, err := admin.ParseAllowedHost(e); err != nil {
			bad(fmt.Sprintf("admin.allowed_hosts[%d]", i), "%v", err)
		}
	}
	c.validateAppsTasks(bad)
	c.Admin.Console.validate(bad)
	if _, _, err := c.Risk.Profiles.RefreshClock(); err != nil {
		bad("risk.profiles.refresh_at", "%v", err)
	}
	nonNegative("risk.profiles.window", c.Risk.Profiles.Window)
	c.validateCandidatesDir(bad)
	for _, n := range []struct {
		key string
		n   int
	}{{"new_card_days", c.Risk.Profiles.NewCardDays}, {"min_days", c.Risk.Profiles.MinDays}, {"min_transactions", c.Risk.Profiles.MinTransactions}, {"full_every", c.Risk.Profiles.FullEvery}} {
		if n.n < 0 {
			bad("risk.profiles."+n.key, "%d is negative", n.n)
		}
	}
	if _, err := admin.NewAuthenticator(c.Admin.Tokens); err != nil {
		bad("admin.tokens", "%v", err)
	}
	c.checkTokenStrength(bad)
	if len(c.Listeners) == 0 {
		bad("listeners", "at least one terminal listener is required")
	}
	names := map[string]bool{}
	for i, l := range c.Listeners {
		key := fmt.Sprintf("listeners[%d]", i)
		if names[l.Name] {
			bad(key+".name", "%q is used twice", l.Name)
		}
		names[l.Name] = true
		checkAddr(key+".addr", l.Addr)
		if _, err := message.ParseDialect(l.Dialect); err != nil {
			bad(key+".dialect", "%v", err)
		}
		checkCUP(key, l, bad)
		if l.IdleTimeout.D() < time.Second {
			bad(key+".idle_timeout", "%s is shorter than 1s", l.IdleTimeout.D())
		}
		if l.MaxInFlight < 1 || l.MaxInFlight > 65536 {
			bad(key+".max_in_flight", "%d is not between 1 and 65536", l.MaxInFlight)
		}
		if l.MaxConns < 1 || l.MaxConns > 1000000 {
			bad(key+".max_conns", "%d is not between 1 and 1000000", l.MaxConns)
		}
		if l.MaxConnsPerSource < 1 || l.MaxConnsPerSource > l.MaxConns {
			bad(key+".max_conns_per_source", "%d is not between 1 and max_conns (%d)", l.MaxConnsPerSource, l.MaxConns)
		}
		if l.MaxInFlightPerSource < 1 || l.MaxInFlightPerSource > c.Limits.MaxInFlight {
			bad(key+".max_in_flight_per_source", "%d is not between 1 and limits.max_in_flight (%d)", l.MaxInFlightPerSource, c.Limits.MaxInFlight)
		}
		if d := l.FirstFrameTimeout.D(); d < 100*time.Millisecond || d > 5*time.Minute {
			bad(key+".first_frame_timeout", "%s is not between 100ms and 5m", d)
		}
		if l.TLS != nil && (l.TLS.CertFile == "" || l.TLS.KeyFile == "") {
			bad(key+".tls", "cert_file and key_file are both required")
		}
		if pp := l.ProxyProtocol; pp != nil {
			if len(pp.Trusted) == 0 {
				bad(key+".proxy_protocol.trusted", "at least one proxy (CIDR or address) is required: only they may send a header")
			}
			for j, e := range pp.Trusted {
				if _, err := parseProxyNet(e); err != nil {
					bad(fmt.Sprintf("%s.proxy_protocol.trusted[%d]", key, j), "%q: %v", e, err)
				}
			}
		}
	}
	if c.Limits.MaxInFlight < 1 {
		bad("limits.max_in_flight", "%d is not positive", c.Limits.MaxInFlight)
	}
	c.checkListenClash(bad)
	issuers := map[string]bool{}
	if (c.Demo || c.DemoLoadTerminals != 0) && (c.DemoLoadTerminals < 1 || c.DemoLoadTerminals > registry.MaxDemoLoadTerminals) {
		bad("demo_load_terminals", "%d: want 1 to %d", c.DemoLoadTerminals, registry.MaxDemoLoadTerminals)
	}
	if c.Demo {
		issuers["demo"] = true
		checkAddr("demo_issuer.addr", c.DemoIssuer.Addr)
		if c.DemoIssuer.External != "" {
			checkDial("demo_issuer.external", c.DemoIssuer.External)
		}
	}
	for i, is := range c.Issuers {
		key := fmt.Sprintf("issuers[%d]", i)
		if is.ID == "" {
			bad(key+".id", "required")
		}
		if issuers[is.ID] {
			bad(key+".id", "%q is defined twice (the demo issuer is \"demo\")", is.ID)
		}
		issuers[is.ID] = true
		if len(is.Addrs) == 0 {
			bad(key+".addrs", "at least one host:port is required")
		}
		for j, a := range is.Addrs {
			checkDial(fmt.Sprintf("%s.addrs[%d]", key, j), a)
		}
		if is.Timeout.D() < 10*time.Millisecond || is.Timeout.D() > 2*time.Minute {
			bad(key+".timeout", "%s is not between 10ms and 2m", is.Timeout.D())
		}
		if is.EchoEvery < 0 {
			bad(key+".echo_every", "%s is negative", is.EchoEvery.D())
		}
		if is.Connections < 1 || is.Connections > 64 {
			bad(key+".connections", "%d is not between 1 and 64", is.Connections)
		}
		if is.AcquirerID != "" && !cupAcquirerID.MatchString(is.AcquirerID) {
			// DE 32 of the requests and the acquirer part of a reversal's DE 90 (n 11).
			bad(key+".acquirer_id", "%q is not 1 to 11 digits", is.AcquirerID)
		}
		if si := is.StandIn; si.Enabled && (si.MaxAmount <= 0 || si.PerCardCount <= 0 || si.PerCardSum <= 0) {
			bad(key+".stand_in", "max_amount, per_card_count and per_card_sum must all be positive when enabled")
		}
	}
	prefixes := map[string]int{}
	for i, r := range c.Routes {
		key := fmt.Sprintf("routes[%d]", i)
		if r.Prefix == "" || len(r.Prefix) > 11 || strings.Trim(r.Prefix, "0123456789") != "" {
			bad(key+".prefix", "%q is not 1 to 11 digits", r.Prefix)
		}
		if j, dup := prefixes[r.Prefix]; dup {
			// The router keeps one issuer a prefix: the other route would be dropped.
			bad(key+".prefix", "%q is routes[%d].prefix already (to %s): one issuer a prefix", r.Prefix, j, c.Routes[j].Issuer)
		} else {
			prefixes[r.Prefix] = i
		}
		if !issuers[r.Issuer] {
			bad(key+".issuer", "%q is not a configured issuer", r.Issuer)
		}
	}
	if c.Journal.SegmentMB < 1 || c.Journal.SegmentMB > 4000 {
		bad("journal.segment_mb", "%d is not between 1 and 4000", c.Journal.SegmentMB)
	}
	if c.Journal.Window < 0 || c.Journal.Window.D() > 100*time.Millisecond {
		bad("journal.window", "%s is not between 0 and 100ms", c.Journal.Window.D())
	}
	if !(c.Journal.WindowCPU >= 0 && c.Journal.WindowCPU <= 1) { // NaN too
		bad("journal.window_cpu", "%v is not a share between 0 and 1", c.Journal.WindowCPU)
	}
	if c.Journal.Gap < 0 || c.Journal.Gap.D() > 100*time.Millisecond {
		bad("journal.gap", "%s is not between 0 and 100ms", c.Journal.Gap.D())
	}
	if c.Journal.MinFreeMB < -1 {
		bad("journal.min_free_mb", "%d is neither a size in MiB nor -1 (never)", c.Journal.MinFreeMB)
	}
	if c.Journal.IndexDelay < 0 || c.Journal.IndexDelay.D() > time.Second {
		bad("journal.index_delay", "%s is not between 0 and 1s", c.Journal.IndexDelay.D())
	}
	if c.Journal.MaxBatch < 1 {
		bad("journal.max_batch", "%d is not positive", c.Journal.MaxBatch)
	}
	if c.Breaker.Threshold != 0 {
		bad("breaker.threshold", "no longer used: the breaker opens on a failure rate; set breaker.failure_rate and breaker.min_requests (docs/switchyard.example.yaml)")
	}
	if c.Breaker.Cooldown != 0 {
		bad("breaker.cooldown", "renamed breaker.open_for")
	}
	if w := c.Breaker.Window.D(); w < time.Second || w > 10*time.Minute {
		bad("breaker.window", "%s is not between 1s and 10m", w)
	}
	if b := c.Breaker.Buckets; b < 1 || b > 600 {
		bad("breaker.buckets", "%d is not between 1 and 600", b)
	} else if c.Breaker.Window.D()/time.Duration(b) < 10*time.Millisecond {
		bad("breaker.buckets", "%d buckets make slices of the %s window shorter than 10ms", b, c.Breaker.Window.D())
	}
	if c.Breaker.MinRequests < 1 {
		bad("breaker.min_requests", "%d is not positive", c.Breaker.MinRequests)
	}
	if r := c.Breaker.FailureRate; !(r > 0 && r <= 1) {
		bad("breaker.failure_rate", "%g is not in (0, 1]", r)
	}
	if d := c.Breaker.OpenFor.D(); d < 100*time.Millisecond || d > 10*time.Minute {
		bad("breaker.open_for", "%s is not between 100ms and 10m", d)
	}
	if n := c.Breaker.Probes; n < 1 || n > 1000 {
		bad("breaker.half_open_probes", "%d is not between 1 and 1000", n)
	}
	switch c.Reversals.AmountMismatch {
	case "decline", "reverse_full":
	default:
		bad("reversals.amount_mismatch", "%q is not decline or reverse_full", c.Reversals.AmountMismatch)
	}
	c.Completions.validate(bad)
	if d := c.Registry.ChangeTTL.D(); d < time.Hour || d > 90*24*time.Hour {
		bad("registry.change_ttl", "%s is not between 1h and 2160h (90 days)", d)
	}
	switch n := btoi(c.Security.CardHashKeyBlock != "") + btoi(c.Security.CardHashKeyHex != "") + btoi(c.Security.CardHashKeyFile != ""); {
	case n > 1:
		bad("security", "give one of card_hash_key_block, card_hash_key_hex and card_hash_key_file")
	case n == 0:
		bad("security.card_hash_key_block", "required (the card hash key under the LMK; or, in the clear, security.card_hash_key_hex or _file)")
	}
	if b := strings.TrimSpace(c.Security.CardHashKeyBlock); b != "" {
		if h, _, err := tr31.ParseHeader(b); err != nil {
			bad("security.card_hash_key_block", "not a TR-31 key block: %v", err)
		} else if lb, _ := h.Block("LB"); h.Version != tr31.VersionD || h.Usage != tr31.UsageHMAC || lb != cardHashKeyLabel {
			bad("security.card_hash_key_block", "a block of version %c usage %s labelled %q, not a card hash key block (version D, usage %s, label %q: `switchyard keys card-hash-key` makes one)",
				h.Version, h.Usage, lb, tr31.UsageHMAC, cardHashKeyLabel)
		}
		if c.HSM.IsPayShield() {
			bad("security.card_hash_key_block", "needs the software HSM's LMK (hsm.backend software): with a payShield the switch holds no LMK to open it; give the key in security.card_hash_key_file")
		}
	}
	if c.Security.CardHashKeyHex != "" {
		if k, err := hex.DecodeString(c.Security.CardHashKeyHex); err != nil || len(k) < 16 {
			bad("security.card_hash_key_hex", "not hex of at least 16 bytes")
		}
	}
	c.HSM.validate(bad)
	if !c.Demo && c.Security.LMKFile == "" && c.Security.LMKEnv == "" && !c.HSM.IsPayShield() {
		bad("security.lmk_file", "required outside demo mode (or security.lmk_env)")
	}
	if c.Security.LMKFile != "" && c.Security.LMKEnv != "" {
		bad("security", "give lmk_file or lmk_env, not both")
	}
	if !c.Demo && c.Security.CardHashKeyHex == DemoCardHashKey {
		bad("security.card_hash_key_hex", "the public demo key is refused outside demo mode")
	}
	for i, a := range c.Alerts.WebhookAllow {
		u, err := url.Parse(a)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			bad(fmt.Sprintf("alerts.webhook_allow[%d]", i), "%q is not an http or https URL without user, query or fragment", a)
		}
	}
	if c.Alerts.WebhookSecretFile != "" && c.Alerts.WebhookSecretEnv != "" {
		bad("alerts", "give webhook_secret_file or webhook_secret_env, not both")
	}
	if len(c.Alerts.WebhookAllow) > 0 && c.Alerts.WebhookSecretFile == "" && c.Alerts.WebhookSecretEnv == "" {
		bad("alerts.webhook_secret_file", "required with alerts.webhook_allow (or alerts.webhook_secret_env): webhook bodies are signed")
	}
	if c.Alerts.WebhookSecretPreviousFile != "" && c.Alerts.WebhookSecretPreviousEnv != "" {
		bad("alerts", "give webhook_secret_previous_file or webhook_secret_previous_env, not both")
	}
	if (c.Alerts.WebhookSecretPreviousFile != "" || c.Alerts.WebhookSecretPreviousEnv != "") && c.Alerts.WebhookSecretFile == "" && c.Alerts.WebhookSecretEnv == "" {
		bad("alerts.webhook_secret_previous_file", "needs alerts.webhook_secret_file or alerts.webhook_secret_env: the previous secret signs beside the current one, never alone")
	}
	if c.Alerts.SuspendMaxShare <= 0 || c.Alerts.SuspendMaxShare > 1 {
		bad("alerts.suspend_max_share", "%v is not above 0 and at most 1", c.Alerts.SuspendMaxShare)
	}
	if c.Alerts.SuspendMin < 1 {
		bad("alerts.suspend_min", "%d is not positive", c.Alerts.SuspendMin)
	}
	if c.Alerts.SuspendWindow.D() < time.Minute || c.Alerts.SuspendWindow.D() > 7*24*time.Hour {
		bad("alerts.suspend_window", "%s is not between 1m and 168h", c.Alerts.SuspendWindow.D())
	}
	if c.Alerts.MassSilenceShare <= 0 || c.Alerts.MassSilenceShare > 1 {
		bad("alerts.mass_silence_share", "%v is not above 0 and at most 1", c.Alerts.MassSilenceShare)
	}
	if c.Alerts.MassSilenceMin < 1 {
		bad("alerts.mass_silence_min", "%d is not positive", c.Alerts.MassSilenceMin)
	}
	if c.Alerts.WebhookMaxPerRun < 1 || c.Alerts.WebhookMaxPerRun > 100000 {
		bad("alerts.webhook_max_per_run", "%d is not between 1 and 100000", c.Alerts.WebhookMaxPerRun)
	}
	if d := c.Alerts.ReAlertAfter.D(); d < 0 || d > 7*24*time.Hour {
		bad("alerts.realert_after", "%s is not between 0s and 168h", d)
	}
	c.QR.validate(issuers, bad)
	return errors.Join(errs...)
}

// checkListenClash reports two of the addresses the switch listens on (the
// listeners, admin.addr, the demo issuer's) that would take one port: the second
// bind would fail at start. Port 0 (any free one) clashes with nothing; a wildcard
// host (empty, 0.0.0.0, ::) clashes with any host on its port.
func (c *Config) checkListenClash(bad func(key, format string, args ...any)) {
	type bound struct{ key, host, port string }
	var seen []bound
	add := func(key, addr string) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil || port == "0" {
			return // reported by checkAddr, or any free port
		}
		for _, b := range seen {
			wild := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
			if b.port == port && (b.host == host || wild(b.host) || wild(host)) {
				bad(key, "%q takes the port of %s (%s)", addr, b.key, net.JoinHostPort(b.host, b.port))
				return
			}
		}
		seen = append(seen, bound{key, host, port})
	}
	for i, l := range c.Listeners {
		add(fmt.Sprintf("listeners[%d].addr", i), l.Addr)
	}
	add("admin.addr", c.Admin.Addr)
	if c.Demo && c.DemoIssuer.External == "" {
		add("demo_issuer.addr", c.DemoIssuer.Addr)
	}
}

// checkHostPort reports addr under key unless it is host:port with a numeric port
// from minPort to 65535 (a service name such as :http, or a port past 65535, is
// refused: net.SplitHostPort takes both).
func checkHostPort(key, addr string, minPort int, bad func(key, format string, args ...any)) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		bad(key, "%q is not host:port", addr)
		return
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < minPort || n > 65535 || strings.TrimLeft(port, "0123456789") != "" {
		bad(key, "%q: the port %q is not a number from %d to 65535", addr, port, minPort)
	}
}

// cardHashKeyLabel is keys.CardHashKeyLabel (config does not import the key store).
const cardHashKeyLabel = "card-hash-key"

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// CardHashKeySource names the configuration key the card hash key comes from:
// security.card_hash_key_block, _file or _hex.
func (c *Config) CardHashKeySource() string {
	switch {
	case c.Security.CardHashKeyBlock != "":
		return "security.card_hash_key_block"
	case c.Security.CardHashKeyFile != "":
		return "security.card_hash_key_file"
	}
	return "security.card_hash_key_hex"
}

// CardHashKey returns the clear card hash key from the file or the hex value. A key
// given as security.card_hash_key_block is opened under the LMK by the server
// (keys.UnwrapCardHashKey); CardHashKey then fails.
func (c *Config) CardHashKey() ([]byte, error) {
	if c.Security.CardHashKeyBlock != "" {
		return nil, errors.New("security.card_hash_key_block: the card hash key is under the LMK; open it with keys.UnwrapCardHashKey")
	}
	s := c.Security.CardHashKeyHex
	if c.Security.CardHashKeyFile != "" {
		fi, err := os.Stat(c.Security.CardHashKeyFile)
		if err != nil {
			return nil, fmt.Errorf("security.card_hash_key_file: %w", err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("security.card_hash_key_file: %s is readable by others (mode %v); chmod 600 it", c.Security.CardHashKeyFile, fi.Mode().Perm())
		}
		b, err := readFile(c.Security.CardHashKeyFile, MaxSecretBytes)
		if err != nil {
			return nil, fmt.Errorf("security.card_hash_key_file: %w", err)
		}
		s = strings.TrimSpace(string(b))
	}
	k, err := hex.DecodeString(s)
	if err != nil || len(k) < 16 {
		return nil, errors.New("security: card hash key is not hex of at least 16 bytes")
	}
	return k, nil
}

// WebhookSecret returns the key that signs webhook bodies, from
// alerts.webhook_secret_file or the variable alerts.webhook_secret_env names; nil
// when neither is set (webhook actions then fail rather than post unsigned).
func (c *Config) WebhookSecret() ([]byte, error) {
	return readSecret("alerts.webhook_secret", c.Alerts.WebhookSecretFile, c.Alerts.WebhookSecretEnv)
}

// WebhookSecretPrevious returns the secret a rotation replaces, from
// alerts.webhook_secret_previous_file or _env; nil when neither is set (no
// rotation under way: webhooks carry one signature).
func (c *Config) WebhookSecretPrevious() ([]byte, error) {
	return readSecret("alerts.webhook_secret_previous", c.Alerts.WebhookSecretPreviousFile, c.Alerts.WebhookSecretPreviousEnv)
}

// readSecret reads a webhook secret from file (refused when readable by others) or
// the environment variable env, and checks its length; key (e.g.
// "alerts.webhook_secret") names the setting in errors. Nil when both are empty.
func readSecret(key, file, env string) ([]byte, error) {
	var s string
	switch {
	case file != "":
		fi, err := os.Stat(file)
		if err != nil {
			return nil, fmt.Errorf("%s_file: %w", key, err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("%s_file: %s is readable by others (mode %v); chmod 600 it", key, file, fi.Mode().Perm())
		}
		b, err := readFile(file, MaxSecretBytes)
		if err != nil {
			return nil, fmt.Errorf("%s_file: %w", key, err)
		}
		s = strings.TrimSpace(string(b))
	case env != "":
		s = strings.TrimSpace(os.Getenv(env))
		if s == "" {
			return nil, fmt.Errorf("%s_env: the variable %s is empty or not set", key, env)
		}
	default:
		return nil, nil
	}
	if len(s) < 16 {
		return nil, fmt.Errorf("%s: the secret is shorter than 16 bytes", key)
	}
	return []byte(s), nil
}
