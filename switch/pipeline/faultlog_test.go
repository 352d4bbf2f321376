package pipeline

import (
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/internal/syncbuf"
)

// TestFaultErrorsSampled: under a fault every request meets (no HSM answering, a
// journal failing its writes), the Error lines about it are sampled, a few every
// period, while each transaction's own line still names its reason: 40 requests
// make 40 txn lines but not 40 Error lines, and none holds the clear PAN.
func TestFaultErrorsSampled(t *testing.T) {
	const n = 40
	for _, tc := range []struct {
		name, reason, errMsg string
		opts                 []option
		setup                func(h *harness)
		pin                  bool
	}{
		{name: "no HSM answers", reason: "hsm-unavailable", errMsg: "PIN not translated: no HSM answered",
			opts: []option{withHSM, withTerminal(termTPK)}, setup: func(h *harness) { h.hsm.translateErr = hsm.ErrUnavailable }, pin: true},
		{name: "journal writes fail", reason: "system-malfunction", errMsg: "system malfunction: answered 96",
			setup: func(h *harness) { h.j.failWrite = errScripted }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs syncbuf.Buffer
			opts := append([]option{func(_ *harness, c *Config) { c.Logger = zerolog.New(&logs) }}, tc.opts...)
			h := newHarness(t, opts...)
			tc.setup(h)
			for range n {
				tx := h.purchase(100)
				if tc.pin {
					tx.PINBlock = pinBlock
				}
				if a := h.do(tx); a.Reason != tc.reason {
					t.Fatalf("answer %s %q, want reason %q", a.RC, a.Reason, tc.reason)
				}
			}
			var errLines, txnLines int
			for _, line := range strings.Split(logs.String(), "\n") {
				switch {
				case strings.Contains(line, `"level":"error"`) && strings.Contains(line, tc.errMsg):
					errLines++
				case strings.Contains(line, `"message":"txn"`) && strings.Contains(line, `"reason":"`+tc.reason+`"`):
					txnLines++
				}
			}
			// A period boundary inside the run lets a second burst through.
			if errLines < 1 || errLines > 2*faultLogBurst {
				t.Errorf("%d Error lines %q for %d requests, want 1 to %d", errLines, tc.errMsg, n, 2*faultLogBurst)
			}
			if pan := h.purchase(100).PAN; strings.Contains(logs.String(), pan) {
				t.Errorf("the log holds the clear PAN %s", pan)
			}
			if txnLines != n {
				t.Errorf("%d txn lines with reason %s, want %d", txnLines, tc.reason, n)
			}
		})
	}
}
