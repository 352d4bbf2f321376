package issuer

import (
	"fmt"
	"time"

	connection "github.com/moov-io/iso8583-connection"

	"github.com/switchyard/switchyard/switch/message"
)

// The direct path of an authorization's request and answer (SendPacked). Through
// iso8583-connection's Send, a request and its answer pass five goroutines: the
// transaction's, the connection's write loop (an unbuffered channel and a timer per
// message), the coalescing writer's flusher, the read loop, the read-response loop
// (another unbuffered channel and a timer per message) and a goroutine started per
// answer to match it, before the answer reaches the transaction through one more
// channel. On two cores each hand-off is a wait in the run queue (issue 15). The
// direct path puts the request into the coalescing writer's buffer from the
// transaction's goroutine, and the light reader hands the answer straight to the
// transaction that waits for it: two hand-offs (flusher, read loop) instead of five.
// What the direct path does not know (sign-on, echo, advices sent with Send, late
// answers) still goes through iso8583-connection, as before.

// answer is what a request on the direct path gets: the codes of the issuer's
// answer, or the connection's loss.
type answer struct {
	a   message.Answer
	err error
}

// register notes that the request id waits for its answer and queues its body for
// the connection, in that order (the answer cannot come first). It fails if the
// connection is already lost or not yet signed on (nothing written then).
func (c *coalescingWriter) register(id string, body []byte) (chan answer, error) {
	if len(body) > 0xFFFF {
		return nil, fmt.Errorf("message of %d bytes does not fit a 2-byte length header", len(body))
	}
	ch := make(chan answer, 1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil, c.err
	}
	if !c.started {
		return nil, errNotStarted
	}
	if _, dup := c.pend[id]; dup {
		return nil, fmt.Errorf("request %s already in flight", id)
	}
	if c.pend == nil {
		c.pend = make(map[string]chan answer)
	}
	c.pend[id] = ch
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

// errNotStarted: the connection has written nothing yet (its sign-on goes first).
var errNotStarted = fmt.Errorf("issuer connection not started")

// forget drops a request that stopped waiting (its timeout): an answer that comes
// later is a late answer, for iso8583-connection's inbound handler.
func (c *coalescingWriter) forget(id string) {
	c.mu.Lock()
	delete(c.pend, id)
	c.mu.Unlock()
}

// deliver hands a to the request id waiting on the direct path; false if none waits.
// It sends under the lock (the channel is buffered and sent to once), so that a
// request whose timeout has forgotten it either finds the answer in its channel or
// lets it go to the late answers, never neither.
func (c *coalescingWriter) deliver(id string, a message.Answer) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch, ok := c.pend[id]
	if ok {
		delete(c.pend, id)
		ch <- answer{a: a}
	}
	return ok
}

// fail ends every request waiting on the direct path with err (the connection is
// lost: their requests are in doubt).
func (c *coalescingWriter) fail(err error) {
	c.mu.Lock()
	pend := c.pend
	c.pend = nil
	c.mu.Unlock()
	for _, ch := range pend {
		ch <- answer{err: err}
	}
}

// sendDirect is SendPacked's path when the pool's connection is one of this link's:
// see the comment at the top of this file. ok is false when the direct path cannot
// take the request (the connection has not written yet), and the caller sends it
// through iso8583-connection.
func (l *Link) sendDirect(c *connection.Connection, stan, rrn string, body []byte, timeout time.Duration) (resp message.Answer, ok bool, err error) {
	v, found := l.writers.Load(c)
	if !found {
		return resp, false, nil
	}
	cw := v.(*coalescingWriter)
	id := stan + "/" + rrn
	ch, err := cw.register(id, body)
	switch {
	case err == errNotStarted:
		return resp, false, nil
	case err != nil:
		// As iso8583-connection's ErrConnectionClosed: the request is in doubt.
		return resp, true, fmt.Errorf("%w: %v", ErrConnectionLost, err)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case a := <-ch:
		if a.err != nil {
			return resp, true, fmt.Errorf("%w: %v", ErrConnectionLost, a.err)
		}
		return a.a, true, nil
	case <-t.C:
		cw.forget(id)
		// The answer may have come meanwhile.
		select {
		case a := <-ch:
			if a.err == nil {
				return a.a, true, nil
			}
		default:
		}
		return resp, true, ErrTimeout
	}
}
