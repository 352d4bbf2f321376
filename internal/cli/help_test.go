package cli

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
)

// fakeAdmin is an admin API that records every call and answers each with answer
// (nil: 500), for tests that check what a command sends, or that it sends nothing.
type fakeAdmin struct {
	*httptest.Server
	mu    sync.Mutex
	calls []string // "METHOD /path?query", in order
}

// newFakeAdmin is a fake admin API answering with answer (nil: every call is an
// error), and GET /api/v1/info with the zone Asia/Shanghai.
func newFakeAdmin(t *testing.T, answer http.HandlerFunc) *fakeAdmin {
	t.Helper()
	f := &fakeAdmin{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.calls = append(f.calls, r.Method+" "+r.URL.RequestURI()+" auth="+r.Header.Get("Authorization"))
		f.mu.Unlock()
		if answer == nil {
			http.Error(w, `{"error":"the fake admin API takes no calls"}`, http.StatusInternalServerError)
			return
		}
		// The fake switch is in the CLI's default zone: the commands that read dates
		// ask it first (switchZone).
		if r.Method == http.MethodGet && r.URL.Path == "/api/v1/info" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"version":"test","timezone":"Asia/Shanghai"}`))
			return
		}
		answer(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAdmin) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// runCLI runs the switchyard command line args in-process with the environment
// variables vars (and no others) and returns the exit code and both streams.
func runCLI(t *testing.T, vars map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Ctx: context.Background(),
		Getenv: func(k string) string { return vars[k] }}
	code := Main(env, args)
	return code, out.String(), errb.String()
}

// TestHelpOnEveryCommand walks the command table: "X -h", "X --help" and, for every
// subcommand, "X Y -h" exit 0 with the usage on stdout and make no call to the admin
// API (before, "merchant -h" was "unknown subcommand" and "zone-key-change -h" asked
// the switch for a key change for an issuer named -h).
func TestHelpOnEveryCommand(t *testing.T) {
	api := newFakeAdmin(t, nil)
	vars := map[string]string{"SWITCHYARD_ADMIN": api.URL, "SWITCHYARD_TOKEN": "tok"}
	var names []string
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) < 15 {
		t.Fatalf("only %d commands registered: %v", len(names), names)
	}
	var lines [][]string
	for _, n := range names {
		lines = append(lines, []string{n, "-h"}, []string{n, "--help"})
		for _, sub := range commands[n].subs {
			lines = append(lines, []string{n, sub, "-h"})
		}
	}
	for _, args := range lines {
		code, out, errs := runCLI(t, vars, args...)
		line := strings.Join(args, " ")
		if code != 0 {
			t.Errorf("switchyard %s: exit %d, want 0\nstdout: %s\nstderr: %s", line, code, out, errs)
			continue
		}
		if !strings.Contains(strings.ToLower(out), "usage") {
			t.Errorf("switchyard %s: no usage on stdout\nstdout: %s\nstderr: %s", line, out, errs)
		}
	}
	// A stray word before -h: the flag package stops at it and never sees the -h;
	// journal, settle, bench and issuer-sim then ran (bench a whole bench). A usage
	// error (2) or the help (0) are both fine; acting is not.
	// (A command that acted without the admin API, serve or a simulator, would not
	// return: the test's timeout says so.)
	var strays [][]string
	for _, n := range names {
		strays = append(strays, []string{n, "stray", "-h"})
		for _, sub := range commands[n].subs {
			strays = append(strays, []string{n, sub, "stray", "-h"})
		}
	}
	for _, args := range strays {
		code, out, errs := runCLI(t, vars, args...)
		if code != 0 && code != 2 {
			t.Errorf("switchyard %s: exit %d, want 0 or 2\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
		}
	}
	if calls := api.Calls(); len(calls) > 0 {
		t.Errorf("help called the admin API: %q", calls)
	}
	// A subcommand's help is its own lines of the group's page.
	for line, want := range map[string]string{"merchant report": "switchyard merchant report ID", "keys rotate": "rotate --id ID", "terminal suspend": "activate|suspend|resume|close"} {
		_, out, _ := runCLI(t, vars, append(strings.Fields(line), "-h")...)
		if !strings.Contains(out, want) || strings.Count(out, "\n") > 12 {
			t.Errorf("switchyard %s -h: want its own lines (%q), got:\n%s", line, want, out)
		}
	}
}

// TestTermKindHelp: "term KIND -h" describes the flags that transaction reads and
// only names the others (it listed all 31 for every transaction); an unknown
// transaction is a usage error.
func TestTermKindHelp(t *testing.T) {
	for kind, c := range map[string]struct{ has, hasNot string }{
		"settle":     {"-totals string", "card number"},
		"purchase":   {"card number", "-totals string"},
		"reversal":   {"-original string", "-order string"},
		"qr-inquiry": {"-order string", "card number"},
	} {
		code, out, errs := runCLI(t, nil, "term", kind, "-h")
		all := out + errs
		if code != 0 || !strings.Contains(all, c.has) || strings.Contains(all, c.hasNot) || !strings.Contains(all, "Accepted, not read by "+kind) {
			t.Errorf("term %s -h: exit %d, want %q described and %q not:\n%s", kind, code, c.has, c.hasNot, all)
		}
	}
	for kind := range termKindFlags {
		if !slices.Contains(termKinds, kind) {
			t.Errorf("termKindFlags names %q, not a transaction", kind)
		}
	}
	for _, kind := range termKinds {
		if _, ok := termKindFlags[kind]; !ok {
			t.Errorf("transaction %q has no entry in termKindFlags", kind)
		}
	}
	if code, out, errs := runCLI(t, nil, "term", "bogus", "-h"); code != 2 || !strings.Contains(out+errs, "unknown transaction") {
		t.Errorf("term bogus -h: exit %d, output %q; want 2 and the transactions", code, out+errs)
	}
	if code, _, errs := runCLI(t, nil, "term", "bogus"); code != 2 || !strings.Contains(errs, "unknown transaction") {
		t.Errorf("term bogus: exit %d, stderr %q; want 2 and the transactions", code, errs)
	}
}

// TestAdminFromEnvironment: $SWITCHYARD_ADMIN is where the commands go when --admin is
// not given, beside $SWITCHYARD_TOKEN; --admin wins over it.
func TestAdminFromEnvironment(t *testing.T) {
	api := newFakeAdmin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("[]\n"))
	})
	vars := map[string]string{"SWITCHYARD_ADMIN": api.URL, "SWITCHYARD_TOKEN": "env-token"}
	for _, args := range [][]string{{"merchant", "list"}, {"keys", "list"}, {"case", "list"}, {"settle", "--date", "2026-01-02"}} {
		before := len(api.Calls())
		code, out, errs := runCLI(t, vars, args...)
		calls := api.Calls()[before:]
		if len(calls) == 0 || !strings.HasSuffix(calls[0], "auth=Bearer env-token") {
			t.Errorf("switchyard %s: calls %q (exit %d, stdout %q, stderr %q), want a call to $SWITCHYARD_ADMIN with $SWITCHYARD_TOKEN",
				strings.Join(args, " "), calls, code, out, errs)
		}
	}
	// --admin wins: nothing reaches the environment's URL.
	other := newFakeAdmin(t, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("[]\n")) })
	before := len(api.Calls())
	if code, _, errs := runCLI(t, vars, "merchant", "list", "--admin", other.URL); code != 0 {
		t.Fatalf("merchant list --admin: exit %d: %s", code, errs)
	}
	if len(api.Calls()) != before || len(other.Calls()) != 1 {
		t.Errorf("--admin did not win over $SWITCHYARD_ADMIN: env URL got %q, --admin URL got %q", api.Calls()[before:], other.Calls())
	}
}

// TestSettleBadDate: a --date that is not a day is a usage error (2), said before
// anything is asked of the switch; it was exit 1 with the server's 400.
func TestSettleBadDate(t *testing.T) {
	api := newFakeAdmin(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":"bad date"}`, http.StatusBadRequest)
	})
	vars := map[string]string{"SWITCHYARD_ADMIN": api.URL, "SWITCHYARD_TOKEN": "t"}
	for _, d := range []string{"2026-13-01", "yesterday", "2026/12/04", "2026-12-4"} {
		code, _, errs := runCLI(t, vars, "settle", "--date", d)
		if code != 2 || !strings.Contains(errs, "YYYY-MM-DD") {
			t.Errorf("settle --date %s: exit %d, stderr %q; want 2 and the format", d, code, errs)
		}
	}
	if calls := api.Calls(); len(calls) > 0 {
		t.Errorf("a bad date reached the switch: %q", calls)
	}
}

// TestConfigClusterUnknownSubcommand: `config FILE` (check left out) and `cluster
// stats` name the word they did not know and what they want, before the usage, and
// exit 2; they printed the usage alone, and an operator who typed `config
// node1.yaml` was not told what was wrong.
func TestConfigClusterUnknownSubcommand(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"config", "node1.yaml"}, `config: unknown subcommand "node1.yaml" (want check: switchyard config check --config FILE)`},
		{[]string{"cluster", "stats"}, `cluster: unknown subcommand "stats" (want status, compact, import or remove-peer)`},
	} {
		code, out, errs := runCLI(t, nil, c.args...)
		if code != 2 || out != "" || !strings.Contains(errs, c.want) || !strings.Contains(errs, "Usage:") {
			t.Errorf("%v: exit %d, want 2 and %q\nstdout %q\nstderr %s", c.args, code, c.want, out, errs)
		}
	}
	for _, args := range [][]string{{"config"}, {"cluster"}} {
		if code, _, errs := runCLI(t, nil, args...); code != 2 || strings.Contains(errs, "unknown subcommand") {
			t.Errorf("%v: exit %d\n%s", args, code, errs)
		}
	}
}
