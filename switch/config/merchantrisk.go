package config

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/switchyard/switchyard/switch/attest"
)

// Attestation configures the verification of signed SoftPOS attestation tokens
// (DE 48 AJ, package attest).
type Attestation struct {
	// Keys are the attestation service's public keys, pinned by key ID. Several may
	// be pinned at once: add the new key, let the service switch to it, remove the
	// old one (a reload, SIGHUP, applies the change, and one of Apps, to the next
	// token). MaxAge and ReplayEntries are read at start.
	Keys []AttestationKey `yaml:"keys"`
	// MaxAge is the longest any terminal may allow a token to be old (a terminal's
	// own attest_max_age, or registry default 120 s, is checked too); nonces are
	// remembered that long against replay. Default 10m.
	MaxAge Duration `yaml:"max_age"`
	// ReplayEntries bounds the in-memory replay cache (default 1000000).
	ReplayEntries int `yaml:"replay_entries"`
	// Apps are the application IDs (the token's "app" claim, e.g.
	// com.acquirer.softpos) the switch accepts: a token the service signed for
	// any other app (a debug build) is refused, 58 attestation-app-refused. Empty:
	// the app is not checked (the start warns outside demo mode when keys are
	// pinned). Demo mode's built-in configuration lists the demo app.
	Apps []string `yaml:"apps"`
}

// AttestationKey is one pinned public key: a PEM "PUBLIC KEY" (ECDSA P-256 for ES256,
// or Ed25519 for EdDSA), in a file or inline.
type AttestationKey struct {
	KID  string `yaml:"kid"`
	File string `yaml:"file"`
	PEM  string `yaml:"pem"`
}

// ParseKeys reads the pinned keys; errors name the key's position and ID.
func (a Attestation) ParseKeys() ([]attest.Key, error) {
	var out []attest.Key
	for i, k := range a.Keys {
		data := []byte(k.PEM)
		if k.File != "" {
			if k.PEM != "" {
				return nil, fmt.Errorf("attestation.keys[%d] (%s): give file or pem, not both", i, k.KID)
			}
			var err error
			if data, err = readFile(k.File, MaxSecretBytes); err != nil {
				return nil, fmt.Errorf("attestation.keys[%d] (%s): %w", i, k.KID, err)
			}
		}
		key, err := attest.ParsePublicKeyPEM(k.KID, data)
		if err != nil {
			return nil, fmt.Errorf("attestation.keys[%d]: %w", i, err)
		}
		out = append(out, key)
	}
	return out, nil
}

// TxnPolicy is a void and refund policy for terminals of one kind at merchants of
// one tier (empty: any). The first policy that matches a transaction applies;
// configured ones come before the built-in defaults.
type TxnPolicy struct {
	Kind string `yaml:"kind"` // pos, mpos, softpos or "" for any
	Tier string `yaml:"tier"` // merchant tier or "" for any
	// Void is when a purchase may be voided: same-day (local day of the purchase,
	// the default) or never.
	Void string `yaml:"void"`
	// RefundFrom is when a refund may first be made: any-time (default) or
	// next-day (from the local day after the purchase).
	RefundFrom string `yaml:"refund_from"`
	// MaxRefundPercent caps all refunds of a purchase together, in percent of it
	// (1 to 100, default 100).
	MaxRefundPercent int `yaml:"max_refund_percent"`
}

// Ratings configures the merchant ratings (package risk/rating, docs/merchant-risk.md).
type Ratings struct {
	// PolicyFile is the rating policy (default: rating/policy.yaml in rules_dir, or
	// the built-in copy when that does not exist).
	PolicyFile string `yaml:"policy_file"`
	// RefreshAt is the local time of the daily recomputation, "HH:MM" (default 03:30).
	RefreshAt string `yaml:"refresh_at"`
	// Poll is how often the scheduler looks at the clock (default 1m): a run missed
	// while the switch was down, or a clock moved, is caught up within it.
	Poll Duration `yaml:"poll"`
}

// DefaultRatingsRefreshAt is Ratings.RefreshAt's default.
const DefaultRatingsRefreshAt = "03:30"

// RefreshClock returns the hour and minute of RefreshAt (default
// DefaultRatingsRefreshAt).
func (r Ratings) RefreshClock() (hour, minute int, err error) {
	at := r.RefreshAt
	if at == "" {
		at = DefaultRatingsRefreshAt
	}
	t, err := time.Parse("15:04", at)
	if err != nil {
		return 0, 0, fmt.Errorf("%q: want HH:MM", at)
	}
	return t.Hour(), t.Minute(), nil
}

// Notices configures the merchant notices (package notify): webhooks are
// registered per merchant through the admin API.
type Notices struct {
	RetryMin Duration `yaml:"retry_min"` // first retry of a failed post (default 1s), doubling
	RetryMax Duration `yaml:"retry_max"` // longest wait between retries (default 5m)
	Timeout  Duration `yaml:"timeout"`   // per post (default 5s)
	Workers  int      `yaml:"workers"`   // merchants posted to at once (default 4)
	LogTTL   Duration `yaml:"log_ttl"`   // how long the delivery log keeps a delivered notice (default 720h)
	// SecretOverlap is how long after a change of a merchant's webhook secret
	// (same URL) its notices are also signed with the secret it replaced
	// (X-Switchyard-Signature-Previous), for its receiver to switch: 1m to 168h,
	// default 24h.
	SecretOverlap Duration `yaml:"secret_overlap"`
	// AllowPrivate lists the internal networks (CIDR, e.g. 10.20.0.0/16; loopback,
	// private, link-local...) merchants' webhooks may reach besides public addresses.
	// Empty (the default): none, so a webhook cannot reach the switch's own API or
	// anything else inside the acquirer's network. The posts use no proxy.
	AllowPrivate []string `yaml:"allow_private"`
}

// AllowPrivatePrefixes parses AllowPrivate.
func (n Notices) AllowPrivatePrefixes() ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(n.AllowPrivate))
	for i, s := range n.AllowPrivate {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("[%d] %q: want a network (10.20.0.0/16) or an address", i, s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// validateMerchantRisk checks the attestation, refund policy and merchant rating
// settings.
func (c *Config) validateMerchantRisk(bad func(key, format string, args ...any)) {
	if c.Attestation.MaxAge < 0 || c.Attestation.MaxAge.D() > time.Hour {
		bad("attestation.max_age", "%v: want 0 (default 10m) to 1h", c.Attestation.MaxAge.D())
	}
	if c.Attestation.ReplayEntries < 0 {
		bad("attestation.replay_entries", "%d: want a positive number (0: default)", c.Attestation.ReplayEntries)
	}
	keys, err := c.Attestation.ParseKeys()
	if err != nil {
		bad("attestation.keys", "%v", err)
	}
	seenApp := map[string]int{}
	for i, a := range c.Attestation.Apps {
		key := fmt.Sprintf("attestation.apps[%d]", i)
		if j, dup := seenApp[a]; dup {
			bad(key, "%q is attestation.apps[%d] already", a, j)
		} else if !attest.ValidAppID(a) {
			bad(key, "%q: want an application ID (the token's app claim, e.g. com.acquirer.softpos): 1 to 255 letters, digits, '.', '_' or '-'", a)
		}
		seenApp[a] = i
	}
	for i, k := range keys {
		if !c.Demo && k.IsDemo() {
			bad(fmt.Sprintf("attestation.keys[%d]", i), "%s: the public demo attestation key is refused outside demo mode (its private key is in the source: anyone could sign SoftPOS attestation tokens); pin the public key of the acquirer's attestation service", k.ID)
		}
	}
	if _, _, err := c.Ratings.RefreshClock(); err != nil {
		bad("ratings.refresh_at", "%v", err)
	}
	if c.Ratings.Poll < 0 {
		bad("ratings.poll", "%v: want a positive duration (0: 1m)", c.Ratings.Poll.D())
	}
	n := c.Notices
	if _, err := n.AllowPrivatePrefixes(); err != nil {
		bad("notices.allow_private", "%v", err)
	}
	for _, d := range []struct {
		key string
		d   Duration
	}{{"notices.retry_min", n.RetryMin}, {"notices.retry_max", n.RetryMax}, {"notices.timeout", n.Timeout}, {"notices.log_ttl", n.LogTTL}} {
		if d.d < 0 {
			bad(d.key, "%s is negative", d.d.D())
		}
	}
	if n.Workers < 0 {
		bad("notices.workers", "%d is negative (0: the default 4)", n.Workers)
	}
	if d := n.SecretOverlap.D(); d < time.Minute || d > 7*24*time.Hour {
		bad("notices.secret_overlap", "%s is not between 1m and 168h", d)
	}
	if n.RetryMin > 0 && n.RetryMax > 0 && n.RetryMax < n.RetryMin {
		bad("notices.retry_max", "%v is less than retry_min %v", n.RetryMax.D(), n.RetryMin.D())
	}
	for i, p := range c.Refunds.Policies {
		key := fmt.Sprintf("refunds.policies[%d]", i)
		switch p.Kind {
		case "", "pos", "mpos", "softpos":
		default:
			bad(key+".kind", "%q: want pos, mpos, softpos or empty", p.Kind)
		}
		switch p.Void {
		case "", "same-day", "never":
		default:
			bad(key+".void", "%q: want same-day or never", p.Void)
		}
		switch p.RefundFrom {
		case "", "any-time", "next-day":
		default:
			bad(key+".refund_from", "%q: want any-time or next-day", p.RefundFrom)
		}
		if p.MaxRefundPercent < 0 || p.MaxRefundPercent > 100 {
			bad(key+".max_refund_percent", "%d: want 1 to 100 (0: 100)", p.MaxRefundPercent)
		}
	}
}
