package pipeline

import (
	"time"

	"github.com/switchyard/switchyard/switch/message"
)

// Updates offers terminal application updates (switch/apps.Manager is one).
type Updates interface {
	// Offer records the AV a terminal sent at sign-on or echo and returns the
	// update it is offered, as the DE 48 UP value ("" for none).
	Offer(tid, appVersion string, now time.Time) string
}

// tagUpdate is the DE 48 tag of an update offer (docs/terminal-interface.md).
const tagUpdate = "UP"

// offerUpdate adds the terminal's update offer, if any, to the answer of a sign-on
// or echo: DE 48 UP. The cup adapter, which sends its terminals' sign-ins and
// echoes here as ASCII 0800s, passes the offer on in F63 with header processing
// requirement 6 (switch/cup).
func (p *Pipeline) offerUpdate(u Updates, t *txn, resp *message.Builder) {
	v := u.Offer(t.req.TID, t.req.TLV.AppVersion, p.now())
	if v == "" {
		return
	}
	de48, err := message.AppendTLV(nil, tagUpdate, v)
	if err != nil {
		p.log.Error().Err(err).Str("tid", t.req.TID).Msg("update offer not sent")
		return
	}
	resp.Set(48, string(de48))
}
