package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/switchyard/switchyard/risk/rating"
	"github.com/switchyard/switchyard/rules"
	"github.com/switchyard/switchyard/switch/api"
	"github.com/switchyard/switchyard/switch/merchantrisk"
	"github.com/switchyard/switchyard/switch/notify"
	"github.com/switchyard/switchyard/switch/registry"
)

// openRatings loads the merchant rating policy (ratings.policy_file, else
// rating/policy.yaml in the rules directory, else the built-in copy) and the
// ratings kept in the data directory.
func (s *Server) openRatings(loc *time.Location) error {
	rc := s.cfg.Ratings
	path := rc.PolicyFile
	if path == "" {
		path = rating.PolicyFile(s.cfg.RulesDir)
		if _, err := os.Stat(path); err != nil {
			path = ""
		}
	}
	var pol *rating.Policy
	var err error
	if path != "" {
		pol, err = rating.LoadPolicy(path)
	} else {
		pol, err = rating.ParsePolicy(rules.RatingPolicy, "built-in rating/policy.yaml")
	}
	if err != nil {
		return fmt.Errorf("ratings: %w", err)
	}
	hour, minute, err := rc.RefreshClock()
	if err != nil {
		return fmt.Errorf("ratings.refresh_at: %w", err)
	}
	now := s.cfg.Clock
	if now == nil {
		now = time.Now
	}
	rlog, err := s.cl.storeLog("ratings")
	if err != nil {
		return err
	}
	s.ratings, err = merchantrisk.New(s.db, s.Journal, s.Registry, merchantrisk.Options{Policy: pol, Location: loc, Hour: hour, Minute: minute,
		Poll: rc.Poll.D(), Now: now, Log: asLog(rlog), CatchUp: catchUp(rlog), Logger: s.log.With().Str("component", "ratings").Logger()})
	if err != nil {
		return err
	}
	if err := s.cl.follow(rlog, s.ratings); err != nil {
		return fmt.Errorf("merchant rating pins: %w", err)
	}
	// A fraud confirmed on another node has its merchant rated again here too,
	// as ratingNudger does on the node that opened the incident.
	ratings := s.ratings
	s.Registry.OnRemoteIncident(func(inc *registry.Incident) {
		if inc.Reason == registry.ReasonConfirmedFraud {
			ratings.Nudge(inc.MerchantID)
		}
	})
	return nil
}

// ratingNudger is the registry as the review cases use it: a confirmed fraud also
// has its merchant's rating recomputed at once.
type ratingNudger struct {
	*registry.Registry
	ratings *merchantrisk.Ratings
}

// OpenFraudIncident implements cases.Registry.
func (n ratingNudger) OpenFraudIncident(caseID, merchantID, terminalID string) (*registry.Incident, error) {
	inc, err := n.Registry.OpenFraudIncident(caseID, merchantID, terminalID)
	if err == nil {
		n.ratings.Nudge(merchantID)
	}
	return inc, err
}

// openNotices opens the merchant notices' outbox and enqueues what a crash may have
// left out of it (notify.Outbox.Recover). The webhook secrets are sealed at rest
// under a key derived from cardHashKey.
func (s *Server) openNotices(cardHashKey []byte) error {
	nc := s.cfg.Notices
	now := s.cfg.Clock
	if now == nil {
		now = time.Now
	}
	nlog, err := s.cl.storeLog("notices")
	if err != nil {
		return err
	}
	allow, err := nc.AllowPrivatePrefixes()
	if err != nil {
		return fmt.Errorf("notices.allow_private: %w", err)
	}
	s.notices, err = notify.Open(s.db, notify.Options{RetryMin: nc.RetryMin.D(), RetryMax: nc.RetryMax.D(), Timeout: nc.Timeout.D(), AllowPrivate: allow,
		Workers: nc.Workers, LogTTL: nc.LogTTL.D(), SecretOverlap: nc.SecretOverlap.D(), Now: now, Registry: s.Registry, Log: asLog(nlog), CatchUp: catchUp(nlog),
		CardHashKey: cardHashKey, Metrics: s.Metrics.Registry, Logger: s.log.With().Str("component", "notices").Logger()})
	if err != nil {
		return err
	}
	if err := s.cl.follow(nlog, s.notices); err != nil {
		return fmt.Errorf("merchant webhooks: %w", err)
	}
	if err := s.notices.UseReview(s.Registry); err != nil {
		return fmt.Errorf("merchant webhooks: %w", err)
	}
	n, err := s.notices.Recover(context.Background(), s.Journal, 2*time.Minute)
	if err != nil {
		return fmt.Errorf("merchant notices: recovery: %w", err)
	}
	if n > 0 {
		s.log.Warn().Int("notices", n).Msg("merchant notices recovered from the journal (not stored before the last stop)")
	}
	return nil
}

// merchantRiskAPI serves the admin API's merchant risk routes.
type merchantRiskAPI struct{ s *Server }

var _ api.MerchantRisk = merchantRiskAPI{}

// merchantRiskErrors maps the services' errors to 404 and 400.
var merchantRiskErrors = api.MerchantRiskErrors{NotFound: errNotFound, Invalid: errInvalid}

var (
	errNotFound = errors.New("not found")
	errInvalid  = errors.New("invalid")
)

// kinds wraps the services' sentinel errors in the API's.
func kinds(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, merchantrisk.ErrNotFound):
		return fmt.Errorf("%w: %w", errNotFound, err)
	case errors.Is(err, merchantrisk.ErrInvalid), errors.Is(err, notify.ErrInvalid):
		return fmt.Errorf("%w: %w", errInvalid, err)
	}
	return err
}

func (a merchantRiskAPI) Rating(_ context.Context, m string) (any, error) {
	v, err := a.s.ratings.Explain(m)
	return v, kinds(err)
}

func (a merchantRiskAPI) PinRating(_ context.Context, m, grade, reason, by string, days int) (any, error) {
	v, err := a.s.ratings.Pin(m, grade, reason, by, days)
	return v, kinds(err)
}

func (a merchantRiskAPI) UnpinRating(_ context.Context, m, reason, by string) (any, error) {
	v, err := a.s.ratings.Unpin(m, reason, by)
	return v, kinds(err)
}

func (a merchantRiskAPI) RecomputeRatings(ctx context.Context) (any, error) {
	now := time.Now
	if a.s.cfg.Clock != nil {
		now = a.s.cfg.Clock
	}
	v, err := a.s.ratings.Recompute(ctx, now(), nil)
	return v, kinds(err)
}

func (a merchantRiskAPI) Report(ctx context.Context, m string, days int) (any, error) {
	now := time.Now
	if a.s.cfg.Clock != nil {
		now = a.s.cfg.Clock
	}
	loc, _ := time.LoadLocation(a.s.cfg.Timezone)
	rep, err := merchantrisk.MerchantReport(ctx, a.s.Journal, a.s.Registry, m, days, now(), loc)
	if err == nil {
		rep.Rating = a.s.ratings.Book().Grade(m)
	}
	return rep, kinds(err)
}

func (a merchantRiskAPI) SetWebhook(_ context.Context, m string, w api.WebhookRequest, by registry.Actor) (any, error) {
	if _, ok := a.s.Registry.Merchant(m); !ok {
		return nil, fmt.Errorf("%w: merchant %s", errNotFound, m)
	}
	c, err := a.s.notices.RequestEndpoint(by, m, w.URL, w.Secret, w.Reason)
	if err != nil {
		return nil, kinds(err)
	}
	return c, nil
}

func (a merchantRiskAPI) Notices(_ context.Context, m string, limit int) (any, error) {
	if _, ok := a.s.Registry.Merchant(m); !ok {
		return nil, fmt.Errorf("%w: merchant %s", errNotFound, m)
	}
	return a.s.notices.Deliveries(m, limit)
}
