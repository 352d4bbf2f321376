package cli

import (
	"fmt"
	"time"

	"github.com/switchyard/switchyard/internal/cli/kit"
	"github.com/switchyard/switchyard/switch/config"
)

// The acquirer's days (settlement, the journal's dates, rule backtests, "same day"
// voids) are days of the switch's configured `timezone`, not UTC's and not the
// operator's machine's. Commands that read dates or show times use that zone and
// print times with their offset, so that a date read off the journal is the date to
// give settle.

// acquirerZone returns the acquirer's time zone: $SWITCHYARD_TIMEZONE, else the
// configuration's default (Asia/Shanghai). Set it to the switch's `timezone` when
// that is another zone.
func acquirerZone(env *Env) (*time.Location, error) {
	tz := env.Getenv("SWITCHYARD_TIMEZONE")
	if tz == "" {
		tz = config.Demo().Timezone
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("SWITCHYARD_TIMEZONE %q is not an IANA time zone (the switch's `timezone`, e.g. Asia/Shanghai)", tz)
	}
	return loc, nil
}

// localTimeLayout shows a time of the journal in the acquirer's zone with its offset
// (kit's, which the subpackages' commands use too).
const localTimeLayout = kit.LocalTimeLayout

// inZone reads a --from/--to value given as a date or a date-time without a zone as
// a time of loc and returns it as RFC 3339; any other form (RFC 3339, unix seconds, a
// duration) is returned unchanged for the journal's own parser.
func inZone(s string, loc *time.Location) string {
	for _, layout := range []string{"2006-01-02", "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02 15:04"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t.Format(time.RFC3339)
		}
	}
	return s
}
