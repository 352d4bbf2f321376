package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/bench"
)

// TestFaultBenchTiny runs `switchyard bench --faults` in a tiny configuration (a few
// seconds per phase) and checks the harness itself: it injects the outage and the kill,
// the switch comes back, and the reports carry the reconciliation and the targets. It
// does not judge the switch's figures: those are the fault bench's job.
func TestFaultBenchTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the fault bench for about 20 s")
	}
	bin := switchyardBinary(t)
	dir := t.TempDir()
	results := filepath.Join(dir, "results")
	cmd := exec.Command(bin, "bench", "--faults", "--rules", "../../rules", "--workdir", filepath.Join(dir, "work"), "--results", results,
		"--fault-rate", "100", "--conns", "2", "--terminals", "10", "--before", "3s", "--outage", "2s", "--after-outage", "4s",
		"--after-kill", "3s", "--settle", "3s")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("bench --faults: %v\n%s", err, out.String())
	}
	for _, want := range []string{"issuer outage", "kill -9 of the switch", "switch restarted", "faults and reconciliation", "targets:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	js, _ := filepath.Glob(filepath.Join(results, "*.json"))
	html, _ := filepath.Glob(filepath.Join(results, "*.html"))
	if len(js) != 1 || len(html) != 1 {
		t.Fatalf("reports: %v %v", js, html)
	}
	f, err := os.Open(js[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := bench.ReadResult(f)
	if err != nil {
		t.Fatal(err)
	}
	fr := r.Faults
	if r.Scenario != "faults" || fr == nil || !fr.Kill || fr.OutageMode != "down" {
		t.Fatalf("result: scenario %q, faults %+v", r.Scenario, fr)
	}
	if fr.Sent == 0 || fr.Answered == 0 || fr.IssuerApprovals == 0 || fr.RestartToApproval < 0 {
		t.Errorf("the load did not run through the kill: %+v", fr)
	}
	if len(r.Targets) != 8 || len(fr.Notes) == 0 {
		t.Errorf("targets %d, notes %q", len(r.Targets), fr.Notes)
	}
	page, err := os.ReadFile(html[0])
	if err != nil || !bytes.Contains(page, []byte("Faults and reconciliation")) {
		t.Errorf("HTML report without the fault section (%v)", err)
	}
}
