package wal

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Preallocation: the active segment is kept written with zeros (and synced) ahead of
// the write position, so that an append overwrites blocks the file already has. Its
// fdatasync then flushes the data alone: the file's size and block map do not change,
// so ext4 (and XFS) need no metadata journal commit for it. An append that extends the
// file needs one, a second device write and flush on every group commit. Measured on
// the project's machine (10 KB write + fdatasync, 3,000 each): p50 238 µs and 115-167
// µs of CPU appending, p50 115-165 µs and 68-107 µs of CPU overwriting zeros (issue 15,
// docs/performance.md). PostgreSQL zero-fills its WAL segments for the same reason.
//
// The zeros are written by the log's zeroer goroutine, in chunks each followed by a
// fdatasync (a long unsynced write would queue in the device ahead of the commits'
// flushes), and never where an append may be writing: the committer claims the range
// of each append before it writes, the zeroer writes only past the claim, and an
// append that reaches a chunk being zeroed waits for it (the zeroer keeps far enough
// ahead for that to be rare). The zeroer writes and syncs through a descriptor of its
// own (zeroer.file), never the appends' *os.File: Linux reports a failed writeback once
// to each open file description, to the first fdatasync that looks, and the two syncs
// run concurrently, so a zero-fill's sync on the appends' descriptor could take the
// error of an append's pages, whose own sync would then succeed and acknowledge frames
// that are not on disk (found on 6 December 2026 with a loop device on a full tmpfs,
// TestWritebackErrorNotSwallowed). A segment is cut back to its frames when it is closed,
// so that only the active segment can end in zeros; Open keeps a tail of zeros after
// the last frame (where a torn write would have left other bytes) and cuts anything
// else off as before.

// DefaultPrealloc is Options.Prealloc when it is not set: how far ahead of the write
// position the active segment is kept zero-filled.
const DefaultPrealloc = 4 << 20

// zeroChunk is how much the zeroer writes before each fdatasync.
const zeroChunk = 256 << 10

// zeroes is the zeroer's source of zeros.
var zeroes = make([]byte, zeroChunk)

// zeroer keeps the active segment zero-filled ahead of the appends.
type zeroer struct {
	ahead int64 // keep this much zero-filled past the last claim
	kick  chan struct{}
	stop  chan struct{}
	done  chan struct{}

	mu   sync.Mutex
	cond *sync.Cond // signalled when a chunk is done
	// The fields below describe the active segment (l.active, l.activeSeg, which
	// change only while the zeroer is held); release resets them.
	claimed  int64 // appends may write below this offset
	zeroed   int64 // zeros are written and synced up to here (from claimed on)
	busy     bool  // a chunk is being written from busyFrom
	busyFrom int64
	limit    int64     // do not zero past this offset (the segment size)
	failed   time.Time // the last failed chunk (a full disk): retried a second later
	err      error     // the last failure, for tests
	chunks   int64     // chunks written, for tests
	onErr    func(error)
	// write writes and syncs a chunk of zeros (a test replaces it to fail).
	write func(f *os.File, b []byte, off int64) error

	// file is the zeroer's own descriptor of segment fileSeg (its goroutine's only),
	// opened when it first zero-fills that segment and closed when it moves to the
	// next or stops.
	file    *os.File
	fileSeg uint32
}

func writeZeros(f *os.File, b []byte, off int64) error {
	if _, err := f.WriteAt(b, off); err != nil {
		return err
	}
	return datasync(f)
}

// startZeroer starts the goroutine that zero-fills the active segment ahead of the
// appends, the active segment being n bytes long; Close joins it.
func (l *Log) startZeroer(ahead, n int64, onErr func(error)) {
	z := &zeroer{ahead: ahead, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}), onErr: onErr, write: writeZeros}
	z.cond = sync.NewCond(&z.mu)
	z.claimed, z.zeroed, z.limit = l.activeOff, max(l.activeOff, n), l.size
	l.zero = z
	go l.zeroLoop()
	z.wake()
}

func (z *zeroer) wake() {
	select {
	case z.kick <- struct{}{}:
	default:
	}
}

// claim reserves the active segment up to end for an append, waiting first for a
// chunk being zero-filled there: the zeroer writes only past end from then on.
func (l *Log) claim(end int64) {
	z := l.zero
	if z == nil {
		return
	}
	z.mu.Lock()
	for z.busy && end > z.busyFrom {
		z.cond.Wait() // rare: the appends caught up with the zeroer
	}
	z.claimed = max(z.claimed, end)
	low := z.zeroed-z.claimed < z.ahead/2 && z.zeroed < z.limit
	z.mu.Unlock()
	if low {
		z.wake()
	}
}

// hold waits for a chunk in progress and keeps the zeroer still while the committer
// changes the active file or cuts it; release lets it go on with the active segment
// as it is then, n bytes long.
func (l *Log) hold() {
	if z := l.zero; z != nil {
		z.mu.Lock()
		for z.busy {
			z.cond.Wait()
		}
	}
}

// release ends hold; the active segment is n bytes long.
func (l *Log) release(n int64) {
	if z := l.zero; z != nil {
		z.claimed, z.zeroed = l.activeOff, max(l.activeOff, n)
		z.mu.Unlock()
		z.wake()
	}
}

func (l *Log) zeroLoop() {
	z := l.zero
	defer close(z.done)
	for {
		select {
		case <-z.stop:
			return
		case <-z.kick:
		}
		for {
			select {
			case <-z.stop:
				return
			default:
			}
			z.mu.Lock()
			from := max(z.zeroed, z.claimed)
			if from-z.claimed >= z.ahead || from >= z.limit || time.Since(z.failed) < time.Second {
				z.mu.Unlock()
				break
			}
			n := min(int64(zeroChunk), z.limit-from)
			z.busy, z.busyFrom = true, from
			// The active segment only changes under this lock with the zeroer idle
			// (hold), so seg stays the active one until busy is cleared.
			seg, write := l.activeSeg, z.write
			z.mu.Unlock()

			f, err := z.open(l.dir, seg)
			if err == nil {
				err = write(f, zeroes[:n], from)
			}

			z.mu.Lock()
			z.busy = false
			if err != nil {
				// What the failed write extended of the file is overwritten by the
				// appends, which claim from the last frame on; nothing is cut here.
				err = fmt.Errorf("journal: zero-fill segment %d at offset %d: %w", seg, from, err)
				z.failed, z.err = time.Now(), err
			} else {
				z.zeroed, z.chunks = from+n, z.chunks+1
			}
			z.cond.Broadcast()
			z.mu.Unlock()
			if err != nil && z.onErr != nil {
				z.onErr(err)
			}
		}
	}
}

// open returns the zeroer's own descriptor of segment seg in dir, opening it (and
// closing the previous segment's) when it has none for seg.
func (z *zeroer) open(dir string, seg uint32) (*os.File, error) {
	if z.file != nil && z.fileSeg == seg {
		return z.file, nil
	}
	z.closeFile()
	f, err := os.OpenFile(filepath.Join(dir, segName(seg)), os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	z.file, z.fileSeg = f, seg
	return f, nil
}

// closeFile closes the zeroer's descriptor, if it has one. Its writes need no sync
// here: each chunk was synced, and a failed one is reported to the appends'
// descriptor too.
func (z *zeroer) closeFile() {
	if z.file != nil {
		z.file.Close()
		z.file = nil
	}
}

// stopZeroer ends the zeroer's goroutine and waits for it.
func (l *Log) stopZeroer() {
	if z := l.zero; z != nil {
		close(z.stop)
		<-z.done
		z.closeFile()
		l.zero = nil
	}
}
