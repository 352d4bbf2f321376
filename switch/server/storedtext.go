package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/internal/carddata"
)

// Free text stored before the stores masked the card numbers typed into it
// (5 December 2026): the first start of a version that masks rewrites it masked,
// once per data directory. See README.md, "Card numbers in free text".
const (
	// keyMaskedText records, on this node only, that the clean-up ran to its end
	// (its value: maskedTextRun). A start that finds it skips the clean-up, unless
	// the registry says an oplog re-chain another node started is not finished.
	//
	// Since 7 December 2026 (thirteenth release) carddata.MaskText reads card
	// numbers in full-width and other non-ASCII digits too: the key is a new one,
	// so that each data directory runs the clean-up once more and masks those.
	// Since the fourteenth release (same day) it reads more separators (dots,
	// slashes, mixed or repeated ones, Unicode spaces and dashes) and track 1
	// without its '%': a third key, a third clean-up. Since the fifteenth release
	// (8 December 2026) it masks card numbers glued to a letter
	// ("card4761739001010119end"), which it left in clear: a fourth.
	keyMaskedText = "carddata/masked-text-4"
	// prefixFlush is a scratch prefix: a key written under it and dropped makes
	// Badger flush its memtables (DropPrefix), so that Flatten sees the masked
	// values beside the clear ones they replace and drops the clear ones.
	prefixFlush = "carddata/flush/"
)

// maskedTextRun is what keyMaskedText holds.
type maskedTextRun struct {
	At    time.Time      `json:"at"`
	Tally carddata.Tally `json:"tally"`
	// NewStore: the clean-up had nothing to do, the store being new at this
	// start (newStore); it did not read the stores.
	NewStore bool `json:"new_store,omitempty"`
}

// newStore reports whether db holds no key at all: a directory this start
// created (not one restored from a backup, which the restore filled).
func newStore(db *badger.DB) (bool, error) {
	empty := true
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		it.Rewind()
		empty = !it.Valid()
		return nil
	})
	return empty, err
}

// maskStoredText runs the clean-up of free text stored in clear (each store's
// MaskStoredText: the registry and its oplog, the risk lists, the review cases,
// the merchant rating pins and states, the key audit log) when this node has not run it to its end,
// or an oplog re-chain is pending, and records that it did. It logs what it
// rewrote in counts, never the text. It does not stop the start: a failure is
// logged at Error and the next start tries again. When it ran, Badger is flushed
// and flattened, so that the clear values it replaced leave the files now rather
// than at some later compaction.
func (s *Server) maskStoredText() {
	log := s.log.With().Str("component", "carddata").Logger()
	var ran bool
	err := s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get([]byte(keyMaskedText))
		ran = err == nil
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		log.Error().Err(err).Msg("card numbers in stored free text: cannot read whether the clean-up ran; it runs at the next start")
		return
	}
	pending, err := s.Registry.MaskPending()
	if err != nil {
		log.Error().Err(err).Msg("card numbers in stored free text: cannot read whether an oplog re-chain is pending; it runs at the next start")
		return
	}
	if ran && !pending {
		return
	}
	if s.newStore && s.cl == nil && !pending {
		// Everything this directory holds was written, masked, by this
		// version: there is no clear text to look for. (A cluster node's
		// stores come from the cluster's buckets, which older nodes may have
		// written: it reads them even on a new directory.)
		if err := s.recordMaskedText(maskedTextRun{NewStore: true}); err != nil {
			log.Error().Err(err).Msg("card numbers in stored free text: could not record that a new store needs no clean-up; it runs at the next start")
		}
		return
	}
	start := time.Now()
	ctx := context.Background()
	var total carddata.Tally
	for _, st := range []struct {
		name string
		run  func() (carddata.Tally, error)
	}{
		{"registry", s.Registry.MaskStoredText},
		{"risk lists", func() (carddata.Tally, error) { return s.Risk.Lists().MaskStoredText(ctx) }},
		{"review cases", func() (carddata.Tally, error) { return s.Cases.MaskStoredText(ctx) }},
		{"merchant ratings", func() (carddata.Tally, error) { return s.ratings.MaskStoredText(ctx) }},
		{"key audit log", func() (carddata.Tally, error) { return s.Keys.MaskStoredText(ctx) }},
	} {
		t, err := st.run()
		total.Add(t)
		if t.Records > 0 || t.Rechained > 0 {
			log.Info().Str("store", st.name).Int("records", t.Records).Int("card_numbers", t.CardNumbers).Int("rechained", t.Rechained).
				Msg("card numbers stored in clear in free text (before masking) rewritten masked")
		}
		if err != nil {
			log.Error().Err(err).Str("store", st.name).Msg("card numbers in stored free text: the clean-up stopped; what it rewrote stays rewritten, and it runs again at the next start")
			return
		}
	}
	// Drop the replaced clear values from Badger's files: on a cluster node too
	// when it rewrote nothing itself, since the other nodes' rewrites reached it.
	if total.Records > 0 || s.cl != nil {
		log.Info().Msg("card numbers in stored free text: flattening Badger once so that the clear values replaced leave its files (on a large store this can take minutes; it does not run again)")
		if err := compactAway(s.db); err != nil {
			log.Error().Err(err).Msg("card numbers in stored free text: Badger not flattened; the clear values the clean-up replaced stay in its files until its own compactions drop them")
		}
	}
	if err := s.recordMaskedText(maskedTextRun{Tally: total}); err != nil {
		log.Error().Err(err).Msg("card numbers in stored free text: the clean-up ran but could not be recorded; it runs again at the next start")
		return
	}
	log.Info().Int("records", total.Records).Int("card_numbers", total.CardNumbers).Int("rechained", total.Rechained).
		Dur("took", time.Since(start)).Msg("card numbers in stored free text: clean-up done")
}

// recordMaskedText records run, at the time now, under keyMaskedText: the clean-up
// does not run again.
func (s *Server) recordMaskedText(run maskedTextRun) error {
	run.At = time.Now().UTC()
	v, err := json.Marshal(run)
	if err != nil {
		return err
	}
	return s.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(keyMaskedText), v) })
}

// compactAway makes Badger drop the versions of keys that newer ones replaced:
// it flushes the memtables (a scratch key written and dropped: DropPrefix flushes
// them first) and flattens the tree into one level, where a compaction keeps only
// the newest version of each key (the database keeps one, NumVersionsToKeep).
// Values in Badger's value log (1 MiB and over here) are freed by its value-log GC.
func compactAway(db *badger.DB) error {
	key := []byte(prefixFlush + "x")
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set(key, []byte{1}) }); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	if err := db.DropPrefix([]byte(prefixFlush)); err != nil {
		return fmt.Errorf("flush the memtables (drop %s): %w", prefixFlush, err)
	}
	if err := db.Flatten(1); err != nil {
		return fmt.Errorf("flatten: %w", err)
	}
	for db.RunValueLogGC(0.5) == nil {
	}
	return nil
}
