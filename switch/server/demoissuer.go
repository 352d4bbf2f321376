package server

import (
	"errors"

	"github.com/rs/zerolog"
)

// DemoIssuer is the issuer simulator of demo mode, as the server sees it: where it
// listens, and how to stop it. The server does not build one (the production switch
// carries no simulator); the demo wiring passes a starter with WithDemoIssuer.
type DemoIssuer interface {
	Addr() string
	Close() error
}

// StartDemoIssuer starts a demo issuer listening on addr (config demo_issuer.addr).
type StartDemoIssuer func(addr string, log zerolog.Logger) (DemoIssuer, error)

// Option changes how New builds a server.
type Option func(*newOptions)

type newOptions struct {
	startDemoIssuer StartDemoIssuer
	startDemoWallet StartDemoWallet
}

// WithDemoIssuer gives a demo-mode server the starter of its issuer simulator, used
// unless demo_issuer.external names an issuer already running. The server closes
// the simulator it started.
func WithDemoIssuer(start StartDemoIssuer) Option {
	return func(o *newOptions) { o.startDemoIssuer = start }
}

var errNoDemoIssuer = errors.New("demo mode without demo_issuer.external needs a demo issuer: " +
	"start the demo with switchyard serve --demo (or pass server.WithDemoIssuer)")

// DemoIssuer returns the demo issuer the server started, or nil.
func (s *Server) DemoIssuer() DemoIssuer { return s.demoSim }
