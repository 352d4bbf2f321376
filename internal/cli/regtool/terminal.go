package regtool

import (
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/switch/registry"
)

type terminalFlagValues struct {
	f                                        *flags
	merchant, kind, device, iccid, imei, loc *string
	networks, minVer, policy, pinMode        *string
	model                                    *string
	tmk, tpk, tak, bdk, dukptDevice          *string
	macRequired, clearLocation               *bool
	attestMaxAge                             *time.Duration
	attestLegacy                             *bool
}

func terminalFlags(f *flags) *terminalFlagValues {
	return &terminalFlagValues{
		f:             f,
		merchant:      f.String("merchant", "", "merchant ID"),
		kind:          f.String("kind", "", "pos, mpos or softpos"),
		model:         f.String("model", "", "hardware model, for application targeting (switchyard app publish --models)"),
		device:        f.String("device-serial", "", "bound device serial (DI); empty unbinds"),
		iccid:         f.String("iccid", "", "bound SIM ICCID (SI); empty unbinds"),
		imei:          f.String("imei", "", "bound IMEI (IM); empty unbinds"),
		loc:           f.String("location", "", "deployed location LAT,LON,RADIUS_M"),
		networks:      f.String("networks", "", "allowed source networks, CIDRs separated by commas; empty allows any"),
		minVer:        f.String("min-app-version", "", "minimum application version (dotted numeric)"),
		policy:        f.String("policy", "", "missing identity or location: decline or flag"),
		pinMode:       f.String("pin-mode", "", "tpk or dukpt"),
		tmk:           f.String("tmk", "", "TMK key reference"),
		tpk:           f.String("tpk", "", "TPK key reference"),
		tak:           f.String("tak", "", "TAK key reference"),
		bdk:           f.String("bdk", "", "DUKPT BDK key reference"),
		dukptDevice:   f.String("dukpt-device", "", "DUKPT device bound to the terminal: its KSN without the counter (15 hex digits TDES, 16 AES) or a whole KSN; empty unbinds"),
		macRequired:   f.Bool("mac-required", false, "messages must carry a MAC"),
		clearLocation: f.Bool("clear-location", false, "remove the deployed location (change only)"),
		attestMaxAge:  f.Duration("attest-max-age", 0, "SoftPOS: how old an attestation may be (0: the switch's default, 120s)"),
		attestLegacy:  f.Bool("attest-legacy", false, "SoftPOS: accept the legacy unsigned AT tag instead of a signed token (AJ)"),
	}
}

func (v *terminalFlagValues) patch() (registry.TerminalPatch, error) {
	f := v.f
	var p registry.TerminalPatch
	str := func(name string, val *string) *string {
		if f.set(name) {
			s := strings.TrimSpace(*val)
			return &s
		}
		return nil
	}
	p.MerchantID = str("merchant", v.merchant)
	if f.set("kind") {
		k := registry.TerminalKind(*v.kind)
		p.Kind = &k
	}
	p.DeviceSerial, p.ICCID, p.IMEI = str("device-serial", v.device), str("iccid", v.iccid), str("imei", v.imei)
	p.Model = str("model", v.model)
	if f.set("location") {
		d, err := registry.ParseDeployment(*v.loc)
		if err != nil {
			return p, usagef("--location: %v", err)
		}
		p.Location = d
	}
	p.ClearLocation = *v.clearLocation
	if f.set("networks") {
		nets, err := registry.ParseNetworks(*v.networks)
		if err != nil {
			return p, usagef("--networks: %v", err)
		}
		if nets == nil {
			nets = []netip.Prefix{}
		}
		p.AllowedNetworks = &nets
	}
	p.MinAppVersion = str("min-app-version", v.minVer)
	if f.set("policy") {
		pol := registry.Policy(*v.policy)
		p.MissingPolicy = &pol
	}
	if f.set("attest-max-age") {
		d := registry.Duration(*v.attestMaxAge)
		p.AttestMaxAge = &d
	}
	if f.set("attest-legacy") {
		p.AttestLegacy = v.attestLegacy
	}
	return p, nil
}

// keysSet reports whether any key flag was given.
func (v *terminalFlagValues) keysSet() bool {
	for _, n := range []string{"pin-mode", "tmk", "tpk", "tak", "bdk", "dukpt-device", "mac-required"} {
		if v.f.set(n) {
			return true
		}
	}
	return false
}

func (v *terminalFlagValues) keys(base registry.KeyRefs) registry.KeyRefs {
	f := v.f
	if f.set("pin-mode") {
		base.PINMode = registry.PINMode(*v.pinMode)
	}
	for _, x := range []struct {
		name string
		dst  *string
		val  *string
	}{{"tmk", &base.TMK, v.tmk}, {"tpk", &base.TPK, v.tpk}, {"tak", &base.TAK, v.tak}, {"bdk", &base.BDK, v.bdk}, {"dukpt-device", &base.DUKPTDevice, v.dukptDevice}} {
		if f.set(x.name) {
			*x.dst = *x.val
		}
	}
	if f.set("mac-required") {
		base.MACRequired = *v.macRequired
	}
	return base
}

func (t *tool) terminal(args []string) error {
	if len(args) == 0 {
		return usagef("terminal: want list, show, register, change, activate, suspend, resume, close or import")
	}
	sub, args := args[0], args[1:]
	f := t.newFlags("terminal " + sub)
	switch sub {
	case "list":
		merchant := f.String("merchant", "", "only this merchant")
		status := f.String("status", "", "only this status")
		kind := f.String("kind", "", "only this kind")
		limit := f.Int("limit", 0, "at most this many")
		after := f.String("after", "", "only IDs after this one (paging)")
		asCSV := f.Bool("csv", false, "write the terminals as the CSV that terminal import reads")
		excel := f.Bool("excel", false, "with --csv: begin with a UTF-8 byte order mark, so that Excel opens the file as UTF-8 (Chinese names readable) rather than in the code page of Windows (GBK)")
		if _, err := f.parseN(args, 0, "no arguments"); err != nil {
			return err
		}
		if *asCSV && *f.json {
			return usagef("terminal list: --csv or --json, not both")
		}
		if *excel && !*asCSV {
			return usagef("terminal list: --excel is for --csv")
		}
		lim := ""
		if *limit > 0 {
			lim = strconv.Itoa(*limit)
		}
		var views []registry.TerminalView
		if err := t.call("GET", "/api/v1/terminals"+query("merchant", *merchant, "status", *status, "kind", *kind, "limit", lim, "after", *after), nil, &views); err != nil {
			return err
		}
		if *f.json {
			return t.printJSON(views)
		}
		if *asCSV {
			ts := make([]*registry.Terminal, 0, len(views))
			for _, v := range views {
				if v.Terminal != nil {
					ts = append(ts, v.Terminal)
				}
			}
			if *excel {
				if _, err := io.WriteString(t.out, utf8BOM); err != nil {
					return err
				}
			}
			return registry.WriteTerminalsCSV(t.out, ts)
		}
		var rows [][]string
		for _, v := range views {
			seen, from := "-", "-"
			if v.LastSeen != nil {
				seen = t.when(v.LastSeen.Time)
				if v.LastSeen.Address.IsValid() {
					from = v.LastSeen.Address.String()
				}
			}
			rows = append(rows, []string{v.ID, v.MerchantID, string(v.Kind), string(v.Status), bindingText(v.Terminal), seen, from})
		}
		t.table("ID\tMERCHANT\tKIND\tSTATUS\tBINDING\tLAST SEEN\tFROM", rows)
		return nil
	case "show":
		pos, err := f.parseN(args, 1, "a terminal ID")
		if err != nil {
			return err
		}
		var v registry.TerminalView
		if err := t.call("GET", "/api/v1/terminals/"+seg(pos[0]), nil, &v); err != nil {
			return err
		}
		if *f.json {
			return t.printJSON(v)
		}
		t.printTerminal(&v)
		return nil
	case "register":
		tv := terminalFlags(f)
		active := f.Bool("active", false, "register as active (default pending: activate later)")
		reason := f.String("reason", "", "why")
		pos, err := f.parseN(args, 1, "a terminal ID")
		if err != nil {
			return err
		}
		p, err := tv.patch()
		if err != nil {
			return err
		}
		if p.MerchantID == nil || p.Kind == nil {
			return usagef("terminal register: --merchant and --kind are required")
		}
		term := registry.Terminal{ID: pos[0], MerchantID: *p.MerchantID, Kind: *p.Kind, Status: registry.TerminalPending, Keys: tv.keys(registry.KeyRefs{})}
		if *active {
			term.Status = registry.TerminalActive
		}
		for _, x := range []struct {
			dst *string
			v   *string
		}{{&term.Binding.DeviceSerial, p.DeviceSerial}, {&term.Binding.ICCID, p.ICCID}, {&term.Binding.IMEI, p.IMEI}, {&term.MinAppVersion, p.MinAppVersion}, {&term.Model, p.Model}} {
			if x.v != nil {
				*x.dst = *x.v
			}
		}
		term.Location = p.Location
		if p.AllowedNetworks != nil {
			term.AllowedNetworks = *p.AllowedNetworks
		}
		if p.MissingPolicy != nil {
			term.MissingPolicy = *p.MissingPolicy
		}
		if p.AttestMaxAge != nil {
			term.AttestMaxAge = *p.AttestMaxAge
		}
		term.AttestLegacy = p.AttestLegacy != nil && *p.AttestLegacy
		var c registry.Change
		if err := t.call("POST", "/api/v1/terminals", registry.TerminalRequest{Terminal: term, Reason: *reason}, &c); err != nil {
			return err
		}
		return t.printChange(&c, *f.json)
	case "change":
		tv := terminalFlags(f)
		reason := f.String("reason", "", "why")
		pos, err := f.parseN(args, 1, "a terminal ID")
		if err != nil {
			return err
		}
		p, err := tv.patch()
		if err != nil {
			return err
		}
		if tv.keysSet() {
			var cur registry.TerminalView
			if err := t.call("GET", "/api/v1/terminals/"+seg(pos[0]), nil, &cur); err != nil {
				return err
			}
			k := tv.keys(cur.Keys)
			p.Keys = &k
		}
		if isEmptyPatch(p) {
			return usagef("terminal change: nothing to change")
		}
		var c registry.Change
		if err := t.call("PATCH", "/api/v1/terminals/"+seg(pos[0]), registry.TerminalPatchRequest{TerminalPatch: p, Reason: *reason}, &c); err != nil {
			return err
		}
		return t.printChange(&c, *f.json)
	case "activate", "suspend", "resume", "close":
		reason := f.String("reason", "", "why")
		pos, err := f.parseN(args, 1, "a terminal ID")
		if err != nil {
			return err
		}
		var c registry.Change
		if err := t.call("POST", "/api/v1/terminals/"+seg(pos[0])+"/"+sub, registry.ReasonRequest{Reason: *reason}, &c); err != nil {
			return err
		}
		return t.printChange(&c, *f.json)
	case "import":
		return t.importCSV(f, "terminal", args)
	}
	return usagef("terminal %s: unknown subcommand (want list, show, register, change, activate, suspend, resume, close or import)", sub)
}

func isEmptyPatch(p registry.TerminalPatch) bool {
	return p.MerchantID == nil && p.Kind == nil && p.Model == nil && p.DeviceSerial == nil && p.ICCID == nil && p.IMEI == nil && p.Location == nil &&
		!p.ClearLocation && p.AllowedNetworks == nil && p.MinAppVersion == nil && p.MissingPolicy == nil && p.Keys == nil &&
		p.AttestMaxAge == nil && p.AttestLegacy == nil
}

func bindingText(t *registry.Terminal) string {
	var parts []string
	if t.Binding.DeviceSerial != "" {
		parts = append(parts, "DI")
	}
	if t.Binding.ICCID != "" {
		parts = append(parts, "SI")
	}
	if t.Binding.IMEI != "" {
		parts = append(parts, "IM")
	}
	if t.Location != nil {
		parts = append(parts, fmt.Sprintf("GL<%gm", t.Location.RadiusM))
	}
	if len(t.AllowedNetworks) > 0 {
		parts = append(parts, "NET")
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ",") + " (" + string(t.MissingPolicy) + ")"
}
