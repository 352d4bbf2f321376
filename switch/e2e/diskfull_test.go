package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/issuersim"
)

// TestDiskFullDeclinesAndRecovers runs the switch on a small tmpfs of its own (a
// private mount namespace: unshare(1), which needs root or user namespaces), fills
// that disk from outside while terminals load the switch, and frees it again. The
// switch must stay up (Badger crashes the process with SIGBUS when the disk fills
// under its memory-mapped memtable: it did, before the disk guard), decline new
// transactions 91 with /readyz 503 saying why while the disk is nearly full, approve
// again by itself once space is back, and stop cleanly.
func TestDiskFullDeclinesAndRecovers(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs for about 10 s")
	}
	p, mnt := tmpfsProc(t, 48)
	// The tmpfs is mounted in the switch's own mount namespace; the test reaches it
	// through /proc/<pid>/root (ts.disk).
	ts := startOnTmpfs(t, p, mnt, 256, `exec "$BIN" serve --config "$CFG"`)
	alive := ts.alive
	waitForLong(t, "the switch to serve", 30*time.Second, func() bool { alive("starting"); return p.serving(ts.log) })
	disk := ts.disk
	get, metric := ts.get, ts.metric

	// Terminals load the switch throughout; their answers are counted by phase.
	load := startPhasedLoad(p.termAddr, 8, 0, 0)
	waitForLong(t, "approvals before the disk fills", 20*time.Second, load.seen(alive, 0, "00", 200))

	// Fill the disk, but for 8 MiB (less than journal.min_free_mb, 48).
	ballast := fillDisk(t, disk, 8<<20)
	load.phase.Store(1)
	waitForLong(t, "/readyz to say the disk is full", 10*time.Second, func() bool {
		alive("the disk filled")
		code, body := get("/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "journal.min_free_mb")
	})
	// Declines while the disk stays full, for long enough to fill the 8 MiB left.
	waitForLong(t, "declines while the disk is full", 20*time.Second, load.seen(alive, 1, "91", 2000))
	if v := metric("switchyard_data_dir_full"); v != "1" {
		t.Errorf("switchyard_data_dir_full is %s while the disk is full", v)
	}
	alive("the disk full")

	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	waitForLong(t, "/readyz to turn 200 once space is back", 10*time.Second, func() bool {
		alive("space freed")
		code, _ := get("/readyz")
		return code == http.StatusOK
	})
	load.phase.Store(2)
	waitForLong(t, "approvals once space is back", 20*time.Second, load.seen(alive, 2, "00", 200))
	if v := metric("switchyard_data_dir_full"); v != "0" {
		t.Errorf("switchyard_data_dir_full is %s once space is back", v)
	}
	counts := load.stop()
	t.Logf("answers before the fill %v, while full %v, after %v", counts[0], counts[1], counts[2])
	out := ts.output()
	for _, want := range []string{"disk nearly full: new transactions are declined 91", "disk space back"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log has no line %q", want)
		}
	}
	if err := ts.stop(); err != nil {
		t.Fatalf("the switch did not stop cleanly after the disk was full: %v", err)
	}
}

// needTmpfs skips t where a tmpfs cannot be mounted in a private mount namespace
// (unshare -m needs root or user namespaces).
func needTmpfs(t *testing.T) {
	t.Helper()
	probe := t.TempDir()
	if out, err := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs "+probe).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs in a private mount namespace (unshare -m needs root or user namespaces): %v %s", err, out)
	}
}

// tmpfsSwitch is the switch as startOnTmpfs runs it: a process in a mount namespace
// of its own, with its data directory's disk a tmpfs nobody else sees.
type tmpfsSwitch struct {
	*switchProc
	log    string     // the file of its output (stdout and stderr)
	exited chan error // its exit status once it has exited, then closed
	disk   string     // the tmpfs as the test reaches it: through /proc/<pid>/root
}

// startOnTmpfs mounts a tmpfs of sizeMB MiB at mnt in a private mount namespace and
// runs script there with sh, with BIN (the switchyard binary), CFG (p.cfg) and MNT
// (mnt) in its environment: the script prepares the disk and ends by exec-ing the
// switch, so that the process started is the switch (whose pid names the namespace).
// The switch is killed when the test ends, if it still runs.
func startOnTmpfs(t *testing.T, p *switchProc, mnt string, sizeMB int, script string) *tmpfsSwitch {
	t.Helper()
	p.runs++
	ts := &tmpfsSwitch{switchProc: p, log: filepath.Join(p.dir, fmt.Sprintf("switch-%d.log", p.runs)), exited: make(chan error, 1)}
	logf, err := os.Create(ts.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close() // the child has its own copy
	p.cmd = exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c",
		fmt.Sprintf(`mount -t tmpfs -o size=%dm tmpfs "$MNT" && %s`, sizeMB, script))
	p.cmd.Env = append(os.Environ(), "BIN="+p.bin, "CFG="+p.cfg, "MNT="+mnt)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { ts.exited <- p.cmd.Wait(); close(ts.exited) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL) // fails when it has exited
		for range ts.exited {
		}
	})
	ts.disk = filepath.Join("/proc", fmt.Sprint(p.cmd.Process.Pid), "root", mnt)
	return ts
}

// output returns what the switch has written so far.
func (ts *tmpfsSwitch) output() string {
	b, _ := os.ReadFile(ts.log)
	return string(b)
}

// alive fails the test if the switch has exited, with the Go runtime's fatal error
// if it died of one (Badger's SIGBUS).
func (ts *tmpfsSwitch) alive(when string) {
	ts.t.Helper()
	select {
	case err := <-ts.exited:
		b := ts.output()
		if i := strings.Index(b, "fatal error"); i >= 0 {
			b = b[i:min(len(b), i+1500)]
		}
		ts.t.Fatalf("%s: the switch died (%v):\n%s", when, err, tail(b, 3000))
	default:
	}
}

// getAs is a GET of the admin server's path, with token unless empty: its status and
// body (status 0 and the error when it could not be asked).
func (ts *tmpfsSwitch) getAs(token, path string) (int, string) {
	req, err := http.NewRequest("GET", "http://"+ts.adminAddr+path, nil)
	if err != nil {
		return 0, err.Error()
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// get is getAs without a token.
func (ts *tmpfsSwitch) get(path string) (int, string) { return ts.getAs("", path) }

// metric returns the value of the metric name (without labels) as /metrics shows
// it, or "absent".
func (ts *tmpfsSwitch) metric(name string) string {
	_, m := ts.get("/metrics")
	for _, l := range strings.Split(m, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			return v
		}
	}
	return "absent"
}

// stop sends SIGTERM and returns the switch's exit error, or an error after 30 s.
func (ts *tmpfsSwitch) stop() error {
	_ = ts.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-ts.exited:
		return err
	case <-time.After(30 * time.Second):
		return errors.New("the switch did not stop within 30 s of SIGTERM")
	}
}

// tmpfsProc makes what the disk tests run the switch with: an issuer simulator, a
// test directory with a mount point "disk" for the switch's tmpfs, and a switch
// process whose configuration (written to the directory) keeps its data under the
// mount point and declines below minFreeMB free.
func tmpfsProc(t *testing.T, minFreeMB int) (p *switchProc, mnt string) {
	t.Helper()
	needTmpfs(t)
	bin := switchyardBinary(t)
	sim, err := issuersim.Start(issuersim.Config{Addr: "127.0.0.1:0", Cards: issuersim.DemoCards})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	dir := t.TempDir()
	mnt = filepath.Join(dir, "disk")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	p = &switchProc{t: t, bin: bin, dir: dir, cfg: filepath.Join(dir, "switch.yaml"), runs: 1}
	cfg := fmt.Sprintf(`demo: true
demo_load_terminals: 200
data_dir: %s
rules_dir: ../../rules
log: {txn_lines: false}
listeners: [{name: ascii, addr: "127.0.0.1:0"}]
admin: {addr: "127.0.0.1:0"}
demo_issuer: {external: "%s", timeout: 300ms}
journal: {min_free_mb: %d}

security: {card_hash_key_hex: "5357495443485941524444454d4f2d4b45592d464f522d504154482d48415348"}
`, filepath.Join(mnt, "data"), sim.Addr(), minFreeMB)
	if err := os.WriteFile(p.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p, mnt
}

// phasedLoad is n terminals loading a switch from the start of a disk test to its
// end, their answers counted by the test's phase (0 before the disk fills, 1 while
// it is full, 2 after), an unanswered request as "none".
type phasedLoad struct {
	phase   atomic.Int32
	mu      sync.Mutex
	counts  [3]map[string]int
	cancel  context.CancelFunc
	wg      sync.WaitGroup // the terminals
	counter sync.WaitGroup // the counter
	told    chan told
}

// startPhasedLoad starts n terminals LT(first+i) with cards cardBase+i on addr.
func startPhasedLoad(addr string, n, first, cardBase int) *phasedLoad {
	l := &phasedLoad{counts: [3]map[string]int{{}, {}, {}}, told: make(chan told, 1000)}
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	for i := 1; i <= n; i++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			terminalLoop(ctx, addr, fmt.Sprintf("LT%06d", first+i), cardBase+i, l.told)
		}()
	}
	l.counter.Add(1)
	go func() {
		defer l.counter.Done()
		for r := range l.told {
			rc := r.rc
			if !r.answered {
				rc = "none"
			}
			l.mu.Lock()
			l.counts[l.phase.Load()][rc]++
			l.mu.Unlock()
		}
	}()
	return l
}

// seen returns a condition for waitForLong: phase ph has n answers rc, the
// switch still alive (alive, told when).
func (l *phasedLoad) seen(alive func(string), ph int, rc string, n int) func() bool {
	return func() bool {
		alive(fmt.Sprintf("phase %d", ph))
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.counts[ph][rc] >= n
	}
}

// count is phase ph's number of answers rc.
func (l *phasedLoad) count(ph int, rc string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts[ph][rc]
}

// stop stops the terminals and waits for their last answers to be counted; it
// returns the counts by phase.
func (l *phasedLoad) stop() [3]map[string]int {
	l.cancel()
	l.wg.Wait()
	close(l.told)
	l.counter.Wait()
	return l.counts
}

// fillDisk fills the file system of dir with a file "ballast" but for leave bytes,
// and returns the file's path (remove it to give the space back).
func fillDisk(t *testing.T, dir string, leave int64) string {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	ballast := filepath.Join(dir, "ballast")
	fill := int64(st.Bavail*uint64(st.Bsize)) - leave
	if out, err := exec.Command("dd", "if=/dev/zero", "of="+ballast, "bs=1M", fmt.Sprintf("count=%d", fill>>20)).CombinedOutput(); err != nil {
		t.Fatalf("fill the disk of %s: %v %s", dir, err, out)
	}
	return ballast
}
