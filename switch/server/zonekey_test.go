package server

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/switch/issuersim"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/termclient"
)

// gatedIssuer is the demo issuer (its cards, PIN check and zone keys) whose key
// changes go through a function the test sets: it sees the switch's state while
// the switch waits for the answer, and takes or refuses the key.
type gatedIssuer struct {
	*issuersim.Sim
	sec *issuersim.Security

	mu   sync.Mutex
	gate func(wp string) error
}

func (g *gatedIssuer) keyChange(wp string) error {
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	return gate(wp)
}

func (g *gatedIssuer) setGate(f func(wp string) error) {
	g.mu.Lock()
	g.gate = f
	g.mu.Unlock()
}

func (g *gatedIssuer) Close() error {
	err := g.Sim.Close()
	if cerr := g.sec.Close(); err == nil {
		err = cerr
	}
	return err
}

// A zone key change makes the new ZPK version current only once the issuer
// acknowledged it: while the issuer is asked, and after it refused or did not
// answer, PINs are translated under the version it has, and are approved. Until
// 8 December 2026 the new version was current from its generation: a refused or
// unanswered change left every PIN to that issuer declined 55.
func TestZoneKeyChangeActivatesOnAck(t *testing.T) {
	g := &gatedIssuer{}
	starter := WithDemoIssuer(func(addr string, log zerolog.Logger) (DemoIssuer, error) {
		sec, err := issuersim.NewDemoSecurity()
		if err != nil {
			return nil, err
		}
		sim, err := issuersim.Start(issuersim.Config{Addr: addr, Cards: issuersim.DemoCards, VerifyPIN: sec.VerifyPIN,
			KeyChange: g.keyChange, LedgerLimit: issuersim.DemoLedgerLimit})
		if err != nil {
			sec.Close()
			return nil, err
		}
		g.Sim, g.sec = sim, sec
		return g, nil
	})
	s, err := New(demoConfig(t, t.TempDir()), zerolog.Nop(), starter)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	ctx := hsm.WithActor(context.Background(), "test")
	current := func() int {
		t.Helper()
		rec, err := s.Keys.Key(ctx, hsm.KeyRef{ID: "demo.ZPK"})
		if err != nil {
			t.Fatalf("current demo.ZPK: %v", err)
		}
		return rec.Version
	}
	c := dial(t, s, "ascii", message.DialectASCII)
	amount := int64(1000)
	pinPurchase := func(when string) {
		t.Helper()
		amount += 10
		tx := purchase("4761739001010119", amount)
		if tx.PINBlock, err = termclient.PINBlockTPK("C1D0F8FB4958670DBA40AB1F3752EF0D", "1234", tx.PAN); err != nil {
			t.Fatal(err)
		}
		if r := send(t, c, message.DialectASCII, tx); r.RC != "00" {
			t.Fatalf("a PIN purchase %s: RC %s %s (want 00: the PIN under the key the issuer has)", when, r.RC, r.Reason)
		}
	}
	pinPurchase("before any key change")
	// seen is the current version the switch had while the issuer was asked.
	var seenMu sync.Mutex
	seen := 0
	watch := func(then func(wp string) error) func(string) error {
		return func(wp string) error {
			seenMu.Lock()
			seen = current()
			seenMu.Unlock()
			return then(wp)
		}
	}
	before := current()

	// Refused: the issuer answers 63.
	g.setGate(watch(func(string) error { return errors.New("refused by the test") }))
	_, err = s.ChangeZoneKey(context.Background(), "demo", "test")
	if err == nil || !strings.Contains(err.Error(), "refused the new key") || !strings.Contains(err.Error(), "PINs stay under the current version") {
		t.Errorf("a refused key change: err %v, want one saying the issuer refused and PINs stay under the current version", err)
	}
	if seenMu.Lock(); seen != before {
		t.Errorf("while the issuer was asked the switch's current demo.ZPK was v%d, want v%d (the one the issuer has)", seen, before)
	}
	seenMu.Unlock()
	if v := current(); v != before {
		t.Fatalf("after a refused key change the current demo.ZPK is v%d, want v%d", v, before)
	}
	refused := hsm.KeyRef{ID: "demo.ZPK", Version: before + 1}
	if rec, err := s.Keys.Key(ctx, refused); err != nil || rec.Status != hsm.StatusRevoked {
		t.Errorf("the refused version %s: status %q, %v (want revoked)", refused, rec.Status, err)
	}
	pinPurchase("after a refused key change")

	// Unanswered: the issuer's host hangs; the change gives up at its deadline.
	if err := g.StartOutage(issuersim.OutageSilent); err != nil {
		t.Fatal(err)
	}
	tctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err = s.ChangeZoneKey(tctx, "demo", "test")
	cancel()
	if err := g.EndOutage(); err != nil {
		t.Fatal(err)
	}
	if err == nil || !strings.Contains(err.Error(), "did not take the new key") {
		t.Errorf("an unanswered key change: err %v, want one saying the issuer did not take the key", err)
	}
	if v := current(); v != before {
		t.Fatalf("after an unanswered key change the current demo.ZPK is v%d, want v%d", v, before)
	}
	pinPurchase("after an unanswered key change")

	// Taken: the new version is current once the issuer acknowledged it.
	g.setGate(watch(g.sec.KeyChange))
	res, err := s.ChangeZoneKey(context.Background(), "demo", "test")
	if err != nil {
		t.Fatal(err)
	}
	if seenMu.Lock(); seen != before {
		t.Errorf("while the issuer was asked the switch's current demo.ZPK was v%d, want v%d (the one the issuer has)", seen, before)
	}
	seenMu.Unlock()
	if v := current(); v != res.ZPK.Version || v <= before+2 {
		t.Fatalf("after a key change the issuer took the current demo.ZPK is v%d, want the new v%d", v, res.ZPK.Version)
	}
	grace, err := s.Keys.GraceVersions(ctx, "demo.ZPK")
	if err != nil || len(grace) != 1 || grace[0].Version != before {
		t.Errorf("versions in their grace window after the change: %v, %v (want v%d)", grace, err, before)
	}
	pinPurchase("after a key change the issuer took")
}
