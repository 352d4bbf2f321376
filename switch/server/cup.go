package server

import (
	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/cup"
)

// newCUPAdapter puts the UnionPay-style dialect's adapter in front of the pipeline
// for listener lc (the configuration was validated).
func newCUPAdapter(lc config.Listener, s *Server) *cup.Adapter {
	if s.cupSessions == nil {
		s.cupSessions = cup.NewSessions()
	}
	cfg := cup.Config{HSM: s.HSM, Terminals: s.Registry, KeyGrace: s.cfg.Security.KeyGrace.D(), Now: s.cfg.Clock, Sessions: s.cupSessions, Journal: s.Journal,
		Logger:   s.log.With().Str("component", "cup").Str("listener", lc.Name).Logger(),
		Answered: func(mti, rc string) { s.Metrics.Transactions.WithLabelValues(mti, rc, "", "cup").Inc() }}
	if lc.CUP != nil {
		cfg.MAC, _ = cup.ParseMAC(lc.CUP.MAC)
		cfg.AcquirerID = lc.CUP.AcquirerID
		cfg.MACByTerminal = map[string]cup.MACAlgorithm{}
		for tid, v := range lc.CUP.MACByTerminal {
			cfg.MACByTerminal[tid], _ = cup.ParseMAC(v)
		}
	}
	return cup.NewAdapter(cfg, s.Pipeline)
}
