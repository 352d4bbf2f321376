package bench

import (
	"bufio"
	"context"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
)

// faultLoad drives the fault run: an open loop at a fixed rate over a few connections
// that outlives the switch. When a connection breaks (the switch was killed), the
// requests in flight on it stay unanswered, as a terminal's would, and the connection
// is dialled again until the switch is back. Every request is recorded with its answer.
type faultLoad struct {
	addr  string
	fleet *Fleet
	rate  float64
	conns int

	mu        sync.Mutex
	txns      []faultTxn
	followUps map[int]*approval // request index -> what a later void or reversal needs
}

// maxInFlight bounds the unanswered requests on one connection; the schedule skips a
// send while it is reached.
const maxInFlight = 2048

// run sends until ctx ends, then waits up to drain for the answers in flight.
func (l *faultLoad) run(ctx context.Context, drain time.Duration) {
	var wg sync.WaitGroup
	interval := time.Duration(float64(l.conns) / l.rate * float64(time.Second))
	for c := 0; c < l.conns; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.conn(ctx, interval, drain)
		}()
	}
	wg.Wait()
}

// conn keeps one terminal connection sending on schedule, dialling again after a
// failure (every 100 ms) until ctx ends.
func (l *faultLoad) conn(ctx context.Context, interval, drain time.Duration) {
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	next := time.Now().Add(time.Duration(rng.Int64N(int64(max(interval, 1)))))
	for ctx.Err() == nil {
		nc, err := net.DialTimeout("tcp", l.addr, time.Second)
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		next = l.session(ctx, nc, rng, interval, next, drain)
	}
}

// session sends on nc until ctx ends or nc breaks; it returns the next send time.
func (l *faultLoad) session(ctx context.Context, nc net.Conn, rng *rand.Rand, interval time.Duration, next time.Time, drain time.Duration) time.Time {
	var mu sync.Mutex
	pending := map[string]int{} // TID+STAN -> index in l.txns
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		br := bufio.NewReaderSize(nc, 32768)
		for {
			body, err := frontend.ReadFrame(br, nil, 0xFFFF)
			if err != nil {
				return
			}
			var tid, stan, rc, rrn, auth string
			if _, err := message.Scan(body, message.DialectASCII, func(id int, v []byte) {
				switch id {
				case 11:
					stan = string(v)
				case 37:
					rrn = string(v)
				case 38:
					auth = string(v)
				case 39:
					rc = string(v)
				case 41:
					tid = string(v)
				}
			}); err != nil {
				continue
			}
			now := time.Now()
			mu.Lock()
			i, ok := pending[tid+stan]
			delete(pending, tid+stan)
			mu.Unlock()
			if !ok {
				continue
			}
			l.mu.Lock()
			t := &l.txns[i]
			t.Answered, t.RC, t.RRN = now, rc, rrn
			l.mu.Unlock()
			if f := l.follow(i); f != nil && message.Approved(rc) {
				a := *f
				a.rrn, a.auth = rrn, auth
				l.fleet.remember(tid, a)
			}
		}
	}()
	bw := bufio.NewWriterSize(nc, 8192)
	broken := false
	for ctx.Err() == nil && !broken {
		if d := time.Until(next); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				continue
			case <-readerDone:
				broken = true
				continue
			}
		}
		next = next.Add(interval)
		mu.Lock()
		full := len(pending) >= maxInFlight
		mu.Unlock()
		if full {
			continue
		}
		now := time.Now()
		req, err := l.fleet.Next(rng, now)
		if err != nil {
			continue
		}
		l.mu.Lock()
		i := len(l.txns)
		l.txns = append(l.txns, faultTxn{Key: req.key, Label: req.label, Sent: now})
		l.follows(i, req.follow)
		l.mu.Unlock()
		mu.Lock()
		pending[req.key] = i
		mu.Unlock()
		_, err = bw.Write([]byte{byte(len(req.body) >> 8), byte(len(req.body))})
		if err == nil {
			_, err = bw.Write(req.body)
		}
		if err == nil {
			err = bw.Flush()
		}
		broken = err != nil
	}
	if !broken {
		// Let the answers in flight arrive (bounded), as a terminal waits for its last.
		deadline := time.Now().Add(drain)
		for time.Now().Before(deadline) {
			mu.Lock()
			n := len(pending)
			mu.Unlock()
			if n == 0 {
				break
			}
			select {
			case <-readerDone:
				deadline = time.Now()
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	nc.Close()
	<-readerDone
	if next.Before(time.Now()) {
		next = time.Now() // no burst to catch up after a reconnect
	}
	return next
}

// follows remembers the follow-up data of request i (voids and reversals of approved
// purchases); l.mu is held.
func (l *faultLoad) follows(i int, f *approval) {
	if f == nil {
		return
	}
	if l.followUps == nil {
		l.followUps = map[int]*approval{}
	}
	l.followUps[i] = f
}

func (l *faultLoad) follow(i int) *approval {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.followUps[i]
	delete(l.followUps, i)
	return f
}

// result returns the recorded requests and a LoadResult of the answers (latency, codes,
// per-second samples from start) for the phase report. Unlike a speed run's, its
// throughput and latency count every answer, the failures (91, 96) included: under
// faults the terminal's wait for its 91 (an issuer timeout) is the figure; Failed
// counts them, as in a speed run's row "failed (91, 96)".
func (l *faultLoad) result(start, end time.Time) ([]faultTxn, *LoadResult) {
	l.mu.Lock()
	txns := append([]faultTxn(nil), l.txns...)
	l.mu.Unlock()
	res := &LoadResult{Hist: hdrhistogram.New(1, 60_000_000, 3), Codes: map[string]int64{}, Elapsed: end.Sub(start)}
	for _, t := range txns {
		res.Sent++
		if !t.answered() {
			res.Errors++
			continue
		}
		res.Answered++
		if failedCode(t.RC) {
			res.Failed++
		}
		lat := max(1, t.Answered.Sub(t.Sent).Microseconds())
		_ = res.Hist.RecordValue(lat)
		res.Codes[t.RC]++
		sec := max(0, t.Answered.Sub(start)/time.Second)
		res.Samples = append(res.Samples, Sample{Second: uint16(min(sec, 65535)), LatencyUS: uint32(min(lat, 1<<32-1))})
	}
	if s := res.Elapsed.Seconds(); s > 0 {
		res.TPS = float64(res.Answered) / s
	}
	return txns, res
}
