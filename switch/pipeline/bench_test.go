package pipeline

import (
	"context"
	"fmt"
	"testing"

	"github.com/switchyard/switchyard/switch/termclient"
)

// BenchmarkProcessApproval is the transaction hot path over the fakes: a purchase
// decoded, checked for duplicates, written ahead, approved by the issuer, journaled and
// answered. The frames are built outside the timer, in chunks, each with a new key.
func BenchmarkProcessApproval(b *testing.B) {
	h := newHarness(b)
	benchFrames(b, h, func() termclient.Txn { return h.purchase(1000) })
}

// BenchmarkProcessRefund is a refund's path over the fakes: the original read and
// checked under its lock (its stripe on a single switch), its amount reserved, the
// refund sent to the issuer, approved, journaled and answered. Each refund takes 1
// of a large original.
func BenchmarkProcessRefund(b *testing.B) {
	h := newHarness(b)
	orig := h.do(h.purchase(1_000_000_000))
	if orig.RC != "00" {
		b.Fatalf("original: %+v", orig.Result)
	}
	benchFrames(b, h, func() termclient.Txn { return h.refund(orig, 1) })
}

// benchFrames processes requests made by next, each with a new duplicate key, in
// chunks built outside the timer, and reports each answer delivered.
func benchFrames(b *testing.B, h *harness, next func() termclient.Txn) {
	ctx := context.Background()
	frames := make([][]byte, 0, 4096)
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		if len(frames) == 0 {
			b.StopTimer()
			for range cap(frames) {
				n++
				tx := next()
				tx.TID = fmt.Sprintf("T%07d", n/999_999)
				tx.STAN = fmt.Sprintf("%06d", n%999_999+1)
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
