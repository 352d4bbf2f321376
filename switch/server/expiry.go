package server

import "github.com/switchyard/switchyard/switch/metrics"

// keyExpiries reads the key store's expiries for
// switchyard_key_expiry_timestamp_seconds (metrics.KeyExpiryCollector): key IDs,
// types and dates, never key material.
func (s *Server) keyExpiries() []metrics.KeyExpiry {
	es := s.Keys.Expiries()
	out := make([]metrics.KeyExpiry, len(es))
	for i, e := range es {
		out[i] = metrics.KeyExpiry{ID: e.ID, Type: string(e.Type), ExpiresAt: e.ExpiresAt}
	}
	return out
}
