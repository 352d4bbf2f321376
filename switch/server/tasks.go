package server

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/keys"
	"github.com/switchyard/switchyard/switch/apps"
	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/sched"
)

// The task kinds the switch registers with its scheduler (docs/tasks.md). Moving
// another daily loop onto the scheduler is one Register line in openTasks and a
// task in the configuration (or a Default here).
const (
	TaskProfilesRefresh = "profiles.refresh"  // the merchant profiles (the built-in task profiles-refresh)
	TaskOfflineCheck    = "offline.check"     // one pass of the offline monitor
	TaskSettlementFile  = "settlement.file"   // the day's cut-off: the settlement report of the previous local day, as CSV
	TaskZoneKeyChange   = "keys.zone-change"  // a new zone PIN key with an issuer (params: issuer)
	TaskKeyRotate       = "keys.rotate"       // new versions of keys of the key store (params: keys, grace)
	TaskAppsRefresh     = "apps.refresh"      // resolve the rollout groups again
	TaskRatings         = "ratings.recompute" // the merchants' ratings (besides their own daily run at ratings.refresh_at)
	schedActor          = "scheduler"         // the actor of what a task does (key audit, oplog)
	claimTTL            = 7 * 24 * time.Hour  // how long a cluster claim of a slot is kept
)

// now is the switch's clock (config.Config.Clock, time.Now without one).
func (s *Server) now() time.Time {
	if s.cfg.Clock != nil {
		return s.cfg.Clock()
	}
	return time.Now()
}

// openApps opens the terminal application manager (switch/apps) over the registry;
// its download token key is sealed under a key derived from cardHashKey.
func (s *Server) openApps(cardHashKey []byte) error {
	c := s.cfg.Apps
	m, err := apps.New(s.db, s.Registry, apps.Options{Dir: filepath.Join(s.cfg.DataDir, "apps"), MaxPackageBytes: int64(c.MaxPackageBytes),
		TokenTTL: c.TokenTTL.D(), RefreshInterval: c.RefreshInterval.D(), Now: s.cfg.Clock, CardHashKey: cardHashKey, Logger: s.log.With().Str("component", "apps").Logger()})
	if err != nil {
		return fmt.Errorf("apps: %w", err)
	}
	s.Apps = m
	return nil
}

// openTasks makes the scheduler, registers the switch's task kinds, the built-in
// profile refresh and the configured tasks (tasks:), and the reviewed task.put.
func (s *Server) openTasks(loc *time.Location) error {
	opts := sched.Options{Location: loc, Now: s.cfg.Clock, Logger: s.log.With().Str("component", "sched").Logger(),
		Metrics: s.Metrics.Registry,
		OnFailure: func(r sched.Run) {
			s.log.Error().Str("component", "sched").Str("task", r.Task).Str("outcome", r.Outcome).Str("error", r.Error).
				Msg("ALERT: scheduled task failed (switchyard task history " + r.Task + ")")
		}}
	if s.cl != nil {
		opts.Node = fmt.Sprintf("node-%d", s.cl.cfg.Node)
		opts.Claim = s.cl.claimSlot
	}
	ts, err := sched.New(s.db, opts)
	if err != nil {
		return err
	}
	ts.Register(TaskProfilesRefresh, s.profiles.scheduled)
	ts.Register(TaskOfflineCheck, func(ctx context.Context, _ map[string]string) (string, error) {
		if s.cl != nil && !s.cl.monitorActive() {
			return "skipped: in a cluster the offline monitor runs on one node, not this one (docs/cluster.md)", nil
		}
		as, err := s.monitor.RunOnce(ctx, time.Now())
		return fmt.Sprintf("%d alerts raised", len(as)), err
	})
	ts.Register(TaskSettlementFile, func(ctx context.Context, p map[string]string) (string, error) {
		at := sched.Slot(ctx)
		if at.IsZero() {
			at = s.now()
		}
		return s.settlementFile(ctx, at, p)
	})
	ts.Register(TaskZoneKeyChange, func(ctx context.Context, p map[string]string) (string, error) {
		if p["issuer"] == "" {
			return "", errors.New("params.issuer: the issuer whose zone PIN key to change")
		}
		res, err := s.ChangeZoneKey(ctx, p["issuer"], schedActor)
		if err != nil {
			return "", err
		}
		b, _ := json.Marshal(res)
		return string(b), nil
	})
	ts.Register(TaskKeyRotate, s.rotateKeysTask)
	ts.Register(TaskAppsRefresh, func(context.Context, map[string]string) (string, error) { return "", s.Apps.Refresh() })
	ts.RegisterLocal(TaskJournalRetention, s.retentionTask()) // retention.go
	ts.Register(TaskRatings, func(ctx context.Context, _ map[string]string) (string, error) {
		at := sched.Slot(ctx)
		if at.IsZero() {
			at = time.Now()
		}
		sum, err := s.ratings.Recompute(ctx, at, nil)
		return fmt.Sprintf("%d merchants, %d changed", sum.Merchants, len(sum.Changed)), err
	})
	for kind, check := range taskParamChecks(s.cfg.Timezone) {
		ts.CheckParams(kind, check)
	}
	ts.Default(sched.Task{Name: "profiles-refresh", Kind: TaskProfilesRefresh, Schedule: s.profiles.schedule()})
	for i, t := range s.cfg.Tasks {
		st := sched.Task{Name: t.Name, Kind: t.Kind, Schedule: t.Schedule, TimeZone: t.Timezone, Params: t.Params, Disabled: t.Disabled}
		if t.Timeout > 0 {
			st.Timeout = t.Timeout.D().String()
		}
		if t.Kind == TaskJournalRetention && !t.Disabled {
			if _, err := retentionDays(t.Params); err != nil {
				return fmt.Errorf("tasks[%d] %s: %w", i, t.Name, err)
			}
		}
		if err := ts.Define(st); err != nil {
			return fmt.Errorf("tasks[%d]: %w", i, err)
		}
	}
	if err := ts.UseReview(s.Registry); err != nil {
		return err
	}
	s.Tasks = ts
	return nil
}

// settlementFile is the cut-off (settlement.file): it writes the settlement report of
// the local day before at (the task's slot), or of params.date, to params.dir
// (default DATA_DIR/settlement) as settlement-YYYY-MM-DD.csv, replacing a previous
// file of that day. A day's report is final once its last approvals are in: a
// transaction received at 23:59:59 may be approved after midnight, and counts in its
// day when approved within settleClose of its receipt. So a cut-off that runs after
// the day's end but before its close (end + settleClose + settleGrace, 00:11: a slot
// at 00:00) waits until then on the switch's clock, before it reads the journal;
// the default slot, 00:15, does not wait. Whatever of the day is still open then is
// paid, if approved, in the day it is approved (a late approval): the file says how
// many, and a warning names them. A report of a day not over yet (params.date of
// today) is made at once, as it stands.
//
// A report that could not read every record (Settlement.Incomplete: frames of the
// journal's log damaged) is written as settlement-YYYY-MM-DD.incomplete.csv, never
// under the day's name, and the run fails naming the records: the day is not
// filed; once the data directory is restored from its backup, run the cut-off with
// params.date of the day. Until the fifteenth release such a record failed the run
// with no file at all.
//
// A scheduled cut-off (no params.date) also files the days its directory misses
// between the last day filed there and its own (missedSettlementDays): after a stop
// over several slots the scheduler runs the latest slot once, and a schedule in
// another zone than the switch's, with summer time, runs twice within one of the
// switch's days and 25 hours apart across another. Until the fifth release of 6
// December 2026 such a day was filed by no run.
func (s *Server) settlementFile(ctx context.Context, at time.Time, p map[string]string) (string, error) {
	loc, _ := time.LoadLocation(s.cfg.Timezone)
	day := DayBefore(at, loc)
	if d := p["date"]; d != "" {
		day = d
	}
	_, end, err := DayBounds(day, loc)
	if err != nil {
		return "", err
	}
	dir := p["dir"]
	if dir == "" {
		dir = filepath.Join(s.cfg.DataDir, "settlement")
	}
	if now, final := s.now(), end.Add(settleClose+settleGrace); !now.Before(end) && now.Before(final) {
		s.log.Info().Str("component", "settlement").Str("date", day).Time("until", final).
			Msg("settlement cut-off: waiting for the day's last approvals (a transaction of the day's end answered after midnight) before the file is written")
		if err := s.waitUntil(ctx, final); err != nil {
			return "", fmt.Errorf("settlement of %s: waiting until %s for the day's last approvals: %w", day, final.In(loc).Format(time.RFC3339), err)
		}
	}
	if err := s.cl.caughtUp(ctx); err != nil {
		return "", err
	}
	var missed []string
	if p["date"] == "" {
		missed = missedSettlementDays(dir, day)
	}
	out, err := s.writeSettlementFile(ctx, dir, day, loc)
	var inc *incompleteError
	if err != nil && !errors.As(err, &inc) {
		return "", err
	}
	if len(missed) == 0 {
		return out, err
	}
	errs := []error{err}
	s.log.Warn().Str("component", "settlement").Str("date", day).Strs("missed", missed).
		Msg("settlement cut-off: the directory misses the files of days before this one (runs missed while the switch was down, or a schedule in another zone than the switch's); they are filed now")
	outs := []string{out}
	for _, d := range missed {
		o, err := s.writeSettlementFile(ctx, dir, d, loc)
		if err != nil && !errors.As(err, &inc) {
			return "", fmt.Errorf("%s; missed day %s: %w", out, d, err)
		}
		errs = append(errs, err)
		outs = append(outs, "missed day "+o)
	}
	return strings.Join(outs, "; "), errors.Join(errs...)
}

// incompleteError is writeSettlementFile's for a report it wrote incomplete (records
// of the journal unreadable): the other days go on.
type incompleteError struct {
	day, path  string
	unreadable []journal.Unreadable
}

func (e *incompleteError) Error() string {
	return fmt.Sprintf("settlement of %s incomplete, written as %s: %s", e.day, e.path, (&journal.UnreadableError{Records: e.unreadable}).Error())
}

// maxMissedSettlementDays bounds how many missed days one cut-off files.
const maxMissedSettlementDays = 31

// missedSettlementDays returns the days, oldest first, between the last day before
// day filed in dir (the newest settlement-YYYY-MM-DD.csv older than day) and day,
// at most maxMissedSettlementDays of them (the latest): the days a scheduled
// cut-off files besides its own. None when dir has no earlier file (a new
// directory: the days before were never filed here, and are not made up now).
func missedSettlementDays(dir, day string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	last := ""
	for _, e := range ents {
		name := e.Name()
		d, ok := strings.CutPrefix(name, "settlement-")
		if !ok || e.IsDir() {
			continue
		}
		if d, ok = strings.CutSuffix(d, ".csv"); !ok {
			continue
		}
		if _, err := time.Parse("2006-01-02", d); err != nil || d >= day || d <= last {
			continue
		}
		last = d
	}
	if last == "" {
		return nil
	}
	from, _ := time.Parse("2006-01-02", last)
	to, _ := time.Parse("2006-01-02", day)
	var out []string
	for d := to.AddDate(0, 0, -1); d.After(from) && len(out) < maxMissedSettlementDays; d = d.AddDate(0, 0, -1) {
		out = append(out, d.Format("2006-01-02"))
	}
	slices.Reverse(out)
	return out
}

// writeSettlementFile writes the settlement report of day to dir as
// settlement-DAY.csv (a temporary file, synced, renamed over the day's file, the
// directory synced) and returns the run's output for it.
func (s *Server) writeSettlementFile(ctx context.Context, dir, day string, loc *time.Location) (string, error) {
	st, open, err := settleDay(ctx, s.Journal, day, loc)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", fmt.Errorf("settlement directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, "settlement-"+day+".csv")
	if st.Incomplete {
		path = filepath.Join(dir, "settlement-"+day+".incomplete.csv")
	}
	f, err := os.CreateTemp(dir, ".settlement-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	err = st.WriteCSV(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return "", fmt.Errorf("settlement file %s: %w", path, err)
	}
	// The rename is in the directory: until the directory is synced, a crash
	// (a power cut) may leave the previous file, or none, under path.
	sync := syncDir
	if s.dirSync != nil {
		sync = s.dirSync
	}
	if err := sync(dir); err != nil {
		return "", fmt.Errorf("settlement file %s: written, but the rename is not durable: %w", path, err)
	}
	nets := make([]string, 0, len(st.Totals))
	for _, tot := range st.Totals { // never one net across currencies
		nets = append(nets, fmt.Sprintf("net %d %s", tot.Net, tot.Currency))
	}
	if len(nets) == 0 {
		nets = append(nets, "net 0")
	}
	out := fmt.Sprintf("%s: %d terminals, %s", path, len(st.Lines), strings.Join(nets, ", "))
	if len(open) > 0 {
		s.log.Warn().Str("component", "settlement").Str("date", day).Int("open", len(open)).Strs("rrns", open[:min(len(open), 20)]).
			Msg("settlement file written with transactions of the day still open (in flight, or left open by a node that stopped): an approval of one is paid in the day it is decided")
		out += fmt.Sprintf("; %d of the day's transactions still open, paid in the day they are approved if they are", len(open))
	}
	if !st.Incomplete {
		_ = os.Remove(filepath.Join(dir, "settlement-"+day+".incomplete.csv")) // an earlier run's, superseded
	}
	if st.Incomplete {
		s.log.Error().Str("component", "settlement").Str("date", day).Str("file", path).Int("unreadable", len(st.Unreadable)).
			Msg("settlement file incomplete: records of the day could not be read (their frames in the journal's log damaged); written under the .incomplete.csv name, the day is not filed")
		return out, &incompleteError{day: day, path: path, unreadable: st.Unreadable}
	}
	return out, nil
}

// clockPoll is how often waitUntil reads the switch's clock again: the clock may be
// another than the timers' (config.Config.Clock).
const clockPoll = 250 * time.Millisecond

// waitUntil returns once the switch's clock reads t or later, or with ctx's error.
func (s *Server) waitUntil(ctx context.Context, t time.Time) error {
	for {
		d := t.Sub(s.now())
		if d <= 0 {
			return nil
		}
		timer := time.NewTimer(min(d, clockPoll))
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
		}
	}
}

// rotateKeysTask makes a new version of each key of params.keys (comma-separated
// IDs) with its current spec; params.grace (a Go duration) keeps the previous
// version usable for that long. A terminal's working keys still reach it by its key
// change request (0800/161); a zone PIN key is changed with keys.zone-change.
func (s *Server) rotateKeysTask(ctx context.Context, p map[string]string) (string, error) {
	var done []string
	for _, id := range strings.Split(p["keys"], ",") {
		if id = strings.TrimSpace(id); id == "" {
			continue
		}
		vs, err := s.Keys.Versions(id)
		if err != nil {
			return strings.Join(done, ", "), fmt.Errorf("key %s: %w", id, err)
		}
		last := vs[len(vs)-1]
		spec, err := keys.SpecRequest{ID: last.ID, Type: string(last.Type), Algorithm: string(last.Algorithm), MACAlgorithm: string(last.MACAlgorithm),
			Owner: last.Owner, Grace: p["grace"]}.KeySpec()
		if err != nil {
			return strings.Join(done, ", "), fmt.Errorf("key %s: %w", id, err)
		}
		res, err := s.HSM.GenerateKey(hsm.WithActor(ctx, schedActor), hsm.GenerateKeyRequest{KeySpec: spec})
		if err != nil {
			return strings.Join(done, ", "), fmt.Errorf("key %s: %w", id, err)
		}
		done = append(done, fmt.Sprintf("%s v%d", id, res.Ref.Version))
	}
	if len(done) == 0 {
		return "", errors.New("params.keys: the comma-separated key IDs to rotate")
	}
	return strings.Join(done, ", "), nil
}

// claimSlot decides which node of the cluster runs a task's slot: the one whose
// create-only put of taskClaimKey in the leases bucket succeeds.
func (c *clusterNode) claimSlot(ctx context.Context, task string, slot time.Time) (bool, error) {
	kv, err := c.node.LeaseKV(ctx)
	if err != nil {
		return false, err
	}
	key := taskClaimKey(task, slot)
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = kv.Create(cctx, key, []byte(fmt.Sprint(c.cfg.Node)), jetstream.KeyTTL(claimTTL))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyExists):
		return false, nil
	}
	return false, err
}

// taskClaimKey is the leases bucket's key of task's slot: "task.NAME.UNIXSECONDS"
// for a name of ASCII letters, digits, '-' and '_', and "task.=HEX.UNIXSECONDS"
// (the name's bytes in hex) for any other, so that two names never share a key and
// every key is one the bucket takes. Until 8 December 2026 '.' and ' ' became '_'
// ("a.b" and "a_b" shared their claims: one of them never ran) and other characters
// went as they were ("结算" was no valid key: its claims failed every slot, logged
// only; found by a trial).
func taskClaimKey(task string, slot time.Time) string {
	plain := task != "" && !strings.ContainsFunc(task, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	})
	if !plain {
		task = "=" + hex.EncodeToString([]byte(task)) // "=" is in no plain name
	}
	return fmt.Sprintf("task.%s.%d", task, slot.Unix())
}

// CheckTasks checks the kind and params of each task of c's tasks: as the start does
// (sched.Validate), for config check, which starts nothing.
func CheckTasks(c *config.Config) error {
	checks := taskParamChecks(c.Timezone)
	kinds := slices.Sorted(maps.Keys(checks))
	var errs []error
	for i, t := range c.Tasks {
		check, ok := checks[t.Kind]
		if !ok {
			errs = append(errs, fmt.Errorf("tasks[%d].kind %q: want one of %s", i, t.Kind, strings.Join(kinds, ", ")))
			continue
		}
		if err := check(t.Params); err != nil {
			errs = append(errs, fmt.Errorf("tasks[%d]: task %s (%s): %w", i, t.Name, t.Kind, err))
		}
	}
	return errors.Join(errs...)
}

// taskParamChecks returns the check of each task kind's params (sched.CheckParams;
// docs/tasks.md): the names each kind takes, and the values its run would refuse.
// A task is refused when it is defined in the configuration or put, not at its
// first run.
func taskParamChecks(zone string) map[string]func(map[string]string) error {
	none := onlyParams()
	return map[string]func(map[string]string) error{
		TaskProfilesRefresh: none,
		TaskOfflineCheck:    none,
		TaskAppsRefresh:     none,
		TaskRatings:         none,
		TaskSettlementFile: func(p map[string]string) error {
			if err := onlyParams("date", "dir")(p); err != nil {
				return err
			}
			// The directory as written is what the reviewer reads: absolute and
			// clean, so that it is where the file goes (a relative one was
			// resolved against the working directory, and "/tmp/x/../../etc"
			// wrote under /etc: a trial, 8 December 2026).
			if d, ok := p["dir"]; ok && (d == "" || !filepath.IsAbs(d) || filepath.Clean(d) != d) {
				return fmt.Errorf("params.dir %q: give an absolute path without . or .. parts, as %q (or leave it out for the data directory's settlement/)", d, filepath.Clean("/"+d))
			}
			if d := p["date"]; d != "" {
				loc, err := time.LoadLocation(zone)
				if err != nil {
					return err
				}
				if _, _, err := DayBounds(d, loc); err != nil {
					return fmt.Errorf("params.date: %w", err)
				}
			}
			return nil
		},
		TaskZoneKeyChange: func(p map[string]string) error {
			if err := onlyParams("issuer")(p); err != nil {
				return err
			}
			if p["issuer"] == "" {
				return errors.New("params.issuer: the issuer whose zone PIN key to change")
			}
			return nil
		},
		TaskKeyRotate: func(p map[string]string) error {
			if err := onlyParams("keys", "grace")(p); err != nil {
				return err
			}
			if strings.Trim(p["keys"], ", ") == "" {
				return errors.New("params.keys: the IDs of the keys to rotate, comma-separated")
			}
			if g := p["grace"]; g != "" {
				if _, err := keys.ParseGrace("params.grace", g); err != nil {
					return err
				}
			}
			return nil
		},
		TaskJournalRetention: func(p map[string]string) error {
			if err := onlyParams("days")(p); err != nil {
				return err
			}
			_, err := retentionDays(p)
			return err
		},
	}
}

// onlyParams returns a check that refuses a parameter not named in names (a
// misspelt one would be ignored, and its task run without what it was to change).
func onlyParams(names ...string) func(map[string]string) error {
	return func(p map[string]string) error {
		for k := range p {
			if !slices.Contains(names, k) {
				if len(names) == 0 {
					return fmt.Errorf("parameter %q: this kind takes no parameters", k)
				}
				return fmt.Errorf("parameter %q: this kind takes %s", k, strings.Join(names, ", "))
			}
		}
		return nil
	}
}
