package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"github.com/switchyard/switchyard/switch/cup"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/cli/apiclient"
	"github.com/switchyard/switchyard/internal/syncbuf"
	"github.com/switchyard/switchyard/switch/apps"
	"github.com/switchyard/switchyard/switch/attest"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/registry"
	"github.com/switchyard/switchyard/switch/termclient"
)

// t1Identity is the demo T0000001's identity and version as its sign-on carries them
// (DE 48), which the terminal checks want.
var t1Identity = [][2]string{{"DI", "SN-T0000001"}, {"SI", "89860000000000000001"}, {"IM", "860000000000001"}, {"GL", "39.904200,116.407400"}, {"AV", "1.0.0"}}

// TestAppUpdateOverTheWire: a package signed, uploaded and published (each under
// review) is offered to the terminal in the answer to its sign-on (DE 48 UP), and the
// terminal downloads it from the admin port with the offer's token. The echo of the
// demo T0000001, which has no MAC key and so cannot prove it is the terminal, is
// answered 00 but records no version and gets no offer.
func TestAppUpdateOverTheWire(t *testing.T) {
	s, op, approve, priv := appSwitch(t)
	ctx := context.Background()
	base := "http://" + s.AdminAddr()
	var ch registry.Change

	pkg := bytes.Repeat([]byte("demo-pay 1.1.0 "), 5000)
	sum := sha256.Sum256(pkg)
	hexSum := hex.EncodeToString(sum[:])
	sig := ed25519.Sign(priv, apps.Statement("demo-pay", "1.1.0", hexSum, int64(len(pkg)), nil, []string{"pos"}))
	q := url.Values{"name": {"demo-pay"}, "version": {"1.1.0"}, "kinds": {"pos"}, "key": {"acq-1"},
		"signature": {base64.URLEncoding.EncodeToString(sig)}, "sha256": {hexSum}}
	req, _ := http.NewRequest("POST", base+"/api/v1/apps/packages?"+q.Encode(), bytes.NewReader(pkg))
	req.Header.Set("Authorization", "Bearer "+registry.DemoOperatorToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("upload: %v %s", err, b)
	}
	resp.Body.Close()
	if err := op.Do(ctx, "POST", "/api/v1/apps/publish", apps.PublishRequest{Group: "pilot", App: "demo-pay", Version: "1.1.0",
		Target: apps.Target{Terminals: []string{"T0000001"}}}, &ch); err != nil {
		t.Fatal(err)
	}
	approve(ch)

	c := dial(t, s, "ascii", message.DialectASCII)
	// Anyone can send an echo naming T0000001: it records nothing and offers nothing.
	if r := send(t, c, message.DialectASCII, termclient.Txn{MTI: "0800", NetCode: "301", TID: "T0000001", TLV: [][2]string{{"AV", "0.9.0"}}}); r.RC != "00" || r.DE48 != "" {
		t.Fatalf("unauthenticated echo answer: rc %s DE 48 %q, want 00 and no offer", r.RC, r.DE48)
	}
	var ro []apps.Rollout
	if err := op.Do(ctx, "GET", "/api/v1/apps/rollout?group=pilot", nil, &ro); err != nil || len(ro) != 1 || ro[0].Versions["0.9.0"] != 0 || ro[0].Versions["unknown"] != 1 {
		t.Fatalf("rollout after an unauthenticated echo: %+v %v, want no version recorded", ro, err)
	}
	r := send(t, c, message.DialectASCII, termclient.Txn{MTI: "0800", NetCode: "001", TID: "T0000001", TLV: t1Identity})
	if r.RC != "00" || !strings.HasPrefix(r.DE48, "UP") {
		t.Fatalf("sign-on answer: rc %s DE 48 %q, want an UP offer", r.RC, r.DE48)
	}
	parts := strings.SplitN(r.DE48[5:], ":", 4)
	if len(parts) != 4 || parts[0] != "1.1.0" || parts[2] != hexSum {
		t.Fatalf("UP %q", r.DE48)
	}
	dl, _ := http.NewRequest("GET", base+"/apps/v1/download/T0000001/"+hexSum, nil)
	dl.Header.Set("Authorization", "Bearer "+parts[3])
	resp, err = http.DefaultClient.Do(dl)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("download: %v %v", err, resp.Status)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(got, pkg) {
		t.Fatalf("downloaded %d bytes, not the package", len(got))
	}
	if err := op.Do(ctx, "GET", "/api/v1/apps/rollout?group=pilot", nil, &ro); err != nil || len(ro) != 1 || ro[0].Versions["1.0.0"] != 1 {
		t.Fatalf("rollout: %+v %v", ro, err)
	}
	// A UnionPay-style terminal learns of it at sign-in: header processing
	// requirement 6 (TMS download) and the same offer in F63. Its echo (0820, no
	// MAC in the dialect) is answered 00 without it.
	tmk, _ := hex.DecodeString("2315208C9110AD40F5B83C4A6E1D7F92") // T0000001's demo TMK
	ct, err := cup.DialTerminal(s.ListenerAddr("cup"), "T0000001", "000000000000001", tmk)
	if err != nil {
		t.Fatal(err)
	}
	ct.Device = t1CUPIdentity // the sign-in is checked as a transaction is
	defer ct.Close()
	ans, err := ct.SignIn("003")
	if err != nil {
		t.Fatalf("cup sign-in: %v", err)
	}
	if ans.Str(39) != "00" || ans.Header.ProcessingRequirement() != cup.ReqTMSDownload || !strings.HasPrefix(ans.Str(63), "1.1.0:") || !strings.Contains(ans.Str(63), hexSum) {
		t.Fatalf("cup sign-in answer: %s, F63 %q, want requirement 6 and the offer", cup.Summary(ans), ans.Str(63))
	}
	if ans, err = ct.Echo(); err != nil {
		t.Fatalf("cup echo: %v", err)
	}
	if ans.Str(39) != "00" || ans.Header.ProcessingRequirement() == cup.ReqTMSDownload || ans.Str(63) != "" {
		t.Fatalf("cup echo answer: %s, F63 %q, want 00 and no offer", cup.Summary(ans), ans.Str(63))
	}
	// Another terminal's echo carries no offer.
	if r := send(t, c, message.DialectASCII, termclient.Txn{MTI: "0800", NetCode: "301", TID: "LT000001", TLV: [][2]string{{"AV", "1.0.0"}}}); r.DE48 != "" {
		t.Fatalf("LT000001 offered %q", r.DE48)
	}
}

// TestAppNameOverTheWire: a terminal in the rollout groups of two applications names
// the one it runs in DE 48 AN, and is held to that application's group minimum
// alone: T0000001 in a group of demo-pay (minimum 1.0.0) and one of tools (minimum
// 5.0.0) buys with demo-pay 1.0.0 and is answered 00. Naming tools at 4.9, or no
// application, it is declined 58: the highest floor holds when the name does not say
// otherwise. (Until the third release of 6 December 2026 AN was not read, and the
// first purchase here was declined 58 too.)
func TestAppNameOverTheWire(t *testing.T) {
	s, op, approve, priv := appSwitch(t)
	ctx := context.Background()
	base := "http://" + s.AdminAddr()
	var ch registry.Change
	publish := func(group, app, version string) {
		t.Helper()
		pkg := bytes.Repeat([]byte(app+" "+version+" "), 3000)
		sum := sha256.Sum256(pkg)
		hexSum := hex.EncodeToString(sum[:])
		sig := ed25519.Sign(priv, apps.Statement(app, version, hexSum, int64(len(pkg)), nil, []string{"pos"}))
		q := url.Values{"name": {app}, "version": {version}, "kinds": {"pos"}, "key": {"acq-1"},
			"signature": {base64.URLEncoding.EncodeToString(sig)}, "sha256": {hexSum}}
		req, _ := http.NewRequest("POST", base+"/api/v1/apps/packages?"+q.Encode(), bytes.NewReader(pkg))
		req.Header.Set("Authorization", "Bearer "+registry.DemoOperatorToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("upload %s %s: %s %s", app, version, resp.Status, b)
		}
		if err := op.Do(ctx, "POST", "/api/v1/apps/publish", apps.PublishRequest{Group: group, App: app, Version: version,
			MinVersion: version, Target: apps.Target{Terminals: []string{"T0000001"}}}, &ch); err != nil {
			t.Fatal(err)
		}
		approve(ch)
	}
	publish("pay", "demo-pay", "1.0.0")
	publish("tools", "tools", "5.0.0")

	c := dial(t, s, "ascii", message.DialectASCII)
	buy := func(tlv ...[2]string) termclient.Result {
		t.Helper()
		tx := purchase("4761739001010119", 1000)
		tx.TLV = append(append([][2]string{}, tx.TLV[:4]...), tlv...) // DI, SI, IM, GL: AV given here
		return send(t, c, message.DialectASCII, tx)
	}
	if r := buy([2]string{"AN", "demo-pay"}, [2]string{"AV", "1.0.0"}); r.RC != "00" {
		t.Fatalf("demo-pay 1.0.0 naming its application: rc %s %s, want 00", r.RC, r.Reason)
	}
	if r := buy([2]string{"AN", "tools"}, [2]string{"AV", "4.9"}); r.RC != "58" || r.Reason != "app-version-low" {
		t.Fatalf("tools 4.9 under its minimum 5.0.0: rc %s %s, want 58 app-version-low", r.RC, r.Reason)
	}
	if r := buy([2]string{"AV", "1.0.0"}); r.RC != "58" || r.Reason != "app-version-low" {
		t.Fatalf("no application named, 1.0.0 under the highest minimum 5.0.0: rc %s %s, want 58 app-version-low", r.RC, r.Reason)
	}
}

// TestAttestedAppOverTheWire: the demo SoftPOS T0000002, in the rollout groups of
// the demo SoftPOS app and of tools, signs on (MAC'd under its TAK) with a verified
// attestation token whose app claim is the SoftPOS app and an AN naming tools: the
// token's application is recorded, counted and offered, and the disagreement logged.
// Its MAC'd echo with an AV and no AN keeps the application recorded. Until the
// third release of 6 December 2026 AN alone was recorded (the phone counted as
// running tools and offered tools 5.0.0), and the echo's AV without AN cleared it.
func TestAttestedAppOverTheWire(t *testing.T) {
	var logs syncbuf.Buffer
	s, op, approve, priv := appSwitchLogs(t, &logs)
	ctx := context.Background()
	base := "http://" + s.AdminAddr()
	var ch registry.Change
	publish := func(group, app, version string) {
		t.Helper()
		pkg := bytes.Repeat([]byte(app+" "+version+" "), 3000)
		sum := sha256.Sum256(pkg)
		hexSum := hex.EncodeToString(sum[:])
		sig := ed25519.Sign(priv, apps.Statement(app, version, hexSum, int64(len(pkg)), nil, []string{"softpos"}))
		q := url.Values{"name": {app}, "version": {version}, "kinds": {"softpos"}, "key": {"acq-1"},
			"signature": {base64.URLEncoding.EncodeToString(sig)}, "sha256": {hexSum}}
		req, _ := http.NewRequest("POST", base+"/api/v1/apps/packages?"+q.Encode(), bytes.NewReader(pkg))
		req.Header.Set("Authorization", "Bearer "+registry.DemoOperatorToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("upload %s %s: %s %s", app, version, resp.Status, b)
		}
		if err := op.Do(ctx, "POST", "/api/v1/apps/publish", apps.PublishRequest{Group: group, App: app, Version: version,
			Target: apps.Target{Terminals: []string{"T0000002"}}}, &ch); err != nil {
			t.Fatal(err)
		}
		approve(ch)
	}
	publish("softpos", attest.DemoAppID, "1.1.0")
	publish("tools", "tools", "5.0.0")

	mac, err := termclient.RetailMAC("404142434445464748494A4B4C4D4E4F") // T0000002's demo TAK
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, s, "ascii", message.DialectASCII)
	sendMAC := func(tx termclient.Txn) termclient.Result {
		t.Helper()
		m, err := termclient.Build(tx, message.DialectASCII)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		resp, err := c.Send(ctx, m, mac)
		if err != nil {
			t.Fatal(err)
		}
		r, err := termclient.Decode(resp)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	rollout := func(group string) apps.Rollout {
		t.Helper()
		var ro []apps.Rollout
		if err := op.Do(ctx, "GET", "/api/v1/apps/rollout?group="+group, nil, &ro); err != nil || len(ro) != 1 {
			t.Fatalf("rollout of %s: %+v %v", group, ro, err)
		}
		return ro[0]
	}

	on := termclient.Txn{MTI: "0800", NetCode: "001", TID: "T0000002", MID: "000000000000002", STAN: termclient.NextSTAN(), Time: time.Now(),
		TLV: [][2]string{{"DI", "SP-T0000002"}, {"IM", "860000000000002"}, {"GL", "31.230400,121.473700"}, {"AN", "tools"}, {"AV", "1.0.0"}}}
	tok, err := termclient.AttestToken(attest.DemoSigner(), on, "SP-T0000002", "1.0.0", termclient.IntegrityOf(nil), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	on.TLV = append(on.TLV, [2]string{"AJ", tok})
	if r := sendMAC(on); r.RC != "00" || !strings.HasPrefix(r.DE48, "UP") || !strings.Contains(r.DE48, "1.1.0:") {
		t.Fatalf("attested sign-on naming tools in AN: rc %s %s DE 48 %q, want the SoftPOS app's 1.1.0 offered", r.RC, r.Reason, r.DE48)
	}
	if ro := rollout("softpos"); ro.Versions["1.0.0"] != 1 || ro.OtherApp != 0 {
		t.Fatalf("softpos rollout after the attested sign-on: versions %v other %d, want 1.0.0 counted", ro.Versions, ro.OtherApp)
	}
	if ro := rollout("tools"); ro.OtherApp != 1 || len(ro.Versions) != 0 {
		t.Fatalf("tools rollout after the attested sign-on: versions %v other %d, want another application", ro.Versions, ro.OtherApp)
	}
	if l := logs.String(); !strings.Contains(l, "AN names another application than the verified attestation token") || !strings.Contains(l, `"an":"tools"`) {
		t.Errorf("no mismatch logged for AN tools against the token's %s", attest.DemoAppID)
	}
	echo := termclient.Txn{MTI: "0800", NetCode: "301", TID: "T0000002", TLV: [][2]string{{"AV", "1.0.1"}}}
	if r := sendMAC(echo); r.RC != "00" {
		t.Fatalf("echo: rc %s %s", r.RC, r.Reason)
	}
	if ro := rollout("softpos"); ro.Versions["1.0.1"] != 1 || len(ro.UnknownApp) != 0 {
		t.Fatalf("softpos rollout after an echo with AV 1.0.1 and no AN: versions %v unknown %v, want 1.0.1 counted", ro.Versions, ro.UnknownApp)
	}
}

// appSwitch starts a demo switch for the application tests, with an app-signing key
// acq-1 approved: the switch, an operator's client, a reviewer's approval of a change
// and the key's private half.
func appSwitch(t *testing.T) (*Server, *apiclient.Client, func(registry.Change), ed25519.PrivateKey) {
	t.Helper()
	return appSwitchLogs(t, nil)
}

// appSwitchLogs is appSwitch with the switch's log written to logs (nil: none).
func appSwitchLogs(t *testing.T, logs io.Writer) (*Server, *apiclient.Client, func(registry.Change), ed25519.PrivateKey) {
	t.Helper()
	s := start(t, demoConfig(t, t.TempDir()), logs)
	ctx := context.Background()
	base := "http://" + s.AdminAddr()
	op := &apiclient.Client{BaseURL: base, Token: registry.DemoOperatorToken}
	rev := &apiclient.Client{BaseURL: base, Token: registry.DemoReviewerToken}
	approve := func(c registry.Change) {
		t.Helper()
		if err := rev.Do(ctx, "POST", "/api/v1/changes/"+c.ID+"/approve", registry.ReasonRequest{}, nil); err != nil {
			t.Fatalf("approve %s %s: %v", c.ID, c.Op, err)
		}
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	var ch registry.Change
	if err := op.Do(ctx, "POST", "/api/v1/apps/keys", apps.KeyRequest{SigningKey: apps.SigningKey{ID: "acq-1",
		PublicKey: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))}}, &ch); err != nil {
		t.Fatal(err)
	}
	approve(ch)
	return s, op, approve, priv
}
