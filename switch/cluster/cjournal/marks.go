package cjournal

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Delivery marks are never waited for, and one comes with every transaction: they
// go to the stream in the grouper's messages with the record versions (group.go).

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
	if _, err := j.enqueue(kindDeliv[0], appendMark(nil, rrn, delivered, at), false); err != nil {
		// A survivor recovering this node would take the answer as undelivered
		// (and reverse an approval the terminal got): say which.
		j.stats.lost.Add(1)
		j.log.Error().Err(err).Str("rrn", rrn).Bool("delivered", delivered).Msg("cluster journal: a delivery mark goes unreplicated")
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
