package cup

import (
	"bytes"
	"context"
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
