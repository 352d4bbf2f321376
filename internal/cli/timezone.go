package cli

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/switchyard/switchyard/internal/cli/apiclient"
	"github.com/switchyard/switchyard/internal/cli/kit"
	"github.com/switchyard/switchyard/switch/api"
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

// Where a command's zone came from, as its output says after the zone's name.
const (
	zoneFromSwitch  = "the switch's timezone"
	zoneFromEnv     = "$SWITCHYARD_TIMEZONE"
	zoneFromDefault = "$SWITCHYARD_TIMEZONE's default"
)

// switchZone returns the zone in which a command that talks to the switch through c
// reads dates given without one and shows times, and where it came from (zoneFrom*).
// Against a running switch (--admin) it is the switch's configured timezone, read
// from GET /api/v1/info, unless $SWITCHYARD_TIMEZONE is set: that wins, with a
// warning on stderr when it is another zone than the switch's. A switch that does
// not report its zone (a release before 6 December 2026: 404) leaves
// $SWITCHYARD_TIMEZONE or its default, said on stderr. With --data (c serves in
// process) the data directory does not record its switch's zone:
// $SWITCHYARD_TIMEZONE or its default, as before. Until 6 December 2026 the CLI
// always read dates in $SWITCHYARD_TIMEZONE (default Asia/Shanghai), whatever the
// switch's timezone: against a switch in UTC a backtest --from 2026-12-01 began at
// 16:00 UTC the day before.
func switchZone(env *Env, c *apiclient.Client) (*time.Location, string, error) {
	set := env.Getenv("SWITCHYARD_TIMEZONE") != ""
	own, err := acquirerZone(env)
	if err != nil {
		return nil, "", err
	}
	ownFrom := zoneFromDefault
	if set {
		ownFrom = zoneFromEnv
	}
	if c.Handler != nil {
		return own, ownFrom, nil
	}
	var info api.Info
	err = c.Do(env.Ctx, "GET", "/api/v1/info", nil, &info)
	var ae *apiclient.APIError
	switch {
	case errors.As(err, &ae) && ae.Status == http.StatusNotFound, err == nil && info.Timezone == "":
		fmt.Fprintf(env.Stderr, "switchyard: the switch does not report its timezone (GET /api/v1/info, added on 6 December 2026): dates are read in %s (%s); set $SWITCHYARD_TIMEZONE to the switch's timezone if it is another\n", own, ownFrom)
		return own, ownFrom, nil
	case errors.As(err, &ae) && (ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden):
		// The command's first request: its token is refused, not the zone.
		return nil, "", err
	case err != nil:
		return nil, "", fmt.Errorf("the switch's timezone (GET /api/v1/info): %w", err)
	}
	sw, err := time.LoadLocation(info.Timezone)
	if err != nil {
		return nil, "", fmt.Errorf("the switch's timezone %q (GET /api/v1/info): %w", info.Timezone, err)
	}
	if !set {
		return sw, zoneFromSwitch, nil
	}
	if own.String() != sw.String() {
		fmt.Fprintf(env.Stderr, "switchyard: warning: $SWITCHYARD_TIMEZONE %s is not the switch's timezone %s: dates are read and times shown in %s, whose days are not the switch's (unset it to use the switch's)\n", own, sw, own)
	}
	return own, zoneFromEnv, nil
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
