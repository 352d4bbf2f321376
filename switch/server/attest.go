package server

import (
	"fmt"
	"os"
	"time"

	"github.com/switchyard/switchyard/risk/rating"
	"github.com/switchyard/switchyard/rules"
	"github.com/switchyard/switchyard/switch/attest"
	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/merchantrisk"
	"github.com/switchyard/switchyard/switch/pipeline"
	"github.com/switchyard/switchyard/switch/registry"
)

// attestationVerifier builds the verifier of SoftPOS attestation tokens from the
// pinned keys; demo mode also pins the demo attestation service's key, so that
// `switchyard term` and the bench can send real tokens.
func attestationVerifier(cfg *config.Config) (*attest.Verifier, error) {
	keys, err := cfg.Attestation.ParseKeys()
	if err != nil {
		return nil, err
	}
	if cfg.Demo {
		keys = append(keys, attest.DemoSigner().Key())
	}
	return attest.NewVerifier(keys, attest.Options{MaxAge: cfg.Attestation.MaxAge.D(), ReplayEntries: cfg.Attestation.ReplayEntries})
}

// txnPolicies converts the configured void and refund policies.
func txnPolicies(cfg *config.Config) []pipeline.TxnPolicy {
	var out []pipeline.TxnPolicy
	for _, p := range cfg.Refunds.Policies {
		out = append(out, pipeline.TxnPolicy{Kind: p.Kind, Tier: p.Tier, NoVoid: p.Void == "never",
			RefundNextDay: p.RefundFrom == "next-day", MaxRefundPercent: p.MaxRefundPercent})
	}
	return out
}

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
