package payshield_test

import (
	"bufio"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/payshield"
	"github.com/switchyard/switchyard/hsm/pinblock"
	"github.com/switchyard/switchyard/keys"
)

// scriptedHSM is a payShield of the test's on loopback: it answers every request
// with the frame answer makes of it (nil: no answer, the connection closed), and
// stops when the test ends. It returns its address.
func scriptedHSM(t *testing.T, answer func(req payshield.Request) []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					msg, err := payshield.ReadFrame(r, nil)
					if err != nil {
						return
					}
					req, err := payshield.ParseRequest(msg, payshield.DefaultHeaderLength)
					if err != nil {
						return
					}
					out := answer(req)
					if out == nil {
						return
					}
					if _, err := c.Write(out); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// erringHSM answers every command with the answer code it calls for and the error
// code in code, as a payShield reporting an error does.
func erringHSM(t *testing.T, code *atomic.Value) string {
	t.Helper()
	return scriptedHSM(t, func(req payshield.Request) []byte {
		rc, _ := payshield.ResponseCode(req.Code)
		// Built by hand, not with AppendResponse: the answer is the HSM's.
		ans := req.Header + rc + code.Load().(string)
		return append([]byte{byte(len(ans) >> 8), byte(len(ans))}, ans...)
	})
}

// TestClientPayShieldErrorCodes: the error codes a payShield with a key-block LMK
// answers for a key outside its usage (A6, A7, A8, 28, 29), a token that does not
// authenticate (A4, 83, 84) and a PIN of the wrong length or a bad account number
// (24, 22) mean what 04, 10 and 20 mean; 90, a payShield's data parity error in the
// request, is a DUKPT replay only as hsm serve's answer to G0. The client took an
// answer with a letter in its error code (A4, A6, A7, A8) for a broken frame: it closed
// the connection, failed the command as unavailable (96) and marked the HSM down. It
// wrapped no hsm error for 22, 24, 28, 29, 83 and 84, and ErrReplay for 90 to any
// command.
func TestClientPayShieldErrorCodes(t *testing.T) {
	var code atomic.Value
	code.Store("00")
	good, _ := serve(t, payshield.ServerOptions{})
	e := newEnv(t, payshield.ClientOptions{Addrs: []string{good}}) // the demo keys, formed
	c, err := payshield.NewClient(payshield.ClientOptions{Addrs: []string{erringHSM(t, &code)}, Store: e.store, HealthEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	const pan = "4012345678909"
	mac := func() error {
		_, err := c.GenerateMAC(e.ctx, hsm.MACRequest{Key: hsm.KeyRef{ID: "T0000002.TAK"}, Data: []byte("data")})
		return err
	}
	ca := func() error {
		_, err := c.TranslatePIN(e.ctx, hsm.TranslatePINRequest{Source: hsm.KeyRef{ID: "T0000001.TPK"}, SourceFormat: pinblock.Format0,
			PINBlock: make([]byte, 8), Dest: hsm.KeyRef{ID: keys.DemoIssuer + ".ZPK"}, DestFormat: pinblock.Format0, PAN: pan})
		return err
	}
	var ksn atomic.Int32
	g0 := func() error {
		// A new counter each time: the client's own replay check lets it through.
		n := ksn.Add(1)
		_, err := c.TranslatePIN(e.ctx, hsm.TranslatePINRequest{KSN: "FFFF9876543210E0000" + string(rune('0'+n)), SourceFormat: pinblock.Format0,
			PINBlock: make([]byte, 8), Dest: hsm.KeyRef{ID: keys.DemoIssuer + ".ZPK"}, DestFormat: pinblock.Format0, PAN: pan})
		return err
	}
	for _, tc := range []struct {
		name, code string
		do         func() error
		want       error
	}{
		{"M6 A6", "A6", mac, hsm.ErrKeyUsage},
		{"M6 A7", "A7", mac, hsm.ErrKeyUsage},
		{"M6 A8", "A8", mac, hsm.ErrKeyUsage},
		{"M6 28", "28", mac, hsm.ErrKeyUsage},
		{"M6 29", "29", mac, hsm.ErrKeyUsage},
		{"M6 A4", "A4", mac, hsm.ErrKeyNotUsable},
		{"M6 83", "83", mac, hsm.ErrKeyNotUsable},
		{"M6 84", "84", mac, hsm.ErrKeyNotUsable},
		{"CA 24", "24", ca, hsm.ErrInput},
		{"CA 22", "22", ca, hsm.ErrInput},
		{"G0 90 (hsm serve's replay)", "90", g0, hsm.ErrReplay},
	} {
		code.Store(tc.code)
		err := tc.do()
		var pe *payshield.Error
		if !errors.Is(err, tc.want) || !errors.As(err, &pe) || pe.Code != tc.code {
			t.Errorf("%s: %v, want %v from error code %s", tc.name, err, tc.want, tc.code)
		}
		// An answer, whatever its error code, is the HSM up.
		if err := c.Down(); err != nil {
			t.Errorf("%s: after the answer: %v", tc.name, err)
		}
	}
	for name, do := range map[string]func() error{"M6": mac, "CA": ca} {
		code.Store("90")
		err := do()
		var pe *payshield.Error
		if errors.Is(err, hsm.ErrReplay) || !errors.As(err, &pe) || pe.Code != "90" {
			t.Errorf("%s answered 90 (a payShield's data parity error in the request): %v, want error 90 and not ErrReplay", name, err)
		}
	}
}
