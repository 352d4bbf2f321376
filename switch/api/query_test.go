package api_test

import (
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/api"
)

// TestJournalQueryDatesAreAcquirerDays: a date in a journal query is a day of the
// acquirer's zone, as settlement's dates are, so that the day the journal shows and
// the day a query asks for are the same day.
func TestJournalQueryDatesAreAcquirerDays(t *testing.T) {
	sh, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string]string{"from": "2026-12-01", "to": "2026-12-02T00:00:00+08:00"}
	q, err := api.QueryFromValues(func(k string) string { return vals[k] }, time.Now(), sh)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 11, 30, 16, 0, 0, 0, time.UTC); !q.From.Equal(want) {
		t.Errorf("from 2026-12-01 in Shanghai = %s, want %s", q.From.UTC(), want)
	}
	if want := time.Date(2026, 12, 1, 16, 0, 0, 0, time.UTC); !q.To.Equal(want) {
		t.Errorf("to = %s, want %s", q.To.UTC(), want)
	}
	if _, err := api.QueryFromValues(func(k string) string { return map[string]string{"from": "yesterday"}[k] }, time.Now(), sh); err == nil {
		t.Error("a time that is none of the forms was accepted")
	}
}
