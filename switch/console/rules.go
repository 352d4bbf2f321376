package console

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/journal"
)

// The rules page: the rule set in force (files, rules, shadow or live), each
// rule's hits over the last hour and day (from the journal's rule hits), the
// last reload and its problems with file:line, the lists with their expiry, and
// a backtest of a candidate rule directory (risk.Backtest over the journal, as
// `switchyard rules backtest`), run in the background with its progress shown.

// ruleRow is a rule with its recent hits.
type ruleRow struct {
	*risk.Rule
	HitsHour, HitsDay int
}

func (c *Console) rules(w http.ResponseWriter, r *http.Request, s *session) {
	d := map[string]any{"Backtest": c.backtest.view(), "CandidatesDir": c.o.CandidatesDir}
	if c.o.Risk == nil {
		d["NoEngine"] = true
		c.render(w, r, s, "rules", d)
		return
	}
	rs := c.o.Risk.RuleSet()
	hour, day, scanned := c.ruleHits(r.Context())
	var rows []ruleRow
	for _, ru := range rs.Rules {
		rows = append(rows, ruleRow{Rule: ru, HitsHour: hour[ru.ID], HitsDay: day[ru.ID]})
	}
	d["Set"] = rs
	d["Rules"] = rows
	d["Scanned"] = scanned
	d["Reload"] = c.o.Risk.LastReload()
	d["Lists"] = c.o.Risk.Lists().Entries()
	d["Now"] = c.o.Now()
	d["Dir"] = c.o.Risk.Dir()
	c.render(w, r, s, "rules", d)
}

// maxHitScan bounds the journal records read for the hit counts (a variable for
// the tests).
var maxHitScan = 200000

// ruleHits counts each rule's hits over the last hour and day from the journal,
// at most maxHitScan records: the last hour's first, then the rest of the day. The
// journal is read oldest first; until the third release of 6 December 2026 the
// day was read from its start, and on a switch with more than maxHitScan
// transactions a day the bound was reached before the last hour, whose counts
// all read 0.
func (c *Console) ruleHits(ctx context.Context) (hour, day map[string]int, scanned int) {
	hour, day = map[string]int{}, map[string]int{}
	if c.o.Journal == nil {
		return
	}
	now := c.o.Now()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	count := func(from, to time.Time, inHour bool) {
		_ = c.o.Journal.Scan(ctx, journal.Query{From: from, To: to}, func(rec *journal.Record) bool {
			if scanned >= maxHitScan {
				return false
			}
			scanned++
			for _, h := range rec.RuleHits {
				day[h.ID]++
				if inHour {
					hour[h.ID]++
				}
			}
			return true
		})
	}
	count(now.Add(-time.Hour), now.Add(time.Minute), true)
	count(now.Add(-24*time.Hour), now.Add(-time.Hour), false)
	return
}

func (c *Console) reloadRules(w http.ResponseWriter, r *http.Request, s *session) {
	if c.o.Risk == nil {
		done(w, r, Prefix+"rules", "", errors.New("the risk engine is not running in this process"))
		return
	}
	_, err := c.o.Risk.Reload()
	done(w, r, Prefix+"rules", "reloaded", err)
}

// backtestJob is the one backtest of this console: a new one waits until it ends.
type backtestJob struct {
	mu      sync.Mutex
	running bool
	by      string
	dir     string
	from    time.Time
	to      time.Time
	done    float64
	read    int
	report  *risk.BacktestReport
	err     string
	started time.Time
	wg      sync.WaitGroup
}

// BacktestView is the job as the page shows it.
type BacktestView struct {
	Running  bool
	By, Dir  string
	From, To time.Time
	Done     float64
	Read     int
	Report   *risk.BacktestReport
	Error    string
	Started  time.Time
}

func (b *backtestJob) view() BacktestView {
	b.mu.Lock()
	defer b.mu.Unlock()
	return BacktestView{Running: b.running, By: b.by, Dir: b.dir, From: b.from, To: b.to, Done: b.done, Read: b.read, Report: b.report, Error: b.err, Started: b.started}
}

// startBacktest loads the candidate directory, one under the candidates
// directory (loadCandidate; its problems are shown at once), and replays the
// range in the background.
func (c *Console) startBacktest(w http.ResponseWriter, r *http.Request, s *session) {
	if c.o.History == nil || c.o.Risk == nil {
		done(w, r, Prefix+"rules", "", errors.New("backtests need the journal and the risk engine of a running switch"))
		return
	}
	hours := 24
	if _, err := fmt.Sscanf(r.PostFormValue("hours"), "%d", &hours); err != nil || hours <= 0 || hours > 24*31 {
		done(w, r, Prefix+"rules", "", fmt.Errorf("hours %q: want 1 to 744", r.PostFormValue("hours")))
		return
	}
	rs, dir, err := loadCandidate(c.o.CandidatesDir, r.PostFormValue("dir"), risk.LoadOptions{Location: c.o.Risk.RuleSet().Location, Lists: c.o.Risk.Lists()})
	if err != nil {
		done(w, r, Prefix+"rules", "", err)
		return
	}
	b := &c.backtest
	b.mu.Lock()
	if b.running {
		b.mu.Unlock()
		done(w, r, Prefix+"rules", "", fmt.Errorf("a backtest by %s is running; wait for it", b.by))
		return
	}
	now := c.o.Now()
	b.running, b.by, b.dir, b.from, b.to, b.started = true, s.User, dir, now.Add(-time.Duration(hours)*time.Hour), now, now
	b.done, b.read, b.report, b.err = 0, 0, nil, ""
	b.wg.Add(1)
	from, to := b.from, b.to
	b.mu.Unlock()
	go func() { // owned by the console: Stop cancels it, Run waits for it
		defer b.wg.Done()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-c.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		rep, err := risk.Backtest(ctx, c.o.History, rs, risk.BacktestOptions{From: from, To: to, Warmup: -1, MaxChanges: 200,
			Progress: func(d float64, read int) {
				b.mu.Lock()
				b.done, b.read = d, read
				b.mu.Unlock()
			}})
		b.mu.Lock()
		defer b.mu.Unlock()
		b.running, b.report, b.done = false, rep, 1
		if err != nil {
			b.err = err.Error()
		}
	}()
	done(w, r, Prefix+"rules", "backtest", nil)
}

// loadCandidate loads the candidate rule directory an analyst named: a
// directory under root (risk.candidates_dir), given by its path relative to
// root ("next", "team/next") or as an absolute path inside root. It answers the
// rule set and the directory's name as the page shows it (root/rel).
//
// The analyst types the path into a browser, so the switch's machine is not
// theirs to explore: a path outside root, one that climbs out of it with "..",
// one that does not exist and one whose symlinks lead outside root all get the
// same refusal, which tells nothing of what exists where. The files are read
// through an os.Root opened at root: a rule file that is a symlink leading
// outside root is refused by the read, so no problem message (which quotes the
// YAML it could not read) ever shows a byte of a file outside root.
func loadCandidate(root, name string, opts risk.LoadOptions) (*risk.RuleSet, string, error) {
	if root == "" {
		return nil, "", errors.New("backtests here need a candidates directory (risk.candidates_dir)")
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, "", fmt.Errorf("the candidates directory %s (risk.candidates_dir) cannot be read: create it, and copy candidate rule directories into it (mkdir -p %s/next && cp rules/*.yaml %s/next/)", root, root, root)
	}
	if realRoot, err = filepath.Abs(realRoot); err != nil {
		return nil, "", fmt.Errorf("the candidates directory %s (risk.candidates_dir): %w", root, err)
	}
	notUnder := fmt.Errorf("candidate rule directory %q: no such directory under %s (risk.candidates_dir); give the name of a directory there, as next for %s", name, root, filepath.Join(root, "next"))
	rel := filepath.Clean(strings.TrimSpace(name))
	if filepath.IsAbs(rel) {
		// An absolute path names a directory under root as configured, or
		// under the directory root resolves to.
		absRoot, _ := filepath.Abs(root)
		if r, err := filepath.Rel(absRoot, rel); err == nil && filepath.IsLocal(r) {
			rel = r
		} else if r, err := filepath.Rel(realRoot, rel); err == nil && filepath.IsLocal(r) {
			rel = r
		} else {
			return nil, "", notUnder
		}
	}
	if !filepath.IsLocal(rel) || rel == "." {
		return nil, "", notUnder
	}
	real, err := filepath.EvalSymlinks(filepath.Join(realRoot, rel))
	if err != nil || !within(realRoot, real) {
		return nil, "", notUnder
	}
	if st, err := os.Stat(real); err != nil || !st.IsDir() {
		return nil, "", notUnder
	}
	realRel, err := filepath.Rel(realRoot, real)
	if err != nil || !filepath.IsLocal(realRel) || realRel == "." {
		return nil, "", notUnder
	}
	dir, err := os.OpenRoot(realRoot)
	if err != nil {
		return nil, "", fmt.Errorf("the candidates directory %s (risk.candidates_dir): %w", root, err)
	}
	defer dir.Close()
	sub, err := fs.Sub(dir.FS(), filepath.ToSlash(realRel))
	if err != nil {
		return nil, "", notUnder
	}
	label := filepath.Join(root, rel)
	rs, err := risk.LoadFS(sub, label, opts)
	if err != nil {
		return nil, "", fmt.Errorf("candidate rules refused: %w", err)
	}
	return rs, label, nil
}

// within reports whether path is dir or lies under it (both cleaned, absolute,
// symlinks resolved).
func within(dir, path string) bool {
	r, err := filepath.Rel(dir, path)
	return err == nil && filepath.IsLocal(r)
}
