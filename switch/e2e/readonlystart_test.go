package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReadOnlyDataDirAtStart starts the switch on a data directory whose file system
// is read-only (a tmpfs remounted read-only in a private mount namespace, as a disk
// is after an I/O error). It must exit 1 with an error that says the file system is
// read-only and what to do, not guess at another switch: until 6 December 2026 the
// error of Badger's LOCK file ("read-only file system") came with "is another
// switchyard using it?". Remounted read-write, the same directory starts and serves.
func TestReadOnlyDataDirAtStart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and starts it twice")
	}
	needTmpfs(t)
	bin := switchyardBinary(t)
	dir := t.TempDir()
	mnt := filepath.Join(dir, "disk")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	p := &switchProc{t: t, bin: bin, dir: dir, cfg: filepath.Join(dir, "switch.yaml")}
	cfg := fmt.Sprintf(`demo: true
demo_load_terminals: 200
data_dir: %s
rules_dir: ../../rules
log: {txn_lines: false}
listeners: [{name: ascii, addr: "127.0.0.1:0"}]
admin: {addr: "127.0.0.1:0"}
journal: {min_free_mb: 48}
security: {card_hash_key_hex: "5357495443485941524444454d4f2d4b45592d464f522d504154482d48415348"}
`, filepath.Join(mnt, "data"))
	if err := os.WriteFile(p.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ts := startOnTmpfs(t, p, mnt, 256, `mkdir -m 700 "$MNT/data" && mount -o remount,ro "$MNT" && { "$BIN" serve --config "$CFG"; echo "first start exited $?"; } && mount -o remount,rw "$MNT" && exec "$BIN" serve --config "$CFG"`)
	waitForLong(t, "the start on a read-only disk to end", 30*time.Second, func() bool {
		return strings.Contains(ts.output(), "first start exited")
	})
	out := ts.output()
	first := out[:strings.Index(out, "first start exited")]
	for _, want := range []string{"first start exited 1", "switch did not start", "read-only", "remount"} {
		if !strings.Contains(out, want) {
			t.Errorf("the start on a read-only disk does not say %q:\n%s", want, tail(first, 3000))
		}
	}
	if strings.Contains(first, "another switchyard") {
		t.Errorf("the start on a read-only disk asks about another switch:\n%s", tail(first, 3000))
	}
	waitForLong(t, "the switch to serve once remounted read-write", 30*time.Second, func() bool {
		ts.alive("remounted read-write")
		return p.serving(ts.log)
	})
	if err := ts.stop(); err != nil {
		t.Fatal(err)
	}
}
