package bench

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/syncbuf"
)

// buildSwitchyard builds the switchyard command into a test directory.
func buildSwitchyard(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "switchyard")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/switchyard").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// childrenOf lists the live processes whose parent is pid, by pid, with their
// command lines (from /proc).
func childrenOf(pid int) map[int]string {
	out := map[int]string{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(st)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 2 || f[1] != strconv.Itoa(pid) || f[0] == "Z" {
			continue
		}
		cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		out[p] = strings.ReplaceAll(string(cmd), "\x00", " ")
	}
	return out
}

// alive reports whether pid is a process that has not ended (a zombie, ended but
// not yet reaped by whoever inherited it, counts as ended).
func alive(pid int) bool {
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(st)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z"
}

// startBenchProcess starts `switchyard bench` with its temporary directories in
// tmp, and returns once it is loading the switch, with its children (issuer
// simulator and switch) by pid. A failing test kills what is left of them.
func startBenchProcess(t *testing.T, bin, tmp string) (*exec.Cmd, *syncbuf.Buffer, map[int]string) {
	t.Helper()
	cmd := exec.Command(bin, "bench", "--duration", "2m", "--warmup", "1s", "--rate", "0", "--terminals", "100", "--conns", "4",
		"--plain", "--rules", "../rules", "--results", "")
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	stderr := &syncbuf.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var kids map[int]string
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		for pid := range kids {
			if alive(pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(stderr.String(), "switch: 100 terminals") {
		if time.Now().After(deadline) {
			t.Fatalf("the bench did not start loading the switch in 2m; its output:\n%s", stderr)
		}
		time.Sleep(20 * time.Millisecond) // polling an external process
	}
	kids = childrenOf(cmd.Process.Pid)
	var sim, sw bool
	for _, c := range kids {
		sim = sim || strings.Contains(c, " issuer-sim ")
		sw = sw || strings.Contains(c, " serve --config ")
	}
	if !sim || !sw {
		t.Fatalf("children of the bench: %v, want an issuer-sim and a switch", kids)
	}
	return cmd, stderr, kids
}

// waitGone polls until none of pids is alive, or fails the test after d.
func waitGone(t *testing.T, pids map[int]string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		var left []string
		for pid, c := range pids {
			if alive(pid) {
				left = append(left, strconv.Itoa(pid)+": "+c)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still running %v after the bench ended:\n%s", d, strings.Join(left, "\n"))
		}
		time.Sleep(20 * time.Millisecond) // polling external processes
	}
}

// TestBenchInterruptStopsChildren: `switchyard bench` interrupted (SIGINT, then
// SIGTERM) while it loads the switch stops its issuer simulator and its switch,
// removes its temporary work directory, says so and exits non-zero, promptly.
func TestBenchInterruptStopsChildren(t *testing.T) {
	if testing.Short() || runtime.GOOS != "linux" {
		t.Skip("builds the binary and runs processes; reads /proc")
	}
	bin := buildSwitchyard(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			tmp := t.TempDir()
			cmd, stderr, kids := startBenchProcess(t, bin, tmp)
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			var err error
			select {
			case err = <-exited:
			case <-time.After(45 * time.Second):
				t.Fatalf("the bench still runs 45s after %v; its output:\n%s", sig, stderr)
			}
			var ee *exec.ExitError
			if err == nil || !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Errorf("exit after %v: %v, want exit status 1", sig, err)
			}
			if !strings.Contains(stderr.String(), "bench: interrupted") {
				t.Errorf("output does not say the bench was interrupted:\n%s", stderr)
			}
			// Its children were stopped (and waited for) before it exited.
			for pid, c := range kids {
				if alive(pid) {
					t.Errorf("pid %d (%s) survives the bench", pid, c)
				}
			}
			if left, _ := filepath.Glob(filepath.Join(tmp, "switchyard-bench-*")); len(left) > 0 {
				t.Errorf("temporary work directory left behind: %v", left)
			}
		})
	}
}

// TestBenchKilledChildrenDie: the bench killed with SIGKILL, which it cannot
// catch, its children die with it (the parent-death signal), not run on.
func TestBenchKilledChildrenDie(t *testing.T) {
	if testing.Short() || runtime.GOOS != "linux" {
		t.Skip("builds the binary and runs processes; reads /proc")
	}
	bin := buildSwitchyard(t)
	cmd, _, kids := startBenchProcess(t, bin, t.TempDir())
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	waitGone(t, kids, 10*time.Second)
}

// TestWaitReadyChildExited: a child that exits before it is ready (a port taken, a
// bad configuration) is reported at once, with the end of its log (which goes with
// a temporary work directory), not after waitReady's minute.
func TestWaitReadyChildExited(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("runs /bin/sh")
	}
	p, err := startProc("/bin/sh", t.TempDir(), "switch", "-c", "echo 'listen tcp 127.0.0.1:9: bind: address already in use'; exit 3")
	if err != nil {
		t.Fatal(err)
	}
	defer p.stop()
	done := make(chan error, 1)
	go func() { done <- waitReady(context.Background(), "http://127.0.0.1:9/readyz", p) }()
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("waitReady still waits 10s after the process exited")
	}
	if err == nil || !strings.Contains(err.Error(), "switch exited (exit status 3)") || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("waitReady: %v, want the exit and the end of the log", err)
	}
}

// TestRunRefusesTestBinary: without Options.Exe in a test, Run would start the
// test binary as its issuer simulator and switch, each running the tests again:
// refused before anything starts.
func TestRunRefusesTestBinary(t *testing.T) {
	if _, err := Run(context.Background(), Options{RulesDir: "../rules"}); err == nil || !strings.Contains(err.Error(), "test binary") {
		t.Fatalf("Run without Exe in a test: %v", err)
	}
	if _, err := RunFaults(context.Background(), FaultOptions{RulesDir: "../rules"}); err == nil || !strings.Contains(err.Error(), "test binary") {
		t.Fatalf("RunFaults without Exe in a test: %v", err)
	}
}
