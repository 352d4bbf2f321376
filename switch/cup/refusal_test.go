package cup

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/pipeline"
)

type fakeRefusals struct {
	mu  sync.Mutex
	got []pipeline.Refusal
}

func (r *fakeRefusals) JournalRefusal(_ context.Context, _ *frontend.Conn, ref pipeline.Refusal) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, ref)
	return "00000000009" + string(rune('0'+len(r.got))), nil
}

// TestRefusalsJournaled: the card transactions the adapter refuses itself (a bad
// MAC, a missing MAC, a request that does not map) are handed to the journal with
// the pipeline's MTI and processing code, the card's PAN when readable without a key,
// the code answered and a reason that names the field, never its content; the answer
// carries the record's RRN. Sign-in-free batch upload and the pipeline's own answers
// are not.
func TestRefusalsJournaled(t *testing.T) {
	mak := []byte("0123456789ABCDEF")
	p := &fakePipeline{}
	refs := &fakeRefusals{}
	a := NewAdapter(Config{HSM: &fakeHSM{mak: mak}, Terminals: fakeTerminals{}, Refusals: refs,
		Now: func() time.Time { return time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC) }}, p)
	term := &Terminal{TID: "T0000001", MID: "000000000000001", mak: mak, batch: "000007",
		TPDU: TPDU{0x60, 0, 3, 0, 0}, Header: Header{0x60, 0x31, 0, 0x31, 0, 0}}
	conn := &frontend.Conn{Listener: "cup", Dialect: message.DialectCUP}
	card := "4761739001010119"
	send := func(tx Txn, macf MACFunc) *Frame {
		t.Helper()
		f, err := term.Build(tx)
		if err != nil {
			t.Fatal(err)
		}
		return exchange(t, a, conn, f, macf)
	}
	badMAC := func([]byte) ([]byte, error) { return []byte("00000000"), nil }
	ans := send(Txn{Kind: "sale", PAN: card, Expiry: "2912", Amount: 1234, STAN: "000101"}, badMAC)
	if ans.Str(39) != RCMACFailure || ans.Str(37) != "000000000091" {
		t.Fatalf("bad MAC: %s", Summary(ans))
	}
	send(Txn{Kind: "sale", Track2: card + "=2912101", Amount: 50, STAN: "000102"}, nil) // no MAC at all
	if ans := send(Txn{Kind: "void", PAN: card, Expiry: "2912", Amount: 1, STAN: "000103"}, term.MACOf); ans.Str(39) != "30" {
		t.Fatalf("void without F37: %s", Summary(ans))
	}
	send(Txn{Kind: "upload"}, badMAC) // not a card transaction
	if len(p.reqs) != 0 {
		t.Fatalf("%d refused requests reached the pipeline", len(p.reqs))
	}
	want := []pipeline.Refusal{
		{MTI: "0200", ProcCode: "000000", TID: "T0000001", MID: "000000000000001", STAN: "000101", PAN: card, Amount: 1234,
			Currency: "156", EntryMode: "012", RC: RCMACFailure, DecidedBy: "cup", Reason: "mac-invalid"},
		{MTI: "0200", ProcCode: "000000", TID: "T0000001", MID: "000000000000001", STAN: "000102", PAN: card, Amount: 50,
			Currency: "156", EntryMode: "022", RC: RCMACFailure, DecidedBy: "cup", Reason: "mac-missing"},
		{MTI: "0200", ProcCode: message.PCVoid, TID: "T0000001", MID: "000000000000001", STAN: "000103", PAN: card, Amount: 1,
			Currency: "156", EntryMode: "012", RC: "30", DecidedBy: "cup", Reason: "format-error-F37"},
	}
	if len(refs.got) != len(want) {
		t.Fatalf("journaled %d refusals, want %d: %+v", len(refs.got), len(want), refs.got)
	}
	for i := range want {
		if refs.got[i] != want[i] {
			t.Errorf("refusal %d:\n got %+v\nwant %+v", i, refs.got[i], want[i])
		}
	}
	// An encrypted track gives no PAN (the adapter does not decrypt a request it refuses).
	f, _ := term.Build(Txn{Kind: "sale", Track2: card + "=2912101", Amount: 50, STAN: "000104"})
	f.Set(53, "2010000000000000")
	if r := refusalOf(f, RCMACFailure, "mac-invalid"); r.PAN != "" || strings.Contains(r.Reason, card) {
		t.Errorf("refusal of an encrypted track: %+v", r)
	}
}
