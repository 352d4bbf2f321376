package bench

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/moov-io/iso8583"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/issuersim"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/server"
	"github.com/switchyard/switchyard/switch/termclient"
)

// TestHookedSoftPOSScenarios runs the fleet's hooked-SoftPOS scenarios against a demo
// switch over TCP, mixed with honest phones' purchases: a forged token (a hooked app
// signing its own verdict under the service's key ID) and a replayed one (captured
// from an honest phone) must each be caught at 99% at least, and the honest phones
// must pass.
func TestHookedSoftPOSScenarios(t *testing.T) {
	c := config.Demo()
	c.DataDir = t.TempDir()
	c.Admin.Addr = "127.0.0.1:0"
	for i := range c.Listeners {
		c.Listeners[i].Addr = "127.0.0.1:0"
	}
	c.RulesDir = "../rules"
	c.Shutdown.DrainTimeout = config.Duration(5 * time.Second)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := server.New(c, zerolog.Nop(), server.WithDemoIssuer(func(addr string, log zerolog.Logger) (server.DemoIssuer, error) {
		d, err := issuersim.StartDemo(issuersim.Config{Addr: addr, Logger: log})
		if err != nil {
			return nil, err
		}
		return d, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f, err := NewFleet(10, 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := registerFleet(ctx, "http://"+s.AdminAddr(), f.plan); err != nil {
		t.Fatal(err)
	}
	cl, err := termclient.Dial(s.ListenerAddr("ascii"), message.DialectASCII, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	send := func(req request) termclient.Result {
		t.Helper()
		m, err := message.Decode(req.body, message.DialectASCII)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := cl.Exchange(ctx, m.TID, m.STAN, req.body)
		if err != nil {
			t.Fatal(err)
		}
		resp := iso8583.NewMessage(message.DialectASCII.Spec())
		if err := resp.Unpack(raw); err != nil {
			t.Fatal(err)
		}
		r, err := termclient.Decode(resp)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	rng := rand.New(rand.NewPCG(7, 19))
	runs := 200
	if testing.Short() {
		runs = 100
	}
	sent := map[string]int{}
	caught := map[string]int{}
	reasons := map[string]map[string]int{}
	honest, honestDeclined := 0, 0
	now := time.Now()
	for sent[LabelForgedToken] < runs || sent[LabelReplayedToken] < runs {
		now = now.Add(10 * time.Millisecond)
		// An honest phone first, whose token a hooked app may capture.
		var req request
		for {
			if req, err = f.benchLegit(rng, now); err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(req.tid, "BS") {
				break
			}
		}
		honest++
		if r := send(req); r.RC != "00" {
			honestDeclined++
			t.Logf("honest SoftPOS declined: %s %s", r.RC, r.Reason)
		}
		for {
			if req, err = f.fraudRequest(rng, now); err != nil {
				t.Fatal(err)
			}
			if req.label == LabelForgedToken || req.label == LabelReplayedToken {
				break
			}
		}
		if sent[req.label] >= runs {
			continue
		}
		sent[req.label]++
		r := send(req)
		if reasons[req.label] == nil {
			reasons[req.label] = map[string]int{}
		}
		reasons[req.label][r.RC+" "+r.Reason]++
		if r.RC != "00" {
			caught[req.label]++
		}
	}
	for _, l := range []string{LabelForgedToken, LabelReplayedToken} {
		rate := float64(caught[l]) / float64(sent[l])
		t.Logf("%-30s caught %d of %d: %v", l, caught[l], sent[l], reasons[l])
		if rate < 0.99 {
			t.Errorf("%s: caught %.1f%%, want at least 99%%", l, 100*rate)
		}
	}
	if fp := float64(honestDeclined) / float64(honest); fp > 0.01 {
		t.Errorf("honest SoftPOS purchases declined: %d of %d", honestDeclined, honest)
	}
}
