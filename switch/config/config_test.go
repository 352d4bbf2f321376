package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/hsm/tr31"
	"github.com/switchyard/switchyard/keys"
)

func TestDemoValidates(t *testing.T) {
	if err := Demo().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestErrorsNameKeyAndProblem(t *testing.T) {
	cases := map[string]string{
		"listeners: [{addr: nowhere}]\nsecurity: {lmk_file: x, card_hash_key_hex: 00112233445566778899aabbccddeeff}":                      `listeners[0].addr: "nowhere" is not host:port`,
		"listeners: [{addr: 127.0.0.1:1, dialect: ebcdic}]\nsecurity: {lmk_file: x, card_hash_key_hex: 00112233445566778899aabbccddeeff}": `listeners[0].dialect: unknown dialect "ebcdic"`,
		"demo: true\nlisteners: [{addr: 127.0.0.1:1}]\nroutes: [{prefix: 4111, issuer: nobody}]":                                          `routes[0].issuer: "nobody" is not a configured issuer`,
		"demo: true\nlisteners: [{addr: 127.0.0.1:1}]\nissuers: [{id: x, addrs: [127.0.0.1:2], timeout: 1h}]":                             `issuers[0].timeout: 1h0m0s is not between 10ms and 2m`,
		"demo: true\nlisteners: [{addr: 127.0.0.1:1}]\nissuers: [{id: x, addrs: [127.0.0.1:2], acquirer_id: ACQ1}]":                       `issuers[0].acquirer_id: "ACQ1" is not 1 to 11 digits`,
		"listeners: [{addr: 127.0.0.1:1}]\nsecurity: {card_hash_key_hex: " + DemoCardHashKey + "}":                                        `security.card_hash_key_hex: the public demo key is refused outside demo mode`,
		"listeners: [{addr: 127.0.0.1:1}]\nsecurity: {card_hash_key_hex: 00112233445566778899aabbccddeeff}":                               `security.lmk_file: required outside demo mode`,
		"demo: true\nlisteners: [{addr: 127.0.0.1:1}]\nlog: {level: chatty}":                                                              `log.level: "chatty" is not one of debug, info, warn, error`,
		"demo: true\nlisteners: [{addr: 127.0.0.1:1, idle_timeout: soon}]":                                                                `"soon" is not a duration`,
		"demo: true\nlistners: []": `listners: unknown key (line 2): did you mean listeners?`,
		"demo: true\nlisteners: [{addr: 127.0.0.1:1}]\nbreaker: {threshold: 5}":                             `breaker.threshold: no longer used`,
		"demo: true\nlisteners: [{addr: 127.0.0.1:1}]\nbreaker: {failure_rate: 1.5}":                        `breaker.failure_rate: 1.5 is not in (0, 1]`,
		"demo: true\nlisteners: [{addr: 127.0.0.1:1}]\nbreaker: {window: 1s, buckets: 1000}":                `breaker.buckets: 1000 is not between 1 and 600`,
		"demo: true\nlisteners: [{addr: 127.0.0.1:1}]\nbreaker: {open_for: 1ms}":                            `breaker.open_for: 1ms is not between 100ms and 10m`,
		"demo: true\nlisteners: [{addr: 127.0.0.1:1}]\nreversals: {amount_mismatch: partial}":               `reversals.amount_mismatch: "partial" is not decline or reverse_full`,
		"demo: true\nlisteners: [{addr: 127.0.0.1:1}]\nadmin: {trusted_proxies: [10.0.0.0/8, 10.0.0.0/33]}": `admin.trusted_proxies[1]: "10.0.0.0/33": not a CIDR`,
		"demo: true\nlisteners: [{addr: 127.0.0.1:1}]\nadmin: {trusted_proxies: [proxy.example]}":           `admin.trusted_proxies[0]: "proxy.example": not a CIDR`,
		"demo: true\nlisteners: [{addr: 127.0.0.1:1}]\nadmin: {trusted_proxies: [0.0.0.0/0]}":               `admin.trusted_proxies[0]: "0.0.0.0/0": a /0 trusts every client`,
		"demo: true\nlisteners: [{addr: 127.0.0.1:1}]\nadmin: {allowed_hosts: [ok.example, 10.0.0.5]}":      `admin.allowed_hosts[1]: "10.0.0.5" is an IP address: IP literals are always allowed`,
		"demo: true\nlisteners: [{addr: 127.0.0.1:1}]\nadmin: {allowed_hosts: ['*.bank.example']}":          `admin.allowed_hosts[0]: "*.bank.example": label "*": '*' is not a letter, digit or hyphen (no wildcards)`,
		"demo: true\nlisteners: [{addr: 127.0.0.1:1}]\nadmin: {allowed_hosts: ['console.example:0']}":       `admin.allowed_hosts[0]: "console.example:0": port "0" is not 1 to 65535`,
		"demo: true\nlisteners: [{addr: 127.0.0.1:1}]\nadmin: {allowed_hosts: ['https://c.example']}":       `admin.allowed_hosts[0]: "https://c.example" is not a host name or host:port`,
	}
	for in, want := range cases {
		in := in
		if strings.Contains(in, "demo: true") && !strings.Contains(in, "card_hash") {
			in += "\nsecurity: {card_hash_key_hex: " + DemoCardHashKey + "}"
		}
		_, err := Parse([]byte(in), "test.yaml")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q:\n got %v\nwant %s", in, err, want)
		}
	}
}

// admin.trusted_proxies: none by default; CIDRs and single addresses parsed.
func TestTrustedProxies(t *testing.T) {
	base := "demo: true\nlisteners: [{addr: 127.0.0.1:1}]\nsecurity: {card_hash_key_hex: " + DemoCardHashKey + "}\n"
	c, err := Parse([]byte(base), "a.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if p, err := c.Admin.Proxies(); err != nil || len(p.Nets) != 0 || p.Header != "x-forwarded-for" {
		t.Fatalf("default: %v %v, want none, from X-Forwarded-For", p, err)
	}
	c, err = Parse([]byte(base+"admin: {trusted_proxies: [10.0.0.0/8, 192.0.2.10, 'fd00::/8'], trusted_proxy_header: Forwarded}"), "a.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Admin.Proxies()
	if err != nil || fmt.Sprint(p.Nets) != "[10.0.0.0/8 192.0.2.10/32 fd00::/8]" || p.Header != "forwarded" {
		t.Fatalf("parsed %v %v", p, err)
	}
	if _, err := Parse([]byte(base+"admin: {trusted_proxy_header: x-real-ip}"), "a.yaml"); err == nil ||
		!strings.Contains(err.Error(), `admin.trusted_proxy_header: "x-real-ip" is not x-forwarded-for or forwarded`) {
		t.Errorf("unknown header: %v", err)
	}
}

func TestTokensFile(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "tokens.yaml")
	os.WriteFile(f, []byte("- {name: a, role: operator, token: t1}\n"), 0o644)
	base := "demo: true\nlisteners: [{addr: 127.0.0.1:1}]\nsecurity: {card_hash_key_hex: " + DemoCardHashKey + "}\nadmin: {tokens_file: " + f + "}"
	if _, err := Parse([]byte(base), "x"); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Fatalf("world-readable tokens file: %v", err)
	}
	os.Chmod(f, 0o600)
	c, err := Parse([]byte(base), "x")
	if err != nil || len(c.Admin.Tokens) != 1 || c.Admin.Tokens[0].Name != "a" {
		t.Fatalf("%+v %v", c, err)
	}
	os.WriteFile(f, []byte("- {name: a, role: boss, token: t1}\n"), 0o600)
	if _, err := Parse([]byte(base), "x"); err == nil || !strings.Contains(err.Error(), `unknown role "boss"`) {
		t.Fatalf("bad role: %v", err)
	}
}

// TestExampleFile keeps docs/switchyard.example.yaml in step with the code: every key in
// it must be known, and with its secrets filled in it must validate.
func TestExampleFile(t *testing.T) {
	b, err := os.ReadFile("../../docs/switchyard.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), `card_hash_key_hex: ""`, `card_hash_key_hex: "00112233445566778899aabbccddeeff"`, 1)
	s = strings.Replace(s, `lmk_env: ""`, `lmk_env: "SWITCHYARD_LMK"`, 1)
	s = strings.Replace(s, `token: ""`, `token: "3f9c2a7be41d8056c7e9a1b4d2f60835"`, 1)
	s = strings.Replace(s, `token: ""`, `token: "b81e4d7a2c9f05366e1a8d3c7b2f4e90"`, 1)
	if _, err := Parse([]byte(s), "switchyard.example.yaml"); err != nil {
		t.Fatal(err)
	}
}

// TestJournalWindowDefault: a file that does not set journal.window gets the default;
// an explicit 0s (sync as soon as the queue is empty) is kept.
func TestJournalWindowDefault(t *testing.T) {
	base := "demo: true\nlisteners: [{addr: 127.0.0.1:1}]\nsecurity: {card_hash_key_hex: " + DemoCardHashKey + "}\n"
	c, err := Parse([]byte(base), "a.yaml")
	if err != nil || c.Journal.Window.D() != DefaultJournalWindow || c.Journal.Gap.D() <= 0 {
		t.Fatalf("default window: %+v %v", c.Journal, err)
	}
	if Demo().Journal.Window.D() != DefaultJournalWindow {
		t.Fatalf("demo window %s", Demo().Journal.Window.D())
	}
	c, err = Parse([]byte(base+"journal: {window: 0s}\n"), "b.yaml")
	if err != nil || c.Journal.Window != 0 {
		t.Fatalf("explicit 0s window: %+v %v", c.Journal, err)
	}
	if _, err := Parse([]byte(base+"journal: {window: 1s}\n"), "c.yaml"); err == nil || !strings.Contains(err.Error(), "journal.window") {
		t.Fatalf("window of 1s: %v", err)
	}
}

// TestJournalWindowCPU: journal.window_cpu defaults to DefaultJournalWindowCPU in a
// file and in the demo, an explicit 0 (the rate alone) is kept, and a value that is
// not a share is refused naming the key.
func TestJournalWindowCPU(t *testing.T) {
	base := "demo: true\nlisteners: [{addr: 127.0.0.1:1}]\nsecurity: {card_hash_key_hex: " + DemoCardHashKey + "}\n"
	c, err := Parse([]byte(base), "a.yaml")
	if err != nil || c.Journal.WindowCPU != DefaultJournalWindowCPU || Demo().Journal.WindowCPU != DefaultJournalWindowCPU {
		t.Fatalf("default window_cpu: %+v, demo %v, %v", c.Journal, Demo().Journal.WindowCPU, err)
	}
	if c, err = Parse([]byte(base+"journal: {window_cpu: 0}\n"), "b.yaml"); err != nil || c.Journal.WindowCPU != 0 {
		t.Fatalf("explicit window_cpu 0: %+v %v", c.Journal, err)
	}
	for _, v := range []string{"1.5", "-0.1", ".nan"} {
		if _, err := Parse([]byte(base+"journal: {window_cpu: "+v+"}\n"), "c.yaml"); err == nil || !strings.Contains(err.Error(), "journal.window_cpu") {
			t.Errorf("window_cpu %s: %v, want an error naming journal.window_cpu", v, err)
		}
	}
}

// TestAdminTokenStrength: outside demo mode a short or uniform admin token is refused,
// in the main file or the tokens file, with where it is and how to make a good one;
// demo mode accepts the demo's short tokens.
func TestAdminTokenStrength(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "tokens.yaml")
	os.WriteFile(f, []byte("- {name: ops, role: operator, token: x}\n"), 0o600)
	good := "3f9c2a7be41d8056c7e9a1b4d2f60835"
	base := "listeners: [{addr: 127.0.0.1:1}]\nsecurity: {card_hash_key_hex: 00112233445566778899aabbccddeeff, lmk_env: SWITCHYARD_LMK}\n"
	for _, c := range []struct {
		name, yaml string
		want       []string // substrings of the error; none: valid
	}{
		{"one character", "admin: {tokens: [{name: alice, role: admin, token: x}]}\n", []string{"admin.tokens[0] (alice)", "at least 32", "openssl rand -hex 32", "/dev/urandom"}},
		{"long but uniform", "admin: {tokens: [{name: alice, role: admin, token: " + strings.Repeat("a", 40) + "}]}\n", []string{"admin.tokens[0] (alice)", "1 distinct"}},
		{"in the tokens file", "admin: {tokens: [{name: alice, role: admin, token: " + good + "}], tokens_file: " + f + "}\n", []string{"admin.tokens_file " + f + ": token 0 (ops)"}},
		{"random", "admin: {tokens: [{name: alice, role: admin, token: " + good + "}]}\n", nil},
		{"demo mode", "demo: true\nadmin: {tokens: [{name: alice, role: admin, token: y}], tokens_file: " + f + "}\n", nil},
	} {
		_, err := Parse([]byte(base+c.yaml), "switch.yaml")
		if len(c.want) == 0 {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", c.name, err, w)
			}
		}
	}
	// An empty token is one problem, said once (it was said twice, in two forms).
	_, err := Parse([]byte(base+"admin: {tokens: [{name: alice, role: admin, token: \"\"}]}\n"), "switch.yaml")
	if err == nil || !strings.Contains(err.Error(), "empty token") || strings.Contains(err.Error(), "distinct ones") {
		t.Errorf("empty token: %v, want one error saying empty token", err)
	}
}

// TestAlertsKeys: the webhook allow-list needs a signing secret, the wave limit is
// bounded, and the secret file is refused when others can read it; the merchant
// webhooks' secret overlap defaults to 24 h and is bounded.
func TestAlertsKeys(t *testing.T) {
	base := "demo: true\nlisteners: [{addr: 127.0.0.1:1}]\nsecurity: {card_hash_key_hex: " + DemoCardHashKey + "}\n"
	c, err := Parse([]byte(base), "a.yaml")
	if err != nil || c.Alerts.SuspendMaxShare != 0.1 || c.Alerts.SuspendMin != 3 || c.Alerts.SuspendWindow.D() != time.Hour || len(c.Alerts.WebhookAllow) != 0 ||
		c.Alerts.MassSilenceShare != 0.05 || c.Alerts.MassSilenceMin != 20 || c.Alerts.ReAlertAfter.D() != time.Hour || c.Alerts.WebhookMaxPerRun != 200 {
		t.Fatalf("defaults: %+v %v", c.Alerts, err)
	}
	if k, err := c.WebhookSecret(); k != nil || err != nil {
		t.Errorf("no secret configured: %q %v", k, err)
	}
	if d := c.Notices.SecretOverlap.D(); d != 24*time.Hour {
		t.Errorf("notices.secret_overlap defaults to %v, want 24h", d)
	}
	for in, want := range map[string]string{
		"notices: {allow_private: [10.20.0.0/33]}":                   `notices.allow_private: [0] "10.20.0.0/33": want a network`,
		"notices: {secret_overlap: 10s}":                             "notices.secret_overlap: 10s is not between 1m and 168h",
		"notices: {secret_overlap: 169h}":                            "notices.secret_overlap: 169h0m0s is not between 1m and 168h",
		"alerts: {webhook_allow: [https://ops.example/hooks]}":       "alerts.webhook_secret_file: required with alerts.webhook_allow",
		"alerts: {mass_silence_share: 1.5}":                          "alerts.mass_silence_share: 1.5 is not above 0 and at most 1",
		"alerts: {webhook_max_per_run: -1}":                          "alerts.webhook_max_per_run: -1 is not between 1 and 100000",
		"alerts: {mass_silence_min: -1}":                             "alerts.mass_silence_min: -1 is not positive",
		"alerts: {realert_after: 169h}":                              "alerts.realert_after: 169h0m0s is not between 0s and 168h",
		"alerts: {webhook_allow: [ftp://x/], webhook_secret_env: S}": `alerts.webhook_allow[0]: "ftp://x/" is not an http or https URL`,
		"alerts: {suspend_max_share: 1.5}":                           "alerts.suspend_max_share: 1.5 is not above 0",
		"alerts: {suspend_min: -1}":                                  "alerts.suspend_min: -1 is not positive",
		"alerts: {suspend_window: 10s}":                              "alerts.suspend_window: 10s is not between 1m and 168h",
		"alerts: {webhook_allow: [https://a/], webhook_secret_env: S, webhook_secret_file: /etc/x}":             "give webhook_secret_file or webhook_secret_env, not both",
		"alerts: {webhook_secret_env: S, webhook_secret_previous_env: P, webhook_secret_previous_file: /etc/x}": "give webhook_secret_previous_file or webhook_secret_previous_env, not both",
		"alerts: {webhook_secret_previous_env: P}":                                                              "alerts.webhook_secret_previous_file: needs alerts.webhook_secret_file or alerts.webhook_secret_env",
	} {
		if _, err := Parse([]byte(base+in), "b.yaml"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s:\n got %v\nwant %s", in, err, want)
		}
	}
	f := filepath.Join(t.TempDir(), "hook.key")
	os.WriteFile(f, []byte("0123456789abcdef-webhook\n"), 0o644)
	c, err = Parse([]byte(base+"alerts: {webhook_allow: [https://ops.example/hooks], webhook_secret_file: "+f+"}"), "c.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WebhookSecret(); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Errorf("world-readable secret: %v", err)
	}
	os.Chmod(f, 0o600)
	if k, err := c.WebhookSecret(); err != nil || string(k) != "0123456789abcdef-webhook" {
		t.Errorf("secret = %q, %v", k, err)
	}
	if k, err := c.WebhookSecretPrevious(); k != nil || err != nil {
		t.Errorf("no previous secret configured: %q %v", k, err)
	}
	// A rotation: the previous secret, from a file or a variable, with the same checks.
	prev := filepath.Join(t.TempDir(), "hook-prev.key")
	os.WriteFile(prev, []byte("short\n"), 0o600)
	c, err = Parse([]byte(base+"alerts: {webhook_allow: [https://ops.example/hooks], webhook_secret_file: "+f+", webhook_secret_previous_file: "+prev+"}"), "d.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WebhookSecretPrevious(); err == nil || !strings.Contains(err.Error(), "alerts.webhook_secret_previous: the secret is shorter than 16 bytes") {
		t.Errorf("short previous secret: %v", err)
	}
	os.WriteFile(prev, []byte("fedcba9876543210-webhook\n"), 0o600)
	if k, err := c.WebhookSecretPrevious(); err != nil || string(k) != "fedcba9876543210-webhook" {
		t.Errorf("previous secret = %q, %v", k, err)
	}
	c.Alerts.WebhookSecretPreviousFile, c.Alerts.WebhookSecretPreviousEnv = "", "SWITCHYARD_TEST_PREVIOUS_SECRET"
	if _, err := c.WebhookSecretPrevious(); err == nil || !strings.Contains(err.Error(), "alerts.webhook_secret_previous_env: the variable SWITCHYARD_TEST_PREVIOUS_SECRET is empty") {
		t.Errorf("unset previous variable: %v", err)
	}
}

// TestClusterExamples keeps examples/cluster/node*.yaml valid: three nodes, numbered
// 1 to 3, sharing their routes, each route a node's cluster_addr, every server
// name, data directory and port a node's own; and docs/cluster.md's table of
// them ("Three nodes on one machine, step by step") true.
func TestClusterExamples(t *testing.T) {
	doc, err := os.ReadFile("../../docs/cluster.md")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{} // a value each node must have to itself -> the file that has it
	var routes []string
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("../../examples/cluster/node%d.yaml", i)
		c, err := Load(name)
		if err != nil {
			t.Fatal(err)
		}
		if c.Cluster == nil || c.Cluster.Node != i || len(c.Cluster.Embedded.Routes) != 3 || c.Cluster.Replicas != 3 {
			t.Fatalf("%s: cluster section %+v", name, c.Cluster)
		}
		e := c.Cluster.Embedded
		if len(c.Listeners) != 1 {
			t.Fatalf("%s: %d listeners, want the one ascii listener", name, len(c.Listeners))
		}
		for _, v := range []string{"server_name " + e.ServerName, "data_dir " + c.DataDir, "addr " + c.Admin.Addr, "addr " + c.Listeners[0].Addr,
			"addr " + e.ClientAddr, "addr " + e.ClusterAddr} {
			if other, ok := seen[v]; ok {
				t.Errorf("%s and %s both have %s", other, name, v)
			}
			seen[v] = name
		}
		if routes == nil {
			routes = e.Routes
		} else if strings.Join(e.Routes, ",") != strings.Join(routes, ",") {
			t.Errorf("%s: routes %v, node 1's %v", name, e.Routes, routes)
		}
		if want := "nats-route://" + e.ClusterAddr; !strings.Contains(strings.Join(routes, ","), want) {
			t.Errorf("%s: the routes %v do not name its cluster_addr (%s)", name, routes, want)
		}
		row := fmt.Sprintf("| %d | %s | %s | %s | %s | %s |", i, c.Admin.Addr, c.Listeners[0].Addr, e.ClientAddr, e.ClusterAddr, c.DataDir)
		if !strings.Contains(string(doc), row) {
			t.Errorf("docs/cluster.md has no row %q for %s", row, name)
		}
	}
}

// TestClusterTLSKeys: cluster.embedded.tls's keys parse into the cluster's
// configuration, and a misspelt one is refused.
func TestClusterTLSKeys(t *testing.T) {
	b, err := os.ReadFile("../../examples/cluster/node1.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tlsYAML := "\n    tls:\n      ca_file: /etc/switchyard/cluster-ca.pem\n      cert_file: /etc/switchyard/n1.pem\n      key_file: /etc/switchyard/n1.key\n"
	c, err := Parse(append(b, tlsYAML...), "node1-tls.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Cluster.Embedded.TLS; got.CAFile != "/etc/switchyard/cluster-ca.pem" || got.CertFile != "/etc/switchyard/n1.pem" || got.KeyFile != "/etc/switchyard/n1.key" {
		t.Fatalf("cluster.embedded.tls = %+v", got)
	}
	_, err = Parse(append(b, strings.Replace(tlsYAML, "ca_file", "cafile", 1)...), "node1-typo.yaml")
	if err == nil || !strings.Contains(err.Error(), "cafile") {
		t.Fatalf("a misspelt key: %v; want an error naming it", err)
	}
}

// The card hash key is given once: as a TR-31 block under the LMK (checked for its
// header here, opened at start), or in the clear; a block needs the software HSM's
// LMK, and a block that is not a card hash key's is refused with what it is.
func TestCardHashKeyBlockConfig(t *testing.T) {
	lmk := keys.DemoLMK()
	block, err := keys.WrapCardHashKey(lmk, []byte("0123456789abcdef0123456789abcdef"), nil)
	if err != nil {
		t.Fatal(err)
	}
	tpk, err := tr31.Wrap(lmk, tr31.Header{Version: tr31.VersionD, Usage: tr31.UsagePIN, Algorithm: tr31.AlgTDES, ModeOfUse: tr31.ModeEncDec,
		KeyVersion: "00", Exportability: tr31.ExportNone}, make([]byte, 16), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cardHashKeyLabel != keys.CardHashKeyLabel {
		t.Fatalf("config's card hash key label %q, the key store's %q", cardHashKeyLabel, keys.CardHashKeyLabel)
	}
	base := "demo: true\nlisteners: [{addr: 127.0.0.1:1}]\n"
	for _, c := range []struct {
		name, yaml, want string // want: a substring of the error; "": valid
	}{
		{"block", "security: {card_hash_key_block: " + block + "}", ""},
		{"block and hex", "security: {card_hash_key_block: " + block + ", card_hash_key_hex: " + DemoCardHashKey + "}", "security: give one of card_hash_key_block, card_hash_key_hex and card_hash_key_file"},
		{"none", "security: {key_grace: 1m}", "security.card_hash_key_block: required"},
		{"not a key block", "security: {card_hash_key_block: D0XYZ}", "security.card_hash_key_block: not a TR-31 key block"},
		{"a PIN key's block", "security: {card_hash_key_block: " + tpk + "}", "security.card_hash_key_block: a block of version D usage P0"},
		{"with a payShield", "security: {card_hash_key_block: " + block + "}\nhsm: {backend: payshield, addrs: [\"127.0.0.1:1500\"]}", "security.card_hash_key_block: needs the software HSM's LMK"},
	} {
		cfg, err := Parse([]byte(base+c.yaml), "switch.yaml")
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want == "" && cfg.CardHashKeySource() != "security.card_hash_key_block":
			t.Errorf("%s: source %s", c.name, cfg.CardHashKeySource())
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// listeners[].proxy_protocol: absent by default; trusted parsed (CIDRs and single
// addresses), required; an empty trusted list, a bad entry, a /0 and a typo'd key
// are refused, naming the key.
func TestListenerProxyProtocol(t *testing.T) {
	base := "demo: true\nsecurity: {card_hash_key_hex: " + DemoCardHashKey + "}\n"
	c, err := Parse([]byte(base+"listeners: [{addr: 127.0.0.1:1}]"), "a.yaml")
	if err != nil || c.Listeners[0].ProxyProtocol != nil {
		t.Fatalf("default: %+v, %v; want none", c.Listeners[0].ProxyProtocol, err)
	}
	c, err = Parse([]byte(base+"listeners: [{addr: 127.0.0.1:1, proxy_protocol: {trusted: [10.0.8.0/24, 192.0.2.10, 'fd00::/8'], required: true}}]"), "a.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pp := c.Listeners[0].ProxyProtocol
	nets, err := pp.Networks()
	if err != nil || fmt.Sprint(nets) != "[10.0.8.0/24 192.0.2.10/32 fd00::/8]" || !pp.Required {
		t.Fatalf("parsed %v required %v, %v", nets, pp.Required, err)
	}
	for in, want := range map[string]string{
		"{proxy_protocol: {required: true}}":                     `listeners[0].proxy_protocol.trusted: at least one proxy`,
		"{proxy_protocol: {trusted: [10.0.0.0/33]}}":             `listeners[0].proxy_protocol.trusted[0]: "10.0.0.0/33": not a CIDR`,
		"{proxy_protocol: {trusted: [lb.example]}}":              `listeners[0].proxy_protocol.trusted[0]: "lb.example": not a CIDR`,
		"{proxy_protocol: {trusted: [10.0.8.1/24]}}":             `listeners[0].proxy_protocol.trusted[0]: "10.0.8.1/24": host bits set`,
		"{proxy_protocol: {trusted: ['::/0']}}":                  `listeners[0].proxy_protocol.trusted[0]: "::/0": a /0 lets any address name itself`,
		"{proxy_protocol: {trusted: [10.0.0.1], requird: true}}": `listeners[0].proxy_protocol.requird: unknown key`,
	} {
		l := strings.Replace(in, "{", "{addr: 127.0.0.1:1, ", 1)
		_, err := Parse([]byte(base+"listeners: ["+l+"]"), "a.yaml")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s:\n got %v\nwant %s", in, err, want)
		}
	}
}

// TestRegistryChangeTTL: registry.change_ttl defaults to 7 days and is refused
// outside 1h to 90 days.
func TestRegistryChangeTTL(t *testing.T) {
	base := "demo: true\nlisteners: [{addr: 127.0.0.1:1}]\nsecurity: {card_hash_key_hex: " + DemoCardHashKey + "}\n"
	c, err := Parse([]byte(base), "a.yaml")
	if err != nil || c.Registry.ChangeTTL.D() != 7*24*time.Hour {
		t.Fatalf("default change_ttl: %v %v, want 168h", c.Registry.ChangeTTL.D(), err)
	}
	if c, err := Parse([]byte(base+"registry: {change_ttl: 72h}\n"), "a.yaml"); err != nil || c.Registry.ChangeTTL.D() != 72*time.Hour {
		t.Errorf("change_ttl 72h: %v %v", c, err)
	}
	for in, want := range map[string]string{
		"registry: {change_ttl: 30m}":   "registry.change_ttl: 30m0s is not between 1h and 2160h",
		"registry: {change_ttl: 2161h}": "registry.change_ttl: 2161h0m0s is not between 1h and 2160h",
		"registry: {change_ttl: -1h}":   "registry.change_ttl: -1h0m0s is not between",
	} {
		if _, err := Parse([]byte(base+in), "b.yaml"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s:\n got %v\nwant %s", in, err, want)
		}
	}
}

// admin.allowed_hosts: names and name:port parse, and Hosts allows what they list
// (and IP addresses), not other names; an empty list allows all.
func TestAdminAllowedHosts(t *testing.T) {
	c, err := Parse([]byte("demo: true\nlisteners: [{addr: 127.0.0.1:1}]\nsecurity: {card_hash_key_hex: "+DemoCardHashKey+"}\nadmin: {allowed_hosts: [Console.Example, 'localhost:8080']}\n"), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	h, err := c.Admin.Hosts()
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]bool{"console.example:8080": true, "localhost:8080": true, "localhost:9": false, "127.0.0.1:8080": true, "evil.example:8080": false} {
		if h.Allows(host) != want {
			t.Errorf("Allows(%q) = %v", host, !want)
		}
	}
	if h, err := Demo().Admin.Hosts(); err != nil || !h.Empty() {
		t.Errorf("demo: allowed_hosts %v %v, want empty", h, err)
	}
}
