package bench

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/switchyard/switchyard/switch/cup"
)

// demoLoadTMK is the demo load terminals' shared TMK (keys.DemoKeys, LT.TMK): a public
// test key.
const demoLoadTMK = "2315208C9110AD40F5B83C4A6E1D7F92"

// cupResult is what one cup terminal measured.
type cupResult struct {
	hist                 *hdrhistogram.Histogram
	codes                map[string]int64
	sent, answered, errs int64
	// failed counts the answers in the window that were failures (failedCode).
	failed int64
	// malformed counts the answers without DE 39 (LoadResult.Malformed).
	malformed int64
	samples   []Sample
	// err is why the terminal stopped before the load did (its connection refused
	// or closed, its sign-in declined): the run fails, as for a lost connection.
	err error
}

// driveCUPTerminal is one UnionPay-style terminal of the cup share: its own
// connection, a sign-in (scheme 003: its working keys under the load terminals' TMK),
// then one sale at a time (a countertop terminal waits for each answer), MAC'd, no
// PIN (a load terminal's PIN key is T0000001's, which its sign-in does not rotate),
// until ctx ends. Answers in the measured window go into the histogram and the codes
// (failures, failedCode, into the codes and failed only).
func driveCUPTerminal(ctx context.Context, addr, tid, mid string, cards []string, measuring *atomic.Bool, total *atomic.Int64, windowStart *atomic.Pointer[time.Time]) cupResult {
	res := cupResult{hist: hdrhistogram.New(1, 60_000_000, 3), codes: map[string]int64{}}
	tmk, _ := hex.DecodeString(demoLoadTMK)
	term, err := cup.DialTerminal(addr, tid, mid, tmk)
	if err != nil {
		res.errs++
		res.codes["cup-connect"]++
		res.err = fmt.Errorf("connect: %w", err)
		return res
	}
	defer term.Close()
	term.Timeout = 30 * time.Second
	if ans, err := term.SignIn("003"); err != nil || ans.Str(39) != "00" {
		res.errs++
		res.codes["cup-sign-in"]++
		if err == nil {
			err = fmt.Errorf("answered %q", ans.Str(39))
		}
		if ctx.Err() == nil {
			res.err = fmt.Errorf("sign-in: %w", err)
		}
		return res
	}
	rng := rand.New(rand.NewPCG(uint64(len(tid)), uint64(time.Now().UnixNano())))
	for ctx.Err() == nil {
		pan := cards[rng.IntN(len(cards))]
		// Whole yuan: the demo issuer answers by the last two digits (00 approves).
		tx := cup.Txn{Kind: "sale", PAN: pan, Expiry: "2912", Amount: int64(1+rng.IntN(300)) * 100}
		start := time.Now()
		res.sent++
		ans, err := term.Do(tx)
		if err != nil {
			res.errs++
			if ctx.Err() == nil {
				res.codes["cup-error"]++
				res.err = fmt.Errorf("sale: %w", err)
			}
			return res
		}
		res.answered++
		total.Add(1)
		rc := ans.Str(39)
		if len(rc) != 2 {
			res.malformed++ // no response code: no authorization (LoadResult.Malformed)
			continue
		}
		if !measuring.Load() {
			continue // warm-up: counted nowhere, as the ASCII connections' answers
		}
		res.codes[rc]++
		if failedCode(rc) {
			res.failed++
		} else {
			us := time.Since(start).Microseconds()
			_ = res.hist.RecordValue(max(us, 1))
			res.samples = append(res.samples, Sample{Second: windowSecond(*windowStart.Load(), time.Now()), LatencyUS: uint32(min(us, 1<<31))})
		}
	}
	return res
}

// cupTerminalIDs are the load terminals the cup share uses: the last n of the fleet,
// so that they never share a terminal (and its STANs) with the ASCII connections.
func cupTerminalIDs(terminals, n int) []string {
	var ids []string
	for i := terminals - n + 1; i <= terminals; i++ {
		ids = append(ids, fmt.Sprintf("LT%06d", i))
	}
	return ids
}
