package config

import (
	"strings"
	"testing"
)

// TestBadValuesRefused feeds one bad value at a time, over a demo configuration that
// validates, and checks that the start refuses it with an error naming the key, the
// value and what is allowed: negative durations, zero or negative sizes, ports out
// of range, unparsable durations, a typo'd key at several depths, an empty file and
// a second document (which the decoder would ignore).
func TestBadValuesRefused(t *testing.T) {
	const base = "demo: true\nsecurity: {card_hash_key_hex: " + DemoCardHashKey + "}\n"
	const l = "listeners: [{addr: 127.0.0.1:1}]\n"
	cases := []struct{ name, in, want string }{
		// Addresses: a port must be a number within range.
		{"listener port too high", base + "listeners: [{addr: 127.0.0.1:99999}]", `listeners[0].addr: "127.0.0.1:99999": the port "99999" is not a number from 0 to 65535`},
		{"listener port named", base + "listeners: [{addr: 127.0.0.1:http}]", `listeners[0].addr: "127.0.0.1:http": the port "http" is not a number`},
		{"listener port negative", base + "listeners: [{addr: '127.0.0.1:-1'}]", `listeners[0].addr: "127.0.0.1:-1": the port "-1" is not a number`},
		{"listener port empty", base + "listeners: [{addr: ':'}]", `listeners[0].addr: ":": the port "" is not a number`},
		{"admin port too high", base + l + "admin: {addr: 'localhost:70000'}", `admin.addr: "localhost:70000": the port "70000"`},
		{"issuer port zero", base + l + "issuers: [{id: x, addrs: [127.0.0.1:0]}]", `issuers[0].addrs[0]: "127.0.0.1:0": the port "0" is not a number from 1 to 65535`},
		{"hsm port too high", base + l + "hsm: {backend: payshield, addrs: ['10.0.0.5:150000']}", `hsm.addrs[0]: "10.0.0.5:150000": the port "150000" is not a number from 1 to 65535`},
		// Negative durations.
		{"echo_every negative", base + l + "issuers: [{id: x, addrs: [127.0.0.1:2], echo_every: -5s}]", `issuers[0].echo_every: -5s is negative`},
		{"counter_flush negative", base + l + "risk: {counter_flush: -1s}", `risk.counter_flush: -1s is negative`},
		{"refunds window negative", base + l + "refunds: {window: -1h}", `refunds.window: -1h0m0s is negative`},
		{"drain_timeout negative", base + l + "shutdown: {drain_timeout: -1s}", `shutdown.drain_timeout: -1s is negative`},
		{"demo load terminals negative", base + l + "demo_load_terminals: -1", `demo_load_terminals: -1: want 1 to 999999`},
		{"demo load terminals too many", base + l + "demo_load_terminals: 1000000", `demo_load_terminals: 1000000: want 1 to 999999`},
		{"demo issuer timeout negative", base + l + "demo_issuer: {timeout: -1s}", `demo_issuer.timeout: -1s is negative`},
		{"issuer timeout negative", base + l + "issuers: [{id: x, addrs: [127.0.0.1:2], timeout: -1s}]", `issuers[0].timeout: -1s is not between 10ms and 2m`},
		{"idle_timeout negative", base + "listeners: [{addr: 127.0.0.1:1, idle_timeout: -1m}]", `listeners[0].idle_timeout: -1m0s is shorter than 1s`},
		{"notices timeout negative", base + l + "notices: {timeout: -5s}", `notices.timeout: -5s is negative`},
		{"notices workers negative", base + l + "notices: {workers: -1}", `notices.workers: -1 is negative`},
		{"hsm deadline below timeout", base + l + "hsm: {backend: payshield, addrs: ['10.0.0.5:1500', '10.0.0.6:1500'], timeout: 3s, command_deadline: 1s}", `hsm.command_deadline: 1s is shorter than hsm.timeout (3s): a silent HSM would take the whole deadline and no other HSM would be tried; make it at least 6s`},
		{"hsm deadline below default timeout", base + l + "hsm: {backend: payshield, addrs: ['10.0.0.5:1500'], command_deadline: 500ms}", `hsm.command_deadline: 500ms is shorter than hsm.timeout (2s)`},
		{"hsm health negative", base + l + "hsm: {backend: payshield, addrs: ['10.0.0.5:1500'], health_every: -1s}", `hsm.health_every: -1s is negative`},
		{"console lockout negative", base + l + "admin: {console: {lockout: -1m}}", `admin.console.lockout: -1m0s is negative`},
		{"apps token_ttl negative", base + l + "apps: {token_ttl: -1h}", `apps.token_ttl: -1h0m0s is negative`},
		{"profiles min_days negative", base + l + "risk: {profiles: {min_days: -1}}", `risk.profiles.min_days: -1 is negative`},
		// Zero or negative sizes and pool sizes (0 is the default where one exists).
		{"max_in_flight negative", base + l + "limits: {max_in_flight: -5}", `limits.max_in_flight: -5 is not positive`},
		{"max_conns negative", base + "listeners: [{addr: 127.0.0.1:1, max_conns: -1}]", `listeners[0].max_conns: -1 is not between 1 and 1000000`},
		{"issuer connections too many", base + l + "issuers: [{id: x, addrs: [127.0.0.1:2], connections: 100}]", `issuers[0].connections: 100 is not between 1 and 64`},
		{"segment_mb negative", base + l + "journal: {segment_mb: -1}", `journal.segment_mb: -1 is not between 1 and 4000`},
		{"max_batch negative", base + l + "journal: {max_batch: -1}", `journal.max_batch: -1 is not positive`},
		{"breaker buckets too many", base + l + "breaker: {buckets: 601}", `breaker.buckets: 601 is not between 1 and 600`},
		// Nonsensical combinations.
		{"two listeners one port", base + "listeners: [{addr: 127.0.0.1:8583}, {addr: '0.0.0.0:8583'}]", `listeners[1].addr: "0.0.0.0:8583" takes the port of listeners[0].addr (127.0.0.1:8583)`},
		{"admin on a listener's port", base + "listeners: [{addr: ':8080'}]", `admin.addr: "127.0.0.1:8080" takes the port of listeners[0].addr (:8080)`},
		{"one prefix two issuers", base + l + "issuers: [{id: a, addrs: [127.0.0.1:2]}, {id: b, addrs: [127.0.0.1:3]}]\nroutes: [{prefix: '4111', issuer: a}, {prefix: '4111', issuer: b}]", `routes[1].prefix: "4111" is routes[0].prefix already (to a): one issuer a prefix`},
		// Unparsable values, named by their key.
		{"duration without unit", base + "listeners: [{addr: 127.0.0.1:1, idle_timeout: 10}]", `listeners[0].idle_timeout: "10" is not a duration like 10s, 5m or 1h30m`},
		{"duration with a space", base + l + "issuers: [{id: x, addrs: [127.0.0.1:2], timeout: 1 h}]", `issuers[0].timeout: "1 h" is not a duration`},
		{"text for a number", base + l + "limits: {max_in_flight: lots}", "limits.max_in_flight: cannot unmarshal !!str `lots` into int (line 4)"},
		{"text for a bool", base + l + "log: {txn_lines: sometimes}", "log.txn_lines: cannot unmarshal !!str `sometimes` into bool"},
		{"text for journal.exit_on_broken_log", base + l + "journal: {exit_on_broken_log: later}", "journal.exit_on_broken_log: cannot unmarshal !!str `later` into bool"},
		// Required values left empty.
		{"tls cert empty", base + "listeners: [{addr: 127.0.0.1:1, tls: {cert_file: '', key_file: /k}}]", `listeners[0].tls: cert_file and key_file are both required`},
		{"no listeners", base, `listeners: at least one terminal listener is required`},
		{"issuer without addrs", base + l + "issuers: [{id: x}]", `issuers[0].addrs: at least one host:port is required`},
		{"issuer without id", base + l + "issuers: [{addrs: [127.0.0.1:2]}]", `issuers[0].id: required`},
		{"lmk outside demo", "security: {card_hash_key_hex: 00112233445566778899aabbccddeeff}\n" + l, `security.lmk_file: required outside demo mode`},
		// A typo'd key at several depths, with the nearest key.
		{"typo top level", base + l + "rules_dri: ./rules", `rules_dri: unknown key (line 4): did you mean rules_dir?`},
		{"typo depth 1", base + l + "breaker: {windw: 10s}", `breaker.windw: unknown key (line 4): did you mean window?`},
		{"typo in a list", base + "listeners: [{addr: 127.0.0.1:1, idle_tmeout: 10s}]", `listeners[0].idle_tmeout: unknown key (line 3): did you mean idle_timeout?`},
		{"typo depth 3", base + l + "issuers: [{id: x, addrs: [127.0.0.1:2], stand_in: {enabeld: true}}]", `issuers[0].stand_in.enabeld: unknown key (line 4): did you mean enabled?`},
		{"typo depth 3 console", base + l + "admin: {console: {idle_timout: 5m}}", `admin.console.idle_timout: unknown key (line 4): did you mean idle_timeout?`},
		{"typo in cluster", base + l + "cluster: {nodee: 1}", `cluster.nodee: unknown key (line 4): did you mean node?`},
		{"typo in inline struct", base + l + "admin: {tokens: [{name: a, rol: operator, token: x}]}", `admin.tokens[0].rol: unknown key (line 4): did you mean role?`},
		{"unknown key far from any", base + l + "journal: {flux_capacitor: 1}", `journal.flux_capacitor: unknown key (line 4); known keys here: exit_on_broken_log, gap, index_delay, max_batch, min_free_mb, segment_mb, window, window_cpu`},
		{"two typos both named", base + l + "log: {levl: debug, fromat: json}", "log.levl: unknown key (line 4): did you mean level?\nlog.fromat: unknown key (line 4): did you mean format?"},
		// The file as a whole.
		{"empty file", "", `the file is empty`},
		{"a list, not a mapping", "- listeners", "the file: cannot unmarshal !!seq into config.Config (line 1)"},
		{"second document", base + l + "---\nlistenrs: []", `a second YAML document at line 5: the configuration is one document`},
	}
	for _, c := range cases {
		_, err := Parse([]byte(c.in), "test.yaml")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s:\n got %v\nwant %s", c.name, err, c.want)
		}
	}
}

// TestDemoRouteYieldsToConfigured: in demo mode a route of the demo BIN (476173) to
// another issuer stands, where the demo route added after it took the BIN silently.
func TestDemoRouteYieldsToConfigured(t *testing.T) {
	in := "demo: true\nsecurity: {card_hash_key_hex: " + DemoCardHashKey + "}\nlisteners: [{addr: 127.0.0.1:1}]\n" +
		"issuers: [{id: bank-a, addrs: [127.0.0.1:2]}]\nroutes: [{prefix: '476173', issuer: bank-a}]"
	c, err := Parse([]byte(in), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Routes) != 1 || c.Routes[0].Issuer != "bank-a" {
		t.Fatalf("routes %+v, want 476173 to bank-a alone", c.Routes)
	}
}

// TestExitOnBrokenLogDefault: journal.exit_on_broken_log is true when not set (a
// switch whose journal log broke exits 75 for its supervisor), false when set so,
// and the demo configuration has it true as well.
func TestExitOnBrokenLogDefault(t *testing.T) {
	base := "demo: true\nsecurity: {card_hash_key_hex: " + DemoCardHashKey + "}\nlisteners: [{addr: 127.0.0.1:1}]\n"
	for _, tc := range []struct {
		in   string
		want bool
	}{{base, true}, {base + "journal: {exit_on_broken_log: true}", true}, {base + "journal: {exit_on_broken_log: false}", false}} {
		c, err := Parse([]byte(tc.in), "test.yaml")
		if err != nil {
			t.Fatalf("%q: %v", tc.in, err)
		}
		if got := c.Journal.ExitOnBrokenLog; got == nil || *got != tc.want {
			t.Errorf("%q: journal.exit_on_broken_log %v, want %v", tc.in, got, tc.want)
		}
	}
	if d := Demo().Journal.ExitOnBrokenLog; d == nil || !*d {
		t.Errorf("demo configuration: journal.exit_on_broken_log %v, want true", d)
	}
}
