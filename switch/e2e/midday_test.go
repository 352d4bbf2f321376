package e2e

import (
	"testing"
	"time"
)

func TestMiddayZone(t *testing.T) {
	for h := range 24 {
		now := time.Date(2026, 11, 21, h, 30, 0, 0, time.UTC)
		loc, err := time.LoadLocation(middayZone(now))
		if err != nil {
			t.Fatal(err)
		}
		if lh := now.In(loc).Hour(); lh != 12 {
			t.Errorf("%02d:30 UTC is %02d:30 in %s", h, lh, middayZone(now))
		}
	}
}
