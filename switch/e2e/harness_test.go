package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/cli"
	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/internal/testswitch"
	"github.com/switchyard/switchyard/switch/issuersim"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/server"
	"github.com/switchyard/switchyard/switch/termclient"
)

const (
	tokOperator  = "demo-operator-7Kq2"
	tokReviewer  = "demo-reviewer-3Xm9"
	tokReviewer2 = "demo-reviewer2-Lp4w"
	tokAnalyst   = "demo-analyst-8Rt5"
	tokAdmin     = "demo-admin-1Hz6"
)

type fixture struct {
	t    *testing.T
	s    *server.Server
	dir  string
	logs *testswitch.SyncBuffer
	c    *termclient.Client
}

func demoConfig(t *testing.T, dir string) *config.Config {
	return testswitch.DemoConfig(t, dir, "../../rules")
}

// middayZone names a time zone (a whole-hour offset) in which now is between 11:00
// and 13:00, for tests that must not meet the rules' night hours.
func middayZone(now time.Time) string {
	off := 12 - now.UTC().Hour() // -11 .. +12
	// The Etc zones have POSIX signs: Etc/GMT-8 is eight hours ahead of UTC.
	switch {
	case off == 0:
		return "Etc/GMT"
	case off > 0:
		return fmt.Sprintf("Etc/GMT-%d", off)
	default:
		return fmt.Sprintf("Etc/GMT+%d", -off)
	}
}

// middayRules copies the repository's rules to a temporary directory, with their time
// zone replaced by middayZone(now).
func middayRules(t *testing.T, now time.Time) string {
	t.Helper()
	dir := t.TempDir()
	files, err := filepath.Glob("../../rules/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("rule files: %v %v", files, err)
	}
	zoned := false
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if zone := regexp.MustCompile(`(?m)^timezone: .*$`); zone.Match(b) {
			b = zone.ReplaceAll(b, []byte("timezone: "+middayZone(now)))
			zoned = true
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if !zoned {
		t.Fatal("no rule file sets the time zone")
	}
	return dir
}

// demoIssuer is the server option of the demo wiring: the demo issuer simulator,
// started and closed with the server (the server does not import the simulator).
var demoIssuer = cli.DemoIssuer()

// sim is the demo issuer simulator of the fixture's switch.
func (f *fixture) sim() *issuersim.Sim { return f.s.DemoIssuer().(*issuersim.Demo).Sim }

func startDemo(t *testing.T, mutate func(*config.Config)) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir(), logs: &testswitch.SyncBuffer{}}
	c := demoConfig(t, f.dir)
	if mutate != nil {
		mutate(c)
		c.ApplyDefaults()
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	s, err := server.New(c, zerolog.New(f.logs), demoIssuer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	f.s = s
	f.c, err = termclient.Dial(s.ListenerAddr("ascii"), message.DialectASCII, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.c.Close() })
	return f
}

// send sends tx on the fixture's connection and decodes the answer.
func (f *fixture) send(tx termclient.Txn) termclient.Result {
	f.t.Helper()
	return sendOn(f.t, f.c, tx, nil)
}

func sendOn(t *testing.T, c *termclient.Client, tx termclient.Txn, mac message.MACFunc) termclient.Result {
	t.Helper()
	m, err := termclient.Build(tx, message.DialectASCII)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := c.Send(ctx, m, mac)
	if err != nil {
		t.Fatal(err)
	}
	r, err := termclient.Decode(resp)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// cli runs a switchyard command against the fixture's admin API.
func (f *fixture) cli(token string, args ...string) (string, int) {
	f.t.Helper()
	var out, errb bytes.Buffer
	args = append(args, "--admin", "http://"+f.s.AdminAddr(), "--token", token)
	code := cli.Main(&cli.Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}, args)
	return out.String() + errb.String(), code
}

// cliLocal runs a switchyard command that needs no switch.
func cliLocal(args ...string) (string, int) {
	var out, errb bytes.Buffer
	code := cli.Main(&cli.Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}, args)
	return out.String() + errb.String(), code
}

// changeID finds "CHG-n" in a CLI answer.
func changeID(t *testing.T, out string) string {
	t.Helper()
	i := strings.Index(out, "CHG-")
	if i < 0 {
		t.Fatalf("no change ID in %q", out)
	}
	j := i + 4
	for j < len(out) && out[j] >= '0' && out[j] <= '9' {
		j++
	}
	return out[i:j]
}

// requestAndApprove requests a change as the operator and approves it as a reviewer.
func (f *fixture) requestAndApprove(args ...string) {
	f.t.Helper()
	out, code := f.cli(tokOperator, args...)
	if code != 0 {
		f.t.Fatalf("%v: %s", args, out)
	}
	id := changeID(f.t, out)
	if out, code := f.cli(tokReviewer, "change", "approve", id); code != 0 {
		f.t.Fatalf("approve %s: %s", id, out)
	}
}

var t1Identity = [][2]string{{"DI", "SN-T0000001"}, {"SI", "89860000000000000001"}, {"IM", "860000000000001"}, {"GL", "39.904200,116.407400"}, {"AV", "1.0.0"}}

// pos returns a purchase from T0000001 with its identity; edit changes one tag.
func pos(amount int64, edit ...[2]string) termclient.Txn {
	tags := append([][2]string(nil), t1Identity...)
	for _, e := range edit {
		found := false
		for i := range tags {
			if tags[i][0] == e[0] {
				found = true
				if e[1] == "-" {
					tags = append(tags[:i], tags[i+1:]...)
				} else {
					tags[i][1] = e[1]
				}
				break
			}
		}
		if !found && e[1] != "-" {
			tags = append(tags, e)
		}
	}
	return termclient.Txn{PAN: "4761739001010119", Amount: amount, Expiry: "2912", TID: "T0000001", MID: "000000000000001", TLV: tags}
}

var _ = io.Discard
