package registry

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchyard/switchyard/hsm/dukpt"
	"github.com/switchyard/switchyard/internal/csvcell"
)

// ImportColumns are the columns a terminal CSV may have, in any order, named in its
// header row. terminal_id, merchant_id and kind are required. Empty cells mean "not
// set". networks holds CIDRs separated by spaces or semicolons; lat, lon and
// radius_m together give the deployed location; mac_required and attest_legacy are
// true or false; attest_max_age is a Go duration ("90s"); dukpt_device is the DUKPT
// device's KSN without its counter (KeyRefs.DUKPTDevice). WriteTerminalsCSV writes
// them all, in this order (a column added later comes last, so that a file written
// before it still imports).
var ImportColumns = []string{
	"terminal_id", "merchant_id", "kind", "status",
	"device_serial", "iccid", "imei",
	"lat", "lon", "radius_m",
	"networks", "min_app_version", "missing_policy",
	"pin_mode", "tmk", "tpk", "tak", "bdk", "mac_required",
	"model", "attest_max_age", "attest_legacy",
	"dukpt_device",
}

// MaxImportRows bounds the data rows of one import. The accepted rows are stored
// in one change record, which must fit in one Badger transaction.
const MaxImportRows = 10_000

// MaxImportBytes bounds the size of one import's CSV file: a larger one is refused
// whole, never read in part.
const MaxImportBytes = 64 << 20

// ImportRow is the outcome of one CSV data row.
type ImportRow struct {
	Line int `json:"line"` // line in the file (the header is line 1)
	// TerminalID is a terminal import's row's terminal, MerchantID a merchant
	// import's row's merchant.
	TerminalID string `json:"terminal_id,omitempty"`
	MerchantID string `json:"merchant_id,omitempty"`
	OK         bool   `json:"ok"`
	Error      string `json:"error,omitempty"`
}

// ImportReport is the per-row result of a terminal import.
type ImportReport struct {
	Rows     []ImportRow `json:"rows"`
	Accepted int         `json:"accepted"`
	Rejected int         `json:"rejected"`
	// Change is the change request that creates the accepted terminals once a
	// reviewer approves it; nil when no row was accepted or on a dry run.
	Change *Change `json:"change,omitempty"`
	DryRun bool    `json:"dry_run,omitempty"`
}

// ImportTerminals reads terminals from CSV (see ImportColumns), checks every row
// and, unless dryRun, requests one terminal.import change for the rows that pass.
// Rows that fail are reported with their line and reason and left out. An error is
// returned only for a problem with the whole file (header, encoding, size).
func (r *review) ImportTerminals(p Actor, in io.Reader, reason string, dryRun bool) (*ImportReport, error) {
	return importRecords(r, p, in, reason, dryRun, "terminal", ImportColumns, []string{"terminal_id", "merchant_id", "kind"},
		func(get func(string) string) (Terminal, Change, error) {
			t, err := rowTerminal(get)
			if err == nil {
				err = r.checkKeyRefs(t.ID, t.Keys, nil)
			}
			return t, Change{Op: OpTerminalRegister, Terminal: &t}, err
		},
		func(t Terminal) []string {
			normalizeTerminal(&t)
			var out []string
			for k, v := range ownClaims(&t) {
				if v != "" {
					out = append(out, claimText(claimKind(k), v))
				}
			}
			return out
		},
		func(ts []Terminal) Change { return Change{Op: OpTerminalImport, Terminals: ts} })
}

// importRecords runs an import of what ("terminal", "merchant"): it reads the CSV
// (readImport, the ID in the column what+"_id"), builds each row's record with row,
// along with the change that would register it alone, checks that change as it would
// be applied now, and, unless dryRun or no row passed, requests the change that all
// returns for the rows that passed. unique (nil: none) names what a record holds that
// no other may (a terminal's DUKPT device, device serial, SIM and IMEI): a row
// claiming what an accepted row above it holds is refused, naming that row.
func importRecords[T any](r *review, p Actor, in io.Reader, reason string, dryRun bool, what string, columns, required []string,
	row func(get func(string) string) (T, Change, error), unique func(T) []string, all func([]T) Change) (*ImportReport, error) {
	if !canRequest(p) {
		return nil, forbiddenf("%s (%s) may not import %ss: operator or admin role needed", p.Name, p.Role, what)
	}
	var accepted []T
	seen := map[string]int{} // ID -> line of first occurrence
	type holder struct {
		line int
		id   string
	}
	held := map[string]holder{} // unique's claim -> the accepted row holding it
	now := r.now()
	rep, err := readImport(in, what+" import", columns, required, what+"_id", func(line int, get func(string) string) error {
		rec, one, err := row(get)
		if err != nil {
			return err
		}
		id := get(what + "_id")
		if first, dup := seen[id]; dup {
			return fmt.Errorf("%s %s already appears on line %d", what, id, first)
		}
		if _, err := r.compute(&one, now); err != nil {
			return err
		}
		var claims []string
		if unique != nil {
			claims = unique(rec)
		}
		for _, claim := range claims {
			if h, dup := held[claim]; dup {
				return conflictf("%s %s: %s is %s %s's on line %d already", what, id, claim, what, h.id, h.line)
			}
		}
		for _, claim := range claims {
			held[claim] = holder{line, id}
		}
		seen[id] = line
		accepted = append(accepted, rec)
		return nil
	})
	if err != nil {
		return nil, err
	}
	rep.DryRun = dryRun
	if len(accepted) == 0 || dryRun {
		return rep, nil
	}
	c := all(accepted)
	if c.Reason = reason; reason == "" {
		c.Reason = fmt.Sprintf("CSV import of %d %ss", len(accepted), what)
	}
	ch, err := r.RequestChange(p, c)
	if err != nil {
		return nil, fmt.Errorf("%s import: request change: %w", what, err)
	}
	rep.Change = ch
	return rep, nil
}

// MerchantImportColumns are the columns a merchant CSV may have, in any order,
// named in its header row; merchant_id, name, mcc, region and tier are required.
// Empty cells mean "not set": rating medium, status active, no group, no limit, no
// ASCII name (name_latin), the name's language (name_language) derived from its
// script, any currency. currency is the merchant's transaction currency, ISO 4217
// numeric ("156"; one or two digits, as a spreadsheet leaves "008" or "036", are
// read with their leading zeros); the limits are in its minor units (fen for
// 156, yen for 392), limit_count transactions a day. name_latin, name_language and
// currency come last: a file written before them still imports.
var MerchantImportColumns = []string{
	"merchant_id", "name", "mcc", "region", "group", "tier", "rating", "status",
	"limit_txn", "limit_daily", "limit_monthly", "limit_count", "name_latin", "name_language", "currency",
}

// ImportMerchants reads merchants from CSV (see MerchantImportColumns), checks every
// row and, unless dryRun, requests one merchant.import change for the rows that
// pass, as ImportTerminals does for terminals.
func (r *review) ImportMerchants(p Actor, in io.Reader, reason string, dryRun bool) (*ImportReport, error) {
	return importRecords(r, p, in, reason, dryRun, "merchant", MerchantImportColumns, []string{"merchant_id", "name", "mcc", "region", "tier"},
		func(get func(string) string) (Merchant, Change, error) {
			m, err := rowMerchant(get)
			return m, Change{Op: OpMerchantRegister, Merchant: &m}, err
		}, nil,
		func(ms []Merchant) Change { return Change{Op: OpMerchantImport, Merchants: ms} })
}

// rowMerchant builds a merchant from one CSV row.
func rowMerchant(get func(string) string) (Merchant, error) {
	m := Merchant{
		ID: get("merchant_id"), Name: get("name"), NameLatin: get("name_latin"), NameLanguage: get("name_language"),
		MCC: get("mcc"), Region: get("region"), Group: get("group"),
		Tier: get("tier"), Rating: strings.ToLower(get("rating")), Status: MerchantStatus(strings.ToLower(get("status"))),
	}
	if m.Rating == "" {
		m.Rating = RatingMedium
	}
	if c := get("currency"); len(c) < 3 && isDigits(c) {
		m.Currency = strings.Repeat("0", 3-len(c)) + c // "8": a spreadsheet's 008
	} else {
		m.Currency = c
	}
	for _, l := range []struct {
		col string
		to  *int64
	}{{"limit_txn", &m.Limits.PerTransaction}, {"limit_daily", &m.Limits.Daily}, {"limit_monthly", &m.Limits.Monthly}, {"limit_count", &m.Limits.DailyCount}} {
		if s := get(l.col); s != "" {
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil || v < 0 {
				return m, invalidf("%s %q: want a whole number of minor units (or of transactions), 0 or more", l.col, s)
			}
			*l.to = v
		}
	}
	return m, nil
}

// WriteMerchantsCSV writes merchants as CSV in MerchantImportColumns, a header row
// first: the file ImportMerchants reads back into the same merchants (name, ASCII
// name, name language, MCC, region, group, tier, rating, status, limits, currency), without
// their history. A frozen or closed merchant is written as it is; an import
// creates only pending and active ones and reports the others' rows.
func WriteMerchantsCSV(w io.Writer, ms []*Merchant) error {
	cw := csvcell.NewWriter(w)
	if err := cw.Write(MerchantImportColumns); err != nil {
		return err
	}
	num := func(v int64) string {
		if v == 0 {
			return ""
		}
		return strconv.FormatInt(v, 10)
	}
	for _, m := range ms {
		if err := cw.Write([]string{m.ID, m.Name, m.MCC, m.Region, m.Group, m.Tier, m.Rating, string(m.Status),
			num(m.Limits.PerTransaction), num(m.Limits.Daily), num(m.Limits.Monthly), num(m.Limits.DailyCount),
			m.NameLatin, m.NameLanguage, m.Currency}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// readImport reads a CSV import: a header row naming some of columns (in any order,
// the required ones among them), then data rows, each handed to row with a getter of
// its cells by column name. A row's error rejects the row; readImport's error is a
// problem with the whole file. what names the import in errors; idCol is the column
// reported as each row's ID (terminal_id or merchant_id).
//
// The file must be UTF-8 (a byte order mark before the header, as Excel writes,
// is skipped): a row that is not, such as one saved as GBK by a Chinese Excel's
// plain "CSV", refuses the whole file, naming its line, rather than storing
// garbled names. A file over MaxImportBytes or MaxImportRows is refused whole.
// Each cell is trimmed of spaces and has the quote csvcell.Escape put before a
// formula-like value removed, so that a file written by WriteMerchantsCSV or
// WriteTerminalsCSV reads back into the same values. There are no comment lines:
// a row starting with '#' is a row (a merchant name "#1 Noodles" first). A row
// of empty cells only, as spreadsheets write for blank rows, is skipped.
func readImport(in io.Reader, what string, columns, required []string, idCol string, row func(line int, get func(string) string) error) (*ImportReport, error) {
	raw, err := io.ReadAll(io.LimitReader(in, MaxImportBytes+1))
	if err != nil {
		return nil, invalidf("%s: read CSV: %v", what, err)
	}
	if len(raw) > MaxImportBytes {
		return nil, invalidf("%s: file over %d MB; split it (at most %d rows each)", what, MaxImportBytes>>20, MaxImportRows)
	}
	raw = bytes.TrimPrefix(raw, []byte("\ufeff"))
	cr := csv.NewReader(bytes.NewReader(raw))
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, invalidf("%s: empty file (want a header row naming the columns %s)", what, strings.Join(columns, ","))
	}
	if err != nil {
		return nil, invalidf("%s: header: %v", what, err)
	}
	headerLine, _ := cr.FieldPos(0)
	if err := checkUTF8(what, headerLine, header); err != nil {
		return nil, err
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		if !slices.Contains(columns, h) {
			return nil, invalidf("%s: header column %d %q is not one of %s", what, i+1, h, strings.Join(columns, ","))
		}
		if _, dup := col[h]; dup {
			return nil, invalidf("%s: header names column %q twice", what, h)
		}
		col[h] = i
	}
	for _, req := range required {
		if _, ok := col[req]; !ok {
			return nil, invalidf("%s: header lacks the required column %q", what, req)
		}
	}
	rep := &ImportReport{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				return nil, invalidf("%s: read CSV: %v", what, err)
			}
			// A quoting error: report the row and go on with the next line.
			rep.Rows = append(rep.Rows, ImportRow{Line: pe.StartLine, Error: "malformed CSV: " + pe.Err.Error()})
			rep.Rejected++
			continue
		}
		line, _ := cr.FieldPos(0)
		if strings.TrimSpace(strings.Join(rec, "")) == "" {
			continue // a spreadsheet's blank row (",,,,"): nothing in it to import
		}
		if len(rep.Rows) >= MaxImportRows {
			return nil, invalidf("%s: more than %d rows; split the file", what, MaxImportRows)
		}
		if err := checkUTF8(what, line, rec); err != nil {
			return nil, err
		}
		get := func(name string) string {
			if i, ok := col[name]; ok && i < len(rec) {
				return csvcell.Unescape(strings.TrimSpace(rec[i]))
			}
			return ""
		}
		r := ImportRow{Line: line}
		if id := get(idCol); idCol == "terminal_id" {
			r.TerminalID = id
		} else {
			r.MerchantID = id
		}
		if len(rec) != len(header) {
			r.Error = fmt.Sprintf("has %d fields, the header has %d", len(rec), len(header))
		} else if err := row(line, get); err != nil {
			r.Error = err.Error()
		} else {
			r.OK = true
		}
		if r.OK {
			rep.Accepted++
		} else {
			rep.Rejected++
		}
		rep.Rows = append(rep.Rows, r)
	}
	return rep, nil
}

// checkUTF8 refuses a CSV record (on line) that is not UTF-8.
func checkUTF8(what string, line int, rec []string) error {
	for i, c := range rec {
		if !utf8.ValidString(c) {
			return invalidf("%s: line %d, field %d is not UTF-8 text (a GBK file? save it from the spreadsheet as \"CSV UTF-8\"); nothing imported", what, line, i+1)
		}
	}
	return nil
}

// rowTerminal builds a terminal from one CSV row.
func rowTerminal(get func(string) string) (Terminal, error) {
	t := Terminal{
		ID:            get("terminal_id"),
		MerchantID:    get("merchant_id"),
		Kind:          TerminalKind(strings.ToLower(get("kind"))),
		Status:        TerminalStatus(strings.ToLower(get("status"))),
		Binding:       Binding{DeviceSerial: get("device_serial"), ICCID: get("iccid"), IMEI: get("imei")},
		Model:         get("model"),
		MinAppVersion: get("min_app_version"),
		MissingPolicy: Policy(strings.ToLower(get("missing_policy"))),
		Keys: KeyRefs{
			TMK: get("tmk"), TPK: get("tpk"), TAK: get("tak"), BDK: get("bdk"),
			PINMode:     PINMode(strings.ToLower(get("pin_mode"))),
			DUKPTDevice: get("dukpt_device"),
		},
	}
	if lat, lon, rad := get("lat"), get("lon"), get("radius_m"); lat != "" || lon != "" || rad != "" {
		d, err := ParseDeployment(lat + "," + lon + "," + rad)
		if err != nil {
			return t, invalidf("location lat=%q lon=%q radius_m=%q: want three numbers", lat, lon, rad)
		}
		t.Location = d
	}
	if s := get("networks"); s != "" {
		nets, err := ParseNetworks(s)
		if err != nil {
			return t, err
		}
		t.AllowedNetworks = nets
	}
	for _, b := range []struct {
		col string
		to  *bool
	}{{"mac_required", &t.Keys.MACRequired}, {"attest_legacy", &t.AttestLegacy}} {
		if s := get(b.col); s != "" {
			v, err := strconv.ParseBool(s)
			if err != nil {
				return t, invalidf("%s %q: want true or false", b.col, s)
			}
			*b.to = v
		}
	}
	if s := get("attest_max_age"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return t, invalidf("attest_max_age %q: want a duration such as 90s", s)
		}
		t.AttestMaxAge = Duration(d)
	}
	return t, nil
}

// WriteTerminalsCSV writes terminals as CSV, a header row naming ImportColumns first:
// the file ImportTerminals reads back into the same terminals (merchant, kind, status,
// binding, location, networks, application version, policy, key references, model,
// attestation settings). What a terminal gathered since it was created is not in it:
// its history, version, last-seen data and status reason. A suspended or closed
// terminal is written as it is; ImportTerminals creates only pending and active ones
// and reports the others' rows.
func WriteTerminalsCSV(w io.Writer, ts []*Terminal) error {
	cw := csvcell.NewWriter(w)
	if err := cw.Write(ImportColumns); err != nil {
		return err
	}
	num := func(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
	row := make([]string, len(ImportColumns))
	for _, t := range ts {
		var lat, lon, rad, nets, maxAge string
		if d := t.Location; d != nil {
			lat, lon, rad = num(d.Lat), num(d.Lon), num(d.RadiusM)
		}
		if len(t.AllowedNetworks) > 0 {
			p := make([]string, len(t.AllowedNetworks))
			for i, n := range t.AllowedNetworks {
				p[i] = n.String()
			}
			nets = strings.Join(p, " ")
		}
		if t.AttestMaxAge != 0 {
			maxAge = time.Duration(t.AttestMaxAge).String()
		}
		flag := func(b bool) string {
			if b {
				return "true"
			}
			return ""
		}
		row = append(row[:0], t.ID, t.MerchantID, string(t.Kind), string(t.Status),
			t.Binding.DeviceSerial, t.Binding.ICCID, t.Binding.IMEI,
			lat, lon, rad,
			nets, t.MinAppVersion, string(t.MissingPolicy),
			string(t.Keys.PINMode), t.Keys.TMK, t.Keys.TPK, t.Keys.TAK, t.Keys.BDK, flag(t.Keys.MACRequired),
			t.Model, maxAge, flag(t.AttestLegacy),
			t.Keys.DUKPTDevice)
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// checkKeyRefs checks the key references a terminal names (not the conventional
// "<terminal ID>.TPK" that compute fills in for an empty one, whose key may be
// generated later): each must be a usable key of the key store of its type, so
// that a typo or another party's key (an issuer's ZPK as a TPK) is refused when it
// is entered rather than found by the first PIN transaction; and that a DUKPT
// device is under its BDK's KSN prefix. References equal to those of was (the
// terminal as it is, for a change) are not checked again.
func (r *review) checkKeyRefs(terminal string, k KeyRefs, was *KeyRefs) error {
	if r.opts.Keys == nil {
		return nil
	}
	var old KeyRefs
	if was != nil {
		old = *was
	}
	for _, kc := range []struct{ name, ref, old, keyType string }{
		{"tmk", k.TMK, old.TMK, "TMK"}, {"tpk", k.TPK, old.TPK, "TPK"}, {"tak", k.TAK, old.TAK, "TAK"}, {"bdk", k.BDK, old.BDK, "BDK"},
	} {
		if kc.ref == "" || (was != nil && kc.ref == kc.old) || isConventionalRef(terminal, kc.ref, kc.keyType) {
			continue
		}
		ki, err := r.opts.Keys(kc.ref)
		if err != nil {
			return invalidf("terminal %s: %s %q: %v", terminal, kc.name, kc.ref, err)
		}
		if ki.Type != kc.keyType {
			return invalidf("terminal %s: %s %q is a %s of %q, not a %s: a terminal may reference only its own kind of key", terminal, kc.name, kc.ref, ki.Type, ki.Owner, kc.keyType)
		}
	}
	// A DUKPT device is one of its BDK's: its KSNs must be under the BDK's KSN
	// prefix (the key set ID), or the HSM refuses every one of them.
	dev := normalizeDUKPTDevice(k.DUKPTDevice)
	if dev == "" || k.BDK == "" || (was != nil && dev == old.DUKPTDevice && k.BDK == old.BDK) {
		return nil
	}
	ki, err := r.opts.Keys(k.BDK)
	if err != nil {
		return invalidf("terminal %s: bdk %q: %v", terminal, k.BDK, err)
	}
	if ki.Owner != "" && isHex(dev) && !dukpt.PrefixMatches(dev, ki.Owner, len(dev) == dukpt.AESPrefixDigits) {
		return invalidf("terminal %s: DUKPT device %s is not under the KSN prefix %s of its BDK %q: its KSNs would not be of that BDK", terminal, dev, ki.Owner, k.BDK)
	}
	return nil
}

// isConventionalRef says whether ref is the reference the registry makes up for a
// terminal's own TPK or TAK when none is given ("<terminal ID>.TPK", normalizeTerminal;
// "<terminal ID>/TPK" before 5 December 2026, which prepare rewrites):
// its key may be generated after the terminal is registered, so it is not looked up
// (a terminal written out by WriteTerminalsCSV carries it, whatever its PIN mode).
func isConventionalRef(terminal, ref, keyType string) bool {
	return (keyType == "TPK" || keyType == "TAK") && (ref == terminal+"."+keyType || ref == terminal+"/"+keyType)
}
