package cup

import (
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
)

// TestTestStatus: the card messages of a terminal whose header says it is in test
// status (terminal status 1) never reach the pipeline: by default they are refused
// 58 terminal-test-mode, MAC'd and journaled; with TestAnswer the switch answers
// them 00 itself, journaling nothing. A reversal goes on to the pipeline in either
// mode, and the same terminal in normal status trades as before. Until 6 December
// 2026 the status was not read: a terminal left in test status traded for real.
func TestTestStatus(t *testing.T) {
	mak := []byte("0123456789ABCDEF")
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	normal, test := Header{0x60, 0x31, 0x00, 0x31, 0, 0}, Header{0x60, 0x31, 0x10, 0x31, 0, 0}
	if test.Status() != StatusTest || normal.Status() != 0 {
		t.Fatalf("header status digits %d %d", test.Status(), normal.Status())
	}
	const card = "4761739001010119"
	for _, mode := range []TestMode{"", TestAnswer} {
		t.Run(string(mode), func(t *testing.T) {
			p := &fakePipeline{}
			refs := &fakeRefusals{}
			var mu sync.Mutex
			counted := map[string]int{}
			a := NewAdapter(Config{HSM: &fakeHSM{mak: mak}, Terminals: fakeTerminals{}, Refusals: refs, TestMode: mode,
				TestTraffic: func(action string) { mu.Lock(); counted[action]++; mu.Unlock() },
				NextRRN:     func() (string, error) { return "000000000777", nil },
				Now:         func() time.Time { return now }}, p)
			term := &Terminal{TID: "T0000001", MID: "000000000000001", mak: mak, batch: "000007",
				TPDU: TPDU{0x60, 0, 3, 0, 0}, Header: test}
			conn := &frontend.Conn{Listener: "cup", Dialect: message.DialectCUP}
			send := func(tx Txn) *Frame {
				t.Helper()
				f, err := term.Build(tx)
				if err != nil {
					t.Fatal(err)
				}
				return exchange(t, a, conn, f, term.MACOf)
			}
			wantRC, action := RCTestMode, "rejected"
			if mode == TestAnswer {
				wantRC, action = message.RCApproved, "answered"
			}
			for _, tx := range []Txn{
				{Kind: "sale", PAN: card, Expiry: "2912", Amount: 100},
				{Kind: "balance", PAN: card, Expiry: "2912"},
				{Kind: "preauth", PAN: card, Expiry: "2912", Amount: 300},
				{Kind: "refund", PAN: card, Expiry: "2912", Amount: 50, RRN: "000000000042"},
				{Kind: "settlement", Totals: message.BatchTotals{PurchaseCount: 1, PurchaseSum: 100}},
			} {
				n, nref := len(p.reqs), len(refs.got)
				ans := send(tx)
				if ans.Str(39) != wantRC || !ans.Has(64) || len(p.reqs) != n {
					t.Errorf("%s in test status: %s (pipeline saw %d), want %s MAC'd, nothing forwarded", tx.Kind, Summary(ans), len(p.reqs)-n, wantRC)
				}
				switch {
				case mode == TestAnswer && len(refs.got) != nref:
					t.Errorf("%s answered in test status was journaled: %+v", tx.Kind, refs.got[nref:])
				case mode == TestAnswer && ans.Str(37) != "000000000777":
					t.Errorf("%s answered in test status: F37 %q, want the switch's RRN", tx.Kind, ans.Str(37))
				case mode != TestAnswer && (len(refs.got) != nref+1 || refs.got[nref].Reason != ReasonTestMode || refs.got[nref].RC != RCTestMode):
					t.Errorf("%s refused in test status journaled %+v, want one refusal 58 %s", tx.Kind, refs.got[nref:], ReasonTestMode)
				}
				if tx.Kind == "settlement" && mode == TestAnswer {
					if f48 := ans.Str(48); len(f48) < 31 || f48[30] != '1' {
						t.Errorf("test settlement answered F48 %q, want the totals with code 1", f48)
					}
				}
			}
			if counted[action] != 5 || len(counted) != 1 {
				t.Errorf("counted %v, want %s 5", counted, action)
			}
			// A reversal goes on to the pipeline.
			n := len(p.reqs)
			if ans := send(Txn{Kind: "reversal", PAN: card, Expiry: "2912", Amount: 100}); ans.Str(39) != "00" || len(p.reqs) != n+1 {
				t.Errorf("reversal in test status: %s (pipeline saw %d), want it forwarded", Summary(ans), len(p.reqs)-n)
			}
			// Back in normal status: a sale reaches the pipeline.
			term.Header = normal
			if ans := send(Txn{Kind: "sale", PAN: card, Expiry: "2912", Amount: 100}); ans.Str(39) != "00" || len(p.reqs) != n+2 {
				t.Errorf("sale in normal status: %s, want it forwarded", Summary(ans))
			}
		})
	}
	if _, err := ParseTestMode("loopback"); err == nil {
		t.Error("test mode loopback accepted")
	}
}
