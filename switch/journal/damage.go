package journal

import (
	"errors"
	"fmt"
	"strings"

	"github.com/switchyard/switchyard/switch/journal/wal"
)

// Damaged records. A record's newest version is in the log alone: its index entry
// in Badger (j/r/<rrn>) holds only where it is (a record stored whole in Badger by an
// earlier version of the journal is not in the log at all). A record read through
// its entry while its frame is damaged (a flipped bit the frame's checksum finds, a
// segment cut short) has no other copy on this node to read it from: its earlier
// versions in the log are not it (an approval or a reversal may be what was lost),
// and a cluster's other copy, the JOURNAL stream, is not read back by RRN. Until
// the fifteenth release a query that met such a record stopped there with an
// error, and a day's settlement with it; now the reads go on past it and name it
// (UnreadableError).

// Unreadable is a record a read could not read: where its frame is, and what is
// wrong with it.
type Unreadable struct {
	// RRN is the record's, from its index entry.
	RRN string `json:"rrn"`
	// File is the log's segment file that holds the damaged frame, and Offset where
	// the frame starts in it.
	File   string `json:"file"`
	Offset int64  `json:"offset"`
	// Reason is what does not hold (a checksum, a length).
	Reason string `json:"reason"`
}

func (u Unreadable) String() string {
	return fmt.Sprintf("record %s: %s is corrupt at offset %d: %s", u.RRN, u.File, u.Offset, u.Reason)
}

// UnreadableError is returned by a read that met records it could not read (their
// frames in the log damaged): Get's is the record asked for; Scan, ScanFrom,
// ScanLate and ScanOwed go on past such records and return it at their end, after
// every other record was handed on, naming those they skipped.
type UnreadableError struct {
	Records []Unreadable
}

func (e *UnreadableError) Error() string {
	parts := make([]string, 0, min(len(e.Records), maxNamed))
	for _, u := range e.Records[:min(len(e.Records), maxNamed)] {
		parts = append(parts, u.String())
	}
	more := ""
	if len(e.Records) > maxNamed {
		more = fmt.Sprintf(" and %d more", len(e.Records)-maxNamed)
	}
	return fmt.Sprintf("journal: %d record(s) unreadable, their frames in the log damaged (check the disk and its kernel log; restore the data directory from its backup to read them): %s%s",
		len(e.Records), strings.Join(parts, "; "), more)
}

// maxNamed bounds the records an UnreadableError's message names (Records holds all).
const maxNamed = 20

// OnDamage sets a function called, on the reading goroutine, each time a read meets
// a record it cannot read (its frame in the log damaged). Set it before the first
// read.
func (s *Store) OnDamage(f func(Unreadable)) { s.onDamage = f }

// DamagedReads returns how many reads met a record they could not read since Open
// (each read of a damaged record counts).
func (s *Store) DamagedReads() uint64 { return s.damagedReads.Load() }

// unreadable turns the log's damage under record rrn into an *UnreadableError and
// counts it; any other error is returned as it is.
func (s *Store) unreadable(rrn string, err error) error {
	var de *wal.DamageError
	if !errors.As(err, &de) {
		return err
	}
	u := Unreadable{RRN: rrn, File: de.File, Offset: de.Off, Reason: de.Err.Error()}
	s.damagedReads.Add(1)
	if s.onDamage != nil {
		s.onDamage(u)
	}
	return &UnreadableError{Records: []Unreadable{u}}
}

// skipped gathers the records a scan went past: skip reports whether err is such a
// record's (and keeps it), result is the scan's error with them.
type skipped struct{ recs []Unreadable }

func (k *skipped) skip(err error) bool {
	var ue *UnreadableError
	if !errors.As(err, &ue) {
		return false
	}
	k.recs = append(k.recs, ue.Records...)
	return true
}

func (k *skipped) result(err error) error {
	if len(k.recs) == 0 {
		return err
	}
	ue := &UnreadableError{Records: k.recs}
	if err == nil {
		return ue
	}
	return errors.Join(err, ue)
}

// Unreadables splits err, from a read, into the records it names as unreadable and
// the rest of it: nil when err is an *UnreadableError alone (the read went on past
// them and is otherwise whole).
func Unreadables(err error) ([]Unreadable, error) {
	var ue *UnreadableError
	if !errors.As(err, &ue) {
		return nil, err
	}
	if err == error(ue) {
		return ue.Records, nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var rest []error
		for _, e := range j.Unwrap() {
			if e != error(ue) {
				rest = append(rest, e)
			}
		}
		return ue.Records, errors.Join(rest...)
	}
	return ue.Records, err // wrapped with more said: the caller's message keeps it
}
