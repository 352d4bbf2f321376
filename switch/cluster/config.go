package cluster

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Modes of Config.Mode.
const (
	// ModeEmbedded runs a nats-server with JetStream inside this process.
	ModeEmbedded = "embedded"
	// ModeExternal connects to an existing NATS cluster by URL.
	ModeExternal = "external"
)

// Config is the `cluster:` section of a node's configuration (switch/config).
type Config struct {
	// Mode is "embedded" or "external".
	Mode string `yaml:"mode"`
	// Node is this switch node's number in the cluster, 1 to 9, unique and stable
	// across restarts: it is the first digit of the RRNs the node hands out, and
	// partitions the issuer STANs, so that no two nodes ever hand out the same one
	// without asking each other.
	Node int `yaml:"node"`
	// Replicas is how many copies JetStream keeps of every stream and bucket
	// (default 3; 1 for an embedded server without routes).
	Replicas int `yaml:"replicas"`
	// StateCompactAbove is how many of a shared store's commits the STATE stream
	// may hold before a node compacts them into a snapshot (default
	// DefaultStateCompactAbove; -1: never by itself, only when asked by
	// `switchyard cluster compact`).
	StateCompactAbove int `yaml:"state_compact_above"`
	// GroupPause is the least time between two of this node's journal group
	// messages while its journal entries come fast enough for the pause to gather 32
	// of them: fewer, larger messages cost the JetStream servers less CPU (docs/
	// cluster.md, "The load's concurrency, and pacing the groups"). A Go duration up
	// to 100ms; default 10ms; "0" for none (each group goes as soon as it can).
	GroupPause string `yaml:"group_pause"`
	// ShedAfter: while a message of this node that the stream acknowledged more
	// than this long ago is not applied by this node's journal applier (the applier
	// is behind the stream: the host overloaded, a consumer stalled), new
	// authorizations and financial requests are answered 91 journal-overloaded at
	// once, before their checks and rules, publishing nothing, until it catches up;
	// otherwise each would publish its record and wait 5 s for a verdict before its
	// 91, and feed the backlog (docs/cluster.md, "Shedding while the applier is
	// behind"). A Go duration from 250ms to 5s; default 2.5s; "0" never sheds.
	ShedAfter string `yaml:"shed_after"`
	// LeaseTTL is how long this node's lease lives without a refresh: a node cut
	// off from the others (a network blip, a pause of the process) for longer is
	// judged dead, another node recovers its open transactions, and it is fenced
	// when it comes back (drains and exits 75). A Go duration of whole seconds
	// (JetStream's message TTLs are), from 2s to 60s and at least twice
	// lease_refresh; default 5s (DefaultLeaseTTL). Longer survives longer cuts, but
	// a dead node's open transactions are settled, and its owed reversals sent,
	// that much later (docs/cluster.md, "Leases and open transactions of a dead
	// node").
	LeaseTTL string `yaml:"lease_ttl"`
	// LeaseRefresh is how often this node republishes its lease: a Go duration from
	// 100ms to half of lease_ttl; default 1s (DefaultLeaseRefresh).
	LeaseRefresh string `yaml:"lease_refresh"`
	// MerchantLockWithin is how near one of its merchant's daily, daily count or
	// monthly limits a card purchase or pre-authorization must come, as a fraction
	// of that limit, to take the merchant's cluster-wide lock and be checked once
	// this node has caught up with the others (docs/cluster.md, "Merchant limits
	// across the nodes"): 0 to 1, default DefaultMerchantLockWithin (nil). The
	// margin is never less than the purchase's own amount (one purchase for a count
	// limit); 0 leaves only that, 1 locks every purchase of a merchant with such a
	// limit.
	MerchantLockWithin *float64 `yaml:"merchant_lock_within"`
	// Embedded configures the nats-server this node runs (mode embedded).
	Embedded Embedded `yaml:"embedded"`
	// External configures the connection to an existing cluster (mode external).
	External External `yaml:"external"`
}

// Embedded is the nats-server a node embeds. Three nodes with the same
// cluster_name whose routes name each other form an R3 JetStream cluster.
type Embedded struct {
	// ServerName names this node in the cluster. It must be unique and must not
	// change across restarts: JetStream identifies its Raft peers by it.
	ServerName string `yaml:"server_name"`
	// StoreDir is JetStream's store; empty means <data_dir>/jetstream (see ApplyDefaults).
	StoreDir string `yaml:"store_dir"`
	// ClientAddr is host:port of the NATS client port, for tools such as the
	// nats CLI; port 0 picks a free port. The node itself connects in process, so
	// with ClientAddrNone ("none") no tool can reach JetStream through this node:
	// the server listens on a loopback port of the kernel's choosing and takes no
	// connection but the node's own (a token made at start, kept in memory). The
	// routes are not client connections and work as ever.
	ClientAddr string `yaml:"client_addr"`
	// ClusterName is the cluster's name, the same on every node.
	ClusterName string `yaml:"cluster_name"`
	// ClusterAddr is host:port this node accepts routes on; port 0 picks a free
	// port (useful only for a single node: peers must know it in advance).
	ClusterAddr string `yaml:"cluster_addr"`
	// ClusterAdvertise is host:port the peers should dial to reach this node's
	// cluster_addr, when that is not the address they can dial (a NAT, a proxy, a
	// container's published port): the node gives it to its peers for the routes
	// they learn from each other (nats-server's cluster advertise). Empty: the
	// peers learn cluster_addr's host and port as the node sees them.
	ClusterAdvertise string `yaml:"cluster_advertise"`
	// Routes are the peers' route URLs (nats-route://host:port); listing this
	// node's own route too is allowed, so every node can share one list. No
	// routes means a standalone JetStream server (one node, R1 streams only);
	// cluster_name and cluster_addr are then unused.
	Routes []string `yaml:"routes"`
	// TLS, when given, makes the routes between the nodes and the client port
	// mutual TLS (see EmbeddedTLS). Without it both are plain TCP: the cluster
	// port must then sit on a private network.
	TLS EmbeddedTLS `yaml:"tls"`
}

// EmbeddedTLS is the embedded server's mutual TLS. Every route between two nodes,
// and every connection to the client port, presents a certificate signed by the
// CA and checks the other end's against it; a connection without one, or with one
// another CA signed, is refused. The CA therefore authenticates the peers: use one
// that signs this cluster's nodes (and the tools allowed on its client port) and
// nothing else. A node dialling a route checks that the peer's certificate names
// the route URL's host (a DNS name or an IP address among its subject alternative
// names); routes learnt from the peers are checked against the first host name of
// the node's own routes, as nats-server does. The node's own connection to its
// server is in process and does not use TLS.
type EmbeddedTLS struct {
	// CAFile is the PEM certificate of the CA that signs every node's certificate.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are this node's certificate (PEM, with any
	// intermediates) and private key, presented as server and as client. The key
	// file must not be readable by others (chmod 600).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Enabled reports whether any of the TLS files is given (Validate then requires
// all three).
func (t EmbeddedTLS) Enabled() bool { return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" }

// tlsFile is one of EmbeddedTLS's files and its key under cluster.embedded.tls.
type tlsFile struct{ key, path string }

func (t EmbeddedTLS) files() []tlsFile {
	return []tlsFile{{"ca_file", t.CAFile}, {"cert_file", t.CertFile}, {"key_file", t.KeyFile}}
}

// External is the connection to a NATS cluster run by someone else.
type External struct {
	// URLs are the servers' client URLs (nats:// or tls://).
	URLs []string `yaml:"urls"`
	// TLSCAFile verifies the servers' certificates.
	TLSCAFile string `yaml:"tls_ca_file"`
	// TLSCertFile and TLSKeyFile are this node's client certificate (mutual TLS).
	TLSCertFile string `yaml:"tls_cert_file"`
	TLSKeyFile  string `yaml:"tls_key_file"`
	// CredentialsFile is a NATS .creds file (user JWT and NKey seed).
	CredentialsFile string `yaml:"credentials_file"`
	// NKeySeedFile is a file holding a user NKey seed.
	NKeySeedFile string `yaml:"nkey_seed_file"`
	// TokenFile is a file holding an authorization token (mode 600).
	TokenFile string `yaml:"token_file"`
}

// Default addresses of an embedded server: NATS's usual ports, on loopback for
// the client port (remote tools should use the cluster's own TLS setup).
const (
	DefaultClientAddr  = "127.0.0.1:4222"
	DefaultClusterAddr = "0.0.0.0:6222"
)

// ClientAddrNone as cluster.embedded.client_addr shuts tools out of the embedded
// server's client port (see Embedded.ClientAddr).
const ClientAddrNone = "none"

// DefaultStateCompactAbove is Config.StateCompactAbove's default: a store's
// commits held before it is compacted. A registry change is one commit; a day of
// an acquirer's operators is a few hundred.
const DefaultStateCompactAbove = 10000

// DefaultGroupPause is Config.GroupPause's default.
const DefaultGroupPause = 10 * time.Millisecond

// maxGroupPause bounds Config.GroupPause: each of a request's two durable points
// may wait that long.
const maxGroupPause = 100 * time.Millisecond

// Pause returns GroupPause as a duration: DefaultGroupPause when it is empty, 0 for
// none. Validate has checked it.
func (c *Config) Pause() time.Duration { return durationOr(c.GroupPause, DefaultGroupPause) }

// durationOr is s, a duration Validate has checked, or def when s is empty.
func durationOr(s string, def time.Duration) time.Duration {
	if s == "" {
		return def
	}
	d, _ := time.ParseDuration(s)
	return d
}

// DefaultShedAfter is Config.ShedAfter's default: half of a request's wait for its
// write ahead's verdict (cjournal.DefaultAckTimeout), so that a request taken while
// the applier is that far behind still has time to be decided.
const DefaultShedAfter = 2500 * time.Millisecond

// Bounds of Config.ShedAfter: below minShedAfter a pause of the process or an
// election would refuse requests that a moment later go through; past maxShedAfter
// (a request's wait for its verdict) every refused request would have been
// answered 91 anyway.
const (
	minShedAfter = 250 * time.Millisecond
	maxShedAfter = 5 * time.Second
)

// Shed returns ShedAfter as a duration: DefaultShedAfter when it is empty, 0 for
// never. Validate has checked it.
func (c *Config) Shed() time.Duration { return durationOr(c.ShedAfter, DefaultShedAfter) }

// Bounds of Config.LeaseTTL and Config.LeaseRefresh.
const (
	// minConfigLeaseTTL: a shorter TTL leaves a refresh (bounded by half the TTL)
	// no time to get through an election of the bucket's leader, and fences a node
	// for any hiccup.
	minConfigLeaseTTL = 2 * time.Second
	// minConfigLeaseRefresh: more often only loads the leases bucket's Raft group.
	minConfigLeaseRefresh = 100 * time.Millisecond
)

// LeaseTimes returns lease_refresh and lease_ttl as durations, their defaults
// (DefaultLeaseRefresh, DefaultLeaseTTL) when empty. Validate has checked them.
func (c *Config) LeaseTimes() (refresh, ttl time.Duration) {
	refresh, ttl = DefaultLeaseRefresh, DefaultLeaseTTL
	if c.LeaseRefresh != "" {
		refresh, _ = time.ParseDuration(c.LeaseRefresh)
	}
	if c.LeaseTTL != "" {
		ttl, _ = time.ParseDuration(c.LeaseTTL)
	}
	return refresh, ttl
}

// validateLease checks lease_ttl and lease_refresh, each alone and together.
func (c *Config) validateLease(bad func(key, format string, args ...any)) {
	refresh, ttl := DefaultLeaseRefresh, DefaultLeaseTTL
	ok := true
	if c.LeaseTTL != "" {
		d, err := time.ParseDuration(c.LeaseTTL)
		switch {
		case err != nil:
			bad("lease_ttl", "%q is not a duration, like 10s", c.LeaseTTL)
			ok = false
		case d%time.Second != 0:
			bad("lease_ttl", "%q is not whole seconds: JetStream keeps a message's TTL in whole seconds", c.LeaseTTL)
			ok = false
		case d < minConfigLeaseTTL || d > MaxLeaseTTL:
			bad("lease_ttl", "%q is not from %v to %v: shorter fences a node for any hiccup of the network; longer leaves a dead node's open transactions unsettled, and its owed reversals unsent, for that long", c.LeaseTTL, minConfigLeaseTTL, MaxLeaseTTL)
			ok = false
		default:
			ttl = d
		}
	}
	if c.LeaseRefresh != "" {
		d, err := time.ParseDuration(c.LeaseRefresh)
		switch {
		case err != nil:
			bad("lease_refresh", "%q is not a duration, like 1s", c.LeaseRefresh)
			ok = false
		case d < minConfigLeaseRefresh:
			bad("lease_refresh", "%q is under %v", c.LeaseRefresh, minConfigLeaseRefresh)
			ok = false
		default:
			refresh = d
		}
	}
	if ok && ttl < 2*refresh {
		bad("lease_refresh", "%v is more than half of lease_ttl (%v): a lease must survive one lost or late refresh", refresh, ttl)
	}
}

// ApplyDefaults fills what an embedded configuration leaves out; dataDir is the
// node's data_dir.
func (c *Config) ApplyDefaults(dataDir string) {
	if c.StateCompactAbove == 0 {
		c.StateCompactAbove = DefaultStateCompactAbove
	}
	if c.Replicas == 0 {
		c.Replicas = 3
		if c.Mode == ModeEmbedded && len(c.Embedded.Routes) == 0 {
			c.Replicas = 1
		}
	}
	if c.Mode != ModeEmbedded {
		return
	}
	e := &c.Embedded
	if e.StoreDir == "" && dataDir != "" {
		e.StoreDir = filepath.Join(dataDir, "jetstream")
	}
	if e.ClientAddr == "" {
		e.ClientAddr = DefaultClientAddr
	}
	if e.ClusterAddr == "" {
		e.ClusterAddr = DefaultClusterAddr
	}
}

// DefaultMerchantLockWithin is cluster.merchant_lock_within's default: a purchase
// whose merchant's known usage, plus its amount, comes within a tenth of a limit
// takes the merchant's lock.
const DefaultMerchantLockWithin = 0.1

// LockWithin returns merchant_lock_within, or its default when not set.
func (c *Config) LockWithin() float64 {
	if c.MerchantLockWithin == nil {
		return DefaultMerchantLockWithin
	}
	return *c.MerchantLockWithin
}

// Validate checks the configuration; each error names its key under "cluster.".
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("cluster.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.Node < 1 || c.Node > 9 {
		bad("node", "%d is not a node number from 1 to 9", c.Node)
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		bad("replicas", "%d is not from 1 to 5", c.Replicas)
	}
	// A standalone embedded server (no routes) cannot hold more than one copy: its
	// start would ask for each stream again and again for two minutes ("replicas >
	// 1 not supported in non-clustered mode") and then fail.
	if r := len(c.Embedded.Routes); c.Mode == ModeEmbedded && c.Replicas > 1 {
		if r == 0 {
			bad("replicas", "%d copies need cluster.embedded.routes: an embedded node without routes is a standalone JetStream server, which keeps 1 copy (leave replicas out, or list every node's route)", c.Replicas)
		} else if c.Replicas > r+1 {
			bad("replicas", "%d copies need as many servers, and cluster.embedded.routes names %d", c.Replicas, r)
		}
	}
	if c.StateCompactAbove < -1 || (c.StateCompactAbove > 0 && c.StateCompactAbove < 100) {
		bad("state_compact_above", "%d is neither -1 (never by itself) nor at least 100 commits", c.StateCompactAbove)
	}
	if c.GroupPause != "" {
		if d, err := time.ParseDuration(c.GroupPause); err != nil || d < 0 || d > maxGroupPause {
			bad("group_pause", "%q is not a duration from 0 to %v, like 10ms", c.GroupPause, maxGroupPause)
		}
	}
	if c.ShedAfter != "" {
		if d, err := time.ParseDuration(c.ShedAfter); err != nil || d != 0 && (d < minShedAfter || d > maxShedAfter) {
			bad("shed_after", "%q is neither 0 (never shed) nor a duration from %v to %v, like 2.5s", c.ShedAfter, minShedAfter, maxShedAfter)
		}
	}
	c.validateLease(bad)
	if w := c.MerchantLockWithin; w != nil && !(*w >= 0 && *w <= 1) {
		bad("merchant_lock_within", "%v is not a fraction of the limit from 0 to 1, like 0.1", *w)
	}
	switch c.Mode {
	case ModeEmbedded:
		c.Embedded.validate(bad)
	case ModeExternal:
		c.External.validate(bad)
	default:
		bad("mode", "%q is not embedded or external", c.Mode)
	}
	return errors.Join(errs...)
}

func (e *Embedded) validate(bad func(key, format string, args ...any)) {
	if e.ServerName == "" {
		bad("embedded.server_name", "required: JetStream identifies its peers by a name that survives restarts")
	} else if strings.ContainsAny(e.ServerName, " \t\n.*>") {
		bad("embedded.server_name", "%q has a space, '.', '*' or '>'", e.ServerName)
	}
	if e.StoreDir == "" {
		bad("embedded.store_dir", "required (defaults to <data_dir>/jetstream)")
	}
	if e.ClientAddr != ClientAddrNone {
		if _, err := parseHostPort(e.ClientAddr); err != nil {
			bad("embedded.client_addr", "%v (or %q: no client port)", err, ClientAddrNone)
		}
	}
	if e.TLS.Enabled() {
		for _, f := range e.TLS.files() {
			if f.path == "" {
				bad("embedded.tls."+f.key, "required with the other TLS files: ca_file, cert_file and key_file go together")
			}
		}
	}
	if len(e.Routes) == 0 {
		return // a standalone JetStream server: no cluster listener, R1 streams only
	}
	if e.ClusterName == "" {
		bad("embedded.cluster_name", "required with routes: JetStream clustering needs a fixed cluster name")
	} else if strings.ContainsAny(e.ClusterName, " \t\n.*>") {
		bad("embedded.cluster_name", "%q has a space, '.', '*' or '>'", e.ClusterName)
	}
	if _, err := parseHostPort(e.ClusterAddr); err != nil {
		bad("embedded.cluster_addr", "%v", err)
	}
	if a := e.ClusterAdvertise; a != "" {
		if p, err := parseHostPort(a); err != nil {
			bad("embedded.cluster_advertise", "%v", err)
		} else if host, _, _ := net.SplitHostPort(a); p == 0 || net.ParseIP(host) != nil && net.ParseIP(host).IsUnspecified() {
			bad("embedded.cluster_advertise", "%q: the peers dial it, so it needs a host they can reach and a port other than 0", a)
		}
	}
	seen := map[string]bool{}
	for i, r := range e.Routes {
		key := fmt.Sprintf("embedded.routes[%d]", i)
		if _, err := parseRoute(r); err != nil {
			bad(key, "%v", err)
		}
		if seen[r] {
			bad(key, "%q is listed twice", r)
		}
		seen[r] = true
	}
}

func (x *External) validate(bad func(key, format string, args ...any)) {
	if len(x.URLs) == 0 {
		bad("external.urls", "at least one server URL is required")
	}
	for i, s := range x.URLs {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" || u.Path != "" && u.Path != "/" || u.RawQuery != "" {
			bad(fmt.Sprintf("external.urls[%d]", i), "%q is not a URL like nats://host:4222", s)
			continue
		}
		switch u.Scheme {
		case "nats", "tls":
		default:
			bad(fmt.Sprintf("external.urls[%d]", i), "scheme %q is not nats or tls", u.Scheme)
		}
		if u.User != nil {
			bad(fmt.Sprintf("external.urls[%d]", i), "carries a user or password: use credentials_file, nkey_seed_file or token_file")
		}
	}
	if (x.TLSCertFile == "") != (x.TLSKeyFile == "") {
		bad("external.tls_cert_file", "tls_cert_file and tls_key_file go together")
	}
	n := 0
	for _, f := range []string{x.CredentialsFile, x.NKeySeedFile, x.TokenFile} {
		if f != "" {
			n++
		}
	}
	if n > 1 {
		bad("external", "give one of credentials_file, nkey_seed_file, token_file")
	}
}

// parseHostPort checks host:port; port 0 means a port picked by the system.
func parseHostPort(addr string) (int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, fmt.Errorf("%q is not host:port", addr)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return 0, fmt.Errorf("%q: port %q is not between 0 and 65535", addr, port)
	}
	if host == "" {
		return 0, fmt.Errorf("%q has no host (use 0.0.0.0 for every interface)", addr)
	}
	return p, nil
}

// parseRoute checks a peer's route URL.
func parseRoute(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("%q is not a route URL like nats-route://host:6222", s)
	}
	if u.Scheme != "nats-route" && u.Scheme != "nats" {
		return nil, fmt.Errorf("%q: scheme %q is not nats-route", s, u.Scheme)
	}
	if u.User != nil {
		// The routes authenticate by mutual TLS (embedded.tls); a password in the
		// URL would be written in every node's configuration, and this node's
		// route listener asks for none.
		return nil, fmt.Errorf("%q carries a user or password: the routes authenticate with embedded.tls", s)
	}
	if u.Port() == "" {
		return nil, fmt.Errorf("%q needs a host and a non-zero port", s)
	}
	if p, err := parseHostPort(u.Host); err != nil {
		return nil, err
	} else if p == 0 {
		return nil, fmt.Errorf("%q needs a host and a non-zero port", s)
	}
	return u, nil
}
