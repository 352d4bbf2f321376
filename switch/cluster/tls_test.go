package cluster

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/devpki"
)

// newTestCA makes a CA for one test (internal/devpki).
func newTestCA(t *testing.T, dir, name string) *testCA {
	t.Helper()
	ca, err := devpki.NewCA(dir, name)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{ca, ca.File}
}

type testCA struct {
	ca   *devpki.CA
	file string
}

// issue writes a certificate of the CA for name, and its key; it returns their paths.
func (c *testCA) issue(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile, err := c.ca.Issue(dir, name)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// logWatch is a log writer that closes seen once, after it is armed, a line
// containing every string of want is written.
type logWatch struct {
	want  []string // all in one line
	seen  chan struct{}
	armed atomic.Bool // lines before Arm do not count
	once  sync.Once
	mu    sync.Mutex
	b     strings.Builder
}

func (w *logWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.Write(p)
	if !w.armed.Load() {
		return len(p), nil
	}
	for _, s := range w.want {
		if !strings.Contains(string(p), s) {
			return len(p), nil
		}
	}
	w.once.Do(func() { close(w.seen) })
	return len(p), nil
}

func (w *logWatch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestThreeNodesTLS: three embedded nodes with cluster.embedded.tls form an R3
// cluster over mutual-TLS routes and replicate writes; a server whose certificate
// another CA signed (a CA of the same name, so that it is presented) is refused as a
// route by the node it dials; the client port refuses a client in clear, one without
// a certificate and one with a foreign certificate, and takes one the cluster's CA
// signed.
func TestThreeNodesTLS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	foreignDir := filepath.Join(dir, "foreign")
	if err := os.Mkdir(foreignDir, 0o700); err != nil {
		t.Fatal(err)
	}
	// The same name as the cluster's CA: a Go client presents a certificate only if
	// its issuer's name is among those the server asks for.
	ca, foreign := newTestCA(t, dir, "cluster"), newTestCA(t, foreignDir, "cluster")
	ports := reservePorts(t, 4)
	watch := &logWatch{want: []string{"TLS route handshake error", "unknown authority"}, seen: make(chan struct{})}
	nodes := startThree(t, ctx, dir, ports[:3], ca, func(i int) zerolog.Logger {
		if i == 0 {
			return zerolog.New(watch).Level(zerolog.WarnLevel)
		}
		return testLogger(t)
	})
	if _, err := nodes[0].JetStream().CreateStream(ctx, jetstream.StreamConfig{Name: "J", Subjects: []string{"j.>"}, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[2].Publish(ctx, "j.tls", []byte("over TLS routes"), "tx-tls"); err != nil {
		t.Fatalf("an R3 write over the TLS routes: %v", err)
	}
	st, err := nodes[1].Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Servers) != 3 || len(st.Streams) != 1 || len(st.Streams[0].Peers) != 2 {
		t.Fatalf("status of the TLS cluster: %+v", st)
	}
	for i, n := range nodes {
		if routes := n.srv.NumRoutes(); routes < 2 {
			t.Errorf("node %d has %d routes, want 2 or more", i+1, routes)
		}
	}

	// A fourth server, its certificate signed by another CA, dials node 1's route
	// port; it trusts the cluster's CA, so that the refusal, if any, is node 1's:
	// node 1 refuses it in the TLS handshake, and the cluster stays three.
	certFile, keyFile := foreign.issue(t, foreignDir, "intruder")
	watch.armed.Store(true)
	intruder, err := Start(ctx, Config{Mode: ModeEmbedded, Node: 4, Embedded: Embedded{
		ServerName: "intruder", StoreDir: filepath.Join(dir, "intruder"),
		ClientAddr: "127.0.0.1:0", ClusterName: "sy", ClusterAddr: fmt.Sprintf("127.0.0.1:%d", ports[3]), Routes: []string{fmt.Sprintf("nats-route://127.0.0.1:%d", ports[0])},
		TLS: EmbeddedTLS{CAFile: ca.file, CertFile: certFile, KeyFile: keyFile},
	}}, Options{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer intruder.Close()
	select {
	case <-watch.seen:
	case <-ctx.Done():
		t.Fatalf("node 1 logged no route handshake refused for an unknown authority; its log:\n%s", watch.String())
	}
	if n := intruder.srv.NumRoutes(); n != 0 {
		t.Errorf("the foreign server has %d routes, want 0", n)
	}
	if got := nodes[0].srv.NumRoutes(); got != nodes[1].srv.NumRoutes() {
		t.Errorf("node 1 has %d routes, node 2 %d: the foreign server was let in", got, nodes[1].srv.NumRoutes())
	}

	// The client port: in clear, the node's greeting asks for TLS, and a CONNECT and
	// PING in clear get no PONG.
	url := nodes[0].srv.ClientURL()
	plainNoAnswer(t, strings.TrimPrefix(url, "tls://"), true)
	if nc, err := nats.Connect(url, nats.Timeout(5*time.Second), nats.NoReconnect(), nats.RootCAs(ca.file)); err == nil {
		nc.Close()
		t.Fatal("a client without a certificate connected to the client port")
	}
	if nc, err := nats.Connect(url, nats.Timeout(5*time.Second), nats.NoReconnect(), nats.RootCAs(ca.file), nats.ClientCert(certFile, keyFile)); err == nil {
		nc.Close()
		t.Fatal("a client with a certificate of another CA connected to the client port")
	}
	toolCert, toolKey := ca.issue(t, dir, "tool")
	nc, err := nats.Connect(url, nats.Timeout(5*time.Second), nats.NoReconnect(), nats.RootCAs(ca.file), nats.ClientCert(toolCert, toolKey))
	if err != nil {
		t.Fatalf("a client with a certificate of the cluster's CA: %v", err)
	}
	defer nc.Close()
	if !nc.TLSRequired() {
		t.Error("the client port does not require TLS")
	}
	if _, err := nc.RTT(); err != nil {
		t.Fatal(err)
	}
}

// TestTLSConfigErrors: TLS files given in part, missing, unreadable as PEM, or a
// key readable by others fail Validate or Start with the key at fault.
func TestTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "cluster")
	certFile, keyFile := ca.issue(t, dir, "n1")
	openKey := filepath.Join(dir, "open.key")
	b, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(openKey, b, 0o644); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := func(tc EmbeddedTLS) Config {
		c := Config{Mode: ModeEmbedded, Node: 1, Embedded: Embedded{ServerName: "n1", ClientAddr: "127.0.0.1:0", TLS: tc}}
		c.ApplyDefaults(t.TempDir())
		return c
	}
	for _, tc := range []struct {
		name string
		tls  EmbeddedTLS
		want []string
	}{
		{"cert without key", EmbeddedTLS{CAFile: ca.file, CertFile: certFile}, []string{"cluster.embedded.tls.key_file", "go together"}},
		{"no CA", EmbeddedTLS{CertFile: certFile, KeyFile: keyFile}, []string{"cluster.embedded.tls.ca_file", "required"}},
		{"missing CA file", EmbeddedTLS{CAFile: filepath.Join(dir, "none.pem"), CertFile: certFile, KeyFile: keyFile}, []string{"cluster.embedded.tls.ca_file", "none.pem", "no such file"}},
		{"key readable by others", EmbeddedTLS{CAFile: ca.file, CertFile: certFile, KeyFile: openKey}, []string{"cluster.embedded.tls.key_file", "readable by others", "chmod 600"}},
		{"certificate not PEM", EmbeddedTLS{CAFile: ca.file, CertFile: notPEM, KeyFile: keyFile}, []string{"cluster.embedded.tls.cert_file", "not.pem"}},
		{"CA not PEM", EmbeddedTLS{CAFile: notPEM, CertFile: certFile, KeyFile: keyFile}, []string{"cluster.embedded.tls.ca_file", "not.pem", "no PEM certificate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			n, err := Start(ctx, cfg(tc.tls), Options{Logger: zerolog.Nop()})
			if err == nil {
				n.Close()
				t.Fatal("started")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestTLSRouteWithoutTLS: a peer that dials the route port of a TLS node in plain
// TCP and speaks the route protocol gets nothing in clear (a plain route port
// greets with its INFO first) and is cut off: the node expects a TLS handshake
// first, and the route's CONNECT is not one.
func TestTLSRouteWithoutTLS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	ca := newTestCA(t, dir, "cluster")
	certFile, keyFile := ca.issue(t, dir, "n1")
	ports := reservePorts(t, 2)
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	n := startNode(t, ctx, Config{Mode: ModeEmbedded, Node: 1, Embedded: Embedded{
		ServerName: "n1", StoreDir: filepath.Join(dir, "n1"), ClientAddr: "127.0.0.1:0",
		ClusterName: "sy", ClusterAddr: addr, Routes: []string{"nats-route://" + addr, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[1])},
		TLS: EmbeddedTLS{CAFile: ca.file, CertFile: certFile, KeyFile: keyFile},
	}})
	defer n.Close()
	plainNoAnswer(t, addr, false)
}

// plainNoAnswer dials addr in plain TCP, sends a CONNECT and a PING in clear and
// fails the test unless the far end closes the connection without a PONG. With
// greets, the far end must first send an INFO that requires TLS (a client port);
// without, it must send nothing in clear at all (a route port, TLS first).
func plainNoAnswer(t *testing.T, addr string, greets bool) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	if greets {
		info, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(info, "INFO ") || !strings.Contains(info, `"tls_required":true`) {
			t.Fatalf("%s greets with %q, %v; want an INFO with tls_required", addr, info, err)
		}
	}
	if _, err := fmt.Fprintf(c, "CONNECT {\"verbose\":false,\"pedantic\":false,\"tls_required\":false,\"name\":\"plain\"}\r\nPING\r\n"); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("%s kept a plain connection open for 10 s (read %q)", addr, got)
	}
	if bytes.Contains(got, []byte("PONG")) || !greets && bytes.Contains(got, []byte("INFO")) {
		t.Fatalf("%s spoke the protocol in clear: %q", addr, got)
	}
}

// startThree starts three embedded nodes, n1 to n3 in dir, routed to each other on
// ports (their cluster ports), with certificates from ca unless it is nil, node i
// logging to logFor(i), once JetStream answers on each. The nodes are closed at the
// test's end.
func startThree(t *testing.T, ctx context.Context, dir string, ports []int, ca *testCA, logFor func(i int) zerolog.Logger) []*Node {
	t.Helper()
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	nodes := make([]*Node, 3)
	t.Cleanup(func() {
		for _, n := range nodes {
			if n != nil {
				n.Close()
			}
		}
	})
	for i := range nodes {
		name := fmt.Sprintf("n%d", i+1)
		e := Embedded{ServerName: name, StoreDir: filepath.Join(dir, name),
			ClientAddr: "127.0.0.1:0", ClusterName: "sy", ClusterAddr: fmt.Sprintf("127.0.0.1:%d", ports[i]), Routes: routes}
		if ca != nil {
			certFile, keyFile := ca.issue(t, dir, name)
			e.TLS = EmbeddedTLS{CAFile: ca.file, CertFile: certFile, KeyFile: keyFile}
		}
		n, err := Start(ctx, Config{Mode: ModeEmbedded, Node: i + 1, Embedded: e}, Options{Logger: logFor(i)})
		if err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		nodes[i] = n
	}
	for _, n := range nodes {
		if err := n.WaitJetStream(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return nodes
}

// TestNoClientPortTLS: with tls and client_addr "none", a tool holding a
// certificate the cluster's CA signed is refused all the same (the node's token is
// the only way in), and the node, connected in process, has JetStream.
func TestNoClientPortTLS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	ca := newTestCA(t, dir, "cluster")
	certFile, keyFile := ca.issue(t, dir, "n1")
	n, err := Start(ctx, Config{Mode: ModeEmbedded, Node: 1, Embedded: Embedded{ServerName: "n1", StoreDir: filepath.Join(dir, "n1"),
		ClientAddr: ClientAddrNone, TLS: EmbeddedTLS{CAFile: ca.file, CertFile: certFile, KeyFile: keyFile}}}, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.WaitJetStream(ctx); err != nil {
		t.Fatal(err)
	}
	toolCert, toolKey := ca.issue(t, dir, "tool")
	url := n.srv.ClientURL()
	nc, err := nats.Connect(url, nats.Timeout(5*time.Second), nats.NoReconnect(), nats.RootCAs(ca.file), nats.ClientCert(toolCert, toolKey))
	if err == nil {
		nc.Close()
		t.Fatalf("a tool with the CA's certificate connected to %s", url)
	}
	if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(err.Error(), "Authorization") {
		t.Fatalf("a tool with the CA's certificate, at %s: %v; want an authorization violation", url, err)
	}
	if _, err := n.JetStream().CreateStream(ctx, jetstream.StreamConfig{Name: "J", Subjects: []string{"j.>"}}); err != nil {
		t.Fatalf("the node's own JetStream: %v", err)
	}
}
