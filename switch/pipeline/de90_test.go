package pipeline

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/moov-io/iso8583"

	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/saf"
	"github.com/switchyard/switchyard/switch/termclient"
)

// terminalSkew is how far the test terminal's clock is behind the switch's: its DE 7
// is not the DE 7 the switch sends the issuer, as with any real terminal.
const terminalSkew = -95 * time.Second

// skewed is tx sent by a terminal whose clock is terminalSkew off.
func skewed(tx termclient.Txn) termclient.Txn {
	tx.Time = tx.Time.Add(terminalSkew)
	return tx
}

// issuerGot returns what the issuer got for record rrn as DE 90 of a reversal must
// name it: for a record the issuer learnt of by an advice (a completion, a stand-in),
// the MTI, DE 11, DE 7 and DE 32 of that advice as the advice sender puts it on the
// wire (its DE 11 and DE 7 as queued, DE 32 the link's); else those of the request
// the fake issuer was sent.
func (h *harness) issuerGot(rrn string) (mti, stan, de7, acq string) {
	h.t.Helper()
	for _, it := range h.q.all() {
		if it.RRN == rrn && (it.MTI == "0220" || it.MTI == "0120") {
			if it.Fields[11] == "" || it.Fields[7] == "" {
				h.t.Fatalf("advice %s %s queued without its DE 11 and DE 7 (%v): each try gets new ones, and no 0420 can name it", it.MTI, rrn, it.Fields)
			}
			return it.MTI, it.Fields[11], it.Fields[7], h.bank.AcquirerID()
		}
	}
	for _, s := range h.bank.sent() {
		if s.RRN != rrn {
			continue
		}
		m := iso8583.NewMessage(message.SpecASCII)
		if err := m.Unpack(s.Body); err != nil {
			h.t.Fatalf("request %s to the issuer does not decode: %v", rrn, err)
		}
		mti, _ = m.GetMTI()
		stan, _ = m.GetString(11)
		de7, _ = m.GetString(7)
		acq, _ = m.GetString(32)
		return mti, stan, de7, acq
	}
	h.t.Fatalf("the issuer got nothing for %s", rrn)
	return
}

// reversalOf returns the one 0420 queued for rrn.
func (h *harness) reversalOf(rrn string) *saf.Item {
	h.t.Helper()
	var found *saf.Item
	for _, it := range h.q.all() {
		if it.MTI == "0420" && it.RRN == rrn {
			if found != nil {
				h.t.Fatalf("two 0420s of %s queued", rrn)
			}
			found = it
		}
	}
	if found == nil {
		h.t.Fatalf("no 0420 of %s queued (queued %q)", rrn, queued(h))
	}
	return found
}

// checkDE90 checks that the 0420 of rrn names, in DE 90, the message its issuer got:
// its MTI, DE 11, DE 7, the acquiring institution (DE 32) in 11 digits and no
// forwarding institution.
func (h *harness) checkDE90(rrn string) {
	h.t.Helper()
	mti, stan, de7, acq := h.issuerGot(rrn)
	want := mti + stan + de7 + strings.Repeat("0", 11-len(acq)) + acq + strings.Repeat("0", 11)
	if got := h.reversalOf(rrn).Fields[90]; got != want {
		h.t.Errorf("DE 90 of the 0420 of %s: %q, want %q (MTI %s, DE 11 %s, DE 7 %s as the issuer got them; acquirer %s)",
			rrn, got, want, mti, stan, de7, acq)
	}
}

// TestReversalNamesWhatTheIssuerGot: the 0420 of every path names its original in
// DE 90 as the issuer got it (the switch's DE 11 and DE 7, not the terminal's): an
// issuer matching reversals on DE 90 finds the original. Until 5 December 2026 DE 90
// carried the terminal's DE 7, and a completion's or stand-in's advice went with a new
// DE 11 and DE 7 at each try, which no 0420 could name.
func TestReversalNamesWhatTheIssuerGot(t *testing.T) {
	standIn := func(h *harness, c *Config) {
		c.StandIn = map[string]StandInLimits{"bank": {Enabled: true, MaxAmount: 5000, PerCardCount: 5, PerCardSum: 50000}}
	}
	cases := []struct {
		name string
		opts []option
		// run makes the switch reverse a record and returns its RRN; a restart
		// leaves h's fake issuer with what it got, and the queue shared.
		run func(t *testing.T, h *harness) string
	}{{
		name: "issuer timeout",
		run: func(t *testing.T, h *harness) string {
			h.bank.script(func(sent) (*iso8583.Message, error) { return nil, ErrIssuerTimeout })
			a := h.do(skewed(h.purchase(1000)))
			if a.RC != "91" {
				t.Fatalf("purchase timing out answered %s", a.RC)
			}
			return a.RRN
		},
	}, {
		// Each read of the clock 700 ms later: DE 7 and the sent event must come
		// from one read, or DE 90 names another second than the issuer got.
		name: "issuer timeout, the clock moving between reads",
		opts: []option{func(h *harness, c *Config) {
			c.Now = func() time.Time { h.clock.Advance(700 * time.Millisecond); return h.clock.Now() }
		}},
		run: func(t *testing.T, h *harness) string {
			h.bank.script(func(sent) (*iso8583.Message, error) { return nil, ErrIssuerTimeout })
			a := h.do(skewed(h.purchase(1000)))
			if a.RC != "91" {
				t.Fatalf("purchase timing out answered %s", a.RC)
			}
			return a.RRN
		},
	}, {
		name: "void",
		run: func(t *testing.T, h *harness) string {
			a := h.do(skewed(h.purchase(1000)))
			if v := h.do(skewed(h.void(a, 1000))); v.RC != "00" {
				t.Fatalf("void: %+v", v.Result)
			}
			return a.RRN
		},
	}, {
		name: "terminal reversal",
		run: func(t *testing.T, h *harness) string {
			tx := skewed(h.purchase(1000))
			a := h.do(tx)
			if r := h.do(skewed(h.reversal(tx, 1000))); r.RC != "00" {
				t.Fatalf("reversal: %+v", r.Result)
			}
			return a.RRN
		},
	}, {
		name: "undelivered approval",
		run: func(t *testing.T, h *harness) string {
			a := h.process(h.frame(skewed(h.purchase(1000))), false)
			return a.RRN
		},
	}, {
		name: "pre-authorization and its completion's void",
		run: func(t *testing.T, h *harness) string {
			pre := h.do(skewed(h.preauth(10000)))
			h.clock.Advance(time.Minute)
			c := h.do(skewed(h.completion(pre, 9000)))
			if c.RC != "00" {
				t.Fatalf("completion: %+v", c.Result)
			}
			// The 0220 names the pre-authorization as the issuer got it.
			mti, stan, de7, _ := h.issuerGot(pre.RRN)
			for _, it := range h.q.all() {
				if it.MTI == "0220" && it.Fields[90][:20] != mti+stan+de7 {
					t.Errorf("DE 90 of the completion's 0220: %q, want %s%s%s...", it.Fields[90], mti, stan, de7)
				}
			}
			h.clock.Advance(time.Minute)
			if v := h.do(skewed(h.void(c, 9000))); v.RC != "00" {
				t.Fatalf("void of the completion: %+v", v.Result)
			}
			return c.RRN
		},
	}, {
		name: "stand-in approval voided",
		opts: []option{standIn},
		run: func(t *testing.T, h *harness) string {
			h.bank.setUp(false)
			a := h.do(skewed(h.purchase(1000)))
			if a.RC != "00" || a.AuthCode[0] != 'S' {
				t.Fatalf("stand-in: %+v", a.Result)
			}
			h.bank.setUp(true)
			h.clock.Advance(time.Minute)
			if v := h.do(skewed(h.void(a, 1000))); v.RC != "00" {
				t.Fatalf("void of the stand-in: %+v", v.Result)
			}
			return a.RRN
		},
	}, {
		name: "stand-in for a request not sent",
		opts: []option{standIn},
		run: func(t *testing.T, h *harness) string {
			h.bank.script(func(sent) (*iso8583.Message, error) { return nil, ErrIssuerUnavailable })
			a := h.do(skewed(h.purchase(1000)))
			if a.RC != "00" {
				t.Fatalf("stand-in: %+v", a.Result)
			}
			h.bank.script(func(sent) (*iso8583.Message, error) { return issuerAnswer("00", "123456"), nil })
			if v := h.do(skewed(h.void(a, 1000))); v.RC != "00" {
				t.Fatalf("void of the stand-in: %+v", v.Result)
			}
			// Its advice goes with the STAN of the request that never left.
			return a.RRN
		},
	}, {
		name: "approval without a delivery mark, recovered after a restart",
		run: func(t *testing.T, h *harness) string {
			resp, err := h.p.Process(context.Background(), h.conn, h.frame(skewed(h.purchase(1000))))
			if err != nil {
				t.Fatal(err)
			}
			rrn := answerRRN(t, resp.Body)
			h.clock.Advance(time.Hour) // the DE 90 does not depend on when recovery runs
			h.restart(t)
			return rrn
		},
	}, {
		name: "timeout whose 0420 is owed, queued after a restart",
		run: func(t *testing.T, h *harness) string {
			h.bank.script(func(sent) (*iso8583.Message, error) { return nil, ErrIssuerTimeout })
			h.queueRefuses(true)
			a := h.do(skewed(h.purchase(1000)))
			h.clock.Advance(time.Hour)
			h.restart(t)
			return a.RRN
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.opts...)
			h.checkDE90(tc.run(t, h))
		})
	}
}

// answerRRN reads DE 37 of an answer body.
func answerRRN(t *testing.T, body []byte) string {
	t.Helper()
	m := iso8583.NewMessage(message.SpecASCII)
	if err := m.Unpack(body); err != nil {
		t.Fatal(err)
	}
	rrn, _ := m.GetString(37)
	return rrn
}
