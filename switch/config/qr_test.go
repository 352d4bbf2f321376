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
	} {
		_, err := Parse([]byte(base+tc.yaml+"\n"), "x.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	c, err := Parse([]byte(base+"qr: {connectors: [{id: unionpay, issuer: demo}]}\n"), "ok.yaml")
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
