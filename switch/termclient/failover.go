package termclient

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	"github.com/moov-io/iso8583"

	"github.com/switchyard/switchyard/switch/message"
)

// Failover is a terminal in front of several switch nodes (a cluster, docs/cluster.md):
// it talks to one node at a time, and when that node's connection dies or an answer
// does not come within PerTry, it moves to the next node and resends the very same
// request (the same DE 11 and DE 7), as an acquirer's terminal does behind a load
// balancer. The cluster answers a resend with the first answer, or waits for the one in
// flight, so a resend never authorizes twice. A Failover is used by one goroutine at a
// time.
type Failover struct {
	addrs   []string
	dialect message.Dialect
	tls     *tls.Config
	cur     int
	c       *Client
	// PerTry bounds the wait for one node's answer before the next node is tried
	// (default 3 s).
	PerTry time.Duration
}

// NewFailover returns a terminal for the nodes at addrs that starts with addrs[first].
// It connects on its first Send.
func NewFailover(addrs []string, first int, d message.Dialect, tlsConf *tls.Config) *Failover {
	return &Failover{addrs: addrs, dialect: d, tls: tlsConf, cur: first % max(len(addrs), 1), PerTry: 3 * time.Second}
}

// Close closes the current connection.
func (f *Failover) Close() {
	if f.c != nil {
		f.c.Close()
		f.c = nil
	}
}

// next drops the connection and moves to the next node.
func (f *Failover) next() {
	f.Close()
	f.cur = (f.cur + 1) % len(f.addrs)
}

// Send sends m (MAC'd with mac when not nil) until a node answers it or ctx ends, and
// returns the answer, the index in addrs of the node that gave it, and how many times
// the request went out (more than once: resent after a failover).
func (f *Failover) Send(ctx context.Context, m *iso8583.Message, mac message.MACFunc) (resp *iso8583.Message, node, sends int, err error) {
	if len(f.addrs) == 0 {
		return nil, -1, 0, fmt.Errorf("failover terminal: no switch address")
	}
	var last error
	for ctx.Err() == nil {
		if f.c == nil {
			c, err := Dial(f.addrs[f.cur], f.dialect, f.tls)
			if err != nil {
				last = err
				f.next()
				select { // every node refused: do not spin
				case <-time.After(50 * time.Millisecond):
				case <-ctx.Done():
				}
				continue
			}
			f.c = c
		}
		sends++
		tctx, cancel := context.WithTimeout(ctx, f.PerTry)
		resp, err := f.c.Send(tctx, m, mac)
		cancel()
		if err == nil {
			return resp, f.cur, sends, nil
		}
		last = err
		f.next()
	}
	tid, _ := m.GetString(41)
	stan, _ := m.GetString(11)
	return nil, -1, sends, fmt.Errorf("%s/%s: no answer from any of %d switch nodes (%d sends; last: %v): %w", tid, stan, len(f.addrs), sends, last, ctx.Err())
}
