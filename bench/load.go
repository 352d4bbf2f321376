// Package bench loads a switch like a real fleet: many terminals over many connections,
// each with its own identity and STAN sequence, measuring latency with an HDR histogram,
// and measures a plain relay in front of the same issuer simulator as the baseline.
package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/termclient"
)

// MaxTerminals is the most load terminals a run can have: their IDs are LT and six
// digits.
const MaxTerminals = 999999

// MaxWindow is the longest measured window of a load: a Sample's second is 16 bits.
const MaxWindow = 65535 * time.Second

// LoadOptions shape the load.
type LoadOptions struct {
	Addr string
	// Addrs, when set, spread the connections over several switch nodes (connection c
	// goes to Addrs[c%len(Addrs)], so each terminal talks to one node); Addr is then
	// not used.
	Addrs     []string
	Dialect   message.Dialect
	Terminals int // distinct terminals (default 2000: LT000001...)
	Conns     int // connections (default 64)
	Depth     int // requests in flight per connection (default 8)
	Cards     int // distinct cards (default 10000)
	Duration  time.Duration
	Warmup    time.Duration
	// Rate, when above zero, makes the load an open loop: requests go out on a fixed
	// schedule at this many per second in all, and latency is measured from the
	// scheduled send (a request the harness sends late, because the switch or the
	// harness fell behind, counts its wait: no coordinated omission); Depth then only
	// bounds the requests in flight per connection.
	Rate float64
	// Progress, when set, gets a line a second.
	Progress io.Writer
	// Fleet, when set, generates the requests (the full mix with labelled fraud
	// scenarios); nil sends ordinary purchases of the load terminals.
	Fleet *Fleet
	// CUPTerminals, when above zero, makes that many of the load terminals (the last
	// ones) UnionPay-style terminals on CUPAddr, a listener of dialect cup: each signs
	// in on its own connection and sends one sale at a time. Their answers count with
	// the others'. Zero (the default) leaves the load as it was.
	CUPTerminals int
	CUPAddr      string

	onStart, onEnd func() // called when the measured window starts and ends
}

// LoadResult is what one load run measured.
type LoadResult struct {
	Sent, Answered, Errors int64
	// Failed counts the answers in the measured window that were no authorization
	// but a failure (failedCode: 91, the switch's answer when it is busy or its
	// issuer is unavailable, and 96). They are in Codes, not in Hist, TPS or Samples:
	// a switch that sheds its load with 91s at once must not read as fast.
	Failed int64
	// Malformed counts the answers without a response code (DE 39), over the whole
	// run like Errors: no authorization, no failure code either, a defect of whoever
	// answered. They are in Answered, and in nothing else (not in Codes, Hist, TPS,
	// Samples or the scenarios' figures). Until the fifth release of 6 December 2026
	// they counted as authorizations.
	Malformed int64
	Elapsed   time.Duration
	TPS       float64
	Hist      *hdrhistogram.Histogram // microseconds
	Codes     map[string]int64
	// Samples are every measured answer: the second of the window it came in and its
	// latency, for the timeline.
	Samples []Sample
	// Labels are the outcomes by ground-truth label (Fleet runs only), over the whole
	// run including the warm-up.
	Labels map[string]*LabelStats
	// ByAddr counts the answers measured in the window by switch address (with
	// LoadOptions.Addrs: how the load spread over the nodes).
	ByAddr map[string]int64
}

// LabelStats count the answers of one label.
type LabelStats struct {
	Sent, Answered, Declined int64
	Reasons                  map[string]int64 // declines by DE 48 RS, or the response code
}

func (l *LabelStats) merge(o *LabelStats) {
	l.Sent += o.Sent
	l.Answered += o.Answered
	l.Declined += o.Declined
	for k, v := range o.Reasons {
		l.Reasons[k] += v
	}
}

// Sample is one measured answer.
type Sample struct {
	Second    uint16
	LatencyUS uint32
}

// template is a terminal's request with the offsets of the fields patched per request.
type template struct {
	body                    []byte
	tid                     string
	stanOff, de7Off, panOff int
	amountOff               int
	stan                    uint32
}

func buildTemplate(tid string, d message.Dialect) (*template, error) {
	m, err := termclient.Build(termclient.Txn{PAN: "4761739001010119", Amount: 1000, Expiry: "2912", TID: tid,
		MID: "000000000000003", STAN: "000001"}, d)
	if err != nil {
		return nil, err
	}
	body, err := message.Pack(m, nil)
	if err != nil {
		return nil, err
	}
	t := &template{body: body, tid: tid}
	_, err = message.Scan(body, d, func(id int, v []byte) {
		off := cap(body) - cap(v) // v is body[off:off+len(v)]
		switch id {
		case 2:
			t.panOff = off
		case 4:
			t.amountOff = off
		case 7:
			t.de7Off = off
		case 11:
			t.stanOff = off
		}
	})
	return t, err
}

// Cards returns n Luhn-valid demo PANs of BIN 476173 (none of the special demo cards).
func Cards(n int) []string {
	out := make([]string, 0, n)
	for i := 0; len(out) < n; i++ {
		base := fmt.Sprintf("4761735%08d", i)
		for d := 0; d < 10; d++ {
			p := base + string(rune('0'+d))
			if message.Luhn(p) {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

func putDigits(b []byte, n uint64) {
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = byte('0' + n%10)
		n /= 10
	}
}

// RunLoad drives a closed loop: every connection keeps Depth requests in flight.
func RunLoad(ctx context.Context, o LoadOptions) (*LoadResult, error) {
	if o.Terminals <= 0 {
		o.Terminals = 2000
	}
	if o.Conns <= 0 {
		o.Conns = 64
	}
	if o.Depth <= 0 {
		o.Depth = 8
	}
	if o.Cards <= 0 {
		o.Cards = 10000
	}
	if o.Dialect == "" {
		o.Dialect = message.DialectASCII
	}
	if o.Terminals > MaxTerminals {
		return nil, fmt.Errorf("%d terminals: at most %d (LT000001 to LT999999)", o.Terminals, MaxTerminals)
	}
	terms := make([]*template, o.Terminals-min(max(o.CUPTerminals, 0), o.Terminals-1))
	if o.Fleet == nil && o.Conns > len(terms) {
		// Two connections would send for one terminal: its STANs would collide.
		return nil, fmt.Errorf("%d connections for %d terminals: each connection sends for terminals of its own", o.Conns, len(terms))
	}
	cards := Cards(o.Cards)
	for i := range terms {
		t, err := buildTemplate(fmt.Sprintf("LT%06d", i+1), o.Dialect)
		if err != nil {
			return nil, err
		}
		terms[i] = t
	}
	var measuring atomic.Bool
	// windowStart is when measuring started, with its monotonic clock reading: a
	// sample's second is its distance from it (windowSecond), which a step of the
	// wall clock does not move.
	var windowStart atomic.Pointer[time.Time]
	res := &LoadResult{Hist: hdrhistogram.New(1, 60_000_000, 3), Codes: map[string]int64{}, Labels: map[string]*LabelStats{}, ByAddr: map[string]int64{}}
	if len(o.Addrs) == 0 {
		o.Addrs = []string{o.Addr}
	}
	o.Addr = o.Addrs[0]
	var mu sync.Mutex
	var sent, answered, errs, failed, malformed atomic.Int64
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	// lost gets the error of a connection that ended before the load did (the switch
	// closed it, died, or a write failed): the run stops there and fails.
	lost := make(chan error, o.Conns+o.Terminals-len(terms)) // the connections and the cup terminals
	for c := 0; c < o.Conns; c++ {
		// Each connection owns the terminals c, c+Conns, c+2*Conns...
		var mine []*template
		for i := c; i < len(terms); i += o.Conns {
			mine = append(mine, terms[i])
		}
		if len(mine) == 0 {
			mine = []*template{terms[c%len(terms)]}
		}
		addr := o.Addrs[c%len(o.Addrs)]
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			cancel()
			wg.Wait()
			return nil, fmt.Errorf("connect to %s: %w", addr, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, codes, samples, labels, cs, err := driveConn(ctx, nc, o, mine, cards, &measuring, &answered, &windowStart)
			sent.Add(cs.sent)
			errs.Add(cs.errs)
			failed.Add(cs.failed)
			malformed.Add(cs.malformed)
			mu.Lock()
			res.Hist.Merge(h)
			res.ByAddr[addr] += h.TotalCount()
			res.Samples = append(res.Samples, samples...)
			for k, v := range labels {
				if res.Labels[k] == nil {
					res.Labels[k] = &LabelStats{Reasons: map[string]int64{}}
				}
				res.Labels[k].merge(v)
			}
			for k, v := range codes {
				res.Codes[k] += v
			}
			mu.Unlock()
			if err != nil {
				lost <- fmt.Errorf("connection %d to %s: %w", c+1, addr, err)
			}
		}()
	}
	for _, tid := range cupTerminalIDs(o.Terminals, o.Terminals-len(terms)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := driveCUPTerminal(ctx, o.CUPAddr, tid, "000000000000003", cards, &measuring, &answered, &windowStart)
			sent.Add(r.sent)
			errs.Add(r.errs)
			failed.Add(r.failed)
			malformed.Add(r.malformed)
			mu.Lock()
			res.Hist.Merge(r.hist)
			res.ByAddr[o.CUPAddr] += r.hist.TotalCount()
			res.Samples = append(res.Samples, r.samples...)
			for k, v := range r.codes {
				res.Codes[k] += v
			}
			mu.Unlock()
			if r.err != nil {
				lost <- fmt.Errorf("cup terminal %s on %s: %w", tid, o.CUPAddr, r.err)
			}
		}()
	}
	var dukpt map[string]*LabelStats
	dukptDone := make(chan struct{})
	if o.Fleet != nil {
		go func() { dukpt = dukptStream(ctx, o.Addr, 3*time.Second); close(dukptDone) }()
	} else {
		close(dukptDone)
	}
	// Warm up, then measure.
	var lostErr error
	select {
	case <-time.After(o.Warmup):
	case <-ctx.Done():
	case lostErr = <-lost:
		cancel()
	}
	if o.onStart != nil {
		o.onStart()
	}
	start := time.Now()
	windowStart.Store(&start)
	measuring.Store(true)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	end := time.After(o.Duration)
	// The progress line counts the window's answers (it counted the warm-up's too),
	// and no errors: the connections count theirs when they end, so it read 0.
	base := answered.Load()
	last := base
loop:
	for {
		select {
		case <-tick.C:
			if o.Progress != nil {
				now := answered.Load()
				fmt.Fprintf(o.Progress, "\r  %5.1fs  %8d answered in the window  %7d/s   ", time.Since(start).Seconds(), now-base, now-last)
				last = now
			}
		case <-end:
			break loop
		case <-ctx.Done():
			break loop
		case lostErr = <-lost:
			break loop
		}
	}
	res.Elapsed = time.Since(start)
	measuring.Store(false)
	if o.onEnd != nil {
		o.onEnd()
	}
	cancel()
	wg.Wait()
	<-dukptDone
	for k, v := range dukpt {
		if res.Labels[k] == nil {
			res.Labels[k] = &LabelStats{Reasons: map[string]int64{}}
		}
		res.Labels[k].merge(v)
	}
	if o.Progress != nil {
		fmt.Fprintln(o.Progress)
	}
	res.Sent, res.Answered, res.Errors, res.Failed, res.Malformed = sent.Load(), answered.Load(), errs.Load(), failed.Load(), malformed.Load()
	// Authorizations a second: the answers in the window less the failures.
	res.TPS = float64(res.Hist.TotalCount()) / res.Elapsed.Seconds()
	if lostErr != nil {
		return res, fmt.Errorf("load stopped at %.1fs of the measured window, %d sent, %d unanswered: %w",
			res.Elapsed.Seconds(), res.Sent, res.Errors, lostErr)
	}
	return res, nil
}

// windowSecond returns the second of the measured window that began at start in
// which now falls, from the two times' monotonic clock readings (Time.Sub uses them
// when both have one, as time.Now's do): a step of the wall clock during the run (NTP,
// an operator) neither moves an answer to another second nor drops it. Until the
// fifth release of 6 December 2026 the second came from the wall clock's Unix
// nanoseconds: a step back piled the answers into second 0, a step forward put them
// past the window's end, where the timeline left them out. A time before start is
// second 0; one past MaxWindow the last.
func windowSecond(start, now time.Time) uint16 {
	return uint16(min(max(now.Sub(start)/time.Second, 0), 65535))
}

// failedCode reports whether a response code is a failure rather than an
// authorization: 91 (issuer unavailable; also the switch's answer at once to a
// request beyond a listener's limit, frontend.ReasonSourceBusy) and 96 (system
// malfunction). A decline (05, 59...) is an authorization: the switch decided.
func failedCode(rc string) bool {
	return rc == message.RCIssuerUnavailable || rc == message.RCSystemMalfunction
}

// connCounts are one connection's counts (LoadResult's fields of the same names).
type connCounts struct {
	sent, answered, errs, failed, malformed int64
}

// driveConn keeps Depth requests in flight on one connection (or sends on a schedule
// with Rate) until ctx ends. Of the answers in the measured window, the failures
// (failedCode) are counted in failed and codes, not in h and samples; an answer
// without DE 39 is counted malformed (whenever it comes), and nowhere else but
// answered.
func driveConn(ctx context.Context, nc net.Conn, o LoadOptions, terms []*template, cards []string, measuring *atomic.Bool, total *atomic.Int64, windowStart *atomic.Pointer[time.Time]) (
	h *hdrhistogram.Histogram, codes map[string]int64, samples []Sample, labels map[string]*LabelStats, cs connCounts, err error) {
	h = hdrhistogram.New(1, 60_000_000, 3)
	codes = map[string]int64{}
	labels = map[string]*LabelStats{}
	type inflight struct {
		at      time.Time
		counted bool
		label   string
		tid     string
		follow  *approval
	}
	var mu sync.Mutex
	pending := map[string]inflight{}
	depth := o.Depth
	var interval time.Duration
	if o.Rate > 0 {
		interval = time.Duration(float64(o.Conns) / o.Rate * float64(time.Second))
		depth = max(depth, 4096)
	}
	slots := make(chan struct{}, depth)
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	stats := func(label string) *LabelStats {
		l := labels[label]
		if l == nil {
			l = &LabelStats{Reasons: map[string]int64{}}
			labels[label] = l
		}
		return l
	}
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		br := bufio.NewReaderSize(nc, 32768)
		var tid, stan, rc, rrn, auth, de48 []byte
		for {
			body, rerr := frontend.ReadFrame(br, nil, 0xFFFF)
			if rerr != nil {
				return
			}
			tid, stan, rc, rrn, auth, de48 = nil, nil, nil, nil, nil, nil
			if _, serr := message.Scan(body, o.Dialect, func(id int, v []byte) {
				switch id {
				case 11:
					stan = v
				case 37:
					rrn = v
				case 38:
					auth = v
				case 39:
					rc = v
				case 41:
					tid = v
				case 48:
					de48 = v
				}
			}); serr != nil {
				mu.Lock()
				cs.errs++
				mu.Unlock()
				continue
			}
			key := string(tid) + string(stan)
			mu.Lock()
			f, ok := pending[key]
			delete(pending, key)
			if ok && len(rc) != 2 {
				// No response code: neither an authorization nor a failure the
				// switch meant. Answered (its request is not left pending), counted
				// malformed, and nothing else.
				cs.answered++
				cs.malformed++
				total.Add(1)
			} else if ok {
				cs.answered++
				total.Add(1)
				// The throughput and the latency count the answers that come in the
				// window, whenever their request was sent: counting only those sent in it
				// too left out the requests in flight at its start (Depth x Conns of
				// them, seconds of answers with a deep closed loop).
				inWindow := measuring.Load()
				if inWindow && failedCode(string(rc)) {
					codes[string(rc)]++
					cs.failed++ // a failure, no authorization: not in the latency or the TPS
				} else if inWindow {
					now := time.Now()
					lat := max(1, now.Sub(f.at).Microseconds())
					_ = h.RecordValue(lat)
					codes[string(rc)]++
					samples = append(samples, Sample{Second: windowSecond(*windowStart.Load(), now), LatencyUS: uint32(min(lat, 1<<32-1))})
				}
				// The scenarios count only what was sent in the measured window (and
				// answered by the end of the run): the warm-up primes the velocity
				// counters, as a switch in service has them, so a pattern's first
				// attempts (which its rule's threshold lets through by design) do not
				// dominate a short run.
				if f.label != "" && f.counted {
					l := stats(f.label)
					l.Answered++
					if !message.Approved(string(rc)) {
						l.Declined++
						reason := "rc-" + string(rc)
						if len(de48) > 0 {
							if tl, err := message.ParseTLV(string(de48)); err == nil && tl.Reason != "" {
								reason = tl.Reason
							}
						}
						l.Reasons[reason]++
					}
				}
			}
			mu.Unlock()
			if ok {
				if f.follow != nil && o.Fleet != nil && message.Approved(string(rc)) {
					a := *f.follow
					a.rrn, a.auth = string(rrn), string(auth)
					o.Fleet.remember(f.tid, a)
				}
				<-slots
			}
		}
	}()
	bw := bufio.NewWriterSize(nc, 32768)
	buf := make([]byte, 0, 1024)
	de7 := message.FormatDE7(time.Now())
	de7At := time.Now()
	amounts := []uint64{1000, 2500, 4800, 8800, 12000, 15600, 23000, 39900}
	i := 0
	next := time.Now().Add(time.Duration(rng.Int64N(int64(max(interval, 1)))))
	var sched time.Time // the open loop's send time of this request
	wait := time.NewTimer(time.Hour)
	defer wait.Stop()
	for ctx.Err() == nil && err == nil {
		if interval > 0 {
			if d := time.Until(next); d > 0 {
				wait.Reset(d)
				select {
				case <-wait.C:
				case <-ctx.Done():
					continue
				case <-readerDone:
					err = errors.New("connection closed by the switch")
					continue
				}
			}
			sched = next
			next = next.Add(interval)
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			continue
		case <-readerDone:
			err = errors.New("connection closed by the switch")
			continue
		}
		var body []byte
		var key string
		var fl inflight
		if o.Fleet != nil {
			req, gerr := o.Fleet.Next(rng, time.Now())
			if gerr != nil {
				<-slots
				mu.Lock()
				cs.errs++
				mu.Unlock()
				continue
			}
			body, key = req.body, req.key
			fl = inflight{label: req.label, tid: req.tid, follow: req.follow}
		} else {
			t := terms[i%len(terms)]
			i++
			t.stan = t.stan%999999 + 1
			if time.Since(de7At) > time.Second {
				de7, de7At = message.FormatDE7(time.Now()), time.Now()
			}
			b := append(buf[:0], t.body...)
			putDigits(b[t.stanOff:t.stanOff+6], uint64(t.stan))
			copy(b[t.de7Off:t.de7Off+10], de7)
			copy(b[t.panOff:t.panOff+16], cards[rng.IntN(len(cards))])
			putDigits(b[t.amountOff:t.amountOff+12], amounts[rng.IntN(len(amounts))])
			body, key = b, t.tid+string(b[t.stanOff:t.stanOff+6])
		}
		fl.at, fl.counted = time.Now(), measuring.Load()
		if interval > 0 {
			fl.at = sched
		}
		mu.Lock()
		pending[key] = fl
		cs.sent++
		if fl.label != "" {
			stats(fl.label).Sent++
		}
		mu.Unlock()
		_, werr := bw.Write([]byte{byte(len(body) >> 8), byte(len(body))})
		if werr == nil {
			_, werr = bw.Write(body)
		}
		if werr == nil {
			werr = bw.Flush()
		}
		if werr != nil {
			// Still pending: counted with the unanswered below.
			err = fmt.Errorf("send: %w", werr)
			break
		}
	}
	// Let the answers in flight arrive (bounded; not once the connection is closed),
	// then close.
	deadline := time.Now().Add(15 * time.Second)
drain:
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(pending)
		mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-readerDone:
			break drain
		case <-time.After(5 * time.Millisecond):
		}
	}
	nc.Close()
	<-readerDone
	mu.Lock()
	cs.errs += int64(len(pending))
	mu.Unlock()
	return h, codes, samples, labels, cs, err
}

// Measured returns an error when nothing was authorized in the measured window (a
// switch that accepts and never answers, or answers only failures, 91 or 96): its
// figures would be zeros, not a measurement.
func (r *LoadResult) Measured() error {
	if r.Hist.TotalCount() > 0 {
		return nil
	}
	if r.Malformed > 0 && r.Failed == 0 {
		return fmt.Errorf("no authorization in the %.1fs measured window: %d answers in the run had no response code (DE 39), malformed (%d sent, %d unanswered)",
			r.Elapsed.Seconds(), r.Malformed, r.Sent, r.Errors)
	}
	if r.Failed > 0 {
		return fmt.Errorf("no authorization in the %.1fs measured window: its %d answers were all failures (%s), no decision (%d sent, %d unanswered)",
			r.Elapsed.Seconds(), r.Failed, failedCodes(r.Codes), r.Sent, r.Errors)
	}
	return fmt.Errorf("nothing answered in the %.1fs measured window (%d sent, %d answered in all, %d unanswered)",
		r.Elapsed.Seconds(), r.Sent, r.Answered, r.Errors)
}

// failedCodes lists the failure codes (failedCode) among codes with their counts,
// e.g. "91 x 512" or "91 x 500, 96 x 12".
func failedCodes(codes map[string]int64) string {
	var parts []string
	for _, rc := range []string{message.RCIssuerUnavailable, message.RCSystemMalfunction} {
		if n := codes[rc]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s x %d", rc, n))
		}
	}
	return strings.Join(parts, ", ")
}
