package server

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// TestCheckStartSpace: the switch does not open its database on a disk with less
// than a quarter of journal.min_free_mb free, and says which directory, how much is
// free and what to do; it starts from a quarter up, or with no guard (-1), or when
// the free space cannot be known. A data directory not made yet is measured on its
// nearest existing parent.
func TestCheckStartSpace(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "not", "yet", "data")
	var asked []string
	free := func(mib uint64) func(string) (uint64, error) {
		return func(d string) (uint64, error) {
			asked = append(asked, d)
			if d != root {
				return 0, fmt.Errorf("free space of %s: %w", d, fs.ErrNotExist)
			}
			return mib << 20, nil
		}
	}
	if err := checkStartSpace(dir, 512, free(127)); err == nil {
		t.Fatal("127 MiB free, a minimum of 512: started")
	} else {
		for _, want := range []string{dir, "130048 KiB free", "journal.min_free_mb (128 of 512 MiB)", "free space on that disk, then start the switch again", "640 MiB"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("the error lacks %q: %v", want, err)
			}
		}
	}
	if len(asked) != 4 || asked[3] != root {
		t.Errorf("free space asked of %q, want the data directory and its parents up to %s", asked, root)
	}
	for _, c := range []struct {
		mib       uint64
		minFreeMB int
	}{{128, 512}, {0, -1}, {12, 48}, {0, 0}} {
		if err := checkStartSpace(dir, c.minFreeMB, free(c.mib)); err != nil {
			t.Errorf("%d MiB free, a minimum of %d: %v", c.mib, c.minFreeMB, err)
		}
	}
	unknown := func(string) (uint64, error) { return 0, fmt.Errorf("statfs: %w", fs.ErrPermission) }
	if err := checkStartSpace(dir, 512, unknown); err != nil {
		t.Errorf("free space unknown: %v", err)
	}
}

// TestDiskGuardTurns: the guard refuses below the minimum, keeps refusing until a
// quarter more is free, then admits again, its gauge, its /readyz reason and its
// calls of Store.RefuseNew turning with it. While it refuses, the reason says the
// free space as it is now: it is given to Store.RefuseNew again when that changes
// (until 7 December 2026 it kept the figure of the moment the guard turned).
func TestDiskGuardTurns(t *testing.T) {
	reg := prometheus.NewRegistry()
	var refused []error
	g := newDiskGuard(diskGuardOptions{Dir: "/data", MinFreeMB: 100, Refuse: func(why error) { refused = append(refused, why) },
		Metrics: reg, Logger: zerolog.Nop()})
	var mib uint64
	g.free = func(string) (uint64, error) { return mib << 20, nil }
	gauge := func() float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "switchyard_data_dir_full" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatal("no switchyard_data_dir_full")
		return 0
	}
	for _, step := range []struct {
		mib     uint64
		full    bool
		refuses int // calls of Refuse so far
	}{{200, false, 0}, {99, true, 1}, {50, true, 2}, {50, true, 2}, {0, true, 3}, {124, true, 4}, {125, false, 5}, {100, false, 5}, {10, true, 6}} {
		mib = step.mib
		g.check()
		why := g.notReady()
		if (why != nil) != step.full || (gauge() == 1) != step.full || len(refused) != step.refuses {
			t.Fatalf("%d MiB free: not ready %v, gauge %v, %d refusals; want full %v, %d refusals", step.mib, why, gauge(), len(refused), step.full, step.refuses)
		}
		if step.full && (refused[len(refused)-1] == nil || !strings.Contains(why.Error(), "journal.min_free_mb (100 MiB)")) {
			t.Fatalf("%d MiB free: refused with %v, /readyz says %v", step.mib, refused[len(refused)-1], why)
		}
		if says := fmt.Sprintf("has %d MiB free", step.mib); step.full && (!strings.Contains(why.Error(), says) || !strings.Contains(refused[len(refused)-1].Error(), says)) {
			t.Fatalf("%d MiB free: refused with %v, /readyz says %v; want both to say %q", step.mib, refused[len(refused)-1], why, says)
		}
		if !step.full && step.refuses > 0 && refused[len(refused)-1] != nil {
			t.Fatalf("%d MiB free: still refused (%v)", step.mib, refused[len(refused)-1])
		}
	}
}

// TestDiskGuardWatchesLogDisk: with the journal's log on a file system of its own,
// the guard refuses while either disk is below the minimum, says which, and admits
// again only once both have a quarter more.
func TestDiskGuardWatchesLogDisk(t *testing.T) {
	var refused []error
	g := newDiskGuard(diskGuardOptions{Dir: "/data", LogDir: "/data/journal", MinFreeMB: 100, Refuse: func(why error) { refused = append(refused, why) },
		Metrics: prometheus.NewRegistry(), Logger: zerolog.Nop()})
	if g.logDir != "" {
		t.Fatalf("/data/journal taken for another file system than /data: %q", g.logDir)
	}
	g.logDir = "/data/journal" // as on a machine that mounts a device there
	free := map[string]uint64{}
	g.free = func(dir string) (uint64, error) { return free[dir] << 20, nil }
	for _, step := range []struct {
		data, log uint64
		full      bool
		says      string
	}{{500, 500, false, ""}, {500, 99, true, "journal log directory /data/journal has 99 MiB free"}, {500, 124, true, "journal log directory /data/journal has 124 MiB free"},
		{500, 125, false, ""}, {99, 500, true, "data directory /data has 99 MiB free"}, {200, 124, true, "journal log directory /data/journal has 124 MiB free"}, {200, 130, false, ""}} {
		free["/data"], free["/data/journal"] = step.data, step.log
		g.check()
		why := g.notReady()
		if (why != nil) != step.full {
			t.Fatalf("data %d MiB, log %d MiB free: not ready %v, want full %v", step.data, step.log, why, step.full)
		}
		if step.says != "" && !strings.Contains(why.Error(), step.says) {
			t.Fatalf("data %d MiB, log %d MiB free: /readyz says %v, want %q", step.data, step.log, why, step.says)
		}
		if want := min(step.data, step.log) << 20; g.freeBytes.Load() != want {
			t.Fatalf("data %d MiB, log %d MiB free: the gauge says %d bytes, want %d", step.data, step.log, g.freeBytes.Load(), want)
		}
	}
	if len(refused) != 6 {
		t.Fatalf("%d calls of Refuse, want 6 (refused, the space said again, admitted, twice)", len(refused))
	}
}
