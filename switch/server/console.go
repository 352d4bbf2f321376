package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/internal/actorname"
	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/console"
	"github.com/switchyard/switchyard/switch/registry"
)

// startConsole mounts the web console (switch/console) on the admin server,
// over the same registry, risk engine, key store and journal as the API; in
// demo mode it adds the demo users first. Its sampler runs in Start's group.
func (s *Server) startConsole() error {
	cc := s.cfg.Admin.Console
	if cc.Disabled {
		return nil
	}
	if s.cfg.Demo {
		n, err := registry.LoadDemoUsers(s.Registry)
		if err != nil {
			return err
		}
		if n > 0 {
			s.log.Info().Int("created", n).Msg("demo console users created")
		}
	}
	// The dashboard's own registry of the few collectors it reads: gathering the
	// switch's whole one every second would ask JetStream for the queue's
	// length each time (the switchyard_saf_* gauges).
	dash := prometheus.NewRegistry()
	for _, col := range []prometheus.Collector{s.Metrics.Transactions, s.Metrics.Latency, s.Metrics.IssuerBreaker, s.Metrics.RuleHits} {
		if err := dash.Register(col); err != nil {
			return err
		}
	}
	c, err := console.New(console.Options{
		Registry:        s.Registry,
		Risk:            s.Risk,
		Keys:            s.Keys,
		Journal:         s.Journal,
		History:         History{J: s.Journal},
		CandidatesDir:   s.cfg.CandidatesRoot(),
		Metrics:         dash,
		SAFBacklog:      func() int { return s.Queue.Len("") },
		Apps:            s.Apps,
		Logger:          s.log.With().Str("component", "console").Logger(),
		TokenName:       s.auth.HasName,
		TLS:             cc.SecureCookie,
		IdleTimeout:     cc.IdleTimeout.D(),
		SessionLifetime: cc.SessionLifetime.D(),
		MaxFailures:     cc.MaxFailures,
		LockoutFor:      cc.Lockout.D(),
		AddrMaxFailures: cc.AddrMaxFailures,
		AddrWindow:      cc.AddrWindow.D(),
		TrustedProxies:  s.proxies,
		Now:             s.cfg.Clock,
	})
	if err != nil {
		return err
	}
	c.Register(s.mux)
	s.console = c
	s.warnTokenUsers(s.cfg.Admin.Tokens)
	return nil
}

// warnTokenUsers logs a warning for each admin token whose name a console user
// has too, or a name that reads as it ("Alice" for the token alice:
// actorname.Same): the oplog records names only and cannot tell the two apart,
// and the review refuses an approval by one of a change the other requested.
// New users may not take such a name (the API and the Users page refuse it); this
// finds the pairs made before that, or by a token added since.
func (s *Server) warnTokenUsers(tokens []admin.Token) {
	users, err := s.Registry.Users()
	if err != nil {
		s.log.Warn().Err(err).Msg("console users not read: admin tokens not compared with their names")
		return
	}
	for _, t := range tokens {
		for _, u := range users {
			if actorname.Same(t.Name, u.Name) {
				s.log.Warn().Str("token", t.Name).Str("user", u.Name).Msg("an admin token and a console user have the same name, or names that read as one, which the oplog cannot tell apart: rename the token, or disable the user and add it under another name")
			}
		}
	}
}

// Console is the web console (nil when admin.console.disabled).
func (s *Server) Console() *console.Console { return s.console }
