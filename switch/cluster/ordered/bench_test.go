package ordered

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkFollow: a follower reads b.N messages of 200 bytes published before it
// starts (one server, a stream of one replica): the cost of a message from the
// server through the consumer's handler to C.
func BenchmarkFollow(b *testing.B) {
	s := startServers(b, 1)[0]
	js := connect(b, s.ClientURL())
	createStream(b, js, 1)
	body := make([]byte, 200)
	ctx := context.Background()
	var last jetstream.PubAckFuture
	for i := 0; i < b.N; i++ {
		f, err := js.PublishAsync("ev.a", body)
		if err != nil {
			b.Fatal(err)
		}
		last = f
		if i%1000 == 999 {
			<-js.PublishAsyncComplete()
		}
	}
	<-js.PublishAsyncComplete()
	if last != nil {
		select {
		case <-last.Ok():
		case err := <-last.Err():
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	f, err := Follow(js, Config{Stream: "EV", From: 1, Buffer: 1024})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Stop()
	for i := 0; i < b.N; i++ {
		select {
		case <-f.C():
		case <-ctx.Done():
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(f.Bridged()), "read-without-consumer")
}
