package goroutines

import "testing"

// TestRunning: the test binary's main goroutine (in testing.(*M).Run, named by no
// _test.go file) is listed once; a goroutine a test started is not, since its
// stack names the test's file.
func TestRunning(t *testing.T) {
	stop, started := make(chan struct{}), make(chan struct{})
	go func() { close(started); <-stop }()
	<-started
	defer close(stop)
	if got := Running("testing.(*M).Run"); len(got) != 1 {
		t.Fatalf("main goroutine listed %d times: %q", len(got), got)
	}
	if got := Running("goroutines.TestRunning"); len(got) != 0 {
		t.Fatalf("the test's own goroutines listed: %q", got)
	}
}
