package bench

import (
	"bytes"
	"runtime/pprof"
	"strings"
	"testing"
	"time"
)

//go:noinline
func spinForProfile(d time.Duration) int {
	x := 0
	for start := time.Now(); time.Since(start) < d; {
		for i := range 100000 {
			x += i * i
		}
	}
	return x
}

// TestProfileShares profiles this process while it spins in one function and checks
// that the decoder finds that function in most of the CPU time.
func TestProfileShares(t *testing.T) {
	var buf bytes.Buffer
	if err := pprof.StartCPUProfile(&buf); err != nil {
		t.Skipf("CPU profiler busy: %v", err)
	}
	_ = spinForProfile(300 * time.Millisecond)
	pprof.StopCPUProfile()
	shares, total, err := ProfileShares(&buf, func(stack []string) string {
		for _, fn := range stack {
			if strings.HasSuffix(fn, ".spinForProfile") {
				return "spin"
			}
		}
		return "other"
	})
	if err != nil {
		t.Fatal(err)
	}
	if total <= 0 || shares["spin"] < total/2 {
		t.Fatalf("shares %v of %d ns: the spinning function should hold most of it", shares, total)
	}
	if _, _, err := ProfileShares(strings.NewReader("not a profile"), NATSClass); err == nil {
		t.Fatal("garbage decoded as a profile")
	}
}

func TestNATSClass(t *testing.T) {
	for _, c := range []struct {
		stack []string
		want  string
	}{
		{[]string{"runtime.futex", "github.com/nats-io/nats-server/v2/server.(*client).readLoop"}, "nats-server"},
		{[]string{"syscall.Write", "github.com/nats-io/nats.go.(*Conn).flusher"}, "nats.go"},
		{[]string{"github.com/switchyard/switchyard/switch/pipeline.(*Pipeline).handle"}, "switch"},
	} {
		if got := NATSClass(c.stack); got != c.want {
			t.Errorf("%v: %s, want %s", c.stack, got, c.want)
		}
	}
}
