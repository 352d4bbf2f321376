package bench

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/switch/frontend"
)

// Relay is the baseline: a plain TCP relay with the switch's framing and no decoding.
// Each terminal connection gets its own upstream connection, and frames are copied
// both ways.
type Relay struct {
	ln       net.Listener
	upstream string
	burn     int // spin iterations spent on each request (RelayOptions.Burn)
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
}

// RelayOptions are a relay's settings beyond its addresses.
type RelayOptions struct {
	// Burn is CPU time the relay spends on each request before it forwards it (a
	// spin calibrated when the relay starts): a model of a switch that costs this
	// much, to see what latency a process of that cost gets on the machine beside
	// the harness and the simulator (bench --relay-burn). Zero: none.
	Burn time.Duration
}

// StartRelay listens on addr and relays to upstream.
func StartRelay(addr, upstream string, o RelayOptions) (*Relay, error) {
	if o.Burn < 0 || o.Burn > time.Second {
		return nil, fmt.Errorf("relay burn %v: want 0 to 1s a request", o.Burn)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	r := &Relay{ln: ln, upstream: upstream, conns: map[net.Conn]struct{}{}}
	if o.Burn > 0 {
		r.burn = int(float64(o.Burn) / spinCost())
	}
	r.wg.Add(1)
	go r.accept()
	return r, nil
}

// Addr is the relay's listening address.
func (r *Relay) Addr() string { return r.ln.Addr().String() }

// Close stops the relay.
func (r *Relay) Close() error {
	err := r.ln.Close()
	r.mu.Lock()
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
	return err
}

func (r *Relay) track(c net.Conn, add bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if add {
		r.conns[c] = struct{}{}
	} else {
		delete(r.conns, c)
	}
}

func (r *Relay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		up, err := net.Dial("tcp", r.upstream)
		if err != nil {
			c.Close()
			continue
		}
		r.track(c, true)
		r.track(up, true)
		r.wg.Add(2)
		go r.pipe(c, up, r.burn)
		go r.pipe(up, c, 0)
	}
}

// pipe copies frames from src to dst, flushing when no more input is buffered, after
// burn spin iterations for each frame.
func (r *Relay) pipe(src, dst net.Conn, burn int) {
	defer r.wg.Done()
	defer func() {
		src.Close()
		dst.Close()
		r.track(src, false)
		r.track(dst, false)
	}()
	br := bufio.NewReaderSize(src, 32768)
	bw := bufio.NewWriterSize(dst, 32768)
	buf := make([]byte, 0, 4096)
	for {
		body, err := frontend.ReadFrame(br, buf, 0xFFFF)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return
			}
			return
		}
		if burn > 0 {
			spinSink.Add(spin(burn))
		}
		if _, err := bw.Write([]byte{byte(len(body) >> 8), byte(len(body))}); err != nil {
			return
		}
		if _, err := bw.Write(body); err != nil {
			return
		}
		if br.Buffered() == 0 {
			if err := bw.Flush(); err != nil {
				return
			}
		}
	}
}

// spin does n rounds of arithmetic the compiler cannot drop, and returns its result.
func spin(n int) uint64 {
	x := uint64(n) | 1
	for i := 0; i < n; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	return x
}

// spinSink keeps spin's results alive.
var spinSink atomic.Uint64

// spinCost is the nanoseconds a round of spin takes on this machine: the fastest of
// a few timed runs of about 2 ms (the fastest is the one least taken off its CPU).
func spinCost() float64 {
	const n = 1 << 20
	best := time.Duration(1<<63 - 1)
	for range 5 {
		t0 := time.Now()
		spinSink.Add(spin(n))
		best = min(best, time.Since(t0))
	}
	return max(float64(best)/n, 0.01)
}
