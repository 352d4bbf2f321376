package cup

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/pipeline"
)

// Batch upload (0320). After a settlement the switch answered 95, a UnionPay terminal
// sends the transactions of its batch again, one 0320 each, for reconciliation: they
// were authorized online and the switch journaled them. Such an upload is answered 00
// only when the journal holds the transaction it names, approved and not reversed.
// The same MTI carries the upload of EMV offline approvals (60.1 = 36, or 60.3 = 205),
// which the switch has never seen: it captures them (Config.Offline, the pipeline's
// CaptureOffline) so that the merchant is paid, after checking that the upload is
// readable, its amount and currency sane, the card's approval (F13 + F12) within
// the look-back, its transaction certificate of that amount in F55
// (offlineCertificate) and its amount within the listener's ceiling
// (Config.OfflineMaxAmount; the pipeline applies the merchant's own limits); an upload
// of one the journal already holds (sent again after a lost
// answer) is answered 00 with its record's RRN, never captured twice. Anything else
// gets a code other than 00, so that the terminal keeps the transaction, and is
// counted (Config.UploadUnmatched), logged with the masked PAN and journaled as a
// refusal (the pipeline journals its own). (Until 5 December 2026 every 0320 was
// answered 00 and dropped; then, until the offline capture, an offline approval was
// answered 96 and kept by the terminal.)

// OfflineCapturer captures an offline approval from the pipeline's request of it
// (*pipeline.Pipeline is one; see pipeline.CaptureOffline).
type OfflineCapturer interface {
	CaptureOffline(ctx context.Context, c *frontend.Conn, body []byte) (frontend.Response, error)
}

// The 60.3 codes of a batch upload that the switch reads: the end of an upload (202,
// 207), carrying no transaction, and the upload of EMV offline approvals (205).
const (
	uploadEnd        = "202"
	uploadEndIC      = "207"
	uploadOfflineIC  = "205"
	typeOfflineSale  = "36" // 60.1 of an offline sale's upload
	uploadLookBack   = 7 * 24 * time.Hour
	uploadClockAhead = time.Minute
	// offlineClockAhead is how far ahead of the switch's UTC clock the card's
	// approval time may be: F12 and F13 are the terminal's local time, read as UTC,
	// and the local time of UTC+14 is that far ahead.
	offlineClockAhead = 14*time.Hour + uploadClockAhead
)

// offlineSale is how an offline approval reaches the pipeline: the purchase it is
// (pipeline.CaptureOffline), timed by the card (toPipeline).
var offlineSale = Kind{Name: "offline-sale", MTI: "0320", Type: typeOfflineSale, ASCIIMTI: "0200", ASCIIProc: message.PCPurchase, Original: "offline"}

// The reasons (the journal's, the log's and the metric's) of an upload answered other
// than 00.
const (
	UploadOfflineNotCaptured = "offline-not-captured"  // an offline approval, and no Config.Offline to capture it (96)
	UploadOfflineStale       = "offline-out-of-window" // the card's approval is older than the look-back, or ahead of the clock (12)
	UploadOfflineRefused     = "offline-refused"       // the pipeline refused the capture (its code: the terminal inactive...)
	UploadInvalidAmount      = "invalid-amount"        // an offline approval of nothing (13)
	// UploadCurrencyNotAccepted: an offline approval in a currency (F49) the
	// listener does not take (Config.Currencies) (12).
	UploadCurrencyNotAccepted = "currency-not-accepted"
	// UploadOfflineNoCertificate: an offline approval without the card's proof of
	// it: no chip data (F55), chip data that does not parse or has no cryptogram
	// (9F26) or amount authorized (9F02) (30), a cryptogram that is no TC (9F27), or
	// one of another amount or currency than F4 and F49 (12).
	UploadOfflineNoCertificate = "offline-no-certificate"
	UploadNotInJournal         = "not-in-journal" // an online transaction the journal lacks, or has declined or reversed (25)
	UploadUnreadable           = "unreadable"     // no amount or STAN: not one transaction the switch can read (30)
	UploadJournalError         = "journal-error"  // the journal could not be searched (96)
	// UploadOfflineOverLimit: an offline approval over the listener's ceiling
	// (Config.OfflineMaxAmount), or over the merchant's per-transaction limit (the
	// pipeline's refusal, pipeline.ReasonOfflineOverLimit) (61); also counts the
	// pipeline's refusals for the merchant's daily or monthly amount (61) and daily
	// count (65) limits (pipeline.ReasonOfflineDailyLimit...), journaled under
	// their own reasons.
	UploadOfflineOverLimit = pipeline.ReasonOfflineOverLimit
)

// batchUpload answers an 0320 whose MAC verified (see the comment above).
func (a *Adapter) batchUpload(ctx context.Context, c *frontend.Conn, f *Frame, ans *Frame, sit Situation, macf MACFunc, s *session, identity string) (frontend.Response, error) {
	f60 := ParseF60(f.Str(60))
	if (f60.NetCode == uploadEnd || f60.NetCode == uploadEndIC) && !f.Has(2) && !f.Has(4) && !f.Has(35) {
		return a.reply(ans, sit, message.RCApproved, macf, "batch-upload-end")
	}
	offline := f60.Type == typeOfflineSale || f60.NetCode == uploadOfflineIC
	stan := uploadSTAN(f)
	amount, err := strconv.ParseInt(f.Str(4), 10, 64)
	if !f.Has(4) || err != nil || stan == "" {
		return a.uploadUnmatched(ctx, c, f, ans, sit, macf, message.RCFormatError, UploadUnreadable, offline, "no amount (F4) or STAN")
	}
	if offline && a.cfg.Offline == nil {
		return a.uploadUnmatched(ctx, c, f, ans, sit, macf, message.RCSystemMalfunction, UploadOfflineNotCaptured, offline, "offline approval: not captured")
	}
	pan := ""
	if offline && f.Has(2) {
		pan = message.MaskPAN(f.Str(2))
	}
	found, err := a.journaled(ctx, sit.TID, stan, strings.TrimSpace(f.Str(37)), amount, offline, pan)
	if err != nil {
		a.log.Error().Err(err).Str("tid", sit.TID).Str("stan", stan).Msg("cup: batch upload: journal not searched")
		return a.uploadUnmatched(ctx, c, f, ans, sit, macf, message.RCSystemMalfunction, UploadJournalError, offline, "journal not searched")
	}
	if found == nil && offline {
		return a.captureOffline(ctx, c, f, ans, sit, macf, s, identity, amount)
	}
	if found == nil {
		return a.uploadUnmatched(ctx, c, f, ans, sit, macf, message.RCOriginalNotFound, UploadNotInJournal, offline,
			"no approved, unreversed transaction of this STAN and amount in the journal")
	}
	ans.Set(37, found.RRN)
	return a.reply(ans, sit, message.RCApproved, macf, "")
}

// uploadSTAN is the STAN of the transaction an upload names: 61.2 when sent, else F11.
func uploadSTAN(f *Frame) string {
	if f61 := f.Str(61); len(f61) >= 12 {
		return f61[6:12]
	}
	return f.Str(11)
}

// captureOffline hands an offline approval the journal does not hold to the pipeline
// to capture, once the upload proves readable and sane: the card (F2, or a track 2),
// an amount, the currency, no payment code, and the card's approval time (F13 + F12)
// within the look-back. The pipeline's answer is the terminal's (its RRN and approval
// code); one other than 00 is counted and logged as an unmatched upload (the pipeline
// journaled it).
func (a *Adapter) captureOffline(ctx context.Context, c *frontend.Conn, f *Frame, ans *Frame, sit Situation, macf MACFunc, s *session, identity string, amount int64) (frontend.Response, error) {
	unmatched := func(rc, reason, why string) (frontend.Response, error) {
		return a.uploadUnmatched(ctx, c, f, ans, sit, macf, rc, reason, true, why)
	}
	if amount <= 0 {
		return unmatched(message.RCInvalidAmount, UploadInvalidAmount, "offline approval of no amount")
	}
	if cur := f.Str(49); cur != "" && (len(cur) != 3 || !isDigits(cur)) {
		return unmatched(message.RCFormatError, UploadUnreadable, "currency (F49) is not 3 digits")
	}
	if !a.acceptsCurrency(f.Str(49)) {
		return unmatched(message.RCInvalidTransaction, UploadCurrencyNotAccepted, "currency (F49) "+f.Str(49)+" is not one the listener takes (cup.currencies)")
	}
	if strings.HasPrefix(f.Str(22), "03") || !f.Has(2) && !f.Has(35) {
		return unmatched(message.RCFormatError, UploadUnreadable, "no card (F2 or F35): an offline approval is a card's")
	}
	now := a.cfg.Now()
	at, err := message.ParseDE7(f.Str(13)+f.Str(12), now)
	if err != nil || len(f.Str(13)) != 4 || len(f.Str(12)) != 6 {
		return unmatched(message.RCFormatError, UploadUnreadable, "no valid time of the card's approval (F13 MMDD + F12 hhmmss)")
	}
	if now.Sub(at) > uploadLookBack || at.Sub(now) > offlineClockAhead {
		return unmatched(message.RCInvalidTransaction, UploadOfflineStale,
			"the card's approval of "+at.Format("01-02 15:04:05")+" is outside the upload look-back")
	}
	if rc, why := offlineCertificate(f, amount); rc != "" {
		return unmatched(rc, UploadOfflineNoCertificate, why)
	}
	if ceiling := a.cfg.OfflineMaxAmount; ceiling > 0 && amount > ceiling {
		return unmatched(message.RCExceedsAmountLimit, UploadOfflineOverLimit,
			fmt.Sprintf("offline approval over the listener's ceiling of %d (offline_max_amount)", ceiling))
	}
	refuse := func(err error) (frontend.Response, error) {
		var me *mapError
		if errors.As(err, &me) {
			return unmatched(me.rc, UploadUnreadable, me.Error())
		}
		return frontend.Response{}, err
	}
	track2, err := a.track2(ctx, f, sit.TID)
	if err != nil {
		return refuse(err)
	}
	m, err := toPipeline(f, offlineSale, s, identity, track2, nil, now, a.content, nil)
	if err != nil {
		return refuse(err)
	}
	inner := *c
	inner.Dialect = message.DialectASCII
	inner.MACVerified = true // F64 verified by Process
	resp, err := a.cfg.Offline.CaptureOffline(ctx, &inner, m.body)
	if err != nil {
		return frontend.Response{}, fmt.Errorf("cup: terminal %s: offline capture: %w", sit.TID, err)
	}
	pr, err := parseASCII(resp.Body)
	if err != nil {
		if resp.Sent != nil {
			resp.Sent(false)
		}
		return frontend.Response{}, fmt.Errorf("cup: terminal %s: the pipeline's answer to an offline capture: %w", sit.TID, err)
	}
	rc := pr.Str(39)
	ans.Set(37, pr.Str(37)).Set(38, pr.Str(38))
	if rc != message.RCApproved {
		reason := reasonOf(pr.Str(48))
		if a.cfg.UploadUnmatched != nil {
			counted := UploadOfflineRefused
			switch reason {
			case UploadOfflineOverLimit, pipeline.ReasonOfflineDailyLimit, pipeline.ReasonOfflineMonthlyLimit, pipeline.ReasonOfflineDailyCount:
				// A merchant's limit: counted as the ceiling is (the journal's
				// reason says which).
				counted = UploadOfflineOverLimit
			}
			a.cfg.UploadUnmatched(counted)
		}
		pan := message.MaskPAN(f.Str(2))
		a.log.Warn().Str("tid", sit.TID).Str("stan", uploadSTAN(f)).Str("rrn", pr.Str(37)).Str("pan", pan).Int64("amount", amount).
			Str("rc", rc).Str("reason", reason).Msg("cup: offline approval not captured: the terminal keeps it; reconcile by hand")
	}
	sit.forwarded = true // counted by the pipeline
	out, err := a.replyFrame(ans, sit, rc, macf)
	if err != nil {
		if resp.Sent != nil {
			resp.Sent(false)
		}
		return frontend.Response{}, err
	}
	return frontend.Response{Body: out, Sent: resp.Sent}, nil
}

// offlineCertificate checks that the upload of an offline approval carries the card's
// proof of it, and returns the code and reason of a refusal ("" when it does): chip
// data (F55) that parses, with the application cryptogram (9F26) and its information
// (9F27) naming a transaction certificate (TC: the card approved offline), and the
// amount authorized (9F02) equal to F4 and, when present, the currency (5F2A) equal
// to F49 (156 when absent). An AAC goes on: the pipeline refuses it 12
// card-declined-offline. The switch cannot check the TC itself (the issuer's key);
// the issuer checks it in the advice, over 9F02 among others. (Until 6 December 2026
// an upload without F55, or with F55 that did not parse, was captured: anyone holding
// a terminal's MAK could have the merchant paid any amount on any card number the
// card never approved, and a real TC of a small amount could carry a larger F4.)
func offlineCertificate(f *Frame, amount int64) (rc, why string) {
	icc := f.Bytes(55)
	if len(icc) == 0 {
		return message.RCFormatError, "no chip data (F55): an offline approval is the card's transaction certificate"
	}
	tags, err := message.ICCValues(strings.ToUpper(hex.EncodeToString(icc)))
	if err != nil {
		return message.RCFormatError, "chip data (F55) does not parse: " + err.Error()
	}
	if len(tags["9F26"]) != 16 {
		return message.RCFormatError, "chip data (F55) without an 8-byte application cryptogram (9F26)"
	}
	if len(tags["9F02"]) != 12 {
		return message.RCFormatError, "chip data (F55) without the amount authorized (9F02)"
	}
	kind, ok := message.CryptogramKind(strings.ToUpper(hex.EncodeToString(icc)))
	switch {
	case !ok:
		return message.RCFormatError, "chip data (F55) without the cryptogram information (9F27)"
	case kind == message.CryptogramAAC:
		return "", "" // the card declined: the pipeline's refusal (12, decided by the card)
	case kind != message.CryptogramTC:
		return message.RCInvalidTransaction, "the card's cryptogram (9F27) is no transaction certificate: the card did not approve offline"
	}
	if n, err := strconv.ParseInt(tags["9F02"], 10, 64); err != nil || n != amount {
		return message.RCInvalidTransaction, "the card's amount authorized (9F02) is not F4"
	}
	cur := f.Str(49)
	if cur == "" {
		cur = "156"
	}
	if c, ok := tags["5F2A"]; ok && c != "0"+cur {
		return message.RCInvalidTransaction, "the card's currency (5F2A) is not F49"
	}
	return "", ""
}

// reasonOf is the reason (RS) of the pipeline's DE 48, "" when none.
func reasonOf(de48 string) string {
	tlv, err := message.ParseTLV(de48)
	if err != nil {
		return ""
	}
	return tlv.Reason
}

// journaled returns the terminal's approved, unreversed authorization, purchase,
// refund or completion of the last week with that STAN and amount (and RRN when the
// upload names one), or nil. The journal keeps no batch number: STAN, amount and RRN
// decide. For the upload of an offline approval (offline) it returns only an offline
// capture written before its record carried the card's key (journal.Record.CaptureKey
// empty: before 6 December 2026) of the same card (pan, masked; "" when the upload
// names the card by its track only): the upload sent again across the upgrade. Any
// other capture is found by the pipeline by that key, and an online transaction is
// never an offline approval's: until 6 December 2026 an offline approval whose STAN
// and amount were those of an earlier sale of the terminal (a STAN counter reset, a
// terminal replaced under its ID), or of another card's capture, was answered 00 with
// that record's RRN and never captured.
func (a *Adapter) journaled(ctx context.Context, tid, stan, rrn string, amount int64, offline bool, pan string) (*journal.Record, error) {
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
		if offline && (!r.Offline || r.CaptureKey != "" || pan != "" && r.PANMasked != pan) {
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
