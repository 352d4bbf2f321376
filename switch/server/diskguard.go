package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// The disk guard keeps the switch from filling its data directory's disk. Badger
// writes its memtables and its new tables through memory-mapped files whose blocks are
// allocated as they are first written: on a full disk that write faults (SIGBUS) and
// the Go runtime ends the process ("unexpected fault address", found on 5 December
// 2026 with the switch under load on a tmpfs filled by another process; e2e
// TestDiskFullDeclinesAndRecovers). No error reaches the switch to turn into a 91, so
// the only defence is to stop growing before the disk is full: below journal.min_free_mb
// of free space the journal refuses new records (journal.Store.RefuseNew), new
// transactions are declined 91 journal-unavailable, /readyz answers 503 saying why,
// and a log line says what to do; what is in flight finishes in the room left, and
// the reversals and voids of earlier approvals go on (journal.Record.TakesBack). Once a
// quarter more than the minimum is free again, all of it turns back by itself.
//
// It cannot stop another process from taking the last block between two looks
// (diskCheckEvery): the minimum is the margin for that too.
//
// The journal's log may live on a device of its own (docs/journal.md advises one,
// mounted at data_dir/journal): the guard then watches that file system too, with the
// same minimum, and refuses while either has less free. Until 6 December 2026 it
// watched the data directory's alone: the log's device could fill with /readyz 200,
// and once it was full every new transaction failed its write-ahead and was answered
// 96 (e2e TestJournalDiskFull).

// diskCheckEvery is how often the guard looks at the free space: statfs costs about
// a microsecond, and under full load the switch writes a few MB a second, far less
// than the minimum in this time.
const diskCheckEvery = 100 * time.Millisecond

// diskGuard watches the free space of the file system of the data directory, and of
// the journal log's when that is another.
type diskGuard struct {
	dir       string
	logDir    string // the journal's log directory when on another file system, else ""
	low, high uint64 // refuse below low, admit again from high (bytes)
	free      func(dir string) (uint64, error)
	refuse    func(why error) // journal.Store.RefuseNew
	log       zerolog.Logger

	freeBytes atomic.Uint64
	full      atomic.Pointer[error] // why new transactions are refused, nil when not
	failed    bool                  // the last statfs failed (the loop's only)
}

// diskGuardOptions configure a disk guard.
type diskGuardOptions struct {
	Dir       string                // the data directory
	LogDir    string                // the journal's log directory (JournalDir), watched too if on another file system
	MinFreeMB int                   // journal.min_free_mb (-1: no guard)
	Refuse    func(why error)       // journal.Store.RefuseNew
	Metrics   prometheus.Registerer // where its gauges go
	Logger    zerolog.Logger
}

// newDiskGuard returns the guard of o.Dir with a minimum of o.MinFreeMB MiB (-1:
// none, nil guard), and registers its metrics.
func newDiskGuard(o diskGuardOptions) *diskGuard {
	if o.MinFreeMB < 0 {
		return nil
	}
	low := uint64(o.MinFreeMB) << 20
	g := &diskGuard{dir: o.Dir, low: low, high: low + low/4, free: freeSpace, refuse: o.Refuse, log: o.Logger}
	if o.LogDir != "" && otherFileSystem(o.Dir, o.LogDir) {
		g.logDir = o.LogDir
	}
	reg := o.Metrics
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "switchyard_data_dir_free_bytes", Help: "Free space (for the switch's user) of the data directory's file system, or of the journal log's when it is on another with less free, as the disk guard last saw it.",
	}, func() float64 { return float64(g.freeBytes.Load()) }), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "switchyard_data_dir_full", Help: "1 while the data directory's disk, or the journal log's when it has one of its own, has less free space than journal.min_free_mb (until 25% more is free): new transactions are declined 91 and /readyz is 503.",
	}, func() float64 {
		if g.full.Load() != nil {
			return 1
		}
		return 0
	}))
	return g
}

// otherFileSystem reports whether b is on another file system (device) than a; false
// when either cannot be looked at.
func otherFileSystem(a, b string) bool {
	var sa, sb syscall.Stat_t
	if syscall.Stat(a, &sa) != nil || syscall.Stat(b, &sb) != nil {
		return false
	}
	return sa.Dev != sb.Dev
}

// freeSpace returns the bytes of dir's file system available to an unprivileged user.
func freeSpace(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("free space of %s: %w", dir, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// A switch started on a disk with less than journal.min_free_mb free starts declining
// (Open checks the guard before any transaction can arrive) and resumes by itself like
// one whose disk filled while it ran. But opening the database and the start's own
// writes (the data mode, the registry, the demo fleet: a few MiB, and Badger may flush
// a memtable of up to 64 MiB it finds at its open) go through the same memory-mapped
// files: on a disk with almost nothing free the process died at its start with SIGBUS
// in Badger's memTable.Put (e2e TestDiskFullAtStart, 2 MiB free), and with nothing
// free Badger failed to write its LOCK file, an error that asked whether another
// switch used the directory. So below startFloor of journal.min_free_mb the switch
// does not open its database: it exits with an error that names the data directory,
// its free space and what to do (free space, then start it again).

// startFloor is the share of journal.min_free_mb the switch needs free to start: a
// quarter (128 MiB by default), room for the start's writes and one memtable flush.
const startFloor = 4

// checkStartSpace returns an error when the disk of the data directory dir (or of its
// nearest existing parent: it may not exist yet) has less than a startFloor-th of
// minFreeMB MiB free, and nil otherwise, when minFreeMB is -1 (no guard) or when the
// free space is not known (the guard then says so once it runs).
func checkStartSpace(dir string, minFreeMB int, free func(dir string) (uint64, error)) error {
	if minFreeMB < 0 {
		return nil
	}
	avail, err := freeSpaceNear(dir, free)
	if err != nil {
		return nil
	}
	low := uint64(minFreeMB) << 20
	if floor := low / startFloor; avail < floor {
		return fmt.Errorf("data directory %s: its disk has %d KiB free, less than a quarter of journal.min_free_mb (%d of %d MiB), too little to open the database safely (Badger's memory-mapped writes crash the process on a full disk): free space on that disk, then start the switch again (it declines new transactions 91 until %d MiB are free)",
			dir, avail>>10, floor>>20, minFreeMB, (low+low/4)>>20)
	}
	return nil
}

// freeSpaceNear returns free(d) for dir or, while it does not exist, its nearest
// existing parent.
func freeSpaceNear(dir string, free func(dir string) (uint64, error)) (uint64, error) {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		avail, err := free(d)
		if err == nil || !errors.Is(err, fs.ErrNotExist) || d == filepath.Dir(d) {
			return avail, err
		}
	}
}

// check looks at the free space once and refuses or admits new transactions: it
// refuses while the data directory's disk or the log's has less than the minimum free,
// and admits again once both have a quarter more.
func (g *diskGuard) check() {
	free, dir, what, err := g.least()
	if err != nil {
		if !g.failed {
			g.log.Error().Err(err).Msg("disk guard: free space not known; new transactions are not refused for it")
		}
		g.failed = true
		return
	}
	g.failed = false
	g.freeBytes.Store(free)
	prev := g.full.Load()
	full := prev != nil
	switch {
	case !full && free < g.low:
		why := g.fullError(free, dir, what)
		g.full.Store(&why)
		g.refuse(why)
		g.log.Error().Uint64("free_mib", free>>20).Uint64("min_free_mib", g.low>>20).Str("dir", dir).
			Msg("disk nearly full: new transactions are declined 91 and /readyz is 503; free space on the " + what + "'s disk (the switch resumes by itself once 25% more than journal.min_free_mb is free)")
	case full && free < g.high:
		// Still refusing: /readyz and the 91s' warnings say the space as it is now,
		// not as it was when the guard turned (until 7 December 2026 they said "has
		// 3 MiB free" with nothing left).
		if why := g.fullError(free, dir, what); why.Error() != (*prev).Error() {
			g.full.Store(&why)
			g.refuse(why)
		}
	case full && free >= g.high:
		g.full.Store(nil)
		g.refuse(nil)
		g.log.Info().Uint64("free_mib", free>>20).Str("dir", dir).Msg("disk space back: new transactions are taken again")
	}
}

// fullError is why new transactions are refused with free bytes left in dir (what
// it is: "data directory" or "journal log directory").
func (g *diskGuard) fullError(free uint64, dir, what string) error {
	return fmt.Errorf("%s %s has %d MiB free, less than journal.min_free_mb (%d MiB): new transactions are declined 91 until %d MiB are free", what, dir, free>>20, g.low>>20, g.high>>20)
}

// least returns the free space of the data directory's file system or, when the
// journal's log is on another with less free, of the log's, with the directory
// and what it is.
func (g *diskGuard) least() (free uint64, dir, what string, err error) {
	if free, err = g.free(g.dir); err != nil {
		return 0, "", "", err
	}
	dir, what = g.dir, "data directory"
	if g.logDir != "" {
		lf, err := g.free(g.logDir)
		if err != nil {
			return 0, "", "", err
		}
		if lf < free {
			free, dir, what = lf, g.logDir, "journal log directory"
		}
	}
	return free, dir, what, nil
}

// notReady is the guard's part of /readyz: why new transactions are refused, or nil.
func (g *diskGuard) notReady() error {
	if g == nil {
		return nil
	}
	if why := g.full.Load(); why != nil {
		return *why
	}
	return nil
}

// run checks the free space every diskCheckEvery until ctx is done.
func (g *diskGuard) run(ctx context.Context) error {
	t := time.NewTicker(diskCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			g.check()
		}
	}
}
