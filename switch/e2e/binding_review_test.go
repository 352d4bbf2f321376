package e2e

import (
	"testing"
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
