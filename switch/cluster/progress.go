package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Progress lets a node wait until the other nodes have reached a position (a
// stream sequence their journal applier has applied, say): each node answers the
// others' asks with its own, over a Broadcast topic. Nothing is stored: a node that
// is not connected does not answer, and a wait for it ends as WaitAll says.
type Progress struct {
	node int
	own  func() uint64

	mu      sync.Mutex
	b       *Broadcast // nil until ShareProgress has subscribed
	asks    uint64     // this node's asks, numbering them
	heard   map[int]heard
	changed chan struct{} // closed and replaced when heard changes
}

// heard is a node's position as it last answered this node, and the number of the
// ask it answered.
type heard struct {
	at, re uint64
}

// progressMsg is an ask (Ask, numbered ID) or an answer to node To's ask Re: node
// Node stands at At.
type progressMsg struct {
	Node int    `json:"node"`
	At   uint64 `json:"at"`
	Ask  bool   `json:"ask,omitempty"`
	ID   uint64 `json:"id,omitempty"`
	To   int    `json:"to,omitempty"`
	Re   uint64 `json:"re,omitempty"`
}

// ErrStalled is a WaitAll that ended because no node below the position moved for
// its stall time.
var ErrStalled = errors.New("no node below the position moved")

// progressAskEvery is how often WaitAll asks again while a node it waits for
// stands below the position (or has not answered).
const progressAskEvery = 100 * time.Millisecond

// ShareProgress shares this node's position, read by own, on topic (see Broadcast
// for its form): the other nodes' WaitAll asks, and this node answers. Close stops
// it.
func (n *Node) ShareProgress(topic string, own func() uint64) (*Progress, error) {
	p := &Progress{node: n.cfg.Node, own: own, heard: map[int]heard{}, changed: make(chan struct{})}
	b, err := n.Broadcast(topic, p.receive)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.b = b
	p.mu.Unlock()
	return p, nil
}

// receive takes another node's message: an ask is answered with this node's
// position, an answer to this node's ask noted.
func (p *Progress) receive(data []byte) {
	var m progressMsg
	if err := json.Unmarshal(data, &m); err != nil || m.Node < 1 {
		return // not ours to read; a sender that means it asks again
	}
	if m.Ask {
		// Best effort: the asker asks again.
		_ = p.send(progressMsg{Node: p.node, At: p.own(), To: m.Node, Re: m.ID})
		return
	}
	if m.To != p.node {
		return // an answer to another node's ask
	}
	// The latest answer stands, lower or not: a node rebuilding its store from the
	// stream starts again from the beginning.
	p.mu.Lock()
	if m.Re >= p.heard[m.Node].re {
		p.heard[m.Node] = heard{at: m.At, re: m.Re}
		close(p.changed)
		p.changed = make(chan struct{})
	}
	p.mu.Unlock()
}

// send sends m; before ShareProgress has its Broadcast it sends nothing.
func (p *Progress) send(m progressMsg) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	p.mu.Lock()
	b := p.b
	p.mu.Unlock()
	if b == nil {
		return nil
	}
	return b.Send(data)
}

// WaitAll returns nil once every node nodes returns (this node's own number
// skipped; called again at every ask, so that a node whose lease lapses meanwhile
// is no longer waited for) has answered an ask of this call that it stands at pos
// or beyond. It asks at once and every 100 ms meanwhile. When no node below pos has
// answered a higher position than before for stall, it returns an error wrapping
// ErrStalled; when ctx ends first, ctx's error. Both name the nodes below pos and
// where they were heard.
func (p *Progress) WaitAll(ctx context.Context, nodes func() []int, pos uint64, stall time.Duration) error {
	tick := time.NewTicker(progressAskEvery)
	defer tick.Stop()
	p.mu.Lock()
	first := p.asks + 1 // the answers to this call's asks
	p.mu.Unlock()
	var (
		want    = nodes()
		moved   = time.Now()
		best    = map[int]uint64{} // the highest position each node below pos answered
		sendErr error
	)
	ask := func() {
		p.mu.Lock()
		p.asks++
		id := p.asks
		p.mu.Unlock()
		if err := p.send(progressMsg{Node: p.node, At: p.own(), Ask: true, ID: id}); err != nil {
			sendErr = err // the wait goes on: asked again at the next tick
		}
	}
	ask()
	for {
		p.mu.Lock()
		var behind []string
		for _, n := range want {
			if n == p.node {
				continue
			}
			h, ok := p.heard[n]
			switch {
			case !ok || h.re < first:
				behind = append(behind, fmt.Sprintf("node %d (no answer)", n))
			case h.at < pos:
				behind = append(behind, fmt.Sprintf("node %d (at %d)", n, h.at))
			default:
				continue
			}
			if b, seen := best[n]; ok && h.re >= first && (!seen || h.at > b) {
				best[n], moved = h.at, time.Now()
			}
		}
		changed := p.changed
		p.mu.Unlock()
		if len(behind) == 0 {
			return nil
		}
		below := strings.Join(behind, ", ")
		if sendErr != nil {
			below += fmt.Sprintf(" (the last ask failed: %v)", sendErr)
		}
		if time.Since(moved) >= stall {
			return fmt.Errorf("cluster: waiting for every node to reach %d: %w for %s: %s below it", pos, ErrStalled, stall, below)
		}
		select {
		case <-changed:
		case <-tick.C:
			want = nodes()
			ask()
		case <-ctx.Done():
			return fmt.Errorf("cluster: waiting for every node to reach %d: %s below it: %w", pos, below, ctx.Err())
		}
	}
}

// Close stops answering and receiving (see Broadcast.Close).
func (p *Progress) Close() error {
	p.mu.Lock()
	b := p.b
	p.mu.Unlock()
	return b.Close()
}
