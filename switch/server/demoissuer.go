package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/hsm"
)

// DemoIssuer is the issuer simulator of demo mode, as the server sees it: where it
// listens, and how to stop it. The server does not build one (the production switch
// carries no simulator); the demo wiring passes a starter with WithDemoIssuer.
type DemoIssuer interface {
	Addr() string
	Close() error
}

// zoneKeyTaker is a DemoIssuer that can be given the switch's current zone PIN key
// (HEXKEY:KCV under the demo ZMK), as issuersim.Demo can.
type zoneKeyTaker interface {
	TakeZoneKey(wp string) error
}

// StartDemoIssuer starts a demo issuer listening on addr (config demo_issuer.addr).
type StartDemoIssuer func(addr string, log zerolog.Logger) (DemoIssuer, error)

// Option changes how New builds a server.
type Option func(*newOptions)

type newOptions struct {
	version         string
	startDemoIssuer StartDemoIssuer
	startDemoWallet StartDemoWallet
}

// WithVersion gives the server its release, which GET /api/v1/info reports
// (default "dev").
func WithVersion(v string) Option {
	return func(o *newOptions) { o.version = v }
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

// syncDemoZoneKey gives a demo issuer just started the switch's current demo.ZPK
// when a zone key change (the README's `zone-key-change demo`) moved it past the
// initial one: the simulator starts on the initial key, and every PIN was declined
// 55 after a restart (found by a trial).
func (s *Server) syncDemoZoneKey(d DemoIssuer) error {
	taker, ok := d.(zoneKeyTaker)
	if !ok {
		return nil
	}
	ctx := hsm.WithActor(context.Background(), "demo-loader")
	cur, err := s.Keys.Key(ctx, hsm.KeyRef{ID: "demo.ZPK"})
	if err != nil || cur.Version == 1 {
		return nil // no zone key yet (a loader error says so), or the initial one
	}
	wp, err := s.HSM.ExportKey(ctx, hsm.ExportKeyRequest{Key: cur.Ref(),
		ExportSpec: hsm.ExportSpec{KEK: hsm.KeyRef{ID: "demo.ZMK"}, Format: hsm.ExportECB}})
	if err != nil {
		return fmt.Errorf("demo issuer: export the current zone PIN key %s under demo.ZMK: %w", cur.Ref(), err)
	}
	if err := taker.TakeZoneKey(wp); err != nil {
		return fmt.Errorf("demo issuer: give it the current zone PIN key %s: %w", cur.Ref(), err)
	}
	s.log.Info().Str("key", cur.Ref().String()).Str("kcv", cur.KCV).Msg("demo issuer given the current zone PIN key")
	return nil
}
