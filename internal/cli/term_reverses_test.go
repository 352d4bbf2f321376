package cli

import (
	"strings"
	"testing"

	"github.com/moov-io/iso8583"
)

// TestTermReversalReverses: `term reversal --original` sends DE 3 of the kind of
// request --reverses names, as a terminal's reversal repeats its original's:
// 200000 for a refund, 000000 by default (a sale); an unknown kind exits non-zero
// and sends nothing. Before, every reversal went out with 000000, which the switch
// now declines for a refund (reversal-processing-code-mismatch) and before took as
// the refund's reversal. The switch is a loopback listener that records DE 3 and
// answers 00.
func TestTermReversalReverses(t *testing.T) {
	got := make(chan string, 8)
	addr := loopbackSwitch(t, "0410", func(req, _ *iso8583.Message) {
		de3, _ := req.GetString(3)
		got <- de3
	})
	base := []string{"term", "reversal", "--addr", addr, "--amount", "10.00", "--original", "02001234561207120000", "--timeout", "10s"}
	for _, c := range []struct {
		args []string
		de3  string
	}{{nil, "000000"}, {[]string{"--reverses", "refund"}, "200000"}, {[]string{"--reverses", "sale"}, "000000"}} {
		code, out, errs := runCLI(t, nil, append(base, c.args...)...)
		if code != 0 {
			t.Fatalf("term reversal %v: exit %d\n%s%s", c.args, code, out, errs)
		}
		if g := <-got; g != c.de3 {
			t.Errorf("term reversal %v: sent DE 3 %s, want %s", c.args, g, c.de3)
		}
	}
	code, out, errs := runCLI(t, nil, append(base, "--reverses", "gift")...)
	if code == 0 || !strings.Contains(errs, `--reverses "gift"`) {
		t.Errorf("term reversal --reverses gift: exit %d\n%s%s", code, out, errs)
	}
	select {
	case g := <-got:
		t.Errorf("a reversal of an unknown kind was sent: DE 3 %s", g)
	default:
	}
}
