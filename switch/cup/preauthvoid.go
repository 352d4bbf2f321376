package cup

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
)

// preauthVoidWindow is how far back the journal is searched for the
// pre-authorization a pre-authorization void names by reference (preauthByReference):
// UnionPay holds a pre-authorization open for 30 days. (Records the journal's
// retention removed are not found.)
const preauthVoidWindow = 30 * 24 * time.Hour

// zeroSTAN is 61.2 of a pre-authorization void that names its pre-authorization by
// reference instead of by STAN.
const zeroSTAN = "000000"

// The journal's reasons of a pre-authorization void refused for its original.
const (
	// ReasonPreauthNotFound: no pre-authorization of the terminal matches the
	// void's F37, or its F38, card and amount.
	ReasonPreauthNotFound = "preauth-void-original-not-found"
	// ReasonPreauthAmbiguous: more than one does (F38, card and amount), and the
	// switch does not guess which hold to release.
	ReasonPreauthAmbiguous = "preauth-void-original-ambiguous"
)

// original is the request a pre-authorization void takes back, found by reference:
// its STAN and its entry as the session would hold it.
type original struct {
	stan string
	e    stanEntry
	rrn  string
}

// preauthByReference finds the pre-authorization that pre-authorization void f of
// terminal tid names by reference, its 61.2 zeros: UnionPay terminals send 61.1 and
// 61.2 as zeros for the voids and completions of a pre-authorization, which may
// have been made in another batch or on another day, with 61.3 its date and F38 its
// approval code, and some F37 its RRN. It is, among the terminal's
// pre-authorizations (0100, approved) of the last preauthVoidWindow:
//
//   - with F37: the one of that RRN, of the void's card (and of F38 when sent);
//   - else the one of F38's approval code, the void's card and F4 (when sent): one
//     not reversed, else (a void sent again after the first released the hold) one
//     reversed. Two in the same tier are ambiguous: refused 25
//     ReasonPreauthAmbiguous, never a guess.
//
// None is 25 ReasonPreauthNotFound; neither F37 nor F38, or F38 without a card, is
// 30. The card is compared by the pipeline's card hash (Config.CardHash), else by
// the masked PAN; 61.3 is not compared (the journal keeps the switch's UTC date, the
// terminal sends its local one). Errors are *mapError (a journal that cannot be read
// is 96).
func (a *Adapter) preauthByReference(ctx context.Context, f *Frame, tid, track2 string) (*original, error) {
	rrn, auth := strings.TrimSpace(f.Str(37)), strings.TrimSpace(f.Str(38))
	pan := f.Str(2)
	if pan == "" {
		pan, _, _ = strings.Cut(track2, "=")
	}
	switch {
	case rrn == "" && auth == "":
		return nil, formatErr(38, "a pre-authorization void whose 61.2 is zeros names its pre-authorization by F37 (its RRN) or F38 (its approval code); neither was sent")
	case rrn == "" && pan == "":
		return nil, formatErr(2, "a pre-authorization void naming its pre-authorization by its approval code (F38) needs the card (F2 or F35)")
	}
	var amount int64 = -1
	if f.Has(4) {
		amount, _ = strconv.ParseInt(f.Str(4), 10, 64)
	}
	sameCard := func(r *journal.Record) bool {
		if pan == "" {
			return true // by F37 alone: the RRN names one record
		}
		if a.cfg.CardHash != nil && r.CardHash != "" {
			return r.CardHash == a.cfg.CardHash(pan)
		}
		return r.PANMasked != "" && r.PANMasked == message.MaskPAN(pan)
	}
	now := a.cfg.Now()
	q := journal.Query{TID: tid, From: now.Add(-preauthVoidWindow), To: now.Add(time.Minute)}
	if rrn != "" {
		q.RRN = rrn
	}
	var open, reversed []*journal.Record
	err := a.cfg.Journal.Scan(ctx, q, func(r *journal.Record) bool {
		switch {
		case r.TID != tid || r.MTI != "0100" || r.Type != "preauth" || !r.Approved() || !stanRecord(r) || !sameCard(r):
		case rrn != "" && (r.RRN != rrn || auth != "" && strings.TrimSpace(r.AuthCode) != auth):
		case rrn == "" && (strings.TrimSpace(r.AuthCode) != auth || amount >= 0 && r.Amount != amount && r.RequestedAmount() != amount):
		case r.Reversed():
			reversed = append(reversed, r)
		default:
			open = append(open, r)
		}
		return true
	})
	if err != nil {
		return nil, &mapError{rc: message.RCSystemMalfunction, field: 61, reason: fmt.Sprintf("looking up the pre-authorization in the journal: %v", err)}
	}
	by := "F37 " + rrn
	if rrn == "" {
		by = "F38, card and amount"
	}
	tier := open
	if len(tier) == 0 {
		tier = reversed
	}
	switch len(tier) {
	case 0:
		return nil, &mapError{rc: message.RCOriginalNotFound, field: 61, token: ReasonPreauthNotFound,
			reason: "61.2 is zeros and no pre-authorization of the terminal in the last 30 days matches " + by}
	case 1:
		r := tier[0]
		return &original{stan: r.STAN, e: entryOf(r), rrn: r.RRN}, nil
	}
	return nil, &mapError{rc: message.RCOriginalNotFound, field: 61, token: ReasonPreauthAmbiguous, reason: fmt.Sprintf("61.2 is zeros and %d pre-authorizations of the terminal match %s: which hold to release is not guessed", len(tier), by)}
}
