package cup

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/pipeline"
)

// Refusals journals the card transactions the adapter refuses itself (a bad MAC, a
// request that does not map): *pipeline.Pipeline is one.
type Refusals interface {
	JournalRefusal(ctx context.Context, c *frontend.Conn, r pipeline.Refusal) (string, error)
}

// refused answers a card transaction the adapter refuses without the pipeline, after
// journaling it (Config.Refusals) as the pipeline journals an ASCII terminal's refused
// request: the answer carries the record's RRN in F37. why is logged; reason is the
// record's short token. A journal that fails is logged and the refusal answered all
// the same (nothing was authorized or forwarded).
func (a *Adapter) refused(ctx context.Context, c *frontend.Conn, f *Frame, ans *Frame, sit Situation, rc string, macf MACFunc, why, reason string) (frontend.Response, error) {
	if a.cfg.Refusals != nil && cardMTI(f.MTI()) {
		rrn, err := a.cfg.Refusals.JournalRefusal(context.WithoutCancel(ctx), c, refusalOf(f, rc, reason))
		if err != nil {
			a.log.Error().Err(err).Str("tid", sit.TID).Str("stan", f.Str(11)).Str("rc", rc).Msg("cup: refusal not journaled; answered all the same")
		} else {
			ans.Set(37, rrn)
		}
	}
	return a.reply(ans, sit, rc, macf, why)
}

// cardMTI reports whether mti is one of the dialect's card transactions (not sign-in,
// echo or batch upload).
func cardMTI(mti string) bool {
	switch mti {
	case "0100", "0200", "0220", "0400", "0500":
		return true
	}
	return false
}

// refusalOf is the journal's view of a refused request f: the pipeline's MTI and
// processing code when f maps onto one, the card's PAN when it is readable without a
// key (F2, or a clear track 2), never the track itself.
func refusalOf(f *Frame, rc, reason string) pipeline.Refusal {
	r := pipeline.Refusal{MTI: f.MTI(), ProcCode: f.Str(3), TID: f.Str(41), MID: f.Str(42), STAN: f.Str(11),
		Currency: f.Str(49), EntryMode: f.Str(22), RC: rc, DecidedBy: "cup", Reason: reason}
	if k, ok := KindOf(f); ok {
		r.MTI = k.ASCIIMTI
		if k.ASCIIProc != "" {
			r.ProcCode = k.ASCIIProc
		}
	}
	if len(r.EntryMode) > 3 {
		r.EntryMode = r.EntryMode[:3]
	}
	r.Amount, _ = strconv.ParseInt(f.Str(4), 10, 64)
	pan := f.Str(2)
	if pan == "" && f.Has(35) && parseF53(f.Str(53)).trackEnc != '1' {
		if t, err := cleanTrack2(f.Str(35)); err == nil {
			pan, _, _ = strings.Cut(t, "=")
		}
	}
	if len(pan) >= 12 && len(pan) <= 19 && isDigits(pan) {
		r.PAN = pan
	}
	return r
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// refusalReason is the journal's token for a request that does not map: what kind of
// refusal and which field, never the field's content.
func refusalReason(me *mapError) string {
	if me.token != "" {
		return me.token
	}
	kind := "refused"
	switch me.rc {
	case message.RCFormatError:
		kind = "format-error"
	case message.RCIncorrectPIN:
		return "pin-block-invalid"
	case message.RCDuplicate:
		return "duplicate-stan-other-content"
	case message.RCSecurityViolation:
		kind = "security"
	}
	if me.field > 0 {
		return fmt.Sprintf("%s-F%d", kind, me.field)
	}
	return kind
}
