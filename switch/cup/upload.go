package cup

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
)

// Batch upload (0320). After a settlement the switch answered 95, a UnionPay terminal
// sends the transactions of its batch again, one 0320 each, for reconciliation: they
// were authorized online and the switch journaled them. The same MTI carries the
// upload of EMV offline approvals (60.1 = 36, or 60.3 = 205), which the switch has
// never seen and must capture for the merchant to be paid. The switch does not capture
// those yet (docs/cup-dialect.md, Not done yet): an upload is answered 00 only when the
// journal holds the transaction it names, approved and not reversed, and anything
// else gets a code other than 00, so that the terminal keeps the transaction, and is
// counted (Config.UploadUnmatched), logged with the masked PAN and journaled as a
// refusal. (Until 5 December 2026 every 0320 was answered 00 and dropped: an offline
// sale uploaded that way was never journaled nor cleared.)

// The 60.3 codes of a batch upload that the switch reads: the end of an upload (202,
// 207), carrying no transaction, and the upload of EMV offline approvals (205).
const (
	uploadEnd        = "202"
	uploadEndIC      = "207"
	uploadOfflineIC  = "205"
	typeOfflineSale  = "36" // 60.1 of an offline sale's upload
	uploadLookBack   = 7 * 24 * time.Hour
	uploadClockAhead = time.Minute
)

// The reasons (the journal's, the log's and the metric's) of an upload answered other
// than 00.
const (
	UploadOfflineNotCaptured = "offline-not-captured" // an offline approval: the switch does not capture it yet (96)
	UploadNotInJournal       = "not-in-journal"       // an online transaction the journal lacks, or has declined or reversed (25)
	UploadUnreadable         = "unreadable"           // no amount or STAN: not one transaction the switch can read (30)
	UploadJournalError       = "journal-error"        // the journal could not be searched (96)
)

// batchUpload answers an 0320 whose MAC verified (see the comment above).
func (a *Adapter) batchUpload(ctx context.Context, c *frontend.Conn, f *Frame, ans *Frame, sit Situation, macf MACFunc) (frontend.Response, error) {
	f60 := ParseF60(f.Str(60))
	if (f60.NetCode == uploadEnd || f60.NetCode == uploadEndIC) && !f.Has(2) && !f.Has(4) && !f.Has(35) {
		return a.reply(ans, sit, message.RCApproved, macf, "batch-upload-end")
	}
	offline := f60.Type == typeOfflineSale || f60.NetCode == uploadOfflineIC
	stan := f.Str(11)
	if f61 := f.Str(61); len(f61) >= 12 {
		stan = f61[6:12]
	}
	amount, err := strconv.ParseInt(f.Str(4), 10, 64)
	if !f.Has(4) || err != nil || stan == "" {
		return a.uploadUnmatched(ctx, c, f, ans, sit, macf, message.RCFormatError, UploadUnreadable, offline, "no amount (F4) or STAN")
	}
	if offline {
		return a.uploadUnmatched(ctx, c, f, ans, sit, macf, message.RCSystemMalfunction, UploadOfflineNotCaptured, offline, "offline approval: not captured")
	}
	found, err := a.journaled(ctx, sit.TID, stan, strings.TrimSpace(f.Str(37)), amount)
	if err != nil {
		a.log.Error().Err(err).Str("tid", sit.TID).Str("stan", stan).Msg("cup: batch upload: journal not searched")
		return a.uploadUnmatched(ctx, c, f, ans, sit, macf, message.RCSystemMalfunction, UploadJournalError, offline, "journal not searched")
	}
	if found == nil {
		return a.uploadUnmatched(ctx, c, f, ans, sit, macf, message.RCOriginalNotFound, UploadNotInJournal, offline,
			"no approved, unreversed transaction of this STAN and amount in the journal")
	}
	ans.Set(37, found.RRN)
	return a.reply(ans, sit, message.RCApproved, macf, "")
}

// journaled returns the terminal's approved, unreversed authorization, purchase,
// refund or completion of the last week with that STAN and amount (and RRN when the
// upload names one), or nil. The journal keeps no batch number: STAN, amount and RRN
// decide.
func (a *Adapter) journaled(ctx context.Context, tid, stan, rrn string, amount int64) (*journal.Record, error) {
	if a.cfg.Journal == nil {
		return nil, errNoJournal
	}
	now := a.cfg.Now()
	var found *journal.Record
	err := a.cfg.Journal.Scan(ctx, journal.Query{TID: tid, From: now.Add(-uploadLookBack), To: now.Add(uploadClockAhead)}, func(r *journal.Record) bool {
		if r.STAN != stan || r.Amount != amount || !r.Approved() || r.Reversed() || (rrn != "" && r.RRN != rrn) {
			return true
		}
		if r.MTI != "0100" && r.MTI != "0200" && r.MTI != "0220" {
			return true
		}
		if found == nil || r.Received.After(found.Received) {
			found = r
		}
		return true
	})
	return found, err
}

// errNoJournal is the answer of journaled without a journal to search.
var errNoJournal = errors.New("no journal configured")

// uploadUnmatched answers an upload the switch does not hold with rc (never 00),
// journals it as a refusal (MTI 0320, the masked PAN), counts it by reason and logs it
// at Warn with the masked PAN, so that an operator reconciles it.
func (a *Adapter) uploadUnmatched(ctx context.Context, c *frontend.Conn, f *Frame, ans *Frame, sit Situation, macf MACFunc, rc, reason string, offline bool, why string) (frontend.Response, error) {
	if a.cfg.UploadUnmatched != nil {
		a.cfg.UploadUnmatched(reason)
	}
	r := refusalOf(f, rc, "batch-upload-"+reason)
	pan := ""
	if r.PAN != "" {
		pan = message.MaskPAN(r.PAN)
	}
	a.log.Warn().Str("tid", sit.TID).Str("stan", f.Str(11)).Str("orig_stan", f.Str(61)).Str("rrn", f.Str(37)).
		Str("pan", pan).Int64("amount", r.Amount).Bool("offline", offline).Str("rc", rc).Str("reason", reason).
		Msg("cup: batch upload not matched (" + why + "): the terminal keeps it; reconcile by hand")
	if a.cfg.Refusals != nil {
		rrn, err := a.cfg.Refusals.JournalRefusal(context.WithoutCancel(ctx), c, r)
		if err != nil {
			a.log.Error().Err(err).Str("tid", sit.TID).Str("stan", f.Str(11)).Msg("cup: unmatched batch upload not journaled; answered all the same")
		} else {
			ans.Set(37, rrn)
		}
	}
	return a.reply(ans, sit, rc, macf, "")
}
