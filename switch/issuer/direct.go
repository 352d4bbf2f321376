package issuer

import (
	"errors"
	"fmt"
	"time"

	"github.com/moov-io/iso8583"
	connection "github.com/moov-io/iso8583-connection"

	"github.com/switchyard/switchyard/switch/message"
)

// The link matches answers to requests itself; iso8583-connection only dials,
// reconnects, reads, echoes when idle and hands over the issuer's own requests and late
// answers.
//
// Two reasons. Speed (issue 15): through iso8583-connection's Send, a request and its
// answer pass five goroutines: the transaction's, the connection's write loop (an
// unbuffered channel and a timer per message), the coalescing writer's flusher, the
// read loop, the read-response loop (another unbuffered channel and a timer per
// message) and a goroutine started per answer to match it, before the answer reaches
// the transaction through one more channel. On two cores each hand-off is a wait in the
// run queue. Here the request goes into the coalescing writer's buffer from the
// transaction's goroutine, and the light reader hands the answer straight to the
// transaction that waits for it: two hand-offs (flusher, read loop) instead of five.
//
// Safety: iso8583-connection v0.9.0's Send can deadlock. A connection that fails hands
// each pending request its error on an unbuffered channel while holding the lock of
// its pending requests; a Send that has just timed out, or just had its answer, no
// longer reads that channel and waits for the same lock to forget its request. Both
// stay stuck for good, and so does whoever waits for that Send (an advice sender in a
// CI run; TestSendEndsWhenTimeoutsRaceConnectionLosses). Here the waiters' channels
// are buffered and written once, under the writer's lock, so neither side can block
// the other. Nothing is sent with iso8583-connection's Send, so its pending requests
// stay empty.

// answer is what a waiting request gets: the codes of the issuer's answer (and, for
// a request that asked for it, the answer as a message with the fields the switch
// reads), or the connection's loss.
type answer struct {
	a   message.Answer
	m   *iso8583.Message
	err error
}

// waiter is a request waiting for its answer; full: it wants the answer as a message.
// at is where its bytes are in the writer's buffer while no write has taken them
// (n 0: the request was written otherwise, through Reply). req is the request's MTI,
// which the answer's must answer (answers).
type waiter struct {
	ch   chan answer
	full bool
	at   span
	req  [4]byte
}

// requestMTI is the MTI of body, a request encoded in the ASCII dialect (its first
// four bytes); zero when body is too short to have one.
func requestMTI(body []byte) (mti [4]byte) {
	if len(body) >= 4 {
		mti = [4]byte(body[:4])
	}
	return mti
}

// answers reports whether mti is the MTI of an answer to a request of MTI req: the
// same version and class, the request's function plus one (a request x0x answered
// x1x, an advice x2x answered x3x), and the acquirer as origin, or the request's own
// origin (a repeat 0421 is answered 0430, or 0431 by an issuer that echoes the
// repeat digit): 0100→0110, 0200→0210, 0220 and 0221→0230, 0400 and 0401→0410, 0420
// and 0421→0430, 0800→0810. Any other answer (a 0410 to a 0200) is not the request's,
// whatever its DE 11 and DE 37. A req that is not a request's MTI (zero) checks
// nothing. A comparison of bytes: it costs no allocation on the path of every
// authorization.
func answers[T string | []byte](req [4]byte, mti T) bool {
	if req[2] < '0' || req[2] > '8' || req[2]%2 != 0 {
		return true
	}
	return len(mti) == 4 && mti[0] == req[0] && mti[1] == req[1] && mti[2] == req[2]+1 && (mti[3] == '0' || mti[3] == req[3])
}

// span is a request's bytes in the buffer of generation gen (coalescingWriter.gen).
type span struct {
	gen    uint64
	off, n int
}

// register notes that the request id, of MTI req, waits for its answer and queues its
// body for the connection, in that order (the answer cannot come first). It fails if
// the connection is already lost, or with errNotStarted before the writer has its
// socket (nothing is written then).
func (c *coalescingWriter) register(id string, req [4]byte, body []byte, full bool) (chan answer, error) {
	if len(body) > 0xFFFF {
		return nil, fmt.Errorf("message of %d bytes does not fit a 2-byte length header", len(body))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.started && c.err == nil {
		return nil, errNotStarted
	}
	ch, err := c.addWaiter(id, req, full, span{gen: c.gen, off: len(c.buf), n: 2 + len(body)})
	if err != nil {
		return nil, err
	}
	c.buf = append(c.buf, byte(len(body)>>8), byte(len(body)))
	c.buf = append(c.buf, body...)
	if !c.writing {
		// No write in progress: write the buffer from this goroutine rather than
		// wake the flusher for it (a run-queue hand-off per authorization, issue 15).
		// A failed write closes the connection; the read loop's end fails the
		// requests waiting (this one among them) as in doubt.
		c.flush()
		if len(c.buf) == 0 {
			return ch, nil
		}
		// Bytes other requests queued meanwhile go with the flusher.
	}
	select { // under the lock, so that stop cannot close kick meanwhile
	case c.kick <- struct{}{}:
	default:
	}
	return ch, nil
}

// expect notes that the request id, of MTI req, waits for its answer, which the
// caller writes itself: the connection's first message, its sign-on, goes through
// iso8583-connection's Reply, because only that hands the writer its socket.
func (c *coalescingWriter) expect(id string, req [4]byte, full bool) (chan answer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addWaiter(id, req, full, span{})
}

// addWaiter notes the waiter of request id, of MTI req, whose bytes go at at; the
// caller holds c.mu. It fails if id already waits, or with errNotWritten if the
// connection's failure is already known: the request is not written then, and
// another connection may take it.
func (c *coalescingWriter) addWaiter(id string, req [4]byte, full bool, at span) (chan answer, error) {
	if c.err != nil {
		return nil, fmt.Errorf("%w (%v)", errNotWritten, c.err)
	}
	if _, dup := c.pend[id]; dup {
		return nil, fmt.Errorf("request %s already in flight", id)
	}
	if c.pend == nil {
		c.pend = make(map[string]waiter)
	}
	ch := make(chan answer, 1)
	c.pend[id] = waiter{ch: ch, full: full, at: at, req: req}
	return ch, nil
}

// errNotStarted: the connection has written nothing yet (its sign-on goes first).
var errNotStarted = errors.New("issuer connection not started")

// errNotWritten: the connection handed out had failed before the request was queued
// on it, so nothing of the request was written. It is ErrUnavailable (the pipeline
// stands in or answers 91, and owes no reversal); Send and SendPacked first try the
// link's other connections.
var errNotWritten = fmt.Errorf("%w: the connection had failed before the request was written", ErrUnavailable)

// forget drops a request whose write failed: nothing waits for its answer.
func (c *coalescingWriter) forget(id string) {
	c.mu.Lock()
	delete(c.pend, id)
	c.mu.Unlock()
}

// maxTimedOut bounds the timed-out requests a connection remembers for wasTimedOut:
// an answer later than the next maxTimedOut timeouts is taken as unmatched.
const maxTimedOut = 16384

// abandon drops a request that stopped waiting unanswered (its timeout) and, if it
// still waited, remembers it with its MTI: an answer that comes later is late
// (wasTimedOut), for
// iso8583-connection's inbound handler. Its bytes, if no write has taken them yet
// (queued behind a write that blocks), are dropped: sent later, the request would
// reach the issuer after its reversal, which goes on another connection. Bytes a
// write has taken go out as they are.
func (c *coalescingWriter) abandon(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w, ok := c.pend[id]
	if !ok {
		return // answered meanwhile
	}
	delete(c.pend, id)
	if w.at.n > 0 && w.at.gen == c.gen {
		c.dropped = append(c.dropped, w.at)
	}
	if c.timedOut == nil {
		c.timedOut = make(map[string][4]byte)
	}
	if _, ok := c.timedOut[id]; ok {
		// A repeat (an advice's 0221 after its 0220 timed out: the same DE 11 and
		// 37) timed out too: its answer, 0231 or 0230, answers both tries. Until 7
		// December 2026 the first try's MTI was kept, and a late 0231 was counted
		// as an answer of the wrong message type.
		c.timedOut[id] = w.req
		return
	}
	if len(c.timedOutOrder) >= maxTimedOut {
		delete(c.timedOut, c.timedOutOrder[0])
		c.timedOutOrder = c.timedOutOrder[1:]
	}
	c.timedOut[id] = w.req
	c.timedOutOrder = append(c.timedOutOrder, id)
}

// wasTimedOut reports whether an answer of MTI mti to request id is the late answer
// of a request that timed out unanswered (abandon); its first late answer takes it
// out, so that a second one is unmatched. An answer of another MTI than the request's
// answer (answers) is not: wrong is then the request's MTI, and the request stays
// remembered for its right answer.
func (c *coalescingWriter) wasTimedOut(id, mti string) (late bool, wrong [4]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	req, ok := c.timedOut[id]
	switch {
	case !ok:
		return false, wrong
	case !answers(req, mti):
		return false, req
	}
	delete(c.timedOut, id) // its place in timedOutOrder goes when it comes first
	return true, wrong
}

// deliver hands a, an answer of MTI mti, to the request id if one waits for it, with
// the message build makes if that request wants one; false if none waits (or build
// failed: the answer then goes on as one nobody waits for). It sends under the lock
// (the channel is buffered and sent to once), so that a request whose timeout has
// forgotten it either finds the answer in its channel or lets it go to the late
// answers, never neither. An answer whose MTI does not answer the request's (answers:
// a 0410 to a 0200) is not delivered: wrong is then the request's MTI, and the
// request goes on waiting for its answer, or times out, as after an answer that
// cannot be read.
func (c *coalescingWriter) deliver(id string, mti []byte, a message.Answer, build func() (*iso8583.Message, error)) (delivered bool, wrong [4]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w, ok := c.pend[id]
	switch {
	case !ok:
		return false, wrong
	case !answers(w.req, mti):
		return false, w.req
	}
	var m *iso8583.Message
	if w.full {
		var err error
		if m, err = build(); err != nil {
			return false, wrong
		}
	}
	delete(c.pend, id)
	w.ch <- answer{a: a, m: m}
	return true, wrong
}

// fail ends every request waiting with err (the connection is lost: their requests
// are in doubt).
func (c *coalescingWriter) fail(err error) {
	c.mu.Lock()
	pend := c.pend
	c.pend = nil
	c.mu.Unlock()
	for _, w := range pend {
		w.ch <- answer{err: err}
	}
}

// roundTrip sends a request on connection c and waits up to timeout for its answer:
// body is the request encoded, and mk makes the same request as a message, to go
// through iso8583-connection's Reply if the connection has not written yet (nil: the
// request then fails with ErrUnavailable, nothing sent); full asks for the answer as a
// message. id is the request's requestID. The wait ends early, as a timeout does
// (the request may have been answered: it is in doubt), when done is closed: a
// caller's context cancelled (nil: never, as for the pipeline's sends, which wait for
// their answer whatever happens to the terminal's request).
func (l *Link) roundTrip(done <-chan struct{}, c *connection.Connection, id string, body []byte, mk func() (*iso8583.Message, error), full bool, timeout time.Duration) (answer, error) {
	v, found := l.writers.Load(c)
	if !found {
		// Closed since the pool handed it out (its writer is gone): nothing was sent.
		return answer{}, errNotWritten
	}
	cw := v.(*coalescingWriter)
	req := requestMTI(body)
	ch, err := cw.register(id, req, body, full)
	if err == errNotStarted {
		if mk == nil {
			return answer{}, ErrUnavailable
		}
		var m *iso8583.Message
		if m, err = mk(); err != nil {
			return answer{}, err
		}
		if ch, err = cw.expect(id, req, full); err == nil {
			if err = c.Reply(m); err != nil {
				cw.forget(id)
			}
		}
	}
	switch {
	case errors.Is(err, errNotWritten):
		return answer{}, err
	case err != nil:
		// As a lost connection: the request may have been written.
		return answer{}, fmt.Errorf("%w: %v", ErrConnectionLost, err)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case a := <-ch:
		if a.err != nil {
			return answer{}, fmt.Errorf("%w: %v", ErrConnectionLost, a.err)
		}
		return a, nil
	case <-t.C:
		cw.abandon(id)
		// The answer may have come meanwhile.
		select {
		case a := <-ch:
			if a.err == nil {
				return a, nil
			}
		default:
		}
		return answer{}, ErrTimeout
	case <-done:
		cw.abandon(id)
		select {
		case a := <-ch:
			if a.err == nil {
				return a, nil
			}
		default:
		}
		return answer{}, fmt.Errorf("%w: the wait for the answer was cancelled", ErrTimeout)
	}
}
