package cup

import (
	"bufio"
	"bytes"
	"crypto/cipher"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/hsm/mac"
	"github.com/switchyard/switchyard/hsm/pinblock"
	"github.com/switchyard/switchyard/internal/sym"
	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
)

// Terminal is the terminal side of the dialect, for tests, `switchyard term
// --dialect cup` and the bench: it signs in (decrypting the working keys under its
// TMK and checking their check values), builds requests, MACs them and checks the
// answers' MACs. It holds clear keys, as a terminal's secure module does: it is a
// test and support tool, never part of the switch. One request at a time.
type Terminal struct {
	TID, MID string
	TMK      []byte       // clear terminal master key (8 or 16 bytes)
	MAC      MACAlgorithm // ecb (default) or x919
	TPDU     TPDU         // default 60 0003 0000
	Header   Header       // default 60 31 00 31 00 00 (IC POS, normal, no requirement)
	Timeout  time.Duration
	// Device is F62 of the sign-in: the DE 48 tags (DI, SI, IM, GL, CL, AV) of the
	// binding checks.
	Device string

	mu      sync.Mutex
	conn    net.Conn
	r       *bufio.Reader
	pik     []byte
	mak     []byte
	tdk     []byte
	batch   string
	stan    int
	scheme  string
	Answers Header // the header of the last answer (its processing requirement)
}

// DialTerminal connects a terminal to addr.
func DialTerminal(addr, tid, mid string, tmk []byte) (*Terminal, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &Terminal{TID: tid, MID: mid, TMK: tmk, conn: c, r: bufio.NewReader(c), batch: "000001",
		TPDU: TPDU{0x60, 0x00, 0x03, 0x00, 0x00}, Header: Header{0x60, 0x31, 0x00, 0x31, 0x00, 0x00}, Timeout: 20 * time.Second}, nil
}

// Close closes the connection.
func (t *Terminal) Close() error { return t.conn.Close() }

// Redial connects the terminal again (to addr), keeping its working keys, batch and
// STANs, as a terminal does after the line dropped.
func (t *Terminal) Redial(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	_ = t.conn.Close()
	t.conn, t.r = c, bufio.NewReader(c)
	return nil
}

// Batch is the batch the last sign-in opened.
func (t *Terminal) Batch() string { return t.batch }

// SetSTAN makes n the last STAN used, so that the next is n+1: a real terminal's
// counter survives its restarts, and a fresh Terminal would otherwise repeat STANs
// the switch remembers (a resend).
func (t *Terminal) SetSTAN(n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stan = n % 999999
}

// NextSTAN returns the next STAN (000001 ...).
func (t *Terminal) NextSTAN() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stan = t.stan%999999 + 1
	return fmt.Sprintf("%06d", t.stan)
}

func block(key []byte) (cipher.Block, error) { return sym.NewTDES(key) }

// MACOf computes F64 of a message's MAC input under the terminal's MAK.
func (t *Terminal) MACOf(data []byte) ([]byte, error) {
	if t.mak == nil {
		return nil, errors.New("not signed in: no MAK")
	}
	if t.MAC == MACX919 {
		k := t.mak
		if len(k) == 8 {
			k = append(append([]byte{}, k...), k...)
		}
		r, err := mac.NewRetail(k, mac.Padding1)
		if err != nil {
			return nil, err
		}
		return r.Sum(nil, data), nil
	}
	c, err := block(t.mak)
	if err != nil {
		return nil, err
	}
	return mac.CUPECB(nil, c, data), nil
}

// Exchange sends f (MAC'd when withMAC) and returns the answer, whose MAC it checks
// when the answer carries one.
func (t *Terminal) Exchange(f *Frame, withMAC bool) (*Frame, error) {
	var macf MACFunc
	if withMAC {
		macf = t.MACOf
	}
	body, err := f.Encode(macf)
	if err != nil {
		return nil, err
	}
	ans, raw, err := t.RoundTrip(body)
	if err != nil {
		return nil, err
	}
	if ans.Has(64) {
		want, err := t.MACOf(MACInput(raw, ans))
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(want, ans.Bytes(64)) {
			return ans, fmt.Errorf("answer %s STAN %s: MAC mismatch", ans.MTI(), ans.Str(11))
		}
	}
	return ans, nil
}

// RoundTrip writes a body with its length and reads the answer.
func (t *Terminal) RoundTrip(body []byte) (*Frame, []byte, error) {
	_ = t.conn.SetDeadline(time.Now().Add(t.Timeout))
	if _, err := t.conn.Write(frontend.AppendFrame(nil, body)); err != nil {
		return nil, nil, err
	}
	raw, err := frontend.ReadFrame(t.r, nil, 8192)
	if err != nil {
		return nil, nil, err
	}
	ans, err := Decode(raw)
	if err != nil {
		return nil, raw, fmt.Errorf("answer: %w", err)
	}
	t.Answers = ans.Header
	return ans, raw, nil
}

// SignIn signs in with key scheme 001, 003 or 004, decrypts the working keys under
// the TMK and checks their check values.
func (t *Terminal) SignIn(scheme string) (*Frame, error) {
	f := NewFrame(t.TPDU, t.Header, "0800").Set(11, t.NextSTAN()).Set(41, t.TID).Set(42, t.MID).
		Set(60, "00"+t.batch+scheme).Set(63, "01 ")
	if t.Device != "" {
		f.SetBytes(62, []byte(t.Device))
	}
	ans, err := t.Exchange(f, false)
	if err != nil {
		return nil, err
	}
	if ans.Str(39) != message.RCApproved {
		return ans, nil
	}
	if err := t.installKeys(scheme, ans.Bytes(62)); err != nil {
		return ans, err
	}
	if f60 := ParseF60(ans.Str(60)); len(f60.Batch) == 6 {
		t.batch = f60.Batch
	}
	t.scheme = scheme
	return ans, nil
}

// installKeys decrypts F62 of an 0810 under the TMK and checks each check value.
func (t *Terminal) installKeys(scheme string, f62 []byte) error {
	tmk, err := block(t.TMK)
	if err != nil {
		return err
	}
	type part struct {
		name    string
		off, n  int // key bytes
		cv      int // offset of its check value
		install *[]byte
	}
	var parts []part
	switch scheme {
	case "001":
		parts = []part{{"PIK", 0, 8, 8, &t.pik}, {"MAK", 12, 8, 20, &t.mak}}
	case "003":
		parts = []part{{"PIK", 0, 16, 16, &t.pik}, {"MAK", 20, 8, 36, &t.mak}}
	case "004":
		parts = []part{{"PIK", 0, 16, 16, &t.pik}, {"MAK", 20, 16, 36, &t.mak}, {"TDK", 40, 16, 56, &t.tdk}}
	default:
		return fmt.Errorf("unknown key scheme %q", scheme)
	}
	want := map[string]int{"001": 24, "003": 40, "004": 60}[scheme]
	if len(f62) != want {
		return fmt.Errorf("F62 of scheme %s is %d bytes, want %d", scheme, len(f62), want)
	}
	for _, p := range parts {
		key := make([]byte, p.n)
		for i := 0; i < p.n; i += 8 {
			tmk.Decrypt(key[i:i+8], f62[p.off+i:p.off+i+8])
		}
		c, err := block(key)
		if err != nil {
			return err
		}
		var z [8]byte
		c.Encrypt(z[:], z[:])
		if !bytes.Equal(z[:4], f62[p.cv:p.cv+4]) {
			return fmt.Errorf("%s check value %X, the decrypted key gives %X", p.name, f62[p.cv:p.cv+4], z[:4])
		}
		*p.install = key
	}
	return nil
}

// Txn is a transaction for Build.
type Txn struct {
	Kind   string // sale, void, refund, balance, preauth, preauth-void, completion, completion-void, reversal, settlement, upload
	PAN    string
	Expiry string // YYMM
	Track2 string // PAN=YYMM... (sent as F35 instead of F2 and F14)
	// EncryptTrack encrypts the track under the TDK (53.3 = 1; scheme 004).
	EncryptTrack bool
	Amount       int64
	// Currency is F49, the ISO 4217 numeric code of Amount ("": 156, CNY, which
	// the UnionPay terminal specification has every domestic POS send).
	Currency string
	PIN      string
	// PINWithoutPAN forms the PIN block with a zero PAN field (53.1 = 1).
	PINWithoutPAN bool
	RRN, Auth     string // the original's, for voids, refunds, completion voids
	OrigSTAN      string // the original's STAN, for reversals and pre-authorization voids
	// Reverses, for a reversal, is the kind of the request it takes back ("": sale):
	// its F3, F25 and 60.1 are that request's, as a terminal's reversal repeats
	// them (ReversalOf), so that the switch finds a refund's STAN as a refund.
	// Until 7 December 2026 a reversal was always built as a sale's (60.1 22), and
	// one naming a refund's STAN reversed nothing though answered 00.
	Reverses string
	Totals   message.BatchTotals
	STAN     string // "" for the next one
	// TermInfo is F59, the terminal information TLV (e.g. "1722BD30.621555,114.361954":
	// tag 17, the location).
	TermInfo string
	// QRCode, for a sale, pre-authorization or balance, is the payer's payment code
	// scanned instead of a card: F22 = 031 and the code in F59 tag A3 (no PAN); QR,
	// for a void or refund of a QR payment, sends F22 = 031 without a code.
	QRCode string
	QR     bool
	// PartialOK, for a sale or pre-authorization, sets 60.6 = 1: the terminal accepts
	// a partial approval (F39 10, F4 the amount approved).
	PartialOK bool
	// Offline, for an upload, makes it the upload of an EMV offline approval (60.1 =
	// 36); an upload with an Amount is otherwise one of an online transaction (60.3 =
	// 203) and one without names no transaction (60.3 = 201).
	Offline bool
	// ApprovedAt, for an offline upload, is when the card approved it, sent in F12
	// and F13 as the terminal's local time (zero: now).
	ApprovedAt time.Time
}

// Build builds the request of tx.
func (t *Terminal) Build(tx Txn) (*Frame, error) {
	type shape struct{ mti, proc, cond, typ string }
	shapes := map[string]shape{
		"balance": {"0200", "310000", "00", "01"}, "preauth": {"0100", "030000", "06", "10"},
		"preauth-void": {"0100", "200000", "06", "11"}, "completion": {"0200", "000000", "06", "20"},
		"completion-void": {"0200", "200000", "06", "21"}, "sale": {"0200", "000000", "00", "22"},
		"void": {"0200", "200000", "00", "23"}, "refund": {"0220", "200000", "00", "25"},
		"reversal": {"0400", "000000", "00", "22"}, "settlement": {"0500", "", "", "00"}, "upload": {"0320", "", "", "00"},
	}
	sh, ok := shapes[tx.Kind]
	if !ok {
		return nil, fmt.Errorf("unknown transaction kind %q", tx.Kind)
	}
	if tx.Kind == "reversal" && tx.Reverses != "" {
		of, ok := shapes[tx.Reverses]
		if !ok || of.mti == "0400" || of.mti == "0500" || of.mti == "0320" {
			return nil, fmt.Errorf("reversal of %q: not a kind of request a reversal takes back (sale, refund, void, preauth, preauth-void, completion, completion-void, balance)", tx.Reverses)
		}
		sh = shape{"0400", of.proc, of.cond, of.typ}
	}
	stan := tx.STAN
	if stan == "" {
		stan = t.NextSTAN()
	}
	f := NewFrame(t.TPDU, t.Header, sh.mti).Set(3, sh.proc).Set(11, stan).Set(25, sh.cond).
		Set(41, t.TID).Set(42, t.MID)
	if tx.Kind != "settlement" && tx.Kind != "upload" && tx.Kind != "balance" || tx.Kind == "upload" && tx.Amount > 0 {
		f.Set(4, fmt.Sprintf("%012d", tx.Amount))
	}
	if sh.mti != "0500" && sh.mti != "0320" {
		cur := tx.Currency
		if cur == "" {
			cur = "156"
		}
		f.Set(49, cur)
		entry := "021"
		if tx.PIN == "" {
			entry = "022"
		}
		if tx.Track2 != "" {
			f.Set(22, entry)
		} else {
			f.Set(22, "01"+entry[2:])
		}
	}
	sec := "20"
	if tx.PINWithoutPAN {
		sec = "10"
	}
	termInfo := tx.TermInfo
	switch {
	case tx.QRCode != "" || tx.QR:
		f.Set(22, "031")
		if tx.QRCode != "" {
			termInfo += fmt.Sprintf("%s%02d%s", F59PaymentCode, len(tx.QRCode), tx.QRCode)
		}
	case tx.Track2 != "":
		nib := strings.Replace(tx.Track2, "=", "D", 1)
		if tx.EncryptTrack {
			if t.tdk == nil {
				return nil, errors.New("no TDK: sign in with scheme 004 to encrypt tracks")
			}
			c, err := block(t.tdk)
			if err != nil {
				return nil, err
			}
			if nib, err = EncryptTrack(c.Encrypt, nib); err != nil {
				return nil, err
			}
			sec += "1"
		} else {
			sec += "0"
		}
		f.Set(35, nib)
	default:
		f.Set(2, tx.PAN).Set(14, tx.Expiry)
		sec += "0"
	}
	if tx.PIN != "" {
		pan := tx.PAN
		if tx.Track2 != "" {
			pan = tx.Track2[:strings.IndexAny(tx.Track2, "=D")]
		}
		c, err := block(t.pik)
		if err != nil {
			return nil, fmt.Errorf("no PIK (sign in first): %w", err)
		}
		if tx.PINWithoutPAN {
			pan = zeroPAN
		}
		pb, err := pinblock.Encrypt(c, pinblock.Format0, []byte(tx.PIN), pan, nil)
		if err != nil {
			return nil, err
		}
		f.SetBytes(52, pb).Set(26, "12")
	}
	if tx.PIN != "" || tx.Track2 != "" {
		f.Set(53, sec+"0000000000000")
	}
	f.Set(37, tx.RRN).Set(38, tx.Auth).Set(59, termInfo)
	f60 := "" + sh.typ + t.batch
	switch tx.Kind {
	case "void", "refund", "completion-void", "preauth-void":
		orig := tx.OrigSTAN
		if orig == "" {
			orig = "000000"
		}
		f.Set(61, t.batch+orig+time.Now().UTC().Format("0102"))
	case "reversal":
		if tx.OrigSTAN != "" {
			f.Set(61, t.batch+tx.OrigSTAN)
		}
	case "settlement":
		f60 += "201"
		tot := tx.Totals
		// F48 is fixed-width: a sum or count wider than its column would move every
		// later one (the switch would read the refund sum a digit off).
		for _, c := range []struct {
			what string
			v    int64
			max  int64
		}{{"purchase sum", tot.PurchaseSum, 999999999999}, {"purchase count", tot.PurchaseCount, 999},
			{"refund sum", tot.RefundSum, 999999999999}, {"refund count", tot.RefundCount, 999}} {
			if c.v < 0 || c.v > c.max {
				return nil, fmt.Errorf("settlement totals: %s %d does not fit F48 (0 to %d); settle the batch in parts", c.what, c.v, c.max)
			}
		}
		f.Set(48, fmt.Sprintf("%012d%03d%012d%03d0", tot.PurchaseSum, tot.PurchaseCount, tot.RefundSum, tot.RefundCount))
	case "upload":
		switch {
		case tx.Offline:
			f60 = "36" + t.batch + "000"
			at := tx.ApprovedAt
			if at.IsZero() {
				at = time.Now()
			}
			f.Set(12, at.Format("150405")).Set(13, at.Format("0102"))
		case tx.Amount > 0:
			f60 += "203"
		default:
			f60 += "201"
		}
		if tx.OrigSTAN != "" {
			f.Set(61, t.batch+tx.OrigSTAN)
		}
	case "sale", "preauth":
		if tx.PartialOK {
			f60 += "000" + "0" + "0" + "1" // 60.3, 60.4, 60.5, 60.6
		}
	}
	f.Set(60, f60)
	return f, nil
}

// Do builds, sends (MAC'd) and returns the answer of tx.
func (t *Terminal) Do(tx Txn) (*Frame, error) {
	f, err := t.Build(tx)
	if err != nil {
		return nil, err
	}
	return t.Exchange(f, true)
}

// ReversalOf is the reversal (0400) of request req as a UnionPay terminal sends it
// when req's answer did not come: req's fields again under MTI 0400, its F11, F60
// and F61 included (the STAN of the request taken back and, for a void or a
// completion, the original that request named in F61), without the PIN block (F52,
// F26) and the MAC, with F39 98 (no answer). Terminals keep the request and send it
// again so; the switch takes the original from F11 (docs/cup-dialect.md,
// Reversals).
func ReversalOf(req *Frame) (*Frame, error) {
	body, err := req.Encode(nil)
	if err != nil {
		return nil, fmt.Errorf("reversal of %s STAN %s: %w", req.MTI(), req.Str(11), err)
	}
	rev, err := Decode(body)
	if err != nil {
		return nil, fmt.Errorf("reversal of %s STAN %s: %w", req.MTI(), req.Str(11), err)
	}
	rev.Msg.MTI("0400")
	rev.Msg.UnsetField(52)
	rev.Msg.UnsetField(26)
	rev.Set(39, "98")
	return rev, nil
}

// Echo sends 0820 echo (60.3 = 301); SignOff sends 0820 sign-off (002).
func (t *Terminal) Echo() (*Frame, error)    { return t.network("301") }
func (t *Terminal) SignOff() (*Frame, error) { return t.network("002") }

func (t *Terminal) network(code string) (*Frame, error) {
	f := NewFrame(t.TPDU, t.Header, "0820").Set(11, t.NextSTAN()).Set(41, t.TID).Set(42, t.MID).
		Set(60, "00"+t.batch+code)
	return t.Exchange(f, false)
}

// Summary is a one-line description of an answer, PAN masked.
func Summary(f *Frame) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s rc=%s", f.MTI(), f.Str(39))
	for _, id := range []int{11, 37, 38} {
		if v := f.Str(id); v != "" {
			fmt.Fprintf(&b, " F%d=%s", id, v)
		}
	}
	if v := f.Str(2); v != "" {
		b.WriteString(" pan=" + message.MaskPAN(v))
	}
	if v := f.Str(60); v != "" {
		b.WriteString(" F60=" + v)
	}
	fmt.Fprintf(&b, " req=%d", f.Header.ProcessingRequirement())
	return b.String()
}
