package config

import (
	"strings"
	"testing"
)

// TestHSMKeys: the hsm section is checked with the key path in every error, and a
// payshield backend needs no LMK in the switch.
func TestHSMKeys(t *testing.T) {
	base := "demo: true\nlisteners: [{addr: 127.0.0.1:1}]\nsecurity: {card_hash_key_hex: " + DemoCardHashKey + "}\n"
	for in, want := range map[string]string{
		"hsm: {backend: thales}":                                                          `hsm.backend: "thales" is not software or payshield`,
		"hsm: {backend: payshield}":                                                       `hsm.addrs: backend payshield needs at least one HSM address`,
		"hsm: {backend: payshield, addrs: [nowhere]}":                                     `hsm.addrs[0]: "nowhere" is not host:port`,
		"hsm: {backend: payshield, addrs: [\"127.0.0.1:1500\"], header_length: 1}":        `hsm.header_length: 1 is out of range 2-32`,
		"hsm: {backend: payshield, addrs: [\"127.0.0.1:1500\"], lmk_scheme: des}":         `hsm.lmk_scheme: "des" is not keyblock or variant`,
		"hsm: {lmk_scheme: variant}":                                                      `hsm.lmk_scheme: "variant" is only for backend payshield`,
		"hsm: {addrs: [\"127.0.0.1:1500\"]}":                                              `hsm.addrs: only for backend payshield`,
		"hsm: {backend: payshield, addrs: [\"127.0.0.1:1500\"], ca_file: /x}":             `hsm.tls: ca_file, cert_file and key_file need tls: true`,
		"hsm: {backend: payshield, addrs: [\"127.0.0.1:1500\"], tls: true, cert_file: x}": `hsm.cert_file: give cert_file and key_file together`,
	} {
		if _, err := Parse([]byte(base+in), "test.yaml"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s:\n got %v\nwant %s", in, err, want)
		}
	}
	prod := "listeners: [{addr: 127.0.0.1:1}]\nsecurity: {card_hash_key_hex: 00112233445566778899aabbccddeeff}\nhsm: {backend: payshield, addrs: [\"10.0.0.5:1500\", \"10.0.0.6:1500\"]}\n"
	c, err := Parse([]byte(prod), "test.yaml")
	if err != nil || !c.HSM.IsPayShield() {
		t.Fatalf("payshield without an LMK in the switch: %v", err)
	}
}
