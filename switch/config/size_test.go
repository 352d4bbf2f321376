package config

import (
	"strings"
	"testing"
)

// TestSize: sizes parse as plain bytes or with a decimal or binary unit, and a size
// that is not one is refused naming its key.
func TestSize(t *testing.T) {
	for in, want := range map[string]Size{
		"536870912": 536870912, "512MiB": 512 << 20, "1.5GB": 1_500_000_000, "64 KiB": 64 << 10, "10B": 10, "2TiB": 2 << 40, "-1MB": -1_000_000,
	} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "12 parsecs", "1.2.3MB", "NaNMB", "InfGiB", "99999999999TB", "512mib"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
	base := "demo: true\nsecurity: {card_hash_key_hex: " + DemoCardHashKey + "}\nlisteners: [{addr: 127.0.0.1:1}]\n"
	c, err := Parse([]byte(base+"apps: {max_package_bytes: 256MiB}"), "t.yaml")
	if err != nil || c.Apps.MaxPackageBytes != 256<<20 {
		t.Fatalf("256MiB: %v %v", c, err)
	}
	for in, want := range map[string]string{
		"apps: {max_package_bytes: 12 parsecs}": `apps.max_package_bytes: "12 parsecs" is not a size like 536870912, 512MiB or 1.5GB`,
		"apps: {max_package_bytes: -1MiB}":      `apps.max_package_bytes: -1048576 is negative`,
	} {
		if _, err := Parse([]byte(base+in), "t.yaml"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %s", in, err, want)
		}
	}
}
