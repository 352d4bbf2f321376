package issuersim

import (
	"fmt"
	"net"
)

// OutageMode is how the simulated issuer host fails during an outage.
type OutageMode int32

// The outage modes.
const (
	// OutageNone: the issuer is up.
	OutageNone OutageMode = iota
	// OutageDown: the host is gone. Its connections are closed and connection attempts
	// are refused until the outage ends; then it listens again on the same address.
	OutageDown
	// OutageSilent: the host hangs. Connections stay open, but nothing is answered,
	// not even echoes, until the outage ends.
	OutageSilent
)

// ParseOutageMode reads "down" or "silent".
func ParseOutageMode(s string) (OutageMode, error) {
	switch s {
	case "down":
		return OutageDown, nil
	case "silent":
		return OutageSilent, nil
	}
	return OutageNone, fmt.Errorf("issuer simulator: outage mode %q: want down or silent", s)
}

func (m OutageMode) String() string {
	switch m {
	case OutageNone:
		return "none"
	case OutageDown:
		return "down"
	case OutageSilent:
		return "silent"
	}
	return fmt.Sprintf("OutageMode(%d)", int32(m))
}

// StartOutage makes the issuer fail in mode until EndOutage. Starting an outage while one
// is in progress is an error, so a harness notices when its schedule overlaps.
func (s *Sim) StartOutage(mode OutageMode) error {
	if mode != OutageDown && mode != OutageSilent {
		return fmt.Errorf("issuer simulator: cannot start an outage of mode %v", mode)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return fmt.Errorf("issuer simulator: closed")
	}
	if cur := OutageMode(s.outage.Load()); cur != OutageNone {
		return fmt.Errorf("issuer simulator: an outage (%v) is already in progress", cur)
	}
	s.outage.Store(int32(mode))
	if mode == OutageDown {
		s.downAddr = s.ln.Addr().String()
		_ = s.ln.Close() // the accept loop returns
		s.ln = nil
		for c := range s.conns {
			_ = c.Close()
		}
	}
	s.log.Info().Stringer("mode", mode).Msg("issuer-sim: outage started")
	return nil
}

// EndOutage brings the issuer back: after OutageDown it listens again on its address.
func (s *Sim) EndOutage() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return fmt.Errorf("issuer simulator: closed")
	}
	mode := OutageMode(s.outage.Load())
	if mode == OutageNone {
		return fmt.Errorf("issuer simulator: no outage in progress")
	}
	if mode == OutageDown {
		ln, err := net.Listen("tcp", s.downAddr)
		if err != nil {
			return fmt.Errorf("issuer simulator: listen again on %s after the outage: %w", s.downAddr, err)
		}
		s.ln = ln
		s.wg.Add(1)
		go s.accept(ln)
	}
	s.outage.Store(int32(OutageNone))
	s.log.Info().Stringer("mode", mode).Msg("issuer-sim: outage ended")
	return nil
}

// Outage returns the current outage mode (OutageNone when the issuer is up).
func (s *Sim) Outage() OutageMode { return OutageMode(s.outage.Load()) }

// addr is the listening address, or during an outage of mode OutageDown the address the
// simulator listens on again when it ends.
func (s *Sim) addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return s.downAddr
	}
	return s.ln.Addr().String()
}

// connsOpen lists the open connections (for tests).
func (s *Sim) connsOpen() []net.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]net.Conn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}
