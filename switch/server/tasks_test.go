package server

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/internal/testswitch"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/sched"
)

// TestConfiguredTasks: tasks of the configuration are scheduled with the built-in
// one; the settlement task writes the day's file; a task that fails is recorded
// failed and raises the alert (log line and gauge).
func TestConfiguredTasks(t *testing.T) {
	dir := t.TempDir()
	c := demoConfig(t, dir)
	loc, _ := time.LoadLocation(c.Timezone)
	today := time.Now().In(loc).Format("2006-01-02")
	out := filepath.Join(dir, "out")
	c.Tasks = []config.Task{
		{Name: "settle", Kind: TaskSettlementFile, Schedule: "15 0 * * *", Params: map[string]string{"dir": out, "date": today}},
		{Name: "zpk", Kind: TaskKeyRotate, Schedule: "@weekly", Params: map[string]string{"keys": "nosuch.ZPK"}}, // no such key: fails
	}
	logs := &testswitch.SyncBuffer{}
	s := start(t, c, logs)
	cl := dial(t, s, "ascii", message.DialectASCII)
	if r := send(t, cl, message.DialectASCII, purchase(testCard(1), 1234)); r.RC != "00" {
		t.Fatalf("purchase: %+v", r)
	}
	names := map[string]bool{}
	for _, v := range s.Tasks.List() {
		names[v.Name] = v.Error == ""
	}
	if !names["settle"] || !names["zpk"] || !names["profiles-refresh"] {
		t.Fatalf("tasks: %v", names)
	}
	ctx := context.Background()
	r, err := s.Tasks.RunNow(ctx, "settle", "test")
	if err != nil || r.Outcome != sched.OutcomeOK {
		t.Fatalf("settle: %+v %v", r, err)
	}
	b, err := os.ReadFile(filepath.Join(out, "settlement-"+today+".csv"))
	if err != nil || !strings.Contains(string(b), "T0000001") || !strings.Contains(string(b), "1234") {
		t.Fatalf("settlement file: %v\n%s", err, b)
	}
	r, err = s.Tasks.RunNow(ctx, "zpk", "test")
	if err != nil || r.Outcome != sched.OutcomeFailed || !strings.Contains(r.Error, "nosuch.ZPK") {
		t.Fatalf("zpk: %+v %v", r, err)
	}
	if !strings.Contains(logs.String(), "ALERT: scheduled task failed") {
		t.Fatal("no alert logged for the failed task")
	}
	for _, v := range s.Tasks.List() {
		if v.Name == "zpk" && !v.Failing {
			t.Fatalf("zpk not shown failing: %+v", v)
		}
	}
}

// TestTaskParamsChecked: a task whose params its kind does not take, or whose run
// would refuse them, is refused when it is defined (in the configuration: the start;
// put through the API: the request), naming the task and the parameter, not at its
// first run (or never, for a misspelt parameter its run ignored).
func TestTaskParamsChecked(t *testing.T) {
	s := start(t, demoConfig(t, t.TempDir()), nil)
	for _, c := range []struct {
		kind   string
		params map[string]string
		want   string // "" for a task that is taken
	}{
		{TaskSettlementFile, map[string]string{"dir": "/srv/settlement", "date": "2026-12-01"}, ""},
		{TaskSettlementFile, map[string]string{"date": "2026-13-45"}, `params.date: date "2026-13-45": want YYYY-MM-DD`},
		{TaskSettlementFile, map[string]string{"dirr": "/srv/settlement"}, `parameter "dirr": this kind takes date, dir`},
		// The directory the reviewer reads is where the file goes (a trial wrote
		// under /etc through /tmp/x/../../etc, and a relative one went under the
		// working directory).
		{TaskSettlementFile, map[string]string{"dir": "/tmp/x/../../etc/probe"}, `params.dir "/tmp/x/../../etc/probe": give an absolute path without . or .. parts, as "/etc/probe"`},
		{TaskSettlementFile, map[string]string{"dir": "settlement"}, `params.dir "settlement": give an absolute path`},
		{TaskSettlementFile, map[string]string{"dir": ""}, `params.dir "": give an absolute path`},
		{TaskZoneKeyChange, map[string]string{"issuer": "cup"}, ""},
		{TaskZoneKeyChange, nil, "params.issuer"},
		{TaskKeyRotate, map[string]string{"keys": "a.ZPK, b.ZPK", "grace": "24h"}, ""},
		{TaskKeyRotate, map[string]string{"keys": " , "}, "params.keys"},
		{TaskKeyRotate, map[string]string{"keys": "a.ZPK", "grace": "a day"}, `params.grace "a day"`},
		{TaskKeyRotate, map[string]string{"keys": "a.ZPK", "grace": "720h"}, ""},
		{TaskKeyRotate, map[string]string{"keys": "a.ZPK", "grace": "876000h"}, `params.grace "876000h": at most 720h (30 days)`},
		{TaskKeyRotate, map[string]string{"keys": "a.ZPK", "grace": "-1h"}, `params.grace "-1h": must be positive`},
		{TaskJournalRetention, map[string]string{"days": "30"}, ""},
		{TaskJournalRetention, map[string]string{"days": "3"}, "at least 7"},
		{TaskJournalRetention, map[string]string{"days": "30", "keep": "x"}, `parameter "keep": this kind takes days`},
		{TaskProfilesRefresh, nil, ""},
		{TaskRatings, map[string]string{"merchant": "1"}, `parameter "merchant": this kind takes no parameters`},
	} {
		err := s.Tasks.Validate(sched.Task{Name: "t1", Kind: c.kind, Schedule: "@daily", Params: c.params})
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s %v: %v; want it taken", c.kind, c.params, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "task t1 ("+c.kind+")")):
			t.Errorf("%s %v: %v; want an error naming the task and saying %q", c.kind, c.params, err, c.want)
		}
	}
	// In the configuration: the start is refused.
	c2 := demoConfig(t, t.TempDir())
	c2.Tasks = []config.Task{{Name: "settle", Kind: TaskSettlementFile, Schedule: "15 0 * * *", Params: map[string]string{"dirr": "x"}}}
	if s2, err := New(c2, zerolog.Nop(), testDemoIssuer); err == nil {
		s2.Close()
		t.Fatal("a settlement task with a misspelt parameter started")
	} else if !strings.Contains(err.Error(), `parameter "dirr"`) {
		t.Fatalf("error: %v", err)
	}
}

// TestSettlementFileSyncsDirectory: the settlement task syncs the file's directory
// once the file is renamed into it (else a crash may lose the rename), and a failed
// sync fails the task with an error naming the file and the directory. Whether
// the sync reaches the disk is for a power cut to show: this test sees the call.
func TestSettlementFileSyncsDirectory(t *testing.T) {
	dir := t.TempDir()
	c := demoConfig(t, dir)
	loc, _ := time.LoadLocation(c.Timezone)
	today := time.Now().In(loc).Format("2006-01-02")
	out := filepath.Join(dir, "out")
	s := start(t, c, nil)
	file := filepath.Join(out, "settlement-"+today+".csv")
	var synced []string
	s.dirSync = func(d string) error {
		if _, err := os.Stat(file); err != nil {
			t.Errorf("directory %s synced before the file was renamed into it: %v", d, err)
		}
		synced = append(synced, d)
		return syncDir(d)
	}
	ctx := context.Background()
	params := map[string]string{"dir": out, "date": today}
	if _, err := s.settlementFile(ctx, time.Now(), params); err != nil {
		t.Fatal(err)
	}
	if len(synced) != 1 || synced[0] != out {
		t.Fatalf("directories synced: %q, want [%q]", synced, out)
	}

	s.dirSync = func(d string) error { return syncDir(filepath.Join(d, "gone")) }
	_, err := s.settlementFile(ctx, time.Now(), params)
	if err == nil || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), filepath.Join(out, "gone")) {
		t.Fatalf("settlement with a failed directory sync: %v, want an error naming %s and the directory", err, file)
	}
}

// TestTaskClaimKey: the cluster's claim of a task's slot has a key of its own for
// every name, one the leases bucket takes (NATS KV keys: letters, digits and
// -/_=.); a name of letters, digits, '-' and '_' keeps the key it had. Before, "a.b"
// and "a_b" shared their claims (one never ran), and "结算" had no valid key.
func TestTaskClaimKey(t *testing.T) {
	slot := time.Unix(1796683200, 0)
	valid := regexp.MustCompile(`^[-/_=.a-zA-Z0-9]+$`)
	seen := map[string]string{}
	for _, name := range []string{"nightly-settle_1", "a.b", "a_b", "a b", "结算", `a\b`, "a%2Fb", "x-612e62"} {
		k := taskClaimKey(name, slot)
		if !valid.MatchString(k) {
			t.Errorf("task %q: claim key %q is not a valid key", name, k)
		}
		if other, ok := seen[k]; ok {
			t.Errorf("tasks %q and %q share the claim key %q", other, name, k)
		}
		seen[k] = name
	}
	if k := taskClaimKey("nightly-settle_1", slot); k != "task.nightly-settle_1.1796683200" {
		t.Errorf("a plain name's key changed: %q", k)
	}
}
