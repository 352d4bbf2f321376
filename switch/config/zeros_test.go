package config

import (
	"strings"
	"testing"
)

// TestExplicitZeroRefused: a 0 written in the file where ApplyDefaults reads 0 as
// "not set" is refused, naming the key and the default, where it silently became the
// default (key_grace: 0s gave ten minutes of grace); a 0 that means something
// (journal.window, alerts.realert_after) stands, and a key left out still gets its
// default.
func TestExplicitZeroRefused(t *testing.T) {
	const base = "demo: true\nsecurity: {card_hash_key_hex: " + DemoCardHashKey + "}\n"
	const l = "listeners: [{addr: 127.0.0.1:1}]\n"
	cases := []struct{ name, in, want string }{
		{"key_grace", "demo: true\nsecurity: {card_hash_key_hex: " + DemoCardHashKey + ", key_grace: 0s}\n" + l, "security.key_grace: 0s: want a value above zero (leave the key out for the default, 10m)"},
		{"change_ttl", base + l + "registry: {change_ttl: 0s}", "registry.change_ttl: 0s: want a value above zero (leave the key out for the default, 168h)"},
		{"notify_max_age", base + l + "qr: {notify_max_age: 0s}", "qr.notify_max_age: 0s"},
		{"drain_timeout", base + l + "shutdown: {drain_timeout: 0s}", "shutdown.drain_timeout: 0s: want a value above zero (leave the key out for the default, 30s)"},
		{"refunds window", base + l + "refunds: {window: 0s}", "refunds.window: 0s: want a value above zero (leave the key out for the default, 720h)"},
		{"idle_timeout", base + "listeners: [{addr: 127.0.0.1:1, idle_timeout: 0s}]", "listeners[0].idle_timeout: 0s: want a value above zero (leave the key out for the default, 5m)"},
		{"issuer timeout", base + l + "issuers: [{id: x, addrs: [127.0.0.1:2], timeout: 0s}]", "issuers[0].timeout: 0s: want a value above zero (leave the key out for the default, 10s)"},
		{"demo_load_terminals", base + l + "demo_load_terminals: 0", "demo_load_terminals: 0: want a value above zero (leave the key out for the default, 2000)"},
		{"failure_rate", base + l + "breaker: {failure_rate: 0}", "breaker.failure_rate: 0: want a value above zero (leave the key out for the default, 0.5)"},
	}
	for _, c := range cases {
		_, err := Parse([]byte(c.in), "test.yaml")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s:\n got %v\nwant %s", c.name, err, c.want)
		}
	}

	c, err := Parse([]byte(base+l+"journal: {window: 0s}\nalerts: {realert_after: 0s}"), "test.yaml")
	if err != nil {
		t.Fatalf("meaningful zeros: %v", err)
	}
	if c.Journal.Window != 0 || c.Alerts.ReAlertAfter != 0 {
		t.Errorf("journal.window %v, alerts.realert_after %v: want the explicit 0s", c.Journal.Window.D(), c.Alerts.ReAlertAfter.D())
	}
	if c.Security.KeyGrace.D().Minutes() != 10 {
		t.Errorf("security.key_grace left out: %v, want the default 10m", c.Security.KeyGrace.D())
	}
}

// TestExplicitEmptyStringRefused: an explicit "" for a string key whose "" is read
// as "not set" (by ApplyDefaults or where the key is used) is refused, naming the key
// and the default, as an explicit 0 is: it silently became the default (log.level:
// "" logged at info, admin.addr: "" listened on 127.0.0.1:8080). A "" that means
// something (no client CA, a refund policy for every kind) stands, and a key left
// out, or written with no value, still gets its default.
func TestExplicitEmptyStringRefused(t *testing.T) {
	const base = "demo: true\nsecurity: {card_hash_key_hex: " + DemoCardHashKey + "}\n"
	const l = "listeners: [{addr: 127.0.0.1:1}]\n"
	cases := []struct{ name, in, want string }{
		{"log.level", base + l + `log: {level: ""}`, `log.level: "": want a value (leave the key out for the default, info)`},
		{"admin.addr", base + l + `admin: {addr: ""}`, `admin.addr: "": want a value (leave the key out for the default, 127.0.0.1:8080)`},
		{"data_dir", base + l + `data_dir: ''`, `data_dir: "": want a value (leave the key out for the default, ./data)`},
		{"timezone", base + l + `timezone: ""`, `timezone: "": want a value (leave the key out for the default, Asia/Shanghai)`},
		{"listener dialect", base + `listeners: [{addr: 127.0.0.1:1, dialect: ""}]`, `listeners[0].dialect: "": want a value (leave the key out for the default, ascii)`},
		{"listener name", base + `listeners: [{addr: 127.0.0.1:1, name: ""}]`, `listeners[0].name: "": want a value (leave the key out for the default, listener-0)`},
		{"amount_mismatch", base + l + `reversals: {amount_mismatch: ""}`, `reversals.amount_mismatch: "": want a value (leave the key out for the default, decline)`},
		{"qr country", base + l + `qr: {orders: {country: ""}}`, `qr.orders.country: "": want a value (leave the key out for the default, CN)`},
		{"hsm.backend", base + l + `hsm: {backend: ""}`, `hsm.backend: "": want a value (leave the key out for the default, software)`},
		{"ratings.refresh_at", base + l + `ratings: {refresh_at: ""}`, `ratings.refresh_at: "": want a value (leave the key out for the default, 03:30)`},
		{"cluster.group_pause", base + l + `cluster: {mode: embedded, node: 1, group_pause: "", embedded: {server_name: n1}}`,
			`cluster.group_pause: "": want a value (leave the key out for the default, 10ms)`},
		{"refund void", base + l + `refunds: {policies: [{kind: pos}, {kind: mpos, void: ""}]}`,
			`refunds.policies[1].void: "": want a value (leave the key out for the default, same-day)`},
		{"cluster client_addr", base + l + `cluster: {mode: embedded, node: 1, embedded: {server_name: n1, client_addr: ""}}`,
			`cluster.embedded.client_addr: "": want a value (leave the key out for the default, 127.0.0.1:4222)`},
	}
	for _, c := range cases {
		_, err := Parse([]byte(c.in), "test.yaml")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s:\n got %v\nwant %s", c.name, err, c.want)
		}
	}

	c, err := Parse([]byte(base+`listeners: [{addr: 127.0.0.1:1, tls: {cert_file: c.pem, key_file: k.pem, client_ca_file: ""}}]`+"\n"+
		`refunds: {policies: [{kind: "", max_refund_percent: 50}]}`+"\nlog: {level: }\n"), "test.yaml")
	if err != nil {
		t.Fatalf("meaningful empty strings: %v", err)
	}
	if c.Listeners[0].TLS.ClientCAFile != "" || c.Refunds.Policies[0].Kind != "" || c.Log.Level != "info" {
		t.Errorf("client_ca_file %q, refunds.policies[0].kind %q, log.level %q: want \"\", \"\" and the default info",
			c.Listeners[0].TLS.ClientCAFile, c.Refunds.Policies[0].Kind, c.Log.Level)
	}
}
