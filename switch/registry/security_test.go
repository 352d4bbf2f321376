package registry

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestImportRefusesBadKeyReferences: a key reference that names no key of the key
// store, or a key of another type (an issuer's ZPK as a terminal's TPK), is refused
// per row; an empty cell (the conventional reference, generated later) is accepted.
func TestImportRefusesBadKeyReferences(t *testing.T) {
	keys := map[string]KeyInfo{
		"T0000001.TPK":        {Type: "TPK", Owner: "T0000001"},
		"T0000001.TMK":        {Type: "TMK", Owner: "T0000001"},
		"demo.ZPK":            {Type: "ZPK", Owner: "demo"},
		"BDK.FFFF9876543210E": {Type: "BDK", Owner: "FFFF9876543210E"},
	}
	f := &fixture{dir: t.TempDir(), clock: &fakeClock{t: t0}, opts: Options{SeenFlushInterval: -1,
		Keys: func(id string) (KeyInfo, error) {
			if ki, ok := keys[id]; ok {
				return ki, nil
			}
			return KeyInfo{}, fmt.Errorf("key not found: %s", id)
		}}}
	f.open(t)
	t.Cleanup(func() { f.close(t) })
	if _, err := LoadDemoFleet(f.reg, testLoadTerminals); err != nil {
		t.Fatal(err)
	}
	csv := "terminal_id,merchant_id,kind,pin_mode,tpk,tmk,bdk\n" +
		"T4000001,000000000000001,pos,tpk,T0000001.TPK,T0000001.TMK,\n" + // good
		"T4000002,000000000000001,pos,tpk,NO.SUCH.KEY,,\n" +
		"T4000003,000000000000001,pos,tpk,demo.ZPK,,\n" +
		"T4000004,000000000000001,pos,tpk,,T0000001.TPK,\n" + // a TPK as the TMK
		"T4000005,000000000000001,pos,dukpt,,,BDK.FFFF9876543210E\n" + // good
		"T4000006,000000000000001,pos,tpk,,,\n" // good: T4000006/TPK, generated later
	rep, err := f.reg.ImportTerminals(alice, strings.NewReader(csv), "", true)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"", `tpk "NO.SUCH.KEY": key not found`, `tpk "demo.ZPK" is a ZPK of "demo", not a TPK`, `tmk "T0000001.TPK" is a TPK`, "", ""}
	if len(rep.Rows) != len(want) {
		t.Fatalf("report = %+v", rep)
	}
	for i, w := range want {
		row := rep.Rows[i]
		if w == "" && !row.OK {
			t.Errorf("line %d: refused: %s", row.Line, row.Error)
		}
		if w != "" && (row.OK || !strings.Contains(row.Error, w)) {
			t.Errorf("line %d: ok=%v error %q, want %q", row.Line, row.OK, row.Error, w)
		}
	}
	if rep.Accepted != 3 || rep.Rejected != 3 {
		t.Errorf("accepted %d, rejected %d; want 3 and 3", rep.Accepted, rep.Rejected)
	}
	// The same check guards a single register and a change of a terminal's keys.
	reg := Terminal{ID: "T4000009", MerchantID: "000000000000001", Kind: KindPOS, Keys: KeyRefs{TPK: "demo.ZPK", PINMode: PINModeTPK}}
	if _, err := f.reg.RequestChange(alice, Change{Op: OpTerminalRegister, Terminal: &reg}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "is a ZPK") {
		t.Errorf("register with demo.ZPK as TPK: %v", err)
	}
	t1, _ := f.reg.Terminal("T0000001")
	bad := t1.Keys
	bad.TMK = "NO.SUCH.KEY"
	if _, err := f.reg.RequestChange(alice, Change{Op: OpTerminalChange, Target: "T0000001", TerminalPatch: &TerminalPatch{Keys: &bad}}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "NO.SUCH.KEY") {
		t.Errorf("change to a TMK that does not exist: %v", err)
	}
	good := t1.Keys
	good.BDK = "BDK.FFFF9876543210E"
	if _, err := f.reg.RequestChange(alice, Change{Op: OpTerminalChange, Target: "T0000001", TerminalPatch: &TerminalPatch{Keys: &good}}); err != nil {
		t.Errorf("change adding a BDK: %v", err)
	}
}

// TestSuspensionWaveHeld: a suspend rule that fires for the whole fleet (the issue
// saw 2,004 terminals suspended in a minute) suspends no more than the configured
// share of a merchant's terminals, nor of the fleet's, within the window; the rest
// are requested as changes for a reviewer, and the limit holds across a restart.
func TestSuspensionWaveHeld(t *testing.T) {
	f := &fixture{dir: t.TempDir(), clock: &fakeClock{t: t0}, opts: Options{SeenFlushInterval: -1}}
	f.open(t)
	t.Cleanup(func() { f.close(t) })
	// Merchant A has 40 terminals, B and C 10 each: 60 in the fleet. With a share of
	// 10 % and a minimum of 3, A may lose 4, B and C 3 each, the fleet 6.
	var ts []Terminal
	for _, m := range []struct {
		id, prefix string
		n          int
	}{{"000000000000101", "TA", 40}, {"000000000000102", "TB", 10}, {"000000000000103", "TC", 10}} {
		f.apply(t, Change{Op: OpMerchantRegister, Merchant: &Merchant{ID: m.id, Name: "Wave " + m.prefix, MCC: "5411", Region: "CN-BJ",
			Tier: TierStandard, Rating: RatingLow, Limits: DemoLimitsStandard}})
		for i := 1; i <= m.n; i++ {
			ts = append(ts, Terminal{ID: fmt.Sprintf("%s%06d", m.prefix, i), MerchantID: m.id, Kind: KindPOS, Status: TerminalActive})
		}
	}
	f.apply(t, Change{Op: OpTerminalImport, Terminals: ts})
	f.apply(t, Change{Op: OpAlertRulePut, AlertRule: &AlertRule{ID: "all-1m", Threshold: Duration(time.Minute), Actions: []AlertAction{{Type: ActionSuspend}}}})

	// Wave defaults: 10 %, at least 3, 1 h. The mass-silence brake, which would
	// withhold all 60 (TestMassSilenceNoSuspension), is off: its share is the whole.
	mon := NewMonitor(f.reg, f.clock.Now, MonitorOptions{MassSilenceShare: 1})
	got, err := mon.RunOnce(context.Background(), t0.Add(2*time.Minute))
	if err != nil || len(got) != 60 {
		t.Fatalf("%d alerts, %v; want 60", len(got), err)
	}
	count := func(merchant string) int {
		return len(f.reg.Terminals(TerminalFilter{MerchantID: merchant, Status: TerminalSuspended}))
	}
	// In terminal ID order: A loses 4 (its limit), B 2 (then the fleet's 6 is
	// reached), C none.
	if a, b, c := count("000000000000101"), count("000000000000102"), count("000000000000103"); a != 4 || b != 2 || c != 0 {
		t.Errorf("suspended: A %d, B %d, C %d; want 4, 2, 0", a, b, c)
	}
	held := 0
	for _, a := range got {
		if d := a.Actions[0].Detail; strings.HasPrefix(d, "suspension held for review as CHG-") {
			held++
		} else if d != "terminal suspended" {
			t.Errorf("%s: action %+v", a.TerminalID, a.Actions[0])
		}
	}
	pending, _ := f.reg.Changes(ChangeFilter{Status: ChangePending})
	if held != 54 || len(pending) != 54 {
		t.Fatalf("%d suspensions held, %d pending changes; want 54", held, len(pending))
	}
	if n := testutil.ToFloat64(f.reg.m.withheld.WithLabelValues("wave-limit")); n != 54 {
		t.Errorf("switchyard_registry_suspensions_withheld_total{reason=wave-limit} = %v, want 54", n)
	}
	if p := pending[0]; p.RequestedBy != SystemActor || p.Op != OpTerminalSuspend || p.Target != "TA000005" ||
		!strings.Contains(p.Reason, "4 of merchant 000000000000101's 40 terminals") || !strings.Contains(p.Reason, "limit 4") {
		t.Errorf("first held change = %+v", p)
	}
	if p := pending[len(pending)-1]; !strings.Contains(p.Reason, "6 of the fleet's 60 terminals") {
		t.Errorf("last held change = %+v", p)
	}
	// A reviewer may approve a held suspension.
	if c, err := f.reg.Approve(bob, pending[0].ID, "confirmed offline"); err != nil || c.Status != ChangeApproved {
		t.Errorf("approve held suspension: %+v, %v", c, err)
	}
	// Later in the window, after a restart, a terminal that went silent again is
	// held too: the count comes from the records.
	f.reopen(t)
	f.reg.Seen("TC000001", honest, GeoPoint{}, t0.Add(3*time.Minute))
	mon = NewMonitor(f.reg, f.clock.Now, MonitorOptions{MassSilenceShare: 1, ReAlertAfter: -1})
	again, err := mon.RunOnce(context.Background(), t0.Add(5*time.Minute))
	if err != nil || len(again) != 1 || !strings.HasPrefix(again[0].Actions[0].Detail, "suspension held") {
		t.Fatalf("later alert = %+v, %v", again, err)
	}
	// After the window, suspensions go ahead again.
	f.reg.Seen("TC000002", honest, GeoPoint{}, t0.Add(2*time.Hour))
	later, err := mon.RunOnce(context.Background(), t0.Add(2*time.Hour+2*time.Minute))
	if err != nil || len(later) != 1 || later[0].Actions[0].Detail != "terminal suspended" {
		t.Fatalf("alert after the window = %+v, %v", later, err)
	}
}

// TestWebhookAllowListAndSignature: webhook targets must be on the allow-list when
// the rule is saved and when it fires; redirects are not followed; bodies are
// signed, and without a secret nothing is posted.
func TestWebhookAllowListAndSignature(t *testing.T) {
	hook := newHookServer(t, 0)
	elsewhere := newHookServer(t, 0) // a local port no rule may reach
	redirect := httptest.NewServer(http.RedirectHandler(elsewhere.srv.URL+"/x", http.StatusTemporaryRedirect))
	defer redirect.Close()
	allowed := hook.srv.URL + "/alerts"
	f := newFixtureOpts(t, Options{SeenFlushInterval: -1, WebhookAllow: []string{allowed, redirect.URL + "/"}})
	if err := f.reg.DeleteAlertRule(root, "offline-24h"); err != nil {
		t.Fatal(err)
	}
	put := func(id, target string) error {
		_, err := f.reg.PutAlertRule(alice, AlertRule{ID: id, Threshold: Duration(time.Hour), Filter: AlertFilter{Merchants: []string{"000000000000002"}},
			Actions: []AlertAction{{Type: ActionWebhook, URL: target}}})
		return err
	}
	for _, bad := range []string{elsewhere.srv.URL + "/alerts", hook.srv.URL + "/alertsX", hook.srv.URL + "/", "http://user@" + strings.TrimPrefix(allowed, "http://")} {
		if err := put("bad", bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("webhook to %s: %v, want ErrInvalid", bad, err)
		}
	}
	if err := put("ok", allowed+"/sub?x=1"); err != nil {
		t.Fatal(err)
	}
	if err := put("redir", redirect.URL+"/go"); err != nil {
		t.Fatal(err)
	}
	mon := NewMonitor(f.reg, f.clock.Now, MonitorOptions{WebhookSecret: testWebhookSecret, WebhookAttempts: 1})
	got, err := mon.RunOnce(context.Background(), t0.Add(2*time.Hour))
	if err != nil || len(got) != 2 {
		t.Fatalf("alerts = %+v, %v", got, err)
	}
	hook.mu.Lock()
	if hook.calls != 1 || hook.badSigs != 0 {
		t.Errorf("allowed hook: %d calls, %d with a bad signature", hook.calls, hook.badSigs)
	}
	hook.mu.Unlock()
	for _, a := range got {
		if a.RuleID == "redir" && (a.Actions[0].OK || !strings.Contains(a.Actions[0].Detail, "307")) {
			t.Errorf("redirected webhook = %+v, want a failure naming the 307", a.Actions[0])
		}
	}
	// Reopened with an allow-list that no longer has the target: the stored rule
	// does not post; nor does a monitor without a secret.
	f.opts.WebhookAllow = []string{redirect.URL + "/"}
	f.reopen(t)
	f.reg.Seen("T0000002", honest, GeoPoint{}, t0.Add(3*time.Hour))
	mon = NewMonitor(f.reg, f.clock.Now, MonitorOptions{WebhookSecret: testWebhookSecret, WebhookAttempts: 1})
	got, _ = mon.RunOnce(context.Background(), t0.Add(5*time.Hour))
	for _, a := range got {
		if a.RuleID == "ok" && (a.Actions[0].OK || !strings.Contains(a.Actions[0].Detail, "allow-list")) {
			t.Errorf("webhook off the allow-list = %+v", a.Actions[0])
		}
	}
	f.opts.WebhookAllow = []string{allowed}
	f.reopen(t)
	f.reg.Seen("T0000002", honest, GeoPoint{}, t0.Add(6*time.Hour))
	got, _ = NewMonitor(f.reg, f.clock.Now, MonitorOptions{WebhookAttempts: 1}).RunOnce(context.Background(), t0.Add(8*time.Hour))
	for _, a := range got {
		if a.RuleID == "ok" && (a.Actions[0].OK || !strings.Contains(a.Actions[0].Detail, "secret")) {
			t.Errorf("webhook without a secret = %+v", a.Actions[0])
		}
	}
	hook.mu.Lock()
	defer hook.mu.Unlock()
	elsewhere.mu.Lock()
	defer elsewhere.mu.Unlock()
	if hook.calls != 1 || elsewhere.calls != 0 {
		t.Errorf("posts: %d to the allowed hook, %d elsewhere; want 1 and 0", hook.calls, elsewhere.calls)
	}
}

// TestSignWebhookVector pins the signature format receivers implement.
func TestSignWebhookVector(t *testing.T) {
	got := SignWebhook([]byte("secret"), "1777629600", []byte(`{"event":"terminal-offline"}`))
	m := hmac.New(sha256.New, []byte("secret"))
	m.Write([]byte(`1777629600.{"event":"terminal-offline"}`))
	if want := "sha256=" + hex.EncodeToString(m.Sum(nil)); got != want {
		t.Errorf("SignWebhook = %s, want %s", got, want)
	}
}
