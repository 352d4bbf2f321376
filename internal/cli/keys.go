package cli

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/switchyard/switchyard/internal/cli/hsmtool"
	"github.com/switchyard/switchyard/internal/cli/keytool"
	"github.com/switchyard/switchyard/internal/cli/kit"
	"github.com/switchyard/switchyard/switch/server"
)

func init() {
	registerTool("keys", "key ceremonies: import from components, generate, list, rotate, export, verify-log",
		keytool.Usage, keytool.Subcommands, runKeys)
	registerTool("hsm", "diagnostics on test keys: dukpt, mac, kcv, cvv, tr31 unwrap, pinblock; serve: the software HSM on the payShield protocol", "", hsmtool.Subcommands,
		func(env *Env, args []string) int { return hsmtool.Run(args, env.Stdout, env.Stderr) })
	registerTool("zone-key-change", "give an issuer a new zone PIN key (0800/161) through the running switch",
		zoneKeyChangeUsage, nil, runZoneKeyChange)
}

func runKeys(env *Env, args []string) int {
	c, rest, done, err := adminClient(env, args)
	if err != nil {
		return fail(env, "keys: %v", err)
	}
	defer done()
	loc, err := acquirerZone(env)
	if err != nil {
		return fail(env, "keys: %v", err)
	}
	return keytool.RunWithInput(env.Ctx, rest, c, loc, env.Stdin, env.Stdout, env.Stderr)
}

const zoneKeyChangeUsage = `Usage: switchyard zone-key-change ISSUER [--admin URL] [--token T]

Generates a new zone PIN key for ISSUER, sends it in a 0800 key change (161) through
the running switch, and prints its KCV; the previous key stays valid for the grace
period (its end shown in the acquirer's zone, $SWITCHYARD_TIMEZONE). Needs the admin role.`

func runZoneKeyChange(env *Env, args []string) int {
	c, rest, done, err := adminClient(env, args)
	if err != nil {
		return fail(env, "zone-key-change: %v", err)
	}
	defer done()
	// A flag it does not know (--bogusflag) was taken for the issuer ID and sent to
	// the switch.
	for _, a := range rest {
		if strings.HasPrefix(a, "-") {
			fmt.Fprintf(env.Stderr, "switchyard: zone-key-change: unknown flag %s\n%s\n", a, zoneKeyChangeUsage)
			return kit.ExitUsage
		}
	}
	if len(rest) != 1 {
		fmt.Fprintf(env.Stderr, "switchyard: zone-key-change: want one issuer ID, got %d arguments\n%s\n", len(rest), zoneKeyChangeUsage)
		return kit.ExitUsage
	}
	loc, err := acquirerZone(env) // before the change: a bad zone stops it, not its report
	if err != nil {
		return fail(env, "zone-key-change: %v", err)
	}
	var out server.ZoneKeyChange
	if err := c.Do(env.Ctx, "POST", "/api/v1/issuers/"+url.PathEscape(rest[0])+"/key-change", nil, &out); err != nil {
		return fail(env, "zone-key-change: %v", err)
	}
	env.Stdout.Write([]byte("issuer " + out.Issuer + ": new zone PIN key " + out.ZPK.String() + ", KCV " + out.KCV +
		"; the previous key stays valid until " + kit.LocalTime(out.GraceTo, loc) + "\n"))
	return 0
}
