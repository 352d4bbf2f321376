package cli

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/cli/kit"
	"github.com/switchyard/switchyard/switch/apps"
	"github.com/switchyard/switchyard/switch/registry"
)

func init() {
	registerTool("app", "terminal applications: upload signed packages, publish to groups under review, withdraw, rollout status", "Usage:\n"+appUsage,
		[]string{"upload", "list", "publish", "withdraw", "status", "groups", "key", "statement"}, runApp)
}

const appUsage = `switchyard app upload FILE --name N --version V --key KEYID (--signature B64 | --signature-file F) [--models A920,P400] [--kinds pos,mpos]
switchyard app list [--json]
switchyard app publish --group G --app N --version V [--percent P] [--min-version V] [--merchants ..] [--merchant-groups ..] [--tiers ..] [--regions ..] [--models ..] [--kinds ..] [--terminals ..] [--allow-unknown-targets] [--reason TEXT]
switchyard app withdraw --group G [--rollback] [--reason TEXT]
switchyard app status [--group G] [--json]          (the rollout: terminals per version, failures)
switchyard app groups [--json]
switchyard app key add ID --public-key FILE.pem [--reason TEXT]  |  switchyard app key revoke ID [--reason TEXT]  |  switchyard app key list
switchyard app statement FILE --name N --version V [--models ..] [--kinds ..]   (the text to sign)
  publish, withdraw, key add and key revoke request a change that a different reviewer approves (switchyard change approve ID)
  with --admin URL --token T (default $SWITCHYARD_TOKEN), or --data DIR (read-only)`

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func runApp(env *Env, args []string) int {
	if len(args) > 0 && args[0] == "statement" { // needs no switch
		return appStatement(env, args[1:])
	}
	c, rest, done, err := adminClient(env, args)
	if err != nil {
		return fail(env, "app: %v", err)
	}
	defer done()
	if len(rest) == 0 || rest[0] == "-h" || rest[0] == "--help" || rest[0] == "help" {
		fmt.Fprintln(env.Stderr, "Usage:\n"+appUsage)
		if len(rest) == 0 {
			return 2
		}
		return 0
	}
	sub, rest := rest[0], rest[1:]
	fs := newFlags(env, "app "+sub, "")
	fs.Usage = func() { fmt.Fprintln(env.Stderr, "Usage:\n"+appUsage+"\n\nFlags:"); fs.PrintDefaults() }
	asJSON := fs.Bool("json", false, "print JSON")
	reason := fs.String("reason", "", "why (recorded in the change and the oplog)")
	requested := func(ch *registry.Change) int {
		if *asJSON {
			return printJSON(env, ch)
		}
		fmt.Fprintf(env.Stdout, "%s requested (%s %s): a different reviewer approves it with `switchyard change approve %s`\n", ch.ID, ch.Op, ch.Target, ch.ID)
		return 0
	}
	switch sub {
	case "upload":
		name := fs.String("name", "", "package name")
		version := fs.String("version", "", "dotted numeric version")
		key := fs.String("key", "", "ID of the app-signing key that signed it")
		sig := fs.String("signature", "", "the signature, base64")
		sigFile := fs.String("signature-file", "", "a file holding the signature (raw bytes, or base64 text)")
		models := fs.String("models", "", "terminal models it runs on (comma-separated; empty: any)")
		kinds := fs.String("kinds", "", "terminal kinds it runs on: pos, mpos, softpos (empty: any)")
		pos, ok, code := parseInterleaved(fs, rest)
		if !ok {
			return code
		}
		if len(pos) != 1 {
			return fail(env, "app upload wants one package file")
		}
		if *sigFile != "" {
			b, err := os.ReadFile(*sigFile)
			if err != nil {
				return fail(env, "app upload: %v", err)
			}
			if s := strings.TrimSpace(string(b)); isBase64(s) {
				*sig = s
			} else {
				*sig = b64(b)
			}
		}
		f, err := os.Open(pos[0])
		if err != nil {
			return fail(env, "app upload: %v", err)
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return fail(env, "app upload: read %s: %v", pos[0], err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return fail(env, "app upload: %v", err)
		}
		q := url.Values{"name": {*name}, "version": {*version}, "key": {*key}, "signature": {*sig},
			"models": {*models}, "kinds": {*kinds}, "sha256": {hex.EncodeToString(h.Sum(nil))}}
		var p apps.Package
		if err := c.Send(env.Ctx, "POST", "/api/v1/apps/packages?"+q.Encode(), f, &p); err != nil {
			return fail(env, "app upload: %v", err)
		}
		if *asJSON {
			return printJSON(env, &p)
		}
		fmt.Fprintf(env.Stdout, "%s uploaded: %d bytes, SHA-256 %s, signed by %s\n", kit.ForTerminal(p.Ref()), p.Size, p.SHA256, kit.ForTerminal(p.KeyID))
		return 0
	case "list":
		if ok, code := parseFlagsOnly(env, fs, rest); !ok {
			return code
		}
		var ps []apps.Package
		if err := c.Do(env.Ctx, "GET", "/api/v1/apps/packages", nil, &ps); err != nil {
			return fail(env, "app list: %v", err)
		}
		if *asJSON {
			return printJSON(env, ps)
		}
		loc, err := acquirerZone(env)
		if err != nil {
			return fail(env, "app list: %v", err)
		}
		// kit.Table escapes control characters: a package's name, version and
		// models are what its uploaded manifest said.
		rows := make([][]string, 0, len(ps))
		for _, p := range ps {
			rows = append(rows, []string{p.Name, p.Version, strconv.FormatInt(p.Size, 10), shortHash(p.SHA256),
				dash(strings.Join(p.Models, ",")), dash(strings.Join(p.Kinds, ",")), p.KeyID, kit.LocalTime(p.UploadedAt, loc) + " by " + p.UploadedBy})
		}
		kit.Table(env.Stdout, "NAME\tVERSION\tSIZE\tSHA256\tMODELS\tKINDS\tKEY\tUPLOADED", rows)
		return 0
	case "publish":
		var r apps.PublishRequest
		fs.StringVar(&r.Group, "group", "", "the rollout group")
		fs.StringVar(&r.App, "app", "", "package name")
		fs.StringVar(&r.Version, "version", "", "package version")
		fs.Float64Var(&r.Target.Percent, "percent", 0, "share of the group's terminals offered the release, 0 < p <= 100 (default 100)")
		fs.StringVar(&r.MinVersion, "min-version", "", "the group's minimum version (older applications are declined 58)")
		fs.BoolVar(&r.AllowUnknownTargets, "allow-unknown-targets", false, "let --merchants and --terminals name IDs not registered (yet): for terminals to be registered later (else refused)")
		lists := map[string]*string{}
		for _, k := range []string{"merchants", "merchant-groups", "tiers", "regions", "models", "kinds", "terminals"} {
			lists[k] = fs.String(k, "", "select terminals by "+k+" (comma-separated)")
		}
		if ok, code := parse(fs, rest); !ok {
			return code
		}
		// The API takes a percent of 0 (absent) as 100: given as 0, to hold a
		// rollout back or stage it later, it would have offered the release to
		// every terminal of the group (until the fifth release of 6 December 2026).
		given := false
		fs.Visit(func(f *flag.Flag) { given = given || f.Name == "percent" })
		if p := r.Target.Percent; given && !(p > 0 && p <= 100) {
			fmt.Fprintf(env.Stderr, "switchyard app publish: --percent %v: want more than 0 and at most 100 (the API would take 0 as 100, every terminal of the group); to offer the release to nobody yet, do not publish it, or withdraw the group's release\n", p)
			return kit.ExitUsage
		}
		t := &r.Target
		t.Merchants, t.MerchantGroups, t.Tiers = splitList(*lists["merchants"]), splitList(*lists["merchant-groups"]), splitList(*lists["tiers"])
		t.Regions, t.Models, t.Kinds, t.Terminals = splitList(*lists["regions"]), splitList(*lists["models"]), splitList(*lists["kinds"]), splitList(*lists["terminals"])
		r.Reason = *reason
		var ch registry.Change
		if err := c.Do(env.Ctx, "POST", "/api/v1/apps/publish", r, &ch); err != nil {
			return fail(env, "app publish: %v", err)
		}
		return requested(&ch)
	case "withdraw":
		var r apps.WithdrawRequest
		fs.StringVar(&r.Group, "group", "", "the rollout group")
		fs.BoolVar(&r.Rollback, "rollback", false, "make the group's previous release current again")
		if ok, code := parse(fs, rest); !ok {
			return code
		}
		r.Reason = *reason
		var ch registry.Change
		if err := c.Do(env.Ctx, "POST", "/api/v1/apps/withdraw", r, &ch); err != nil {
			return fail(env, "app withdraw: %v", err)
		}
		return requested(&ch)
	case "status":
		group := fs.String("group", "", "one group (default all)")
		if ok, code := parse(fs, rest); !ok {
			return code
		}
		var ros []apps.Rollout
		if err := c.Do(env.Ctx, "GET", "/api/v1/apps/rollout?group="+url.QueryEscape(*group), nil, &ros); err != nil {
			return fail(env, "app status: %v", err)
		}
		if *asJSON {
			return printJSON(env, ros)
		}
		loc, err := acquirerZone(env)
		if err != nil {
			return fail(env, "app status: %v", err)
		}
		// Terminals report their versions and failures, and a package's name and
		// version are what its manifest said: kit.ForTerminal escapes control
		// characters in them.
		esc := kit.ForTerminal
		if len(ros) == 0 {
			// Nothing at all left a new user wondering whether the command ran.
			fmt.Fprintln(env.Stdout, "no rollout groups: switchyard app publish --group G ... defines one (under review)")
		}
		for _, ro := range ros {
			rel := "no release (withdrawn)"
			if cur := ro.Current; cur != nil {
				rel = fmt.Sprintf("%s@%s to %v%% (%s)", esc(cur.App), esc(cur.Version), pct(cur.Target.Percent), esc(cur.Change))
				if cur.MinVersion != "" {
					rel += ", minimum " + esc(cur.MinVersion)
				}
			}
			fmt.Fprintf(env.Stdout, "group %s: %s\n  terminals %d, offered %d, on the release %d, below the minimum %d, failures %d\n",
				esc(ro.Group), rel, ro.Terminals, ro.Offered, ro.OnRelease, ro.BelowMin, ro.Failures)
			if ro.Refused != "" {
				fmt.Fprintf(env.Stdout, "  not offered: %s\n", esc(ro.Refused))
			}
			vs := make([]string, 0, len(ro.Versions))
			for v := range ro.Versions {
				vs = append(vs, v)
			}
			sort.Strings(vs)
			for _, v := range vs {
				fmt.Fprintf(env.Stdout, "  %-12s %d\n", esc(v), ro.Versions[v])
			}
			if ro.Unrecorded > 0 {
				fmt.Fprintf(env.Stdout, "  (%d of these reported before the application was recorded: counted here until they report again)\n", ro.Unrecorded)
			}
			if len(ro.UnknownApp) > 0 {
				// Terminals naming no application (no DE 48 AN) in groups of several.
				uv := slices.Sorted(maps.Keys(ro.UnknownApp))
				fmt.Fprintf(env.Stdout, "  unknown application (no AN, groups of several applications):\n")
				for _, v := range uv {
					fmt.Fprintf(env.Stdout, "    %-10s %d\n", esc(v), ro.UnknownApp[v])
				}
			}
			if ro.OtherApp > 0 {
				fmt.Fprintf(env.Stdout, "  running another application: %d\n", ro.OtherApp)
			}
			if ro.OtherVersion > 0 {
				// Installation reports naming another version than the package
				// their download token was for: counted by version, not on the release.
				fmt.Fprintf(env.Stdout, "  reported installing another version than their token's package: %d (not counted on the release)\n", ro.OtherVersion)
				for _, r := range ro.OtherVersions {
					fmt.Fprintf(env.Stdout, "  other version: %s reported %s, its token was for %s\n", esc(r.Terminal), esc(r.Version), esc(r.TokenVersion))
				}
			}
			for _, f := range ro.Failed {
				fmt.Fprintf(env.Stdout, "  failed: %s %s at %s: %s\n", esc(f.Terminal), esc(f.Failed.Version), kit.LocalTime(f.Failed.At, loc), esc(f.Failed.Detail))
			}
		}
		return 0
	case "groups":
		if ok, code := parse(fs, rest); !ok {
			return code
		}
		var gs []apps.Group
		if err := c.Do(env.Ctx, "GET", "/api/v1/apps/groups", nil, &gs); err != nil {
			return fail(env, "app groups: %v", err)
		}
		if *asJSON {
			return printJSON(env, gs)
		}
		loc, err := acquirerZone(env)
		if err != nil {
			return fail(env, "app groups: %v", err)
		}
		printGroups(env, gs, loc)
		return 0
	case "key":
		if len(rest) == 0 {
			return fail(env, "app key: add, revoke or list")
		}
		what, rest := rest[0], rest[1:]
		pubFile := fs.String("public-key", "", "PEM file of the public key (Ed25519 or ECDSA)")
		pos, ok, code := parseInterleaved(fs, rest)
		if !ok {
			return code
		}
		switch what {
		case "list":
			var ks []apps.SigningKey
			if err := c.Do(env.Ctx, "GET", "/api/v1/apps/keys", nil, &ks); err != nil {
				return fail(env, "app key list: %v", err)
			}
			if *asJSON {
				return printJSON(env, ks)
			}
			loc, err := acquirerZone(env)
			if err != nil {
				return fail(env, "app key list: %v", err)
			}
			if len(ks) == 0 {
				fmt.Fprintln(env.Stdout, "no app-signing keys: switchyard app key add ID --public-key FILE.pem adds one (under review)")
			}
			for _, k := range ks {
				fmt.Fprintf(env.Stdout, "%s\t%s\tadded %s by %s\trevoked=%v\n", kit.ForTerminal(k.ID), k.Algorithm, kit.LocalTime(k.AddedAt, loc), kit.ForTerminal(k.AddedBy), k.Revoked)
			}
			return 0
		case "add":
			if len(pos) != 1 || *pubFile == "" {
				return fail(env, "app key add wants a key ID and --public-key FILE")
			}
			b, err := os.ReadFile(*pubFile)
			if err != nil {
				return fail(env, "app key add: %v", err)
			}
			var ch registry.Change
			if err := c.Do(env.Ctx, "POST", "/api/v1/apps/keys", apps.KeyRequest{SigningKey: apps.SigningKey{ID: pos[0], PublicKey: string(b)}, Reason: *reason}, &ch); err != nil {
				return fail(env, "app key add: %v", err)
			}
			return requested(&ch)
		case "revoke":
			// The API takes the key as it stands, marked revoked: read it first, so
			// that the operator needs only its ID.
			if len(pos) != 1 {
				return fail(env, "app key revoke wants a key ID")
			}
			var ks []apps.SigningKey
			if err := c.Do(env.Ctx, "GET", "/api/v1/apps/keys", nil, &ks); err != nil {
				return fail(env, "app key revoke: %v", err)
			}
			i := slices.IndexFunc(ks, func(k apps.SigningKey) bool { return k.ID == pos[0] })
			if i < 0 {
				return fail(env, "app key revoke: no approved app-signing key %q (switchyard app key list)", pos[0])
			}
			k := ks[i]
			k.Revoked = true
			var ch registry.Change
			if err := c.Do(env.Ctx, "POST", "/api/v1/apps/keys", apps.KeyRequest{SigningKey: k, Reason: *reason}, &ch); err != nil {
				return fail(env, "app key revoke: %v", err)
			}
			return requested(&ch)
		}
		return fail(env, "app key: unknown %q (add, revoke or list)", what)
	}
	fmt.Fprintf(env.Stderr, "switchyard: app: unknown subcommand %q\nUsage:\n%s\n", sub, appUsage)
	return 2
}

// printGroups shows the rollout groups for people: each group's release in force,
// whom it targets, and how many came before it or were withdrawn.
func printGroups(env *Env, gs []apps.Group, loc *time.Location) {
	var rows [][]string
	for _, g := range gs {
		row := []string{g.Name, "none (withdrawn)", "-", "-", "-", "-", "-", "-", "-"}
		if r := g.Current; r != nil {
			// How many registered terminals the target matches now: 0 is a
			// release that reaches nobody (IDs to be registered later, or a
			// selector that matches no terminal).
			matches := strconv.Itoa(g.Matches)
			if r.AllowUnknownTargets {
				matches += " (unknown IDs allowed)"
			}
			row = []string{g.Name, r.App + "@" + r.Version, targetText(&r.Target), matches, dash(r.MinVersion), dash(r.Change),
				kit.LocalTime(r.PublishedAt, loc), dash(r.RequestedBy), dash(r.ApprovedBy)}
		}
		rows = append(rows, append(row, strconv.Itoa(len(g.History)), strconv.Itoa(len(g.Withdrawn))))
	}
	kit.Table(env.Stdout, "GROUP\tRELEASE\tTARGET\tTERMINALS\tMINIMUM\tCHANGE\tPUBLISHED\tREQUESTED BY\tAPPROVED BY\tEARLIER\tWITHDRAWN", rows)
}

// targetText says which terminals a release is offered to.
func targetText(t *apps.Target) string {
	var parts []string
	for _, s := range []struct {
		name string
		vals []string
	}{{"merchants", t.Merchants}, {"merchant-groups", t.MerchantGroups}, {"tiers", t.Tiers}, {"regions", t.Regions},
		{"models", t.Models}, {"kinds", t.Kinds}, {"terminals", t.Terminals}} {
		if len(s.vals) > 0 {
			parts = append(parts, s.name+"="+strings.Join(s.vals, ","))
		}
	}
	if len(parts) == 0 {
		parts = []string{"all terminals"}
	}
	return fmt.Sprintf("%v%% of %s", pct(t.Percent), strings.Join(parts, " "))
}

func pct(p float64) float64 {
	if p == 0 {
		return 100
	}
	return p
}

// appStatement prints the statement an app-signing key signs for a package file.
func appStatement(env *Env, args []string) int {
	fs := newFlags(env, "app statement", "FILE --name N --version V [--models ..] [--kinds ..]")
	name := fs.String("name", "", "package name")
	version := fs.String("version", "", "version")
	models := fs.String("models", "", "models (comma-separated)")
	kinds := fs.String("kinds", "", "kinds (comma-separated)")
	pos, ok, code := parseInterleaved(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return fail(env, "app statement wants one package file")
	}
	b, err := os.ReadFile(pos[0])
	if err != nil {
		return fail(env, "app statement: %v", err)
	}
	sum := sha256.Sum256(b)
	_, _ = env.Stdout.Write(apps.Statement(*name, *version, hex.EncodeToString(sum[:]), int64(len(b)), splitList(*models), splitList(*kinds)))
	return 0
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// isBase64 reports whether s reads as base64 (a signature file may hold text).
func isBase64(s string) bool {
	if s == "" {
		return false
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if _, err := enc.DecodeString(s); err == nil {
			return true
		}
	}
	return false
}

// shortHash is the first 16 characters of a package's hash, for a table; a shorter
// one (an older or broken answer) as it is, not a panic.
func shortHash(h string) string {
	if len(h) <= 16 {
		return h
	}
	return h[:16] + "…"
}
