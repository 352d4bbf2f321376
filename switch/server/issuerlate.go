package server

import (
	"github.com/moov-io/iso8583"
)

// issuerAnswerHandlers returns what the link to issuer id does with an answer that
// came after its request timed out (late) and with one that matches no request
// (unmatched): each is counted (switchyard_issuer_errors_total, kind late or
// unmatched) and logged for what it is. They are given to the link at its dial, before
// its goroutines read them.
func (s *Server) issuerAnswerHandlers(id string) (late, unmatched func(m *iso8583.Message)) {
	log := s.log.With().Str("component", "issuer").Str("issuer", id).Logger()
	late = func(m *iso8583.Message) {
		mti, _ := m.GetMTI()
		rrn, _ := m.GetString(37)
		rc, _ := m.GetString(39)
		s.Metrics.IssuerErrors.WithLabelValues(id, "late").Inc()
		if mti == "0110" || mti == "0210" {
			log.Warn().Str("mti", mti).Str("rrn", rrn).Str("rc", rc).Msg("late issuer answer: the transaction was already answered 91 and its reversal queued")
			return
		}
		log.Warn().Str("mti", mti).Str("rrn", rrn).Str("rc", rc).Msg("late issuer answer to an advice: the advice is sent again (a repeat) until one is answered in time")
	}
	unmatched = func(m *iso8583.Message) {
		mti, _ := m.GetMTI()
		rrn, _ := m.GetString(37)
		rc, _ := m.GetString(39)
		s.Metrics.IssuerErrors.WithLabelValues(id, "unmatched").Inc()
		log.Warn().Str("mti", mti).Str("rrn", rrn).Str("rc", rc).Msg("issuer answer matching no request in flight or timed out (the issuer's second answer to a request, or one to no request of this switch): dropped")
	}
	return late, unmatched
}
