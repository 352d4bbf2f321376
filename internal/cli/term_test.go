package cli

import (
	"bufio"
	"math/bits"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moov-io/iso8583"

	"github.com/switchyard/switchyard/hsm/dukpt"
	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
)

// TestDemoKSNKeepsTheDemoPrefix: every clock gives a KSN under the demo BDK's prefix
// FFFF9876543210E with a counter of at most 10 one-bits. The old counter took 21 bits
// and turned the prefix into FFFF9876543210F for half of each 24-day cycle, when the
// README's SoftPOS PIN purchase was refused 63.
func TestDemoKSNKeepsTheDemoPrefix(t *testing.T) {
	base := time.Unix(1_700_000_000, 0)
	for _, d := range []time.Duration{0, time.Second, 0xFFE00 * time.Second, 0xFFFB9 * time.Second, 0xFFFFF * time.Second, 0x100000 * time.Second,
		0x1B4823 * time.Second, 0x1FFFFF * time.Second, 1000 * 24 * time.Hour} {
		ksn := demoKSN(base.Add(d))
		if _, err := dukpt.ParseKSN(ksn); err != nil {
			t.Errorf("%v after the base: %v", d, err)
		}
		if len(ksn) != 20 || !strings.HasPrefix(ksn, "FFFF9876543210E") {
			t.Errorf("%v after the base: KSN %s is not under the demo prefix FFFF9876543210E", d, ksn)
			continue
		}
		c, err := strconv.ParseUint(ksn[14:], 16, 32)
		if err != nil || bits.OnesCount64(c&0x1FFFFF) > 10 {
			t.Errorf("KSN %s: counter with more than 10 one-bits (%v)", ksn, err)
		}
	}
}

// TestTermAnswerEscapesControls: an answer whose authorization code (DE 38, an
// issuer's) carries an escape sequence prints it as a visible escape on the
// result line; --json keeps the bytes (JSON escapes them). Before, term wrote
// the bytes, and the operator's terminal acted on them. The switch is a loopback
// listener that answers every request with RC 00 and that code.
func TestTermAnswerEscapesControls(t *testing.T) {
	addr := loopbackSwitch(t, "0210", func(_, resp *iso8583.Message) { _ = resp.Field(38, "\x1b[2J12") })
	args := []string{"term", "purchase", "--addr", addr, "--pan", "4761739001010119", "--amount", "1000"}
	code, out, errs := runCLI(t, nil, args...)
	if code != 0 || strings.ContainsAny(out, "\x1b") || !strings.Contains(out, `AUTH=\x1b[2J12 `) {
		t.Fatalf("term: exit %d\n%q\n%s", code, out, errs)
	}
	if _, out, _ := runCLI(t, nil, append(args, "--json")...); !strings.Contains(out, `\u001b[2J12`) {
		t.Fatalf("term --json:\n%s", out)
	}
}

// TestTermClosedUnanswered: a switch that closes the connection without answering
// (its listener refused it: a PROXY header required, a limit, a malformed message)
// makes term say so, name the address and where to look, exit 1; it printed
// "terminal connection closed" alone. The switch is a loopback listener that reads
// the request and closes.
func TestTermClosedUnanswered(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = frontend.ReadFrame(bufio.NewReader(nc), nil, 0xFFFF)
			nc.Close()
		}
	}()
	code, out, errs := runCLI(t, nil, "term", "purchase", "--addr", ln.Addr().String(), "--pan", "4761739001010119", "--amount", "1000", "--timeout", "10s")
	if code != 1 || out != "" || !strings.Contains(errs, ln.Addr().String()+" closed the connection without an answer") || !strings.Contains(errs, "PROXY protocol header") {
		t.Fatalf("term: exit %d\n%s%s", code, out, errs)
	}
}

// TestTermResend: `term purchase --resend ORIGINAL` sends the request whose answer
// printed ORIGINAL= again byte for byte (the same STAN, DE 7 and DE 12/13), as a
// terminal that got no answer does, so that an operator can try a resend on another
// node of a cluster; before, term always took DE 7 from the clock and a resend from
// the shell was a new request. A --stan that differs, an original of another message
// type and a malformed one are refused. The switch is a loopback listener that
// records each request and answers RC 00.
func TestTermResend(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	frames := make(chan []byte, 4)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				body, err := frontend.ReadFrame(bufio.NewReader(nc), nil, 0xFFFF)
				if err != nil {
					return
				}
				frames <- append([]byte(nil), body...)
				req := iso8583.NewMessage(message.SpecASCII)
				if err := req.Unpack(body); err != nil {
					return
				}
				resp := iso8583.NewMessage(message.SpecASCII)
				resp.MTI("0210")
				for _, id := range []int{7, 11, 41} {
					v, _ := req.GetString(id)
					_ = resp.Field(id, v)
				}
				_ = resp.Field(39, "00")
				b, err := message.Pack(resp, nil)
				if err != nil {
					return
				}
				_, _ = nc.Write(append([]byte{byte(len(b) >> 8), byte(len(b))}, b...))
			}()
		}
	}()
	args := []string{"term", "purchase", "--addr", ln.Addr().String(), "--pan", "4761739001010119", "--amount", "1000", "--timeout", "10s"}
	code, out, errs := runCLI(t, nil, args...)
	first := <-frames
	i := strings.Index(out, "ORIGINAL=")
	if code != 0 || i < 0 || len(out) < i+29 {
		t.Fatalf("term purchase: exit %d\n%s\n%s", code, out, errs)
	}
	original := out[i+9 : i+29]
	code, out, errs = runCLI(t, nil, append(args, "--resend", original)...)
	if code != 0 || !strings.Contains(out, "ORIGINAL="+original) {
		t.Fatalf("term purchase --resend %s: exit %d\n%s\n%s", original, code, out, errs)
	}
	if again := <-frames; string(again) != string(first) {
		t.Fatalf("the resend is not the first request:\n%q\n%q", first, again)
	}
	for _, c := range []struct {
		extra []string
		want  string
	}{
		{[]string{"--resend", original, "--stan", "999999"}, "differs from the original's STAN"},
		{[]string{"--resend", "0100" + original[4:]}, "is a 0100's, and term purchase sends 0200"},
		{[]string{"--resend", original[:19]}, "want the 20 digits"},
		{[]string{"--resend", original[:10] + "1399999999"}, "not a valid MMDDhhmmss"},
	} {
		code, out, errs := runCLI(t, nil, append(args, c.extra...)...)
		if code != 2 || out != "" || !strings.Contains(errs, c.want) { // a bad command line
			t.Errorf("term purchase %v: exit %d, want 2 and %q\n%s%s", c.extra, code, c.want, out, errs)
		}
	}
	if code, _, errs := runCLI(t, nil, "term", "void", "--addr", ln.Addr().String(), "--pan", "4761739001010119", "--rrn", "100000000001", "--resend", original); code != 2 || !strings.Contains(errs, "term void does not resend") {
		t.Errorf("term void --resend: exit %d\n%s", code, errs)
	}
}

// TestTermAmountInItsCurrency: `term purchase --amount` with a point is read in
// --currency's decimals, exactly, and sent in DE 4 with --currency in DE 49; an
// amount with more decimals than the currency has, a negative one, or one that does
// not fit DE 4 exits non-zero with an error naming the input, and sends nothing. Before, a
// point made the amount a float times 100 whatever the currency (1000.5 yen went
// out as 100050), term had no --currency, and an amount past 12 digits was only
// caught by the message packer. The switch is a loopback listener that records
// DE 4 and DE 49 of each request and answers 00.
func TestTermAmountInItsCurrency(t *testing.T) {
	got := make(chan [2]string, 8)
	addr := loopbackSwitch(t, "0210", func(req, _ *iso8583.Message) {
		de4, _ := req.GetString(4)
		de49, _ := req.GetString(49)
		got <- [2]string{de4, de49}
	})
	base := []string{"term", "purchase", "--addr", addr, "--pan", "4761739001010119", "--timeout", "10s"}
	for _, c := range []struct {
		args     []string
		de4, cur string
	}{
		{[]string{"--amount", "10.00"}, "000000001000", "156"},
		{[]string{"--amount", "0.29"}, "000000000029", "156"},
		{[]string{"--amount", "1000.", "--currency", "392"}, "000000001000", "392"},
		{[]string{"--amount", "1.500", "--currency", "414"}, "000000001500", "414"},
		{[]string{"--amount", "9999999999.99"}, "999999999999", "156"},
	} {
		code, out, errs := runCLI(t, nil, append(base, c.args...)...)
		if code != 0 {
			t.Fatalf("term %v: exit %d\n%s%s", c.args, code, out, errs)
		}
		if g := <-got; g != [2]string{c.de4, c.cur} {
			t.Errorf("term %v: sent DE 4 %s DE 49 %s, want %s %s", c.args, g[0], g[1], c.de4, c.cur)
		}
	}
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"--amount", "1000.5", "--currency", "392"}, `amount "1000.5": 1 decimals, currency 392 has 0`},
		{[]string{"--amount", "10.005"}, `amount "10.005": 3 decimals, currency 156 has 2`},
		{[]string{"--amount", "-5.00"}, `amount "-5.00": negative`},
		{[]string{"--amount", "-500"}, `amount "-500": negative`},
		{[]string{"--amount", "10000000000.00"}, `amount "10000000000.00": 1000000000000 minor units of currency 156, more than DE 4's 12 digits`},
		{[]string{"--amount", "1000000000000"}, `amount "1000000000000": more than DE 4's 12 digits`},
		{[]string{"--amount", "1.00", "--currency", "CNY"}, `currency "CNY": not an ISO 4217 numeric code`},
		{[]string{"--amount", "1.00", "--currency", "392", "--dialect", "cup"}, `amount "1.00": 2 decimals, currency 392 has 0`},
	} {
		code, out, errs := runCLI(t, nil, append(base, c.args...)...)
		if code == 0 || !strings.Contains(errs, c.says) {
			t.Errorf("term %v: exit %d, want non-zero saying %q\n%s%s", c.args, code, c.says, out, errs)
		}
	}
	select {
	case g := <-got:
		t.Errorf("a refused amount was sent: DE 4 %s DE 49 %s", g[0], g[1])
	default:
	}
}

// loopbackSwitch is a switch for term's tests: a loopback listener that answers each
// request (ascii dialect) with MTI mti, its DE 7, 11 and 41 and DE 39 00, after
// handing both to answer (which records the request, or changes the answer). It
// returns the listener's address.
func loopbackSwitch(t *testing.T, mti string, answer func(req, resp *iso8583.Message)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				r := bufio.NewReader(nc)
				for {
					body, err := frontend.ReadFrame(r, nil, 0xFFFF)
					if err != nil {
						return
					}
					req := iso8583.NewMessage(message.SpecASCII)
					if err := req.Unpack(body); err != nil {
						return
					}
					resp := iso8583.NewMessage(message.SpecASCII)
					resp.MTI(mti)
					for _, id := range []int{7, 11, 41} {
						v, _ := req.GetString(id)
						_ = resp.Field(id, v)
					}
					_ = resp.Field(39, "00")
					answer(req, resp)
					b, err := message.Pack(resp, nil)
					if err != nil {
						return
					}
					_, _ = nc.Write(append([]byte{byte(len(b) >> 8), byte(len(b))}, b...))
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestTermPINUsage: a malformed --pin (not 4 to 12 digits), or one for a terminal
// with no demo PIN key, is a usage error: exit 2, as every other bad flag of term,
// with a message that says what is wrong and does not repeat the PIN. It exited 1,
// and for a TPK terminal after its working key change had been sent; for cup after
// the sign-in. Nothing listens at the address: nothing must be needed from it.
func TestTermPINUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"not digits TPK", []string{"--tid", "T0000001", "--pin", "12x4"}, "term: --pin: PIN has a non-digit"},
		{"too short DUKPT", []string{"--tid", "T0000002", "--pin", "987"}, "term: --pin: PIN length out of range (want 4-12 digits)"},
		{"too long cup", []string{"--dialect", "cup", "--pin", "9876543210987"}, "term: --pin: PIN length out of range (want 4-12 digits)"},
		{"no PIN key", []string{"--tid", "T0000099", "--pin", "5678"}, "term: --pin: no demo PIN key for terminal T0000099"},
	} {
		args := append([]string{"term", "purchase", "--addr", "127.0.0.1:1", "--pan", "4761739001010119", "--amount", "1000", "--timeout", "2s"}, tc.args...)
		code, out, errs := runCLI(t, nil, args...)
		pin := tc.args[len(tc.args)-1]
		if code != 2 || out != "" || !strings.Contains(errs, tc.want) || strings.Contains(errs, pin) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 2 and %q, without the PIN", tc.name, code, out, errs, tc.want)
		}
	}
}
