package config

import (
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Size is a number of bytes written as a plain integer (536870912) or with a unit:
// 512MiB, 1.5GB, 64KiB (B, KB, MB, GB, TB in powers of 1000; KiB, MiB, GiB, TiB in
// powers of 1024). A negative size is refused where the key is checked.
type Size int64

// sizeUnits are the units Size takes, longest first so that "MiB" is not read as "B".
var sizeUnits = []struct {
	suffix string
	mult   float64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"B", 1},
}

// ParseSize parses a size as Size's YAML takes it.
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	if n, err := strconv.ParseInt(t, 10, 64); err == nil {
		return Size(n), nil
	}
	for _, u := range sizeUnits {
		num, ok := strings.CutSuffix(t, u.suffix)
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		if err != nil || f != f || f*u.mult > 1<<62 || f*u.mult < -(1<<62) {
			break
		}
		return Size(f * u.mult), nil
	}
	return 0, fmt.Errorf("%q is not a size like 536870912, 512MiB or 1.5GB (units B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)", s)
}

// UnmarshalYAML parses a size.
func (z *Size) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := ParseSize(s)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*z = v
	return nil
}

// MarshalYAML writes the size as its number of bytes.
func (z Size) MarshalYAML() (any, error) { return int64(z), nil }
