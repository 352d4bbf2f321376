package config

import (
	"strings"
	"testing"
	"time"
)

func TestListenerConnectionLimits(t *testing.T) {
	base := "demo: true\nsecurity: {card_hash_key_hex: " + DemoCardHashKey + "}\nlisteners: [{addr: 127.0.0.1:1"
	c, err := Parse([]byte(base+"}]"), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if l := c.Listeners[0]; l.MaxConns != 10000 || l.MaxConnsPerSource != 1000 || l.FirstFrameTimeout.D() != 10*time.Second || l.MaxInFlightPerSource != 2000 {
		t.Fatalf("defaults: max_conns %d, max_conns_per_source %d, first_frame_timeout %s, max_in_flight_per_source %d",
			l.MaxConns, l.MaxConnsPerSource, l.FirstFrameTimeout.D(), l.MaxInFlightPerSource)
	}
	c, err = Parse([]byte("limits: {max_in_flight: 500}\n"+base+"}]"), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if l := c.Listeners[0]; l.MaxInFlightPerSource != 500 {
		t.Fatalf("max_in_flight_per_source defaults to %d with limits.max_in_flight 500, want 500", l.MaxInFlightPerSource)
	}
	c, err = Parse([]byte(base+", max_conns: 50}]"), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if l := c.Listeners[0]; l.MaxConnsPerSource != 50 {
		t.Fatalf("max_conns_per_source defaults to %d with max_conns 50, want 50", l.MaxConnsPerSource)
	}
	cases := map[string]string{
		", max_conns: -1": `listeners[0].max_conns: -1 is not between 1 and 1000000`,
		", max_conns: 10, max_conns_per_source: 11": `listeners[0].max_conns_per_source: 11 is not between 1 and max_conns (10)`,
		", first_frame_timeout: 1ms":                `listeners[0].first_frame_timeout: 1ms is not between 100ms and 5m`,
		", first_frame_timeout: 1h":                 `listeners[0].first_frame_timeout: 1h0m0s is not between 100ms and 5m`,
		", max_in_flight_per_source: -3":            `listeners[0].max_in_flight_per_source: -3 is not between 1 and limits.max_in_flight (20000)`,
		", max_in_flight_per_source: 20001":         `listeners[0].max_in_flight_per_source: 20001 is not between 1 and limits.max_in_flight (20000)`,
	}
	for in, want := range cases {
		_, err := Parse([]byte(base+in+"}]"), "test.yaml")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q:\n got %v\nwant %s", in, err, want)
		}
	}
}
