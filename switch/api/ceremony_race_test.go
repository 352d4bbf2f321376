package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/internal/cli/apiclient"
	"github.com/switchyard/switchyard/keys"
	"github.com/switchyard/switchyard/switch/api"
)

// gatedHSM is an HSM whose splits of key gated (ExportComponents) tell entered and
// wait for release: a slow HSM, held as long as the test wants.
type gatedHSM struct {
	hsm.HSM
	gated   string
	entered chan struct{}
	release chan struct{}
	splits  atomic.Int32 // splits of gated
}

// ExportComponents implements hsm.ComponentExporter.
func (g *gatedHSM) ExportComponents(ctx context.Context, ref hsm.KeyRef, n int) ([][]byte, []string, error) {
	if ref.ID == g.gated {
		g.splits.Add(1)
		g.entered <- struct{}{}
		<-g.release
	}
	return g.HSM.(hsm.ComponentExporter).ExportComponents(ctx, ref, n)
}

// TestCeremonySlowHSMBlocksNoOtherCeremony: while the HSM splits one key for an
// export in components, a component of another key's ceremony is taken (before,
// the split ran under the lock of every ceremony, and so did the audit writes); a
// second custodian of the same export waits for the split instead of making another,
// and gets the other component of it.
func TestCeremonySlowHSMBlocksNoOtherCeremony(t *testing.T) {
	g := &gatedHSM{gated: "slow.ZMK", entered: make(chan struct{}), release: make(chan struct{})}
	e := newCustodianEnvWith(t, false, func(o api.Options) http.Handler {
		g.HSM = o.HSM
		o.HSM = g
		return api.New(o)
	})
	ctx := context.Background()
	c1, k1 := component(t)
	c2, k2 := component(t)
	spec := keys.SpecRequest{ID: "slow.ZMK", Type: "ZMK"}
	e.alice.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: spec, Components: 2, Component: c1, KCV: k1}, nil)
	var formed keys.ComponentResponse
	if err := e.dave.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: spec, Components: 2, Component: c2, KCV: k2}, &formed); err != nil || formed.Result == nil {
		t.Fatalf("form slow.ZMK: %+v %v", formed, err)
	}
	type took struct {
		r   keys.ExportComponentResponse
		err error
	}
	take := func(c *apiclient.Client, out chan<- took) {
		var r keys.ExportComponentResponse
		err := c.Do(ctx, "POST", "/api/v1/keys/slow.ZMK/export-components", keys.ExportComponentsRequest{Components: 2}, &r)
		out <- took{r, err}
	}
	alice, dave := make(chan took, 1), make(chan took, 1)
	go take(e.alice, alice)
	<-g.entered // the HSM is splitting for alice
	released := false
	release := func() {
		if !released {
			released = true
			close(g.release)
		}
	}
	defer release()
	go take(e.dave, dave)
	other := make(chan error, 1)
	go func() {
		c, k := component(t)
		other <- e.carol.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: keys.SpecRequest{ID: "other.ZMK", Type: "ZMK"}, Components: 2, Component: c, KCV: k}, nil)
	}()
	select {
	case err := <-other:
		if err != nil {
			t.Fatalf("another key's component during the split: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("another key's component waited 10 s for the HSM's split of slow.ZMK: the split runs under the ceremonies' lock")
	}
	release()
	a, d := <-alice, <-dave
	if a.err != nil || d.err != nil || a.r.Index != 1 || d.r.Index != 2 {
		t.Fatalf("alice %+v %v, dave %+v %v: want components 1 and 2", a.r, a.err, d.r, d.err)
	}
	if n := g.splits.Load(); n != 1 {
		t.Fatalf("%d splits of slow.ZMK, want 1", n)
	}
	if kcv := xorKCV(t, a.r.Component, d.r.Component); kcv != formed.Result.KCV {
		t.Fatalf("the components combine to KCV %s, the key is %s", kcv, formed.Result.KCV)
	}
}

// TestCeremonyConcurrentLastComponents: four custodians, each independent of the
// first (dave) but not of one another, send the last component of a ceremony at
// once, round after round: exactly one key is formed per round, of dave's
// component and the winner's; the others start a new ceremony or are refused by
// dual control. Run with -race.
func TestCeremonyConcurrentLastComponents(t *testing.T) {
	e := newCustodianEnv(t, false)
	ctx := context.Background()
	for round := range 8 {
		id := fmt.Sprintf("race%d.ZMK", round)
		spec := keys.SpecRequest{ID: id, Type: "ZMK"}
		c0, k0 := component(t)
		if err := e.dave.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: spec, Components: 2, Component: c0, KCV: k0}, nil); err != nil {
			t.Fatal(err)
		}
		type result struct {
			comp string
			resp keys.ComponentResponse
			err  error
		}
		results := make(chan result, 4)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for _, who := range []*apiclient.Client{e.olga, e.alice, e.carol, e.erin} {
			wg.Go(func() {
				c, k := component(t)
				<-start
				var resp keys.ComponentResponse
				err := who.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: spec, Components: 2, Component: c, KCV: k}, &resp)
				results <- result{c, resp, err}
			})
		}
		close(start)
		wg.Wait()
		close(results)
		formed := 0
		for r := range results {
			switch {
			case r.err == nil && r.resp.Result != nil:
				formed++
				if want := xorKCV(t, c0, r.comp); r.resp.Result.KCV != want {
					t.Fatalf("round %d: key formed with KCV %s, want %s (dave's and %v's components)", round, r.resp.Result.KCV, want, r.resp.Custodians)
				}
			case r.err == nil && r.resp.Entered == 1:
			case status(r.err) == 400 && strings.Contains(r.err.Error(), "dual control"):
			default:
				t.Fatalf("round %d: %+v %v", round, r.resp, r.err)
			}
		}
		var list keys.KeyList
		if err := e.olga.Do(ctx, "GET", "/api/v1/keys/"+id, nil, &list); formed != 1 || err != nil || len(list.Keys) != 1 {
			t.Fatalf("round %d: %d keys formed, versions %+v %v; want exactly one", round, formed, list.Keys, err)
		}
	}
}

// TestCeremonyTimeoutRacesCompletion: with a timeout of a few milliseconds the
// timer drops ceremonies while their last component comes in, on the
// goroutines of real calls: a key formed is always of the two components sent
// (never of a component wiped under it), a take always hands out a component of
// the split that combines to the key, and otherwise the component starts a new
// ceremony or is refused as too late. Run with -race.
func TestCeremonyTimeoutRacesCompletion(t *testing.T) {
	e := newCustodianEnvWith(t, false, func(o api.Options) http.Handler {
		return api.NewWithCeremonyTimeout(o, time.Millisecond, func(string) {})
	})
	ctx := context.Background()
	formed, late := 0, 0
	for round := range 30 {
		id := fmt.Sprintf("late%d.ZMK", round)
		spec := keys.SpecRequest{ID: id, Type: "ZMK"}
		c1, k1 := component(t)
		c2, k2 := component(t)
		if err := e.dave.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: spec, Components: 2, Component: c1, KCV: k1}, nil); err != nil {
			t.Fatal(err)
		}
		var resp keys.ComponentResponse
		err := e.alice.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: spec, Components: 2, Component: c2, KCV: k2}, &resp)
		switch {
		case err == nil && resp.Result != nil:
			formed++
			if want := xorKCV(t, c1, c2); resp.Result.KCV != want {
				t.Fatalf("round %d: formed KCV %s, want %s: a component was lost to the timeout", round, resp.Result.KCV, want)
			}
		case err == nil && resp.Entered == 1, status(err) == 409 && strings.Contains(err.Error(), "dropped at its timeout"):
			late++
			continue
		default:
			t.Fatalf("round %d: %+v %v", round, resp, err)
		}
		// The key exists: an export in components races the timer the same way.
		var a, d keys.ExportComponentResponse
		err = e.alice.Do(ctx, "POST", "/api/v1/keys/"+id+"/export-components", keys.ExportComponentsRequest{Components: 2}, &a)
		if status(err) == 409 && strings.Contains(err.Error(), "dropped while the HSM split it") {
			continue // its time was up before the split was done: nothing handed out
		}
		if err != nil || a.Index != 1 {
			t.Fatalf("round %d: alice's export component: %+v %v", round, a, err)
		}
		err = e.dave.Do(ctx, "POST", "/api/v1/keys/"+id+"/export-components", keys.ExportComponentsRequest{Components: 2}, &d)
		switch {
		case err == nil && d.Index == 2:
			if kcv := xorKCV(t, a.Component, d.Component); kcv != resp.Result.KCV {
				t.Fatalf("round %d: handed-out components combine to %s, the key is %s", round, kcv, resp.Result.KCV)
			}
		case err == nil && d.Index == 1, status(err) == 409 && strings.Contains(err.Error(), "dropped"):
		default:
			t.Fatalf("round %d: dave's export component: %+v %v", round, d, err)
		}
	}
	t.Logf("%d keys formed, %d ceremonies dropped first", formed, late)
}
