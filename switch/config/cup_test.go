package config

import (
	"strings"
	"testing"
)

// TestCUPListenerConfig: the cup section and the listener kind are checked, the errors
// naming the key.
func TestCUPListenerConfig(t *testing.T) {
	base := "demo: true\nsecurity: {card_hash_key_hex: " + DemoCardHashKey + "}\nlisteners:\n"
	if _, err := Parse([]byte(base+"  - {addr: 127.0.0.1:1, dialect: cup, kind: https, cup: {mac: x919, mac_by_terminal: {T1: ecb}, acquirer_id: '1234', sign_in_max_age: 12h, offline_max_amount: 100000, max_stans_per_key: 2048}}\n"), "ok.yaml"); err != nil {
		t.Fatalf("valid cup listener: %v", err)
	}
	if c, err := Parse([]byte(base+"  - {addr: 127.0.0.1:1, dialect: cup, cup: {currencies: ['156', '840']}}\n"), "cur.yaml"); err != nil || len(c.Listeners[0].CUP.Currencies) != 2 {
		t.Fatalf("cup listener of two currencies: %v", err)
	}
	if _, err := Parse([]byte(base+"  - {addr: 127.0.0.1:1, dialect: cup, cup: {offline_max_amount: -1}}\n"), "off.yaml"); err != nil {
		t.Fatalf("cup listener without an offline ceiling: %v", err)
	}
	if c, err := Parse([]byte(base+"  - {addr: 127.0.0.1:1, dialect: cup, cup: {max_stans_per_key: 1000000}}\n"), "stans.yaml"); err != nil || c.Listeners[0].CUP.MaxSTANsPerKey != 1_000_000 {
		t.Fatalf("cup listener of the most STANs per key: %v", err)
	}
	// Single-length keys are allowed only when asked for, each kind by its key.
	if c, err := Parse([]byte(base+"  - {addr: 127.0.0.1:1, dialect: cup, cup: {single_length_mac_keys: true}}\n"), "mak.yaml"); err != nil ||
		!c.Listeners[0].CUP.SingleLengthMACKeys || c.Listeners[0].CUP.SingleLengthPINKeys {
		t.Fatalf("cup listener allowing single-length MAC keys: %+v, %v", c.Listeners[0].CUP, err)
	}
	// The demo's cup listener allows them, explicitly: its terminals sign in with 003.
	for _, l := range Demo().Listeners {
		if l.Dialect == "cup" && (l.CUP == nil || !l.CUP.SingleLengthMACKeys || l.CUP.SingleLengthPINKeys) {
			t.Fatalf("demo cup listener %s: %+v, want single_length_mac_keys only", l.Name, l.CUP)
		}
	}
	for in, want := range map[string]string{
		"  - {addr: 127.0.0.1:1, dialect: cup, cup: {mac: md5}}\n":                   `listeners[0].cup.mac: unknown cup MAC algorithm "md5"`,
		"  - {addr: 127.0.0.1:1, dialect: cup, cup: {mac_by_terminal: {T1: sha}}}\n": `listeners[0].cup.mac_by_terminal.T1`,
		"  - {addr: 127.0.0.1:1, dialect: cup, cup: {acquirer_id: 12ab}}\n":          `listeners[0].cup.acquirer_id`,
		"  - {addr: 127.0.0.1:1, dialect: ascii, cup: {mac: ecb}}\n":                 `listeners[0].cup: is only for a listener of dialect "cup"`,
		"  - {addr: 127.0.0.1:1, dialect: cup, kind: udp}\n":                         `listeners[0].kind: unknown listener kind "udp"`,
		"  - {addr: 127.0.0.1:1, dialect: cup2}\n":                                   `unknown dialect "cup2"`,
		"  - {addr: 127.0.0.1:1, dialect: cup, cup: {sign_in_max_age: 1m}}\n":        `listeners[0].cup.sign_in_max_age: 1m0s: want 10m to 168h`,
		"  - {addr: 127.0.0.1:1, dialect: cup, cup: {sign_in_max_age: 720h}}\n":      `listeners[0].cup.sign_in_max_age`,
		"  - {addr: 127.0.0.1:1, dialect: cup, cup: {offline_max_amount: -5}}\n":     `listeners[0].cup.offline_max_amount: -5 is neither an amount in minor units nor -1`,
		"  - {addr: 127.0.0.1:1, dialect: cup, cup: {currencies: [CNY]}}\n":          `listeners[0].cup.currencies[0]: "CNY" is not an ISO 4217 numeric code`,
		"  - {addr: 127.0.0.1:1, dialect: cup, cup: {offline_max_amount: 50.5}}\n":   `listeners[0].cup.offline_max_amount: 50.5 is not a whole number`,
		"  - {addr: 127.0.0.1:1, dialect: cup, cup: {max_stans_per_key: 100}}\n":     `listeners[0].cup.max_stans_per_key: 100: want 2048 to 1000000 (0: the default, 50000)`,
		"  - {addr: 127.0.0.1:1, dialect: cup, cup: {max_stans_per_key: -1}}\n":      `listeners[0].cup.max_stans_per_key: -1: want 2048 to 1000000`,
		"  - {addr: 127.0.0.1:1, dialect: cup, cup: {max_stans_per_key: 1000001}}\n": `listeners[0].cup.max_stans_per_key: 1000001: want 2048 to 1000000`,
		"  - {addr: 127.0.0.1:1, dialect: cup, cup: {max_stans_per_key: 5e4}}\n":     `listeners[0].cup.max_stans_per_key`,
	} {
		if _, err := Parse([]byte(base+in), "bad.yaml"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", strings.TrimSpace(in), err, want)
		}
	}
}
