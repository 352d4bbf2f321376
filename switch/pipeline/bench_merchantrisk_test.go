package pipeline

import (
	"testing"

	"github.com/switchyard/switchyard/risk/rating"
	"github.com/switchyard/switchyard/switch/journal"
)

// chanNotices is the notices' hand-over as notify.Outbox does it for a merchant
// with a webhook: a copy into a bounded channel, drained elsewhere.
type chanNotices chan journal.Record

func (c chanNotices) Notice(rec *journal.Record, _ string) {
	select {
	case c <- journal.Record{RRN: rec.RRN, MID: rec.MID, TID: rec.TID, Type: rec.Type, Amount: rec.Amount, PANMasked: rec.PANMasked}:
	default:
	}
}

// BenchmarkProcessApprovalRulesRated is BenchmarkProcessApprovalRules with the
// merchant rated (its grade's limits applied to the rules' input) and a webhook
// (every approval handed to the notices): what issue 19 adds to the hot path.
func BenchmarkProcessApprovalRulesRated(b *testing.B) {
	h := newHarness(b, withRisk, withTerminal(termNoKey))
	var book rating.Book
	book.Set([]rating.State{{Merchant: testMID, Grade: "C", Limits: rating.Limits{SoftPOS: 100000}}})
	h.p.ratings = &book
	ch := make(chanNotices, 1024)
	go func() {
		for range ch {
		}
	}()
	defer close(ch)
	h.p.notices = ch
	benchRules(b, h)
}
