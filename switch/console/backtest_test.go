package console

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/risk"
)

// noHistory is a journal without transactions, for backtests that need one.
type noHistory struct{}

func (noHistory) Range(context.Context, time.Time, time.Time, func(risk.Record) error) error {
	return nil
}

func (noHistory) ByRRN(_ context.Context, rrn string) (risk.Record, error) {
	return risk.Record{}, risk.ErrNotFound
}

// TestBacktestCandidateConfined: the rules page's backtest reads a candidate
// rule directory only under the candidates directory (risk.candidates_dir),
// named by its name there or its absolute path. A directory elsewhere on the
// switch's machine, a name climbing out with "..", a symlink leading out, and a
// path that does not exist all get one refusal, the same but for the name
// typed; a rule file that is a symlink to a file outside is not read. No
// refusal quotes the outside file. Before, any directory the switch could read
// was loaded, every *.yaml in it parsed as a rule file, and the parse error
// quoted its first scalar ("cannot unmarshal !!str `s3cr3t-...`"), while the
// refusal of a path told whether it existed and was a directory.
func TestBacktestCandidateConfined(t *testing.T) {
	f := newFixture(t)
	eng, err := risk.New(t.TempDir(), risk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	f.con.o.Risk, f.con.o.History = eng, noHistory{}
	root := filepath.Join(t.TempDir(), "candidates")
	f.con.o.CandidatesDir = root
	const secret = "s3cr3t-admin-token-value"
	outside := t.TempDir()
	mk := func(dir, name, content string) {
		t.Helper()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mk(filepath.Join(outside, "conf"), "tokens.yaml", "rules: "+secret+"\n")
	mk(filepath.Join(root, "next"), "10-big.yaml", "rules:\n  - {id: big, condition: \"txn.amount > 500000\", action: decline}\n")
	if err := os.Symlink(filepath.Join(outside, "conf"), filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "linked"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "conf", "tokens.yaml"), filepath.Join(root, "linked", "10-tokens.yaml")); err != nil {
		t.Fatal(err)
	}
	relOut, err := filepath.Rel(root, filepath.Join(outside, "conf"))
	if err != nil {
		t.Fatal(err)
	}

	an := f.client()
	f.login(t, an, "analyst", "analyst-demo-pw")
	refusal := func(dir string) string {
		t.Helper()
		resp := f.postForm(t, an, "/console/rules", "/console/rules/backtest", url.Values{"dir": {dir}, "hours": {"1"}})
		loc, err := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusSeeOther || err != nil {
			t.Fatalf("backtest of %q: %d %q", dir, resp.StatusCode, resp.Header.Get("Location"))
		}
		return loc.Query().Get("err")
	}
	var first string
	for _, dir := range []string{
		filepath.Join(outside, "conf"),             // a directory elsewhere
		filepath.Join(outside, "nosuch"),           // one that does not exist
		filepath.Join(root, "..", "x"),             // climbing out, absolute
		relOut,                                     // climbing out, relative
		"escape",                                   // a symlink leading out
		filepath.Join(root, "next", "10-big.yaml"), // a file under the root
		"nosuch", ".", "",                          // nothing, the root itself
	} {
		msg := refusal(dir)
		if msg == "" || strings.Contains(msg, "s3cr3t") {
			t.Fatalf("backtest of %q: refusal %q, want one that quotes nothing of the outside file", dir, msg)
		}
		same := strings.Replace(msg, `"`+dir+`"`, `"DIR"`, 1)
		if first == "" {
			first = same
			if !strings.Contains(msg, root) || !strings.Contains(msg, "risk.candidates_dir") {
				t.Errorf("refusal %q does not say where candidates go", msg)
			}
		} else if same != first {
			t.Errorf("backtest of %q: refusal %q differs from the others' %q: it tells what exists", dir, same, first)
		}
	}
	if msg := refusal("linked"); !strings.Contains(msg, "10-tokens.yaml") || !strings.Contains(msg, "escapes") || strings.Contains(msg, "s3cr3t") {
		t.Errorf("backtest of a candidate whose rule file links outside: refusal %q, want the file refused unread", msg)
	}
	if f.con.backtest.view().Started != (time.Time{}) {
		t.Fatal("a refused candidate started a backtest")
	}

	if _, body := get(t, an, f.srv.URL+"/console/rules"); !strings.Contains(body, `id="bt-root"`) || !strings.Contains(body, root) {
		t.Error("the rules page does not say where candidates go")
	}
	for _, dir := range []string{"next", filepath.Join(root, "next")} {
		resp := f.postForm(t, an, "/console/rules", "/console/rules/backtest", url.Values{"dir": {dir}, "hours": {"1"}})
		if loc := resp.Header.Get("Location"); !strings.Contains(loc, "msg=backtest") {
			t.Fatalf("backtest of %q: %q, want it started", dir, loc)
		}
		f.con.backtest.wg.Wait()
		if v := f.con.backtest.view(); v.Error != "" || v.Report == nil || v.Dir != filepath.Join(root, "next") {
			t.Fatalf("backtest of %q: %+v", dir, v)
		}
	}
	f.con.o.CandidatesDir = filepath.Join(outside, "none")
	if msg := refusal("next"); !strings.Contains(msg, "cannot be read: create it") {
		t.Errorf("without a candidates directory: %q", msg)
	}
}
