package issuersim

import (
	"fmt"

	"github.com/rs/zerolog"
)

// Demo is the demo fleet's issuer: a simulator with the demo cards that verifies
// PINs under its demo zone PIN key and takes key changes (0800/161). The demo wiring
// (switchyard serve --demo, the end-to-end tests) starts it and hands it to the
// server, which never builds a simulator itself.
type Demo struct {
	*Sim
	sec *Security
}

// StartDemo starts the demo issuer listening on addr (host:port; port 0 picks one).
func StartDemo(addr string, log zerolog.Logger) (*Demo, error) {
	sec, err := NewDemoSecurity()
	if err != nil {
		return nil, fmt.Errorf("demo issuer keys: %w", err)
	}
	sim, err := Start(Config{Addr: addr, Cards: DemoCards, VerifyPIN: sec.VerifyPIN, KeyChange: sec.KeyChange}, log)
	if err != nil {
		_ = sec.Close()
		return nil, err
	}
	return &Demo{Sim: sim, sec: sec}, nil
}

// Close stops the simulator, then releases its keys.
func (d *Demo) Close() error {
	err := d.Sim.Close()
	if cerr := d.sec.Close(); err == nil {
		err = cerr
	}
	return err
}
