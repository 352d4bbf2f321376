package issuersim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestAnswerTimeDistributions checks the two latency models against their parameters on
// 20,000 seeded draws: uniform jitter stays within its bounds; the log-normal model has
// the configured median and 99th percentile.
func TestAnswerTimeDistributions(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	draw := func(c Config) []time.Duration {
		out := make([]time.Duration, 20000)
		for i := range out {
			out[i] = c.answerTime(rng.NormFloat64, rng.Float64)
		}
		slices.Sort(out)
		return out
	}
	u := draw(Config{Latency: 10 * time.Millisecond, Jitter: 5 * time.Millisecond})
	if u[0] < 10*time.Millisecond || u[len(u)-1] >= 15*time.Millisecond {
		t.Fatalf("uniform: range %v..%v, want within [10ms, 15ms)", u[0], u[len(u)-1])
	}
	l := draw(Config{Latency: 100 * time.Millisecond, LatencyP99: 800 * time.Millisecond, Jitter: time.Hour})
	near := func(got, want time.Duration, tol float64) bool {
		return float64(got) > float64(want)*(1-tol) && float64(got) < float64(want)*(1+tol)
	}
	if p50 := l[len(l)/2]; !near(p50, 100*time.Millisecond, 0.05) {
		t.Errorf("log-normal median %v, want 100ms", p50)
	}
	if p99 := l[len(l)*99/100]; !near(p99, 800*time.Millisecond, 0.10) {
		t.Errorf("log-normal p99 %v, want 800ms", p99)
	}
	if max := l[len(l)-1]; max > 8*time.Second {
		t.Errorf("log-normal max %v above the 10 x p99 cap", max)
	}
	if c := (Config{Latency: 2 * time.Millisecond}); c.answerTime(rng.NormFloat64, rng.Float64) != 2*time.Millisecond {
		t.Errorf("fixed latency not fixed")
	}
}

func TestLatencyP99NeedsMedian(t *testing.T) {
	for _, c := range []Config{{LatencyP99: time.Second}, {Latency: 2 * time.Second, LatencyP99: time.Second}} {
		c.Addr = "127.0.0.1:0"
		if s, err := Start(c); err == nil {
			s.Close()
			t.Errorf("Start(%+v) accepted", c)
		}
	}
}

// TestLedgerLimit: with LedgerLimit the ledger keeps the newest transactions and
// forgets the oldest (the demo issuer's ledger grew a demo switch's heap for good);
// without, it keeps every one. An entry seen again stays one entry.
func TestLedgerLimit(t *testing.T) {
	for _, tc := range []struct {
		limit int
		want  []string
	}{{3, []string{"000000000003", "000000000004", "000000000005"}}, {0, []string{"000000000001", "000000000002", "000000000003", "000000000004", "000000000005"}}} {
		s := &Sim{cfg: Config{LedgerLimit: tc.limit}, ledger: map[string]*Entry{}}
		for i := 1; i <= 5; i++ {
			rrn := "00000000000" + string(rune('0'+i))
			s.entry(rrn, "0200", 100).Requests++
			s.entry(rrn, "0200", 100).Requests++
		}
		var got []string
		for rrn, e := range s.Ledger() {
			got = append(got, rrn)
			if e.Requests != 2 {
				t.Errorf("limit %d: %s has %d requests, want 2", tc.limit, rrn, e.Requests)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("limit %d: ledger %v, want %v", tc.limit, got, tc.want)
		}
	}
}

// TestAnsweredAt: a delayed answer's entry has no AnsweredAt while the answer is
// held, and has it once the answer is written; an answer at once has it too.
func TestAnsweredAt(t *testing.T) {
	s, err := Start(Config{Addr: "127.0.0.1:0", Cards: DemoCards, Faults: Faults{Delay: 1, DelayBy: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	done := make(chan error, 1)
	go func() {
		rc, err := exchange(t, s.Addr(), "000000000001", "0200", 10*time.Second)
		if err == nil && rc != "00" {
			err = fmt.Errorf("rc %q, want 00", rc)
		}
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for s.Ledger()["000000000001"].Fault != "delayed" {
		if time.Now().After(deadline) {
			t.Fatal("the request did not reach the simulator")
		}
		time.Sleep(time.Millisecond)
	}
	if e := s.Ledger()["000000000001"]; !e.AnsweredAt.IsZero() {
		t.Errorf("held answer: AnsweredAt %v, want zero", e.AnsweredAt)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if e := s.Ledger()["000000000001"]; e.AnsweredAt.IsZero() {
		t.Errorf("answered: %+v, want AnsweredAt set", e)
	}
	s.SetFaults(Faults{})
	if rc, err := exchange(t, s.Addr(), "000000000002", "0200", 5*time.Second); err != nil || rc != "00" {
		t.Fatalf("rc %q, err %v", rc, err)
	}
	if e := s.Ledger()["000000000002"]; e.AnsweredAt.IsZero() {
		t.Errorf("answered at once: %+v, want AnsweredAt set", e)
	}
}
