package server

import (
	"github.com/moov-io/iso8583"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/lograte"
	"github.com/switchyard/switchyard/switch/issuer"
)

// issuerAnswerHandlers returns what the link to issuer id does with an answer that
// came after its request timed out (late), with one that matches no request
// (unmatched) and with one that has a request's DE 11 and DE 37 but not the MTI of
// that request's answer (wrong: a 0410 to a 0200, not taken for the request's
// answer): each is counted (switchyard_issuer_errors_total, kind late, unmatched or
// wrong-mti) and logged for what it is, at most one line of each kind a second
// (issuer.LogEvery, on the switch's clock) with the count of those left out since
// the one before ("suppressed"): the issuer sends these at will, and a hostile or
// broken one must not flood the log. They are given to the link at its dial,
// before its goroutines read them.
func (s *Server) issuerAnswerHandlers(id string) (late, unmatched func(m *iso8583.Message), wrong func(m *iso8583.Message, request string)) {
	log := s.log.With().Str("component", "issuer").Str("issuer", id).Logger()
	lateGate, unmatchedGate, wrongGate := &lograte.Gate{Every: issuer.LogEvery}, &lograte.Gate{Every: issuer.LogEvery}, &lograte.Gate{Every: issuer.LogEvery}
	// warn is a warning line let through by g, with its count of lines left out;
	// nil (nothing written) when g holds it back.
	warn := func(g *lograte.Gate) *zerolog.Event {
		n, ok := g.Allow(s.now())
		if !ok {
			return nil
		}
		return log.Warn().Int64("suppressed", n)
	}
	late = func(m *iso8583.Message) {
		mti, _ := m.GetMTI()
		s.Metrics.IssuerErrors.WithLabelValues(id, "late").Inc()
		e := warn(lateGate)
		if e == nil {
			return
		}
		rrn, _ := m.GetString(37)
		rc, _ := m.GetString(39)
		if mti == "0110" || mti == "0210" {
			e.Str("mti", mti).Str("rrn", rrn).Str("rc", rc).Msg("late issuer answer: the transaction was already answered 91 and its reversal queued")
			return
		}
		e.Str("mti", mti).Str("rrn", rrn).Str("rc", rc).Msg("late issuer answer to an advice: the advice is sent again (a repeat) until one is answered in time")
	}
	unmatched = func(m *iso8583.Message) {
		s.Metrics.IssuerErrors.WithLabelValues(id, "unmatched").Inc()
		e := warn(unmatchedGate)
		if e == nil {
			return
		}
		mti, _ := m.GetMTI()
		rrn, _ := m.GetString(37)
		rc, _ := m.GetString(39)
		e.Str("mti", mti).Str("rrn", rrn).Str("rc", rc).Msg("issuer answer matching no request in flight or timed out (the issuer's second answer to a request, or one to no request of this switch): dropped")
	}
	wrong = func(m *iso8583.Message, request string) {
		s.Metrics.IssuerErrors.WithLabelValues(id, "wrong-mti").Inc()
		e := warn(wrongGate)
		if e == nil {
			return
		}
		mti, _ := m.GetMTI()
		rrn, _ := m.GetString(37)
		rc, _ := m.GetString(39)
		e.Str("mti", mti).Str("request_mti", request).Str("rrn", rrn).Str("rc", rc).
			Msg("issuer answer of the wrong message type for its request (" + mti + " to a " + request + "): not taken as its answer; the request waits for its answer or times out (91, reversed)")
	}
	return late, unmatched, wrong
}
