package server

import (
	"fmt"
	"time"

	"github.com/switchyard/switchyard/switch/attest"
	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/pipeline"
)

// attestationVerifier builds the verifier of SoftPOS attestation tokens from the
// pinned keys and the allowed apps (attestationKeys). The warning, when not empty,
// is for the start's log (attestationWarning).
func attestationVerifier(cfg *config.Config) (v *attest.Verifier, warning string, err error) {
	a := cfg.Attestation
	keys, err := attestationKeys(cfg, cfg.Demo)
	if err != nil {
		return nil, "", err
	}
	v, err = attest.NewVerifier(keys, attest.Options{MaxAge: a.MaxAge.D(), ReplayEntries: a.ReplayEntries, Apps: a.Apps})
	return v, attestationWarning(cfg, cfg.Demo, keys), err
}

// attestationKeys are the keys cfg pins; demo mode (demo) also pins the demo
// attestation service's key, so that `switchyard term` and the bench can send
// real tokens. Outside demo mode the demo key is refused whatever its kid (as
// config.Validate refuses it), so that no path pins it in production.
func attestationKeys(cfg *config.Config, demo bool) ([]attest.Key, error) {
	keys, err := cfg.Attestation.ParseKeys()
	if err != nil {
		return nil, err
	}
	for i, k := range keys {
		if !demo && k.IsDemo() {
			return nil, fmt.Errorf("attestation.keys[%d] (%s): the public demo attestation key is refused outside demo mode", i, k.ID)
		}
	}
	if demo {
		keys = append(keys, attest.DemoSigner().Key())
	}
	return keys, nil
}

// attestationWarning is the warning for the log when keys are pinned outside demo
// mode but no app is listed, so that a token of any app the service signs is
// accepted; "" otherwise.
func attestationWarning(cfg *config.Config, demo bool, keys []attest.Key) string {
	if !demo && len(keys) > 0 && len(cfg.Attestation.Apps) == 0 {
		return "attestation.apps is empty: a SoftPOS token is accepted whatever app it names, a debug build's too; " +
			"list the application IDs of the acquirer's SoftPOS apps (docs/merchant-risk.md)"
	}
	return ""
}

// reloadAttestation applies the attestation keys and apps of cfg to the running
// verifier (a reload): a key withdrawn from attestation.keys, one that leaked say,
// is trusted no more from the next token on, without a restart (until 7 December
// 2026 a reload ignored the attestation section, and did not name it as needing a
// restart). Keys and apps are checked before either is applied: on an error both
// running ones stay, and the error says why.
func (s *Server) reloadAttestation(cfg *config.Config) error {
	if s.attest == nil {
		return nil
	}
	keys, err := attestationKeys(cfg, s.cfg.Demo)
	if err != nil {
		return fmt.Errorf("attestation: %w", err)
	}
	// Checked on a scratch verifier first, so that apps refused after keys
	// applied cannot leave half of the new section in force.
	if _, err := attest.NewVerifier(keys, attest.Options{MaxAge: time.Minute, ReplayEntries: 1, Apps: cfg.Attestation.Apps}); err != nil {
		return fmt.Errorf("attestation: %w", err)
	}
	if err := s.attest.SetApps(cfg.Attestation.Apps); err != nil {
		return fmt.Errorf("attestation: %w", err)
	}
	if err := s.attest.SetKeys(keys); err != nil {
		return fmt.Errorf("attestation: %w", err)
	}
	kids := make([]string, len(keys))
	for i, k := range keys {
		kids[i] = k.ID
	}
	s.log.Info().Strs("kids", kids).Strs("apps", cfg.Attestation.Apps).
		Msg("reload: attestation keys and apps applied; a token signed by a key not listed is refused from now on")
	if w := attestationWarning(cfg, s.cfg.Demo, keys); w != "" {
		s.log.Warn().Msg(w)
	}
	return nil
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
