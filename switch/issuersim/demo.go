package issuersim

import "fmt"

// Demo is the demo fleet's issuer: a simulator with the demo cards that verifies
// PINs under its demo zone PIN key and takes key changes (0800/161). The demo wiring
// (switchyard serve --demo, the end-to-end tests) starts it and hands it to the
// server, which never builds a simulator itself.
type Demo struct {
	*Sim
	sec *Security
}

// StartDemo starts the demo issuer listening on cfg.Addr (host:port; port 0 picks
// one) and logging to cfg.Logger. The demo sets the cards, PIN verification and key
// changes itself: cfg.Cards, VerifyPIN and KeyChange are replaced by the demo's.
func StartDemo(cfg Config) (*Demo, error) {
	sec, err := NewDemoSecurity()
	if err != nil {
		return nil, fmt.Errorf("demo issuer keys: %w", err)
	}
	cfg.Cards, cfg.VerifyPIN, cfg.KeyChange = DemoCards, sec.VerifyPIN, sec.KeyChange
	if cfg.LedgerLimit == 0 {
		cfg.LedgerLimit = DemoLedgerLimit
	}
	sim, err := Start(cfg)
	if err != nil {
		_ = sec.Close()
		return nil, err
	}
	return &Demo{Sim: sim, sec: sec}, nil
}

// TakeZoneKey gives the demo issuer a zone PIN key as a key change (0800/161) would:
// wp is HEXKEY:KCV under the demo ZMK. A restarted demo switch whose zone key was
// changed gives the new simulator its current key this way (it starts on the
// initial one).
func (d *Demo) TakeZoneKey(wp string) error { return d.sec.KeyChange(wp) }

// Close stops the simulator, then releases its keys.
func (d *Demo) Close() error {
	err := d.Sim.Close()
	if cerr := d.sec.Close(); err == nil {
		err = cerr
	}
	return err
}
