package server

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/moov-io/iso8583"

	"github.com/switchyard/switchyard/switch/issuer"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/metrics"
	"github.com/switchyard/switchyard/switch/saf"
)

// adviceSender delivers store-and-forward items to an issuer link: the first try with
// the item's MTI (0420, 0120, 0220), repeats with the repeat MTI (0421...). An answer
// acknowledges the advice, whatever its response code (a decline of a reversal, 25
// no original, included), except 91 and 96: the issuer says it did not process the
// advice (its host inoperative, a system malfunction), and the advice is tried again
// as a failed try is (unprocessedAdvice). Until the third release of 6 December 2026 an answer of 91 took a
// reversal out of the queue, and the card stayed charged. An answer without DE 39
// says nothing of the advice's fate: a failed try too, said in a warning at most once
// a minute per issuer (the link's sender is the issuer's), with the count of those
// not said since, so that an issuer that answers so is seen. Until the third release of 6 December 2026
// such an answer acknowledged the advice. Since the fifth, the error wraps
// saf.ErrNotAcknowledged: an advice answered so saf.park_after times is parked, not
// repeated for ever.
func (s *Server) adviceSender(l *issuer.Link) saf.Sender {
	p, log := s.Pipeline, s.log
	var noRC logEvery // answers without DE 39 (one line a minute)
	return func(ctx context.Context, it *saf.Item, repeat bool) error {
		if !l.Up() {
			return issuer.ErrUnavailable
		}
		m := iso8583.NewMessage(message.SpecASCII)
		mti := it.MTI
		if repeat {
			mti = saf.RepeatMTI(mti)
		}
		m.MTI(mti)
		for id, v := range it.Fields {
			if err := m.Field(id, v); err != nil {
				return fmt.Errorf("advice %s DE %d: %w", it.RRN, id, err)
			}
		}
		if sealed, ok := it.Binary[2]; ok {
			pan, err := p.OpenSealedPAN(sealed)
			if err != nil {
				return err
			}
			_ = m.Field(2, pan)
		}
		if sealed, ok := it.Binary[14]; ok { // the card's expiry, sealed as the card is
			exp, err := p.OpenSealedExpiry(sealed)
			if err != nil {
				return fmt.Errorf("advice %s DE 14: %w", it.RRN, err)
			}
			if err := m.Field(14, exp); err != nil {
				return fmt.Errorf("advice %s DE 14: %w", it.RRN, err)
			}
		}
		if sealed, ok := it.Binary[55]; ok { // the card's chip data (a TC, an ARQC), filtered
			icc, err := p.OpenSealedICC(sealed)
			if err != nil {
				return err
			}
			if err := m.Field(55, icc); err != nil {
				return fmt.Errorf("advice %s DE 55: %w", it.RRN, err)
			}
		}
		// An advice queued with its DE 11 and DE 7 (a completion's, a stand-in's:
		// the record journals them, and DE 90 of its 0420 names them) carries them
		// on every try; the others get the link's next STAN and the time of the try.
		if _, ok := it.Fields[11]; !ok {
			_ = m.Field(7, message.FormatDE7(time.Now()))
			_ = m.Field(11, l.NextSTAN())
		}
		_ = m.Field(32, l.AcquirerID())
		resp, err := l.Send(ctx, m, 0)
		if err != nil {
			return err
		}
		got, _ := resp.GetMTI()
		rc, _ := resp.GetString(39)
		if len(rc) != 2 {
			if n, ok := noRC.due(s.now(), time.Minute); ok {
				log.Warn().Str("issuer", l.ID()).Str("mti", mti).Str("answer", got).Str("rrn", it.RRN).Int64("not_logged", n).
					Msg("advice answered without DE 39: not acknowledged, sent again as a repeat (at most one such line a minute per issuer)")
			}
			return fmt.Errorf("advice %s %s: issuer %s answered %s without DE 39: %w, sent again", it.RRN, mti, l.ID(), got, saf.ErrNotAcknowledged)
		}
		if unprocessedAdvice(rc) {
			return fmt.Errorf("advice %s %s: issuer %s answered %s %s, not processed: sent again", it.RRN, mti, l.ID(), got, rc)
		}
		log.Debug().Str("issuer", l.ID()).Str("mti", mti).Str("rrn", it.RRN).Str("answer", got).Msg("advice acknowledged")
		return nil
	}
}

// logEvery lets a log line through at most once a period, and counts the ones it
// held back since the last it let through.
type logEvery struct {
	mu   sync.Mutex
	last time.Time
	held int64
}

// due reports whether a line may go at now (none went within every before it) and, if
// so, how many were held back since the last one.
func (e *logEvery) due(now time.Time, every time.Duration) (held int64, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.last.IsZero() && now.Sub(e.last) < every {
		e.held++
		return 0, false
	}
	held, e.last, e.held = e.held, now, 0
	return held, true
}

// unprocessedAdvice reports whether an issuer's answer code rc to an advice says it
// did not process it: 91 (issuer or switch inoperative) or 96 (system malfunction).
func unprocessedAdvice(rc string) bool {
	return rc == message.RCIssuerUnavailable || rc == message.RCSystemMalfunction
}

// safCounts reads the store-and-forward queue's figures by issuer for /metrics.
func (s *Server) safCounts() map[string]metrics.SAFCounts {
	out := map[string]metrics.SAFCounts{}
	for issuer, st := range s.Queue.IssuerStats() {
		out[issuer] = metrics.SAFCounts{Queued: s.Queue.Len(issuer), Tries: st.Sent.Load(), Acked: st.Acked.Load(),
			Failed: st.Failed.Load(), Suppressed: st.Suppressed.Load(), Held: st.Held.Load(), HeldLong: st.HeldLong.Load(), Parked: st.Parked.Load()}
	}
	return out
}
