package cjournal

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard/switchyard/switch/journal"
)

// TestFormat: a node names its format in the stream's metadata and on every message,
// reads messages that name none (an earlier version's), halts at a message of a newer
// format (and then says so, and answers 91 at once), and refuses at Open a stream
// whose metadata or messages name a newer format.
func TestFormat(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nc := startCluster(t, ctx, 1)
	nd := nc.nodes[0]
	m1 := openMember(t, ctx, nd, 1, 1, t.TempDir())
	defer m1.close(t)
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	if _, err := journalTxn(ctx, m1, "TV", "000001", at); err != nil {
		t.Fatal(err)
	}
	info, err := m1.j.stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Config.Metadata[metaFormat]; got != formatText {
		t.Fatalf("stream metadata %s = %q, want %q", metaFormat, got, formatText)
	}
	msg, err := m1.j.stream.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := msg.Header.Get(hdrFormat); got != formatText {
		t.Fatalf("first message's %s = %q, want %q", hdrFormat, got, formatText)
	}

	// Node 2's write-ahead record as a version before the guard wrote it: no header.
	publish := func(format string, r *journal.Record) {
		t.Helper()
		m := &nats.Msg{Subject: "journal.2.g", Data: firstEntry(t, r), Header: nats.Header{}}
		m.Header.Set(hdrNode, "2")
		m.Header.Set(hdrKind, kindGroup)
		if format != "" {
			m.Header.Set(hdrFormat, format)
		}
		if _, err := m1.j.js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	publish("", request("200000000001", "TV", "000002", at))
	if err := m1.j.CaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m1.j.Get("200000000001"); err != nil {
		t.Fatalf("a message without %s: %v", hdrFormat, err)
	}

	// A newer format halts node 1's applier.
	newer := strconv.Itoa(Format + 1)
	publish(newer, request("200000000002", "TV", "000003", at))
	select {
	case <-m1.j.ap.halt:
	case <-ctx.Done():
		t.Fatalf("the applier did not halt at a message of format %s", newer)
	}
	if _, err := m1.j.Get("200000000002"); !errors.Is(err, journal.ErrNotFound) {
		t.Fatalf("the message of format %s was applied: %v", newer, err)
	}
	err = m1.j.Following(ctx)
	if !errors.Is(err, ErrNewerFormat) || !strings.Contains(err.Error(), strconv.Quote(newer)) || !strings.Contains(err.Error(), "journal.2.g") {
		t.Fatalf("Following after a message of format %s: %v", newer, err)
	}
	// A first write fails at once (the pipeline answers 91), and publishes nothing.
	before, err := m1.j.stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rrn, err := m1.j.NextRRN()
	if err != nil {
		t.Fatal(err)
	}
	err = m1.j.Write(ctx, request(rrn, "TV", "000004", at), true, true)
	if !errors.Is(err, journal.ErrUnavailable) || !errors.Is(err, ErrNewerFormat) {
		t.Fatalf("a first write after the halt: %v", err)
	}
	after, err := m1.j.stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.State.LastSeq != before.State.LastSeq {
		t.Fatalf("the refused first write reached the stream: last sequence %d, then %d", before.State.LastSeq, after.State.LastSeq)
	}

	// A node opened on the stream now halts while it catches up: Open fails.
	if m, err := tryOpenMember(t, ctx, nd, 3, 1, t.TempDir()); !errors.Is(err, ErrNewerFormat) {
		if m != nil {
			m.close(t)
		}
		t.Fatalf("Open on a stream holding a message of format %s: %v", newer, err)
	}

	// A stream whose metadata names a newer format is refused before anything is read.
	cfg := info.Config
	cfg.Metadata = map[string]string{metaFormat: newer}
	if _, err := m1.j.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	m, err := tryOpenMember(t, ctx, nd, 3, 1, t.TempDir())
	if !errors.Is(err, ErrNewerFormat) || !strings.Contains(err.Error(), "metadata") {
		if m != nil {
			m.close(t)
		}
		t.Fatalf("Open on a stream whose metadata names format %s: %v", newer, err)
	}
}

// TestEncodeHint: Write's first buffer is as large as the largest encoding noted, up
// to maxEncodeHint; a larger one does not raise it.
func TestEncodeHint(t *testing.T) {
	var j Journal
	if got := j.encodeHint(); got != 512 {
		t.Fatalf("hint before any encoding = %d, want 512", got)
	}
	for _, c := range []struct{ note, want int }{
		{700, 700}, {600, 700}, {maxEncodeHint, maxEncodeHint}, {maxEncodeHint + 1, maxEncodeHint},
	} {
		j.noteEncoded(c.note)
		if got := j.encodeHint(); got != c.want {
			t.Fatalf("after noting %d: hint %d, want %d", c.note, got, c.want)
		}
	}
	var k Journal
	k.noteEncoded(1 << 20)
	if got := k.encodeHint(); got != 512 {
		t.Fatalf("after noting only an encoding over the bound: hint %d, want 512", got)
	}
}
