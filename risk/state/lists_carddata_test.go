package state

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/switchyard/switchyard/internal/sparse"
)

// TestListsRefuseCardDataInAnyForm: a list value that is card data, a PAN written
// with separators or a whole track 2, is refused like a bare PAN ("give the card
// hash, never a PAN"): none of it reaches the lists' Badger files (nor, in a
// cluster, the STATE stream the same commit goes to).
func TestListsRefuseCardDataInAnyForm(t *testing.T) {
	dir := t.TempDir()
	// Uncompressed, so that a scan of the files finds what was written.
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithCompression(options.None))
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLists(db)
	if err != nil {
		t.Fatal(err)
	}
	const pan = "4761739001010119"
	bad := []ListEntry{
		{List: "deny", Kind: "card", Value: "4761-7390-0101-0119"},                 // a PAN as printed, with dashes
		{List: "deny", Kind: "card", Value: pan + "=29121010000012345"},            // track 2 (DE 35)
		{List: "deny", Kind: "card", Value: pan + "D29121010000012345"},            // track 2 with the D separator
		{List: "watch", Kind: "terminal", Value: "4761-7390-0101-0119"},            // a PAN pasted in the wrong kind
		{List: "deny", Kind: "card", Value: "4761739001010119=2912101"},            // track 2, discretionary data cut
		{List: "deny", Kind: "card", Value: "476173-9001010119"},                   // one dash
		{List: "deny", Kind: "card", Value: "5500-0000-0000-0004-" + "extra-note"}, // a PAN inside a longer value
		{List: "deny", Kind: "merchant", Value: pan},                               // 16 digits: no merchant ID
	}
	for _, e := range bad {
		if _, err := l.Add("alice", e); err == nil {
			t.Errorf("card data accepted as a %s list value: %.6s... (%d characters)", e.Kind, e.Value, len(e.Value))
		}
	}
	// A merchant ID of 15 digits passing the Luhn check is still taken.
	if _, err := l.Add("alice", ListEntry{List: "deny", Kind: "merchant", Value: "102310048990014"}); err != nil {
		t.Fatalf("a merchant ID refused: %v", err)
	}
	// A real card hash (32 hex digits, as CardHash gives) is still taken.
	if _, err := l.Add("alice", ListEntry{List: "deny", Kind: "card", Value: "0123456789012345abcdef0123456789"}); err != nil {
		t.Fatalf("a card hash refused: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	_ = filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, err := sparse.ReadData(path) // Badger's files are mostly holes
		if err != nil {
			return err
		}
		for _, s := range []string{pan, "4761-7390-0101-0119", "476173-9001010119", "5500-0000-0000-0004"} {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("card number %.6s... in the clear in %s", s, filepath.Base(path))
			}
		}
		return nil
	})
}
