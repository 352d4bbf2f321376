// Package termclient is a terminal's side of the terminal interface: it builds
// requests, sends many at once over one connection and matches the answers by DE 41 +
// DE 11 + DE 7. The `term` command, the tests and the bench harness use it.
package termclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/moov-io/iso8583"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
)

// ErrClosed is returned for requests on a closed connection.
var ErrClosed = errors.New("terminal connection closed")

// Client is one terminal connection to the switch.
type Client struct {
	nc      net.Conn
	dialect message.Dialect
	wmu     sync.Mutex
	w       *bufio.Writer

	mu      sync.Mutex
	pending map[string]chan []byte
	err     error
	done    chan struct{}
}

// Dial connects to a switch listener speaking dialect. tlsConf may be nil.
func Dial(addr string, d message.Dialect, tlsConf *tls.Config) (*Client, error) {
	var nc net.Conn
	var err error
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	if tlsConf != nil {
		nc, err = tls.DialWithDialer(dialer, "tcp", addr, tlsConf)
	} else {
		nc, err = dialer.Dial("tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to switch at %s: %w", addr, err)
	}
	c := &Client{nc: nc, dialect: d, w: bufio.NewWriterSize(nc, 8192), pending: map[string]chan []byte{}, done: make(chan struct{})}
	go c.readLoop()
	return c, nil
}

// Close closes the connection; pending requests fail with ErrClosed.
func (c *Client) Close() error {
	err := c.nc.Close()
	<-c.done
	return err
}

// Done is closed when the connection is gone.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended (nil while open).
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *Client) readLoop() {
	defer close(c.done)
	r := bufio.NewReaderSize(c.nc, 16384)
	var err error
	for {
		var body []byte
		body, err = frontend.ReadFrame(r, nil, 0xFFFF)
		if err != nil {
			break
		}
		key, kerr := matchKey(body, c.dialect)
		if kerr != nil {
			continue
		}
		c.mu.Lock()
		ch := c.pending[key]
		delete(c.pending, key)
		c.mu.Unlock()
		if ch != nil {
			ch <- body
		}
	}
	c.mu.Lock()
	c.err = err
	for k, ch := range c.pending {
		close(ch)
		delete(c.pending, k)
	}
	c.mu.Unlock()
}

// matchKey returns DE 41 + DE 11 of a message body.
func matchKey(body []byte, d message.Dialect) (string, error) {
	m := iso8583.NewMessage(d.Spec())
	if err := m.Unpack(body); err != nil {
		return "", err
	}
	tid, _ := m.GetString(41)
	stan, _ := m.GetString(11)
	return tid + "/" + stan, nil
}

// Exchange sends one request body and waits for the answer with the same DE 41 + DE 11.
func (c *Client) Exchange(ctx context.Context, tid, stan string, body []byte) ([]byte, error) {
	key := tid + "/" + stan
	ch := make(chan []byte, 1)
	c.mu.Lock()
	if c.err != nil || isClosed(c.done) {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if _, dup := c.pending[key]; dup {
		c.mu.Unlock()
		return nil, fmt.Errorf("request %s already in flight on this connection", key)
	}
	c.pending[key] = ch
	c.mu.Unlock()
	if err := c.Write(body); err != nil {
		c.forget(key)
		return nil, err
	}
	select {
	case b, ok := <-ch:
		if !ok {
			return nil, ErrClosed
		}
		return b, nil
	case <-ctx.Done():
		c.forget(key)
		return nil, fmt.Errorf("no answer to %s: %w", key, ctx.Err())
	}
}

func (c *Client) forget(key string) {
	c.mu.Lock()
	delete(c.pending, key)
	c.mu.Unlock()
}

// Write sends one framed body without waiting for an answer.
func (c *Client) Write(body []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if len(body) > 0xFFFF {
		return fmt.Errorf("body of %d bytes does not fit the length header", len(body))
	}
	_, err := c.w.Write([]byte{byte(len(body) >> 8), byte(len(body))})
	if err == nil {
		_, err = c.w.Write(body)
	}
	if err == nil {
		err = c.w.Flush()
	}
	if err != nil {
		return fmt.Errorf("send to switch: %w", err)
	}
	return nil
}

// Send packs m (MAC'd with mac when not nil), sends it and decodes the answer.
func (c *Client) Send(ctx context.Context, m *iso8583.Message, mac message.MACFunc) (*iso8583.Message, error) {
	tid, _ := m.GetString(41)
	stan, _ := m.GetString(11)
	body, err := message.Pack(m, mac)
	if err != nil {
		return nil, fmt.Errorf("pack request: %w", err)
	}
	raw, err := c.Exchange(ctx, tid, stan, body)
	if err != nil {
		return nil, err
	}
	resp := iso8583.NewMessage(c.dialect.Spec())
	if err := resp.Unpack(raw); err != nil {
		return nil, fmt.Errorf("decode answer: %w", err)
	}
	return resp, nil
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
