package jsaf

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/syncbuf"
	"github.com/switchyard/switchyard/switch/saf"
)

// TestAdviceAnsweredWithoutAckParked: on a standalone node, an issuer answers a
// stand-in advice without an acknowledgement (saf.ErrNotAcknowledged: no DE 39) on
// every try. It is repeated with backoff, and at ParkAfter such answers parked: out
// of the SAF stream (the queue empties), into SAF_PARKED (Parked lists it, from
// another queue on the node too), counted and logged, and not sent again; the
// reversal of its transaction held behind it goes. An advice whose tries are not
// answered at all is never parked. (Until the fifth release of 6 December 2026 such
// an advice was repeated for ever, holding its reversal back.)
func TestAdviceAnsweredWithoutAckParked(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n := standalone(t, ctx)
	var logs syncbuf.Buffer
	q := openRetry(t, ctx, n, Options{Replicas: 1, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Poll: 100 * time.Millisecond,
		ParkAfter: 3, Logger: zerolog.New(&logs).Level(zerolog.WarnLevel)})
	var mu sync.Mutex
	tries := map[string]int{}
	var took []string
	q.Register("bank", func(_ context.Context, it *saf.Item, repeat bool) error {
		mu.Lock()
		defer mu.Unlock()
		k := it.MTI + " " + it.RRN
		tries[k]++
		switch {
		case it.RRN == "000000000007" && it.MTI == "0220":
			return fmt.Errorf("advice %s: issuer bank answered 0230 without DE 39: %w", it.RRN, saf.ErrNotAcknowledged)
		case it.RRN == "000000000008" && tries[k] <= 6:
			return errors.New("no answer in time") // never parks
		}
		took = append(took, k)
		return nil
	})
	standIn := &saf.Item{Issuer: "bank", MTI: "0220", RRN: "000000000007", Reason: "stand-in", Fields: map[int]string{37: "000000000007", 39: "00"}}
	for _, it := range []*saf.Item{standIn, advice("bank", "000000000007"), advice("bank", "000000000008")} {
		if err := q.Enqueue(it); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the queue emptied", 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(took) == 2 && q.Len("bank") == 0
	})
	mu.Lock()
	if n := tries["0220 000000000007"]; n != 3 {
		t.Errorf("the stand-in advice answered without DE 39 was tried %d times, want 3 (ParkAfter) and no more", n)
	}
	if n := tries["0420 000000000008"]; n != 7 {
		t.Errorf("the reversal left unanswered was tried %d times, want 7: tries without an answer never park", n)
	}
	mu.Unlock()
	if st := q.IssuerStats()["bank"]; st.Parked.Load() != 1 || st.Acked.Load() != 2 {
		t.Errorf("parked %d, acked %d: want 1 and 2", st.Parked.Load(), st.Acked.Load())
	}
	// Another queue on the node (as another node's would) lists it too.
	other := openRetry(t, ctx, n, Options{Replicas: 1, Logger: testLogger(t)})
	for _, qq := range []*Queue{q, other} {
		p, err := qq.Parked("bank")
		if err != nil || len(p) != 1 {
			t.Fatalf("parked %+v (%v), want the stand-in advice", p, err)
		}
		if it := p[0]; it.MTI != "0220" || it.RRN != "000000000007" || it.Seq != standIn.Seq || it.Unacked != 3 || it.Parked.IsZero() ||
			!strings.Contains(it.LastErr, "without DE 39") {
			t.Errorf("parked %+v", it)
		}
		if all, _ := qq.Parked(""); len(all) != 1 {
			t.Errorf("parked of all issuers %+v", all)
		}
	}
	if pend, _ := q.Pending(""); len(pend) != 0 {
		t.Errorf("pending %+v, want nothing", pend)
	}
	if !strings.Contains(logs.String(), "advice parked") {
		t.Errorf("no error logged for the parked advice:\n%s", logs.String())
	}
}

// TestAdviceRefusedForGoodParked: an advice its issuer refuses for good
// (saf.ErrRefused: a wallet network's reverse past the cancel window) is parked at
// its first such answer, however high ParkAfter, its reason in last_error and the
// log saying to settle it out of band; one refused for a while (a plain error) is
// repeated until taken. (Until the fifth release of 6 December 2026 it was repeated
// for ever.)
func TestAdviceRefusedForGoodParked(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n := standalone(t, ctx)
	var logs syncbuf.Buffer
	q := openRetry(t, ctx, n, Options{Replicas: 1, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Poll: 100 * time.Millisecond,
		ParkAfter: 50, Logger: zerolog.New(&logs).Level(zerolog.WarnLevel)})
	var mu sync.Mutex
	tries := map[string]int{}
	q.Register("wechat", func(_ context.Context, it *saf.Item, _ bool) error {
		mu.Lock()
		defer mu.Unlock()
		tries[it.RRN]++
		switch {
		case it.RRN == "000000000001":
			return fmt.Errorf("wechat reverse %s: REVERSE_EXPIRE past the cancel window: %w", it.RRN, saf.ErrRefused)
		case tries[it.RRN] <= 3:
			return errors.New("wechat reverse: SYSTEMERROR")
		}
		return nil
	})
	for _, rrn := range []string{"000000000001", "000000000002"} {
		if err := q.Enqueue(advice("wechat", rrn)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the queue emptied", 30*time.Second, func() bool {
		st := q.IssuerStats()["wechat"]
		return st.Parked.Load() == 1 && st.Acked.Load() == 1 && q.Len("wechat") == 0
	})
	p, err := q.Parked("wechat")
	if err != nil || len(p) != 1 || p[0].RRN != "000000000001" || !strings.Contains(p[0].LastErr, "REVERSE_EXPIRE") {
		t.Fatalf("parked %+v (%v), want the refused reversal with its reason", p, err)
	}
	mu.Lock()
	if tries["000000000001"] != 1 || tries["000000000002"] != 4 {
		t.Errorf("tries %v, want 1 of the refused, 4 of the other", tries)
	}
	mu.Unlock()
	if !strings.Contains(logs.String(), "refused it for good") {
		t.Errorf("the parking's log does not say the issuer refused it:\n%s", logs.String())
	}
}
