package pipeline

import (
	"errors"
	"fmt"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
)

// Refuse answers a request that the front end does not give the pipeline because a
// listener limit is reached (frontend.Refuser; reason: frontend.ReasonSourceBusy, its
// source address has max_in_flight_per_source requests in progress). The answer is
// the response MTI with the echoed fields, DE 39 91 (the switch cannot take it now:
// the terminal tries again, as after any 91) and DE 48 RS reason; it carries no MAC
// and nothing is journaled, authorized or forwarded, as for a request answered 30,
// so that it costs no more than that: the limit guards the switch's capacity. A
// request that does not decode gets the pipeline's 30 (or, unanswerable, an error).
func (p *Pipeline) Refuse(c *frontend.Conn, body []byte, reason string) (frontend.Response, error) {
	req, err := message.Decode(body, c.Dialect)
	if err != nil {
		return p.formatError(c, err)
	}
	if message.ResponseMTI(req.MTI) == "" {
		return frontend.Response{}, fmt.Errorf("refused request: MTI %s is not a request", req.MTI)
	}
	raw, err := message.NewResponseBuilder(req).Set(39, message.RCIssuerUnavailable).
		Set(48, message.ReasonTLV(reason)).Bytes(nil)
	if err != nil {
		return frontend.Response{}, fmt.Errorf("refused request %s from %s: %w", req.MTI, c.Remote, err)
	}
	return frontend.Response{Body: raw}, nil
}

// formatError answers 30 a request that did not decode (err, from message.Decode),
// when its MTI, DE 11 and DE 41 were read; else it returns err, which closes the
// connection.
func (p *Pipeline) formatError(c *frontend.Conn, err error) (frontend.Response, error) {
	var fe *message.FormatError
	if !errors.As(err, &fe) || !fe.Answerable() {
		return frontend.Response{}, err
	}
	p.metrics.FormatErrors.Inc()
	// A wrong length prefix shifts every field after it: the DE 41 and DE 11 read
	// then may be digits of the PAN or track (the 30 echoes them to the sender
	// only). They are logged only when DE 41 names a registered terminal, which
	// a shifted read does not.
	tid, stan := fe.TID, fe.STAN
	if p.terminals == nil {
		tid, stan = "", ""
	} else if _, ok := p.terminals.Terminal(tid); !ok {
		tid, stan = "", ""
	}
	p.log.Warn().Str("listener", c.Listener).Str("remote", c.Remote.String()).Str("mti", fe.MTI).
		Str("tid", tid).Str("stan", stan).Int("de", fe.Field).Str("error", fe.Err.Error()).Msg("format error: answered 30")
	raw, perr := message.NewFormatErrorResponse(fe, c.Dialect).Pack()
	if perr != nil {
		return frontend.Response{}, errors.Join(err, perr)
	}
	return frontend.Response{Body: raw}, nil
}
