package cjournal

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"
)

// Delivery marks are never waited for, and one comes with every transaction: they
// go to the stream many to a message. MarkDelivery queues the mark; the marker (one
// goroutine, started by Open, joined by Close) publishes what has gathered in one
// message and waits for its acknowledgement before it sends the next, so that under
// load the marks of a whole acknowledgement's round trip share a message. A message
// that fails goes to the resender, which sends it again with its Nats-Msg-Id.

// marker is the queue of delivery marks not yet published.
type marker struct {
	mu   sync.Mutex
	buf  []byte        // encoded marks
	wake chan struct{} // a mark was queued into an empty buffer
	done chan struct{} // closed when markLoop has ended
}

// maxMarksMsg bounds a marks message (the stream's default message limit is 1 MiB).
const maxMarksMsg = 256 << 10

// MarkDelivery records the delivery locally and queues it for the stream: a survivor
// that recovers this node's transactions needs to know which answers reached their
// terminals.
func (j *Journal) MarkDelivery(rrn string, delivered bool, at time.Time) error {
	if len(rrn) > 255 {
		return fmt.Errorf("cjournal: delivery mark of an RRN of %d bytes", len(rrn))
	}
	if err := j.store.MarkDelivery(rrn, delivered, at); err != nil {
		return err
	}
	j.marks.mu.Lock()
	wasEmpty := len(j.marks.buf) == 0
	j.marks.buf = appendMark(j.marks.buf, rrn, delivered, at)
	j.marks.mu.Unlock()
	if wasEmpty {
		select {
		case j.marks.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// appendMark encodes a delivery mark: state byte, unix nanos (8 bytes BE), RRN
// length byte, RRN.
func appendMark(b []byte, rrn string, delivered bool, at time.Time) []byte {
	var st byte
	if delivered {
		st = 1
	}
	b = binary.BigEndian.AppendUint64(append(b, st), uint64(at.UnixNano()))
	return append(append(b, byte(len(rrn))), rrn...)
}

// markLoop publishes the queued marks until Close, and then the last ones.
func (j *Journal) markLoop() {
	defer close(j.marks.done)
	for {
		select {
		case <-j.marks.wake:
		case <-j.stop:
			j.sendMarks(false)
			return
		}
		j.sendMarks(true)
	}
}

// sendMarks publishes the queued marks, a message of up to maxMarksMsg at a time;
// with wait, it waits for each one's acknowledgement (or error) before the next.
func (j *Journal) sendMarks(wait bool) {
	for {
		j.marks.mu.Lock()
		buf := j.marks.buf
		if len(buf) > maxMarksMsg {
			// Cut at a mark's end.
			n := 0
			for n < maxMarksMsg {
				n += 10 + int(buf[n+9])
			}
			buf, j.marks.buf = buf[:n], append([]byte(nil), buf[n:]...)
		} else {
			j.marks.buf = nil
		}
		j.marks.mu.Unlock()
		if len(buf) == 0 {
			return
		}
		m := j.message(kindDeliv, false, buf)
		j.setID(m)
		f, err := j.publishAsync(m)
		if err != nil {
			j.queueResend(asyncPub{m: m}) // the resender sends it
			continue
		}
		if !wait {
			j.queueResend(asyncPub{m: m, f: f})
			continue
		}
		select {
		case <-f.Ok():
			j.stats.published.Add(1)
		case <-f.Err():
			j.queueResend(asyncPub{m: m})
		case <-j.stop:
			j.queueResend(asyncPub{m: m, f: f})
		}
	}
}

// applyMarks applies a message of delivery marks to the local store.
func (j *Journal) applyMarks(data []byte) error {
	return decodeMarks(data, j.store.MarkDelivery)
}

// decodeMarks calls fn for each mark of a marks message, until it fails.
func decodeMarks(data []byte, fn func(rrn string, delivered bool, at time.Time) error) error {
	for len(data) > 0 {
		if len(data) < 10 || len(data) < 10+int(data[9]) {
			return badMessage{fmt.Errorf("delivery marks: %d bytes left, too short for a mark", len(data))}
		}
		n := 10 + int(data[9])
		at := time.Unix(0, int64(binary.BigEndian.Uint64(data[1:9]))).UTC()
		if err := fn(string(data[10:n]), data[0] == 1, at); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}
