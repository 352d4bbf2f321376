package cup

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
)

// recordsJournal is a journal of fixed records (Scan filters by terminal and time).
type recordsJournal []*journal.Record

func (j recordsJournal) Scan(_ context.Context, q journal.Query, fn func(*journal.Record) bool) error {
	for _, r := range j {
		if (q.TID == "" || r.TID == q.TID) && !r.Received.Before(q.From) && r.Received.Before(q.To) && !fn(r) {
			return nil
		}
	}
	return nil
}

// TestBatchUploadMatchesJournal: a batch upload (0320) is answered 00 only for a
// transaction the journal holds approved and unreversed (STAN, amount, RRN); an
// offline approval, which the switch does not capture yet, gets 96 and one the
// journal lacks 25, so that the terminal keeps them; both are journaled as refusals
// and logged with the masked PAN only. The end of an upload, which carries no
// transaction, is 00. Until 5 December 2026 every 0320 was answered 00 and dropped.
func TestBatchUploadMatchesJournal(t *testing.T) {
	mak := []byte("0123456789ABCDEF")
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	const pan = "6225880212345678"
	jr := recordsJournal{
		{RRN: "000000000101", TID: "T0000001", MTI: "0200", ProcCode: "000000", STAN: "000011", Amount: 1000, RC: "00", Received: now.Add(-time.Hour)},
		{RRN: "000000000102", TID: "T0000001", MTI: "0200", ProcCode: "000000", STAN: "000012", Amount: 2000, RC: "00", Received: now.Add(-time.Hour), ReversedBy: "000000000103"},
		{RRN: "000000000104", TID: "T0000001", MTI: "0200", ProcCode: "000000", STAN: "000013", Amount: 3000, RC: "51", Received: now.Add(-time.Hour)},
	}
	refs := &fakeRefusals{}
	var logs bytes.Buffer
	counted := map[string]int{}
	a := NewAdapter(Config{HSM: &fakeHSM{mak: mak}, Terminals: fakeTerminals{}, Journal: jr, Refusals: refs,
		Logger: zerolog.New(&logs), Now: func() time.Time { return now },
		Answered: func(mti, rc string) { counted[mti+"/"+rc]++ }}, &fakePipeline{})
	term := &Terminal{TID: "T0000001", MID: "000000000000001", mak: mak, batch: "000007",
		TPDU: TPDU{0x60, 0, 3, 0, 0}, Header: Header{0x60, 0x31, 0, 0x31, 0, 0}}
	conn := &frontend.Conn{Listener: "cup", Dialect: message.DialectCUP}
	upload := func(f60, stan, rrn string, amount string) *Frame {
		t.Helper()
		f := NewFrame(term.TPDU, term.Header, "0320").Set(2, pan).Set(3, "000000").Set(11, term.NextSTAN()).
			Set(41, term.TID).Set(42, term.MID).Set(49, "156").Set(60, f60).Set(37, rrn).Set(4, amount)
		if stan != "" {
			f.Set(61, "000007"+stan)
		}
		return exchange(t, a, conn, f, term.MACOf)
	}
	for _, c := range []struct {
		name, f60, stan, rrn, amount, rc string
	}{
		{"journaled sale", "00000007203", "000011", "", "000000001000", "00"},
		{"journaled sale with its RRN", "00000007203", "000011", "000000000101", "000000001000", "00"},
		{"journaled sale, other RRN", "00000007203", "000011", "000000000999", "000000001000", "25"},
		{"journaled sale, other amount", "00000007203", "000011", "", "000000001001", "25"},
		{"reversed sale", "00000007203", "000012", "", "000000002000", "25"},
		{"declined sale", "00000007203", "000013", "", "000000003000", "25"},
		{"unknown STAN", "00000007203", "000099", "", "000000001000", "25"},
		{"offline sale (60.1 36)", "36000007000", "000021", "", "000000005000", "96"},
		{"IC offline approval (60.3 205)", "00000007205", "000022", "", "000000006000", "96"},
		{"offline sale without an amount", "36000007000", "000023", "", "", "30"},
		{"end of upload", "00000007207", "", "", "", "00"},
	} {
		f60 := c.f60
		if c.name == "end of upload" {
			f := NewFrame(term.TPDU, term.Header, "0320").Set(11, term.NextSTAN()).Set(41, term.TID).Set(42, term.MID).Set(60, f60).Set(48, "0003")
			body, _ := f.Encode(term.MACOf)
			resp, err := a.Process(context.Background(), conn, body)
			if err != nil {
				t.Fatal(err)
			}
			if ans, _ := Decode(resp.Body); ans.Str(39) != "00" {
				t.Errorf("%s: %s, want 00", c.name, Summary(ans))
			}
			continue
		}
		ans := upload(f60, c.stan, c.rrn, c.amount)
		if ans.Str(39) != c.rc || ans.MTI() != "0330" || !ans.Has(64) {
			t.Errorf("%s: %s (MAC %v), want %s", c.name, Summary(ans), ans.Has(64), c.rc)
		}
		if c.rc == "00" && ans.Str(37) != "000000000101" {
			t.Errorf("%s: F37 %q, want the journaled sale's RRN", c.name, ans.Str(37))
		}
	}
	if len(refs.got) != 8 {
		t.Fatalf("%d unmatched uploads journaled, want 8: %+v", len(refs.got), refs.got)
	}
	for _, r := range refs.got {
		if r.MTI != "0320" || r.RC == "00" || !strings.HasPrefix(r.Reason, "batch-upload-") || r.PAN != pan {
			t.Errorf("refusal %+v", r)
		}
	}
	if counted["0320/00"] != 3 || counted["0320/25"] != 5 || counted["0320/96"] != 2 || counted["0320/30"] != 1 {
		t.Errorf("counted %v", counted)
	}
	if strings.Contains(logs.String(), pan) || !strings.Contains(logs.String(), message.MaskPAN(pan)) {
		t.Errorf("log has the clear PAN or not the masked one:\n%s", logs.String())
	}
}

// offlineICC is the chip data (F55) of an offline approval of amount fen in currency
// (5F2A, n4): the card's cryptogram (9F26), its information (9F27, cid: 40 a TC, 80
// an ARQC), the amount authorized (9F02) and the currency.
func offlineICC(amount int64, currency, cid string) []byte {
	b, err := hex.DecodeString("9F26081122334455667788" + "9F2701" + cid + "9F3602000C" +
		fmt.Sprintf("9F0206%012d", amount) + "5F2A02" + currency)
	if err != nil {
		panic(err)
	}
	return b
}

// offlinePipeline is the fake pipeline as the capturer of offline approvals: it
// records the request and answers as the fake pipeline does (rc, RRN 000000000042).
type offlinePipeline struct{ *fakePipeline }

func (p offlinePipeline) CaptureOffline(ctx context.Context, c *frontend.Conn, body []byte) (frontend.Response, error) {
	return p.Process(ctx, c, body)
}

// TestOfflineUploadCaptured: with a capturer, the upload of an offline approval
// reaches the pipeline as the purchase it is (0200/000000), timed by the card (DE 7 =
// F13 + F12, DE 12 and 13 the card's), under the STAN of 61.2, with the card and the
// amount, and its answer (00, the record's RRN) is the terminal's. One the journal
// already holds is answered 00 with its RRN without the pipeline (an upload sent
// again). One without the card's time, of no amount or older than the look-back is
// refused by the adapter (30, 13, 12) and journaled as a refusal; one the pipeline
// refuses keeps the pipeline's code and is counted offline-refused.
func TestOfflineUploadCaptured(t *testing.T) {
	mak := []byte("0123456789ABCDEF")
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	const pan = "6225880212345678"
	jr := recordsJournal{
		{RRN: "000000000201", TID: "T0000001", MTI: "0200", ProcCode: "000000", STAN: "000031", Amount: 3100, RC: "00", Received: now.Add(-time.Hour), Offline: true,
			PANMasked: message.MaskPAN(pan)},
		// Not the upload of STAN 000061, 62 or 63 of 6100 sent again: an online sale,
		// a capture keyed by its card (the pipeline finds it by its key), another
		// card's capture.
		{RRN: "000000000202", TID: "T0000001", MTI: "0200", ProcCode: "000000", STAN: "000061", Amount: 6100, RC: "00", Received: now.Add(-time.Hour),
			PANMasked: message.MaskPAN(pan)},
		{RRN: "000000000203", TID: "T0000001", MTI: "0200", ProcCode: "000000", STAN: "000062", Amount: 6100, RC: "00", Received: now.Add(-time.Hour), Offline: true,
			PANMasked: message.MaskPAN(pan), CaptureKey: "00112233445566778899aabbccddeeff"},
		{RRN: "000000000204", TID: "T0000001", MTI: "0200", ProcCode: "000000", STAN: "000063", Amount: 6100, RC: "00", Received: now.Add(-time.Hour), Offline: true,
			PANMasked: "622588******9999"},
	}
	p := &fakePipeline{}
	refs := &fakeRefusals{}
	counted := map[string]int{}
	a := NewAdapter(Config{HSM: &fakeHSM{mak: mak}, Terminals: fakeTerminals{}, Journal: jr, Refusals: refs, Offline: offlinePipeline{p},
		Now: func() time.Time { return now }, UploadUnmatched: func(reason string) { counted[reason]++ }}, p)
	term := &Terminal{TID: "T0000001", MID: "000000000000001", mak: mak, batch: "000007",
		TPDU: TPDU{0x60, 0, 3, 0, 0}, Header: Header{0x60, 0x31, 0, 0x31, 0, 0}}
	conn := &frontend.Conn{Listener: "cup", Dialect: message.DialectCUP}
	upload := func(stan string, amount int64, at time.Time, edit func(f *Frame)) *Frame {
		t.Helper()
		f, err := term.Build(Txn{Kind: "upload", PAN: pan, Expiry: "2912", Amount: amount, Offline: true, OrigSTAN: stan, ApprovedAt: at})
		if err != nil {
			t.Fatal(err)
		}
		f.SetBytes(55, offlineICC(amount, "0156", "40"))
		if edit != nil {
			edit(f)
		}
		return exchange(t, a, conn, f, term.MACOf)
	}
	at := time.Date(2026, 12, 4, 18, 30, 15, 0, time.UTC)
	ans := upload("000021", 5000, at, func(f *Frame) { f.Set(38, "A1B2C3") })
	r := p.last()
	if ans.Str(39) != "00" || ans.Str(37) != "000000000042" || ans.MTI() != "0330" || !ans.Has(64) || r == nil {
		t.Fatalf("offline upload: %s (pipeline got %v)", Summary(ans), r != nil)
	}
	if r.MTI != "0200" || r.ProcCode != "000000" || r.DE7 != "1204183015" || r.LocalDate != "1204" || r.LocalTime != "183015" ||
		r.STAN != "000021" || r.PAN != pan || r.Amount != 5000 || r.AuthCode != "A1B2C3" || r.Currency != "156" {
		t.Errorf("the pipeline's request of the upload: %+v", r)
	}
	// An offline approval whose STAN and amount are those of an online sale of the
	// terminal (its STAN counter reset), of a capture keyed by its card, or of another
	// card's capture goes to the pipeline: until 6 December 2026 it was answered 00
	// with that record's RRN and never captured.
	for _, stan := range []string{"000061", "000062", "000063"} {
		n := len(p.reqs)
		if ans := upload(stan, 6100, at, nil); ans.Str(39) != "00" || ans.Str(37) != "000000000042" || len(p.reqs) != n+1 {
			t.Errorf("offline upload of STAN %s, an earlier record's STAN and amount: %s, %d requests to the pipeline; want captured", stan, Summary(ans), len(p.reqs)-n)
		}
	}
	// Captured before the capture key (the journal holds it, of this card): 00 with
	// its RRN, the pipeline not asked.
	before := len(p.reqs)
	if again := upload("000031", 3100, at, nil); again.Str(39) != "00" || again.Str(37) != "000000000201" || len(p.reqs) != before {
		t.Errorf("upload of a captured approval: %s, %d requests to the pipeline", Summary(again), len(p.reqs)-before)
	}
	for _, c := range []struct {
		name   string
		amount int64
		at     time.Time
		edit   func(f *Frame)
		rc     string
	}{
		{"without a valid time of the card's approval", 5000, at, func(f *Frame) { f.Set(13, "1340") }, "30"},
		{"of no amount", 0, at, func(f *Frame) { f.Set(4, "000000000000") }, "13"},
		{"older than the look-back", 5000, now.Add(-8 * 24 * time.Hour), nil, "12"},
		// The card's proof of its approval (since 6 December 2026): without it anyone
		// holding the terminal's MAK could capture any amount on any card number.
		{"without chip data (F55)", 5000, at, func(f *Frame) { f.Msg.UnsetField(55) }, "30"},
		{"with chip data that does not parse", 5000, at, func(f *Frame) { f.SetBytes(55, []byte{0x9F, 0x26, 0x08, 0x11}) }, "30"},
		{"without the cryptogram (9F26)", 5000, at, func(f *Frame) { f.SetBytes(55, offlineICC(5000, "0156", "40")[11:]) }, "30"},
		{"with an ARQC, not a TC", 5000, at, func(f *Frame) { f.SetBytes(55, offlineICC(5000, "0156", "80")) }, "12"},
		{"with a TC of another amount (9F02)", 5000, at, func(f *Frame) { f.SetBytes(55, offlineICC(100, "0156", "40")) }, "12"},
		{"with a TC of another currency (5F2A)", 5000, at, func(f *Frame) { f.SetBytes(55, offlineICC(5000, "0840", "40")) }, "12"},
	} {
		if ans := upload("000041", c.amount, c.at, c.edit); ans.Str(39) != c.rc {
			t.Errorf("offline upload %s: %s, want %s", c.name, Summary(ans), c.rc)
		}
	}
	if len(p.reqs) != before || len(refs.got) != 9 {
		t.Errorf("refused uploads: %d reached the pipeline, %d journaled as refusals; want none and 9", len(p.reqs)-before, len(refs.got))
	}
	for _, r := range refs.got[3:] {
		if r.Reason != "batch-upload-"+UploadOfflineNoCertificate {
			t.Errorf("refusal of an upload without the card's certificate: reason %q, want batch-upload-%s", r.Reason, UploadOfflineNoCertificate)
		}
	}
	if counted[UploadOfflineNoCertificate] != 6 {
		t.Errorf("counted %v, want 6 %s", counted, UploadOfflineNoCertificate)
	}
	p.rc = "58"
	if ans := upload("000051", 5000, at, nil); ans.Str(39) != "58" || counted[UploadOfflineRefused] != 1 {
		t.Errorf("offline upload the pipeline refuses: %s, counted %v", Summary(ans), counted)
	}
}
