package pipeline

import (
	"time"

	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/registry"
)

// Updates offers terminal application updates (switch/apps.Manager is one).
type Updates interface {
	// Offer records the AV a terminal sent at sign-on or echo and returns the
	// update it is offered, as the DE 48 UP value ("" for none). app is the
	// application the terminal says it runs (DE 48 AN, "" when absent): it is
	// offered only releases of that application.
	Offer(tid, app, appVersion string, now time.Time) string
	// OfferAttested is Offer for a sign-on whose attestation token (DE 48 AJ) was
	// verified and accepted by the terminal checks: app is the token's signed app
	// claim, recorded and offered in place of the AN tag the app writes itself.
	OfferAttested(tid, app, appVersion string, now time.Time) string
}

// tagUpdate is the DE 48 tag of an update offer (docs/terminal-interface.md).
const tagUpdate = "UP"

// offerUpdate adds the terminal's update offer, if any, to the answer of a sign-on
// or echo: DE 48 UP. The cup adapter, which sends its terminals' sign-ins and
// echoes here as ASCII 0800s, passes the offer on in F63 with header processing
// requirement 6 (switch/cup).
//
// attested is the app claim of the sign-on's verified attestation token ("" when
// none: an echo is never checked): the application recorded for the rollout and
// offered, rather than the AN tag, as the purchase's minimum-version check uses it
// (checkRequest). An AN naming another application is not refused, as it is not
// in a purchase, but logged at Warn: a sign-on refused would keep an outdated
// phone from its update, and the attested application is the one acted on.
func (p *Pipeline) offerUpdate(u Updates, t *txn, resp *message.Builder, attested string) {
	var v string
	if attested != "" {
		if an := t.req.TLV.AppName; an != "" && an != attested {
			p.log.Warn().Str("tid", t.req.TID).Str("an", an).Str("attested_app", attested).
				Msg("sign-on: AN names another application than the verified attestation token: the token's is recorded and offered")
		}
		v = u.OfferAttested(t.req.TID, attested, t.req.TLV.AppVersion, p.now())
	} else {
		v = u.Offer(t.req.TID, t.req.TLV.AppName, t.req.TLV.AppVersion, p.now())
	}
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

// echoMayOffer says whether an echo, which is answered 00 without the terminal checks
// (it is a keep-alive), may have its AV recorded and get the update offer, whose
// download token stands for the terminal: only when it proves to come from the
// terminal as a sign-on must, with a MAC verified under the terminal's key (t.macOK,
// set by authenticate or by a dialect adapter), and when a sign-on would not be
// refused for the terminal's status or its merchant's. A terminal without a MAC key
// cannot prove it in an echo, whoever knows its terminal ID could send one: it
// reports its version and gets its offer at sign-on. (Until 6 December 2026 every
// echo naming a registered terminal did, a suspended one's too.)
func (p *Pipeline) echoMayOffer(t *txn) bool {
	if !t.macOK || p.terminals == nil {
		return false
	}
	if why := p.terminals.Standing(t.req.TID); why != registry.ReasonNone {
		p.log.Debug().Str("tid", t.req.TID).Str("reason", string(why)).Msg("echo: no update offer, the terminal would not sign on")
		return false
	}
	return true
}
