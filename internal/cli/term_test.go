package cli

import (
	"math/bits"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/hsm/dukpt"
)

// TestDemoKSNKeepsTheDemoPrefix: every clock gives a KSN under the demo BDK's prefix
// FFFF9876543210E with a counter of at most 10 one-bits. The old counter took 21 bits
// and turned the prefix into FFFF9876543210F for half of each 24-day cycle, when the
// README's SoftPOS PIN purchase was refused 63.
func TestDemoKSNKeepsTheDemoPrefix(t *testing.T) {
	base := time.Unix(1_700_000_000, 0)
	for _, d := range []time.Duration{0, time.Second, 0xFFE00 * time.Second, 0xFFFB9 * time.Second, 0xFFFFF * time.Second, 0x100000 * time.Second,
		0x1B4823 * time.Second, 0x1FFFFF * time.Second, 1000 * 24 * time.Hour} {
		ksn := demoKSN(base.Add(d))
		if _, err := dukpt.ParseKSN(ksn); err != nil {
			t.Errorf("%v after the base: %v", d, err)
		}
		if len(ksn) != 20 || !strings.HasPrefix(ksn, "FFFF9876543210E") {
			t.Errorf("%v after the base: KSN %s is not under the demo prefix FFFF9876543210E", d, ksn)
			continue
		}
		c, err := strconv.ParseUint(ksn[14:], 16, 32)
		if err != nil || bits.OnesCount64(c&0x1FFFFF) > 10 {
			t.Errorf("KSN %s: counter with more than 10 one-bits (%v)", ksn, err)
		}
	}
}
