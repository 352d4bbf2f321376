package server

import (
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/issuersim"
	"github.com/switchyard/switchyard/switch/message"
)

// TestDrainBoundedByAdviceInFlight: a drain whose store-and-forward queue has an
// advice in flight to a silent issuer (a void's 0420, the issuer answering
// nothing, its timeout long) ends soon after shutdown.drain_timeout, the advice
// left queued for the next start. Before, the queue's close waited for the advice's
// answer until the issuer's timeout: a drain ran 8 s past its deadline in a trial,
// and here it would have run the 2 minutes of the issuer's timeout.
func TestDrainBoundedByAdviceInFlight(t *testing.T) {
	const issuerTimeout = 2 * time.Minute
	sim, s := simSwitchWith(t, issuersim.Faults{}, issuerTimeout, nil, func(c *config.Config) {
		c.Shutdown.DrainTimeout = config.Duration(time.Second)
	})
	tc := dial(t, s, "ascii", message.DialectASCII)
	voidedSale(t, tc, sim, issuersim.Faults{Drop: 1})
	// The void's 0420 is at the issuer, unanswered.
	for deadline := time.Now().Add(10 * time.Second); sim.Stats.Dropped.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the void's reversal advice never reached the issuer")
		}
	}
	drained := make(chan error, 1)
	start := time.Now()
	go func() { drained <- s.Drain() }()
	select {
	case <-drained:
		t.Logf("drained in %s (drain_timeout 1s)", time.Since(start).Round(time.Millisecond))
	case <-time.After(time.Minute): // a failure bound, half the issuer's timeout
		t.Fatalf("drain still running a minute after it started (drain_timeout 1 s; the issuer's timeout %s)", issuerTimeout)
	}
	if n := s.Queue.Len(""); n != 1 {
		t.Fatalf("%d advices queued after the drain, want the void's 0420 kept for the next start", n)
	}
}
