package cup

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/switch/message"
)

// Kind is one transaction type of the dialect and how it maps onto the switch's
// pipeline (the ASCII contract of docs/terminal-interface.md).
type Kind struct {
	Name      string // sale, void, refund, ...
	MTI       string // the dialect's request MTI
	Type      string // 60.1
	ASCIIMTI  string // the pipeline's MTI
	ASCIIProc string // the pipeline's DE 3
	// Proc is the transaction type (the first two digits) of the dialect's F3 for
	// this kind, as the spec's table has it ("" for those matched on the MTI alone):
	// a request whose F3 says another is refused (Adapter.Process).
	Proc string
	// Original names how the original is found: "rrn" (F37, voids and refunds),
	// "stan" (a reversal: F61.2, else F11); "offline" is no original but the
	// upload of an offline approval (offlineSale), timed by the card's F13 + F12.
	Original string
}

// kinds is the mapping of every card transaction of the dialect: the one place where
// a new one (a QR payment by F22 = 03x, say) is added. Keys are MTI + "/" + 60.1;
// reversals and settlement match on the MTI alone.
var kinds = map[string]Kind{
	"0200/22": {Name: "sale", MTI: "0200", Type: "22", Proc: "00", ASCIIMTI: "0200", ASCIIProc: message.PCPurchase},
	"0200/23": {Name: "void", MTI: "0200", Type: "23", Proc: "20", ASCIIMTI: "0200", ASCIIProc: message.PCVoid, Original: "rrn"},
	"0220/25": {Name: "refund", MTI: "0220", Type: "25", Proc: "20", ASCIIMTI: "0200", ASCIIProc: message.PCRefund, Original: "rrn"},
	"0200/01": {Name: "balance", MTI: "0200", Type: "01", Proc: "31", ASCIIMTI: "0200", ASCIIProc: message.PCBalance},
	"0100/10": {Name: "preauth", MTI: "0100", Type: "10", Proc: "03", ASCIIMTI: "0100", ASCIIProc: message.PCPurchase},
	// A pre-authorization void releases the hold at the issuer: the pipeline's
	// reversal of the pre-authorization named by F61.2.
	"0100/11": {Name: "preauth-void", MTI: "0100", Type: "11", Proc: "20", ASCIIMTI: "0400", Original: "stan61"},
	// A completion captures the pre-authorization named by F37 + F38: the pipeline's
	// completion (0220), checked against the pre-authorization and advised to the
	// issuer, never authorized a second time. Its void is the pipeline's void of the
	// completion (F37 is the completion's RRN), which reopens the pre-authorization.
	"0200/20": {Name: "completion", MTI: "0200", Type: "20", Proc: "00", ASCIIMTI: "0220", ASCIIProc: message.PCPurchase, Original: "rrn"},
	"0200/21": {Name: "completion-void", MTI: "0200", Type: "21", Proc: "20", ASCIIMTI: "0200", ASCIIProc: message.PCVoid, Original: "rrn"},
	"0400":    {Name: "reversal", MTI: "0400", ASCIIMTI: "0400", Original: "stan"},
	"0500":    {Name: "settlement", MTI: "0500", ASCIIMTI: "0500", ASCIIProc: message.PCBatch},
}

// KindOf returns the transaction kind of a request by its MTI and 60.1.
func KindOf(f *Frame) (Kind, bool) {
	mti := f.MTI()
	if k, ok := kinds[mti]; ok {
		return k, true
	}
	f60 := f.Str(60)
	if len(f60) < 2 {
		return Kind{}, false
	}
	k, ok := kinds[mti+"/"+f60[:2]]
	return k, ok
}

// F60 is field 60 split into its parts (absent parts are "").
type F60 struct {
	Type, Batch, NetCode string // 60.1 N2, 60.2 N6, 60.3 N3
	Rest                 string // 60.4 onwards as sent
}

// ParseF60 splits field 60.
func ParseF60(s string) F60 {
	cut := func(n int) string {
		if len(s) < n {
			v := s
			s = ""
			return v
		}
		v := s[:n]
		s = s[n:]
		return v
	}
	f := F60{Type: cut(2), Batch: cut(6), NetCode: cut(3)}
	f.Rest = s
	return f
}

// String joins the parts again.
func (f F60) String() string { return f.Type + f.Batch + f.NetCode + f.Rest }

// security is field 53: 53.1 PIN format (1 without PAN, 2 with PAN), 53.2 algorithm
// (0 single DES, 6 double-length TDES), 53.3 track encryption (1 encrypted).
type security struct{ pinFormat, alg, trackEnc byte }

func parseF53(s string) security {
	var sec security
	if len(s) >= 3 {
		sec = security{s[0], s[1], s[2]}
	}
	return sec
}

// mapped is a request of the dialect in the pipeline's terms.
type mapped struct {
	kind Kind
	body []byte // the ASCII request
	de7  string // the DE 7 it was given (a resend of the STAN gets the same)
	// sum is the fingerprint of the request's content to journal with it
	// (frontend.Conn.ContentSum): 0 when none, or when the key is not stable.
	sum uint64
}

// mapError is a request that cannot be mapped: answered with rc (30 for a format
// error, 12 for a transaction the switch does not do), never forwarded.
type mapError struct {
	rc     string
	field  int
	reason string
	// token, when set, is the journal's reason (refusalReason); else one is made
	// of the code and the field.
	token string
}

func (e *mapError) Error() string {
	if e.field > 0 {
		return fmt.Sprintf("F%d: %s", e.field, e.reason)
	}
	return e.reason
}

func formatErr(field int, format string, args ...any) *mapError {
	return &mapError{rc: message.RCFormatError, field: field, reason: fmt.Sprintf(format, args...)}
}

// toPipeline maps a request of the dialect onto the pipeline's ASCII request. track2
// is the clear track 2 ("" when absent), already decrypted when 53.3 said so; pin is
// F52 bound to the PAN (see Adapter.pinBlock). s is the terminal's session (its DE 48
// identity and the DE 7 of its STANs); it is updated.
// identity is the DE 48 identity tags to send: the sign-in's (s.tlv), or what the
// adapter put in their place (boundIdentity). ck keys the fingerprint of the
// request's content (contentKey.sum).
//
// pre, for a pre-authorization void that named its pre-authorization by reference
// (preauthByReference), is that pre-authorization; nil otherwise.
func toPipeline(f *Frame, k Kind, s *session, identity, track2 string, pin []byte, now time.Time, ck *contentKey, pre *original) (mapped, error) {
	stan, tid := f.Str(11), f.Str(41)
	m := mapped{kind: k}
	de7 := message.FormatDE7(now)
	s.mu.Lock()
	defer s.mu.Unlock()
	b := message.NewBuilder(message.DialectASCII, k.ASCIIMTI)
	amount := f.Str(4)
	tags := f59Tags(f.Str(59))
	entry := f.Str(22)
	if len(entry) > 3 {
		entry = entry[:3]
	} else if entry == "" {
		entry = "000" // as the pipeline is given it (below)
	}
	var sum uint64
	resend := false
	switch k.Original {
	case "stan", "stan61":
		orig, err := originalSTAN(f, k, s.stans, now)
		if err != nil {
			return m, err
		}
		e, ok := s.stans[orig]
		if pre != nil && k.Original == "stan61" {
			orig, e, ok = pre.stan, pre.e, true
		}
		if ok && k.Original == "stan61" && e.mti != "0100" {
			// A pre-authorization void releases a hold: one naming a sale, a
			// refund or a completion would reverse that at the issuer while the
			// terminal shows a hold released.
			return m, &mapError{rc: message.RCOriginalNotFound, field: 61,
				reason: "61.2 names STAN " + orig + ", which is not a pre-authorization"}
		}
		if ok && k.Original == "stan" && !reverses(f, e, now) {
			ok = false // of another kind, or older than a day: not what this reversal takes back
		}
		if !ok {
			// Not seen in this session (a restart, or never arrived): the pipeline
			// answers a reversal of an unknown original and remembers it.
			e = stanEntry{mti: "0200", de7: de7, amount: amount, at: now}
			if rk, typed := reversedKind(f); typed && k.Original == "stan" && rk.Original != "stan61" {
				e.mti, e.proc = rk.ASCIIMTI, rk.ASCIIProc
			}
		}
		if own, known := s.stans[stan]; e.de7 == de7 && orig == stan || known && own.de7 == de7 {
			// The same second as the original, or as another request of the
			// reversal's own STAN: the reversal's key (terminal, STAN, DE 7) would
			// be that request's, and the pipeline would answer it as its duplicate.
			de7 = message.FormatDE7(now.Add(time.Second))
		}
		if amount == "" {
			amount = e.amount
		}
		proc := e.proc
		if proc == "" {
			proc = message.PCPurchase
		}
		b.Set(3, proc).Set(90, e.mti+orig+e.de7+strings.Repeat("0", 22))
	case "offline":
		// The card's approval time (F13 + F12, checked by the caller): the same for
		// every upload of it, so that one sent again is the pipeline's duplicate.
		de7 = f.Str(13) + f.Str(12)
		stan = uploadSTAN(f)
		b.Set(3, k.ASCIIProc).Set(38, strings.TrimSpace(f.Str(38)))
	default:
		sum = ck.sum(f, track2, tags[message.TagQRCode])
		if e, ok := s.stans[stan]; ok && e.mti == k.ASCIIMTI && e.proc == k.ASCIIProc && e.amount == amount {
			esum := e.sum
			if e.journaled && !ck.stable {
				esum = 0 // made under the stable key, which this adapter does not have
			}
			if esum != 0 && esum != sum || esum == 0 && e.entry != "" && e.entry != entry {
				// The STAN, type and amount of an earlier request, but not its
				// card, entry mode, chip data...: another transaction, never
				// given the other's answer. The first stays remembered, so that
				// its own resend still gets its answer.
				return m, &mapError{rc: message.RCDuplicate, field: 11, reason: fmt.Sprintf(
					"STAN %s was used by another %s of the same amount (received %s): not a resend", stan, k.Name, e.at.UTC().Format(time.RFC3339))}
			}
			// A resend: the same key, so the pipeline answers it as a duplicate.
			// The entry stays the first's (an entry read from the journal without
			// a fingerprint does not take this one's: the pipeline may yet find
			// the card other, 94).
			de7, resend = e.de7, true
		}
		b.Set(3, k.ASCIIProc)
	}
	if (k.Original == "" || k.Original == "rrn") && !resend {
		s.remember(stan, stanEntry{mti: k.ASCIIMTI, proc: k.ASCIIProc, de7: de7, amount: amount, at: now, entry: entry, sum: sum})
	}
	m.de7 = de7
	if ck.stable {
		m.sum = sum
	}
	localTime, localDate := now.UTC().Format("150405"), now.UTC().Format("0102")
	if k.Original == "offline" { // the card's, in the advice to the issuer
		localTime, localDate = f.Str(12), f.Str(13)
	}
	b.Set(2, f.Str(2)).Set(4, amount).Set(7, de7).Set(11, stan).
		Set(12, localTime).Set(13, localDate).Set(14, f.Str(14)).
		Set(22, f.Str(22)).Set(25, f.Str(25)).Set(35, track2).Set(41, tid).Set(42, f.Str(42)).Set(49, f.Str(49))
	if k.ASCIIMTI == "0100" || k.ASCIIMTI == "0200" || k.ASCIIMTI == "0220" {
		if f.Str(22) == "" {
			b.Set(22, "000")
		}
		if f.Str(49) == "" {
			b.Set(49, "156")
		}
	}
	if k.Original == "rrn" {
		if f.Str(37) == "" {
			return m, formatErr(37, "the original's retrieval reference number is required for a %s", k.Name)
		}
		b.Set(37, f.Str(37)).Set(38, strings.TrimSpace(f.Str(38)))
	}
	if qr := strings.HasPrefix(f.Str(22), "03"); !qr {
		delete(tags, message.TagQRCode)
	} else if _, ok := tags[message.TagQRCode]; !ok {
		switch {
		case k.ASCIIProc == message.PCRefund || k.ASCIIProc == message.PCVoid:
			// A void or refund of a QR payment carries no card: QC empty.
			if tags == nil {
				tags = map[string]string{}
			}
			tags[message.TagQRCode] = ""
		case k.Original == "": // a payment: the code is required (a reversal names its original)
			return m, formatErr(59, "a QR payment (F22 %s) needs the payer's code in F59 tag %s", f.Str(22), F59PaymentCode)
		}
	}
	tlv, err := withTags(identity, tags)
	if err != nil {
		return m, formatErr(59, "%v", err)
	}
	if k.Name == "settlement" {
		bt, err := settlementTotals(f.Str(48))
		if err != nil {
			return m, err
		}
		if tlv, err = appendTag(tlv, message.TagBatchTotals, bt.String()); err != nil {
			return m, formatErr(48, "%v", err)
		}
	}
	if (k.Name == "sale" || k.Name == "preauth") && partialOK(f.Str(60)) {
		if tlv, err = appendTag(tlv, message.TagPartialOK, "1"); err != nil {
			return m, formatErr(60, "%v", err)
		}
	}
	b.Set(48, tlv)
	if len(pin) == 8 {
		b.SetBytes(52, pin)
	}
	if icc := f.Bytes(55); len(icc) > 0 {
		b.Set(55, strings.ToUpper(hex.EncodeToString(icc)))
	}
	body, err := b.Bytes(nil)
	if err != nil {
		return m, formatErr(0, "%v", err)
	}
	m.body = body
	return m, nil
}

// ContentKeyLabel is the purpose label under which the switch derives
// Config.ContentKey from its card hash key (pipeline.DerivedKey): the key of the
// requests' content fingerprints (contentKey.sum), a hash domain of its own.
const ContentKeyLabel = "switchyard cup request content v1"

// contentKey keys the fingerprints of card requests' content (sum): HMAC-SHA256,
// its key's inner and outer blocks made once.
type contentKey struct {
	ipad, opad [sha256.BlockSize]byte
	// stable: the key is Config.ContentKey, the same after a restart and on every
	// node, so that the fingerprints go to the journal (journal.Record.ContentSum)
	// and those read back from it compare with the new ones. Without it the key is
	// the process's (processContentKey): the fingerprints are compared in memory
	// only.
	stable bool
}

// processContentKey keys the fingerprints of an adapter without Config.ContentKey:
// per process, as such fingerprints live in the sessions' memory only (the
// sessions are shared by the listeners, so all adapters of the process share it).
var processContentKey = func() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k) // crypto/rand.Read does not fail (it crashes the program)
	return k
}()

// newContentKey returns the content key of key (nil: the process's, not stable).
func newContentKey(key []byte) *contentKey {
	k := &contentKey{stable: len(key) > 0}
	if !k.stable {
		key = processContentKey
	}
	if len(key) > sha256.BlockSize {
		h := sha256.Sum256(key)
		key = h[:]
	}
	for i := range k.ipad {
		var b byte
		if i < len(key) {
			b = key[i]
		}
		k.ipad[i], k.opad[i] = b^0x36, b^0x5c
	}
	return k
}

// contentFields are the fields of a card request that the fingerprint covers besides
// the clear track 2 and F59's payment code: what tells one transaction from another
// of the same STAN, type and amount, and what a terminal's resend (the same message
// again) repeats as it is. Left out: F52 and F64 (a sign-in between the first try
// and the resend changes the PIN and MAC keys), F53, F59's other tags (the
// terminal's place and SIM, read afresh), F60 after 60.1, F62, F63 and F35 as sent
// (encrypted under the TDK, which a sign-in changes: the clear track stands for it).
var contentFields = [...]int{2, 3, 12, 13, 14, 22, 23, 25, 37, 38, 49, 55, 61}

// contentInput is the room the fingerprint's input takes on the stack: the key
// block and every field at its longest but F55 (up to 255 bytes) and F61 fit; a
// longer input goes to the heap.
const contentInput = 1024

// sum is the fingerprint of request f's content (contentFields, the clear track 2
// and F59's payment code qrCode; 60.1 and F4 are compared on their own): the first
// 64 bits of HMAC-SHA256 under the key, over each field as its number, its length
// (2 bytes) and its bytes, so that the session and the journal keep no card data,
// only this number. Two requests of one STAN with different sums are two
// transactions. It is computed once per request and, but for the fields' reads,
// allocates nothing (TestContentSumAllocations). Never 0 (0 means none).
func (k *contentKey) sum(f *Frame, track2, qrCode string) uint64 {
	var buf [contentInput]byte
	b := append(buf[:0], k.ipad[:]...)
	put := func(b []byte, id int, v string) []byte {
		b = append(b, byte(id), byte(len(v)>>8), byte(len(v)))
		return append(b, v...)
	}
	for _, id := range contentFields {
		switch {
		case !f.Has(id):
		case id == 55: // binary
			v := f.Bytes(55)
			b = append(b, 55, byte(len(v)>>8), byte(len(v)))
			b = append(b, v...)
		default:
			b = put(b, id, f.Str(id))
		}
	}
	b = put(b, 35, track2)
	b = put(b, 59, qrCode)
	inner := sha256.Sum256(b)
	var outer [sha256.BlockSize + sha256.Size]byte
	copy(outer[:], k.opad[:])
	copy(outer[sha256.BlockSize:], inner[:])
	mac := sha256.Sum256(outer[:])
	if v := binary.BigEndian.Uint64(mac[:8]); v != 0 {
		return v
	}
	return 1
}

// partialOK reports whether F60 says the terminal accepts a partial approval: 60.6,
// the 14th digit (after 60.1 N2, 60.2 N6, 60.3 N3, 60.4 N1, 60.5 N1), is 1. A
// terminal that sends a shorter F60 does not accept them.
func partialOK(f60 string) bool { return len(f60) >= 14 && f60[13] == '1' }

func appendTag(tlv, tag, v string) (string, error) {
	b, err := message.AppendTLV([]byte(tlv), tag, v)
	return string(b), err
}

// settlementTotals reads F48 of an 0500: debit (purchase) amount N12 and count N3,
// credit (refund) amount N12 and count N3, the domestic settlement code N1, and
// optionally the same 31 digits for foreign cards (a length between, foreign totals
// cut short, is a format error). The switch's journal holds every
// card the terminal took, whatever its organisation, so the totals it is compared
// with are the sum of both. (Until 5 December 2026 the foreign totals were ignored:
// a batch with foreign cards never balanced, and the answer's foreign settlement
// code said balanced without any comparison.)
func settlementTotals(s string) (message.BatchTotals, error) {
	if len(s) < 30 {
		return message.BatchTotals{}, formatErr(48, "settlement totals are %d digits, want at least 30", len(s))
	}
	read := func(part, what string) (message.BatchTotals, error) {
		for _, c := range part {
			if c < '0' || c > '9' {
				return message.BatchTotals{}, formatErr(48, "%s settlement totals are not digits", what)
			}
		}
		n := func(a, b int) int64 { v, _ := strconv.ParseInt(part[a:b], 10, 64); return v }
		return message.BatchTotals{PurchaseSum: n(0, 12), PurchaseCount: n(12, 15), RefundSum: n(15, 27), RefundCount: n(27, 30)}, nil
	}
	bt, err := read(s[:30], "domestic")
	if err != nil || len(s) <= 31 {
		return bt, err
	}
	if len(s) < 61 {
		// Foreign totals begun and cut short: read as the domestic ones alone, a
		// batch whose foreign cards nobody compared would be answered balanced.
		return message.BatchTotals{}, formatErr(48, "settlement totals are %d digits: foreign-card totals cut short (want 30 or 31, or 61 or 62)", len(s))
	}
	foreign, err := read(s[31:61], "foreign-card")
	if err != nil {
		return message.BatchTotals{}, err
	}
	bt.PurchaseSum += foreign.PurchaseSum
	bt.PurchaseCount += foreign.PurchaseCount
	bt.RefundSum += foreign.RefundSum
	bt.RefundCount += foreign.RefundCount
	return bt, nil
}

// The longest F60 and F61 of the spec (n..017, n..029).
const (
	maxF60 = 17
	maxF61 = 29
)

// checkPrivate checks that F60 and F61, when present, are numeric and at most 17 and
// 29 digits, as the spec has them (the codec reads up to 40 nibbles, hex letters
// included). The error names the field and what is wrong, not the content. (Until 5
// December 2026 a hex letter or up to 40 digits went on to the pipeline.)
func checkPrivate(f *Frame) *mapError {
	for _, c := range []struct{ id, max int }{{60, maxF60}, {61, maxF61}} {
		if !f.Has(c.id) {
			continue
		}
		v := f.Str(c.id)
		if len(v) > c.max {
			return formatErr(c.id, "%d digits, the spec allows at most %d", len(v), c.max)
		}
		if !isDigits(v) {
			return formatErr(c.id, "not numeric (a hex digit A-F), the spec has it n..%03d", c.max)
		}
	}
	return nil
}
