//go:build linux || darwin || freebsd || netbsd || openbsd

package freeport

import (
	"os"
	"path/filepath"
	"syscall"
)

// lockPath is the shared file whose byte p a process locks to reserve port p:
// in /tmp, not os.TempDir, which follows $TMPDIR (a test may give a child its
// own, and would then reserve ports in a file nobody else reads). Where /tmp
// cannot hold it, os.TempDir's.
const lockPath = "/tmp/switchyard-freeport.lock"

var (
	lockFile *os.File // nil until opened; stays open for the life of the process
	lockErr  error    // why it could not be opened: no reservations then
)

// reserve takes port p for this process, for as long as it lives, unless another
// process holds it: a POSIX record lock (fcntl F_SETLK) on byte p of the shared
// file. The kernel drops a process's locks when it exits, however it ends, so
// nothing is left to clean up. A process never conflicts with its own locks, so a
// port this process took before (after the range wrapped around) is retried, as
// it was before reservations existed. When the file cannot be opened or locked
// (a read-only temporary directory, a file system without locks), reserve says
// yes: the probe by listening is then the only check. Called with mu held.
func reserve(p int) bool {
	if lockFile == nil && lockErr == nil {
		lockFile, lockErr = openLock(lockPath)
		if lockErr != nil {
			lockFile, lockErr = openLock(filepath.Join(os.TempDir(), filepath.Base(lockPath)))
		}
	}
	if lockErr != nil {
		return true
	}
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: int64(p), Len: 1}
	err := syscall.FcntlFlock(lockFile.Fd(), syscall.F_SETLK, &lk)
	switch err {
	case nil:
		return true
	case syscall.EAGAIN, syscall.EACCES:
		return false // another process holds it
	default:
		return true
	}
}

// openLock opens (creating) the shared file at path for writing, readable and
// writable by every user (the umask would leave another user's processes unable
// to lock it, and their reservations off).
func openLock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err == nil && fi.Mode().Perm() != 0o666 {
		_ = f.Chmod(0o666) // only its owner can; others' files stay as they are
	}
	return f, nil
}
