package bench

import (
	"context"
	"fmt"
	"net"
	"time"
)

// waitListening waits until something accepts TCP connections at addr (hsm serve,
// started in its own process for Options.PayShield), for up to 10 s.
func waitListening(ctx context.Context, addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listening at %s after 10s: %w", addr, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
