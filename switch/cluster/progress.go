package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Progress lets a node wait until the other nodes have reached a position (a
// stream sequence their journal applier has applied, say): each node answers the
// others' asks with its own, over a Broadcast topic. Nothing is stored: a node that
// is not connected does not answer, and a wait for it lasts until its context ends.
type Progress struct {
	node int
	b    *Broadcast
	own  func() uint64

	mu      sync.Mutex
	seen    map[int]heard
	msgs    uint64        // messages received, numbering heard.msg
	changed chan struct{} // closed and replaced when seen changes
}

// heard is a node's position as last heard, and the number of the message that
// said so.
type heard struct {
	at, msg uint64
}

// progressMsg is an ask (Ask) or an answer: node Node stands at At.
type progressMsg struct {
	Node int    `json:"node"`
	At   uint64 `json:"at"`
	Ask  bool   `json:"ask,omitempty"`
}

// progressAskEvery is how often WaitAll asks again while a node it waits for
// stands below the position (or has not answered).
const progressAskEvery = 100 * time.Millisecond

// ShareProgress shares this node's position, read by own, on topic (see Broadcast
// for its form): the other nodes' WaitAll asks, and this node answers. Close stops
// it.
func (n *Node) ShareProgress(topic string, own func() uint64) (*Progress, error) {
	p := &Progress{node: n.cfg.Node, own: own, seen: map[int]heard{}, changed: make(chan struct{})}
	b, err := n.Broadcast(topic, p.receive)
	if err != nil {
		return nil, err
	}
	p.b = b
	return p, nil
}

// receive takes another node's message: an ask is answered with this node's
// position (which answers the asker's own position too), an answer noted.
func (p *Progress) receive(data []byte) {
	var m progressMsg
	if err := json.Unmarshal(data, &m); err != nil || m.Node < 1 {
		return // not ours to read; a sender that means it asks again
	}
	// The latest answer stands, lower or not: a node rebuilding its store from the
	// stream starts again from the beginning.
	p.mu.Lock()
	p.msgs++
	p.seen[m.Node] = heard{at: m.At, msg: p.msgs}
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
	if m.Ask {
		_ = p.send(false) // best effort: the asker asks again
	}
}

func (p *Progress) send(ask bool) error {
	data, err := json.Marshal(progressMsg{Node: p.node, At: p.own(), Ask: ask})
	if err != nil {
		return err
	}
	return p.b.Send(data)
}

// WaitAll returns nil once every node of nodes (this node's own number is skipped)
// has said, since the call, that it stands at pos or beyond; it asks them at once
// and every 100 ms meanwhile. When ctx ends first, the error names the nodes still
// below and where they were last heard.
func (p *Progress) WaitAll(ctx context.Context, nodes []int, pos uint64) error {
	tick := time.NewTicker(progressAskEvery)
	defer tick.Stop()
	p.mu.Lock()
	since := p.msgs // answers numbered above it came after the first ask
	p.mu.Unlock()
	asked := false
	for {
		if !asked {
			if err := p.send(true); err != nil {
				return fmt.Errorf("cluster: ask the nodes' progress: %w", err)
			}
			asked = true
		}
		p.mu.Lock()
		var behind []string
		for _, n := range nodes {
			if n == p.node {
				continue
			}
			switch h, ok := p.seen[n]; {
			case !ok:
				behind = append(behind, fmt.Sprintf("node %d (not heard from)", n))
			case h.at < pos:
				behind = append(behind, fmt.Sprintf("node %d (at %d)", n, h.at))
			case h.msg <= since:
				behind = append(behind, fmt.Sprintf("node %d (not heard from since the wait began; at %d before)", n, h.at))
			}
		}
		changed := p.changed
		p.mu.Unlock()
		if len(behind) == 0 {
			return nil
		}
		select {
		case <-changed:
		case <-tick.C:
			asked = false
		case <-ctx.Done():
			return fmt.Errorf("cluster: waiting for every node to reach %d: %s below it: %w", pos, strings.Join(behind, ", "), ctx.Err())
		}
	}
}

// Close stops answering and receiving (see Broadcast.Close).
func (p *Progress) Close() error {
	return p.b.Close()
}
