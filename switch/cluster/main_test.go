package cluster

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a goroutine outlives its test: Close must
// join the embedded server's goroutines and the connection's.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
