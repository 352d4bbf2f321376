package regtool

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/internal/cli/apiclient"
	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/api"
	"github.com/switchyard/switchyard/switch/registry"
)

var t0 = time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

type env struct {
	reg     *registry.Registry
	handler http.Handler
	clock   *clock
	loc     *time.Location // the zone of the times shown (nil: UTC)
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, registry.Options{SeenFlushInterval: -1})
}

// newEnvWith is newEnv with the registry's options.
func newEnvWith(t *testing.T, opts registry.Options) *env {
	t.Helper()
	dir := t.TempDir()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithMemTableSize(8 << 20).WithValueLogFileSize(16 << 20).WithNumCompactors(2))
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: t0}
	reg, err := registry.New(db, c.now, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := reg.Close(); err != nil {
			t.Error(err)
		}
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	if _, err := registry.LoadDemoFleet(reg, 200); err != nil {
		t.Fatal(err)
	}
	auth, err := admin.NewAuthenticator(api.DemoTokens())
	if err != nil {
		t.Fatal(err)
	}
	return &env{reg: reg, handler: api.New(api.Options{Auth: auth, Registry: reg}), clock: c}
}

// run runs one CLI command in-process with the given token.
func (e *env) run(t *testing.T, token string, cmdline ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	c := &apiclient.Client{Handler: e.handler, Token: token}
	code := Run(context.Background(), cmdline[0], cmdline[1:], c, e.loc, &out, &errb)
	return code, out.String(), errb.String()
}

func (e *env) mustRun(t *testing.T, token string, cmdline ...string) string {
	t.Helper()
	code, out, errs := e.run(t, token, cmdline...)
	if code != ExitOK {
		t.Fatalf("%s: exit %d\nstdout: %s\nstderr: %s", strings.Join(cmdline, " "), code, out, errs)
	}
	return out
}

const (
	op  = registry.DemoOperatorToken
	rev = registry.DemoReviewerToken
	an  = registry.DemoAnalystToken
)

func t1Request() registry.CheckRequest {
	return registry.CheckRequest{TerminalID: "T0000001", MerchantID: "000000000000001", SourceIP: netip.MustParseAddr("10.0.0.9"),
		DeviceID: "SN-T0000001", SIM: "89860000000000000001", IMEI: "860000000000001",
		Location: registry.GeoPoint{Lat: 39.9042, Lon: 116.4074, Present: true}}
}

func TestCLIReviewFlow(t *testing.T) {
	e := newEnv(t)
	out := e.mustRun(t, op, "merchant", "freeze", "000000000000001", "--reason", "AML review")
	if !strings.Contains(out, "CHG-1 requested") || !strings.Contains(out, "switchyard change approve CHG-1") {
		t.Errorf("freeze output: %s", out)
	}
	// The requester cannot approve.
	code, _, errs := e.run(t, op, "change", "approve", "CHG-1")
	if code != ExitError || !strings.Contains(errs, "403") {
		t.Errorf("operator approving: exit %d, stderr %s", code, errs)
	}
	if res := e.reg.Check(t1Request()); res.Decline {
		t.Fatalf("declined before approval: %s", res.Reason)
	}
	out = e.mustRun(t, op, "change", "list")
	if !strings.Contains(out, "CHG-1") || !strings.Contains(out, "merchant.freeze") || !strings.Contains(out, "demo-operator") || !strings.Contains(out, "AML review") {
		t.Errorf("change list: %s", out)
	}
	out = e.mustRun(t, rev, "change", "show", "CHG-1")
	if !strings.Contains(out, `status: "active" -> "frozen"`) {
		t.Errorf("change show: %s", out)
	}
	out = e.mustRun(t, rev, "change", "approve", "CHG-1", "--note", "confirmed")
	if !strings.Contains(out, "CHG-1 approved") || !strings.Contains(out, "reviewed by demo-reviewer") {
		t.Errorf("approve output: %s", out)
	}
	if res := e.reg.Check(t1Request()); res.Reason != registry.ReasonMerchantFrozen {
		t.Errorf("after approval: %q, want merchant-frozen", res.Reason)
	}
	var cs []registry.Change
	out = e.mustRun(t, an, "change", "list", "--status", "all", "--json")
	if err := json.Unmarshal([]byte(out), &cs); err != nil || len(cs) != 1 || cs[0].Status != registry.ChangeApproved {
		t.Errorf("change list --json = %s, %v", out, err)
	}
	out = e.mustRun(t, an, "merchant", "list")
	if !strings.Contains(out, "000000000000001  Demo Grocery") || !strings.Contains(out, "frozen") {
		t.Errorf("merchant list: %s", out)
	}
	// Register and change a merchant.
	e.mustRun(t, op, "merchant", "register", "000000000000077", "--name", "Night Market", "--mcc", "5812", "--region", "CN-GZ",
		"--tier", "micro", "--limit-txn", "50000", "--pending", "--group", "NIGHT-1")
	e.mustRun(t, registry.DemoReviewer2Token, "change", "approve", "CHG-2")
	e.mustRun(t, op, "merchant", "change", "000000000000077", "--rating", "high", "--group", "NIGHT-2")
	e.mustRun(t, rev, "change", "approve", "CHG-3")
	var m registry.Merchant
	if err := json.Unmarshal([]byte(e.mustRun(t, an, "merchant", "show", "000000000000077", "--json")), &m); err != nil {
		t.Fatal(err)
	}
	if m.Status != registry.MerchantPending || m.Rating != registry.RatingHigh || m.Limits.PerTransaction != 50000 || m.Region != "CN-GZ" ||
		m.Group != "NIGHT-2" {
		t.Errorf("merchant 77 = %+v", m)
	}
}

func TestCLITerminals(t *testing.T) {
	e := newEnv(t)
	e.mustRun(t, op, "terminal", "register", "T0000050", "--merchant", "000000000000001", "--kind", "pos", "--active",
		"--device-serial", "SN-50", "--iccid", "89860000000000000050", "--location", "39.90,116.40,200",
		"--networks", "10.0.0.0/8, 192.168.1.7", "--min-app-version", "1.4", "--policy", "flag", "--reason", "new till")
	e.mustRun(t, rev, "change", "approve", "CHG-1")
	e.mustRun(t, op, "terminal", "change", "T0000050", "--pin-mode", "tpk", "--tmk", "T0000050/TMK", "--clear-location")
	e.mustRun(t, rev, "change", "approve", "CHG-2")
	var v registry.TerminalView
	if err := json.Unmarshal([]byte(e.mustRun(t, an, "terminal", "show", "T0000050", "--json")), &v); err != nil {
		t.Fatal(err)
	}
	if v.Status != registry.TerminalActive || v.Binding.DeviceSerial != "SN-50" || v.Location != nil || len(v.AllowedNetworks) != 2 ||
		v.AllowedNetworks[1].String() != "192.168.1.7/32" || v.MinAppVersion != "1.4" || v.MissingPolicy != registry.PolicyFlag ||
		v.Keys.PINMode != registry.PINModeTPK || v.Keys.TPK != "T0000050.TPK" || v.Keys.TMK != "T0000050/TMK" {
		t.Errorf("T0000050 = %+v", v)
	}
	e.mustRun(t, op, "terminal", "suspend", "T0000050", "--reason", "stolen")
	e.mustRun(t, rev, "change", "approve", "CHG-3")
	out := e.mustRun(t, an, "terminal", "list", "--merchant", "000000000000001")
	if !strings.Contains(out, "T0000050") || !strings.Contains(out, "suspended") || !strings.Contains(out, "DI,SI,NET (flag)") ||
		strings.Contains(out, "LT000001") {
		t.Errorf("terminal list: %s", out)
	}
	out = e.mustRun(t, an, "terminal", "list", "--merchant", "000000000000003", "--limit", "3", "--json")
	var views []registry.TerminalView
	if err := json.Unmarshal([]byte(out), &views); err != nil || len(views) != 3 {
		t.Errorf("terminal list --limit 3 --json: %d, %v", len(views), err)
	}
	// Oplog shows who, what, before and after.
	out = e.mustRun(t, an, "oplog", "--target", "T0000050")
	for _, want := range []string{"terminal.register", "terminal.change", "terminal.suspend", "demo-reviewer (requested by demo-operator)",
		`status: "active" -> "suspended"`, "stolen", "CHG-3"} {
		if !strings.Contains(out, want) {
			t.Errorf("oplog --target T0000050 lacks %q:\n%s", want, out)
		}
	}
	var es []registry.OpEntry
	if err := json.Unmarshal([]byte(e.mustRun(t, an, "oplog", "--actor", "demo-operator", "--json")), &es); err != nil || len(es) != 3 {
		t.Errorf("oplog --actor --json = %d entries, %v", len(es), err)
	}
	if out := e.mustRun(t, an, "oplog", "verify"); !strings.Contains(out, "hash chain verified") {
		t.Errorf("oplog verify: %s", out)
	}
	if out := e.mustRun(t, an, "oplog", "--since", "2030-01-01"); strings.Contains(out, "terminal.") {
		t.Errorf("oplog --since future: %s", out)
	}
}

func TestCLIImport(t *testing.T) {
	e := newEnv(t)
	file := filepath.Join(t.TempDir(), "fleet.csv")
	csv := "terminal_id,merchant_id,kind,status,imei\n" +
		"T4000001,000000000000002,mpos,active,860000000004001\n" +
		"T4000002,000000000000002,pos,bogus,\n" +
		"T4000003,000000000000002,pos,,12\n" +
		"T4000004,000000000000002,pos,,\n"
	if err := os.WriteFile(file, []byte(csv), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := e.run(t, op, "terminal", "import", file, "--dry-run")
	if code != ExitError || !strings.Contains(out, "2 accepted, 2 rejected") || !strings.Contains(out, "Dry run") {
		t.Errorf("dry run: exit %d\n%s%s", code, out, errs)
	}
	code, out, _ = e.run(t, op, "terminal", "import", file, "--reason", "spring rollout")
	if code != ExitError {
		t.Errorf("import with rejected rows: exit %d, want %d", code, ExitError)
	}
	for _, want := range []string{"3     T4000002  REJECTED", "status", "4     T4000003  REJECTED", "IMEI", "2     T4000001  ok", "CHG-1 requested"} {
		if !strings.Contains(out, want) {
			t.Errorf("import output lacks %q:\n%s", want, out)
		}
	}
	e.mustRun(t, rev, "change", "approve", "CHG-1")
	if tt, ok := e.reg.Terminal("T4000004"); !ok || tt.Status != registry.TerminalPending {
		t.Errorf("T4000004 after import = %+v", tt)
	}
	if code, _, errs := e.run(t, op, "terminal", "import", filepath.Join(t.TempDir(), "missing.csv")); code != ExitError || !strings.Contains(errs, "missing.csv") {
		t.Errorf("missing file: exit %d, %s", code, errs)
	}
}

func TestCLIIncidentsAndAlerts(t *testing.T) {
	e := newEnv(t)
	req := t1Request()
	req.MerchantID = "000000000000002" // terminal swapped to another merchant
	if res := e.reg.Check(req); res.Reason != registry.ReasonMerchantMismatch {
		t.Fatalf("swap: %q", res.Reason)
	}
	out := e.mustRun(t, an, "incident", "list")
	if !strings.Contains(out, "INC-1") || !strings.Contains(out, "merchant-mismatch") || !strings.Contains(out, "DE42 000000000000002") {
		t.Errorf("incident list: %s", out)
	}
	if code, _, errs := e.run(t, an, "incident", "ack", "INC-1"); code != ExitError || !strings.Contains(errs, "403") {
		t.Errorf("analyst ack: exit %d %s", code, errs)
	}
	if out := e.mustRun(t, op, "incident", "ack", "INC-1", "--note", "calling"); !strings.Contains(out, "INC-1 acknowledged") {
		t.Errorf("ack: %s", out)
	}
	if out := e.mustRun(t, op, "incident", "resolve", "INC-1"); !strings.Contains(out, "INC-1 resolved") {
		t.Errorf("resolve: %s", out)
	}
	if out := e.mustRun(t, an, "incident", "list"); strings.Contains(out, "INC-1") {
		t.Errorf("open incidents after resolve: %s", out)
	}
	if out := e.mustRun(t, an, "incident", "list", "--status", "all"); !strings.Contains(out, "resolved") {
		t.Errorf("all incidents: %s", out)
	}

	// A rule that suspends is a change: in force only once another reviewer approves.
	out = e.mustRun(t, op, "alert-rule", "set", "sp-1h", "--threshold", "1h", "--kind", "softpos", "--action", "log", "--action", "suspend", "--reason", "lost phones")
	if !strings.Contains(out, "CHG-1 requested: alert-rule.put sp-1h") || !strings.Contains(out, "switchyard change approve CHG-1") {
		t.Errorf("suspend rule set: %s", out)
	}
	if out := e.mustRun(t, an, "alert-rule", "list"); strings.Contains(out, "sp-1h") {
		t.Errorf("suspend rule in force before review: %s", out)
	}
	if out := e.mustRun(t, rev, "change", "show", "CHG-1"); !strings.Contains(out, "alert-rule sp-1h:") || !strings.Contains(out, "lost phones") {
		t.Errorf("change show of the rule: %s", out)
	}
	e.mustRun(t, rev, "change", "approve", "CHG-1")
	out = e.mustRun(t, an, "alert-rule", "list")
	if !strings.Contains(out, "sp-1h") || !strings.Contains(out, "1h0m0s") || !strings.Contains(out, "kind=softpos status=active") || !strings.Contains(out, "log,suspend") {
		t.Errorf("alert-rule list: %s", out)
	}
	if code, _, errs := e.run(t, op, "alert-rule", "set", "bad", "--action", "page"); code != ExitError || !strings.Contains(errs, "400") {
		t.Errorf("bad action: exit %d %s", code, errs)
	}
	mon := registry.NewMonitor(e.reg, nil, registry.MonitorOptions{})
	if _, err := mon.RunOnce(context.Background(), t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	out = e.mustRun(t, an, "alert", "list")
	if !strings.Contains(out, "ALR-1") || !strings.Contains(out, "T0000002") || !strings.Contains(out, "never") || !strings.Contains(out, "2h0m0s") {
		t.Errorf("alert list: %s", out)
	}
	if tt, _ := e.reg.Terminal("T0000002"); tt.Status != registry.TerminalSuspended {
		t.Errorf("T0000002 after suspend action: %s", tt.Status)
	}
	if out := e.mustRun(t, op, "alert", "ack", "ALR-1"); !strings.Contains(out, "ALR-1 acknowledged") {
		t.Errorf("alert ack: %s", out)
	}
	// Undoing it is a change too (since 8 December 2026): deleted directly it is
	// refused; disabled through an approved change, it can be deleted.
	if code, _, errs := e.run(t, op, "alert-rule", "delete", "sp-1h"); code != ExitError || !strings.Contains(errs, "403") {
		t.Errorf("direct delete of a suspending rule: exit %d %s, want 403", code, errs)
	}
	out = e.mustRun(t, op, "alert-rule", "set", "sp-1h", "--threshold", "1h", "--kind", "softpos", "--action", "log", "--action", "suspend", "--disabled", "--reason", "phones found")
	if !strings.Contains(out, "CHG-2 requested") {
		t.Errorf("disabling a suspending rule: %s, want a change", out)
	}
	e.mustRun(t, rev, "change", "approve", "CHG-2")
	if out := e.mustRun(t, op, "alert-rule", "delete", "sp-1h"); !strings.Contains(out, "deleted") {
		t.Errorf("delete: %s", out)
	}
}

func TestCLIUsageAndAuth(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		cmd  []string
		code int
	}{
		{[]string{"frobnicate"}, ExitUsage},
		{[]string{"merchant"}, ExitUsage},
		{[]string{"merchant", "dance"}, ExitUsage},
		{[]string{"merchant", "freeze"}, ExitUsage},
		{[]string{"merchant", "freeze", "a", "b"}, ExitUsage},
		{[]string{"merchant", "change", "000000000000001"}, ExitUsage},
		{[]string{"terminal", "register", "T0000060"}, ExitUsage},
		{[]string{"terminal", "register", "T0000060", "--merchant", "000000000000001", "--kind", "pos", "--location", "x"}, ExitUsage},
		{[]string{"terminal", "list", "--bogus"}, ExitUsage},
		{[]string{"oplog", "--since", "soon"}, ExitUsage},
		{[]string{"help"}, ExitOK},
		{[]string{"change", "approve", "CHG-42"}, ExitError},
	}
	for _, c := range cases {
		code, out, errs := e.run(t, rev, c.cmd...)
		if code != c.code {
			t.Errorf("%s: exit %d, want %d\nstdout %s\nstderr %s", strings.Join(c.cmd, " "), code, c.code, out, errs)
		}
	}
	if code, _, errs := e.run(t, "", "merchant", "list"); code != ExitError || !strings.Contains(errs, "401") {
		t.Errorf("no token: exit %d %s", code, errs)
	}
	if code, _, errs := e.run(t, an, "terminal", "suspend", "T0000001"); code != ExitError || !strings.Contains(errs, "403") {
		t.Errorf("analyst suspending: exit %d %s", code, errs)
	}
}

// TestCLIAlertRuleZeroThreshold: "--threshold 0s" is refused, not turned into 24 h.
func TestCLIAlertRuleZeroThreshold(t *testing.T) {
	e := newEnv(t)
	code, _, errs := e.run(t, op, "alert-rule", "set", "now", "--threshold", "0s", "--merchant", "000000000000001")
	if code != ExitError || !strings.Contains(errs, "threshold 0s") {
		t.Errorf("--threshold 0s: exit %d, stderr %s", code, errs)
	}
	for _, r := range e.reg.AlertRules() {
		if r.ID == "now" {
			t.Errorf("rule stored with threshold %v", time.Duration(r.Threshold))
		}
	}
}

// TestCLITerminalsCSVRoundTrip writes terminals with every column set through
// `terminal list --csv`, imports the file into another registry, and finds the same
// terminals there: the way a fleet moves to a cluster (docs/cluster.md).
func TestCLITerminalsCSVRoundTrip(t *testing.T) {
	// Both registries look key references up: the ones a terminal names must exist,
	// except those the registry makes up for its own TPK and TAK.
	known := map[string]registry.KeyInfo{"T5000003.TMK": {Type: "TMK", Owner: "T5000003"}, "T5000003.TPK": {Type: "TPK", Owner: "T5000003"},
		"T5000002.TAK": {Type: "TAK", Owner: "T5000002"}, "BDK.5002": {Type: "BDK", Owner: "FFFF5002"}}
	opts := registry.Options{SeenFlushInterval: -1, Keys: func(id string) (registry.KeyInfo, error) {
		if k, ok := known[id]; ok {
			return k, nil
		}
		return registry.KeyInfo{}, fmt.Errorf("no key %s", id)
	}}
	a, b := newEnvWith(t, opts), newEnvWith(t, opts)
	file := filepath.Join(t.TempDir(), "in.csv")
	in := "terminal_id,merchant_id,kind,status,device_serial,iccid,imei,lat,lon,radius_m,networks,min_app_version,missing_policy,pin_mode,tmk,tpk,tak,bdk,mac_required,model,attest_max_age,attest_legacy\n" +
		"T5000001,000000000000002,pos,active,\"SN,50\"\"01\",89860000000000005001,860000000005001,39.9042,116.4074,750.5,10.0.0.0/8 192.168.1.7/32,1.2.3,flag,tpk,,,,,,PAX-A920,,\n" +
		"T5000002,000000000000002,softpos,pending,SP-5002,,860000000005002,31.2304,121.4737,5000,,2.1,decline,dukpt,,,T5000002.TAK,BDK.5002,true,Pixel-8,90s,true\n" +
		"T5000003,000000000000002,mpos,active,,,,,,,,,,tpk,T5000003.TMK,T5000003.TPK,,,false,,,\n" +
		"T5000004,000000000000002,pos,active,,,,,,,,,,dukpt,,T5000004/TPK,,BDK.5002,,,,\n" + // a TPK left from an earlier PIN mode
		"T5000005,000000000000002,softpos,active,SP-5005,,,,,,,,,dukpt,,,,BDK.5002,,,,\n" + // its TAK made up
		"T5000006,000000000000002,pos,active,,,,,,,,,,,,,,,,,,\n"
	if err := os.WriteFile(file, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	a.mustRun(t, op, "terminal", "import", file)
	a.mustRun(t, rev, "change", "approve", "CHG-1")
	a.mustRun(t, op, "terminal", "suspend", "T5000006", "--reason", "lost")
	a.mustRun(t, rev, "change", "approve", "CHG-2")

	out := a.mustRun(t, an, "terminal", "list", "--merchant", "000000000000002", "--csv")
	var rows []string
	for i, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if i == 0 || strings.HasPrefix(line, "T5") { // the header, and not the demo fleet's (b has them)
			rows = append(rows, line)
		}
	}
	if len(rows) != 7 || !strings.HasPrefix(rows[0], "terminal_id,merchant_id,kind,") {
		t.Fatalf("terminal list --csv:\n%s", out)
	}
	moved := filepath.Join(t.TempDir(), "moved.csv")
	if err := os.WriteFile(moved, []byte(strings.Join(rows, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := b.run(t, op, "terminal", "import", moved)
	if code != ExitError || !strings.Contains(out, "5 accepted, 1 rejected") || !strings.Contains(out, "T5000006  REJECTED") || !strings.Contains(out, "pending or active") {
		t.Fatalf("import of the written file (the suspended terminal refused): exit %d\n%s%s", code, out, errs)
	}
	b.mustRun(t, rev, "change", "approve", "CHG-1")
	for _, id := range []string{"T5000001", "T5000002", "T5000003", "T5000004", "T5000005"} {
		pa, _ := a.reg.Terminal(id)
		pb, ok := b.reg.Terminal(id)
		if !ok {
			t.Fatalf("%s not imported", id)
		}
		ta, tb := *pa, *pb // copies: the registry's own are not to be touched
		for _, x := range []*registry.Terminal{&ta, &tb} {
			x.CreatedAt, x.UpdatedAt, x.ActivatedAt, x.Note = time.Time{}, time.Time{}, time.Time{}, ""
		}
		ja, _ := json.Marshal(ta)
		jb, _ := json.Marshal(tb)
		if !bytes.Equal(ja, jb) {
			t.Errorf("%s moved:\n was %s\n now %s", id, ja, jb)
		}
	}
	if t2, _ := b.reg.Terminal("T5000002"); t2.Model != "Pixel-8" || time.Duration(t2.AttestMaxAge) != 90*time.Second || !t2.AttestLegacy || t2.Location == nil || t2.Location.RadiusM != 5000 {
		t.Errorf("T5000002's model, attestation and location not carried: %+v", t2)
	}
	if t1, _ := b.reg.Terminal("T5000001"); t1.Keys.TPK != "T5000001.TPK" || len(t1.AllowedNetworks) != 2 || t1.Location.RadiusM != 750.5 || t1.Binding.DeviceSerial != `SN,50"01` {
		t.Errorf("T5000001's made-up TPK, networks, radius or quoted serial not carried: %+v", t1)
	}
	if t4, _ := b.reg.Terminal("T5000004"); t4.Keys.TPK != "T5000004.TPK" {
		t.Errorf("T5000004's TPK left from an earlier PIN mode not carried: %+v", t4.Keys)
	}
	if t5, _ := b.reg.Terminal("T5000005"); t5.Keys.TAK != "T5000005.TAK" {
		t.Errorf("T5000005's made-up TAK not carried: %+v", t5.Keys)
	}
	// A key the registry did not make up is still looked up (another terminal's
	// name: the terminal's own conventional T5000007.TPK may be generated later).
	bad := filepath.Join(t.TempDir(), "bad.csv")
	if err := os.WriteFile(bad, []byte("terminal_id,merchant_id,kind,tpk\nT5000007,000000000000002,pos,T5000008.TPK\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := b.run(t, op, "terminal", "import", bad, "--dry-run"); code != ExitError || !strings.Contains(out, "no key T5000008.TPK") {
		t.Errorf("an unknown TPK imported: exit %d\n%s", code, out)
	}
	if code, _, errs := a.run(t, an, "terminal", "list", "--csv", "--json"); code != ExitUsage || !strings.Contains(errs, "not both") {
		t.Errorf("--csv with --json: exit %d, %s", code, errs)
	}
}

// TestCLIMerchantsCSV imports merchants from CSV (rejected rows reported, one change
// for the rest, approved by another person), writes them back with `merchant list
// --csv`, and imports that file into another registry: the same merchants.
func TestCLIMerchantsCSV(t *testing.T) {
	a, b := newEnv(t), newEnv(t)
	file := filepath.Join(t.TempDir(), "merchants.csv")
	in := "merchant_id,name,mcc,region,group,tier,rating,status,limit_txn,limit_daily,limit_monthly,limit_count\n" +
		"MX0000000000001,\"Noodles, Hall 3\",5812,CN-SH,noodle-co,standard,low,active,50000,2000000,30000000,400\n" +
		"MX0000000000002,Corner Shop,5411,CN-BJ,,micro,,pending,,,,\n" +
		"MX0000000000003,Bad MCC,58x2,CN-BJ,,micro,,,,,,\n" +
		"MX0000000000004,Bad limit,5411,CN-BJ,,micro,,,-5,,,\n" +
		"MX0000000000002,Twice,5411,CN-BJ,,micro,,,,,,\n" +
		"000000000000001,Exists already,5411,CN-BJ,,micro,,,,,,\n"
	if err := os.WriteFile(file, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := a.run(t, op, "merchant", "import", file, "--reason", "move to the cluster")
	if code != ExitError {
		t.Fatalf("import with rejected rows: exit %d, want %d\n%s%s", code, ExitError, out, errs)
	}
	for _, want := range []string{"2     MX0000000000001  ok", "3     MX0000000000002  ok", "4     MX0000000000003  REJECTED", "MCC", "5     MX0000000000004  REJECTED", "limit_txn",
		"6     MX0000000000002  REJECTED", "already appears on line 3", "7     000000000000001  REJECTED", "already exists", "2 accepted, 4 rejected.", "CHG-1 requested"} {
		if !strings.Contains(out, want) {
			t.Errorf("import output lacks %q:\n%s", want, out)
		}
	}
	if _, ok := a.reg.Merchant("MX0000000000001"); ok {
		t.Fatal("a merchant exists before the import is approved")
	}
	if code, _, _ := a.run(t, op, "change", "approve", "CHG-1"); code == ExitOK {
		t.Fatal("the requester approved its own import")
	}
	if out := a.mustRun(t, op, "change", "list"); !strings.Contains(out, "merchant.import") || !strings.Contains(out, "[2 merchants]") {
		t.Errorf("change list:\n%s", out)
	}
	a.mustRun(t, rev, "change", "approve", "CHG-1")
	m1, ok := a.reg.Merchant("MX0000000000001")
	if !ok || m1.Name != "Noodles, Hall 3" || m1.Group != "noodle-co" || m1.Rating != registry.RatingLow ||
		m1.Limits != (registry.Limits{PerTransaction: 50000, Daily: 2000000, Monthly: 30000000, DailyCount: 400}) {
		t.Fatalf("MX0000000000001 after the import: %+v", m1)
	}
	if m2, _ := a.reg.Merchant("MX0000000000002"); m2 == nil || m2.Status != registry.MerchantPending || m2.Rating != registry.RatingMedium {
		t.Fatalf("MX0000000000002 (defaults) after the import: %+v", m2)
	}
	if out := a.mustRun(t, an, "oplog", "--limit", "10"); !strings.Contains(out, "MX0000000000001") || !strings.Contains(out, "MX0000000000002") {
		t.Errorf("the oplog lacks a created merchant:\n%s", out)
	}

	out = a.mustRun(t, an, "merchant", "list", "--csv")
	var rows []string
	for i, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if i == 0 || strings.HasPrefix(line, "MX") { // the header, and not the demo fleet's (b has them)
			rows = append(rows, line)
		}
	}
	if len(rows) != 3 || rows[0] != strings.Join(registry.MerchantImportColumns, ",") {
		t.Fatalf("merchant list --csv:\n%s", out)
	}
	moved := filepath.Join(t.TempDir(), "moved.csv")
	if err := os.WriteFile(moved, []byte(strings.Join(rows, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b.mustRun(t, op, "merchant", "import", moved)
	b.mustRun(t, rev, "change", "approve", "CHG-1")
	for _, id := range []string{"MX0000000000001", "MX0000000000002"} {
		pa, _ := a.reg.Merchant(id)
		pb, ok := b.reg.Merchant(id)
		if !ok {
			t.Fatalf("%s not imported", id)
		}
		ma, mb := *pa, *pb
		for _, x := range []*registry.Merchant{&ma, &mb} {
			x.CreatedAt, x.UpdatedAt, x.Note = time.Time{}, time.Time{}, ""
		}
		if ma != mb {
			t.Errorf("%s moved:\n was %+v\n now %+v", id, ma, mb)
		}
	}
	if code, _, errs := a.run(t, an, "merchant", "list", "--csv", "--json"); code != ExitUsage || !strings.Contains(errs, "not both") {
		t.Errorf("--csv with --json: exit %d, %s", code, errs)
	}
	if code, out, _ := a.run(t, an, "merchant", "import", moved); code == ExitOK || strings.Contains(out, "requested") {
		t.Errorf("an analyst imported merchants: exit %d\n%s", code, out)
	}
}

// TestCLIChangeShowEscapesControls: a merchant registration whose reason carries
// escape sequences is refused (since 6 December 2026: the registry refuses control
// characters in reasons as in names), the error naming the code point without
// writing the bytes. A reason an older version stored with them is shown with them
// as visible escapes; --json keeps the bytes (JSON escapes them). Before, change
// show wrote the bytes, and the reviewer's terminal acted on them.
func TestCLIChangeShowEscapesControls(t *testing.T) {
	e := newEnv(t)
	const reason = "new\x1b]52;c;eA==\a\x1b[2J"
	code, out, errs := e.run(t, op, "merchant", "register", "000000000000077", "--name", "Night Market", "--mcc", "5812", "--region", "CN-GZ",
		"--tier", "micro", "--reason", reason)
	if code == ExitOK || !strings.Contains(errs, "U+001B") || !strings.Contains(errs, "reason") || strings.ContainsAny(out+errs, "\x1b\a") {
		t.Fatalf("register with escape sequences in its reason: exit %d\nstdout: %q\nstderr: %q\nwant refused, U+001B named, not written", code, out, errs)
	}
	// What an older version stored: the change as the API hands it out.
	stored := e.mustRun(t, op, "merchant", "register", "000000000000077", "--name", "Night Market", "--mcc", "5812", "--region", "CN-GZ",
		"--tier", "micro", "--reason", "new")
	if !strings.Contains(stored, "CHG-1 requested") {
		t.Fatalf("register: %q", stored)
	}
	pv, err := e.reg.GetChange("CHG-1")
	if err != nil {
		t.Fatal(err)
	}
	pv.Change.Reason = reason
	api := e.handler
	e.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/api/v1/changes/CHG-1" {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(pv)
			return
		}
		api.ServeHTTP(w, r)
	})
	out = e.mustRun(t, rev, "change", "show", "CHG-1")
	if strings.ContainsAny(out, "\x1b\a") || !strings.Contains(out, `: new\x1b]52;c;eA==\x07\x1b[2J`+"\n") {
		t.Fatalf("change show:\n%q", out)
	}
	if out := e.mustRun(t, rev, "change", "show", "CHG-1", "--json"); !strings.Contains(out, `new\u001b]52;c;eA==\u0007\u001b[2J`) {
		t.Fatalf("change show --json:\n%s", out)
	}
}

// TestCLIAlertRuleWebhookRedacted: alert-rule list (table and JSON), change show
// and oplog show an alert rule's webhook URL as its host and a fingerprint, never
// the path that carries a Slack-style secret; oplog verify still passes. Before,
// every role read the whole URL.
func TestCLIAlertRuleWebhookRedacted(t *testing.T) {
	hookKey := []byte("the webhook URL fingerprint key of the test")
	e := newEnvWith(t, registry.Options{SeenFlushInterval: -1, WebhookAllow: []string{"https://hooks.example.com/services/"}, WebhookURLKey: hookKey})
	const url1 = "https://hooks.example.com/services/T000/B000/XXXXSECRET1"
	const url2 = "https://hooks.example.com/services/T000/B000/XXXXSECRET2"
	noSecret := func(what, out string) {
		t.Helper()
		if strings.Contains(out, "XXXXSECRET") || strings.Contains(out, "/services/") {
			t.Errorf("%s shows the webhook URL's path: %s", what, out)
		}
	}
	noSecret("alert-rule set", e.mustRun(t, op, "alert-rule", "set", "hook", "--threshold", "1h", "--action", "webhook="+url1))
	out := e.mustRun(t, an, "alert-rule", "list")
	if !strings.Contains(out, "webhook=https://hooks.example.com/… (hmac:"+registry.WebhookFingerprint(hookKey, url1)+")") {
		t.Errorf("alert-rule list: %s; want the host and fingerprint", out)
	}
	noSecret("alert-rule list", out)
	noSecret("alert-rule list --json", e.mustRun(t, rev, "alert-rule", "list", "--json"))
	noSecret("suspend rule set", e.mustRun(t, op, "alert-rule", "set", "hook", "--threshold", "1h", "--action", "webhook="+url2, "--action", "suspend", "--reason", "suspend too"))
	out = e.mustRun(t, rev, "change", "show", "CHG-1")
	if !strings.Contains(out, registry.WebhookFingerprint(hookKey, url1)) || !strings.Contains(out, registry.WebhookFingerprint(hookKey, url2)) {
		t.Errorf("change show: %s; want both fingerprints", out)
	}
	noSecret("change show", out)
	e.mustRun(t, rev, "change", "approve", "CHG-1")
	noSecret("oplog", e.mustRun(t, an, "oplog", "--json"))
	if out := e.mustRun(t, an, "oplog", "verify"); !strings.Contains(out, "hash chain verified") {
		t.Errorf("oplog verify: %s", out)
	}
}
