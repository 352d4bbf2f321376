package e2e

import (
	"context"
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
	probe := t.TempDir()
	if out, err := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs "+probe).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs in a private mount namespace (unshare -m needs root or user namespaces): %v %s", err, out)
	}
	bin := switchyardBinary(t)
	sim, err := issuersim.Start(issuersim.Config{Addr: "127.0.0.1:0", Cards: issuersim.DemoCards})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	dir := t.TempDir()
	mnt := filepath.Join(dir, "disk")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	p := &switchProc{t: t, bin: bin, dir: dir, cfg: filepath.Join(dir, "switch.yaml"), runs: 1}
	cfg := fmt.Sprintf(`demo: true
data_dir: %s
rules_dir: ../../rules
log: {txn_lines: false}
listeners: [{name: ascii, addr: "127.0.0.1:0"}]
admin: {addr: "127.0.0.1:0"}
demo_issuer: {external: "%s", timeout: 300ms}
journal: {min_free_mb: 48}

security: {card_hash_key_hex: "5357495443485941524444454d4f2d4b45592d464f522d504154482d48415348"}
`, filepath.Join(mnt, "data"), sim.Addr())
	if err := os.WriteFile(p.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logName := filepath.Join(dir, "switch-1.log")
	logf, err := os.Create(logName)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	// The tmpfs is mounted in the switch's own mount namespace; the test reaches it
	// through /proc/<pid>/root.
	p.cmd = exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c",
		fmt.Sprintf("mount -t tmpfs -o size=256m tmpfs %s && exec %s serve --config %s", mnt, bin, p.cfg))
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1) // closed once the switch has exited, after its error
	go func() { exited <- p.cmd.Wait(); close(exited) }()
	alive := func(when string) {
		t.Helper()
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logName)
			if i := strings.Index(string(b), "fatal error"); i >= 0 {
				b = b[i:min(len(b), i+1500)]
			}
			t.Fatalf("%s: the switch died (%v):\n%s", when, err, b)
		default:
		}
	}
	defer func() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL) // fails when it has exited
		for range exited {
		}
	}()
	waitForLong(t, "the switch to serve", 30*time.Second, func() bool { alive("starting"); return p.serving(logName) })
	disk := filepath.Join("/proc", fmt.Sprint(p.cmd.Process.Pid), "root", mnt)

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + p.adminAddr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	metric := func(name string) string {
		_, m := get("/metrics")
		for _, l := range strings.Split(m, "\n") {
			if v, ok := strings.CutPrefix(l, name+" "); ok {
				return v
			}
		}
		return "absent"
	}

	// Terminals load the switch throughout; their answers are counted by phase.
	var phase atomic.Int32 // 0 before the fill, 1 while full, 2 after
	var mu sync.Mutex
	counts := [3]map[string]int{{}, {}, {}}
	ctx, cancel := context.WithCancel(context.Background())
	results := make(chan told, 1000)
	var wg, counted sync.WaitGroup
	for i := 1; i <= 8; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); terminalLoop(ctx, p.termAddr, fmt.Sprintf("LT%06d", i), i, results) }()
	}
	counted.Add(1)
	go func() {
		defer counted.Done()
		for r := range results {
			mu.Lock()
			rc := r.rc
			if !r.answered {
				rc = "none"
			}
			counts[phase.Load()][rc]++
			mu.Unlock()
		}
	}()
	seen := func(ph int, rc string, n int) func() bool {
		return func() bool {
			alive(fmt.Sprintf("phase %d", ph))
			mu.Lock()
			defer mu.Unlock()
			return counts[ph][rc] >= n
		}
	}
	waitForLong(t, "approvals before the disk fills", 20*time.Second, seen(0, "00", 200))

	// Fill the disk, but for 8 MiB (less than journal.min_free_mb, 48).
	var st syscall.Statfs_t
	if err := syscall.Statfs(disk, &st); err != nil {
		t.Fatal(err)
	}
	ballast := filepath.Join(disk, "ballast")
	fill := int64(st.Bavail*uint64(st.Bsize)) - 8<<20
	if out, err := exec.Command("dd", "if=/dev/zero", "of="+ballast, "bs=1M", fmt.Sprintf("count=%d", fill>>20)).CombinedOutput(); err != nil {
		t.Fatalf("fill the disk: %v %s", err, out)
	}
	phase.Store(1)
	waitForLong(t, "/readyz to say the disk is full", 10*time.Second, func() bool {
		alive("the disk filled")
		code, body := get("/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "journal.min_free_mb")
	})
	// Declines while the disk stays full, for long enough to fill the 8 MiB left.
	waitForLong(t, "declines while the disk is full", 20*time.Second, seen(1, "91", 2000))
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
	phase.Store(2)
	waitForLong(t, "approvals once space is back", 20*time.Second, seen(2, "00", 200))
	if v := metric("switchyard_data_dir_full"); v != "0" {
		t.Errorf("switchyard_data_dir_full is %s once space is back", v)
	}
	cancel()
	wg.Wait()
	close(results)
	counted.Wait()
	t.Logf("answers before the fill %v, while full %v, after %v", counts[0], counts[1], counts[2])
	b, _ := os.ReadFile(logName)
	for _, want := range []string{"disk nearly full: new transactions are declined 91", "disk space back"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the log has no line %q", want)
		}
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("the switch did not stop cleanly after the disk was full: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the switch did not stop within 30 s of SIGTERM")
	}
}
