package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/risk/profile"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/sched"
)

// ProfileSource is the journal as the merchant profiles read it (profile.Source):
// every record, those the rules never saw included (a binding decline is a
// decline of the merchant's traffic too).
type ProfileSource struct{ J *journal.Store }

// Scan implements profile.Source.
func (s ProfileSource) Scan(ctx context.Context, from, to time.Time, fn func(*profile.Txn) error) error {
	var t profile.Txn
	var ferr error
	err := s.J.Scan(ctx, journal.Query{From: from, To: to}, func(r *journal.Record) bool {
		t = profile.Txn{Time: r.Received, Merchant: r.MID, Type: r.Type, Amount: r.Amount, CardHash: r.CardHash,
			RC: r.RC, Approved: r.Approved(), RiskDeclined: r.DecidedBy == "risk"}
		ferr = fn(&t)
		return ferr == nil
	})
	if ferr != nil {
		return ferr
	}
	return err
}

// ProfilesFile is where a data directory keeps the last merchant profiles, so that
// a restart does not recompute a month of journal.
func ProfilesFile(dataDir string) string { return filepath.Join(dataDir, "profiles.json") }

// profileRefresher recomputes the merchant profiles every day at a local time and
// on request, and keeps the last table in a file. After the first, a refresh reads
// only the journal since the last one and the day that leaves the window
// (profile.Incremental), with a full build every 7 refreshes. The daily refresh is
// the scheduler's task profiles-refresh (tasks.go); the server's loops group runs
// the start-up catch-up; an admin request's refresh runs in the request's goroutine.
type profileRefresher struct {
	set          *profile.Set
	src          profile.Source
	opts         profile.Options // Location is the acquirer's zone
	hour, minute int
	path         string // the persisted copy ("" none)
	log          zerolog.Logger
	now          func() time.Time
	mu           sync.Mutex           // one refresh at a time
	inc          *profile.Incremental // the last build's state (under mu)
}

// openProfiles makes the server's profile set and its refresher, and loads the
// persisted copy (a damaged one is logged and recomputed at start).
func (s *Server) openProfiles(loc *time.Location) error {
	pc := s.cfg.Risk.Profiles
	hour, minute, err := pc.RefreshClock()
	if err != nil {
		return fmt.Errorf("risk.profiles.refresh_at: %w", err)
	}
	now := s.cfg.Clock
	if now == nil {
		now = time.Now
	}
	s.Profiles = profile.NewSet(pc.Defaults)
	opts := profile.Options{Window: pc.Window.D(), NewCardDays: pc.NewCardDays, MinDays: pc.MinDays, MinTransactions: pc.MinTransactions, Location: loc}
	inc := profile.NewIncremental(opts)
	if pc.FullEvery > 0 {
		inc.FullEvery = pc.FullEvery
	}
	s.profiles = &profileRefresher{set: s.Profiles, src: ProfileSource{s.Journal}, hour: hour, minute: minute, inc: inc, opts: opts,
		path: ProfilesFile(s.cfg.DataDir), log: s.log.With().Str("component", "profiles").Logger(), now: now}
	if err := s.profiles.load(); err != nil {
		s.log.Warn().Err(err).Msg("merchant profiles not loaded: recomputed at start")
	}
	return nil
}

// load swaps in the persisted copy, if any. A missing file is not an error.
func (r *profileRefresher) load() error {
	if r.path == "" {
		return nil
	}
	f, err := os.Open(r.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	t, err := profile.ReadTable(f)
	if err != nil {
		return fmt.Errorf("%s: %w", r.path, err)
	}
	r.set.Swap(t)
	return nil
}

// refresh builds the profiles of the window that ends at end, makes them current
// and persists them.
func (r *profileRefresher) refresh(ctx context.Context, end time.Time) (*profile.Table, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	start := time.Now()
	if r.inc == nil {
		r.inc = profile.NewIncremental(r.opts)
	}
	t, err := r.inc.Advance(ctx, r.src, end)
	if err != nil {
		return nil, err
	}
	t.ComputedAt = r.now().UTC()
	r.set.Swap(t)
	learned := 0
	for _, p := range t.Merchants {
		if p.Learned {
			learned++
		}
	}
	r.log.Info().Time("window_end", end).Int("records", t.Records).Int("merchants", len(t.Merchants)).Int("learned", learned).
		Dur("took", time.Since(start)).Msg("merchant profiles refreshed")
	if err := r.save(t); err != nil {
		// The new table is in force; only a restart's head start is lost.
		r.log.Warn().Err(err).Str("file", r.path).Msg("merchant profiles not saved: a restart recomputes them")
	}
	return t, nil
}

// save writes t to the file atomically (a temporary file renamed over it).
func (r *profileRefresher) save(t *profile.Table) error {
	if r.path == "" {
		return nil
	}
	tmp := r.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = t.WriteTo(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, r.path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// RefreshSummary is the answer of a refresh requested through the admin API.
type RefreshSummary struct {
	ComputedAt time.Time `json:"computed_at"`
	From       time.Time `json:"from"`
	To         time.Time `json:"to"`
	Records    int       `json:"records"`
	Merchants  int       `json:"merchants"`
	Learned    int       `json:"learned"`
	// OtherNodes, in a cluster: whether the other nodes were asked to refresh with
	// the same window ("asked", best effort: a node not connected refreshes at its
	// next scheduled time) or why not.
	OtherNodes string `json:"other_nodes,omitempty"`
}

// refreshProfiles is the admin API's refresh (POST /api/v1/risk/profiles/refresh):
// this node's now, and in a cluster the other nodes' with the same window (asked,
// not waited for).
func (s *Server) refreshProfiles(ctx context.Context) (any, error) {
	sum, err := s.profiles.refreshNow(ctx)
	if err != nil || s.cl == nil || s.cl.askProfiles == nil {
		return sum, err
	}
	sum.OtherNodes = "asked"
	if err := s.cl.askProfiles(sum.To); err != nil {
		sum.OtherNodes = "not asked: " + err.Error()
		s.log.Warn().Err(err).Msg("merchant profiles refreshed here; the other nodes were not asked")
	}
	return sum, nil
}

// refreshNow is the admin API's refresh: the window ends now (the next daily
// refresh realigns the nodes of a cluster on the scheduled time).
func (r *profileRefresher) refreshNow(ctx context.Context) (RefreshSummary, error) {
	t, err := r.refresh(ctx, r.now())
	if err != nil {
		return RefreshSummary{}, err
	}
	s := RefreshSummary{ComputedAt: t.ComputedAt, From: t.From, To: t.To, Records: t.Records, Merchants: len(t.Merchants)}
	for _, p := range t.Merchants {
		if p.Learned {
			s.Learned++
		}
	}
	return s, nil
}

// startUp refreshes at start when the loaded table predates the last scheduled
// time (none loaded, or the switch was down at that time). The daily refresh is
// the scheduler's (scheduled). Each scheduled window ends at the scheduled time,
// not when the build starts, so that every node of a cluster, and a backtest,
// computes the same table from the same journal. A failed refresh keeps the
// previous table and is tried again at the next scheduled time.
func (r *profileRefresher) startUp(ctx context.Context) error {
	last := profile.LastRun(r.now(), r.hour, r.minute, r.opts.Location)
	if t := r.set.Table(); t == nil || t.To.Before(last) {
		if _, err := r.refresh(ctx, last); err != nil && ctx.Err() == nil {
			r.log.Error().Err(err).Msg("merchant profiles not refreshed at start; the rules use the previous ones or the tiers' defaults")
		}
	}
	return nil
}

// schedule is the cron expression of the daily refresh (risk.profiles.refresh_at).
func (r *profileRefresher) schedule() string {
	return fmt.Sprintf("%d %d * * *", r.minute, r.hour)
}

// scheduled is the scheduler's task (kind profiles.refresh): the window ends at the
// scheduled time (now for a run-now).
func (r *profileRefresher) scheduled(ctx context.Context, _ map[string]string) (string, error) {
	end := sched.Slot(ctx)
	if end.IsZero() {
		end = r.now()
	}
	t, err := r.refresh(ctx, end)
	if err != nil {
		return "", fmt.Errorf("merchant profiles not refreshed (the rules keep the previous ones): %w", err)
	}
	return fmt.Sprintf("%d merchants, window to %s", len(t.Merchants), end.In(r.opts.Location).Format(time.RFC3339)), nil
}
