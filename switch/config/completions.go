package config

// Completions configures pre-authorization completions (0220,
// docs/terminal-interface.md).
type Completions struct {
	// TolerancePercent is how far above its pre-authorization a completion may
	// capture, in percent of the pre-authorization (absent: 15; 0 allows nothing
	// above).
	TolerancePercent *float64 `yaml:"tolerance_percent"`
}

// Tolerance is the configured tolerance as the pipeline takes it: a fraction, 0 for
// the default (15 %), negative for none.
func (c Completions) Tolerance() float64 {
	switch {
	case c.TolerancePercent == nil:
		return 0
	case *c.TolerancePercent == 0:
		return -1
	}
	return *c.TolerancePercent / 100
}

// validate reports a tolerance outside [0, 100].
func (c Completions) validate(bad func(key, format string, args ...any)) {
	if p := c.TolerancePercent; p != nil && !(*p >= 0 && *p <= 100) {
		bad("completions.tolerance_percent", "%g is not between 0 and 100", *p)
	}
}
