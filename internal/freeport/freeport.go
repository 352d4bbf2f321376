// Package freeport picks free TCP ports on loopback for processes a test or the bench
// starts later, outside the kernel's ephemeral port range.
//
// The usual way, listening on port 0 and closing the listener, hands out a port from
// the ephemeral range, and between the close and the moment the new process binds it
// the kernel may give the same port to anybody: another process's listener on port 0,
// or the local end of any outgoing connection (a NATS route, a link to the issuer
// simulator). A cluster test then sees a node that cannot bind its port. Ports below
// the ephemeral range are never handed out that way; this package takes them in turn
// from a random point of that range, skipping those in use.
//
// Several processes may hand out ports from the same range at once (a test and the
// bench it runs as a subprocess, each starting nodes). Each reserves the ports it
// hands out, for as long as it lives, with a lock on the port's byte of one shared
// file in the temporary directory (see reserve), and skips ports another process
// has reserved: a port probed free but not yet bound by the other's node would
// otherwise be handed out twice.
package freeport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// lowest is the lowest port handed out: above the well-known and the commonly
// configured ones.
const lowest = 12000

var (
	mu     sync.Mutex
	lo, hi int // the range handed out: [lo, hi)
	next   int // the next candidate
)

// ephemeralRange reads the kernel's ephemeral port range (Linux), or the IANA range
// where that file is missing.
func ephemeralRange() (int, int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		f := strings.Fields(string(b))
		if len(f) == 2 {
			a, err1 := strconv.Atoi(f[0])
			z, err2 := strconv.Atoi(f[1])
			if err1 == nil && err2 == nil && a <= z {
				return a, z
			}
		}
	}
	return 49152, 65535
}

func setup() {
	if hi != 0 {
		return
	}
	eLo, eHi := ephemeralRange()
	switch {
	case eLo-lowest >= 2000: // below the ephemeral range (Linux's default: 12000-32767)
		lo, hi = lowest, eLo
	case 65536-(eHi+1) >= 2000: // above it
		lo, hi = eHi+1, 65536
	default: // no room outside it: inside, as port 0 would be
		lo, hi = lowest, 65536
	}
	next = lo + rand.IntN(hi-lo)
}

// Ports returns n distinct loopback ports that were free a moment ago, from outside
// the ephemeral range; successive calls in a process return different ports until
// the range wraps around.
func Ports(n int) ([]int, error) {
	if n < 0 {
		return nil, fmt.Errorf("freeport: %d ports asked for", n)
	}
	mu.Lock()
	defer mu.Unlock()
	setup()
	out := make([]int, 0, n)
	for tried := 0; len(out) < n; tried++ {
		if tried >= hi-lo {
			return nil, errors.New("freeport: no free port left in " + strconv.Itoa(lo) + "-" + strconv.Itoa(hi-1))
		}
		p := next
		if next++; next == hi {
			next = lo
		}
		if !reserve(p) {
			continue // handed out by another process
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue // in use
		}
		ln.Close()
		out = append(out, p)
	}
	return out, nil
}

// Addrs is Ports as 127.0.0.1:port addresses.
func Addrs(n int) ([]string, error) {
	ps, err := Ports(n)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	}
	return out, nil
}

// Addr is one address of Addrs.
func Addr() (string, error) {
	a, err := Addrs(1)
	if err != nil {
		return "", err
	}
	return a[0], nil
}
