package apps

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/internal/sparse"
	"github.com/switchyard/switchyard/internal/syncbuf"
)

// logLines returns the lines of l logged at level whose message contains msg.
func logLines(t *testing.T, l *syncbuf.Buffer, level, msg string) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(l.String()), "\n") {
		if line == "" {
			continue
		}
		var e struct{ Level, Message string }
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if e.Level == level && strings.Contains(e.Message, msg) {
			out = append(out, line)
		}
	}
	return out
}

// forms are the ways a key could be written down.
func forms(key []byte) [][]byte {
	return [][]byte{key, []byte(hex.EncodeToString(key)), []byte(base64.StdEncoding.EncodeToString(key)),
		[]byte(base64.RawURLEncoding.EncodeToString(key))}
}

// assertKeyNotStored fails when a key or value of db, in any of its versions Badger
// still has, holds key (raw, hex or base64).
func assertKeyNotStored(t *testing.T, db *badger.DB, key []byte) {
	t.Helper()
	n := 0
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{AllVersions: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
			k := it.Item().KeyCopy(nil)
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			for _, f := range forms(key) {
				if bytes.Contains(v, f) || bytes.Contains(k, f) {
					t.Errorf("%s (version %d) holds the token key", k, it.Item().Version())
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("scanned no key: the scan is broken")
	}
}

// tokenKeyValues returns what db holds under the clear and the sealed key.
func tokenKeyValues(t *testing.T, db *badger.DB) (clear, sealed []byte) {
	t.Helper()
	if err := db.View(func(txn *badger.Txn) error {
		var err error
		if clear, err = valueOf(txn, keySecret); err != nil {
			return err
		}
		sealed, err = valueOf(txn, keySealed)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return clear, sealed
}

// rewriteDB runs fn on the fixture's database while the Manager is closed.
func (f *fixture) rewriteDB(fn func(txn *badger.Txn) error) {
	f.t.Helper()
	db, err := badger.Open(badger.DefaultOptions(f.dir + "/db").WithLogger(nil).WithMemTableSize(8 << 20).WithValueLogFileSize(16 << 20))
	if err != nil {
		f.t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		f.t.Fatal(err)
	}
}

// fetch downloads sum as tid with tok from the fixture's Manager and returns the
// status.
func (f *fixture) fetch(tid, sum, tok string) int {
	req := httptest.NewRequest("GET", "/apps/v1/download/"+tid+"/"+sum, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	rec := httptest.NewRecorder()
	f.m.Handler().ServeHTTP(rec, req)
	return rec.Code
}

// TestTokenKeyIsStoredOnlySealed: a new switch stores the token key only sealed:
// no key or value of its database, in any version, nor any byte of its files,
// holds it; after a restart the same key opens and the tokens issued before
// still download.
func TestTokenKeyIsStoredOnlySealed(t *testing.T) {
	f := newFixture(t, 2)
	p := f.upload("2.0", blob("2.0", 500))
	f.publish("north", "2.0", 100, "")
	_, sum, tok := offerOf(t, f.m.Offer(f.tids[0], "", "1.0", f.clock.Now()))
	key := bytes.Clone(f.m.token)
	if len(key) != tokenKeyBytes {
		t.Fatalf("token key of %d bytes", len(key))
	}
	assertKeyNotStored(t, f.db, key)
	if clear, sealed := tokenKeyValues(t, f.db); clear != nil || sealed == nil {
		t.Fatalf("%s = %x, %s = %d bytes: want only the sealed key", keySecret, clear, keySealed, len(sealed))
	}
	if out := f.logs.String(); containsAny(out, key) {
		t.Fatal("the log holds the token key")
	}
	// Nor in the files: the clear key was never written.
	f.close()
	err := filepath.WalkDir(f.dir+"/db", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := sparse.ReadData(path) // Badger's files are mostly holes
		if err != nil {
			return err
		}
		if containsAny(string(b), key) {
			t.Errorf("%s holds the token key", filepath.Base(path))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f.open()
	if !bytes.Equal(f.m.token, key) {
		t.Fatal("after a restart the token key is another")
	}
	if got := f.fetch(f.tids[0], p.SHA256, tok); got != http.StatusOK || sum != p.SHA256 {
		t.Fatalf("token issued before the restart: %d, want 200", got)
	}
}

func containsAny(s string, key []byte) bool {
	for _, f := range forms(key) {
		if strings.Contains(s, string(f)) {
			return true
		}
	}
	return false
}

// TestClearTokenKeyOfEarlierVersionIsSealed: a database where a version before
// sealing kept the token key in the clear (app/secret) is rewritten at the start:
// the same key sealed, the clear one deleted, logged at Info without the key; the
// tokens issued before still download. When both are there, the clear key (the
// one last in use) is kept.
func TestClearTokenKeyOfEarlierVersionIsSealed(t *testing.T) {
	for _, both := range []bool{false, true} {
		name := "clear only"
		if both {
			name = "clear and sealed"
		}
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, 2)
			p := f.upload("2.0", blob("2.0", 500))
			f.publish("north", "2.0", 100, "")
			f.close()
			// The database as the earlier version left it: its own random key in the
			// clear, and no sealed one (unless both).
			old := make([]byte, 32)
			rand.Read(old)
			f.rewriteDB(func(txn *badger.Txn) error {
				if !both {
					if err := txn.Delete([]byte(keySealed)); err != nil {
						return err
					}
				}
				return txn.Set([]byte(keySecret), old)
			})
			// A token the earlier version issued under it (the token's format has not
			// changed).
			tok := (&Manager{token: old}).Token(f.tids[0], p.SHA256, f.clock.Now().Add(24*time.Hour))
			f.logs.Reset()
			f.open()
			if !bytes.Equal(f.m.token, old) {
				t.Fatal("the token key changed in the upgrade")
			}
			if got := f.fetch(f.tids[0], p.SHA256, tok); got != http.StatusOK {
				t.Fatalf("token issued before the upgrade: %d, want 200", got)
			}
			if clear, sealed := tokenKeyValues(t, f.db); clear != nil || sealed == nil {
				t.Fatalf("after the upgrade %s = %x, %s = %d bytes: want only the sealed key", keySecret, clear, keySealed, len(sealed))
			}
			// The live values: the overwritten clear one stays in Badger's files until
			// a compaction drops it (docs/apps.md).
			err := f.db.View(func(txn *badger.Txn) error {
				it := txn.NewIterator(badger.DefaultIteratorOptions)
				defer it.Close()
				for it.Rewind(); it.Valid(); it.Next() {
					v, err := it.Item().ValueCopy(nil)
					if err != nil {
						return err
					}
					if containsAny(string(v), old) {
						t.Errorf("%s holds the token key", it.Item().Key())
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if n := len(logLines(t, f.logs, "info", "now stored sealed")); n != 1 {
				t.Fatalf("%d Info lines say the key was sealed, want 1:\n%s", n, f.logs)
			}
			if containsAny(f.logs.String(), old) {
				t.Fatal("the log holds the token key")
			}
			// Once.
			f.close()
			f.logs.Reset()
			f.open()
			if !bytes.Equal(f.m.token, old) || f.logs.String() != "" {
				t.Fatalf("second start: same key %v, log %q", bytes.Equal(f.m.token, old), f.logs)
			}
		})
	}
}

// TestTokenKeyUnderAnotherCardHashKey: a node whose card hash key is not the one
// the token key was sealed under starts, logs at Error that the key does not open
// and that a new one is made, and refuses the tokens issued under the old one; the
// new key is stored sealed under the node's card hash key and kept at the next start.
func TestTokenKeyUnderAnotherCardHashKey(t *testing.T) {
	f := newFixture(t, 2)
	p := f.upload("2.0", blob("2.0", 500))
	f.publish("north", "2.0", 100, "")
	_, _, tok := offerOf(t, f.m.Offer(f.tids[0], "", "1.0", f.clock.Now()))
	old := bytes.Clone(f.m.token)
	f.close()
	f.chk = []byte("fedcba9876543210fedcba9876543210")
	f.logs.Reset()
	f.open() // fails the test if New fails
	if n := len(logLines(t, f.logs, "error", "does not open")); n != 1 {
		t.Fatalf("%d Error lines say the token key does not open, want 1:\n%s", n, f.logs)
	}
	if got := f.logs.String(); !strings.Contains(got, "card hash key") || !strings.Contains(got, "new token key") {
		t.Fatalf("the Error names neither the card hash key nor the new key: %s", got)
	}
	if bytes.Equal(f.m.token, old) || len(f.m.token) != tokenKeyBytes {
		t.Fatal("the token key did not change")
	}
	if got := f.fetch(f.tids[0], p.SHA256, tok); got != http.StatusUnauthorized {
		t.Fatalf("token under the old key: %d, want 401", got)
	}
	_, _, tok2 := offerOf(t, f.m.Offer(f.tids[0], "", "1.0", f.clock.Now()))
	if got := f.fetch(f.tids[0], p.SHA256, tok2); got != http.StatusOK {
		t.Fatalf("new token: %d, want 200", got)
	}
	key := bytes.Clone(f.m.token)
	assertKeyNotStored(t, f.db, key)
	f.close()
	f.logs.Reset()
	f.open()
	if !bytes.Equal(f.m.token, key) || len(logLines(t, f.logs, "error", "")) != 0 {
		t.Fatalf("next start: same key %v, log %q", bytes.Equal(f.m.token, key), f.logs)
	}
	if got := f.fetch(f.tids[0], p.SHA256, tok2); got != http.StatusOK {
		t.Fatalf("token of before the next start: %d, want 200", got)
	}
}

// TestTokenKeyNeedsCardHashKey: New refuses to start without a card hash key, and
// with NoTokens (the tools' --data mode) neither touches the stored key nor offers
// an update.
func TestTokenKeyNeedsCardHashKey(t *testing.T) {
	f := newFixture(t, 2)
	p := f.upload("2.0", blob("2.0", 500))
	f.publish("north", "2.0", 100, "")
	_, _, tok := offerOf(t, f.m.Offer(f.tids[0], "", "1.0", f.clock.Now()))
	_, before := tokenKeyValues(t, f.db)
	f.close()
	f.tweak = func(o *Options) { o.CardHashKey = nil }
	if err := f.tryOpen(); err == nil || !strings.Contains(err.Error(), "CardHashKey") {
		t.Fatalf("New without a card hash key: %v, want an error naming it", err)
	}
	f.tweak = func(o *Options) { o.CardHashKey, o.NoTokens = nil, true }
	f.open()
	if clear, sealed := tokenKeyValues(t, f.db); clear != nil || !bytes.Equal(sealed, before) {
		t.Fatal("NoTokens rewrote the token key")
	}
	if v := f.m.Offer(f.tids[0], "", "1.0", f.clock.Now()); v != "" {
		t.Fatalf("NoTokens offered %q", v)
	}
	if got := f.fetch(f.tids[0], p.SHA256, tok); got != http.StatusUnauthorized {
		t.Fatalf("NoTokens served a download: %d, want 401", got)
	}
	// Nor makes one in a database that has none.
	f.close()
	f.rewriteDB(func(txn *badger.Txn) error { return txn.Delete([]byte(keySealed)) })
	f.open()
	if clear, sealed := tokenKeyValues(t, f.db); clear != nil || sealed != nil {
		t.Fatalf("NoTokens stored a token key: %x, %x", clear, sealed)
	}
}
