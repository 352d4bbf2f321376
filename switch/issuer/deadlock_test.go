package issuer

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moov-io/iso8583"

	"github.com/switchyard/switchyard/switch/issuersim"
	"github.com/switchyard/switchyard/switch/message"
)

// TestSendEndsWhenTimeoutsRaceConnectionLosses sends advices with Send while their
// timeouts race the issuer's answers and the issuer drops connections. Every Send must
// end. Through iso8583-connection v0.9.0's own Send it did not always: a request that
// had just timed out (or had its answer) then waited for the connection's lock, which
// the connection's failure held while it handed the same request its error on an
// unbuffered channel nobody read; the Send and the connection stayed stuck for good
// (a CI run of the e2e tests hung 10 minutes on an advice sender stuck so).
func TestSendEndsWhenTimeoutsRaceConnectionLosses(t *testing.T) {
	sim, err := issuersim.Start(issuersim.Config{Addr: "127.0.0.1:0", Latency: time.Millisecond, Jitter: 2 * time.Millisecond,
		Faults: issuersim.Faults{Disconnect: 0.02}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	l, err := Dial(Config{ID: "sim", Addrs: []string{sim.Addr()}, Connections: 2, Timeout: 5 * time.Second,
		ReconnectWait: time.Millisecond, MaxReconnectWait: 4 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })

	// Until the issuer has dropped the connection 20 times with requests in flight.
	const workers, drops = 16, 20
	var sent, answered atomic.Int64
	var stop atomic.Bool
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				if sim.Stats.Disconnects.Load() >= drops {
					stop.Store(true)
					return
				}
				m := iso8583.NewMessage(message.SpecASCII)
				m.MTI("0220")
				for id, v := range map[int]string{2: "4761739001010119", 3: "000000", 4: "000000001000",
					7: message.FormatDE7(time.Now()), 11: l.NextSTAN(), 37: fmt.Sprintf("%02d%010d", w, i),
					41: "T0000001", 42: "000000000000001"} {
					if err := m.Field(id, v); err != nil {
						t.Error(err)
						return
					}
				}
				// Timeouts around the issuer's answer time, so that they race answers.
				_, err := l.Send(context.Background(), m, time.Duration(1+i%3)*time.Millisecond)
				sent.Add(1)
				switch {
				case err == nil:
					answered.Add(1)
				case errors.Is(err, ErrUnavailable):
					time.Sleep(time.Millisecond) // a terminal's pause before it tries again
				case errors.Is(err, ErrTimeout), errors.Is(err, ErrConnectionLost):
				default:
					t.Errorf("Send: %v", err)
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		buf := make([]byte, 1<<20)
		stop.Store(true)
		t.Fatalf("not every Send ended within 30 s (%d sent, %d disconnects); goroutines:\n%s", sent.Load(), sim.Stats.Disconnects.Load(), buf[:runtime.Stack(buf, true)])
	}
	t.Logf("%d sends, %d answered, %d disconnects", sent.Load(), answered.Load(), sim.Stats.Disconnects.Load())
	if answered.Load() == 0 {
		t.Fatal("no Send was answered: the test raced nothing")
	}
}
