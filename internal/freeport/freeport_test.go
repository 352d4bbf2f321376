package freeport

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestPortsOutsideTheEphemeralRange: the ports are distinct, free (a listener binds
// each), outside the kernel's ephemeral range, and a second call returns others.
func TestPortsOutsideTheEphemeralRange(t *testing.T) {
	eLo, eHi := ephemeralRange()
	first, err := Ports(20)
	if err != nil {
		t.Fatal(err)
	}
	second, err := Ports(20)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range append(first, second...) {
		if seen[p] {
			t.Fatalf("port %d handed out twice: %v then %v", p, first, second)
		}
		seen[p] = true
		if p >= eLo && p <= eHi && eLo-lowest >= 2000 {
			t.Errorf("port %d is in the ephemeral range %d-%d", p, eLo, eHi)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("port %d: %v", p, err)
		}
		ln.Close()
	}
}

// TestPortsSkipsPortsInUse: a port held by a listener is not handed out.
func TestPortsSkipsPortsInUse(t *testing.T) {
	mu.Lock()
	setup()
	held := next
	mu.Unlock()
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(held))
	if err != nil {
		t.Skipf("port %d taken by another process meanwhile: %v", held, err)
	}
	defer ln.Close()
	ps, err := Ports(3)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p == held {
			t.Fatalf("port %d handed out while a listener held it", held)
		}
	}
}

func TestAddrs(t *testing.T) {
	if _, err := Ports(-1); err == nil {
		t.Error("-1 ports accepted")
	}
	a, err := Addrs(2)
	if err != nil || len(a) != 2 {
		t.Fatalf("%v, %v", a, err)
	}
	if _, _, err := net.SplitHostPort(a[0]); err != nil {
		t.Fatal(err)
	}
}

// TestPortsReservedAcrossProcesses: ports another process handed out (and has not
// bound yet) are not handed out here while it lives, and are again once it exits.
// The other process is this test binary, taking ports from the same point of the
// range (TestHelperHoldPorts).
func TestPortsReservedAcrossProcesses(t *testing.T) {
	if lockFile == nil && lockErr == nil {
		reserve(0) // opens the shared file
	}
	if lockErr != nil {
		t.Skipf("no shared lock file: %v", lockErr)
	}
	mu.Lock()
	setup()
	start := next
	mu.Unlock()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldPorts$", "-test.count=1")
	cmd.Env = append(os.Environ(), "FREEPORT_HELPER_START="+strconv.Itoa(start))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("helper's ports: %q, %v", line, err)
	}
	var theirs []int
	for _, f := range strings.Fields(strings.TrimPrefix(line, "ports:")) {
		p, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("helper's line %q: %v", line, err)
		}
		theirs = append(theirs, p)
	}
	if len(theirs) != 5 {
		t.Fatalf("helper's line %q: want 5 ports", line)
	}

	mu.Lock()
	next = start
	mu.Unlock()
	ours, err := Ports(5)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ours {
		if slices.Contains(theirs, p) {
			t.Fatalf("port %d handed out here while the helper (ports %v) lives: %v", p, theirs, ours)
		}
	}

	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	mu.Lock()
	next = theirs[0]
	mu.Unlock()
	again, err := Ports(1)
	if err != nil {
		t.Fatal(err)
	}
	if again[0] != theirs[0] {
		if ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(theirs[0])); err != nil {
			t.Skipf("port %d taken by another process meanwhile: %v", theirs[0], err)
		} else {
			ln.Close()
		}
		t.Fatalf("port %d, free and the helper gone, not handed out again: got %d", theirs[0], again[0])
	}
}

// TestHelperHoldPorts is TestPortsReservedAcrossProcesses's other process: it
// takes 5 ports from $FREEPORT_HELPER_START, prints them and holds them until its
// standard input closes.
func TestHelperHoldPorts(t *testing.T) {
	s := os.Getenv("FREEPORT_HELPER_START")
	if s == "" {
		t.Skip("the other process of TestPortsReservedAcrossProcesses")
	}
	start, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	setup()
	next = start
	mu.Unlock()
	ps, err := Ports(5)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("ports: %s\n", strings.Trim(fmt.Sprint(ps), "[]"))
	_, _ = io.Copy(io.Discard, os.Stdin)
}
