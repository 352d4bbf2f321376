package config

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/switchyard/switchyard/switch/qr"
)

// QR configures QR payments (docs/qr.md): the payment-code table, the connectors it
// routes to, the demo wallet simulator and merchant-presented orders.
type QR struct {
	// Routes is the payment-code table by prefix and length; empty: qr.DefaultRoutes
	// (62 + 19 digits UnionPay, 10-15 + 18 digits WeChat Pay, 25-30 + 16-24 digits
	// Alipay, each to a connector named after its network).
	Routes []qr.Route `yaml:"routes"`
	// Connectors are where the routes' connectors go: a wallet API (url) or an ISO
	// 8583 issuer link (issuer, the code in DE 2). No connectors: QR payments are
	// declined 15 (qr-no-route). Demo mode adds one per network of the table, to the
	// demo wallet simulator, for those not configured.
	Connectors []QRConnector `yaml:"connectors"`
	// DemoWallet is the wallet simulator of demo mode.
	DemoWallet DemoWallet `yaml:"demo_wallet"`
	// Orders configures merchant-presented orders.
	Orders QROrders `yaml:"orders"`
	// NotifySecretEnv names the environment variable holding the secret the networks
	// sign their payment notifications with (HMAC-SHA256 of the body, at least 16
	// bytes). Unset outside demo mode: notifications are refused, so orders are never
	// paid. Demo mode uses DemoNotifySecret.
	NotifySecretEnv string `yaml:"notify_secret_env"`
	// NotifyMaxAge bounds how far a notification's notify_time (when the network
	// sent it, signed with the body; optional) may be from the switch's clock,
	// either way (default 15m; 1m to 24h). A notification further away is refused
	// (a replay of a captured one, or a network's clock that is off); one without
	// notify_time is taken as before, unless its network's connector sets
	// require_notify_time.
	NotifyMaxAge Duration `yaml:"notify_max_age"`
}

// DefaultNotifyMaxAge is qr.notify_max_age when unset.
const DefaultNotifyMaxAge = 15 * time.Minute

// DemoNotifySecret signs the demo wallet's notifications (public: demo mode only).
const DemoNotifySecret = "switchyard-demo-qr-notify-secret"

// NotifySecret returns the secret of the payment notifications, or nil when none is
// configured.
func (q *QR) NotifySecret(demo bool, getenv func(string) string) ([]byte, error) {
	if q.NotifySecretEnv == "" {
		if demo {
			return []byte(DemoNotifySecret), nil
		}
		return nil, nil
	}
	v := getenv(q.NotifySecretEnv)
	if len(v) < 16 {
		return nil, fmt.Errorf("qr.notify_secret_env: $%s holds %d bytes, want at least 16", q.NotifySecretEnv, len(v))
	}
	return []byte(v), nil
}

// QRConnector is one connector of the payment-code table.
type QRConnector struct {
	ID string `yaml:"id"`
	// Network names the network in the journal and to the rules (default the ID).
	Network string `yaml:"network"`
	// URL is the base URL of a wallet API (http or https); or Issuer names an
	// issuer link of issuers (UnionPay codes over ISO 8583). One of the two.
	URL    string `yaml:"url"`
	Issuer string `yaml:"issuer"`
	// Timeout bounds a payment, the payer's confirmation included (default 30s);
	// then 91 and the payment is cancelled through the store-and-forward queue.
	Timeout Duration `yaml:"timeout"`
	// Poll is the wait between queries while the payer confirms (default 2s).
	Poll Duration `yaml:"poll"`
	// RequestTimeout bounds one HTTP request (default 5s).
	RequestTimeout Duration `yaml:"request_timeout"`
	// GUID identifies the network in merchant-presented codes (ID 00 of its merchant
	// account information template; default by network).
	GUID string `yaml:"guid"`
	// NotifySecretEnv names the environment variable holding this network's own
	// secret for its payment notifications (HMAC-SHA256 of the body, at least 16
	// bytes). Set: a notification naming the connector's network is taken only
	// signed under it, never under qr.notify_secret_env, so that another network
	// holding the shared secret cannot notify payments in this one's name. Unset: the
	// shared secret.
	NotifySecretEnv string `yaml:"notify_secret_env"`
	// RequireNotifyTime refuses a payment notification naming the connector's
	// network without notify_time (401 NOTIFY_TIME_REQUIRED): one with it is held
	// to qr.notify_max_age, one without it could be replayed for ever once
	// captured. Set it for each network that sends notify_time (the demo wallet
	// does). Default false: a notification without it is taken, as before. A
	// network is held to it when any of its wallet connectors sets it.
	RequireNotifyTime bool `yaml:"require_notify_time"`
}

// NotifySecret returns the connector's own notification secret, nil when it has
// none (qr.notify_secret_env signs its network's notifications).
func (c *QRConnector) NotifySecret(getenv func(string) string) ([]byte, error) {
	if c.NotifySecretEnv == "" {
		return nil, nil
	}
	v := getenv(c.NotifySecretEnv)
	if len(v) < 16 {
		return nil, fmt.Errorf("qr.connectors[%s].notify_secret_env: $%s holds %d bytes, want at least 16", c.ID, c.NotifySecretEnv, len(v))
	}
	return []byte(v), nil
}

// DemoWallet configures the wallet simulator of demo mode.
type DemoWallet struct {
	Addr string `yaml:"addr"` // default 127.0.0.1:0
	// External is the URL of a wallet simulator already running; when set, none is
	// started.
	External string `yaml:"external"`
}

// QROrders configures merchant-presented (dynamic) codes.
type QROrders struct {
	// TTL is how long an order's code may be paid (default 5m); a payment notified
	// after it is refunded automatically.
	TTL Duration `yaml:"ttl"`
	// Wait is how long an order inquiry waits for the payment before answering
	// "not paid yet" (default 0s: at once; at most 60s).
	Wait Duration `yaml:"wait"`
	// Country is ID 58 of the codes (default CN).
	Country string `yaml:"country"`
}

// DefaultGUID is the globally unique identifier written for a network in ID 00 of its
// merchant account information, when the connector sets none.
func DefaultGUID(network string) string { return qr.DefaultGUID(network) }

func (q *QR) applyDefaults(demo bool) {
	if len(q.Routes) == 0 {
		q.Routes = qr.DefaultRoutes()
	}
	if demo {
		have := map[string]bool{}
		for _, c := range q.Connectors {
			have[c.ID] = true
		}
		for _, r := range q.Routes {
			if !have[r.Connector] {
				have[r.Connector] = true
				// The URL is the demo wallet's, known once it runs (the server fills it).
				q.Connectors = append(q.Connectors, QRConnector{ID: r.Connector, Network: r.Network, URL: DemoWalletURL,
					Timeout: Duration(20 * time.Second), Poll: Duration(time.Second)})
			}
		}
	}
	for i := range q.Connectors {
		c := &q.Connectors[i]
		if c.Network == "" {
			c.Network = c.ID
		}
		if c.Timeout == 0 {
			c.Timeout = Duration(30 * time.Second)
		}
		if c.Poll == 0 {
			c.Poll = Duration(2 * time.Second)
		}
		if c.RequestTimeout == 0 {
			c.RequestTimeout = Duration(5 * time.Second)
		}
		if c.GUID == "" {
			c.GUID = DefaultGUID(c.Network)
		}
	}
	if q.DemoWallet.Addr == "" {
		q.DemoWallet.Addr = "127.0.0.1:0"
	}
	if q.Orders.TTL == 0 {
		q.Orders.TTL = Duration(5 * time.Minute)
	}
	if q.Orders.Country == "" {
		q.Orders.Country = "CN"
	}
	if q.NotifyMaxAge == 0 {
		q.NotifyMaxAge = Duration(DefaultNotifyMaxAge)
	}
}

// DemoWalletURL stands for the demo wallet simulator's URL in a demo connector.
const DemoWalletURL = "demo:"

func (q *QR) validate(issuers map[string]bool, bad func(key, format string, args ...any)) {
	if _, err := qr.NewTable(q.Routes); err != nil {
		bad("qr.routes", "%v", err)
	}
	ids := map[string]bool{}
	for i, c := range q.Connectors {
		key := fmt.Sprintf("qr.connectors[%d]", i)
		if c.ID == "" {
			bad(key+".id", "required")
		}
		if ids[c.ID] {
			bad(key+".id", "%q is defined twice", c.ID)
		}
		ids[c.ID] = true
		switch {
		case (c.URL == "") == (c.Issuer == ""):
			bad(key, "give url (a wallet API) or issuer (an ISO 8583 issuer link), one of the two")
		case c.Issuer != "" && !issuers[c.Issuer]:
			bad(key+".issuer", "%q is not an issuer of issuers", c.Issuer)
		case c.URL != "" && c.URL != DemoWalletURL:
			checkWalletURL(key+".url", "connector "+c.ID, c.URL, bad)
		}
		if c.Timeout.D() < 100*time.Millisecond || c.Timeout.D() > 5*time.Minute {
			bad(key+".timeout", "%s is not between 100ms and 5m", c.Timeout.D())
		}
		if c.Poll.D() < time.Millisecond || c.Poll.D() > c.Timeout.D() {
			bad(key+".poll", "%s is not between 1ms and the timeout", c.Poll.D())
		}
		if c.NotifySecretEnv != "" && c.Issuer != "" {
			bad(key+".notify_secret_env", "an ISO 8583 connector (issuer) takes no notifications: merchant-presented codes offer wallet API connectors only")
		}
		if c.RequireNotifyTime && c.Issuer != "" {
			bad(key+".require_notify_time", "an ISO 8583 connector (issuer) takes no notifications: merchant-presented codes offer wallet API connectors only")
		}
		if c.RequestTimeout.D() < time.Millisecond || c.RequestTimeout.D() > time.Minute {
			bad(key+".request_timeout", "%s is not between 1ms and 1m", c.RequestTimeout.D())
		}
	}
	if q.DemoWallet.External != "" {
		// The demo connectors (url "demo:") go there: the payer's codes too.
		checkWalletURL("qr.demo_wallet.external", "the demo wallet", q.DemoWallet.External, bad)
	}
	if q.Orders.TTL.D() < time.Second || q.Orders.TTL.D() > 24*time.Hour {
		bad("qr.orders.ttl", "%s is not between 1s and 24h", q.Orders.TTL.D())
	}
	if q.Orders.Wait.D() < 0 || q.Orders.Wait.D() > time.Minute {
		bad("qr.orders.wait", "%s is not between 0s and 1m", q.Orders.Wait.D())
	}
	if q.NotifyMaxAge.D() < time.Minute || q.NotifyMaxAge.D() > 24*time.Hour {
		bad("qr.notify_max_age", "%s is not between 1m and 24h", q.NotifyMaxAge.D())
	}
	if len(q.Orders.Country) != 2 {
		bad("qr.orders.country", "%q is not an ISO 3166 alpha-2 code", q.Orders.Country)
	}
}

// checkWalletURL checks the URL of a wallet API (what is named what): http or
// https with a host, and plain http only to this machine (127.0.0.0/8, ::1,
// localhost), as the demo wallet simulator runs. The switch sends the payer's
// payment code in every pay request: over plain http to another host it would
// cross the network in clear. The error shows the URL without its user
// information, query and fragment.
func checkWalletURL(key, what, raw string, bad func(key, format string, args ...any)) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad(key, "%s: %q is not an http or https URL", what, shownURL(raw, u))
		return
	}
	if u.Scheme == "http" && !LoopbackHost(u.Hostname()) {
		bad(key, "%s: %s is plain http to a host other than this machine (127.0.0.0/8, ::1, localhost): the payers' payment codes would cross the network in clear; use https", what, shownURL(raw, u))
	}
}

// LoopbackHost reports whether host (a URL's, without brackets or port) is this
// machine: localhost, or an address of 127.0.0.0/8 or ::1 (an IPv4-mapped one
// too). Other names are not resolved: a name's address may change. The wallet URLs
// here and `switchyard keys`, which sends clear key components only to such a host
// over plain http, share it.
func LoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Zone() == "" && a.Unmap().IsLoopback()
}

// shownURL is a wallet URL as an error shows it: scheme, host and path, never the
// user information (a password), query or fragment (a key or token); when it does
// not parse, the text before any "?" or "#", and after the last "@".
func shownURL(raw string, u *url.URL) string {
	if u != nil && u.Scheme != "" {
		return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
	}
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		raw = raw[:i]
	}
	if i := strings.LastIndex(raw, "@"); i >= 0 {
		raw = raw[i+1:]
	}
	return raw
}
