package frontend

import (
	"net"
	"runtime"
	"runtime/metrics"
	"testing"
)

// TestIdleConnectionsAreCheapToScan: what an open connection keeps for its answers
// adds little to what every garbage collection scans, however many requests it may
// have in flight: a queue of answers as deep as MaxInFlightPerConn (1,024 here) made
// 56 KB of pointer-holding buffer per connection (issue 15).
func TestIdleConnectionsAreCheapToScan(t *testing.T) {
	l := listen(t, Config{MaxInFlightPerConn: 1024}, goroutineProc{ids: make(chan string, 1)}, nil, nil)
	scanned := func() uint64 {
		runtime.GC()
		s := []metrics.Sample{{Name: "/gc/scan/heap:bytes"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	before := scanned()
	const n = 200
	for range n {
		nc, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
	}
	waitFor(t, "the connections to be served", func() bool { return l.ConnCount() == n })
	if grew := int64(scanned()) - int64(before); grew > 4<<20 {
		t.Fatalf("%d idle connections add %d KiB to every collection's scan", n, grew>>10)
	}
}
