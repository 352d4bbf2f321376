package server

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/cup"
	"github.com/switchyard/switchyard/switch/message"
)

// newCUPAdapter puts the UnionPay-style dialect's adapter in front of the pipeline
// for listener lc (the configuration was validated).
func newCUPAdapter(lc config.Listener, s *Server) *cup.Adapter {
	if s.cupSessions == nil {
		s.cupSessions = cup.NewSessions()
	}
	cfg := cup.Config{HSM: cupHSM(s.HSM), KeyVersion: s.currentKeyVersion, KeyCreated: s.keyCreated, Terminals: s.Registry, KeyGrace: s.cfg.Security.KeyGrace.D(), Now: s.cfg.Clock, Sessions: s.cupSessions, Journal: s.Journal, Refusals: s.Pipeline, Offline: s.Pipeline, NextRRN: s.Pipeline.NextRRN,
		Logger: s.log.With().Str("component", "cup").Str("listener", lc.Name).Logger(),
		Answered: func(mti, rc string) {
			s.Metrics.Transactions.WithLabelValues(mti, rc, "", "cup").Inc()
			if rc == message.RCFormatError { // the adapter's 30s: a field or the frame not as the dialect has it
				s.Metrics.FormatErrors.Inc()
			}
		},
		UploadUnmatched: func(reason string) { s.Metrics.CUPUploadsUnmatched.WithLabelValues(reason).Inc() },
		KeyRefused:      func(reason string) { s.Metrics.CUPKeyRefusals.WithLabelValues(reason).Inc() },
		TestTraffic:     func(action string) { s.Metrics.CUPTestMode.WithLabelValues(action).Inc() },
		// The requests' content fingerprints are journaled: keyed alike on every
		// node and across restarts, from the card hash key.
		ContentKey: s.Pipeline.DerivedKey(cup.ContentKeyLabel),
		// A pre-authorization void naming its pre-authorization by reference is
		// matched to the journal's record by the card's keyed hash.
		CardHash: s.Pipeline.CardHash}
	if lc.CUP != nil {
		cfg.MAC, _ = cup.ParseMAC(lc.CUP.MAC)
		cfg.AcquirerID = lc.CUP.AcquirerID
		cfg.SingleLengthPIN = lc.CUP.SingleLengthPINKeys
		cfg.SingleLengthMAC = lc.CUP.SingleLengthMACKeys
		cfg.KeyLifetime = lc.CUP.KeyLifetime.D()
		cfg.SignInMaxAge = lc.CUP.SignInMaxAge.D()
		cfg.OfflineMaxAmount = lc.CUP.OfflineMaxAmount
		cfg.MaxSTANsPerKey = lc.CUP.MaxSTANsPerKey
		cfg.Currencies = lc.CUP.Currencies
		cfg.TestMode, _ = cup.ParseTestMode(lc.CUP.TestMode)
		cfg.MACByTerminal = map[string]cup.MACAlgorithm{}
		for tid, v := range lc.CUP.MACByTerminal {
			cfg.MACByTerminal[tid], _ = cup.ParseMAC(v)
		}
	}
	if s.cfg.HSM.IsPayShield() {
		for _, w := range cupPayShieldWarnings(lc) {
			cfg.Logger.Warn().Msg(w)
		}
	}
	return cup.NewAdapter(cfg, s.Pipeline)
}

// cupPayShieldWarnings says what of a cup listener's configuration cannot work with
// hsm.backend payshield: the UnionPay "ECB" MAC (cup.mac ecb, the default, for the
// listener or a terminal of mac_by_terminal), which no payShield host command
// computes (every such terminal's MAC'd requests are refused), and the single-length
// keys of sign-in schemes 001 and 003, which a payShield does not make (those
// sign-ins fail). A warning at start, not a configuration error: the demo's cup
// listener and the bench's keep their ECB MACs and scheme 003 with either backend,
// and its other dialects work on a payShield.
func cupPayShieldWarnings(lc config.Listener) []string {
	var out []string
	var c config.CUPListener
	if lc.CUP != nil {
		c = *lc.CUP
	}
	if m, _ := cup.ParseMAC(c.MAC); m == cup.MACECB {
		out = append(out, fmt.Sprintf("cup listener %s: cup.mac is ecb (the default): the UnionPay ECB MAC is no payShield host command, so with hsm.backend payshield every MAC'd request of its terminals is refused; set cup.mac: x919 (terminals MACing with ANSI X9.19), or use the software backend (docs/hsm.md)", lc.Name))
	}
	var ecb []string
	for tid, v := range c.MACByTerminal {
		if m, _ := cup.ParseMAC(v); m == cup.MACECB {
			ecb = append(ecb, tid)
		}
	}
	if len(ecb) > 0 {
		slices.Sort(ecb)
		out = append(out, fmt.Sprintf("cup listener %s: cup.mac_by_terminal gives %d terminal(s) the ECB MAC (%s), which the payShield backend refuses: their MAC'd requests will be refused; give them x919", lc.Name, len(ecb), strings.Join(ecb, ", ")))
	}
	if c.SingleLengthPINKeys || c.SingleLengthMACKeys {
		out = append(out, fmt.Sprintf("cup listener %s: single_length_pin_keys or single_length_mac_keys is set, but a payShield makes no single-length key: sign-ins with scheme 001 or 003 fail (answered 96) with hsm.backend payshield; terminals sign in with scheme 004", lc.Name))
	}
	return out
}

// cupHSM gives the cup adapter the HSM with data decryption (a terminal's encrypted
// track under its TDK). The software HSM has it; the payShield client does not yet
// (its M2 command is not implemented), so with that backend an encrypted track is
// refused with a clear error while everything else works.
func cupHSM(h hsm.HSM) cup.HSM {
	if c, ok := h.(cup.HSM); ok {
		return c
	}
	return noDecrypt{h}
}

type noDecrypt struct{ hsm.HSM }

func (n noDecrypt) DecryptData(_ context.Context, ref hsm.KeyRef, _ []byte) ([]byte, error) {
	return nil, fmt.Errorf("decrypt track data under %s: the configured HSM backend has no data decryption (payShield M2 is not implemented): %w", ref, hsm.ErrUnavailable)
}

// keyCreated is when version of key id was stored (the key store's created_at): the
// cup adapter vouches for a terminal's requests by its STANs since its MAK was made.
func (s *Server) keyCreated(id string, version int) (time.Time, error) {
	rec, err := s.Keys.Key(context.Background(), hsm.KeyRef{ID: id, Version: version})
	if err != nil {
		return time.Time{}, err
	}
	return rec.CreatedAt, nil
}

// currentKeyVersion is the version of key id in force now (the key store's
// in-memory view): the cup adapter compares it with the one a terminal's sign-in
// gave it. A current version that is not usable (revoked, expired) is an error, so
// that the adapter never sends a terminal such a key again (cup.Config.KeyLifetime).
func (s *Server) currentKeyVersion(id string) (int, error) {
	rec, err := s.Keys.Key(context.Background(), hsm.KeyRef{ID: id})
	if err != nil {
		return 0, err
	}
	now := time.Now()
	if s.cfg.Clock != nil {
		now = s.cfg.Clock()
	}
	if err := rec.Usable(now, hsm.Inbound); err != nil {
		return 0, fmt.Errorf("key %s: %w", id, err)
	}
	return rec.Version, nil
}
