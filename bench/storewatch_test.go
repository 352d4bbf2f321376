package bench

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestMarkStore: each second gets what Badger's compactions wrote in it; a second is
// busy when they wrote or had tables in compaction at either end; the busy and the other
// seconds' p99 are summed up apart.
func TestMarkStore(t *testing.T) {
	tl := []Point{{Second: 0, P99US: 10_000}, {Second: 1, P99US: 150_000}, {Second: 2, P99US: 90_000}, {Second: 3, P99US: 40_000}, {Second: 4, P99US: 12_000}}
	samples := []storeSample{
		{written: 1e6, ok: true},
		{written: 1e6, ok: true},
		{written: 6e6, ok: true},                // second 1 wrote 5 MB
		{written: 6e6, compacting: 2, ok: true}, // seconds 2 and 3 had a compaction running at one end
		{written: 6e6, ok: true},
		{written: 6e6, ok: true},
	}
	for i := range samples {
		samples[i].at = time.Duration(i)*time.Second + 30*time.Millisecond
	}
	a := markStore(tl, samples)
	if a == nil {
		t.Fatal("no activity from a full set of samples")
	}
	want := StoreActivity{WrittenMB: 5, BusySeconds: 3, Seconds: 5, BusyP99US: [2]int64{90_000, 150_000}, QuietP99US: [2]int64{12_000, 12_000}}
	if *a != want {
		t.Fatalf("activity %+v, want %+v", *a, want)
	}
	busy := []bool{false, true, true, true, false}
	for i, pt := range tl {
		if pt.StoreBusy != busy[i] {
			t.Errorf("second %d busy %v, want %v", i, pt.StoreBusy, busy[i])
		}
	}
	if tl[1].StoreMB != 5 || tl[0].StoreMB != 0 {
		t.Errorf("MB by second: %v %v", tl[0].StoreMB, tl[1].StoreMB)
	}

	// A failed scrape leaves the loop without a store timeline rather than a wrong one.
	failed := append([]storeSample(nil), samples...)
	failed[3].ok = false
	if a := markStore(append([]Point(nil), tl...), failed); a != nil {
		t.Errorf("activity from a failed scrape: %+v", a)
	}
	if a := markStore(tl, samples[:1]); a != nil {
		t.Errorf("activity from one sample: %+v", a)
	}
	// So does a sample taken late (a switch slow to answer its metrics): its second
	// would get another second's compaction.
	late := append([]storeSample(nil), samples...)
	late[2].at += 700 * time.Millisecond
	fresh := []Point{{Second: 0}, {Second: 1}, {Second: 2}, {Second: 3}, {Second: 4}}
	if a := markStore(fresh, late); a != nil || fresh[1].StoreBusy || fresh[1].StoreMB != 0 {
		t.Errorf("activity from a late sample: %+v, seconds %+v", a, fresh)
	}
	// The last sample is taken when the window ends, whenever that is.
	end := append([]storeSample(nil), samples...)
	end[len(end)-1].at += 900 * time.Millisecond
	if a := markStore(append([]Point(nil), tl...), end); a == nil {
		t.Error("no activity when only the last sample came at the window's end")
	}
}

// TestStoreWatch scrapes a switch's metrics: the first sample when the window
// starts, the last when it stops, Badger's bytes summed over every level's
// compaction counter (not its "L0" counter, which every write to the memtable
// moves).
func TestStoreWatch(t *testing.T) {
	var n atomic.Int64
	first := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		fmt.Fprintf(w, "# TYPE switchyard_store_flushed_bytes_total untyped\nswitchyard_store_flushed_bytes_total %d\n", i*1_000_000)
		fmt.Fprintf(w, "switchyard_store_compacted_bytes_total{level=\"5\"} %d\nswitchyard_store_compacted_bytes_total{level=\"6\"} 2e+06\n", i*500_000)
		fmt.Fprintf(w, "switchyard_store_compacting_tables %d\nswitchyard_store_puts_total 99\n", i%2)
		if i == 1 {
			close(first)
		}
	}))
	defer srv.Close()
	w := startStoreWatch(t.Context(), srv.URL)
	<-first
	got := w.stop(t.Context(), srv.URL)
	if len(got) < 2 {
		t.Fatalf("%d samples, want the first and the last at least", len(got))
	}
	if s := got[0]; !s.ok || s.written != 2_500_000 || s.compacting != 1 || s.at > storeSlack {
		t.Errorf("first sample %+v, want 0.5 + 2 MB compacted, one table compacting", s)
	}
	if s := got[len(got)-1]; !s.ok || s.written <= got[0].written {
		t.Errorf("last sample %+v after the first %+v", s, got[0])
	}

	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusServiceUnavailable)
	}))
	defer down.Close()
	if s := scrapeStore(t.Context(), down.URL); s.ok {
		t.Errorf("a failed scrape counted: %+v", s)
	}
}

// TestStoreReported: the open loop's Badger activity is in the JSON, the table and
// the timeline chart.
func TestStoreReported(t *testing.T) {
	tl := []Point{{Second: 0, TPS: 5000, P50US: 900, P99US: 10_000}, {Second: 1, TPS: 5000, P50US: 3000, P99US: 150_000}}
	r := &Result{Scenario: "store", Switch: &Phase{Name: "switch", TPS: 10000}, Paced: &Phase{Name: "switch, open loop at 5000/s", TPS: 5000, Timeline: tl}}
	r.PacedStore = markStore(r.Paced.Timeline, []storeSample{{ok: true}, {at: time.Second, ok: true}, {at: 2 * time.Second, written: 40e6, compacting: 1, ok: true}})
	var js, tab, page bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	back, err := ReadResult(&js)
	if err != nil || back.PacedStore == nil || back.PacedStore.BusySeconds != 1 || !back.Paced.Timeline[1].StoreBusy || back.Paced.Timeline[1].StoreMB != 40 {
		t.Fatalf("JSON round trip: %+v %v", back.PacedStore, err)
	}
	r.WriteTable(&tab)
	if want := "40 MB written in 1 of 2 seconds; their p99 median 150.00 ms, worst 150.00 ms; the other seconds' median 10.00 ms"; !strings.Contains(tab.String(), want) {
		t.Errorf("table lacks %q:\n%s", want, tab.String())
	}
	if err := r.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Badger compacting (shaded)", "second 1: Badger compacted, writing 40 MB"} {
		if !strings.Contains(page.String(), want) {
			t.Errorf("page lacks %q", want)
		}
	}
}
