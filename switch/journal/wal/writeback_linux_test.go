package wal

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// The environment of TestWritebackErrorNotSwallowed's child: the log's directory on
// a disk whose writes fail once the tmpfs under it is full, and a file on that tmpfs
// to fill it with.
const (
	writebackDirEnv  = "WAL_WRITEBACK_DIR"
	writebackFillEnv = "WAL_WRITEBACK_FILL"
	// fullDirEnv is TestFullDiskAppendCutBack's child's log directory, on a tmpfs.
	fullDirEnv = "WAL_FULL_DIR"
)

// TestWritebackErrorNotSwallowed: a write whose pages the disk does not take back
// must not be acknowledged. Linux reports a failed writeback once to each open file
// description, to the first fdatasync that looks, and after it the pages are clean:
// a second fdatasync through the same descriptor returns nil. Until 6 December 2026
// the zeroer synced its zeros through the appends' own *os.File, so a zero-fill
// whose fdatasync ran between an append's write and its sync (the two run
// concurrently) took the append's error, and the append's sync then succeeded: the
// log acknowledged frames that were not on disk. The zeroer now writes through a
// descriptor of its own, and the kernel tells each of them.
//
// The fault is real: the log lives on an ext4 without a journal (so that a failed
// data write does not abort the whole file system, which would fail every later
// sync anyway) on a loop device backed by a 24 MiB tmpfs, in a private mount
// namespace; once another file fills the tmpfs, the loop device's writes fail with
// EIO and the file system's writeback with ENOSPC. It needs root (loop devices), else
// it skips. The test hook afterWrite puts the zeroer's sync between the append's write
// and its sync, where the race puts it only sometimes.
func TestWritebackErrorNotSwallowed(t *testing.T) {
	if dir := os.Getenv(writebackDirEnv); dir != "" {
		writebackChild(t, dir, os.Getenv(writebackFillEnv))
		return
	}
	for _, tool := range []string{"mkfs.ext4", "truncate"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found: %v", tool, err)
		}
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil || os.Getuid() != 0 {
		t.Skipf("needs root and loop devices (uid %d, /dev/loop-control: %v)", os.Getuid(), err)
	}
	tmp, ext := t.TempDir(), t.TempDir()
	// The loop device is detached when the namespace's last process exits (mount -o
	// loop sets autoclear).
	inMountNamespace(t, `mount -t tmpfs -o size=24m tmpfs "$T" || exit 77
truncate -s 128M "$T/img" || exit 77
mkfs.ext4 -q -F -O ^has_journal -E nodiscard,lazy_itable_init=0 "$T/img" >/dev/null || exit 77
mount -o loop,errors=continue "$T/img" "$E" || exit 77
`, "T="+tmp, "E="+ext, writebackDirEnv+"="+filepath.Join(ext, "journal"), writebackFillEnv+"="+filepath.Join(tmp, "fill"))
}

// inMountNamespace runs the calling test again, alone, in a private mount namespace
// (unshare -m) after the shell commands setup, with env added to its environment,
// and fails, passes or skips as it does. A setup that exits with status 77 (no
// loop device free, a kernel without ext4, no right to mount) skips the test.
func inMountNamespace(t *testing.T, setup string, env ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("mounts file systems in a private mount namespace")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skipf("unshare not found: %v", err)
	}
	name := t.Name()
	script := "set -u\n" + setup + `"$0" -test.run='^` + name + `$' -test.count=1 -test.v` + "\n"
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", script, os.Args[0])
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 77 || err != nil && !strings.Contains(string(out), "=== RUN") {
		t.Skipf("cannot set up the file system in a private mount namespace: %v %s", err, out)
	}
	if err != nil {
		t.Fatalf("the child (in the namespace) failed: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "--- SKIP: "+name) {
		t.Skipf("the child skipped:\n%s", out)
	}
	if !strings.Contains(string(out), "--- PASS: "+name) {
		t.Fatalf("the child did not pass:\n%s", out)
	}
}

// writebackChild is TestWritebackErrorNotSwallowed inside the namespace: dir is on
// the loop device's ext4, fill on the tmpfs under it.
func writebackChild(t *testing.T, dir, fill string) {
	const ahead = 512 << 10
	l, _ := open(t, dir, Options{SegmentSize: 16 << 20, Prealloc: ahead}, Pos{})
	defer l.Close()
	waitZeroed(t, l)

	// The descriptor the zeroer writes its chunks through (the appends' until the fix).
	zf := make(chan *os.File, 1)
	z := l.zero
	z.mu.Lock()
	z.write = func(f *os.File, b []byte, off int64) error {
		select {
		case zf <- f:
		default:
		}
		return writeZeros(f, b, off)
	}
	z.mu.Unlock()
	frame := []byte(strings.Repeat("w", 8<<10))
	add := func() {
		t.Helper()
		b, err := l.Begin()
		if err != nil {
			t.Fatal(err)
		}
		b.Add(1, frame)
		if err := l.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	var zeroerFile *os.File
	for zeroerFile == nil {
		select {
		case zeroerFile = <-zf:
		default:
			if l.activeOff > 4*ahead {
				t.Fatal("the zeroer wrote no chunk")
			}
			add()
		}
	}
	waitZeroed(t, l)

	// No more zeros: the appends past them extend the file, so their blocks are new
	// ones, whose writeback fails once the tmpfs is full (the zeroed ones are already
	// allocated in it, and overwriting them would succeed).
	z.mu.Lock()
	z.write = func(*os.File, []byte, int64) error { return syscall.ENOSPC }
	for z.busy {
		z.cond.Wait() // a chunk under way with the old write
	}
	z.mu.Unlock()
	zeroed := fileSize(t, filepath.Join(dir, segName(l.activeSeg)))
	for l.activeOff < zeroed+64<<10 {
		add()
	}

	f, err := os.Create(fill)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for {
		if _, err := f.Write(chunk); err != nil {
			break // the tmpfs is full
		}
	}
	f.Close()

	var zerr error
	l.afterWrite = func() { zerr = datasync(zeroerFile) }
	b, err := l.Begin()
	if err != nil {
		t.Fatal(err)
	}
	b.Add(1, []byte(strings.Repeat("lost", 1<<20))) // 4 MiB: blocks the tmpfs has no pages for yet (a small write may land in some it has)
	aerr := l.Append(b)
	t.Logf("the zeroer's sync: %v; the append: %v", zerr, aerr)
	if zerr == nil {
		// Nothing failed: the disk took the write after all; the test proves nothing.
		t.Skip("the loop device's writeback did not fail on a full tmpfs")
	}
	if aerr == nil {
		t.Fatalf("the append was acknowledged, but its writeback failed (%v), seen by the zeroer's sync only", zerr)
	}
	if l.Broken() == nil {
		t.Errorf("the log is not broken after a failed sync (%v)", aerr)
	}
}

// TestFullDiskAppendCutBack: an append that meets a full disk (a real one: a tmpfs of
// 1 MiB in a private mount namespace) is refused with ENOSPC, cut back, and does not
// break the log; once space is freed the next append is taken, and a reopened log
// holds every acknowledged frame and none of the refused one. docs/wire.md ("A full
// disk") said the log copes "by its code"; this shows it on a disk. Needs root or
// user namespaces, else it skips.
func TestFullDiskAppendCutBack(t *testing.T) {
	if dir := os.Getenv(fullDirEnv); dir != "" {
		fullDiskChild(t, dir)
		return
	}
	mnt := t.TempDir()
	inMountNamespace(t, `mount -t tmpfs -o size=1m tmpfs "$M" || exit 77
`, "M="+mnt, fullDirEnv+"="+mnt)
}

// fullDiskChild is TestFullDiskAppendCutBack inside the namespace: mnt is the tmpfs.
func fullDiskChild(t *testing.T, mnt string) {
	dir := filepath.Join(mnt, "journal")
	// No zeros ahead: the appends themselves meet the full disk.
	opts := Options{SegmentSize: 8 << 20, Prealloc: -1}
	l, _ := open(t, dir, opts, Pos{})
	// Ballast leaves 64 KiB of the disk free.
	var st syscall.Statfs_t
	if err := syscall.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	ballast := filepath.Join(mnt, "ballast")
	if err := os.WriteFile(ballast, make([]byte, int64(st.Bavail)*st.Bsize-64<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	var want []written
	var werr error
	for i := 0; werr == nil; i++ {
		if i > 100 {
			t.Fatal("100 appends of 8 KiB fitted in 64 KiB")
		}
		b, err := l.Begin()
		if err != nil {
			t.Fatal(err)
		}
		w := written{kind: 1, payload: fmt.Sprintf("%04d%s", i, strings.Repeat("f", 8<<10))}
		w.at, w.end = b.Add(w.kind, []byte(w.payload))
		if werr = l.Append(b); werr == nil {
			want = append(want, w)
		}
	}
	if !errors.Is(werr, syscall.ENOSPC) {
		t.Fatalf("the append on a full disk: %v, want ENOSPC", werr)
	}
	if err := l.Broken(); err != nil {
		t.Fatalf("a full disk broke the log: %v", err)
	}
	if got := fileSize(t, filepath.Join(dir, segName(1))); got != l.activeOff {
		t.Fatalf("the segment is %d bytes after the refused append, its frames end at %d", got, l.activeOff)
	}
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	b, err := l.Begin()
	if err != nil {
		t.Fatalf("Begin once space is back: %v", err)
	}
	w := written{kind: 2, payload: "after"}
	w.at, w.end = b.Add(w.kind, []byte(w.payload))
	if err := l.Append(b); err != nil {
		t.Fatalf("the append once space is back: %v", err)
	}
	want = append(want, w)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, frames := open(t, dir, opts, Pos{})
	defer l.Close()
	checkFrames(t, frames, want)
}
