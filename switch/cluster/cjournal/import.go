package cjournal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/switch/journal"
)

// Importing a single switch's journal. A cluster starts from empty data directories;
// a single switch's history (its records and its terminals' last batch closes) joins
// it as the records of a node of its own, node 0, published into the stream like any
// node's group messages (subject journal.0.g): every node's applier writes them into
// its local store, so that queries, settlement, duplicate checks and the DUKPT
// counters on any node see them, and folds their final versions into velocity as it
// does other nodes'. A single switch's RRNs are 12-digit sequence numbers below 10^11,
// so their first digit is 0, apart from every cluster node's (1 to 9).
//
// An import goes in RRN order and can be interrupted and run again: every message
// carries the highest RRN imported with it (header Sy-Import-Last), and the next
// import goes on after it. Each message is published only if the subject's last
// message is still the one the import last saw (JetStream's expected last subject
// sequence), so two imports at once cannot interleave: the second fails.

// Import's errors, besides the stream's (wrapping journal.ErrUnavailable).
var (
	// ErrImportRefused wraps what an import refuses: records it cannot take.
	ErrImportRefused = errors.New("import refused")
	// ErrImportConflict is another import publishing at the same time.
	ErrImportConflict = errors.New("another import published meanwhile")
	// ErrImportBehind is an import stopped because an applier stopped moving before
	// it applied the import's messages (Options.ImportWait): what was published
	// stays, and the import goes on after it when run again.
	ErrImportBehind = errors.New("the nodes' appliers stay behind the import")
)

// importAhead is how many import messages Import publishes beyond the last one
// every node has applied: the next is published once the one before the last is
// applied everywhere, so that an applier always has the next message at hand and
// never more than two (some 280 records) stand between a node's own requests and
// the stream.
const importAhead = 2

// importWaitMax bounds Import's wait for this node's applier to apply one of its
// messages when there is no Options.ImportWait.
var importWaitMax = 2 * time.Minute

// ImportNode is the node name of an imported single switch's messages.
const ImportNode = "0"

// hdrImportLast is the highest RRN imported up to and including a message, and
// hdrImportSource the identity of the single switch imported (ImportState.Source).
const (
	hdrImportLast   = "Sy-Import-Last"
	hdrImportSource = "Sy-Import-Source"
)

// importMsgMax bounds an import message (a test lowers it): 64 KiB, some 140
// purchases. A node's requests wait behind what the stream holds before them, and an
// import keeps at most importAhead messages ahead of the slowest applier: measured
// on a 3-node cluster serving 1,500 authorizations a second on 2 shared cores
// (docs/cluster.md, "Importing while the cluster serves"), messages of 256 KiB
// raised the requests' median latency from 22 ms to 187 ms, of 64 KiB to 53 ms, of
// 32 KiB to 49 ms at half the import's speed.
var importMsgMax = 64 << 10

// maxImportEntry bounds one record of an import: the NATS servers carry messages of
// up to 1 MiB (their default max_payload), headers included.
const maxImportEntry = 1<<20 - 4<<10

// importSubject is the subject of the imported messages.
const importSubject = "journal." + ImportNode + "." + kindGroup

// ImportState is what the stream holds of an import of a single switch's journal.
type ImportState struct {
	// LastRRN is the highest RRN imported ("" none): an import goes on after it.
	LastRRN string `json:"last_rrn"`
	// Source identifies the single switch imported (the tool keeps an identity in
	// its data directory): an import goes on only from the same one.
	Source string `json:"source,omitempty"`
	// Messages is how many import messages the stream holds, and LastSeq the stream
	// sequence of the last (0 none).
	Messages uint64 `json:"messages"`
	LastSeq  uint64 `json:"last_seq"`
}

// BatchClose is a terminal's last batch close.
type BatchClose struct {
	TID string    `json:"tid"`
	At  time.Time `json:"at"`
}

// ImportResult is what one Import published.
type ImportResult struct {
	Records  int    `json:"records"`
	Closes   int    `json:"closes"`
	Messages int    `json:"messages"`
	LastRRN  string `json:"last_rrn"`
	// AppliedBy are the nodes that have applied the import's last message (the
	// running ones: a node that is down applies it when it comes back).
	AppliedBy []int `json:"applied_by,omitempty"`
}

// ImportState reads what the stream holds of an import.
func (j *Journal) ImportState(ctx context.Context) (ImportState, error) {
	var st ImportState
	info, err := j.stream.Info(ctx, jetstream.WithSubjectFilter(importSubject))
	if err != nil {
		return st, fmt.Errorf("cjournal: import state: stream %s: %w (%w)", StreamName, journal.ErrUnavailable, err)
	}
	st.Messages = info.State.Subjects[importSubject]
	if st.Messages == 0 {
		return st, nil
	}
	// A direct get (the stream allows them) may be answered by a replica behind the
	// leader: a state read from it is at worst stale, and the leader refuses the
	// publish that follows (Import reads the state again once).
	m, err := j.stream.GetLastMsgForSubject(ctx, importSubject)
	if err != nil {
		return st, fmt.Errorf("cjournal: import state: the last message of %s: %w (%w)", importSubject, journal.ErrUnavailable, err)
	}
	st.LastSeq = m.Sequence
	st.LastRRN, st.Source = m.Header.Get(hdrImportLast), m.Header.Get(hdrImportSource)
	return st, nil
}

// ImportRRN reports whether rrn can be a single switch's RRN: 12 digits, the first 0.
func ImportRRN(rrn string) bool {
	if len(rrn) != 12 || rrn[0] != '0' {
		return false
	}
	for i := 0; i < len(rrn); i++ {
		if rrn[i] < '0' || rrn[i] > '9' {
			return false
		}
	}
	return true
}

// Import publishes a stopped single switch's batch closes and records into the
// stream as node 0's, closes first, in messages of up to 64 KiB, and returns once
// every node's applier has applied them all (Options.ImportWait): it publishes at
// the pace the appliers apply, never more than importAhead messages beyond the
// slowest, so that a cluster serving terminals meanwhile keeps answering them
// (ErrImportBehind when an applier stops moving before it has applied them).
//
// The records must be final (a single switch recovers its open transactions when it
// starts: start it once, stop it, then import), carry a single switch's RRNs
// (ImportRRN), and come in ascending RRN order after the last one imported
// (ImportState.LastRRN): an import interrupted by an error is run again from
// there. Batch closes may be sent again (the appliers keep each terminal's latest).
// after is the LastRRN its caller read (ImportState) and has sent everything up to:
// when the stream holds the import up to another RRN, another import moved it
// (ErrImportConflict). It fails too, with nothing of the failed message stored, when
// another import publishes meanwhile; and it refuses to start again from nothing on a
// node whose store holds imported records already (their messages aged out of the
// stream: imported again, they would undo what the cluster changed in them since,
// a refund's amount for one).
func (j *Journal) Import(ctx context.Context, source, after string, closes []BatchClose, recs []*journal.Record) (ImportResult, error) {
	var res ImportResult
	if source == "" {
		return res, fmt.Errorf("cjournal: %w: no identity of the single switch imported", ErrImportRefused)
	}
	for try := 0; ; try++ {
		st, err := j.ImportState(ctx)
		if err != nil {
			return res, err
		}
		if st.Messages > 0 && st.Source != source {
			return res, fmt.Errorf("cjournal: %w: the stream holds an import of another single switch (%q, up to RRN %s), not of %q: a cluster takes one switch's journal", ErrImportRefused, st.Source, st.LastRRN, source)
		}
		if st.LastRRN != after {
			return res, fmt.Errorf("cjournal: import: %w: the stream holds the import up to RRN %q, and this import had read %q: run it again", ErrImportConflict, st.LastRRN, after)
		}
		if st.Messages == 0 {
			if err := j.noImportHeld(ctx); err != nil {
				return res, err
			}
		}
		res, err = j.importAfter(ctx, st, source, closes, recs)
		// A conflict before anything went may be a stale read of the state (a
		// replica behind the leader): read it again, once.
		if err == nil || try > 0 || res.Messages > 0 || !errors.Is(err, ErrImportConflict) {
			return res, err
		}
	}
}

// noImportHeld refuses an import from nothing on a node whose local store holds a
// single switch's records already.
func (j *Journal) noImportHeld(ctx context.Context) error {
	var held string
	err := j.store.ScanFrom(ctx, "0", func(r *journal.Record) bool {
		if ImportRRN(r.RRN) {
			held = r.RRN
		}
		return false
	})
	if err != nil {
		return fmt.Errorf("cjournal: import: look for imported records in the local journal: %w", err)
	}
	if held != "" {
		return fmt.Errorf("cjournal: %w: this node's journal holds an imported single switch's records (RRN %s) whose messages are no longer in the stream (35 days after their import): importing again would overwrite what the cluster changed in them since", ErrImportRefused, held)
	}
	return nil
}

// importAfter is Import after st, the import's state as last read.
func (j *Journal) importAfter(ctx context.Context, st ImportState, source string, closes []BatchClose, recs []*journal.Record) (ImportResult, error) {
	var res ImportResult
	last := st.LastRRN
	for i, c := range closes {
		if c.TID == "" || c.At.IsZero() {
			return res, fmt.Errorf("cjournal: %w: batch close %d: terminal %q at %v: a terminal ID and a time are required", ErrImportRefused, i, c.TID, c.At)
		}
	}
	prev := last
	for _, r := range recs {
		switch {
		case !ImportRRN(r.RRN):
			return res, fmt.Errorf("cjournal: %w: RRN %q is not a single switch's (12 digits, the first 0)", ErrImportRefused, r.RRN)
		case r.RRN <= prev:
			if r.RRN <= last {
				return res, fmt.Errorf("cjournal: %w: record %s: the stream holds the import up to RRN %s already (run the import again: it goes on after it)", ErrImportRefused, r.RRN, last)
			}
			return res, fmt.Errorf("cjournal: %w: record %s after %s: records must come in ascending RRN order", ErrImportRefused, r.RRN, prev)
		case !r.Final():
			return res, fmt.Errorf("cjournal: %w: record %s (terminal %s, %s) is not final: start the single switch once so that its recovery settles its open transactions, stop it, and import again", ErrImportRefused, r.RRN, r.TID, r.State)
		}
		prev = r.RRN
	}

	// One message at a time: entries gather in buf until the next would pass
	// maxGroupMsg. A message's Sy-Import-Last is the highest RRN imported with it.
	var (
		buf             []byte
		nRecs, nCloses  int
		firstID, msgMax = "", last
		seq             = st.LastSeq
		sent            []sentMsg // published, not yet known applied everywhere
	)
	// applied waits until every node has applied sent[0] and drops it.
	applied := func() error {
		m := sent[0]
		nodes, err := j.importWait(ctx, m.seq)
		if err != nil {
			return fmt.Errorf("cjournal: import: waiting for the running nodes to apply message %d (records up to RRN %s), which the stream holds (a run again goes on after it): %w", m.seq, m.last, err)
		}
		sent, res.AppliedBy = sent[1:], nodes
		return nil
	}
	send := func() error {
		if nRecs+nCloses == 0 {
			return nil
		}
		for len(sent) >= importAhead {
			if err := applied(); err != nil {
				return err
			}
		}
		m := &nats.Msg{Subject: importSubject, Data: buf, Header: nats.Header{}}
		m.Header[hdrNode] = []string{ImportNode}
		m.Header[hdrKind] = []string{kindGroup}
		m.Header[hdrFormat] = []string{formatText}
		m.Header[hdrImportLast] = []string{msgMax}
		m.Header[hdrImportSource] = []string{source}
		pctx, cancel := context.WithTimeout(ctx, j.opts.AckTimeout)
		defer cancel()
		ack, err := j.js.PublishMsg(pctx, m, jetstream.WithMsgID("import-"+firstID+"-"+msgMax),
			jetstream.WithExpectLastSequencePerSubject(seq))
		if err != nil {
			var api *jetstream.APIError
			if errors.As(err, &api) && (api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
				return fmt.Errorf("cjournal: import: %w to %s (%v): run the import again", ErrImportConflict, importSubject, err)
			}
			return &unavailableError{what: fmt.Sprintf("import of %d records and %d batch closes up to RRN %q", nRecs, nCloses, msgMax), err: err, noQuorum: !errors.As(err, &api)}
		}
		if ack.Duplicate {
			// The stream held this message already (its Nats-Msg-Id, within the
			// duplicate window): its sequence need not be the subject's last.
			return fmt.Errorf("cjournal: import: %w: the stream held the message up to RRN %s already (sequence %d)", ErrImportConflict, msgMax, ack.Sequence)
		}
		seq = ack.Sequence
		sent = append(sent, sentMsg{seq: seq, last: msgMax})
		res.Messages++
		res.Records += nRecs
		res.Closes += nCloses
		res.LastRRN = msgMax
		buf, nRecs, nCloses = nil, 0, 0
		return nil
	}
	add := func(kind byte, payload []byte, id string) error {
		if nRecs+nCloses > 0 && len(buf)+1+binary.MaxVarintLen64+len(payload) > importMsgMax {
			if err := send(); err != nil {
				return err
			}
		}
		if nRecs+nCloses == 0 {
			firstID = id
		}
		buf = binary.AppendUvarint(append(buf, kind), uint64(len(payload)))
		buf = append(buf, payload...)
		return nil
	}
	for _, c := range closes {
		data := append(binary.BigEndian.AppendUint64(nil, uint64(c.At.UnixNano())), c.TID...)
		if err := add(kindBatch[0], data, "b"+c.TID); err != nil {
			return res, err
		}
		nCloses++
	}
	for _, r := range recs {
		data, err := r.AppendBinary(nil)
		if err != nil {
			return res, fmt.Errorf("cjournal: import: encode record %s: %w", r.RRN, err)
		}
		if len(data) > maxImportEntry {
			return res, fmt.Errorf("cjournal: %w: record %s is %d bytes encoded, over the %d a stream message carries", ErrImportRefused, r.RRN, len(data), maxImportEntry)
		}
		if err := add(kindRecord[0], data, "r"+r.RRN); err != nil {
			return res, err
		}
		nRecs++
		msgMax = r.RRN
	}
	if err := send(); err != nil {
		return res, err
	}
	for len(sent) > 0 {
		if err := applied(); err != nil {
			return res, err
		}
	}
	if res.LastRRN == "" {
		res.LastRRN = last
	}
	return res, nil
}

// sentMsg is an import message published: its stream sequence and the highest RRN
// it carries.
type sentMsg struct {
	seq  uint64
	last string
}

// importWait returns once every running node has applied the stream message at seq
// (Options.ImportWait), or this node's applier alone without one, with the nodes'
// numbers.
func (j *Journal) importWait(ctx context.Context, seq uint64) ([]int, error) {
	if j.opts.ImportWait != nil {
		return j.opts.ImportWait(ctx, seq)
	}
	wctx, cancel := context.WithTimeout(ctx, importWaitMax)
	defer cancel()
	if err := j.WaitApplied(wctx, seq); err != nil {
		if ctx.Err() == nil && wctx.Err() != nil {
			return nil, fmt.Errorf("%w: this node's applier did not apply it within %s", ErrImportBehind, importWaitMax)
		}
		return nil, err
	}
	return []int{j.opts.Node}, nil
}
