package ruleset

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// The compact encoding of an Input, as the journal stores it for backtest and explain:
// a version byte, then the journaled fields in a fixed order (strings as length and
// bytes, numbers as varints, floats as 8 bytes, booleans packed in a bit set). Velocity,
// lists and outcome are not stored: the tools re-derive them.
const inputCodecVersion = 1

// AppendBinary appends the compact encoding of in to b.
func (in *Input) AppendBinary(b []byte) []byte {
	b = append(b, inputCodecVersion)
	str := func(s string) { b = binary.AppendUvarint(b, uint64(len(s))); b = append(b, s...) }
	num := func(n int64) { b = binary.AppendVarint(b, n) }
	flt := func(f float64) { b = binary.BigEndian.AppendUint64(b, math.Float64bits(f)) }
	x := &in.Txn
	for _, s := range []string{x.MTI, x.ProcCode, x.Type, x.Currency, x.EntryMode, x.BIN, x.CardHash, x.Country, x.STAN, x.RRN, x.OriginalCardHash} {
		str(s)
	}
	num(int64(x.Amount))
	num(int64(x.OriginalAmount))
	if x.Time.IsZero() {
		num(0)
	} else {
		num(x.Time.UnixNano())
	}
	t := &in.Terminal
	for _, s := range []string{t.ID, t.Kind, t.Status, t.Region, t.AppVersion} {
		str(s)
	}
	num(int64(t.AgeDays))
	num(int64(t.RadiusM))
	flt(t.Lat)
	flt(t.Lon)
	m := &in.Merchant
	for _, s := range []string{m.ID, m.MCC, m.Tier, m.Rating, m.Status} {
		str(s)
	}
	num(int64(m.SingleLimit))
	num(int64(m.DailyLimit))
	num(int64(m.MonthlyLimit))
	g := &in.Binding
	flt(g.Lat)
	flt(g.Lon)
	flt(g.DistanceM)
	d := &in.Device
	str(d.ID)
	num(int64(d.AttestationAgeS))
	num(int64(len(d.Findings)))
	for _, f := range d.Findings {
		str(f)
	}
	var bits uint64
	for i, v := range []bool{x.Contactless, x.Chip, x.Magstripe, x.Manual, x.QR, x.PINPresent, t.Bound,
		g.Checked, g.LocationKnown, g.LocationOK, g.SIMOK, g.IMEIOK, g.DeviceOK, g.NetworkOK, d.Attested} {
		if v {
			bits |= 1 << i
		}
	}
	b = binary.AppendUvarint(b, bits)
	// Fields added after version 1, at the end: a record written before them ends
	// here and decodes with them empty. Each is written (empty if need be) when a
	// later one is: the group, the wallet, the merchant's daily count limit, its
	// currency.
	if m.Group != "" || x.Wallet != "" || m.DailyCount != 0 || m.Currency != "" {
		str(m.Group)
	}
	if x.Wallet != "" || m.DailyCount != 0 || m.Currency != "" {
		str(x.Wallet)
	}
	if m.DailyCount != 0 || m.Currency != "" {
		num(int64(m.DailyCount))
	}
	if m.Currency != "" {
		str(m.Currency)
	}
	return b
}

// UnmarshalBinary decodes what AppendBinary wrote.
func (in *Input) UnmarshalBinary(b []byte) error {
	if len(b) == 0 || b[0] != inputCodecVersion {
		return errors.New("risk input: unknown encoding version")
	}
	b = b[1:]
	var err error
	uv := func() uint64 {
		if err != nil {
			return 0
		}
		v, n := binary.Uvarint(b)
		if n <= 0 {
			err = errors.New("truncated")
			return 0
		}
		b = b[n:]
		return v
	}
	num := func() int64 {
		if err != nil {
			return 0
		}
		v, n := binary.Varint(b)
		if n <= 0 {
			err = errors.New("truncated")
			return 0
		}
		b = b[n:]
		return v
	}
	str := func() string {
		n := uv()
		if err != nil || n > uint64(len(b)) {
			if err == nil {
				err = errors.New("string runs past the end")
			}
			return ""
		}
		s := string(b[:n])
		b = b[n:]
		return s
	}
	flt := func() float64 {
		if err != nil || len(b) < 8 {
			if err == nil {
				err = errors.New("truncated")
			}
			return 0
		}
		f := math.Float64frombits(binary.BigEndian.Uint64(b))
		b = b[8:]
		return f
	}
	*in = Input{}
	x := &in.Txn
	for _, p := range []*string{&x.MTI, &x.ProcCode, &x.Type, &x.Currency, &x.EntryMode, &x.BIN, &x.CardHash, &x.Country, &x.STAN, &x.RRN, &x.OriginalCardHash} {
		*p = str()
	}
	x.Amount, x.OriginalAmount = int(num()), int(num())
	if ns := num(); ns != 0 {
		x.Time = time.Unix(0, ns).UTC()
	}
	t := &in.Terminal
	for _, p := range []*string{&t.ID, &t.Kind, &t.Status, &t.Region, &t.AppVersion} {
		*p = str()
	}
	t.AgeDays, t.RadiusM = int(num()), int(num())
	t.Lat, t.Lon = flt(), flt()
	m := &in.Merchant
	for _, p := range []*string{&m.ID, &m.MCC, &m.Tier, &m.Rating, &m.Status} {
		*p = str()
	}
	m.SingleLimit, m.DailyLimit, m.MonthlyLimit = int(num()), int(num()), int(num())
	g := &in.Binding
	g.Lat, g.Lon, g.DistanceM = flt(), flt(), flt()
	d := &in.Device
	d.ID = str()
	d.AttestationAgeS = int(num())
	n := num()
	if n < 0 || n > 64 {
		return fmt.Errorf("risk input: %d findings", n)
	}
	for i := int64(0); i < n && err == nil; i++ {
		d.Findings = append(d.Findings, str())
	}
	bits := uv()
	for i, p := range []*bool{&x.Contactless, &x.Chip, &x.Magstripe, &x.Manual, &x.QR, &x.PINPresent, &t.Bound,
		&g.Checked, &g.LocationKnown, &g.LocationOK, &g.SIMOK, &g.IMEIOK, &g.DeviceOK, &g.NetworkOK, &d.Attested} {
		*p = bits&(1<<i) != 0
	}
	if err == nil && len(b) > 0 {
		m.Group = str()
	}
	if err == nil && len(b) > 0 {
		x.Wallet = str()
	}
	if err == nil && len(b) > 0 {
		m.DailyCount = int(num())
	}
	if err == nil && len(b) > 0 {
		m.Currency = str()
	}
	if err != nil {
		return fmt.Errorf("risk input: %w", err)
	}
	return nil
}
