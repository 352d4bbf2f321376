package payshield_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/des"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/payshield"
	"github.com/switchyard/switchyard/hsm/pinblock"
	"github.com/switchyard/switchyard/keys"
)

// serve starts hsm serve's server under the demo LMK on a loopback port and returns
// its address and a function that stops it (and waits for it).
func serve(t testing.TB, opts payshield.ServerOptions) (string, func()) {
	t.Helper()
	srv, err := payshield.NewServer(keys.DemoLMK(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, srv)
}

// serveOn serves srv on a loopback port until the test ends or stop is called.
func serveOn(t testing.TB, srv *payshield.Server) (addr string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

type env struct {
	store  *keys.Store
	client *payshield.Client
	sw     *hsm.Software
	ctx    context.Context
}

// newEnv opens a demo key store, a client to addrs, loads the demo keys through the
// client (FK over the wire) and opens a software HSM on the same store and LMK, to
// compare with.
func newEnv(t testing.TB, opts payshield.ClientOptions) *env {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	store, err := keys.NewStore(db, keys.Options{Demo: true})
	if err != nil {
		t.Fatal(err)
	}
	opts.Store = store
	if opts.HealthEvery == 0 {
		opts.HealthEvery = -1
	}
	c, err := payshield.NewClient(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx := hsm.WithActor(context.Background(), "test")
	if err := keys.LoadDemo(ctx, store, c); err != nil {
		t.Fatal(err)
	}
	sw, err := hsm.NewSoftware(ctx, store, keys.DemoLMK(), hsm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &env{store: store, client: c, sw: sw, ctx: ctx}
}

func unhex(s string) []byte {
	b, _ := hex.DecodeString(s)
	return b
}

func tdesECB(t testing.TB, key string, in []byte, decrypt bool) []byte {
	k := unhex(key)
	c, err := des.NewTripleDESCipher(append(append([]byte{}, k...), k[:8]...))
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, len(in))
	if decrypt {
		c.Decrypt(out, in)
	} else {
		c.Encrypt(out, in)
	}
	return out
}

func demoHex(id string) string {
	for _, d := range keys.DemoKeys {
		if d.ID == id {
			return d.Hex
		}
	}
	return ""
}

// TestClientEveryCommand runs every command of the subset through the client against
// hsm serve over TCP, with the published X9.24 and Visa vectors where there are any.
func TestClientEveryCommand(t *testing.T) {
	addr, _ := serve(t, payshield.ServerOptions{})
	e := newEnv(t, payshield.ClientOptions{Addrs: []string{addr}})
	ctx := e.ctx

	// BU: every demo key's check value, from the HSM, is the published one.
	for _, d := range keys.DemoKeys {
		k, err := e.client.KCV(ctx, hsm.KeyRef{ID: d.ID})
		if err != nil || k.KCV != d.KCV {
			t.Fatalf("BU %s: %+v, %v; want %s", d.ID, k, err, d.KCV)
		}
	}
	zpk := demoHex(keys.DemoIssuer + ".ZPK")

	// G0: the X9.24-1 Annex A.4 PIN block (PIN 1234, PAN 4012345678909, KSN ...E00001)
	// under the X9.24 test BDK, to the demo issuer's ZPK.
	out, err := e.client.TranslatePIN(ctx, hsm.TranslatePINRequest{KSN: "FFFF9876543210E00001", SourceFormat: pinblock.Format0,
		PINBlock: unhex("1B9C1845EB993A7A"), Dest: hsm.KeyRef{ID: keys.DemoIssuer + ".ZPK"}, DestFormat: pinblock.Format0, PAN: "4012345678909"})
	if err != nil {
		t.Fatalf("G0: %v", err)
	}
	if got := tdesECB(t, zpk, out, true); !bytes.Equal(got, unhex("041274EDCBA9876F")) {
		t.Fatalf("G0: clear block under the ZPK %X, want 041274EDCBA9876F", got)
	}
	// The same KSN again is a replay, refused by the switch's key store.
	if _, err := e.client.TranslatePIN(ctx, hsm.TranslatePINRequest{KSN: "FFFF9876543210E00001", SourceFormat: pinblock.Format0,
		PINBlock: unhex("1B9C1845EB993A7A"), Dest: hsm.KeyRef{ID: keys.DemoIssuer + ".ZPK"}, PAN: "4012345678909"}); !errors.Is(err, hsm.ErrReplay) {
		t.Fatalf("G0 replay: %v, want ErrReplay", err)
	}

	// CA: a format 0 block under the demo TPK.
	pb := tdesECB(t, demoHex("T0000001.TPK"), unhex("041274EDCBA9876F"), false)
	out, err = e.client.TranslatePIN(ctx, hsm.TranslatePINRequest{Source: hsm.KeyRef{ID: "T0000001.TPK"}, PINBlock: pb,
		Dest: hsm.KeyRef{ID: keys.DemoIssuer + ".ZPK"}, PAN: "4012345678909"})
	if err != nil || !bytes.Equal(tdesECB(t, zpk, out, true), unhex("041274EDCBA9876F")) {
		t.Fatalf("CA: %X, %v", out, err)
	}
	// CA with a block that does not decode (wrong PAN for the control field) is 20.
	_, err = e.client.TranslatePIN(ctx, hsm.TranslatePINRequest{Source: hsm.KeyRef{ID: "T0000001.TPK"}, PINBlock: unhex("0000000000000000"),
		Dest: hsm.KeyRef{ID: keys.DemoIssuer + ".ZPK"}, PAN: "4012345678909"})
	var pe *payshield.Error
	if !errors.As(err, &pe) || pe.Code != payshield.CodePINBlockInvalid || !errors.Is(err, hsm.ErrInput) {
		t.Fatalf("CA bad block: %v, want error 20 wrapping ErrInput", err)
	}

	// M6: the X9.24 DUKPT request MAC vector; M6/M8 with a static TAK agree with the
	// software HSM on the same keys.
	m, err := e.client.GenerateMAC(ctx, hsm.MACRequest{KSN: "FFFF9876543210E00001", Data: []byte("4012345678909D987")})
	if err != nil || strings.ToUpper(hex.EncodeToString(m)) != "9CCC78173FC4FB64" {
		t.Fatalf("M6 DUKPT: %X, %v; want 9CCC78173FC4FB64", m, err)
	}
	data := []byte("0200 a purchase to MAC")
	tak := hsm.MACRequest{Key: hsm.KeyRef{ID: "T0000002.TAK"}, Data: data}
	m, err = e.client.GenerateMAC(ctx, tak)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := e.sw.GenerateMAC(ctx, tak); !bytes.Equal(m, want) {
		t.Fatalf("M6: %X, software HSM %X", m, want)
	}
	if err := e.client.VerifyMAC(ctx, tak, m); err != nil {
		t.Fatalf("M8: %v", err)
	}
	m[0] ^= 1
	if err := e.client.VerifyMAC(ctx, tak, m); !errors.Is(err, hsm.ErrMACMismatch) || !errors.As(err, &pe) || pe.Code != "01" {
		t.Fatalf("M8 wrong MAC: %v, want error 01 wrapping ErrMACMismatch", err)
	}

	// CW/CY: a CVK formed from the Visa test CVK A|B (FK), and the published CVVs.
	cvk := unhex("0123456789ABCDEFFEDCBA9876543210")
	c1 := unhex("1111111111111111111111111111111A")
	c2 := make([]byte, 16)
	for i := range c2 {
		c2[i] = cvk[i] ^ c1[i]
	}
	// AllowStoredValue: the Visa test CVK is the demo BDK's value.
	res, err := e.client.FormKey(ctx, hsm.FormKeyRequest{KeySpec: hsm.KeySpec{ID: "VISA.CVK", Type: hsm.CVK}, Components: [][]byte{c1, c2}, AllowStoredValue: true})
	if err != nil || res.KCV != "08D7B4" {
		t.Fatalf("FK: %+v, %v; want KCV 08D7B4", res, err)
	}
	cv := hsm.CVVRequest{Key: hsm.KeyRef{ID: "VISA.CVK"}, PAN: "4123456789012345", Expiry: "8701", ServiceCode: "101"}
	if got, err := e.client.GenerateCVV(ctx, cv); err != nil || got != "561" {
		t.Fatalf("CW: %s, %v; want 561", got, err)
	}
	if err := e.client.VerifyCVV(ctx, cv, "561"); err != nil {
		t.Fatalf("CY: %v", err)
	}
	if err := e.client.VerifyCVV(ctx, cv, "562"); !errors.Is(err, hsm.ErrCVVMismatch) {
		t.Fatalf("CY wrong CVV: %v, want ErrCVVMismatch", err)
	}

	// A0 with export under the TMK (ECB, as in a key change), A8 under the ZMK as
	// TR-31, A6 of that block back as a new key: same KCV.
	gen, err := e.client.GenerateKey(ctx, hsm.GenerateKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000001.TAK", Type: hsm.TAK},
		Export: &hsm.ExportSpec{KEK: hsm.KeyRef{ID: "T0000001.TMK"}, Format: hsm.ExportECB}})
	if err != nil || !strings.HasSuffix(gen.Exported, ":"+gen.KCV) {
		t.Fatalf("A0: %+v, %v", gen, err)
	}
	if k, err := e.sw.KCV(ctx, gen.Ref); err != nil || k.KCV != gen.KCV {
		t.Fatalf("A0 key read by the software HSM: %+v, %v (want KCV %s)", k, err, gen.KCV)
	}
	zmk := hsm.KeyRef{ID: keys.DemoIssuer + ".ZMK"}
	blk, err := e.client.ExportKey(ctx, hsm.ExportKeyRequest{Key: gen.Ref, ExportSpec: hsm.ExportSpec{KEK: zmk, Format: hsm.ExportTR31}})
	if err != nil {
		t.Fatalf("A8: %v", err)
	}
	imp, err := e.client.ImportKey(ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "COPY.TAK", Type: hsm.TAK}, KEK: zmk, TR31: blk})
	if err != nil || imp.KCV != gen.KCV {
		t.Fatalf("A6: %+v, %v; want KCV %s", imp, err, gen.KCV)
	}
	// A6 of an ECB key with a wrong KCV is refused (01).
	ecb, _, _ := strings.Cut(gen.Exported, ":")
	_, err = e.client.ImportKey(ctx, hsm.ImportKeyRequest{KeySpec: hsm.KeySpec{ID: "T0000001.BADTAK", Type: hsm.TAK, Owner: "T0000001"}, KEK: hsm.KeyRef{ID: "T0000001.TMK"}, ECB: ecb, KCV: "000000"})
	if !errors.Is(err, hsm.ErrKCVMismatch) {
		t.Fatalf("A6 wrong KCV: %v, want ErrKCVMismatch", err)
	}
}

// raw sends one message to addr and returns the answer.
func raw(t *testing.T, addr, header, code string, body []byte) payshield.Response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	frame, err := payshield.AppendRequest(nil, payshield.Request{Header: header, Code: code, Body: body})
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(frame); err != nil {
		t.Fatal(err)
	}
	msg, err := payshield.ReadFrame(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := payshield.ParseResponse(msg, 4)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestServeErrorCodes checks the answers to an unknown command, a key token altered
// under the LMK (the key block scheme's parity error), a key scheme hsm serve holds
// no LMK for, and NC.
func TestServeErrorCodes(t *testing.T) {
	addr, _ := serve(t, payshield.ServerOptions{})
	e := newEnv(t, payshield.ClientOptions{Addrs: []string{addr}})
	if r := raw(t, addr, "0001", "XX", nil); r.Header != "0001" || r.Code != "XY" || r.ErrCode != payshield.CodeCommandDisabled {
		t.Fatalf("unknown command: %+v", r)
	}
	if r := raw(t, addr, "0002", "NC", nil); r.Code != "ND" || r.ErrCode != "00" || len(r.Body) != 16+9 {
		t.Fatalf("NC: %+v", r)
	}
	rec, err := e.store.Key(e.ctx, hsm.KeyRef{ID: "T0000002.TAK"})
	if err != nil {
		t.Fatal(err)
	}
	tok := []byte("S" + rec.Block)
	tok[len(tok)-1] ^= 1 // the key block's MAC no longer verifies
	if r := raw(t, addr, "0003", "BU", append([]byte("FFF"), tok...)); r.Code != "BV" || r.ErrCode != payshield.CodeSourceKeyParity {
		t.Fatalf("BU of an altered token: %+v, want 10", r)
	}
	if r := raw(t, addr, "0004", "BU", []byte("FFFUA12049CC30D20BE0DC6E5E2A98FADE9E")); r.ErrCode != payshield.CodeKeySchemeInvalid {
		t.Fatalf("BU of a variant token: %+v, want 26", r)
	}
	if r := raw(t, addr, "0005", "BU", []byte("FF")); r.ErrCode != payshield.CodeInvalidInput {
		t.Fatalf("BU cut short: %+v, want 15", r)
	}
}

// TestClientFailover: a dead first HSM is failed over to the second; with every HSM
// dead the command fails with hsm.ErrUnavailable (the switch answers 96), and once an
// HSM is back the health check brings it back in.
func TestClientFailover(t *testing.T) {
	dead, stopDead := serve(t, payshield.ServerOptions{})
	stopDead()
	live, stopLive := serve(t, payshield.ServerOptions{})
	e := newEnv(t, payshield.ClientOptions{Addrs: []string{dead, live}, Timeout: 2 * time.Second})
	tak := hsm.MACRequest{Key: hsm.KeyRef{ID: "T0000002.TAK"}, Data: []byte("data")}
	if _, err := e.client.GenerateMAC(e.ctx, tak); err != nil {
		t.Fatalf("with the first HSM dead: %v", err)
	}
	stopLive()
	_, err := e.client.GenerateMAC(e.ctx, tak)
	if !errors.Is(err, hsm.ErrUnavailable) {
		t.Fatalf("with both dead: %v, want ErrUnavailable", err)
	}
}

// TestClientSlowHSM: an HSM that does not answer within the timeout is failed over
// (within the command's deadline, here above the timeout); its late answer is
// dropped without harm; alone, it makes the command fail with hsm.ErrUnavailable
// after the timeout, not hang.
func TestClientSlowHSM(t *testing.T) {
	release := make(chan struct{})
	slow, _ := serve(t, payshield.ServerOptions{BeforeCommand: func(ctx context.Context, code string) {
		if code == "M6" {
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
	}})
	defer close(release)
	fast, _ := serve(t, payshield.ServerOptions{})
	e := newEnv(t, payshield.ClientOptions{Addrs: []string{slow, fast}, Timeout: 200 * time.Millisecond, CommandDeadline: time.Second})
	tak := hsm.MACRequest{Key: hsm.KeyRef{ID: "T0000002.TAK"}, Data: []byte("data")}
	want, _ := e.sw.GenerateMAC(e.ctx, tak)
	got, err := e.client.GenerateMAC(e.ctx, tak)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("slow first HSM: %X, %v", got, err)
	}
	alone := newEnv(t, payshield.ClientOptions{Addrs: []string{slow}, Timeout: 200 * time.Millisecond})
	start := time.Now()
	_, err = alone.client.GenerateMAC(alone.ctx, tak)
	if !errors.Is(err, hsm.ErrUnavailable) || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("slow HSM alone: %v, want ErrUnavailable (timeout)", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("slow HSM alone took %s", d)
	}
}

// TestClientPipelines: many commands in flight on one connection each get their own
// answer (matched by header), equal to the software HSM's.
func TestClientPipelines(t *testing.T) {
	addr, _ := serve(t, payshield.ServerOptions{})
	e := newEnv(t, payshield.ClientOptions{Addrs: []string{addr}, Conns: 1})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := hsm.MACRequest{Key: hsm.KeyRef{ID: "T0000002.TAK"}, Data: []byte(strings.Repeat("x", i+1))}
			got, err := e.client.GenerateMAC(e.ctx, req)
			want, _ := e.sw.GenerateMAC(e.ctx, req)
			if err != nil || !bytes.Equal(got, want) {
				errs <- fmt.Errorf("command %d: %X, %v; want %X", i, got, err, want)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestClientFormat4: an ISO format 4 PIN block (AES, bound to the whole PAN) through
// CA between AES keys formed over the wire.
func TestClientFormat4(t *testing.T) {
	addr, _ := serve(t, payshield.ServerOptions{})
	e := newEnv(t, payshield.ClientOptions{Addrs: []string{addr}})
	form := func(id string, typ hsm.KeyType, key []byte) {
		c1 := bytes.Repeat([]byte{0x5A}, len(key))
		c2 := make([]byte, len(key))
		for i := range key {
			c2[i] = key[i] ^ c1[i]
		}
		if _, err := e.client.FormKey(e.ctx, hsm.FormKeyRequest{KeySpec: hsm.KeySpec{ID: id, Type: typ, Algorithm: hsm.AES128}, Components: [][]byte{c1, c2}}); err != nil {
			t.Fatalf("FK %s: %v", id, err)
		}
	}
	tpk, zpk := bytes.Repeat([]byte{0x11}, 16), bytes.Repeat([]byte{0x22}, 16)
	form("AES.TPK", hsm.TPK, tpk)
	form("AES.ZPK", hsm.ZPK, zpk)
	pan := "4761739001010267"
	tc, _ := aes.NewCipher(tpk)
	block, err := pinblock.Encrypt(tc, pinblock.Format4, []byte("4321"), pan, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.client.TranslatePIN(e.ctx, hsm.TranslatePINRequest{Source: hsm.KeyRef{ID: "AES.TPK"}, SourceFormat: pinblock.Format4, PINBlock: block,
		Dest: hsm.KeyRef{ID: "AES.ZPK"}, DestFormat: pinblock.Format4, PAN: pan})
	if err != nil {
		t.Fatalf("CA format 4: %v", err)
	}
	zc, _ := aes.NewCipher(zpk)
	pin, err := pinblock.AppendDecrypt(nil, zc, pinblock.Format4, out, pan)
	if err != nil || string(pin) != "4321" {
		t.Fatalf("format 4 block under the ZPK holds %q, %v", pin, err)
	}
}

// TestClientDUKPTReplayIsNoPINOracle: a replayed KSN is refused before G0 is sent,
// whatever the PAN. When the counter was checked only after the HSM's answer, the
// published Annex A.4 block replayed under PAN 0012345678909 (it still decodes, PIN
// digit 3 read as 7) answered ErrReplay and under 8012345678909 (it no longer
// decodes) the HSM's error 20 (ErrInput, 55 to the terminal): an oracle on the PIN
// digits of a recorded block. No G0 may reach the HSM for a replay.
func TestClientDUKPTReplayIsNoPINOracle(t *testing.T) {
	addr, _ := serve(t, payshield.ServerOptions{})
	m, err := payshield.NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, payshield.ClientOptions{Addrs: []string{addr}, Metrics: m})
	tr := func(pan string) error {
		_, err := e.client.TranslatePIN(e.ctx, hsm.TranslatePINRequest{KSN: "FFFF9876543210E00001", SourceFormat: pinblock.Format0,
			PINBlock: unhex("1B9C1845EB993A7A"), Dest: hsm.KeyRef{ID: keys.DemoIssuer + ".ZPK"}, DestFormat: pinblock.Format0, PAN: pan})
		return err
	}
	if err := tr("4012345678909"); err != nil {
		t.Fatalf("G0: %v", err)
	}
	for _, pan := range []string{"4012345678909", "0012345678909", "8012345678909"} {
		if err := tr(pan); !errors.Is(err, hsm.ErrReplay) {
			t.Errorf("replay under PAN %s: err = %v, want ErrReplay", pan, err)
		}
	}
	if n := testutil.ToFloat64(m.Errors.WithLabelValues("G0", payshield.CodePINBlockInvalid)); n != 0 {
		t.Errorf("%v replays reached the HSM and failed to decode there", n)
	}
}

// TestClientRefusesSourcePAN: a PIN block formed under another PAN field (the cup
// dialect's "without PAN", all zeros) cannot be re-bound by CA, which takes one
// account number. The client said nothing of SourcePAN and sent CA with the card's
// PAN: the HSM decoded the block under the wrong PAN and answered 20, which the cup
// adapter turns into 55 (incorrect PIN) for the cardholder. It is refused as not a
// payShield command, before anything is sent.
func TestClientRefusesSourcePAN(t *testing.T) {
	addr, _ := serve(t, payshield.ServerOptions{})
	m, err := payshield.NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, payshield.ClientOptions{Addrs: []string{addr}, Metrics: m})
	// PIN 1234, format 0 with the all-zero PAN field, under the demo TPK.
	blk := tdesECB(t, demoHex("T0000001.TPK"), unhex("041234FFFFFFFFFF"), false)
	_, err = e.client.TranslatePIN(e.ctx, hsm.TranslatePINRequest{Source: hsm.KeyRef{ID: "T0000001.TPK"}, SourceFormat: pinblock.Format0, PINBlock: blk,
		SourcePAN: "0000000000000", Dest: hsm.KeyRef{ID: "T0000001.TPK"}, DestFormat: pinblock.Format0, PAN: "4012345678909"})
	if !errors.Is(err, hsm.ErrPolicy) || errors.Is(err, hsm.ErrInput) {
		t.Fatalf("translate with SourcePAN: %v, want ErrPolicy (not ErrInput: the PIN is not wrong)", err)
	}
	if n := testutil.ToFloat64(m.Errors.WithLabelValues("CA", payshield.CodePINBlockInvalid)); n != 0 {
		t.Fatalf("CA sent and refused by the HSM %v time(s)", n)
	}
	// SourcePAN equal to PAN is the usual translation.
	if _, err := e.client.TranslatePIN(e.ctx, hsm.TranslatePINRequest{Source: hsm.KeyRef{ID: "T0000001.TPK"}, SourceFormat: pinblock.Format0,
		PINBlock: tdesECB(t, demoHex("T0000001.TPK"), unhex("041274EDCBA9876F"), false), SourcePAN: "4012345678909",
		Dest: hsm.KeyRef{ID: keys.DemoIssuer + ".ZPK"}, DestFormat: pinblock.Format0, PAN: "4012345678909"}); err != nil {
		t.Fatalf("SourcePAN equal to PAN: %v", err)
	}
}
