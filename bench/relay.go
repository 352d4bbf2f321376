package bench

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"

	"github.com/switchyard/switchyard/switch/frontend"
)

// Relay is the baseline: a plain TCP relay with the switch's framing and no decoding.
// Each terminal connection gets its own upstream connection, and frames are copied
// both ways.
type Relay struct {
	ln       net.Listener
	upstream string
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
}

// StartRelay listens on addr and relays to upstream.
func StartRelay(addr, upstream string) (*Relay, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	r := &Relay{ln: ln, upstream: upstream, conns: map[net.Conn]struct{}{}}
	r.wg.Add(1)
	go r.accept()
	return r, nil
}

// Addr is the relay's listening address.
func (r *Relay) Addr() string { return r.ln.Addr().String() }

// Close stops the relay.
func (r *Relay) Close() error {
	err := r.ln.Close()
	r.mu.Lock()
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
	return err
}

func (r *Relay) track(c net.Conn, add bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if add {
		r.conns[c] = struct{}{}
	} else {
		delete(r.conns, c)
	}
}

func (r *Relay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		up, err := net.Dial("tcp", r.upstream)
		if err != nil {
			c.Close()
			continue
		}
		r.track(c, true)
		r.track(up, true)
		r.wg.Add(2)
		go r.pipe(c, up)
		go r.pipe(up, c)
	}
}

// pipe copies frames from src to dst, flushing when no more input is buffered.
func (r *Relay) pipe(src, dst net.Conn) {
	defer r.wg.Done()
	defer func() {
		src.Close()
		dst.Close()
		r.track(src, false)
		r.track(dst, false)
	}()
	br := bufio.NewReaderSize(src, 32768)
	bw := bufio.NewWriterSize(dst, 32768)
	buf := make([]byte, 0, 4096)
	for {
		body, err := frontend.ReadFrame(br, buf, 0xFFFF)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return
			}
			return
		}
		if _, err := bw.Write([]byte{byte(len(body) >> 8), byte(len(body))}); err != nil {
			return
		}
		if _, err := bw.Write(body); err != nil {
			return
		}
		if br.Buffered() == 0 {
			if err := bw.Flush(); err != nil {
				return
			}
		}
	}
}
