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
	if l := c.Listeners[0]; l.MaxConns != 10000 || l.MaxConnsPerSource != 1000 || l.FirstFrameTimeout.D() != 10*time.Second {
		t.Fatalf("defaults: max_conns %d, max_conns_per_source %d, first_frame_timeout %s", l.MaxConns, l.MaxConnsPerSource, l.FirstFrameTimeout.D())
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
	}
	for in, want := range cases {
		_, err := Parse([]byte(base+in+"}]"), "test.yaml")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q:\n got %v\nwant %s", in, err, want)
		}
	}
}
