package config

import (
	"strings"
	"testing"
)

// TestQRConfig: demo mode gets a connector per network of the default table, to the
// demo wallet; a connector needs one of url and issuer, a known issuer, sane times;
// a bad table line is refused naming it.
func TestQRConfig(t *testing.T) {
	c := Demo()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(c.QR.Connectors) != 3 || c.QR.Connectors[0].URL != DemoWalletURL || c.QR.Connectors[1].GUID != "COM.TENCENT.WXPAY" {
		t.Fatalf("demo connectors: %+v", c.QR.Connectors)
	}
	base := "demo: true\nlisteners: [{addr: 127.0.0.1:1}]\nsecurity: {card_hash_key_hex: " + DemoCardHashKey + "}\n"
	for name, tc := range map[string]struct{ yaml, want string }{
		"both":        {"qr: {connectors: [{id: w, url: 'http://x:1', issuer: demo}]}", "qr.connectors[0]: give url"},
		"neither":     {"qr: {connectors: [{id: w}]}", "qr.connectors[0]: give url"},
		"issuer":      {"qr: {connectors: [{id: w, issuer: nobody}]}", `qr.connectors[0].issuer: "nobody"`},
		"url":         {"qr: {connectors: [{id: w, url: 'ftp://x'}]}", "qr.connectors[0].url"},
		"poll":        {"qr: {connectors: [{id: w, url: 'http://x:1', timeout: 1s, poll: 2s}]}", "qr.connectors[0].poll"},
		"route":       {"qr: {routes: [{network: x, connector: x, prefixes: ['6a'], min_len: 16, max_len: 16}]}", "qr.routes[0] (x): prefix"},
		"ttl":         {"qr: {orders: {ttl: 100ms}}", "qr.orders.ttl"},
		"unknown key": {"qr: {wallets: []}", "wallets"},
		"iso secret":  {"qr: {connectors: [{id: w, issuer: demo, notify_secret_env: X}]}", "qr.connectors[0].notify_secret_env"},
		"iso time":    {"qr: {connectors: [{id: w, issuer: demo, require_notify_time: true}]}", "qr.connectors[0].require_notify_time"},
	} {
		_, err := Parse([]byte(base+tc.yaml+"\n"), "x.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	c, err := Parse([]byte(base+"qr: {connectors: [{id: wechat, url: 'http://127.0.0.1:1', require_notify_time: true}]}\n"), "time.yaml")
	if err != nil || !c.QR.Connectors[0].RequireNotifyTime || c.QR.Connectors[1].RequireNotifyTime {
		t.Fatalf("require_notify_time on a wallet connector: %v %+v", err, c.QR.Connectors)
	}
	c, err = Parse([]byte(base+"qr: {connectors: [{id: unionpay, issuer: demo}]}\n"), "ok.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(c.QR.Connectors); n != 3 || c.QR.Connectors[0].Issuer != "demo" {
		t.Fatalf("an ISO connector kept, the others added for demo: %+v", c.QR.Connectors)
	}
}

// TestQRConnectorNotifySecret: a connector's own notification secret is read from
// its variable and, like the shared one, must hold at least 16 bytes; without a
// variable it has none.
func TestQRConnectorNotifySecret(t *testing.T) {
	env := map[string]string{"WX": "wechat-own-secret-0123", "SHORT": "short"}
	c := QRConnector{ID: "wechat", NotifySecretEnv: "WX"}
	if s, err := c.NotifySecret(func(k string) string { return env[k] }); err != nil || string(s) != env["WX"] {
		t.Fatalf("secret %q, %v", s, err)
	}
	c.NotifySecretEnv = "SHORT"
	if _, err := c.NotifySecret(func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "qr.connectors[wechat].notify_secret_env: $SHORT holds 5 bytes") {
		t.Fatalf("short secret: %v", err)
	}
	c.NotifySecretEnv = ""
	if s, err := c.NotifySecret(func(k string) string { return env[k] }); s != nil || err != nil {
		t.Fatalf("no variable: %q, %v", s, err)
	}
}

// TestQRConnectorPlainHTTP: a wallet connector's url (and the demo wallet's
// external one, where the demo connectors go) may be plain http only to this
// machine (127.0.0.0/8, ::1, localhost), as the demo's wallet simulator runs;
// to any other host it must be https, since every pay request carries the
// payer's payment code. The refusal names the connector and the URL without
// its user information and query. Before, http://10.1.9.1:8700 was taken.
func TestQRConnectorPlainHTTP(t *testing.T) {
	base := "demo: true\nlisteners: [{addr: 127.0.0.1:1}]\nsecurity: {card_hash_key_hex: " + DemoCardHashKey + "}\n"
	conn := func(u string) string { return "qr: {connectors: [{id: wechat, url: '" + u + "'}]}\n" }
	for _, u := range []string{"http://127.0.0.1:8700", "http://127.9.8.7:1/v1", "http://localhost:8700", "http://LOCALHOST", "http://[::1]:8700", "http://[::ffff:127.0.0.1]:8700",
		"https://10.1.9.1:8700", "https://wallet.example.com/api"} {
		if _, err := Parse([]byte(base+conn(u)), "ok.yaml"); err != nil {
			t.Errorf("%s refused: %v", u, err)
		}
	}
	if _, err := Parse([]byte(base+"qr: {demo_wallet: {external: 'http://127.0.0.1:9000'}}\n"), "ok.yaml"); err != nil {
		t.Errorf("a demo wallet on loopback refused: %v", err)
	}
	for _, tc := range []struct{ yaml, want string }{
		{conn("http://10.1.9.1:8700"), "qr.connectors[0].url: connector wechat: http://10.1.9.1:8700 is plain http to a host other than this machine"},
		{conn("http://wallet.example.com/api"), "connector wechat: http://wallet.example.com/api is plain http"},
		{conn("http://localhost.example.com"), "plain http"},
		{conn("http://0.0.0.0:8700"), "plain http"},
		{conn("http://[::2]:8700"), "plain http"},
		{conn("HTTP://128.0.0.1"), "plain http"},
		{conn("http://wx:s3cret@10.1.9.1:8700/v1?key=k3y#frag"), "connector wechat: http://10.1.9.1:8700/v1 is plain http"},
		{"qr: {demo_wallet: {external: 'http://10.0.0.5:9000'}}\n", "qr.demo_wallet.external: the demo wallet: http://10.0.0.5:9000 is plain http"},
	} {
		_, err := Parse([]byte(base+tc.yaml), "x.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.yaml, err, tc.want)
			continue
		}
		for _, secret := range []string{"s3cret", "k3y", "frag"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("%s: the refusal shows %q: %v", tc.yaml, secret, err)
			}
		}
	}
}
