package risk

import (
	"fmt"
	"sort"
	"testing"
	"time"
)

// benchInputs returns n ordinary purchases over the demo fleet's bound
// terminals and a pool of cards, one every 100 ms from start.
func benchInputs(n int, start time.Time) []Input {
	ins := make([]Input, n)
	for i := range ins {
		in := &ins[i]
		in.Txn.MTI, in.Txn.ProcCode, in.Txn.Type = "0200", "000000", TxnPurchase
		in.Txn.Amount = 1000 + (i*7919)%90000
		in.Txn.Currency = "156"
		in.Txn.SetEntryMode("071")
		in.Txn.BIN = "476173"
		in.Txn.CardHash = fmt.Sprintf("card%020d", i%500)
		in.Txn.Time = start.Add(time.Duration(i) * 100 * time.Millisecond)
		in.Terminal = Terminal{ID: fmt.Sprintf("T%07d", 1+i%3), Kind: "pos", Status: "active", Bound: true, AgeDays: 300}
		in.Merchant = Merchant{ID: fmt.Sprintf("%015d", 1+i%2), MCC: "5411", Tier: "standard", Status: "active"}
		if i%2 == 1 {
			in.Merchant.Tier = "micro"
		}
		in.Binding = Binding{Checked: true, LocationKnown: true, LocationOK: true, SIMOK: true, IMEIOK: true, DeviceOK: true, NetworkOK: true, DistanceM: 80}
	}
	return ins
}

// BenchmarkEvaluate measures one evaluation of the default rule pack with its
// counters filled by 20,000 earlier transactions. It reports the median
// (p50-ns) and 99th percentile (p99-ns) of single evaluations besides the mean.
func BenchmarkEvaluate(b *testing.B) {
	e, err := New("../rules", Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	start := time.Now().Add(-time.Hour)
	warm := benchInputs(20000, start)
	for i := range warm {
		d := e.Evaluate(&warm[i])
		e.Observe(&warm[i], Outcome{Approved: !d.Declined(), ResponseCode: map[bool]string{true: d.ResponseCode, false: "00"}[d.Declined()]})
	}
	probe := benchInputs(1024, start.Add(2000*time.Second))
	b.ReportAllocs()
	b.ResetTimer()
	samples := make([]time.Duration, 0, min(b.N, 100000))
	for i := 0; i < b.N; i++ {
		in := &probe[i%len(probe)]
		if len(samples) < cap(samples) {
			t0 := time.Now()
			e.Evaluate(in)
			samples = append(samples, time.Since(t0))
		} else {
			e.Evaluate(in)
		}
	}
	b.StopTimer()
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	if len(samples) > 0 {
		b.ReportMetric(float64(samples[len(samples)/2].Nanoseconds()), "p50-ns")
		b.ReportMetric(float64(samples[len(samples)*99/100].Nanoseconds()), "p99-ns")
	}
}

// BenchmarkObserve measures counting one transaction in the default pack's counters.
func BenchmarkObserve(b *testing.B) {
	e, err := New("../rules", Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	ins := benchInputs(4096, time.Now().Add(-time.Hour))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.Observe(&ins[i%len(ins)], Outcome{Approved: true, ResponseCode: "00"})
	}
}
