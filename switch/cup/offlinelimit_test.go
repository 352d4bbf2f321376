package cup

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
)

// TestOfflineUploadOverLimit: the upload of an offline approval over the listener's
// ceiling (Config.OfflineMaxAmount) is refused 61 offline-over-limit without reaching
// the pipeline: journaled as a refusal (batch-upload-offline-over-limit), counted under
// that reason, logged with the masked PAN only; at the ceiling it is captured. The
// pipeline's own refusal over the merchant's limit (61 offline-over-limit) is counted
// under the same reason, not as offline-refused. The ceiling defaults to
// DefaultOfflineMaxAmount; a negative one is none.
func TestOfflineUploadOverLimit(t *testing.T) {
	mak := []byte("0123456789ABCDEF")
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	at := now.Add(-2 * time.Hour)
	const pan = "6225880212345678"
	term := &Terminal{TID: "T0000001", MID: "000000000000001", mak: mak, batch: "000007",
		TPDU: TPDU{0x60, 0, 3, 0, 0}, Header: Header{0x60, 0x31, 0, 0x31, 0, 0}}
	conn := &frontend.Conn{Listener: "cup", Dialect: message.DialectCUP}
	type setup struct {
		a       *Adapter
		p       *fakePipeline
		refs    *fakeRefusals
		counted map[string]int
		logs    *bytes.Buffer
	}
	newAdapter := func(ceiling int64) setup {
		s := setup{p: &fakePipeline{}, refs: &fakeRefusals{}, counted: map[string]int{}, logs: &bytes.Buffer{}}
		s.a = NewAdapter(Config{HSM: &fakeHSM{mak: mak}, Terminals: fakeTerminals{}, Journal: recordsJournal{}, Refusals: s.refs,
			Offline: offlinePipeline{s.p}, OfflineMaxAmount: ceiling, Logger: zerolog.New(s.logs), Now: func() time.Time { return now },
			UploadUnmatched: func(reason string) { s.counted[reason]++ }}, s.p)
		return s
	}
	stan := 100
	upload := func(s setup, amount int64) *Frame {
		t.Helper()
		stan++
		f, err := term.Build(Txn{Kind: "upload", PAN: pan, Expiry: "2912", Amount: amount, Offline: true, OrigSTAN: fmt.Sprintf("%06d", stan), ApprovedAt: at})
		if err != nil {
			t.Fatal(err)
		}
		f.SetBytes(55, offlineICC(amount, "0156", "40"))
		return exchange(t, s.a, conn, f, term.MACOf)
	}

	s := newAdapter(10000)
	if ans := upload(s, 10001); ans.Str(39) != message.RCExceedsAmountLimit || len(s.p.reqs) != 0 {
		t.Fatalf("offline upload over the ceiling: %s, %d requests to the pipeline", Summary(ans), len(s.p.reqs))
	}
	if len(s.refs.got) != 1 || s.refs.got[0].Reason != "batch-upload-"+UploadOfflineOverLimit || s.refs.got[0].Amount != 10001 {
		t.Errorf("refusals journaled %+v, want one batch-upload-%s of 10001", s.refs.got, UploadOfflineOverLimit)
	}
	if s.counted[UploadOfflineOverLimit] != 1 {
		t.Errorf("counted %v, want one %s", s.counted, UploadOfflineOverLimit)
	}
	out := s.logs.String()
	if !strings.Contains(out, message.MaskPAN(pan)) || !strings.Contains(out, "offline_max_amount") || strings.Contains(out, pan) {
		t.Errorf("the refusal's log line wants the masked PAN (never the clear one) and the ceiling:\n%s", out)
	}
	if ans := upload(s, 10000); ans.Str(39) != "00" || len(s.p.reqs) != 1 {
		t.Errorf("offline upload at the ceiling: %s, %d requests to the pipeline", Summary(ans), len(s.p.reqs))
	}
	// Under the ceiling, over the merchant's own limit: the pipeline's refusal.
	s.p.rc, s.p.reason = message.RCExceedsAmountLimit, UploadOfflineOverLimit
	if ans := upload(s, 9000); ans.Str(39) != message.RCExceedsAmountLimit || s.counted[UploadOfflineOverLimit] != 2 || s.counted[UploadOfflineRefused] != 0 {
		t.Errorf("offline upload the pipeline refuses over the merchant's limit: %s, counted %v", Summary(ans), s.counted)
	}

	d := newAdapter(0)
	if ans := upload(d, DefaultOfflineMaxAmount+1); ans.Str(39) != message.RCExceedsAmountLimit || len(d.p.reqs) != 0 {
		t.Errorf("over the default ceiling: %s, %d requests to the pipeline", Summary(ans), len(d.p.reqs))
	}
	if ans := upload(d, DefaultOfflineMaxAmount); ans.Str(39) != "00" {
		t.Errorf("at the default ceiling: %s", Summary(ans))
	}
	off := newAdapter(-1)
	if ans := upload(off, 99_999_999_999); ans.Str(39) != "00" || len(off.p.reqs) != 1 {
		t.Errorf("without a ceiling: %s, %d requests to the pipeline", Summary(ans), len(off.p.reqs))
	}
}
