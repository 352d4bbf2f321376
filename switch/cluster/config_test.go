package cluster

import (
	"strings"
	"testing"
	"time"
)

func validEmbedded() Config {
	return Config{Mode: ModeEmbedded, Node: 1, Embedded: Embedded{
		ServerName: "n1", StoreDir: "/var/lib/switchyard/jetstream",
		ClientAddr: "127.0.0.1:4222", ClusterName: "sy", ClusterAddr: "0.0.0.0:6222",
		Routes: []string{"nats-route://n1:6222", "nats-route://n2:6222", "nats-route://n3:6222"},
	}}
}

func validExternal() Config {
	return Config{Mode: ModeExternal, Node: 1, External: External{URLs: []string{"tls://nats1:4222", "nats://nats2:4222"}}}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  func(c *Config)
		base func() Config
		want string // "" means valid
	}{
		{"embedded ok", func(*Config) {}, validEmbedded, ""},
		{"embedded standalone", func(c *Config) { c.Embedded.Routes = nil; c.Embedded.ClusterName = "" }, validEmbedded, ""},
		{"embedded standalone replicas 1", func(c *Config) { c.Embedded.Routes = nil; c.Embedded.ClusterName = ""; c.Replicas = 1 }, validEmbedded, ""},
		{"embedded standalone replicas 3", func(c *Config) { c.Embedded.Routes = nil; c.Embedded.ClusterName = ""; c.Replicas = 3 }, validEmbedded,
			"cluster.replicas: 3 copies need cluster.embedded.routes: an embedded node without routes is a standalone JetStream server"},
		{"replicas over the routes", func(c *Config) { c.Embedded.Routes = c.Embedded.Routes[:1]; c.Replicas = 3 }, validEmbedded,
			"cluster.replicas: 3 copies need as many servers, and cluster.embedded.routes names 1"},
		{"replicas 3 routes 3", func(c *Config) { c.Replicas = 3 }, validEmbedded, ""},
		{"external replicas", func(c *Config) { c.Replicas = 3 }, validExternal, ""},
		{"external ok", func(*Config) {}, validExternal, ""},
		{"external token", func(c *Config) { c.External.TokenFile = "/etc/sy/token" }, validExternal, ""},
		{"mode", func(c *Config) { c.Mode = "raft" }, validEmbedded, `cluster.mode: "raft" is not embedded or external`},
		{"mode empty", func(c *Config) { c.Mode = "" }, validEmbedded, `cluster.mode: "" is not`},
		{"server name", func(c *Config) { c.Embedded.ServerName = "" }, validEmbedded, "cluster.embedded.server_name: required"},
		{"server name dots", func(c *Config) { c.Embedded.ServerName = "n.1" }, validEmbedded, `cluster.embedded.server_name: "n.1" has`},
		{"store dir", func(c *Config) { c.Embedded.StoreDir = "" }, validEmbedded, "cluster.embedded.store_dir: required"},
		{"client addr", func(c *Config) { c.Embedded.ClientAddr = "4222" }, validEmbedded, `cluster.embedded.client_addr: "4222" is not host:port`},
		{"no client port", func(c *Config) { c.Embedded.ClientAddr = ClientAddrNone }, validEmbedded, ""},
		{"client port", func(c *Config) { c.Embedded.ClientAddr = "h:70000" }, validEmbedded, "cluster.embedded.client_addr: \"h:70000\": port"},
		{"cluster addr host", func(c *Config) { c.Embedded.ClusterAddr = ":6222" }, validEmbedded, "cluster.embedded.cluster_addr: \":6222\" has no host"},
		{"cluster advertise", func(c *Config) { c.Embedded.ClusterAdvertise = "203.0.113.7:16222" }, validEmbedded, ""},
		{"cluster advertise any", func(c *Config) { c.Embedded.ClusterAdvertise = "0.0.0.0:6222" }, validEmbedded, `cluster.embedded.cluster_advertise: "0.0.0.0:6222": the peers dial it`},
		{"cluster advertise port 0", func(c *Config) { c.Embedded.ClusterAdvertise = "n1.example:0" }, validEmbedded, `cluster.embedded.cluster_advertise: "n1.example:0": the peers dial it`},
		{"cluster advertise not host:port", func(c *Config) { c.Embedded.ClusterAdvertise = "n1.example" }, validEmbedded, `cluster.embedded.cluster_advertise: "n1.example" is not host:port`},
		{"cluster name", func(c *Config) { c.Embedded.ClusterName = "" }, validEmbedded, "cluster.embedded.cluster_name: required with routes"},
		{"route scheme", func(c *Config) { c.Embedded.Routes[1] = "http://n2:6222" }, validEmbedded, `cluster.embedded.routes[1]: "http://n2:6222": scheme "http"`},
		{"route port", func(c *Config) { c.Embedded.Routes[2] = "nats-route://n3" }, validEmbedded, "cluster.embedded.routes[2]: \"nats-route://n3\" needs a host and a non-zero port"},
		{"route password", func(c *Config) { c.Embedded.Routes[1] = "nats-route://u:p@n2:6222" }, validEmbedded, "cluster.embedded.routes[1]: \"nats-route://u:p@n2:6222\" carries a user or password"},
		{"route port out of range", func(c *Config) { c.Embedded.Routes[2] = "nats-route://n3:99999" }, validEmbedded, "cluster.embedded.routes[2]: \"n3:99999\": port \"99999\" is not between 0 and 65535"},
		{"route twice", func(c *Config) { c.Embedded.Routes[2] = c.Embedded.Routes[0] }, validEmbedded, "cluster.embedded.routes[2]: \"nats-route://n1:6222\" is listed twice"},
		{"embedded tls", func(c *Config) {
			c.Embedded.TLS = EmbeddedTLS{CAFile: "/etc/sy/ca.pem", CertFile: "/etc/sy/n1.pem", KeyFile: "/etc/sy/n1.key"}
		}, validEmbedded, ""},
		{"embedded tls without key", func(c *Config) {
			c.Embedded.TLS = EmbeddedTLS{CAFile: "/etc/sy/ca.pem", CertFile: "/etc/sy/n1.pem"}
		}, validEmbedded, "cluster.embedded.tls.key_file: required with the other TLS files"},
		{"embedded tls without ca", func(c *Config) { c.Embedded.TLS = EmbeddedTLS{KeyFile: "/etc/sy/n1.key"} }, validEmbedded, "cluster.embedded.tls.ca_file: required"},
		{"compact never", func(c *Config) { c.StateCompactAbove = -1 }, validEmbedded, ""},
		{"compact above", func(c *Config) { c.StateCompactAbove = 500 }, validEmbedded, ""},
		{"compact too low", func(c *Config) { c.StateCompactAbove = 10 }, validEmbedded, "cluster.state_compact_above: 10 is neither -1"},
		{"compact negative", func(c *Config) { c.StateCompactAbove = -5 }, validEmbedded, "cluster.state_compact_above: -5"},
		{"group pause", func(c *Config) { c.GroupPause = "25ms" }, validEmbedded, ""},
		{"group pause none", func(c *Config) { c.GroupPause = "0" }, validEmbedded, ""},
		{"group pause unit", func(c *Config) { c.GroupPause = "10" }, validEmbedded, `cluster.group_pause: "10" is not a duration from 0 to 100ms, like 10ms`},
		{"group pause long", func(c *Config) { c.GroupPause = "1s" }, validEmbedded, `cluster.group_pause: "1s" is not a duration`},
		{"group pause negative", func(c *Config) { c.GroupPause = "-1ms" }, validEmbedded, `cluster.group_pause: "-1ms"`},
		{"shed after", func(c *Config) { c.ShedAfter = "1s" }, validEmbedded, ""},
		{"shed never", func(c *Config) { c.ShedAfter = "0" }, validEmbedded, ""},
		{"shed after unit", func(c *Config) { c.ShedAfter = "2" }, validEmbedded, `cluster.shed_after: "2" is neither 0 (never shed) nor a duration from 250ms to 5s, like 2.5s`},
		{"shed after short", func(c *Config) { c.ShedAfter = "100ms" }, validEmbedded, `cluster.shed_after: "100ms" is neither 0`},
		{"shed after long", func(c *Config) { c.ShedAfter = "6s" }, validEmbedded, `cluster.shed_after: "6s" is neither 0`},
		{"shed after negative", func(c *Config) { c.ShedAfter = "-1s" }, validEmbedded, `cluster.shed_after: "-1s" is neither 0`},
		{"lease ttl", func(c *Config) { c.LeaseTTL = "10s" }, validEmbedded, ""},
		{"lease ttl and refresh", func(c *Config) { c.LeaseTTL = "60s"; c.LeaseRefresh = "2s" }, validEmbedded, ""},
		{"lease ttl short, refresh faster", func(c *Config) { c.LeaseTTL = "2s"; c.LeaseRefresh = "500ms" }, validEmbedded, ""},
		{"lease ttl unit", func(c *Config) { c.LeaseTTL = "10" }, validEmbedded, `cluster.lease_ttl: "10" is not a duration, like 10s`},
		{"lease ttl fraction", func(c *Config) { c.LeaseTTL = "7500ms" }, validEmbedded, `cluster.lease_ttl: "7500ms" is not whole seconds: JetStream keeps a message's TTL in whole seconds`},
		{"lease ttl long", func(c *Config) { c.LeaseTTL = "2m" }, validEmbedded, `cluster.lease_ttl: "2m" is not from 2s to 1m0s: shorter fences a node for any hiccup of the network; longer leaves a dead node's open transactions unsettled`},
		{"lease ttl short", func(c *Config) { c.LeaseTTL = "1s" }, validEmbedded, `cluster.lease_ttl: "1s" is not from 2s to 1m0s`},
		{"lease ttl negative", func(c *Config) { c.LeaseTTL = "-5s" }, validEmbedded, `cluster.lease_ttl: "-5s" is not from 2s`},
		{"lease refresh unit", func(c *Config) { c.LeaseRefresh = "1" }, validEmbedded, `cluster.lease_refresh: "1" is not a duration, like 1s`},
		{"lease refresh zero", func(c *Config) { c.LeaseRefresh = "0" }, validEmbedded, `cluster.lease_refresh: "0" is under 100ms`},
		{"lease refresh over half the default ttl", func(c *Config) { c.LeaseRefresh = "3s" }, validEmbedded, `cluster.lease_refresh: 3s is more than half of lease_ttl (5s): a lease must survive one lost or late refresh`},
		{"lease refresh over half the ttl", func(c *Config) { c.LeaseTTL = "4s"; c.LeaseRefresh = "2500ms" }, validEmbedded, `cluster.lease_refresh: 2.5s is more than half of lease_ttl (4s)`},
		{"lease refresh half the ttl", func(c *Config) { c.LeaseTTL = "4s"; c.LeaseRefresh = "2s" }, validEmbedded, ""},
		{"merchant lock within", func(c *Config) { c.MerchantLockWithin = ptr(0.25) }, validEmbedded, ""},
		{"merchant lock within none", func(c *Config) { c.MerchantLockWithin = ptr(0.0) }, validEmbedded, ""},
		{"merchant lock within over", func(c *Config) { c.MerchantLockWithin = ptr(1.5) }, validEmbedded, "cluster.merchant_lock_within: 1.5 is not a fraction of the limit from 0 to 1"},
		{"merchant lock within negative", func(c *Config) { c.MerchantLockWithin = ptr(-0.1) }, validEmbedded, "cluster.merchant_lock_within: -0.1"},
		{"urls", func(c *Config) { c.External.URLs = nil }, validExternal, "cluster.external.urls: at least one"},
		{"url", func(c *Config) { c.External.URLs[0] = "nats1:4222" }, validExternal, `cluster.external.urls[0]: "nats1:4222" is not a URL like nats://host:4222`},
		{"url no host", func(c *Config) { c.External.URLs[1] = "nats://" }, validExternal, `cluster.external.urls[1]: "nats://" is not a URL`},
		{"url password", func(c *Config) { c.External.URLs[0] = "nats://u:p@nats1:4222" }, validExternal, "cluster.external.urls[0]: carries a user or password"},
		{"tls pair", func(c *Config) { c.External.TLSCertFile = "/c.pem" }, validExternal, "cluster.external.tls_cert_file: tls_cert_file and tls_key_file go together"},
		{"two credentials", func(c *Config) { c.External.TokenFile = "/t"; c.External.CredentialsFile = "/c" }, validExternal, "cluster.external: give one of"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.base()
			tc.cfg(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("valid config refused: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("accepted; want %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

// TestLeaseTimes: cluster.lease_refresh and cluster.lease_ttl as durations, their
// defaults when left out, and the lease options they make pass StartLease's own
// check.
func TestLeaseTimes(t *testing.T) {
	for _, tc := range []struct {
		refresh, ttl         string
		wantRefresh, wantTTL time.Duration
	}{
		{"", "", DefaultLeaseRefresh, DefaultLeaseTTL},
		{"", "10s", DefaultLeaseRefresh, 10 * time.Second},
		{"250ms", "", 250 * time.Millisecond, DefaultLeaseTTL},
		{"5s", "1m", 5 * time.Second, time.Minute},
	} {
		c := validEmbedded()
		c.LeaseRefresh, c.LeaseTTL = tc.refresh, tc.ttl
		if err := c.Validate(); err != nil {
			t.Fatalf("lease_refresh %q, lease_ttl %q: %v", tc.refresh, tc.ttl, err)
		}
		refresh, ttl := c.LeaseTimes()
		if refresh != tc.wantRefresh || ttl != tc.wantTTL {
			t.Errorf("lease_refresh %q, lease_ttl %q: LeaseTimes() = %v, %v; want %v, %v", tc.refresh, tc.ttl, refresh, ttl, tc.wantRefresh, tc.wantTTL)
		}
		o := LeaseOptions{Refresh: refresh, TTL: ttl}
		if err := o.defaults(); err != nil {
			t.Errorf("lease_refresh %q, lease_ttl %q: valid configuration, refused lease options: %v", tc.refresh, tc.ttl, err)
		}
	}
}

func TestApplyDefaults(t *testing.T) {
	c := Config{Mode: ModeEmbedded, Node: 1, Embedded: Embedded{ServerName: "n1"}}
	c.ApplyDefaults("/data")
	if c.Embedded.StoreDir != "/data/jetstream" || c.Embedded.ClientAddr != DefaultClientAddr || c.Embedded.ClusterAddr != DefaultClusterAddr || c.StateCompactAbove != DefaultStateCompactAbove {
		t.Fatalf("defaults: %+v", c.Embedded)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("a standalone node with defaults: %v", err)
	}
}

// TestPause: cluster.group_pause as a duration, its default when left out.
func TestPause(t *testing.T) {
	for in, want := range map[string]time.Duration{"": DefaultGroupPause, "0": 0, "25ms": 25 * time.Millisecond} {
		c := validEmbedded()
		c.GroupPause = in
		if err := c.Validate(); err != nil {
			t.Fatalf("group_pause %q: %v", in, err)
		}
		if got := c.Pause(); got != want {
			t.Errorf("group_pause %q: Pause() = %v; want %v", in, got, want)
		}
	}
}

// TestShed: cluster.shed_after as a duration, its default when left out, 0 never.
func TestShed(t *testing.T) {
	for in, want := range map[string]time.Duration{"": DefaultShedAfter, "0": 0, "1500ms": 1500 * time.Millisecond} {
		c := validEmbedded()
		c.ShedAfter = in
		if err := c.Validate(); err != nil {
			t.Fatalf("shed_after %q: %v", in, err)
		}
		if got := c.Shed(); got != want {
			t.Errorf("shed_after %q: Shed() = %v; want %v", in, got, want)
		}
	}
}

// ptr returns a pointer to v.
func ptr[T any](v T) *T { return &v }

// TestLockWithin: cluster.merchant_lock_within, its default when left out, 0 kept.
func TestLockWithin(t *testing.T) {
	c := validEmbedded()
	if got := c.LockWithin(); got != DefaultMerchantLockWithin {
		t.Fatalf("merchant_lock_within left out: %v, want %v", got, DefaultMerchantLockWithin)
	}
	c.MerchantLockWithin = ptr(0.0)
	if got := c.LockWithin(); got != 0 {
		t.Fatalf("merchant_lock_within 0: %v, want 0", got)
	}
}
