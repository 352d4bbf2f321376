//go:build unix

package config

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFilesReadBounded: the configuration file and the secret files it names must
// be regular files within a bound. `config check --config /dev/zero` ran out of
// memory, and a card_hash_key_file or admin.tokens_file naming a FIFO hung it
// waiting for a writer; each is now an error naming the key and the file.
func TestFilesReadBounded(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yaml")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(MaxConfigBytes + 1); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	f.Close()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	bigSecret := filepath.Join(dir, "big.key")
	if err := os.WriteFile(bigSecret, make([]byte, MaxSecretBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	const base = "demo: true\nlisteners: [{addr: 127.0.0.1:1}]\n"
	write := func(name, in string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(in), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	load := func(path string) error {
		done := make(chan error, 1)
		go func() {
			c, err := Load(path)
			if err == nil {
				_, err = c.CardHashKey()
			}
			done <- err
		}()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatalf("Load(%s) still reading after 10s", path)
			return nil
		}
	}
	for _, tc := range []struct{ name, path, want string }{
		{"config too big", big, "config: " + big + " is 16777217 bytes, more than the 16777216 bytes allowed"},
		{"config a device", "/dev/zero", "config: /dev/zero is not a regular file but a device"},
		{"config a FIFO", fifo, "config: " + fifo + " is not a regular file but a named pipe (FIFO)"},
		{"tokens_file a FIFO", write("tokens.yaml", base+"security: {card_hash_key_hex: "+DemoCardHashKey+"}\nadmin: {tokens_file: "+fifo+"}\n"),
			"admin.tokens_file: " + fifo + " is not a regular file but a named pipe (FIFO)"},
		{"card hash key a FIFO", write("chk.yaml", base+"security: {card_hash_key_file: "+fifo+"}\n"),
			"security.card_hash_key_file: " + fifo + " is not a regular file but a named pipe (FIFO)"},
		{"card hash key too big", write("chkbig.yaml", base+"security: {card_hash_key_file: "+bigSecret+"}\n"),
			"security.card_hash_key_file: " + bigSecret + " is 65537 bytes, more than the 65536 bytes allowed"},
	} {
		if err := load(tc.path); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
