package cluster

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a goroutine outlives its test: Close must
// join the embedded server's goroutines and the connection's.
//
// One goroutine of nats.go v1.55.0 is let go: ObjectStore.Put (a compaction's
// snapshot) makes its own JetStream context, whose first asynchronous publish
// starts resetPendingAcksOnReconnect, and Put's deferred cleanupReplySub can set
// the status channel that goroutine has not read yet to nil; it then waits on a
// nil channel for good (once in about ten runs of this package). Not this code's
// to join; docs/cluster.md, Known gaps.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/nats-io/nats.go/jetstream.(*jetStream).resetPendingAcksOnReconnect"))
}
