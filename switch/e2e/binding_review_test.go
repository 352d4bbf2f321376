package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/registry"
	"github.com/switchyard/switchyard/switch/termclient"
)

// TestGLNotANumberIsMalformed sends, over TCP, a location (DE 48 GL) that is not a
// number ("NaN", which strconv.ParseFloat reads and which no range comparison
// refuses). Until 6 December 2026 it passed the parse and was then counted as no
// location at all: a terminal of policy flag carried off its place was approved by
// sending it (and one of policy decline was refused identity-missing, which hid that
// a location had been sent). It is a format error, as any other malformed GL.
func TestGLNotANumberIsMalformed(t *testing.T) {
	f := startDemo(t, nil)
	bad := []string{"NaN,NaN", "nan,116.407400", "39.904200,NaN", " NaN , 0"}
	check := func(policy string) {
		t.Helper()
		for _, gl := range bad {
			if r := f.send(pos(1000, [2]string{"GL", gl})); r.RC != "30" || r.Reason != "de48-GL-malformed" {
				t.Errorf("policy %s, GL %q: rc %s rs %q, want 30 de48-GL-malformed", policy, gl, r.RC, r.Reason)
			}
		}
	}
	check("decline")
	f.requestAndApprove("terminal", "change", "T0000001", "--policy", "flag")
	check("flag")
	// The honest terminal at home is still approved under either policy.
	if r := f.send(pos(1000)); r.RC != "00" {
		t.Fatalf("honest terminal: %+v", r)
	}
}

// TestFlaggedIdentityMissingIsRecorded runs a terminal whose missing-identity policy
// is flag (accept a request without a bound identity or location) over TCP: the
// purchases without GL, or without DI, are approved, as the policy says, but each
// says so in its journal record (the received event's note names what was missing)
// and in switchyard_registry_flagged_total{missing}. Until 6 December 2026 the
// registry computed the flag and nothing read it: a terminal carried off its place
// that left GL out was approved without a trace an analyst could find.
func TestFlaggedIdentityMissingIsRecorded(t *testing.T) {
	f := startDemo(t, nil)
	f.requestAndApprove("terminal", "change", "T0000001", "--policy", "flag")
	noGL := f.send(pos(1000, [2]string{"GL", "-"}))
	noDI := f.send(pos(1100, [2]string{"DI", "-"}))
	home := f.send(pos(1200))
	for name, r := range map[string]termclient.Result{"without GL": noGL, "without DI": noDI, "at home": home} {
		if r.RC != "00" {
			t.Fatalf("%s: %+v, want 00 (policy flag)", name, r)
		}
	}
	note := func(rrn string) string {
		var n string
		for _, e := range f.record(rrn).Events {
			n += e.Note + "|"
		}
		return n
	}
	if n := note(noGL.RRN); !strings.Contains(n, "identity-missing") || !strings.Contains(n, "location") {
		t.Errorf("purchase without GL: events' notes %q name no missing location", n)
	}
	if n := note(noDI.RRN); !strings.Contains(n, "identity-missing") || !strings.Contains(n, "device") {
		t.Errorf("purchase without DI: events' notes %q name no missing device", n)
	}
	if n := note(home.RRN); strings.Contains(n, "identity-missing") {
		t.Errorf("purchase at home: events' notes %q flag it", n)
	}
	resp, err := http.Get("http://" + f.s.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`switchyard_registry_flagged_total{missing="location"} 1`, `switchyard_registry_flagged_total{missing="device"} 1`,
		`switchyard_registry_flagged_total{missing="sim"} 0`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestBindingDeclineTraceable sends, over TCP, a purchase and a refund from a terminal
// carried 1,067 km off its place, and a sign-on of it: each incident names the request
// it refused (MTI, processing code, type, STAN and, for a journaled request, the
// record's RRN), and the journal record of a refused purchase or refund says what the
// check found (the place reported and its distance), not only the reason. Until 6
// December 2026 an incident named no request (an analyst matched them by time) and the
// record only the reason: a refund attempt off the place looked like any decline.
func TestBindingDeclineTraceable(t *testing.T) {
	f := startDemo(t, nil)
	shanghai := [2]string{"GL", "31.230400,121.473700"}
	buy := f.send(pos(5000))
	if buy.RC != "00" {
		t.Fatalf("purchase at home: %+v", buy)
	}
	away := f.send(pos(1000, shanghai))
	refund := pos(2000, shanghai)
	refund.ProcCode, refund.RRN = message.PCRefund, buy.RRN
	ref := f.send(refund)
	for name, r := range map[string]termclient.Result{"purchase": away, "refund": ref} {
		if r.RC != "59" || r.Reason != "location-out-of-range" || r.RRN == "" {
			t.Fatalf("%s from Shanghai: %+v, want 59 location-out-of-range with an RRN", name, r)
		}
		var notes string
		for _, e := range f.record(r.RRN).Events {
			notes += e.Note + "|"
		}
		if !strings.Contains(notes, "31.230400,121.473700") || !strings.Contains(notes, "m from the registered place") {
			t.Errorf("%s: record's notes %q do not say where it was", name, notes)
		}
	}
	var incs []*registry.Incident
	waitFor(t, "two location incidents", func() bool {
		var err error
		incs, err = f.s.Registry.Incidents(registry.IncidentFilter{TerminalID: "T0000001", Reason: registry.ReasonLocationRange})
		return err == nil && len(incs) >= 2
	})
	got := map[string]registry.IncidentRequest{}
	for _, inc := range incs {
		got[inc.Request.RRN] = inc.Request
	}
	want := map[string]registry.IncidentRequest{
		away.RRN: {MTI: "0200", ProcCode: "000000", Type: "purchase", STAN: away.STAN, RRN: away.RRN},
		ref.RRN:  {MTI: "0200", ProcCode: message.PCRefund, Type: "refund", STAN: ref.STAN, RRN: ref.RRN},
	}
	for rrn, w := range want {
		if got[rrn] != w {
			t.Errorf("incident of %s names request %+v, want %+v", rrn, got[rrn], w)
		}
	}
}
