package server

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/moov-io/iso8583"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/internal/testswitch"
	"github.com/switchyard/switchyard/switch/issuer"
	"github.com/switchyard/switchyard/switch/issuersim"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/metrics"
)

// TestIssuerAnswerOfWrongMTI: an issuer that answers a purchase (0200) with a 0410
// carrying the purchase's DE 11 and DE 37 has not answered it. The switch took any
// x1x or x3x answer with the right STAN and RRN: the 0410/00 approved the purchase.
// Now the answer is counted (switchyard_issuer_errors_total{kind="wrong-mti"}) and
// logged with both MTIs, the purchase waits for its answer and, without one, times
// out: 91 and reversed, as after an answer that cannot be read.
func TestIssuerAnswerOfWrongMTI(t *testing.T) {
	logs := &testswitch.SyncBuffer{}
	sim, s := simSwitch(t, issuersim.Faults{WrongMTI: 1}, 500*time.Millisecond, logs)
	tc := dial(t, s, "ascii", message.DialectASCII)
	r := send(t, tc, message.DialectASCII, purchase("4111111111111111", 1000))
	if r.RC != message.RCIssuerUnavailable {
		t.Fatalf("a purchase the issuer answered only with a 0410: %+v; want 91 (no answer in time)", r)
	}
	if e := sim.Ledger()[r.RRN]; e.Fault != "wrong-mti" {
		t.Fatalf("the simulator's ledger: %+v; the test did not send a wrong answer", e)
	}
	if n := testutil.ToFloat64(s.Metrics.IssuerErrors.WithLabelValues("sim", "wrong-mti")); n < 1 {
		t.Errorf("wrong-mti answers counted %v, want at least 1", n)
	}
	if n := testutil.ToFloat64(s.Metrics.IssuerErrors.WithLabelValues("sim", "timeout")); n != 1 {
		t.Errorf("timeouts counted %v, want 1", n)
	}
	if !strings.Contains(logs.String(), `"mti":"0410","request_mti":"0200"`) {
		t.Errorf("no log line names the answer's MTI and the request's:\n%s", logs.String())
	}
	rec, err := s.Journal.Get(r.RRN)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Approved() || rec.Reason != "issuer-timeout" {
		t.Errorf("the purchase's record: rc %s reason %s; want the timeout's 91", rec.RC, rec.Reason)
	}
}

// TestIssuerStrayAnswersLogLimited: late, unmatched and wrong-MTI answers are the
// issuer's to send, as many as it likes; each was a log line. Now each kind logs at
// most one line a second per issuer link (issuer.LogEvery, on the switch's clock),
// the next one with the count of those left out ("suppressed"), while the metrics
// count every answer. A flood on one link does not silence another's lines.
func TestIssuerStrayAnswersLogLimited(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	clock := newTestClock(t0)
	logs := &testswitch.SyncBuffer{}
	s := &Server{cfg: &config.Config{Clock: clock.now}, log: zerolog.New(logs), Metrics: metrics.New()}
	late, unmatched, wrong := s.issuerAnswerHandlers("sim")
	_, _, otherWrong := s.issuerAnswerHandlers("other")
	answer := func(mti, rrn string) *iso8583.Message {
		m := iso8583.NewMessage(message.SpecASCII)
		m.MTI(mti)
		for id, v := range map[int]string{11: "000001", 37: rrn, 39: "00"} {
			if err := m.Field(id, v); err != nil {
				t.Fatal(err)
			}
		}
		return m
	}
	const flood = 1000
	for i := range flood {
		late(answer("0210", fmt.Sprintf("%012d", i)))
		unmatched(answer("0210", fmt.Sprintf("%012d", i)))
		wrong(answer("0410", fmt.Sprintf("%012d", i)), "0200")
	}
	otherWrong(answer("0410", "000000999999"), "0200")
	count := func(what string) int { return strings.Count(logs.String(), what) }
	const lateMsg, unmatchedMsg, wrongMsg = "late issuer answer", "matching no request", "of the wrong message type"
	if l, u, w := count(lateMsg), count(unmatchedMsg), count(`"issuer":"sim","suppressed":0,"mti":"0410"`); l != 1 || u != 1 || w != 1 {
		t.Fatalf("%d answers of each kind within a second logged %d late, %d unmatched, %d wrong-MTI lines; want 1 each:\n%s", flood, l, u, w, logs.String())
	}
	if !strings.Contains(logs.String(), `"issuer":"other","suppressed":0`) {
		t.Errorf("the other link's wrong-MTI answer was not logged:\n%s", logs.String())
	}
	for _, kind := range []string{"late", "unmatched", "wrong-mti"} {
		if n := testutil.ToFloat64(s.Metrics.IssuerErrors.WithLabelValues("sim", kind)); n != flood {
			t.Errorf("%s answers counted %v, want %d", kind, n, flood)
		}
	}
	clock.set(t0.Add(issuer.LogEvery))
	late(answer("0210", "000000001000"))
	unmatched(answer("0210", "000000001000"))
	wrong(answer("0410", "000000001000"), "0200")
	if got := count(`"suppressed":999`); got != 3 || count(lateMsg) != 2 || count(unmatchedMsg) != 2 || count(wrongMsg) != 3 {
		t.Errorf("a second later: %d lines with \"suppressed\":999, want one of each kind:\n%s", got, logs.String())
	}
}
