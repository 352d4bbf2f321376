package console

import (
	"container/list"
	"sync"
	"time"
)

// Defaults of the per-address login limit (Options.AddrMaxFailures,
// Options.AddrWindow) and the bound on the addresses it remembers.
const (
	defaultAddrMaxFailures = 20
	defaultAddrWindow      = 10 * time.Minute
	maxLimitedAddrs        = 10000
)

// addrLimiter counts the failed logins of each client address: the name
// lockout (sessions.failed) stops guessing one name's password, not one
// address trying a few passwords on many names (password spraying), each
// failure an oplog entry. After max failures within window an address is
// blocked for window: its logins are refused before the password check and
// without an oplog entry each.
//
// It remembers at most maxAddrs addresses; past them the one whose latest
// failure is the oldest is forgotten (a blocked one too: an attacker with that
// many addresses gets through, at window's pace per address).
type addrLimiter struct {
	now      func() time.Time
	max      int
	window   time.Duration
	maxAddrs int

	mu     sync.Mutex
	byAddr map[string]*list.Element // of *addrFailures
	lru    *list.List               // front: latest failure
	// checking counts each address's logins in progress (reserve).
	checking map[string]int
}

// addrFailures is one address's recent failures.
type addrFailures struct {
	addr string
	// times are the failures within the window, oldest first (at most max).
	times []time.Time
	// names are the distinct names tried since times was last empty (at most
	// max, each at most 64 bytes: registry.ValidUserName), for the blocking's
	// log entry.
	names        map[string]struct{}
	blockedUntil time.Time
}

func newAddrLimiter(now func() time.Time, max int, window time.Duration) *addrLimiter {
	return &addrLimiter{now: now, max: max, window: window, maxAddrs: maxLimitedAddrs, byAddr: map[string]*list.Element{}, lru: list.New(),
		checking: map[string]int{}}
}

// blocked reports until when addr is blocked (zero: not blocked).
func (l *addrLimiter) blocked(addr string) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.byAddr[addr]; ok {
		if a := e.Value.(*addrFailures); l.now().Before(a.blockedUntil) {
			return a.blockedUntil
		}
	}
	return time.Time{}
}

// reserve admits a login from addr: false with the block's end when addr is
// blocked, false with a zero time when its logins in progress already number
// the failures it has left within the window (each could be one), true
// otherwise; the caller then calls done once the login's outcome is counted
// (failed). Without the reservation, logins sent at once all passed the
// block's check before any failed.
func (l *addrLimiter) reserve(addr string) (blockedUntil time.Time, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	n := 0
	if e, found := l.byAddr[addr]; found {
		a := e.Value.(*addrFailures)
		if now.Before(a.blockedUntil) {
			return a.blockedUntil, false
		}
		for _, t := range a.times {
			if now.Sub(t) < l.window {
				n++
			}
		}
	}
	if n+l.checking[addr] >= l.max {
		return time.Time{}, false
	}
	l.checking[addr]++
	return time.Time{}, true
}

// done ends a login from addr that reserve admitted.
func (l *addrLimiter) done(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.checking[addr]--; l.checking[addr] <= 0 {
		delete(l.checking, addr)
	}
}

// failed counts a failed login from addr as name ("" for a name not shown).
// When it is the max-th within the window it blocks addr and returns the
// number of distinct names tried, and true.
func (l *addrLimiter) failed(addr, name string) (names int, blocked bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var a *addrFailures
	if e, ok := l.byAddr[addr]; ok {
		a = e.Value.(*addrFailures)
		l.lru.MoveToFront(e)
	} else {
		for l.lru.Len() >= l.maxAddrs {
			old := l.lru.Back()
			delete(l.byAddr, old.Value.(*addrFailures).addr)
			l.lru.Remove(old)
		}
		a = &addrFailures{addr: addr, names: map[string]struct{}{}}
		l.byAddr[addr] = l.lru.PushFront(a)
	}
	keep := 0
	for keep < len(a.times) && now.Sub(a.times[keep]) >= l.window {
		keep++
	}
	a.times = append(a.times[keep:], now)
	if len(a.times) == 1 {
		clear(a.names)
	}
	if len(a.names) < l.max {
		a.names[name] = struct{}{}
	}
	if len(a.times) < l.max {
		return 0, false
	}
	names = len(a.names)
	a.times = a.times[:0]
	clear(a.names)
	a.blockedUntil = now.Add(l.window)
	return names, true
}
