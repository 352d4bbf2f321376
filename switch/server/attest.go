package server

import (
	"github.com/switchyard/switchyard/switch/attest"
	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/pipeline"
)

// attestationVerifier builds the verifier of SoftPOS attestation tokens from the
// pinned keys and the allowed apps; demo mode also pins the demo attestation
// service's key, so that `switchyard term` and the bench can send real tokens. The
// warning, when not empty, is for the start's log: keys are pinned outside demo
// mode but no app is listed, so a token of any app the service signs is accepted.
func attestationVerifier(cfg *config.Config) (v *attest.Verifier, warning string, err error) {
	a := cfg.Attestation
	keys, err := a.ParseKeys()
	if err != nil {
		return nil, "", err
	}
	if !cfg.Demo && len(keys) > 0 && len(a.Apps) == 0 {
		warning = "attestation.apps is empty: a SoftPOS token is accepted whatever app it names, a debug build's too; " +
			"list the application IDs of the acquirer's SoftPOS apps (docs/merchant-risk.md)"
	}
	if cfg.Demo {
		keys = append(keys, attest.DemoSigner().Key())
	}
	v, err = attest.NewVerifier(keys, attest.Options{MaxAge: a.MaxAge.D(), ReplayEntries: a.ReplayEntries, Apps: a.Apps})
	return v, warning, err
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
