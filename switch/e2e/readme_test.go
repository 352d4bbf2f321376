package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/cli"
	"github.com/switchyard/switchyard/internal/syncbuf"
)

// readmeSection returns the text of the README section headed "## title", up to the next
// "## " heading.
func readmeSection(t *testing.T, title string) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "\n## "+title+"\n")
	if i < 0 {
		t.Fatalf("README.md has no section %q", title)
	}
	s = s[i+1:]
	if j := strings.Index(s[3:], "\n## "); j >= 0 {
		s = s[:j+3]
	}
	return s
}

// shBlocks returns the lines of each ```sh block of text.
func shBlocks(text string) [][]string {
	var blocks [][]string
	var cur []string
	in := false
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		l := sc.Text()
		switch {
		case !in && strings.HasPrefix(l, "```sh"):
			in, cur = true, nil
		case in && strings.HasPrefix(l, "```"):
			in = false
			blocks = append(blocks, cur)
		case in && strings.TrimSpace(l) != "":
			cur = append(cur, l)
		}
	}
	return blocks
}

// makeRecipe returns the first command of target's recipe in the Makefile.
func makeRecipe(t *testing.T, target string) string {
	t.Helper()
	b, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(target) + `:.*\n\t(.*)$`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatalf("the Makefile has no target %q with a recipe", target)
	}
	return m[1]
}

// TestReadmeStartHere runs the README's "Start here" as a new user would: `make run`'s
// command (from the Makefile) in a directory of its own, away from the checkout, with
// ports chosen by the test; then every line of the second block with the binary, each
// answer checked against what the line's comment promises (RC=nn), the journal against
// the answers. A line the test does not know fails it, so the README cannot drift from
// the code.
func TestReadmeStartHere(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess test")
	}
	sec := readmeSection(t, "Start here")
	blocks := shBlocks(sec)
	if len(blocks) != 2 {
		t.Fatalf("Start here has %d sh blocks; the test knows two (make targets, then the commands)", len(blocks))
	}
	// Every make target the section names exists; the build puts the binary where the
	// commands call it.
	for _, m := range regexp.MustCompile("(?m)`make ([a-z-]+)`|^make ([a-z-]+)").FindAllStringSubmatch(sec, -1) {
		makeRecipe(t, m[1]+m[2])
	}
	for _, l := range blocks[0] {
		if !strings.HasPrefix(l, "make ") {
			t.Fatalf("Start here, first block: %q is not a make target", l)
		}
	}
	if mk, _ := os.ReadFile("../../Makefile"); !regexp.MustCompile(`(?m)^BIN\s*:=\s*bin/switchyard$`).Match(mk) {
		t.Fatal("the Makefile does not build bin/switchyard, which Start here calls")
	}
	run := makeRecipe(t, "run")
	args, ok := strings.CutPrefix(run, "./$(BIN) ")
	if !ok || !strings.HasPrefix(args, "serve --demo") {
		t.Fatalf("make run is %q; the test knows ./$(BIN) serve --demo ...", run)
	}

	bin := switchyardBinary(t)
	home := t.TempDir() // no rules/ here: the built-in pack must do
	// make expands the recipe's variables ($(RUN_ARGS): empty unless given).
	var fields []string
	for _, f := range strings.Fields(args) {
		if !regexp.MustCompile(`^\$\([A-Z_]+\)$`).MatchString(f) {
			fields = append(fields, f)
		}
	}
	sargs := append(fields, "--data", filepath.Join(home, "data"),
		"--admin-addr", "127.0.0.1:0", "--listen", "ascii=127.0.0.1:0", "--listen", "binary-bitmap=127.0.0.1:0", "--listen", "cup=127.0.0.1:0")
	srv := exec.Command(bin, sargs...)
	srv.Dir = home
	srv.Env = cleanEnv()
	var banner, logs syncbuf.Buffer
	srv.Stdout, srv.Stderr = &logs, &banner
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	waited := make(chan struct{}) // closed once Wait returned, whoever took its error
	go func() { exited <- srv.Wait(); close(waited) }()
	t.Cleanup(func() {
		_ = srv.Process.Signal(syscall.SIGTERM)
		select {
		case <-waited:
		case <-time.After(30 * time.Second):
			_ = srv.Process.Kill()
			<-waited
		}
	})
	deadline := time.After(60 * time.Second)
	// The banner is written in several pieces; the switch logs that it serves after
	// the last one.
	for !strings.Contains(logs.String(), "serving: ") {
		select {
		case err := <-exited:
			t.Fatalf("%s exited (%v):\n%s\n%s", run, err, banner.String(), logs.String())
		case <-deadline:
			t.Fatalf("no banner within 60 s:\n%s", banner.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	b := banner.String()
	termAddr := regexp.MustCompile(`terminals \(ascii\):\s+(\S+)`).FindStringSubmatch(b)
	adminURL := regexp.MustCompile(`admin:\s+(http://\S+)`).FindStringSubmatch(b)
	if termAddr == nil || adminURL == nil {
		t.Fatalf("the banner does not say where the switch listens:\n%s", b)
	}
	if !strings.Contains(b, "rules: the default pack built into the binary (./rules does not exist)") {
		t.Errorf("the banner does not say which rules run:\n%s", b)
	}

	env := map[string]string{}
	rrns := map[string][]string{} // by terminal
	rcRe := regexp.MustCompile(`RC=(\d\d)`)
	for _, line := range blocks[1] {
		cmd, comment, _ := strings.Cut(line, " #")
		f := strings.Fields(cmd)
		if strings.ContainsAny(cmd, `"'$;|&<>`) {
			t.Fatalf("Start here: %q: the test splits commands on spaces only", line)
		}
		switch {
		case len(f) == 2 && f[0] == "export" && strings.Contains(f[1], "="):
			k, v, _ := strings.Cut(f[1], "=")
			env[k] = v
			if strings.HasSuffix(k, "TOKEN") && !strings.Contains(b, v) {
				t.Errorf("Start here exports %s=%s, a token the banner does not print", k, v)
			}
			continue
		case len(f) >= 2 && f[0] == "bin/switchyard":
		default:
			t.Fatalf("Start here: %q: the test knows export and bin/switchyard lines only", line)
		}
		cargs := f[1:]
		if f[1] == "term" {
			cargs = append(cargs, "--addr", termAddr[1])
		} else {
			cargs = append(cargs, "--admin", adminURL[1])
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		c := exec.CommandContext(ctx, bin, cargs...)
		c.Dir = home
		c.Env = cleanEnv()
		for k, v := range env {
			c.Env = append(c.Env, k+"="+v)
		}
		out, err := c.CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("Start here: %q: %v\n%s", line, err, out)
			continue
		}
		switch f[1] {
		case "term":
			want := rcRe.FindStringSubmatch(comment)
			if want == nil {
				t.Errorf("Start here: %q: its comment does not say the answer (RC=nn)", line)
				continue
			}
			got := rcRe.FindStringSubmatch(string(out))
			if got == nil || got[1] != want[1] {
				t.Errorf("Start here: %q promises RC=%s; the switch answered:\n%s", line, want[1], out)
			}
			rrn := regexp.MustCompile(`RRN=(\d{12})`).FindStringSubmatch(string(out))
			if rrn == nil {
				t.Errorf("Start here: %q: no RRN in the answer:\n%s", line, out)
				continue
			}
			if want[1] == "00" && !regexp.MustCompile(`AUTH=\w+`).Match(out) {
				t.Errorf("Start here: %q: approved without AUTH:\n%s", line, out)
			}
			tid := "T0000001"
			for i, a := range f {
				if a == "--tid" && i+1 < len(f) {
					tid = f[i+1]
				}
			}
			rrns[tid] = append(rrns[tid], rrn[1])
		case "journal":
			tid := ""
			for i, a := range f {
				if a == "--tid" && i+1 < len(f) {
					tid = f[i+1]
				}
			}
			if len(rrns[tid]) == 0 {
				t.Errorf("Start here: %q: no transaction of %q above to find", line, tid)
			}
			for _, r := range rrns[tid] {
				if !strings.Contains(string(out), r) {
					t.Errorf("Start here: %q: RRN %s is not in:\n%s", line, r, out)
				}
			}
			for _, pan := range regexp.MustCompile(`--pan (\d+)`).FindAllStringSubmatch(strings.Join(blocks[1], "\n"), -1) {
				if strings.Contains(string(out), pan[1]) {
					t.Errorf("Start here: %q shows the clear PAN %s", line, pan[1])
				}
			}
		default:
			t.Errorf("Start here: %q: the test does not know what %q answers", line, f[1])
		}
	}
}

// cleanEnv is the test's environment without SWITCHYARD_* variables.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SWITCHYARD_") {
			env = append(env, kv)
		}
	}
	return env
}

// TestReadmeExamples: the files under examples/ do what the README says of them: the
// fleet CSV passes a dry-run import, the components form the demo issuer's ZMK (the KCV
// the README gives); and oplog says when older entries exist beyond its default limit.
func TestReadmeExamples(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, ex := range []string{"examples/fleet.csv", "examples/zmk-components.txt"} {
		if !bytes.Contains(readme, []byte(ex)) {
			t.Errorf("the README no longer uses %s", ex)
		}
	}
	f := startDemo(t, nil)
	out, code := f.cli(tokOperator, "terminal", "import", "../../examples/fleet.csv", "--dry-run")
	if code != 0 || !strings.Contains(out, " 0 rejected") {
		t.Errorf("import examples/fleet.csv --dry-run: exit %d\n%s", code, out)
	}

	// The components' XOR (not a demo key: a value is never formed under a second
	// key ID, so components of demo.ZMK would be refused as bank-a.ZMK).
	file, err := os.ReadFile("../../examples/zmk-components.txt")
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 16)
	for _, line := range strings.Split(strings.TrimSpace(string(file)), "\n") {
		c, err := hex.DecodeString(strings.Fields(line)[0])
		if err != nil || len(c) != len(key) {
			t.Fatalf("examples/zmk-components.txt: line %q", line)
		}
		for i := range key {
			key[i] ^= c[i]
		}
	}
	kcvOut, code := cliLocal("hsm", "kcv", "--key", strings.ToUpper(hex.EncodeToString(key)))
	kcv := strings.TrimSpace(kcvOut)
	if code != 0 || !bytes.Contains(readme, []byte("combined "+kcv)) {
		t.Errorf("the components combine to KCV %q (exit %d); the README's keys import line does not say so", kcv, code)
	}
	comps, err := os.Open("../../examples/zmk-components.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer comps.Close()
	var sout, serr bytes.Buffer
	code = cli.Main(&cli.Env{Stdin: comps, Stdout: &sout, Stderr: &serr, Getenv: func(string) string { return "" }},
		[]string{"keys", "import", "--type", "ZMK", "--id", "bank-a.ZMK", "--components", "2", "--admin", "http://" + f.s.AdminAddr(), "--token", tokAdmin})
	if code != 0 || !strings.Contains(sout.String(), "combined KCV: "+kcv) {
		t.Errorf("keys import < examples/zmk-components.txt: exit %d, want combined KCV %s\n%s%s", code, kcv, sout.String(), serr.String())
	}

	out, code = f.cli(tokOperator, "oplog")
	if code != 0 || !strings.Contains(out, "the newest 100 entries; --limit N for more") {
		t.Errorf("oplog over the demo fleet's 2,009 entries does not say it shows the newest 100 (exit %d):\n%.300s", code, out[max(0, len(out)-300):])
	}
	if out, _ := f.cli(tokOperator, "oplog", "--limit", "5000"); strings.Contains(out, "the newest") {
		t.Errorf("oplog --limit 5000 shows every entry but says there are more")
	}
}

// TestReadmeRiskRules runs the `switchyard rules check|test|backtest` lines of the
// README's "Risk rules" block as written (the block's `candidates/next/` a copy of rules/)
// against a demo switch that has journaled a purchase: each must exit 0, and the
// backtest must report on that traffic. A flag the README shows and the command does
// not take, or one it needs and the README leaves out, fails it.
func TestReadmeRiskRules(t *testing.T) {
	sec := readmeSection(t, "Commands")
	i := strings.Index(sec, "\n### Risk rules\n")
	if i < 0 {
		t.Fatal("README.md has no section Risk rules under Commands")
	}
	blocks := shBlocks(sec[i:])
	if len(blocks) == 0 {
		t.Fatal("Risk rules has no sh block")
	}
	candidate := t.TempDir()
	files, err := filepath.Glob("../../rules/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("rule files: %v %v", files, err)
	}
	for _, src := range files {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(candidate, filepath.Base(src)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	f := startDemo(t, nil)
	if r := f.send(pos(1000)); r.RC != "00" {
		t.Fatalf("purchase: RC %s", r.RC)
	}
	ran := map[string]bool{}
	for _, line := range blocks[0] {
		cmd, _, _ := strings.Cut(line, " #")
		fs := strings.Fields(cmd)
		if len(fs) < 3 || fs[0] != "switchyard" || fs[1] != "rules" || !map[string]bool{"check": true, "test": true, "backtest": true}[fs[2]] {
			continue
		}
		if strings.ContainsAny(cmd, `"'$;|&<>`) {
			t.Fatalf("Risk rules: %q: the test splits commands on spaces only", line)
		}
		args := append([]string(nil), fs[1:]...)
		for j, a := range args {
			switch strings.TrimSuffix(a, "/") {
			case "rules":
				if j > 0 { // the directory, not the command
					args[j] = "../../rules"
				}
			case "candidates/next":
				args[j] = candidate
			}
		}
		var out string
		var code int
		if fs[2] == "backtest" { // reads the running switch's journal
			out, code = f.cli(tokAnalyst, append(args, "--no-progress")...)
		} else { // no switch needed: these take no --admin
			out, code = cliLocal(args...)
		}
		if code != 0 {
			t.Errorf("Risk rules: %q: exit %d\n%s", line, code, out)
			continue
		}
		if fs[2] == "backtest" && (!strings.Contains(out, "Backtest of "+candidate) || strings.Contains(out, "No transactions from")) {
			t.Errorf("Risk rules: %q does not report on the last day's purchase:\n%s", line, out)
		}
		ran[fs[2]] = true
	}
	for _, c := range []string{"check", "test", "backtest"} {
		if !ran[c] {
			t.Errorf("Risk rules: no `switchyard rules %s` line ran", c)
		}
	}
}
