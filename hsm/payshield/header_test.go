package payshield_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/payshield"
)

// TestClientAnswerOfUnknownHeader: an HSM answering with a header no command was
// given (its header length not the client's, or an answer sent twice) fails the
// command at once, with an error that says so, and the connection is closed (nothing
// on it can be matched any more). The client dropped such answers: each command
// waited out its timeout, reported as a timeout, on a connection kept open.
func TestClientAnswerOfUnknownHeader(t *testing.T) {
	good, _ := serve(t, payshield.ServerOptions{})
	e := newEnv(t, payshield.ClientOptions{Addrs: []string{good}}) // the demo keys
	addr := scriptedHSM(t, func(req payshield.Request) []byte {
		rc, _ := payshield.ResponseCode(req.Code)
		// The header shifted by one character, as an HSM with a header
		// length of 5 reads and echoes it.
		out, _ := payshield.AppendResponse(nil, payshield.Response{Header: req.Header[1:] + req.Code[:1], Code: rc, ErrCode: "00"})
		return out
	})
	const timeout = 3 * time.Second
	c, err := payshield.NewClient(payshield.ClientOptions{Addrs: []string{addr}, Store: e.store, Timeout: timeout, CommandDeadline: timeout, HealthEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	start := time.Now()
	_, err = c.GenerateMAC(e.ctx, hsm.MACRequest{Key: hsm.KeyRef{ID: "T0000002.TAK"}, Data: []byte("data")})
	took := time.Since(start)
	if !errors.Is(err, hsm.ErrUnavailable) || !strings.Contains(err.Error(), "header") {
		t.Errorf("M6 answered under another header: %v, want ErrUnavailable naming the header", err)
	}
	if took > timeout/3 {
		t.Errorf("M6 answered under another header failed after %s, want at once (timeout %s)", took, timeout)
	}
}
