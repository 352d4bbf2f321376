package pipeline

import (
	"context"
	"fmt"
	"testing"

	"github.com/switchyard/switchyard/switch/registry"
)

// BenchmarkProcessApprovalRules is BenchmarkProcessApproval with the rules' input
// filled (a merchant and a terminal from the registry, rules that allow): what
// fillInput and merchant.profile cost on the hot path.
func BenchmarkProcessApprovalRules(b *testing.B) {
	benchRules(b, newHarness(b, withRisk, withTerminal(termNoKey)))
}

func benchRules(b *testing.B, h *harness) {
	merchant := &registry.Merchant{ID: testMID, Tier: registry.TierMicro, MCC: "5814"}
	h.terms.decide = func(req registry.CheckRequest) registry.CheckResult {
		return registry.CheckResult{Terminal: &termNoKey, Merchant: merchant}
	}
	ctx := context.Background()
	frames := make([][]byte, 0, 4096)
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		if len(frames) == 0 {
			b.StopTimer()
			for range cap(frames) {
				n++
				tx := h.purchase(1000)
				tx.STAN = fmt.Sprintf("%06d", n%999_999+1)
				tx.TID = termNoKey.ID
				if n > 999_999 {
					b.Fatal("out of STANs")
				}
				frames = append(frames, h.frame(tx))
			}
			b.StartTimer()
		}
		resp, err := h.p.Process(ctx, h.conn, frames[len(frames)-1])
		frames = frames[:len(frames)-1]
		if err != nil || resp.Body == nil {
			b.Fatalf("Process: %v", err)
		}
		resp.Sent(true)
	}
}
