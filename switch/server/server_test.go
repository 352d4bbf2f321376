package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/sparse"
	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/internal/testswitch"
	"github.com/switchyard/switchyard/switch/issuersim"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/termclient"
)

func demoConfig(t *testing.T, dir string) *config.Config {
	return testswitch.DemoConfig(t, dir, "../../rules")
}

func start(t *testing.T, c *config.Config, logs io.Writer) *Server {
	t.Helper()
	if logs == nil {
		logs = io.Discard
	}
	s, err := New(c, zerolog.New(logs), testDemoIssuer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func dial(t *testing.T, s *Server, listener string, d message.Dialect) *termclient.Client {
	t.Helper()
	c, err := termclient.Dial(s.ListenerAddr(listener), d, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// loadPurchase is a purchase from one of the demo load terminals (enterprise merchant,
// no binding, no velocity limits on the terminal).
func loadPurchase(term int, pan string, amount int64) termclient.Txn {
	return termclient.Txn{PAN: pan, Amount: amount, Expiry: "2912", TID: fmt.Sprintf("LT%06d", term), MID: "000000000000003"}
}

func purchase(pan string, amount int64) termclient.Txn {
	return termclient.Txn{PAN: pan, Amount: amount, Expiry: "2912", TID: "T0000001", MID: "000000000000001",
		TLV: [][2]string{{"DI", "SN-T0000001"}, {"SI", "89860000000000000001"}, {"IM", "860000000000001"}, {"GL", "39.904200,116.407400"}, {"AV", "1.0.0"}}}
}

func send(t *testing.T, c *termclient.Client, d message.Dialect, tx termclient.Txn) termclient.Result {
	t.Helper()
	m, err := termclient.Build(tx, d)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := c.Send(ctx, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := termclient.Decode(resp)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestDemoFlowsBothDialects(t *testing.T) {
	for _, l := range []struct {
		name string
		d    message.Dialect
	}{{"ascii", message.DialectASCII}, {"binary-bitmap", message.DialectASCIIBinaryBitmap}} {
		s := start(t, demoConfig(t, t.TempDir()), nil) // a fresh switch: the rules count per terminal
		c := dial(t, s, l.name, l.d)
		cases := []struct {
			pan    string
			amount int64
			rc     string
			auth   bool
		}{
			{"4761739001010119", 1000, "00", true},
			{testCard(1), 1051, "51", false},
			{testCard(2), 1005, "05", false},
			{"4761739001010010", 1000, "54", false}, // expired card (2212)
			{"4761739001010267", 1000, "00", true},
			{"4761731234567890", 2500, "00", true},  // any Luhn-valid PAN of the BIN
			{"5500000000000004", 1000, "15", false}, // no route
		}
		for _, tc := range cases {
			r := send(t, c, l.d, purchase(tc.pan, tc.amount))
			if r.RC != tc.rc || (r.AuthCode != "") != tc.auth || len(r.RRN) != 12 || r.MTI != "0210" || r.TID != "T0000001" {
				t.Fatalf("%s %s %d: got %+v, want rc %s", l.name, tc.pan, tc.amount, r, tc.rc)
			}
			if tc.rc == "15" && r.Reason != "no-route" {
				t.Fatalf("no RS on 15: %+v", r)
			}
		}
		// Pre-authorization and echo.
		pre := purchase(testCard(3), 3000)
		pre.MTI = "0100"
		if r := send(t, c, l.d, pre); r.MTI != "0110" || r.RC != "00" {
			t.Fatalf("0100: %+v", r)
		}
		if r := send(t, c, l.d, termclient.Txn{MTI: "0800", NetCode: "301", TID: "T0000001"}); r.MTI != "0810" || r.RC != "00" {
			t.Fatalf("echo: %+v", r)
		}
	}
}

func TestPipelined64OnOneConnection(t *testing.T) {
	s := start(t, demoConfig(t, t.TempDir()), nil)
	c := dial(t, s, "ascii", message.DialectASCII)
	// Build 64 requests and write them all before reading anything.
	type want struct{ rc string }
	wants := map[string]string{}
	var bodies [][]byte
	for i := 0; i < 64; i++ {
		tx := loadPurchase(1, testCard(100+i), int64(1000+i*100))
		tx.STAN = fmt.Sprintf("%06d", 100+i)
		if i%8 == 3 {
			tx.Amount = int64(1051 + i*100) // ends in 51
		}
		m, err := termclient.Build(tx, message.DialectASCII)
		if err != nil {
			t.Fatal(err)
		}
		b, err := message.Pack(m, nil)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, b)
		wants[tx.STAN] = map[bool]string{true: "51", false: "00"}[i%8 == 3]
	}
	results := make(chan error, 64)
	var wg sync.WaitGroup
	for i, b := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stan := fmt.Sprintf("%06d", 100+i)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			raw, err := c.Exchange(ctx, "LT000001", stan, b)
			if err != nil {
				results <- err
				return
			}
			rm, err := message.Decode(raw, message.DialectASCII)
			_ = rm
			if err == nil || true {
				resp, derr := decodeResp(raw)
				if derr != nil {
					results <- derr
					return
				}
				if resp.RC != wants[stan] || resp.STAN != stan {
					results <- fmt.Errorf("stan %s: rc %s want %s", stan, resp.RC, wants[stan])
					return
				}
			}
			results <- nil
		}()
	}
	wg.Wait()
	close(results)
	for err := range results {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func decodeResp(raw []byte) (termclient.Result, error) {
	m := newMsg()
	if err := m.Unpack(raw); err != nil {
		return termclient.Result{}, err
	}
	return termclient.Decode(m)
}

func TestConcurrentConnections200(t *testing.T) {
	s := start(t, demoConfig(t, t.TempDir()), nil)
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := termclient.Dial(s.ListenerAddr("ascii"), message.DialectASCII, nil)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for j := 0; j < 3; j++ {
				tx := loadPurchase(1+i, testCard(1000+i*3+j), int64(1000+j))
				tx.STAN = fmt.Sprintf("%03d%03d", i, j)
				m, _ := termclient.Build(tx, message.DialectASCII)
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				resp, err := c.Send(ctx, m, nil)
				cancel()
				if err != nil {
					errs <- err
					return
				}
				if r, _ := termclient.Decode(resp); r.RC != "00" {
					errs <- fmt.Errorf("conn %d: rc %s", i, r.RC)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// rawConn is a terminal that writes bytes as they are, to send malformed input.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

func rawDial(t *testing.T, addr string) *rawConn {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, r: bufio.NewReader(nc)}
}

func (c *rawConn) writeFrame(body []byte) {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(body)))
	if _, err := c.nc.Write(append(b, body...)); err != nil {
		c.t.Fatal(err)
	}
}

// read returns the next response body, or nil when the switch closed the connection.
func (c *rawConn) read() []byte {
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var hdr [2]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		if isTimeoutErr(err) {
			c.t.Fatal("switch neither answered nor closed the connection")
		}
		return nil
	}
	b := make([]byte, binary.BigEndian.Uint16(hdr[:]))
	if _, err := io.ReadFull(c.r, b); err != nil {
		c.t.Fatal(err)
	}
	return b
}

func isTimeoutErr(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func TestMalformedInput(t *testing.T) {
	logs := &testswitch.SyncBuffer{}
	s := start(t, demoConfig(t, t.TempDir()), logs)
	addr := s.ListenerAddr("ascii")
	m, _ := termclient.Build(purchase("4761739001010119", 1000), message.DialectASCII)
	good, err := message.Pack(m, nil)
	if err != nil {
		t.Fatal(err)
	}
	answered := []struct {
		name string
		body []byte
	}{
		{"truncated field", good[:len(good)-3]},
		{"bad amount digits", bytes.Replace(good, []byte("000000001000"), []byte("0000000010X0"), 1)},
		{"malformed TLV", bytes.Replace(good, []byte("DI011"), []byte("DI0x1"), 1)},
		{"trailing bytes", append(append([]byte{}, good...), "JUNK"...)},
		{"0xFF in the amount", bytes.Replace(good, []byte("000000001000"), []byte("0000000010\xff0"), 1)},
	}
	for _, tc := range answered {
		c := rawDial(t, addr)
		c.writeFrame(tc.body)
		resp := c.read()
		if resp == nil {
			t.Fatalf("%s: connection closed, want a 30 answer", tc.name)
		}
		r, err := decodeResp(resp)
		if err != nil || r.RC != "30" || r.TID != "T0000001" || r.MTI != "0210" {
			t.Fatalf("%s: %+v %v", tc.name, r, err)
		}
		// The connection stays usable after a format error.
		c.writeFrame(good)
		if r, _ := decodeResp(c.read()); r.RC != "00" {
			t.Fatalf("%s: next request on the same connection: %+v", tc.name, r)
		}
	}
	closed := []struct {
		name  string
		write func(c *rawConn)
		log   string
	}{
		{"non-hex bitmap", func(c *rawConn) { c.writeFrame(append([]byte("0200ZZ3C"), good[8:]...)) }, "unanswerable"},
		{"over-long LLVAR", func(c *rawConn) { c.writeFrame(append([]byte(string(good[:20])+"99"), good[22:]...)) }, "unanswerable"},
		{"garbage", func(c *rawConn) { c.writeFrame([]byte("\x00\xffnot an iso message at all")) }, "unanswerable"},
		{"empty frame", func(c *rawConn) { c.writeFrame(nil) }, "empty frame"},
		{"oversized length header", func(c *rawConn) { c.nc.Write([]byte{0x10, 0x01}) }, "frame longer than the limit"},
	}
	for _, tc := range closed {
		c := rawDial(t, addr)
		tc.write(c)
		if resp := c.read(); resp != nil {
			t.Fatalf("%s: got an answer %q, want the connection closed", tc.name, resp)
		}
		if !strings.Contains(logs.String(), tc.log) {
			t.Fatalf("%s: no log line saying %q", tc.name, tc.log)
		}
	}
	// Other connections were never disturbed.
	c := dial(t, s, "ascii", message.DialectASCII)
	if r := send(t, c, message.DialectASCII, purchase("4761739001010119", 1000)); r.RC != "00" {
		t.Fatalf("after malformed input: %+v", r)
	}
}

func TestIssuerDownAndSlow(t *testing.T) {
	// A slow issuer: answers after 2 s, the switch waits 300 ms.
	slow, err := issuersim.Start(issuersim.Config{Addr: "127.0.0.1:0", BIN: "411111", Latency: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	// A down issuer: an address nobody listens on.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	downAddr := ln.Addr().String()
	ln.Close()

	c := demoConfig(t, t.TempDir())
	c.Issuers = []config.Issuer{
		{ID: "slow", Addrs: []string{slow.Addr()}, Timeout: config.Duration(300 * time.Millisecond)},
		{ID: "down", Addrs: []string{downAddr}},
	}
	c.Routes = append(c.Routes, config.Route{Prefix: "411111", Issuer: "slow"}, config.Route{Prefix: "422222", Issuer: "down"})
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	s := start(t, c, nil)
	tc := dial(t, s, "ascii", message.DialectASCII)

	// Wait for the slow issuer's sign-on (it answers 0800 at once).
	deadline := time.Now().Add(5 * time.Second)
	for !s.links["slow"].Up() {
		if time.Now().After(deadline) {
			t.Fatal("the slow issuer did not sign on")
		}
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	r := send(t, tc, message.DialectASCII, purchase("4111111111111111", 1000))
	if r.RC != "91" {
		t.Fatalf("slow issuer: %+v", r)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Fatalf("slow issuer answered after %s; the timeout is 300ms", d)
	}
	rec, err := s.Journal.Get(r.RRN)
	if err != nil || rec.State != journal.StateTimedOut && !hasState(rec, journal.StateTimedOut) {
		t.Fatalf("timed out transaction not journaled as timed_out: %+v %v", rec, err)
	}
	r = send(t, tc, message.DialectASCII, purchase("4222222222222222", 1000))
	if r.RC != "91" || r.Reason != "issuer-unavailable" {
		t.Fatalf("down issuer: %+v", r)
	}
	// The demo issuer is unaffected.
	if r := send(t, tc, message.DialectASCII, purchase("4761739001010119", 1000)); r.RC != "00" {
		t.Fatalf("demo issuer: %+v", r)
	}
}

func hasState(r *journal.Record, s journal.State) bool {
	for _, e := range r.Events {
		if e.State == s {
			return true
		}
	}
	return false
}

// purchaseAndStop starts a demo switch on dir, journals one approved purchase and
// drains the switch: the directory holds a stopped switch's data.
func purchaseAndStop(t *testing.T, dir string) termclient.Result {
	t.Helper()
	s := start(t, demoConfig(t, dir), nil)
	c := dial(t, s, "ascii", message.DialectASCII)
	first := send(t, c, message.DialectASCII, purchase("4761739001010119", 1000))
	c.Close()
	if err := s.Drain(); err != nil {
		t.Fatal(err)
	}
	return first
}

func TestRestartSameDataDir(t *testing.T) {
	dir := t.TempDir()
	first := purchaseAndStop(t, dir)
	s2 := start(t, demoConfig(t, dir), nil)
	c2 := dial(t, s2, "ascii", message.DialectASCII)
	second := send(t, c2, message.DialectASCII, purchase("4761739001010119", 2000))
	if first.RC != "00" || second.RC != "00" || second.RRN <= first.RRN {
		t.Fatalf("RRNs must keep increasing across restarts: %s then %s", first.RRN, second.RRN)
	}
	rec, err := s2.Journal.Get(first.RRN)
	if err != nil || rec.RC != "00" || rec.AuthCode != first.AuthCode || !hasState(rec, journal.StateResponded) {
		t.Fatalf("record from before the restart: %+v %v", rec, err)
	}
	var n int
	if err := s2.Journal.Scan(context.Background(), journal.Query{TID: "T0000001"}, func(*journal.Record) bool { n++; return true }); err != nil || n != 2 {
		t.Fatalf("journal by terminal after restart: %d records, %v", n, err)
	}
}

// TestNoClearPAN runs traffic end to end, then scans the log output and every file under
// the data directory for the demo PANs in clear.
func TestNoClearPAN(t *testing.T) {
	dir := t.TempDir()
	logs := &testswitch.SyncBuffer{}
	s := start(t, demoConfig(t, dir), logs)
	c := dial(t, s, "ascii", message.DialectASCII)
	pans := []string{"4761739001010119", "4761739001010010", "4761739001010267", "5500000000000004"}
	for i, pan := range pans {
		send(t, c, message.DialectASCII, purchase(pan, int64(1000+i)))
		tx := purchase(pan, 1091) // no issuer answer would take 10 s; use a format error instead
		tx.Amount = 1000
		m, _ := termclient.Build(tx, message.DialectASCII)
		b, _ := message.Pack(m, nil)
		raw := rawDial(t, s.ListenerAddr("ascii"))
		raw.writeFrame(b[:len(b)-2]) // truncated: a 30 with the PAN in the partial message
		raw.read()
	}
	// Card numbers and track data the terminal puts in DE 48's tags, which the
	// journal's facts, the binding notes and the incidents keep: masked at the
	// decoding (until 7 December 2026 they were stored in clear).
	inTags := []string{"4761737000000016", "4761732000003029", "4761736000000034", "4761732000003045", "4761732000003060"}
	pans = append(pans, inTags...)
	tagged := purchase("4761739001010119", 1500)
	tagged.TLV = [][2]string{{"DI", inTags[1]}, {"SI", inTags[3]}, {"IM", inTags[4]}, {"AV", inTags[2]}, {"LB", "scenario " + inTags[0]}}
	send(t, c, message.DialectASCII, tagged) // 59: not the bound device; an incident
	lt := loadPurchase(2, "4761739001010119", 1600)
	lt.TLV = [][2]string{{"DI", "x" + inTags[1] + "=2912101"}, {"AV", inTags[2]}, {"IF", "root," + inTags[0]}, {"LB", inTags[0]}}
	if r := send(t, c, message.DialectASCII, lt); r.RC != "00" {
		t.Fatalf("a load terminal's purchase with card numbers in DE 48: RC %s, want 00", r.RC)
	}
	unknown := purchase("4761739001010010", 1700)
	unknown.TID, unknown.TLV = "QQ000077", [][2]string{{"LB", inTags[0]}, {"DI", inTags[1]}}
	send(t, c, message.DialectASCII, unknown)
	c.Close()
	if err := s.Drain(); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !strings.Contains(out, "476173******0119") {
		t.Fatal("the transaction log lines are missing (nothing to scan)")
	}
	for _, pan := range pans {
		if strings.Contains(out, pan) {
			t.Fatalf("clear PAN %s in the log", message.MaskPAN(pan))
		}
	}
	files := 0
	err := filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, err := sparse.ReadData(path) // Badger's files are mostly holes
		if err != nil {
			return err
		}
		files++
		for _, pan := range pans {
			if bytes.Contains(b, []byte(pan)) {
				t.Errorf("clear PAN %s in %s", message.MaskPAN(pan), path)
			}
		}
		return nil
	})
	if err != nil || files == 0 {
		t.Fatalf("scan of data directory: %d files, %v", files, err)
	}
}

// TestIdleTimeoutAndTurnaround checks that a connection in use stays open past its idle
// timeout, that an idle one is closed by the switch, and that every answer is counted
// in switchyard_terminal_turnaround_seconds.
func TestIdleTimeoutAndTurnaround(t *testing.T) {
	cfg := demoConfig(t, t.TempDir())
	for i := range cfg.Listeners {
		cfg.Listeners[i].IdleTimeout = config.Duration(400 * time.Millisecond)
	}
	s := start(t, cfg, nil)
	c := dial(t, s, "ascii", message.DialectASCII)
	const n = 6
	for i := range n { // 6 x 150 ms: busy well past the 400 ms idle timeout
		if r := send(t, c, message.DialectASCII, loadPurchase(1, testCard(40+i), 1000)); r.RC != "00" {
			t.Fatalf("purchase %d: %+v", i, r)
		}
		time.Sleep(150 * time.Millisecond)
	}
	// Now idle: the switch closes the connection within the timeout (plus a tenth).
	nc, err := net.Dial("tcp", s.ListenerAddr("ascii"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	start := time.Now()
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := nc.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("idle connection: read = %v, want EOF from the switch closing it", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 5*time.Second {
		t.Fatalf("idle connection closed after %v, want about 400 ms", d)
	}
	mfs, err := s.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var count uint64
	for _, mf := range mfs {
		if mf.GetName() != "switchyard_terminal_turnaround_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "listener" && lp.GetValue() == "ascii" {
					count = m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	if count != n {
		t.Fatalf("turnaround samples on ascii = %d, want %d", count, n)
	}
}

// TestStoreMetrics checks that Badger's counters reach /metrics as switchyard_store_*,
// with the journal's indexing backlog.
func TestStoreMetrics(t *testing.T) {
	s := start(t, demoConfig(t, t.TempDir()), nil)
	c := dial(t, s, "ascii", message.DialectASCII)
	if r := send(t, c, message.DialectASCII, loadPurchase(1, testCard(60), 1000)); r.RC != "00" {
		t.Fatalf("purchase: %+v", r)
	}
	mfs, err := s.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			got[mf.GetName()] += m.GetUntyped().GetValue() + m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	for _, name := range []string{"switchyard_store_written_bytes_total", "switchyard_store_puts_total"} {
		if got[name] <= 0 {
			t.Errorf("%s = %v, want > 0 after a purchase", name, got[name])
		}
	}
	for _, name := range []string{"switchyard_store_compacting_tables", "switchyard_store_flushed_bytes_total", "switchyard_journal_unindexed", "switchyard_journal_write_rate", "switchyard_journal_window_engaged", "switchyard_cpu_busy",
		"switchyard_notices_pending", "switchyard_notices_posts_total", "switchyard_notices_dropped_total", "switchyard_registry_alert_webhooks_total",
		"switchyard_registry_suspensions_withheld_total"} {
		if _, ok := got[name]; !ok {
			t.Errorf("%s missing", name)
		}
	}
}

// TestJournaledFactsRoundTrip checks that the facts the journal keeps, which leave out
// what the record holds, come back whole for the risk tools.
func TestJournaledFactsRoundTrip(t *testing.T) {
	s := start(t, demoConfig(t, t.TempDir()), nil)
	c := dial(t, s, "ascii", message.DialectASCII)
	amounts := []int64{1000, 4500, 12345}
	for i, a := range amounts {
		if r := send(t, c, message.DialectASCII, loadPurchase(2, testCard(70+i), a)); r.RC != "00" {
			t.Fatalf("purchase: %+v", r)
		}
	}
	n := 0
	err := s.Journal.Scan(context.Background(), journal.Query{TID: "LT000002"}, func(rec *journal.Record) bool {
		var raw risk.Input
		if err := raw.UnmarshalBinary(rec.Facts); err != nil {
			t.Fatalf("facts of %s: %v", rec.RRN, err)
		}
		if raw.Txn.MTI != "" || raw.Txn.CardHash != "" || raw.Txn.Amount != 0 {
			t.Errorf("facts of %s repeat the record: %+v", rec.RRN, raw.Txn)
		}
		rr, ok := RiskRecord(rec)
		if !ok {
			t.Fatalf("record %s not replayable", rec.RRN)
		}
		x := rr.Input.Txn
		if x.MTI != "0200" || x.ProcCode != rec.ProcCode || x.Currency != rec.Currency || x.CardHash != rec.CardHash || x.CardHash == "" ||
			x.STAN != rec.STAN || x.RRN != rec.RRN || x.BIN != rec.PANMasked[:6] || int64(x.Amount) != rec.Amount || !x.Time.Equal(rec.Received) {
			t.Errorf("restored %+v from record %+v", x, rec)
		}
		if rr.Input.Terminal.ID != "LT000002" || rr.Input.Merchant.ID != "000000000000003" {
			t.Errorf("terminal/merchant facts lost: %+v %+v", rr.Input.Terminal, rr.Input.Merchant)
		}
		n++
		return true
	})
	if err != nil || n != len(amounts) {
		t.Fatalf("scanned %d records (%v), want %d", n, err, len(amounts))
	}
}
