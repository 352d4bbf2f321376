package cjournal

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/switch/cluster"
)

// The stream's format: what its messages hold and how the nodes decide from them.
// Nodes that read the stream differently do not agree (on duplicates, above all: a
// node that publishes its write-ahead records alone while the others decide f
// entries in stream order could authorize a resend twice), so a node refuses a
// stream, and stops applying messages, of a format newer than its own:
//
//   - Open fails when the stream's metadata (metaFormat) names a newer format, and
//     otherwise sets it to Format.
//   - Every message carries its format (the Sy-Format header); the applier halts at
//     the first message of a newer format (halt), and from then on Following (so
//     /readyz) says why and every first write fails at once, before anything is
//     published (the pipeline answers 91). The final versions of requests already
//     in flight are still written and published.
//
// The metadata is advisory (a node of a version before the guard rewrites the
// stream's configuration without it, and two nodes opening at once may each write
// theirs); the header is the guard.
//
// Messages without the header were written by a version before the guard (format
// 2 or earlier); this version reads them as before, and decides their write-ahead
// records as those versions did (by the duplicate key alone, not by the KSN:
// ksnFormat). Nodes of those versions check
// nothing: upgrade them all together once, and from this version on a node of an
// older format refuses by itself.
const (
	// Format is the stream format this version writes and reads: 4, groups (kind
	// g) whose write-ahead records (kind f) every node decides in stream order, by
	// their duplicate key and by their DUKPT KSN (first.go), an offline approval's
	// duplicate key being its card's (journal.Record.CaptureKey, since 6 December
	// 2026). Format 3 (3 to 6 December 2026) keyed an offline approval by its DE 41
	// + 11 + 7 like any request (a node of it would capture again the same card
	// approval uploaded under another STAN); 2 (2 and 3 December 2026) decided by
	// the duplicate key alone; 1 published each write-ahead record alone. An entry
	// of format 3 or earlier carries no CaptureKey (its writer knew none), so every
	// node decides it as its writer did.
	Format = 4
	// metaFormat is the stream metadata key that holds the newest format a node
	// opened the stream with.
	metaFormat = cluster.FormatKey
)

var formatText = strconv.Itoa(Format)

// ErrNewerFormat is wrapped by Open, Following and the writes refused when the
// stream holds a format newer than Format: a node of a newer version wrote it, and
// this node must be upgraded before it serves again.
var ErrNewerFormat = errors.New("the stream is written in a newer format than this version reads: upgrade this node")

// formatError is a format (from the stream's metadata or a message's header) that
// this version does not read.
type formatError struct {
	where string // "the stream's metadata", "message 123 (journal.2.g)"
	found string
}

func (e *formatError) Error() string {
	return fmt.Sprintf("cjournal: %s names the journal format %q, not one this version reads (1 to %d): %v", e.where, e.found, Format, ErrNewerFormat)
}

func (e *formatError) Unwrap() error { return ErrNewerFormat }

// ksnFormat is the first format whose write-ahead records are decided by their
// DUKPT KSN too: an entry of an earlier format is decided as the nodes that wrote
// it decide, by its duplicate key alone.
const ksnFormat = 3

// checkFormat returns the format v names (0 when empty: written before formats were
// named), or, unless it is a format up to Format, a *formatError whose where the
// caller fills in (not on every message's path).
func checkFormat(v string) (int, *formatError) {
	if v == "" {
		return 0, nil
	}
	if v == formatText {
		return Format, nil
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 1 && n <= Format {
		return n, nil
	}
	return 0, &formatError{found: v}
}

// checkStreamFormat refuses a stream whose metadata names a format newer than
// Format; a stream not created yet is fine.
func checkStreamFormat(ctx context.Context, js jetstream.JetStream) error {
	s, err := js.Stream(ctx, StreamName)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cjournal: look up the stream %s: %w", StreamName, err)
	}
	if _, fe := checkFormat(s.CachedInfo().Config.Metadata[metaFormat]); fe != nil {
		fe.where = "the stream " + StreamName + "'s metadata"
		return fe
	}
	return nil
}

// halt stops the applier for good (until the process restarts on a version that
// reads the stream): Following and WaitApplied return err, and the first writes
// waiting for a verdict fail with it at once.
func (j *Journal) halt(err error) {
	j.ap.haltErr = err
	close(j.ap.halt)
	j.stats.applyErrors.Add(1)
	j.log.Error().Err(err).Msg("cluster journal: the applier stopped for good; this node answers 91 until it runs a version that reads the stream")
}

// halted returns the error that halted the applier, or nil.
func (j *Journal) halted() error {
	select {
	case <-j.ap.halt:
		return j.ap.haltErr
	default:
		return nil
	}
}
