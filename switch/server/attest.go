package server

import (
	"github.com/switchyard/switchyard/switch/attest"
	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/pipeline"
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
