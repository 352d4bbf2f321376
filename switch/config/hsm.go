package config

import (
	"fmt"
	"time"
)

// defaultHSMTimeout is hsm.timeout when unset, as hsm/payshield.ClientOptions has it.
const defaultHSMTimeout = 2 * time.Second

// HSM chooses the HSM the switch performs its cryptography with (docs/hsm.md).
type HSM struct {
	// Backend is "software" (the default: the software HSM in the switch, under the
	// LMK of security.lmk_file) or "payshield" (payShield-compatible HSMs over the
	// host command protocol, e.g. `switchyard hsm serve`).
	Backend string `yaml:"backend"`
	// LMKScheme is the LMK scheme of the payShield HSMs: "keyblock" (default: keys
	// are S key block tokens) or "variant" (a variant LMK: U/T tokens; the switch
	// creates TDES keys only). The client sends each stored key's type fields by
	// its token either way.
	LMKScheme string `yaml:"lmk_scheme"`
	// Addrs are the payShield HSMs' host:port, in order of preference.
	Addrs []string `yaml:"addrs"`
	// HeaderLength is the message header length the HSMs are configured with
	// (default 4).
	HeaderLength int `yaml:"header_length"`
	// Connections is the number of connections to each HSM (default 2).
	Connections int `yaml:"connections"`
	// Timeout bounds each attempt of a command on one HSM before failing over
	// (default 2s).
	Timeout Duration `yaml:"timeout"`
	// CommandDeadline bounds a command across its attempts on every HSM (default:
	// twice Timeout, room for one failover): the most a transaction waits for the
	// HSMs before its 96.
	CommandDeadline Duration `yaml:"command_deadline"`
	// HealthEvery is the period of the NC health checks (default 5s).
	HealthEvery Duration `yaml:"health_every"`
	// TLS wraps the connections in TLS, checked against CAFile (system roots when
	// empty), with a client certificate when CertFile and KeyFile are set.
	TLS      bool   `yaml:"tls"`
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// IsPayShield reports whether the switch uses payShield-compatible HSMs.
func (h HSM) IsPayShield() bool { return h.Backend == "payshield" }

func (h HSM) validate(bad func(key, format string, args ...any)) {
	switch h.Backend {
	case "", "software":
		if len(h.Addrs) > 0 {
			bad("hsm.addrs", "only for backend payshield")
		}
		if h.LMKScheme != "" && h.LMKScheme != "keyblock" {
			bad("hsm.lmk_scheme", "%q is only for backend payshield (the software HSM's LMK is a key-block LMK)", h.LMKScheme)
		}
		return
	case "payshield":
	default:
		bad("hsm.backend", "%q is not software or payshield", h.Backend)
		return
	}
	if h.LMKScheme != "" && h.LMKScheme != "keyblock" && h.LMKScheme != "variant" {
		bad("hsm.lmk_scheme", "%q is not keyblock or variant", h.LMKScheme)
	}
	if len(h.Addrs) == 0 {
		bad("hsm.addrs", "backend payshield needs at least one HSM address (host:port)")
	}
	for i, a := range h.Addrs {
		checkHostPort(fmt.Sprintf("hsm.addrs[%d]", i), a, 1, bad)
	}
	if h.HeaderLength != 0 && (h.HeaderLength < 2 || h.HeaderLength > 32) {
		bad("hsm.header_length", "%d is out of range 2-32", h.HeaderLength)
	}
	if h.Connections < 0 || h.Connections > 64 {
		bad("hsm.connections", "%d is out of range 0-64", h.Connections)
	}
	if h.Timeout < 0 {
		bad("hsm.timeout", "%s is negative", h.Timeout.D())
	}
	if h.CommandDeadline < 0 {
		bad("hsm.command_deadline", "%s is negative", h.CommandDeadline.D())
	}
	// A deadline below the attempt's timeout cuts the first attempt short: a silent
	// HSM would take the whole deadline and the next one would never be tried.
	timeout := h.Timeout.D()
	if timeout <= 0 {
		timeout = defaultHSMTimeout
	}
	if d := h.CommandDeadline.D(); d > 0 && d < timeout {
		bad("hsm.command_deadline", "%s is shorter than hsm.timeout (%s): a silent HSM would take the whole deadline and no other HSM would be tried; make it at least %s (twice the timeout, the default) or lower hsm.timeout", d, timeout, 2*timeout)
	}
	if h.HealthEvery < 0 {
		bad("hsm.health_every", "%s is negative", h.HealthEvery.D())
	}
	if (h.CertFile == "") != (h.KeyFile == "") {
		bad("hsm.cert_file", "give cert_file and key_file together")
	}
	if !h.TLS && (h.CAFile != "" || h.CertFile != "") {
		bad("hsm.tls", "ca_file, cert_file and key_file need tls: true")
	}
}
