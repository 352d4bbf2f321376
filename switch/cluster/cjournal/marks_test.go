package cjournal

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestMarksMessages: queued delivery marks leave in messages of at most maxMarksMsg,
// cut at marks' ends, and decode back to the same marks in order; a torn message is
// refused as one that will never apply.
func TestMarksMessages(t *testing.T) {
	var sent []*nats.Msg
	j := &Journal{node: "1", idPrefix: "1.test.", async: make(chan asyncPub, 100), stop: make(chan struct{}),
		publishAsync: func(m *nats.Msg, _ ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
			sent = append(sent, m)
			return nil, errors.New("not connected")
		}}
	at := time.Unix(1764583200, 123).UTC()
	const n = 40000 // ~880 KB of marks: four messages
	for i := range n {
		j.marks.buf = appendMark(j.marks.buf, fmt.Sprintf("1%011d", i), i%3 != 0, at.Add(time.Duration(i)))
	}
	j.sendMarks(false)
	if len(sent) < 2 || len(j.async) != len(sent) {
		t.Fatalf("%d messages sent, %d queued for the resender; want several, all queued", len(sent), len(j.async))
	}
	i := 0
	for _, m := range sent {
		if len(m.Data) > maxMarksMsg+30 || m.Subject != "journal.1.d" || m.Header.Get(jetstream.MsgIDHeader) == "" {
			t.Fatalf("message %s of %d bytes, id %q", m.Subject, len(m.Data), m.Header.Get(jetstream.MsgIDHeader))
		}
		err := decodeMarks(m.Data, func(rrn string, delivered bool, got time.Time) error {
			if rrn != fmt.Sprintf("1%011d", i) || delivered != (i%3 != 0) || !got.Equal(at.Add(time.Duration(i))) {
				return fmt.Errorf("mark %d: %s %v %v", i, rrn, delivered, got)
			}
			i++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if i != n {
		t.Fatalf("%d marks decoded; %d sent", i, n)
	}
	var bad badMessage
	if err := decodeMarks(sent[0].Data[:15], func(string, bool, time.Time) error { return nil }); !errors.As(err, &bad) {
		t.Fatalf("torn marks message: %v; want a badMessage", err)
	}
}
