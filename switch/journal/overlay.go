package journal

import (
	"context"
	"errors"
)

// The overlay: a cluster node's journal holds some of the other nodes' records in
// memory on the local store's behalf (the write-ahead record of a request in flight
// elsewhere, until its final version replaces it: switch/cluster/cjournal/hold.go),
// so that the store takes one version of such a record instead of two. Every reader
// of the store sees them as if stored: Get and LookupDuplicate ask the overlay first,
// and a scan (Scan, ScanFrom, LastReceived) has it write what it holds to the store
// first. A single switch has none.

// Overlay holds records on a store's behalf (Store.SetOverlay).
type Overlay interface {
	// Get returns the overlay's version of the record rrn; ok is false when it has
	// none (the store answers).
	Get(rrn string) (rec *Record, ok bool, err error)
	// LookupDuplicate returns the RRN of a record it holds that owns the duplicate
	// key (DupKey).
	LookupDuplicate(key string) (rrn string, ok bool)
	// Release writes what it holds to the store and returns once a scan reads it.
	Release(ctx context.Context) error
}

type overlayRef struct{ o Overlay }

// SetOverlay makes o the store's overlay (nil: none). Its methods must not read
// the store through Get, LookupDuplicate or a scan (GetStored reads past it).
func (s *Store) SetOverlay(o Overlay) {
	if o == nil {
		s.overlay.Store(nil)
		return
	}
	s.overlay.Store(&overlayRef{o})
}

// GetStored is Get without the overlay: the record as the store itself holds it.
func (s *Store) GetStored(rrn string) (*Record, error) { return s.get(rrn) }

// Get returns the record with the RRN (the overlay's version first, if it holds one).
func (s *Store) Get(rrn string) (*Record, error) {
	if r := s.overlay.Load(); r != nil {
		if rec, ok, err := r.o.Get(rrn); ok {
			return rec, err
		}
	}
	return s.get(rrn)
}

// release has the overlay write what it holds before a scan.
func (s *Store) release(ctx context.Context) error {
	if r := s.overlay.Load(); r != nil {
		if err := r.o.Release(ctx); err != nil {
			return errors.Join(errors.New("journal: write the records held in memory before the scan"), err)
		}
	}
	return nil
}

// lookupOverlay is LookupDuplicate's question to the overlay.
func (s *Store) lookupOverlay(key string) (string, bool) {
	if r := s.overlay.Load(); r != nil {
		return r.o.LookupDuplicate(key)
	}
	return "", false
}
