package issuer

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moov-io/iso8583"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/syncbuf"
	"github.com/switchyard/switchyard/switch/message"
)

// wrongAnswerSeen is an answer OnWrongAnswer was given: its MTI, RRN and the MTI of
// the request it was taken for.
type wrongAnswerSeen struct{ mti, rrn, request string }

// dialScripted dials a one-connection link to a scripted issuer whose answers go
// after delay, as answers says, and collects what the link reports as answers of the
// wrong MTI, late and unmatched.
func dialScripted(t *testing.T, delay time.Duration, answers func(mti string, f map[int]string) []scriptedAnswer) (l *Link, wrong chan wrongAnswerSeen, late, unmatched chan string) {
	t.Helper()
	iss := startScripted(t, &scriptedIssuer{
		delay: func(mti, _ string) time.Duration {
			if mti == "0800" {
				return 0
			}
			return delay
		},
		answers: answers,
	})
	wrong = make(chan wrongAnswerSeen, 16)
	late, unmatched = make(chan string, 16), make(chan string, 16)
	l, err := Dial(Config{ID: "scripted", Addrs: []string{iss.addr()}, Connections: 1, Timeout: 5 * time.Second,
		OnWrongAnswer: func(m *iso8583.Message, request string) {
			mti, _ := m.GetMTI()
			rrn, _ := m.GetString(37)
			wrong <- wrongAnswerSeen{mti, rrn, request}
		},
		OnLate:      func(m *iso8583.Message) { rrn, _ := m.GetString(37); late <- rrn },
		OnUnmatched: func(m *iso8583.Message) { rrn, _ := m.GetString(37); unmatched <- rrn },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	waitSignedOn(t, l, 5*time.Second)
	return l, wrong, late, unmatched
}

// awaitWrong waits up to 5 s for the link to report an answer of the wrong MTI, and
// checks it is want.
func awaitWrong(t *testing.T, wrong chan wrongAnswerSeen, want wrongAnswerSeen) {
	t.Helper()
	select {
	case got := <-wrong:
		if got != want {
			t.Fatalf("answer of the wrong MTI reported as %+v, want %+v", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the answer %+v was not reported as one of the wrong MTI within 5 s", want)
	}
}

// packedAdvice encodes an advice (or reversal) of MTI mti with the link's next STAN
// and rrn.
func packedAdvice(t *testing.T, l *Link, mti, rrn string) *iso8583.Message {
	t.Helper()
	m := iso8583.NewMessage(message.SpecASCII)
	m.MTI(mti)
	for id, v := range map[int]string{2: "4761739001010119", 3: "000000", 4: "000000001000",
		7: message.FormatDE7(time.Now()), 11: l.NextSTAN(), 37: rrn, 41: "T0000001", 42: "000000000000001"} {
		if err := m.Field(id, v); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// TestAnswerOfWrongMTINotTaken: an issuer answer carries the STAN and RRN of the
// request it answers, and an MTI that must be the answer to the request's: a 0410
// (the answer to a reversal) with a purchase's DE 11 and DE 37 is not the purchase's
// authorization. It was: any x1x or x3x answer with the right STAN and RRN was taken,
// so a 0410/00 approved a 0200. Now such an answer is reported to OnWrongAnswer with
// both MTIs and the request waits on: for its right answer, which it takes when it
// comes, or until it times out (as after an answer that cannot be read), and a late
// answer of the wrong MTI is not its late answer either. The answers to advices and
// reversals are checked the same way (a 0410 does not acknowledge a 0420), and a
// repeat is answered by its response class, with the repeat digit or without (0430 or
// 0431 to a 0421).
func TestAnswerOfWrongMTINotTaken(t *testing.T) {
	script := map[string][]scriptedAnswer{
		"000000950001": {{mti: "0410", rc: "00"}},                          // a purchase answered only as a reversal
		"000000950002": {{mti: "0410", rc: "05"}, {mti: "0210", rc: "00"}}, // then its own answer
		"000000950003": {{mti: "0410", rc: "00"}},                          // a reversal advice answered as a reversal request
		"000000950004": {{mti: "0430", rc: "00"}},                          // a repeat answered by its response class
		"000000950005": {{mti: "0431", rc: "00"}},                          // ... with the repeat digit echoed
		"000000950006": {{mti: "0120", rc: "00"}},                          // an 0100 answered with an advice (not x1x/x3x)
	}
	l, wrong, late, unmatched := dialScripted(t, 0, func(_ string, f map[int]string) []scriptedAnswer { return script[f[37]] })
	ctx := context.Background()

	rrn := "000000950001"
	stan, body := packedPurchase(t, l, rrn)
	a, err := l.SendPacked(ctx, "0200", stan, rrn, body, 500*time.Millisecond)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("a purchase answered only 0410/00: rc %q, err %v; want ErrTimeout (the 0410 is not its answer)", a.RC, err)
	}
	awaitWrong(t, wrong, wrongAnswerSeen{"0410", rrn, "0200"})

	rrn = "000000950002"
	stan, body = packedPurchase(t, l, rrn)
	a, err = l.SendPacked(ctx, "0200", stan, rrn, body, 5*time.Second)
	if err != nil || a.RC != message.RCApproved || a.AuthCode != "A12345" {
		t.Fatalf("a purchase answered 0410/05 then 0210/00: rc %q auth %q, err %v; want the 0210's approval", a.RC, a.AuthCode, err)
	}
	awaitWrong(t, wrong, wrongAnswerSeen{"0410", rrn, "0200"})

	rrn = "000000950003"
	if m, err := l.Send(ctx, packedAdvice(t, l, "0420", rrn), 500*time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Fatalf("a 0420 answered 0410: %v, %v; want ErrTimeout", m, err)
	}
	awaitWrong(t, wrong, wrongAnswerSeen{"0410", rrn, "0420"})

	for _, rrn := range []string{"000000950004", "000000950005"} {
		m, err := l.Send(ctx, packedAdvice(t, l, "0421", rrn), 5*time.Second)
		if err != nil {
			t.Fatalf("a 0421 answered %s: %v", script[rrn][0].mti, err)
		}
		if got, _ := m.GetMTI(); got != script[rrn][0].mti {
			t.Fatalf("a 0421's answer: MTI %s, want %s", got, script[rrn][0].mti)
		}
	}

	// An answer of another class is not taken for the request's either (and is
	// not an answer the link matches at all).
	rrn = "000000950006"
	m := packedAdvice(t, l, "0100", rrn)
	if got, err := l.Send(ctx, m, 300*time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Fatalf("an 0100 answered 0120: %v, %v; want ErrTimeout", got, err)
	}

	select {
	case got := <-wrong:
		t.Errorf("another answer reported of the wrong MTI: %+v", got)
	case rrn := <-late:
		t.Errorf("answer for %s reported late", rrn)
	case rrn := <-unmatched:
		t.Errorf("answer for %s reported unmatched", rrn)
	default:
	}
}

// TestLateAnswerOfWrongMTINotLate: a purchase times out; the issuer's answer of the
// wrong MTI that comes after is reported as such, not as the purchase's late answer,
// and the purchase's own answer after it is its late answer. (The link hands answers
// nobody waits for to their handler each in its own goroutine: the issuer writes the
// second answer once the first was reported.)
func TestLateAnswerOfWrongMTINotLate(t *testing.T) {
	second := make(chan struct{})
	l, wrong, late, unmatched := dialScripted(t, 300*time.Millisecond, func(mti string, _ map[int]string) []scriptedAnswer {
		if mti != "0200" {
			return nil // the sign-on's answer
		}
		return []scriptedAnswer{{mti: "0410", rc: "00"}, {mti: "0210", rc: "00", gate: second}}
	})
	rrn := "000000960001"
	stan, body := packedPurchase(t, l, rrn)
	if a, err := l.SendPacked(context.Background(), "0200", stan, rrn, body, 50*time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Fatalf("a purchase answered after 300 ms with a 50 ms timeout: rc %q, err %v", a.RC, err)
	}
	awaitWrong(t, wrong, wrongAnswerSeen{"0410", rrn, "0200"})
	close(second)
	select {
	case got := <-late:
		if got != rrn {
			t.Fatalf("late answer for %s, want %s", got, rrn)
		}
	case got := <-unmatched:
		t.Fatalf("the purchase's own late answer (%s) was unmatched: the wrong one was taken as its late answer", got)
	case <-time.After(5 * time.Second):
		t.Fatal("the purchase's own late answer was not reported late within 5 s")
	}
}

// TestAnswersMTI: the MTIs that answer each request the link sends, and that the
// check allocates nothing (it runs on every authorization's answer).
func TestAnswersMTI(t *testing.T) {
	for req, want := range map[string][]string{
		"0100": {"0110"}, "0200": {"0210"}, "0220": {"0230"}, "0221": {"0230", "0231"},
		"0400": {"0410"}, "0401": {"0410", "0411"}, "0420": {"0430"}, "0421": {"0430", "0431"}, "0800": {"0810"},
	} {
		for _, mti := range []string{"0110", "0210", "0230", "0231", "0410", "0411", "0430", "0431", "0810", "0200", "0211", "1210", "021"} {
			if got := answers([4]byte([]byte(req)), mti); got != contains(want, mti) {
				t.Errorf("answers(%s, %s) = %v", req, mti, got)
			}
		}
	}
	req, mti := [4]byte([]byte("0200")), []byte("0210")
	if n := testing.AllocsPerRun(100, func() { _ = answers(req, mti) }); n != 0 {
		t.Errorf("the MTI check allocates %.0f times", n)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestWrongMTILogLimited: an issuer can send answers of the wrong MTI at will; the
// link logged a line for each, so a hostile or broken issuer could flood the log.
// Now, without a handler, the link logs at most one such line a second
// (LogEvery, on Config.Now), the next saying how many it left out: 50 answers of
// the wrong MTI to a purchase (read, and refused, before the purchase's own answer
// that ends its wait) make one line; a second later the next makes the second line,
// with "suppressed":49. The purchases still take their right answers.
func TestWrongMTILogLimited(t *testing.T) {
	flood := make([]scriptedAnswer, 0, 51)
	for range 50 {
		flood = append(flood, scriptedAnswer{mti: "0410", rc: "00"})
	}
	flood = append(flood, scriptedAnswer{mti: "0210", rc: "00"})
	iss := startScripted(t, &scriptedIssuer{
		delay: func(string, string) time.Duration { return 0 },
		answers: func(mti string, f map[int]string) []scriptedAnswer {
			switch f[37] {
			case "000000970001":
				return flood
			case "000000970002":
				return []scriptedAnswer{{mti: "0410", rc: "00"}, {mti: "0210", rc: "00"}}
			}
			return nil
		},
	})
	var logs syncbuf.Buffer
	var clock atomic.Int64
	clock.Store(time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC).UnixNano())
	l, err := Dial(Config{ID: "scripted", Addrs: []string{iss.addr()}, Connections: 1, Timeout: 5 * time.Second,
		Logger: zerolog.New(&logs), Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	waitSignedOn(t, l, 5*time.Second)
	purchase := func(rrn string) {
		t.Helper()
		stan, body := packedPurchase(t, l, rrn)
		if a, err := l.SendPacked(context.Background(), "0200", stan, rrn, body, 5*time.Second); err != nil || a.RC != message.RCApproved {
			t.Fatalf("purchase %s: rc %q, %v; want its 0210's approval", rrn, a.RC, err)
		}
	}
	lines := func() []string {
		var out []string
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, "wrong message type") {
				out = append(out, line)
			}
		}
		return out
	}
	purchase("000000970001")
	if got := lines(); len(got) != 1 || !strings.Contains(got[0], `"suppressed":0`) {
		t.Fatalf("50 answers of the wrong MTI within a second logged %d lines, want 1:\n%s", len(got), strings.Join(got, "\n"))
	}
	clock.Add(int64(LogEvery))
	purchase("000000970002")
	if got := lines(); len(got) != 2 || !strings.Contains(got[1], `"suppressed":49`) || !strings.Contains(got[1], `"rrn":"000000970002"`) {
		t.Fatalf("the next answer of the wrong MTI a second later: lines\n%s\nwant a second one with \"suppressed\":49", strings.Join(got, "\n"))
	}
}
