package issuer

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/moov-io/iso8583"

	"github.com/switchyard/switchyard/switch/message"
)

// TestSendEndsWhenCancelled: a request to an issuer that never answers, on a link
// whose timeout is long, ends when its context is cancelled, as a timeout
// (ErrTimeout: in doubt), for Send (the store-and-forward queue's advices) and
// SendPacked. Before, the wait ignored the context's cancellation and lasted the
// whole timeout, so that a switch's drain, after its deadline, waited for the
// queue's advice in flight to a silent issuer (a drain ran 8 s past
// shutdown.drain_timeout). A context without cancellation (the pipeline's, made by
// context.WithoutCancel) waits as before: TestSendPackedDirectTimeoutAndLate.
func TestSendEndsWhenCancelled(t *testing.T) {
	// An issuer that signs on and answers nothing else until the test ends.
	never := make(chan struct{})
	iss := startScripted(t, &scriptedIssuer{delay: func(string, string) time.Duration { return 0 },
		answers: func(mti string, _ map[int]string) []scriptedAnswer {
			if mti == "0800" {
				return nil // answered at once
			}
			return []scriptedAnswer{{mti: message.ResponseMTI(mti), rc: message.RCApproved, gate: never}}
		}})
	t.Cleanup(func() { close(never) }) // before the issuer's own clean-up, which waits for its answers
	const timeout = 10 * time.Minute   // what a test waiting for it would never see
	l, err := Dial(Config{ID: "silent", Addrs: []string{iss.addr()}, Connections: 1, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	waitSignedOn(t, l, 10*time.Second)

	sends := map[string]struct {
		mti  string
		send func(ctx context.Context) error
	}{
		"Send": {"0420", func(ctx context.Context) error {
			m := iso8583.NewMessage(message.SpecASCII)
			m.MTI("0420")
			for id, v := range map[int]string{2: "4761739001010119", 3: "000000", 4: "000000001000",
				7: message.FormatDE7(time.Now()), 11: l.NextSTAN(), 37: "000000810001", 41: "T0000001"} {
				if err := m.Field(id, v); err != nil {
					t.Fatal(err)
				}
			}
			_, err := l.Send(ctx, m, 0)
			return err
		}},
		"SendPacked": {"0200", func(ctx context.Context) error {
			rrn := "000000810002"
			stan, body := packedPurchase(t, l, rrn)
			_, err := l.SendPacked(ctx, "0200", stan, rrn, body, 0)
			return err
		}},
	}
	for name, c := range sends {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- c.send(ctx) }()
			iss.await(t, c.mti+"/") // the request is at the issuer, its answer never comes
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, ErrTimeout) {
					t.Fatalf("%s cancelled: %v, want ErrTimeout (in doubt)", name, err)
				}
			case <-time.After(time.Minute): // a failure bound, far under the link's timeout
				t.Fatalf("%s to a silent issuer still waiting a minute after its context was cancelled (the link's timeout is %s)", name, timeout)
			}
		})
	}
}
