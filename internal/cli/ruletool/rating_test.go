package ruletool

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRatingPolicyTested: `rules test` runs the rating policy's tests beside the
// rules', and a failing one fails the run.
func TestRatingPolicyTested(t *testing.T) {
	code, out, _ := run(t, ToolEnv{}, "test", "../../../rules", "-v", "--run", "^rating-policy$")
	if code != ExitOK || !strings.Contains(out, "ok   rating-policy / an old, busy, clean grocery") {
		t.Fatalf("default pack: %d\n%s", code, out)
	}
	dir := rulesDir(t, map[string]string{"a.yaml": bigRound})
	os.Mkdir(filepath.Join(dir, "rating"), 0o755)
	policy, err := os.ReadFile("../../../rules/rating/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(policy), "    expect: E\n", "    expect: A\n", 1)
	if err := os.WriteFile(RatingPolicyFile(dir), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ = run(t, ToolEnv{}, "test", dir)
	if code != ExitProblems || !strings.Contains(out, "FAIL rating-policy / many declines (") || !strings.Contains(out, "want A") {
		t.Fatalf("failing policy test: %d\n%s", code, out)
	}
}
