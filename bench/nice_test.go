package bench

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// threadNices reads the niceness of every thread of process pid (field 19 of
// /proc/PID/task/TID/stat).
func threadNices(t *testing.T, pid string) map[string]int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/" + pid + "/task")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/" + pid + "/task/" + task.Name() + "/stat")
		if err != nil {
			continue // ended since the listing
		}
		out[task.Name()] = statNice(t, b)
	}
	return out
}

// statNice is the niceness in a /proc stat line (its field 19).
func statNice(t *testing.T, stat []byte) int {
	t.Helper()
	// The fields after the command name, which is in parentheses.
	i := strings.LastIndexByte(string(stat), ')')
	f := strings.Fields(string(stat[i+1:]))
	if i < 0 || len(f) < 17 {
		t.Fatalf("stat line %q", stat)
	}
	n, err := strconv.Atoi(f[16])
	if err != nil {
		t.Fatalf("stat line %q: %v", stat, err)
	}
	return n
}

// TestNiceCommandRunsTheSimulatorLower: a process the bench starts with a load
// niceness runs at it (every thread), and at this process's own without one.
func TestNiceCommandRunsTheSimulatorLower(t *testing.T) {
	own, err := niceOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	want := min(own+7, maxNice)
	for _, c := range []struct{ n, want int }{{7, want}, {0, own}} {
		// cat reads its own stat: nice(1) sets its niceness, then executes cat.
		cmd, err := niceCommand(c.n, "cat", "/proc/self/stat")
		if err != nil {
			t.Fatal(err)
		}
		b, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		if got := statNice(t, b); got != c.want {
			t.Errorf("load niceness %d: the simulator ran at %d, want %d", c.n, got, c.want)
		}
	}
	if err := checkNice(20); err == nil {
		t.Error("niceness 20 accepted")
	}
	if err := checkNice(-1); err == nil || !strings.Contains(err.Error(), "-1") {
		t.Errorf("niceness -1: %v", err)
	}
}

// TestReniceSelfCoversEveryThread: after reniceSelf every thread of the process
// has the new niceness, and so do threads started afterwards. It runs in a child
// process (this test binary again), so that the other tests keep their priority.
func TestReniceSelfCoversEveryThread(t *testing.T) {
	if os.Getenv("BENCH_RENICE_CHILD") == "1" {
		reniceChild()
		return
	}
	own, err := niceOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	want := min(own+5, maxNice)
	cmd := exec.Command(os.Args[0], "-test.run", "^TestReniceSelfCoversEveryThread$")
	cmd.Env = append(os.Environ(), "BENCH_RENICE_CHILD=1", fmt.Sprintf("BENCH_RENICE_TO=%d", want))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	// The child says "ready" once it has reniced itself and started more threads.
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("child: %q, %v", line, err)
	}
	nices := threadNices(t, strconv.Itoa(cmd.Process.Pid))
	if len(nices) < 4 {
		t.Fatalf("child has %d threads, want the ones it started too", len(nices))
	}
	for tid, n := range nices {
		if n != want {
			t.Errorf("thread %s at niceness %d, want %d (all %v)", tid, n, want, nices)
		}
	}
	stdin.Close()
}

// reniceChild renices this process, starts threads, and waits on stdin.
func reniceChild() {
	n, _ := strconv.Atoi(os.Getenv("BENCH_RENICE_TO"))
	if err := reniceSelf(n); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	// New OS threads: goroutines that lock theirs and wait.
	var started, hold sync.WaitGroup
	hold.Add(1)
	for range 4 {
		started.Add(1)
		go func() {
			runtime.LockOSThread()
			started.Done()
			hold.Wait()
		}()
	}
	started.Wait()
	fmt.Println("ready")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	hold.Done()
	os.Exit(0)
}
