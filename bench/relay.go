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

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/journal/wal"
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

	// With RelayOptions.Journal: the log and its group commit.
	log     *wal.Log
	commits *wal.Committer[*relayWrite]
}

// RelayOptions are a relay's settings beyond its addresses.
type RelayOptions struct {
	// Burn is CPU time the relay spends on each request before it forwards it (a
	// spin calibrated when the relay starts): a model of a switch that costs this
	// much, to see what latency a process of that cost gets on the machine beside
	// the harness and the simulator (bench --relay-burn). Zero: none.
	Burn time.Duration
	// Journal, when set, is a directory in which the relay makes the switch's two
	// durable writes of each transaction: a record of the request, synced before
	// the request is forwarded, and one of the answer, synced before the answer is
	// passed back, through the switch's own log and group commit (the journal's
	// default window and gap), each frame on a goroutine of its own as the switch's
	// transactions are, and the forwarded frames through one writer goroutine per
	// connection and direction. A model of the switch's durability and hand-offs
	// without its work: the latency floor they set on this machine (bench
	// --relay-journal). It lowers the relay's throughput, the bench's baseline.
	Journal string
	// JournalWindow is the group commit's window of a relay with a journal
	// (journal.window); negative: the switch's default, 1 ms.
	JournalWindow time.Duration
}

// relayRecord is the size of a relay's journal record: about a purchase's record in
// the switch's journal (its binary encoding, 500-700 bytes).
const relayRecord = 600

// relayWrite is one durable write of a relay with a journal.
type relayWrite struct {
	kind byte
	rec  []byte
	done chan error
}

// StartRelay listens on addr and relays to upstream.
func StartRelay(addr, upstream string, o RelayOptions) (*Relay, error) {
	if o.Burn < 0 || o.Burn > time.Second {
		return nil, fmt.Errorf("relay burn %v: want 0 to 1s a request", o.Burn)
	}
	if o.JournalWindow > 100*time.Millisecond {
		return nil, fmt.Errorf("relay journal window %v: want at most 100ms (as journal.window)", o.JournalWindow)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	r := &Relay{ln: ln, upstream: upstream, conns: map[net.Conn]struct{}{}}
	if o.Burn > 0 {
		r.burn = int(float64(o.Burn) / spinCost())
	}
	if o.Journal != "" {
		if r.log, err = wal.Open(o.Journal, wal.Options{MaxKind: 2}, wal.Pos{}, func(wal.Frame) error { return nil }); err != nil {
			ln.Close()
			return nil, fmt.Errorf("relay journal %s: %w", o.Journal, err)
		}
		window := o.JournalWindow
		if window < 0 {
			window = config.DefaultJournalWindow
		}
		r.commits = wal.StartCommitter(wal.GroupOptions{Window: window, Gap: journal.DefaultGap}, r.commitGroup)
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
	if r.commits != nil {
		r.commits.Close()
		if cerr := r.log.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// commitGroup writes a group of journal records with one append (one sync) and
// tells their writers.
func (r *Relay) commitGroup(group []*relayWrite) {
	b, err := r.log.Begin()
	if err == nil {
		for _, w := range group {
			b.Add(w.kind, w.rec)
		}
		err = r.log.Append(b)
	}
	for _, w := range group {
		w.done <- err
	}
}

// journal writes a record of kind holding body durably, as the switch's journal
// does: the writer leads its group's commit when no commit is in progress.
func (r *Relay) journal(kind byte, body []byte) error {
	rec := make([]byte, max(relayRecord, len(body)))
	copy(rec, body)
	w := &relayWrite{kind: kind, rec: rec, done: make(chan error, 1)}
	if err := r.commits.Lead(w); err != nil {
		return err
	}
	return <-w.done
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
		if r.commits != nil {
			go r.pipeDurable(c, up, r.burn, 1)
			go r.pipeDurable(up, c, 0, 2)
			continue
		}
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

// pipeDurable is pipe for a relay with a journal: each frame from src is handled on
// a goroutine of its own, which spends burn, writes a journal record of kind and
// hands the frame to dst's writer goroutine; that one flushes when it has nothing
// more queued. It returns once src ends and its goroutines have.
func (r *Relay) pipeDurable(src, dst net.Conn, burn int, kind byte) {
	defer r.wg.Done()
	out := make(chan []byte, 1024)
	written := make(chan struct{})
	go func() {
		defer close(written)
		bw := bufio.NewWriterSize(dst, 32768)
		failed := false
		for f := range out {
			if failed {
				continue // drained until the frames' goroutines end
			}
			if _, err := bw.Write(f); err != nil {
				failed = true
				dst.Close() // the other direction's reader ends too
				continue
			}
			if len(out) == 0 && bw.Flush() != nil {
				failed = true
				dst.Close()
			}
		}
	}()
	var frames sync.WaitGroup
	defer func() {
		src.Close()
		dst.Close()
		frames.Wait()
		close(out)
		<-written
		r.track(src, false)
		r.track(dst, false)
	}()
	br := bufio.NewReaderSize(src, 32768)
	for {
		body, err := frontend.ReadFrame(br, nil, 0xFFFF)
		if err != nil {
			return
		}
		frames.Add(1)
		go func() {
			defer frames.Done()
			if burn > 0 {
				spinSink.Add(spin(burn))
			}
			if err := r.journal(kind, body); err != nil {
				src.Close() // a relay that cannot journal stops relaying
				return
			}
			out <- append([]byte{byte(len(body) >> 8), byte(len(body))}, body...)
		}()
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
