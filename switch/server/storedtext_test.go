package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/sparse"
	"github.com/switchyard/switchyard/internal/syncbuf"
)

// TestMaskStoredTextAtStart: a data directory an older version left, with a card
// number in clear in a merchant's name and a list entry's note (written straight
// to Badger, as that version's stores did), is cleaned at the first start of this
// version: the records are masked, the log says how many (never the number), and
// no file of the data directory holds the number any more, while the switch runs
// (Badger flushed and flattened) and after it stopped. The next start does not run the clean-up again.
func TestMaskStoredTextAtStart(t *testing.T) {
	const pan = "4111111111111111"
	dir := filepath.Join(t.TempDir(), "data")
	var first syncbuf.Buffer
	s := start(t, demoConfig(t, dir), &first)
	if err := s.Drain(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(first.String(), "clean-up done") {
		t.Errorf("the clean-up read a store new at this start:\n%s", first.String())
	}
	db, err := OpenDB(dir, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error {
		// A new store's first start records that it needs no clean-up.
		var run maskedTextRun
		item, err := txn.Get([]byte(keyMaskedText))
		if err != nil {
			return fmt.Errorf("the first start recorded no clean-up: %w", err)
		}
		if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &run) }); err != nil {
			return err
		}
		if !run.NewStore || run.Tally.Records != 0 {
			t.Errorf("the first start recorded %+v, want a new store", run)
		}
		key := []byte("reg/m/000000000000001")
		item, err = txn.Get(key)
		if err != nil {
			return err
		}
		var m map[string]any
		if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &m) }); err != nil {
			return err
		}
		m["name"] = "Demo shop, card " + pan
		v, _ := json.Marshal(m)
		if err := txn.Set(key, v); err != nil {
			return err
		}
		e, _ := json.Marshal(map[string]any{"list": "deny", "kind": "card", "value": "0123456789012345abcdef0123456789",
			"note": "stolen " + pan, "added_by": "alice", "added_at": time.Now().UTC()})
		if err := txn.Set([]byte("risk/lists/e/deny/card/0123456789012345abcdef0123456789"), e); err != nil {
			return err
		}
		return txn.Delete([]byte(keyMaskedText)) // an older version's directory has no record of the clean-up
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	var logs syncbuf.Buffer
	s = start(t, demoConfig(t, dir), &logs)
	if m, _ := s.Registry.Merchant("000000000000001"); m == nil || m.Name != "Demo shop, card 411111******1111" {
		t.Errorf("merchant after the start: %+v", m)
	}
	for _, e := range s.Risk.Lists().Entries() {
		if e.Value == "0123456789012345abcdef0123456789" && e.Note != "stolen 411111******1111" {
			t.Errorf("list entry note %q", e.Note)
		}
	}
	out := logs.String()
	if !strings.Contains(out, `"store":"registry","records":1,"card_numbers":1`) || !strings.Contains(out, `"store":"risk lists","records":1,"card_numbers":1`) ||
		!strings.Contains(out, "clean-up done") || strings.Contains(out, pan) {
		t.Errorf("the start's log does not say what was masked, or holds the number:\n%s", out)
	}
	// While it runs (the masked values in the memtable, the clear ones in the
	// tables the older version left) and after it stopped.
	noneInFiles(t, dir, pan)
	if err := s.Drain(); err != nil {
		t.Fatal(err)
	}
	noneInFiles(t, dir, pan)

	logs.Reset()
	s = start(t, demoConfig(t, dir), &logs)
	if strings.Contains(logs.String(), "clean-up") {
		t.Errorf("the clean-up ran again:\n%s", logs.String())
	}
	if err := s.Drain(); err != nil {
		t.Fatal(err)
	}
}

// TestMaskStoredTextGluedAfterUpgrade: a data directory whose clean-up ran under
// the fourteenth release's key (carddata/masked-text-3), when MaskText left a card
// number glued to a letter in clear, runs it once more at the first start of this
// version: a merchant's name and a list entry's note holding such a number are
// masked, the card hash beside them is not, and no file holds the number.
func TestMaskStoredTextGluedAfterUpgrade(t *testing.T) {
	const pan = "4111111111111111"
	const hash = "0123456789012345abcdef0123456789"
	dir := filepath.Join(t.TempDir(), "data")
	s := start(t, demoConfig(t, dir), io.Discard)
	if err := s.Drain(); err != nil {
		t.Fatal(err)
	}
	db, err := OpenDB(dir, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error {
		key := []byte("reg/m/000000000000001")
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		var m map[string]any
		if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &m) }); err != nil {
			return err
		}
		m["name"] = "Demo shop card" + pan + "end"
		v, _ := json.Marshal(m)
		if err := txn.Set(key, v); err != nil {
			return err
		}
		e, _ := json.Marshal(map[string]any{"list": "deny", "kind": "card", "value": hash,
			"note": "stolen X" + pan + ", hash " + hash, "added_by": "alice", "added_at": time.Now().UTC()})
		if err := txn.Set([]byte("risk/lists/e/deny/card/"+hash), e); err != nil {
			return err
		}
		// The fourteenth release ran its clean-up and recorded it under its key
		// (this version's first start recorded a new store under its own).
		if err := txn.Delete([]byte(keyMaskedText)); err != nil {
			return err
		}
		run, _ := json.Marshal(maskedTextRun{At: time.Now().UTC()})
		return txn.Set([]byte("carddata/masked-text-3"), run)
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	var logs syncbuf.Buffer
	s = start(t, demoConfig(t, dir), &logs)
	if m, _ := s.Registry.Merchant("000000000000001"); m == nil || m.Name != "Demo shop card411111******1111end" {
		t.Errorf("merchant after the start: %+v", m)
	}
	found := false
	for _, e := range s.Risk.Lists().Entries() {
		if e.Value == hash {
			found = true
			if want := "stolen X411111******1111, hash " + hash; e.Note != want {
				t.Errorf("list entry note %q, want %q", e.Note, want)
			}
		}
	}
	if !found {
		t.Error("the list entry is gone")
	}
	if out := logs.String(); !strings.Contains(out, "clean-up done") || strings.Contains(out, pan) {
		t.Errorf("the start's log does not say the clean-up ran, or holds the number:\n%s", out)
	}
	if err := s.Drain(); err != nil {
		t.Fatal(err)
	}
	noneInFiles(t, dir, pan)
}

// noneInFiles fails the test for each file under dir that holds pan.
func noneInFiles(t *testing.T, dir, pan string) {
	t.Helper()
	if err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := sparse.ReadData(path) // Badger's files are mostly holes
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(pan)) {
			t.Errorf("%s holds the card number in clear", filepath.Base(path))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
