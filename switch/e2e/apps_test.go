package e2e

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/apps"
	"github.com/switchyard/switchyard/switch/termclient"
)

// TestAppAndTaskCLI: the acquirer's flow through the CLI: a signing key and a
// publication under review, a signed upload (an altered copy refused), the offer at
// sign-on, the rollout status, the withdrawal (the download refused afterwards); and
// the scheduler's task list, run-now and history.
func TestAppAndTaskCLI(t *testing.T) {
	f := startDemo(t, nil)
	defer func() {
		if t.Failed() {
			t.Logf("switch log:\n%s", tail(f.logs.String(), 3000))
		}
	}()
	priv, write := appSigningKey(t, f)

	pkg := write("demo-pay-1.1.0.bin", []byte(strings.Repeat("demo-pay 1.1.0\n", 4000)))
	stmt, code := cliLocal("app", "statement", pkg, "--name", "demo-pay", "--version", "1.1.0", "--kinds", "pos")
	if code != 0 || !strings.HasPrefix(stmt, "switchyard-app-v1\n") {
		t.Fatalf("app statement: %d %s", code, stmt)
	}
	sig := write("sig", ed25519.Sign(priv, []byte(stmt)))
	altered := write("altered.bin", []byte(strings.Repeat("demo-pay 1.1.0\n", 3999)+"demo-pay 6.6.6\n"))
	if out, code := f.cli(tokOperator, "app", "upload", altered, "--name", "demo-pay", "--version", "1.1.0", "--kinds", "pos", "--key", "acq-1", "--signature-file", sig); code == 0 || !strings.Contains(out, "signature") {
		t.Fatalf("altered upload: %d %s", code, out)
	}
	if out, code := f.cli(tokOperator, "app", "upload", pkg, "--name", "demo-pay", "--version", "1.1.0", "--kinds", "pos", "--key", "acq-1", "--signature-file", sig); code != 0 || !strings.Contains(out, "demo-pay@1.1.0 uploaded") {
		t.Fatalf("upload: %d %s", code, out)
	}
	if out, _ := f.cli(tokOperator, "app", "list"); !strings.Contains(out, "demo-pay") || strings.Count(out, "\n") != 2 {
		t.Fatalf("app list: %s", out)
	}
	// A terminal ID the registry does not know (a typo) is refused, listed.
	if out, code := f.cli(tokOperator, "app", "publish", "--group", "pilot", "--app", "demo-pay", "--version", "1.1.0", "--terminals", "T0000001,T000000l"); code == 0 ||
		!strings.Contains(out, "terminal T000000l (not registered)") {
		t.Fatalf("publish to an unknown terminal: %d %s, want refused naming it", code, out)
	}
	f.requestAndApprove("app", "publish", "--group", "pilot", "--app", "demo-pay", "--version", "1.1.0", "--terminals", "T0000001", "--min-version", "1.0.0")

	// The offer comes at sign-on: T0000001 has no MAC key, so its echo, which
	// anyone can send, gets none (docs/apps.md, Rollout).
	signOn := termclient.Txn{MTI: "0800", NetCode: "001", TID: "T0000001", TLV: t1Identity}
	r := f.send(signOn)
	if r.RC != "00" || !strings.HasPrefix(r.DE48, "UP") || !strings.Contains(r.DE48, "1.1.0:") {
		t.Fatalf("sign-on: %+v, want an UP offer of 1.1.0", r)
	}
	if r := f.send(pos(1000)); r.RC != "00" {
		t.Fatalf("purchase with AV 1.0.0 at the group minimum 1.0.0: %+v", r)
	}
	if r := f.send(pos(1000, [2]string{"AV", "0.9"})); r.RC != "58" || r.Reason != "app-version-low" {
		t.Fatalf("purchase with AV 0.9 under the group minimum: %+v", r)
	}
	out, code := f.cli(tokOperator, "app", "status", "--group", "pilot")
	if code != 0 || !strings.Contains(out, "terminals 1, offered 1") || !strings.Contains(out, "1.0.0") {
		t.Fatalf("app status: %d %s", code, out)
	}
	// app groups: a table for people; --json, the groups as the API has them.
	out, code = f.cli(tokOperator, "app", "groups")
	if code != 0 || !strings.HasPrefix(out, "GROUP") || !strings.Contains(out, "demo-pay@1.1.0") || !strings.Contains(out, "terminals=T0000001") || !strings.Contains(out, "TERMINALS") {
		t.Fatalf("app groups: %d %s", code, out)
	}
	var groups []apps.Group
	if out, code = f.cli(tokOperator, "app", "groups", "--json"); code != 0 || json.Unmarshal([]byte(out), &groups) != nil ||
		len(groups) != 1 || groups[0].Current == nil || groups[0].Current.Version != "1.1.0" || groups[0].Matches != 1 {
		t.Fatalf("app groups --json: %d %s", code, out)
	}
	parts := strings.SplitN(r.DE48[5:], ":", 4)
	download := func() int {
		req, _ := http.NewRequest("GET", "http://"+f.s.AdminAddr()+"/apps/v1/download/T0000001/"+parts[2], nil)
		req.Header.Set("Authorization", "Bearer "+parts[3])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := download(); s != 200 {
		t.Fatalf("download: %d", s)
	}
	f.requestAndApprove("app", "withdraw", "--group", "pilot", "--reason", "crash on boot")
	if s := download(); s != http.StatusGone {
		t.Fatalf("download after the withdrawal: %d, want 410", s)
	}
	if r := f.send(signOn); r.RC != "00" || r.DE48 != "" {
		t.Fatalf("sign-on after the withdrawal: %+v, want 00 and no offer", r)
	}

	out, code = f.cli(tokOperator, "task", "list")
	if code != 0 || !strings.Contains(out, "profiles-refresh") || !strings.Contains(out, "profiles.refresh") {
		t.Fatalf("task list: %d %s", code, out)
	}
	if out, code := f.cli(tokOperator, "task", "run-now", "profiles-refresh"); code != 0 || !strings.Contains(out, " ok ") {
		t.Fatalf("task run-now: %d %s", code, out)
	}
	if out, code := f.cli(tokOperator, "task", "history", "profiles-refresh"); code != 0 || !strings.Contains(out, "run-now by demo-operator") {
		t.Fatalf("task history: %d %s", code, out)
	}
}

// TestEchoOfferSignedAndSuspended: the demo SoftPOS T0000002 (MAC key TAK) gets its
// update offer in the answer to an echo MAC'd under its TAK, and its AV is recorded;
// an echo with a wrong MAC is refused 63 without it. Once it is suspended, neither
// its signed echo (still answered 00, a keep-alive) nor its sign-on (refused) gets
// the offer, and its echo's AV is not recorded.
func TestEchoOfferSignedAndSuspended(t *testing.T) {
	f := startDemo(t, nil)
	defer func() {
		if t.Failed() {
			t.Logf("switch log:\n%s", tail(f.logs.String(), 3000))
		}
	}()
	priv, write := appSigningKey(t, f)
	pkg := write("demo-softpos-1.1.0.bin", []byte(strings.Repeat("demo-softpos 1.1.0\n", 4000)))
	stmt, code := cliLocal("app", "statement", pkg, "--name", "demo-softpos", "--version", "1.1.0", "--kinds", "softpos")
	if code != 0 {
		t.Fatalf("app statement: %d %s", code, stmt)
	}
	sig := write("sig", ed25519.Sign(priv, []byte(stmt)))
	if out, code := f.cli(tokOperator, "app", "upload", pkg, "--name", "demo-softpos", "--version", "1.1.0", "--kinds", "softpos", "--key", "acq-1", "--signature-file", sig); code != 0 {
		t.Fatalf("upload: %d %s", code, out)
	}
	f.requestAndApprove("app", "publish", "--group", "pilot", "--app", "demo-softpos", "--version", "1.1.0", "--terminals", "T0000002")

	mac, _ := termclient.RetailMAC(demoTAK)
	bad, _ := termclient.RetailMAC("00000000000000000000000000000000")
	net := func(code, av string) termclient.Txn {
		return termclient.Txn{MTI: "0800", NetCode: code, TID: "T0000002", MID: "000000000000002", STAN: termclient.NextSTAN(),
			Time: time.Now(), TLV: [][2]string{{"DI", "SP-T0000002"}, {"IM", "860000000000002"}, {"GL", "31.230400,121.473700"}, {"AV", av}}}
	}
	versions := func() map[string]int {
		t.Helper()
		out, code := f.cli(tokOperator, "app", "status", "--group", "pilot", "--json")
		var ro []apps.Rollout
		if code != 0 || json.Unmarshal([]byte(out), &ro) != nil || len(ro) != 1 {
			t.Fatalf("app status --json: %d %s", code, out)
		}
		return ro[0].Versions
	}
	if r := sendOn(t, f.c, net("301", "0.8.0"), bad); r.RC != "63" || strings.Contains(r.DE48, "UP") {
		t.Fatalf("echo with a wrong MAC: %+v, want 63 and no offer", r)
	}
	if r := sendOn(t, f.c, net("301", "1.0.0"), mac); r.RC != "00" || !strings.HasPrefix(r.DE48, "UP") || !strings.Contains(r.DE48, "1.1.0:") {
		t.Fatalf("signed echo: %+v, want 00 and the offer of 1.1.0", r)
	}
	if v := versions(); v["1.0.0"] != 1 || v["0.8.0"] != 0 {
		t.Fatalf("versions after the echoes: %v, want the signed echo's 1.0.0 only", v)
	}

	out, _ := f.cli(tokOperator, "terminal", "suspend", "T0000002", "--reason", "reported stolen")
	if out, code := f.cli(tokReviewer, "change", "approve", changeID(t, out)); code != 0 {
		t.Fatal(out)
	}
	if r := sendOn(t, f.c, net("001", "1.0.1"), mac); r.RC == "00" || strings.Contains(r.DE48, "UP") {
		t.Fatalf("suspended terminal's sign-on: %+v, want refused without an offer", r)
	}
	if r := sendOn(t, f.c, net("301", "1.0.2"), mac); r.RC != "00" || r.DE48 != "" {
		t.Fatalf("suspended terminal's signed echo: %+v, want 00 and no offer", r)
	}
	if v := versions(); v["1.0.0"] != 1 || v["1.0.1"] != 0 || v["1.0.2"] != 0 {
		t.Fatalf("versions after the suspension: %v, want 1.0.0 still", v)
	}
}

// appSigningKey makes an acquirer's app-signing key, has the demo switch f trust it
// (signing key acq-1, requested and approved), and returns its private half and a
// function that writes a file into the test's directory and returns its path.
func appSigningKey(t *testing.T, f *fixture) (ed25519.PrivateKey, func(name string, b []byte) string) {
	t.Helper()
	dir := t.TempDir()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyFile := write("acq.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	f.requestAndApprove("app", "key", "add", "acq-1", "--public-key", keyFile, "--reason", "signing key 2026")
	return priv, write
}
