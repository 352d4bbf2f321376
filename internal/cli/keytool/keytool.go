// Package keytool is the key ceremony tool behind "switchyard keys": it imports keys
// from clear components typed in by key custodians, generates, lists, rotates and
// exports keys, and verifies the key audit log, all through the key-management admin
// API (package keys) by way of an apiclient.Client, which talks to a running switch or,
// in offline mode, to the same handler in-process. It never prints key bytes; the
// only key material it prints is a key exported under a KEK (or under the LMK: the
// card hash key's block).
package keytool

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/kcv"
	"github.com/switchyard/switchyard/internal/cli/apiclient"
	"github.com/switchyard/switchyard/internal/cli/kit"
	"github.com/switchyard/switchyard/keys"
	"github.com/switchyard/switchyard/switch/config"
)

// Subcommands are the subcommands of the keys command.
var Subcommands = []string{"import", "generate", "list", "rotate", "export", "export-component", "kcv", "revoke", "verify-log", "card-hash-key"}

// Exit statuses of Run.
const (
	ExitOK    = kit.ExitOK
	ExitError = kit.ExitError
	ExitUsage = kit.ExitUsage
)

// Usage is the help text of the keys command.
const Usage = `usage: switchyard keys <command> [flags]

commands:
  import --type T --id ID [--components 2|3] [--enter K] [--algorithm A] [--mac-algorithm M] [--owner O]
         dual control: reads this custodian's K components (default all) from standard
         input, each a hex component and the KCV printed on its form (same line or the
         next), and sends them to the switch, which forms the key once every component
         is there. Outside demo mode each custodian, logged in with their own token,
         enters one (--enter 1); one person entering two components is refused. From a
         terminal the components are read without echo. Clear components go only to an
         https --admin URL or one of this machine (plain http to another host is refused).
  import --type T --id ID --kek ID [--kek-version N] (--tr31 BLOCK | --ecb HEX[:KCV]) [--kcv KCV] [--algorithm A] ...
         a key encrypted under a KEK of the key store (as keys export writes it on another
         switch sharing that ZMK): no clear component is handled.
  generate --type T --id ID [--algorithm A] [--mac-algorithm M] [--owner O]
         [--activate-at RFC3339] [--expires-at RFC3339] [--export-kek ID [--export-format tr31|ecb]]
  list   [--id ID] [--json]        ID, version, type, algorithm, KCV, status, times in the
                                   acquirer's zone ($SWITCHYARD_TIMEZONE) (never keys)
  rotate --id ID [--grace 24h] [--activate-at RFC3339] [--export-kek ID [--export-format tr31|ecb]]
         --grace: how long the old version stays usable inbound, 0s to 720h (30 days)
  export --id ID --kek ID [--version N] [--kek-version N] [--format tr31|ecb]
  export-component --id ID [--components 2|3] [--version N]
         dual control: prints this custodian's clear component of the key and its KCV
         (and the key's KCV); each custodian, with their own token, takes one; over
         https, or plain http from this machine only, as import.
  cancel-ceremony --id ID --kind import|export --reason TEXT
         ends a key ceremony of this switch node before its 30 minutes (audited): its
         custodians may, and, while one component only is entered (import) or taken
         (export), so may any admin who could be its next custodian; the components
         kept are wiped and the ceremony's custodians start again.
  kcv    --id ID [--version N]
  revoke --id ID --version N [--reason TEXT]
  verify-log                       check the hash chain of the key audit log
  card-hash-key                    the running switch's card hash key as a TR-31 block under
                                   its LMK, with its check value: the value of
                                   security.card_hash_key_block (no clear key is shown)

types: TMK ZMK TPK ZPK TAK ZAK BDK CVK DEK TDK; algorithms: TDES-2KEY (default),
TDES-3KEY, AES-128, AES-192, AES-256; MAC algorithms (TAK, ZAK): retail, cmac.
`

// usagef returns a usage error (exit ExitUsage), kit's.
func usagef(format string, args ...any) error { return kit.Usagef(format, args...) }

// Run runs "switchyard keys" with args (after "keys") against the admin API through
// c, reading components from os.Stdin. The times it prints for people are in loc,
// the acquirer's zone (nil: UTC). It returns the exit status.
func Run(ctx context.Context, args []string, c *apiclient.Client, loc *time.Location, stdout, stderr io.Writer) int {
	return RunWithInput(ctx, args, c, loc, os.Stdin, stdout, stderr)
}

// RunWithInput is Run with the standard input given (for import's components).
func RunWithInput(ctx context.Context, args []string, c *apiclient.Client, loc *time.Location, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, Usage)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	t := &tool{ctx: ctx, c: c, loc: loc, in: stdin, out: stdout, errw: stderr}
	var err error
	switch args[0] {
	case "import":
		err = t.importKey(args[1:])
	case "generate":
		err = t.generate(args[1:])
	case "list":
		err = t.list(args[1:])
	case "rotate":
		err = t.rotate(args[1:])
	case "export":
		err = t.export(args[1:])
	case "export-component":
		err = t.exportComponent(args[1:])
	case "cancel-ceremony":
		err = t.cancelCeremony(args[1:])
	case "kcv":
		err = t.kcv(args[1:])
	case "revoke":
		err = t.revoke(args[1:])
	case "verify-log":
		err = t.verifyLog(args[1:])
	case "card-hash-key":
		err = t.cardHashKey(args[1:])
	default:
		err = usagef("unknown command %q", args[0])
	}
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return ExitOK
	}
	if kit.IsUsage(err) {
		fmt.Fprintf(stderr, "switchyard keys %s: %s\nrun 'switchyard keys help' for usage\n", args[0], kit.ForTerminalLines(err.Error()))
		return ExitUsage
	}
	fmt.Fprintf(stderr, "switchyard keys %s: %s\n", args[0], kit.ForTerminalLines(err.Error())) // it can quote the API's answer
	return ExitError
}

type tool struct {
	ctx  context.Context
	c    *apiclient.Client
	loc  *time.Location // the zone of the times printed for people
	in   io.Reader
	out  io.Writer
	errw io.Writer
}

func (t *tool) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(t.errw)
	return fs
}

func parse(fs *flag.FlagSet, args []string, required ...string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &kit.UsageError{Msg: err.Error()}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	for _, name := range required {
		if fs.Lookup(name).Value.String() == "" {
			return usagef("--%s is required", name)
		}
	}
	return nil
}

func parseTime(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	tm, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, usagef("--%s %q is not an RFC 3339 time like 2025-07-01T00:00:00Z", name, v)
	}
	return tm, nil
}

// specFlags are the flags that describe a new key.
type specFlags struct {
	typ, id, alg, macAlg, owner, activate, expires *string
}

func addSpec(fs *flag.FlagSet) specFlags {
	return specFlags{
		typ:      fs.String("type", "", "key type (TMK, ZMK, TPK, ZPK, TAK, ZAK, BDK, CVK, DEK)"),
		id:       fs.String("id", "", "key ID"),
		alg:      fs.String("algorithm", "", "TDES-2KEY (default), TDES-3KEY, AES-128, AES-192, AES-256"),
		macAlg:   fs.String("mac-algorithm", "", "TAK/ZAK: retail or cmac"),
		owner:    fs.String("owner", "", "terminal ID, issuer ID, or KSN prefix for a BDK"),
		activate: fs.String("activate-at", "", "activation time (RFC 3339; default now)"),
		expires:  fs.String("expires-at", "", "expiry time (RFC 3339; default never)"),
	}
}

func (s specFlags) request() (keys.SpecRequest, error) {
	act, err := parseTime("activate-at", *s.activate)
	if err != nil {
		return keys.SpecRequest{}, err
	}
	exp, err := parseTime("expires-at", *s.expires)
	if err != nil {
		return keys.SpecRequest{}, err
	}
	return keys.SpecRequest{ID: *s.id, Type: strings.ToUpper(*s.typ), Algorithm: *s.alg, MACAlgorithm: *s.macAlg, Owner: *s.owner, ActivateAt: act, ExpiresAt: exp}, nil
}

func exportTarget(kek, format string, kekVersion int) *keys.ExportTarget {
	if kek == "" {
		return nil
	}
	return &keys.ExportTarget{KEK: kek, KEKVersion: kekVersion, Format: format}
}

func (t *tool) printResult(res hsm.KeyResult) {
	fmt.Fprintf(t.out, "stored %s version %d: %s %s, KCV %s (%s)\n", res.Ref.ID, res.Ref.Version, res.Type, res.Algorithm, res.KCV, res.KCVMethod)
	if res.Exported != "" {
		fmt.Fprintf(t.out, "exported: %s\n", res.Exported)
	}
}

func (t *tool) importKey(args []string) error {
	fs := t.flags("import")
	spec := addSpec(fs)
	n := fs.Int("components", 2, "number of clear components: 2 or 3")
	enter := fs.Int("enter", 0, "how many of the components this custodian enters (default all; outside demo mode each custodian enters 1)")
	kek := fs.String("kek", "", "import a key encrypted under this KEK (a ZMK or TMK of the key store) instead of components")
	kekVersion := fs.Int("kek-version", 0, "with --kek: the KEK's version (default: current)")
	tr31 := fs.String("tr31", "", "with --kek: the key as a TR-31 key block under the KEK (as keys export writes it)")
	ecb := fs.String("ecb", "", "with --kek: the key as HEXKEY[:KCV], ECB under the KEK")
	wantKCV := fs.String("kcv", "", "with --kek: the key's expected KCV")
	if err := parse(fs, args, "type", "id"); err != nil {
		return err
	}
	if *kek != "" || *tr31 != "" || *ecb != "" {
		if *kek == "" || (*tr31 == "") == (*ecb == "") {
			return usagef("import under a KEK: want --kek and one of --tr31 or --ecb")
		}
		req, err := spec.request()
		if err != nil {
			return err
		}
		var res hsm.KeyResult
		if err := t.c.Do(t.ctx, "POST", "/api/v1/keys/import", keys.ImportRequest{SpecRequest: req, KEK: *kek, KEKVersion: *kekVersion, TR31: *tr31, ECB: *ecb, KCV: *wantKCV}, &res); err != nil {
			return err
		}
		t.printResult(res)
		return nil
	}
	if *n != 2 && *n != 3 {
		return usagef("--components is %d: want 2 or 3", *n)
	}
	if err := t.clearKeyTransport("send clear key components to"); err != nil {
		return err // before a custodian types one
	}
	if *enter == 0 {
		*enter = *n
	}
	if *enter < 1 || *enter > *n {
		return usagef("--enter is %d: want 1 to %d", *enter, *n)
	}
	req, err := spec.request()
	if err != nil {
		return err
	}
	alg, err := hsm.ParseAlgorithm(req.Algorithm)
	if err != nil {
		return &kit.UsageError{Msg: err.Error()}
	}
	want := alg.KeyLength()
	in := newLineReader(t.in, t.errw)
	hidden := ""
	if in.tty {
		hidden = ", not shown as typed"
	}
	combined := make([]byte, want)
	defer clear(combined)
	var resp keys.ComponentResponse
	for i := 1; i <= *enter; i++ {
		fmt.Fprintf(t.errw, "component %d of %d (%d hex digits%s, then its KCV from the form): ", i, *enter, 2*want, hidden)
		text, ok, err := in.line(true)
		if err != nil {
			return fmt.Errorf("read component %d: %w", i, err)
		}
		if !ok {
			return fmt.Errorf("component %d of %d: standard input ended", i, *enter)
		}
		fields := strings.Fields(text)
		text = ""
		var formKCV string
		if len(fields) > 1 && len(fields[len(fields)-1]) == 2*kcv.Length && len(strings.Join(fields[:len(fields)-1], "")) == 2*want {
			formKCV, fields = fields[len(fields)-1], fields[:len(fields)-1]
		}
		line := strings.Join(fields, "")
		c, err := hex.DecodeString(line)
		if err != nil || len(c) != want {
			clear(c)
			return fmt.Errorf("component %d is not %d hex digits (a %s key is %d bytes)", i, 2*want, alg, want)
		}
		k, err := kcv.Compute(c, alg.KCVMethod())
		if err != nil {
			return fmt.Errorf("component %d: %w", i, err)
		}
		for j := range combined {
			combined[j] ^= c[j]
		}
		clear(c)
		if formKCV == "" {
			fmt.Fprintf(t.errw, "KCV of component %d (from its form): ", i)
			text, ok, err := in.line(false)
			if err != nil {
				return fmt.Errorf("read the KCV of component %d: %w", i, err)
			}
			if !ok {
				return fmt.Errorf("KCV of component %d: standard input ended", i)
			}
			formKCV = strings.TrimSpace(text)
		}
		if !strings.EqualFold(formKCV, k.String()) {
			return fmt.Errorf("component %d has KCV %s, its form says %s: check the typing", i, k, formKCV)
		}
		fmt.Fprintf(t.out, "component %d KCV: %s\n", i, k)
		resp = keys.ComponentResponse{}
		err = t.c.Do(t.ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: req, Components: *n, Component: line, KCV: k.String()}, &resp)
		line = ""
		if err != nil {
			return err
		}
	}
	if resp.Result == nil {
		until := ""
		if !resp.Expires.IsZero() {
			until = " until " + resp.Expires.In(t.loc).Format(kit.LocalTimeLayout)
		}
		fmt.Fprintf(t.out, "%d of %d components of %s entered (by %s); waiting for %d more custodian(s) on this switch node%s\n",
			resp.Entered, resp.Of, resp.ID, strings.Join(resp.Custodians, ", "), resp.Of-resp.Entered, until)
		return nil
	}
	if *enter == *n {
		k, err := kcv.Compute(combined, alg.KCVMethod())
		if err != nil {
			return err
		}
		fmt.Fprintf(t.out, "combined KCV: %s\n", k)
		if resp.Result.KCV != k.String() {
			return fmt.Errorf("the switch stored %s v%d with KCV %s, but the components combine to KCV %s: revoke it and repeat the ceremony", resp.Result.Ref.ID, resp.Result.Ref.Version, resp.Result.KCV, k)
		}
	}
	t.printResult(*resp.Result)
	return nil
}

func (t *tool) generate(args []string) error {
	fs := t.flags("generate")
	spec := addSpec(fs)
	kek := fs.String("export-kek", "", "also export the key under this KEK (TMK or ZMK)")
	format := fs.String("export-format", "tr31", "tr31, or ecb for the WP/WM HEXKEY:KCV form")
	if err := parse(fs, args, "type", "id"); err != nil {
		return err
	}
	req, err := spec.request()
	if err != nil {
		return err
	}
	var res hsm.KeyResult
	if err := t.c.Do(t.ctx, "POST", "/api/v1/keys/generate", keys.GenerateRequest{SpecRequest: req, Export: exportTarget(*kek, *format, 0)}, &res); err != nil {
		return err
	}
	t.printResult(res)
	return nil
}

func (t *tool) list(args []string) error {
	fs := t.flags("list")
	id := fs.String("id", "", "only this key")
	asJSON := fs.Bool("json", false, "print the list as JSON (never keys either)")
	if err := parse(fs, args); err != nil {
		return err
	}
	path := "/api/v1/keys"
	if *id != "" {
		path += "/" + url.PathEscape(*id)
	}
	var l keys.KeyList
	if err := t.c.Do(t.ctx, "GET", path, nil, &l); err != nil {
		return err
	}
	if *asJSON {
		return kit.JSON(t.out, l)
	}
	// kit.Table escapes control characters: a key's ID and owner (a terminal's
	// TID) are what an operator or a terminal's message gave.
	rows := make([][]string, 0, len(l.Keys))
	day := func(tm time.Time) string { return kit.LocalTime(tm, t.loc) }
	for _, k := range l.Keys {
		alg := string(k.Algorithm)
		if k.MACAlgorithm != "" {
			alg += "/" + string(k.MACAlgorithm)
		}
		owner := k.Owner
		if owner == "" {
			owner = "-"
		}
		rows = append(rows, []string{k.ID, strconv.Itoa(k.Version), string(k.Type), alg, k.KCV, string(k.Status), day(k.ActivateAt), day(k.ExpiresAt), day(k.GraceUntil), owner})
	}
	kit.Table(t.out, "ID\tVERSION\tTYPE\tALGORITHM\tKCV\tSTATUS\tACTIVATE\tEXPIRES\tGRACE UNTIL\tOWNER", rows)
	return nil
}

func (t *tool) rotate(args []string) error {
	fs := t.flags("rotate")
	id := fs.String("id", "", "key ID")
	grace := fs.String("grace", "", "keep the old version usable for decryption and verification this long (e.g. 24h; at most 720h)")
	activate := fs.String("activate-at", "", "activation time of the new version (RFC 3339; default now)")
	expires := fs.String("expires-at", "", "expiry of the new version (RFC 3339)")
	kek := fs.String("export-kek", "", "also export the new version under this KEK")
	format := fs.String("export-format", "tr31", "tr31 or ecb")
	if err := parse(fs, args, "id"); err != nil {
		return err
	}
	if *grace != "" {
		if _, err := keys.ParseGrace("--grace", *grace); err != nil {
			return &kit.UsageError{Msg: err.Error()} // the switch refuses it too (400)
		}
	}
	act, err := parseTime("activate-at", *activate)
	if err != nil {
		return err
	}
	exp, err := parseTime("expires-at", *expires)
	if err != nil {
		return err
	}
	var res hsm.KeyResult
	req := keys.RotateRequest{Grace: *grace, ActivateAt: act, ExpiresAt: exp, Export: exportTarget(*kek, *format, 0)}
	if err := t.c.Do(t.ctx, "POST", "/api/v1/keys/"+url.PathEscape(*id)+"/rotate", req, &res); err != nil {
		return err
	}
	t.printResult(res)
	return nil
}

func (t *tool) export(args []string) error {
	fs := t.flags("export")
	id := fs.String("id", "", "key ID")
	version := fs.Int("version", 0, "key version (default: current)")
	kek := fs.String("kek", "", "KEK ID (a TMK or ZMK)")
	kekVersion := fs.Int("kek-version", 0, "KEK version (default: current)")
	format := fs.String("format", "tr31", "tr31, or ecb for the HEXKEY:KCV form")
	if err := parse(fs, args, "id", "kek"); err != nil {
		return err
	}
	var res keys.ExportResponse
	req := keys.ExportRequest{Version: *version, ExportTarget: keys.ExportTarget{KEK: *kek, KEKVersion: *kekVersion, Format: *format}}
	if err := t.c.Do(t.ctx, "POST", "/api/v1/keys/"+url.PathEscape(*id)+"/export", req, &res); err != nil {
		return err
	}
	fmt.Fprintln(t.out, res.Block)
	return nil
}

func (t *tool) exportComponent(args []string) error {
	fs := t.flags("export-component")
	id := fs.String("id", "", "key ID")
	version := fs.Int("version", 0, "key version (default: current)")
	n := fs.Int("components", 2, "number of components: 2 or 3")
	if err := parse(fs, args, "id"); err != nil {
		return err
	}
	if err := t.clearKeyTransport("take a clear key component from"); err != nil {
		return err // before the switch hands one out
	}
	var res keys.ExportComponentResponse
	req := keys.ExportComponentsRequest{Version: *version, Components: *n}
	if err := t.c.Do(t.ctx, "POST", "/api/v1/keys/"+url.PathEscape(*id)+"/export-components", req, &res); err != nil {
		return err
	}
	fmt.Fprintf(t.out, "%s version %d (KCV %s), component %d of %d for you alone:\n%s\ncomponent KCV %s\n",
		res.Key.ID, res.Key.Version, res.KeyKCV, res.Index, res.Of, res.Component, res.KCV)
	return nil
}

// cancelCeremony ends a key ceremony before its time (keys/ceremony.go).
func (t *tool) cancelCeremony(args []string) error {
	fs := t.flags("cancel-ceremony")
	id := fs.String("id", "", "key ID")
	kind := fs.String("kind", "import", "import (components entered) or export (components taken)")
	reason := fs.String("reason", "", "why (for the audit log)")
	if err := parse(fs, args, "id", "reason"); err != nil {
		return err
	}
	var res keys.CancelCeremonyResponse
	if err := t.c.Do(t.ctx, "POST", "/api/v1/keys/"+url.PathEscape(*id)+"/cancel-ceremony", keys.CancelCeremonyRequest{Kind: *kind, Reason: *reason}, &res); err != nil {
		return err
	}
	fmt.Fprintf(t.out, "cancelled the %s ceremony of %s started by %s at %s (%d of %d components, by %s); its components are wiped\n",
		res.Kind, res.ID, res.StartedBy, res.Started.In(t.loc).Format(time.DateTime+" MST"), res.Done, res.Of, strings.Join(res.Custodians, ", "))
	return nil
}

func (t *tool) kcv(args []string) error {
	fs := t.flags("kcv")
	id := fs.String("id", "", "key ID")
	version := fs.Int("version", 0, "key version (default: current)")
	if err := parse(fs, args, "id"); err != nil {
		return err
	}
	var k hsm.KeyCheck
	if err := t.c.Do(t.ctx, "GET", fmt.Sprintf("/api/v1/keys/%s/kcv?version=%d", url.PathEscape(*id), *version), nil, &k); err != nil {
		return err
	}
	fmt.Fprintf(t.out, "%s version %d KCV %s (%s)\n", k.Ref.ID, k.Ref.Version, k.KCV, k.Method)
	return nil
}

func (t *tool) revoke(args []string) error {
	fs := t.flags("revoke")
	id := fs.String("id", "", "key ID")
	version := fs.Int("version", 0, "key version to revoke")
	reason := fs.String("reason", "", "why (for the audit log)")
	if err := parse(fs, args, "id"); err != nil {
		return err
	}
	if *version < 1 {
		return usagef("--version is required (revocation is per version and final)")
	}
	var info keys.KeyInfo
	if err := t.c.Do(t.ctx, "POST", "/api/v1/keys/"+url.PathEscape(*id)+"/status", keys.StatusRequest{Version: *version, Status: "revoked", Reason: *reason}, &info); err != nil {
		return err
	}
	fmt.Fprintf(t.out, "revoked %s version %d (KCV %s)\n", info.ID, info.Version, info.KCV)
	return nil
}

func (t *tool) verifyLog(args []string) error {
	fs := t.flags("verify-log")
	if err := parse(fs, args); err != nil {
		return err
	}
	var r keys.VerifyLogResponse
	if err := t.c.Do(t.ctx, "GET", "/api/v1/keys/audit/verify", nil, &r); err != nil {
		return err
	}
	if !r.OK {
		return fmt.Errorf("key audit log BROKEN: %s (%d entries verified before it)", r.Error, r.Entries)
	}
	fmt.Fprintf(t.out, "key audit log OK: %d entries, hash chain intact\n", r.Entries)
	return nil
}

func (t *tool) cardHashKey(args []string) error {
	fs := t.flags("card-hash-key")
	if err := parse(fs, args); err != nil {
		return err
	}
	var res keys.CardHashKeyBlock
	if err := t.c.Do(t.ctx, "POST", "/api/v1/keys/card-hash-key/export", nil, &res); err != nil {
		return err
	}
	fmt.Fprintf(t.out, "# the card hash key (now from %s, check value %s) under the switch's LMK:\nsecurity:\n  card_hash_key_block: %s\n", res.Source, res.KCV, res.Block)
	return nil
}

// clearKeyTransport refuses a call that would carry a clear key component (what:
// "send clear key components to") over plain http to a host other than this
// machine (config.LoopbackHost: names are not resolved), where anyone on the path
// reads it; https (a TLS proxy in front of the admin API, which speaks plain HTTP),
// plain http to this machine and the --data mode (in-process) pass. There is no
// flag to override it, as there is none for the wallet URLs' same rule.
func (t *tool) clearKeyTransport(what string) error {
	if t.c.Handler != nil {
		return nil
	}
	u, err := url.Parse(t.c.BaseURL)
	if err != nil || u.Scheme != "http" || config.LoopbackHost(u.Hostname()) {
		return nil // not a URL: the call fails as it always did, sending nothing
	}
	return fmt.Errorf("refusing to %s %s over plain http: a clear component would cross the network unencrypted; "+
		"give an https URL (a TLS proxy in front of the admin API) in --admin or $SWITCHYARD_ADMIN, or run this command on the switch's host (http://127.0.0.1:PORT)",
		what, (&url.URL{Scheme: u.Scheme, Host: u.Host}).String())
}

// lineReader reads a custodian's lines from standard input: from a pipe or a file
// with a bufio.Scanner, as before; from a terminal a byte at a time (no read-ahead
// past the line), a hidden line (a clear component) with the terminal's echo off.
type lineReader struct {
	sc   *bufio.Scanner // not a terminal
	f    *os.File       // a terminal
	tty  bool
	errw io.Writer
}

func newLineReader(in io.Reader, errw io.Writer) *lineReader {
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return &lineReader{f: f, tty: true, errw: errw}
	}
	return &lineReader{sc: bufio.NewScanner(in), errw: errw}
}

// line returns the next line without its end, and false at the end of the input
// (a line cut by it counts). On a terminal a hidden line is read without echo, and
// the end of line the custodian typed is written to errw in its place.
func (r *lineReader) line(hidden bool) (string, bool, error) {
	if !r.tty {
		if !r.sc.Scan() {
			return "", false, r.sc.Err()
		}
		return r.sc.Text(), true, nil
	}
	if hidden {
		b, err := term.ReadPassword(int(r.f.Fd()))
		defer clear(b)
		fmt.Fprintln(r.errw)
		switch {
		case err == io.EOF: // nothing typed before the end (^D)
			return "", false, nil
		case err != nil:
			return "", false, err
		}
		return string(b), true, nil
	}
	var line []byte
	one := make([]byte, 1)
	for {
		n, err := r.f.Read(one)
		switch {
		case n == 1 && one[0] == '\n':
			return strings.TrimSuffix(string(line), "\r"), true, nil
		case n == 1:
			line = append(line, one[0])
		case err == io.EOF:
			return string(line), len(line) > 0, nil
		case err != nil:
			return "", false, err
		}
	}
}
