package freeport

import (
	"net"
	"strconv"
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
