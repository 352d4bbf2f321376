// Package carddata finds card data (PANs, track data) in strings that people type,
// so that none is stored or logged in clear (PCI DSS: a PAN is shown as first 6 /
// last 4 at most). It depends on the standard library only, so that every package
// that stores free text can import it.
package carddata

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Luhn reports whether the digits of s pass the Luhn (mod 10) check.
func Luhn(s string) bool {
	sum, double := 0, false
	for i := len(s) - 1; i >= 0; i-- {
		d := int(s[i] - '0')
		if d < 0 || d > 9 {
			return false
		}
		if double {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return len(s) > 0 && sum%10 == 0
}

// MaskPAN masks a PAN to first 6 / last 4. Shorter inputs are masked entirely.
func MaskPAN(pan string) string {
	if len(pan) < 13 {
		return strings.Repeat("*", len(pan))
	}
	return pan[:6] + strings.Repeat("*", len(pan)-10) + pan[len(pan)-4:]
}

var (
	panLike = regexp.MustCompile(`^[0-9]{12,19}$`)
	// track2Like is ISO 7813 track 2 data: the PAN, the = (or D) separator, then
	// digits (expiry, service code, discretionary data).
	track2Like = regexp.MustCompile(`^[0-9]{12,19}[=D][0-9]*$`)
	// separatedDigits are digit groups joined by spaces or dashes, as a PAN is
	// printed or typed ("4761 7390 0101 0119", "4761-7390-0101-0119").
	separatedDigits = regexp.MustCompile(`[0-9]+(?:[ -][0-9]+)+`)
)

// Like reports whether v, a value that should be an identifier (a card hash, a
// terminal ID), is or holds card data: 12 to 19 digits, bare or written with
// separators, or track 2 data. It does not ask for the Luhn check: a value that
// looks like a PAN is refused whether or not it is one.
func Like(v string) bool {
	if panLike.MatchString(v) || track2Like.MatchString(v) {
		return true
	}
	for _, m := range separatedDigits.FindAllString(v, -1) {
		n := len(m) - strings.Count(m, " ") - strings.Count(m, "-")
		if n >= 12 && n <= 19 {
			return true
		}
	}
	return false
}

// The lengths of a PAN (ISO/IEC 7812) MaskText looks for.
const (
	minPAN = 13
	maxPAN = 19
)

// minGroup and maxGroup bound the digits of each group of a PAN written with
// separators ("4761 7390 0101 0119", "3782 822463 10005", "476173-9001010119"):
// shorter groups are dates, times, parts of phone numbers; longer ones (a 12-digit
// RRN) are numbers of their own.
const (
	minGroup = 3
	maxGroup = 10
)

// MaskText replaces the card numbers in s, free text a person typed, with their
// masked form (first 6, '*', last 4) and reports how many it replaced. A card
// number is 13 to 19 digits that pass the Luhn check, written in one piece, in
// groups of 3 to 10 digits joined by separators (groups), or a digit at a time with
// one separator after each (maskDigitByDigit). Glued to a letter or '_' ("X4761739001010119", "card4761739001010119end",
// "ref:X4761-7390-0101-0119"), a number is masked when it passes an identifier's
// test (InID: 16 to 19 digits, or 13 to 15 with a card scheme's prefix, no ICCID),
// its leading zeros put aside, so that merchant IDs, timestamps, IMEIs, ICCIDs and
// zero-padded counters glued to a letter stay; and never inside a hex hash, a token
// of 32, 40 or 64 hex digits in one case (a card hash, SHA-1, SHA-256: hashLen).
// Until 8 December 2026 a number glued to a letter was left in clear. Track data
// loses everything but the masked PAN: in track 2 (PAN, '=' or 'D', digits) the
// separator and the digits after it, in track 1 ("%B" PAN "^" name "^" digits) the
// format code, name and digits. When two readings of a run of groups overlap (a
// number typed just before a PAN may pass the check with the PAN's first groups)
// the whole run is masked as one, so that no reading leaves digits of a PAN in
// clear. Numbers that fail the
// Luhn check, shorter or longer runs (amounts, 12-digit RRNs, STANs, dates, phone
// numbers) and digits inside hex hashes are left as they are.
//
// Digits of other scripts count as their ASCII values: a card number typed with a
// Chinese input method in full-width mode (４７６１…), or in Arabic-Indic digits, is
// masked too, and the text comes back with its digits in ASCII (until 7 December 2026
// such a number was left in clear). Full-width spaces and hyphens separate groups
// as the ASCII ones do.
func MaskText(s string) (string, int) {
	if f, ok := foldDigits(s); ok {
		if m, n := maskText(f); n > 0 {
			return m, n
		}
		return s, 0
	}
	return maskText(s)
}

// foldDigits returns s with its non-ASCII decimal digits (Unicode Nd) as ASCII
// digits, and full-width spaces and hyphen-minus signs as ASCII ones, and true; or
// false when s has none of them.
func foldDigits(s string) (string, bool) {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return "", false
	}
	var b strings.Builder
	changed := false
	for _, r := range s {
		switch {
		case r >= utf8.RuneSelf && unicode.IsDigit(r):
			b.WriteByte('0' + digitValue(r))
			changed = true
		case unicode.Is(unicode.Zs, r) || r == '\u3000': // no-break, thin, ideographic... spaces
			b.WriteByte(' ')
			changed = true
		case unicode.Is(unicode.Pd, r) || r == '\u2212' || r == '\uFF0D': // hyphens, dashes, minus, full-width hyphen-minus
			b.WriteByte('-')
			changed = true
		case r == '\uFF0E' || r == '\u3002' || r == '\u00B7' || r == '\u30FB': // full-width and ideographic full stops, middle dots
			b.WriteByte('.')
			changed = true
		case r == '\uFF0F': // full-width solidus
			b.WriteByte('/')
			changed = true
		case r == '\uFF0C' || r == '\u3001': // full-width and ideographic commas
			b.WriteByte(',')
			changed = true
		default:
			b.WriteRune(r)
		}
	}
	return b.String(), changed
}

// digitValue is the value of r, a decimal digit (Unicode Nd): Nd digits come in
// runs that start at a zero (the mathematical digits in five runs of ten back to
// back).
func digitValue(r rune) byte {
	start := r
	for k := 0; k < 60 && unicode.IsDigit(start-1); k++ {
		start--
	}
	return byte((r - start) % 10)
}

func maskText(s string) (string, int) {
	if countDigits(s) < minPAN {
		return s, 0
	}
	var b strings.Builder
	n, copied := 0, 0
	var buf [8]group // the groups of most runs: no allocation for each
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
			i++
			continue
		}
		gs := groups(s, i, buf[:0])
		next := gs[len(gs)-1].end
		if len(gs) > 1 {
			// The last group may start a number written with the other separator.
			next = gs[len(gs)-1].start
		}
		var cur found
		have := false
		flush := func() {
			var digits strings.Builder
			for z := cur.first; z <= cur.last; z++ {
				digits.WriteString(s[gs[z].start:gs[z].end])
			}
			b.WriteString(s[copied:cur.start])
			b.WriteString(MaskPAN(digits.String()))
			copied, n = cur.end, n+1
			next = max(cur.end, next)
		}
		for a := range gs {
			m, ok := match(s, gs, a)
			if !ok {
				continue
			}
			if have && m.first <= cur.last {
				cur.last, cur.end = max(cur.last, m.last), max(cur.end, m.end)
				continue
			}
			if have {
				flush()
			}
			cur, have = m, true
		}
		if have {
			flush()
		}
		i = next
	}
	if n == 0 {
		return maskDigitByDigit(s)
	}
	b.WriteString(s[copied:])
	out, k := maskDigitByDigit(b.String())
	return out, n + k
}

// maskDigitByDigit masks the card numbers in s typed a digit at a time, one
// separator (isSep) after each ("4 7 6 1 7 3 9 0 0 1 0 1 0 1 1 9"): a run of 13 to
// 19 single digits, not glued to a letter or a digit, whose digits pass the Luhn
// check, is masked whole. Groups of one or two digits are not read as a card
// number's (dates, times), so until 8 December 2026 such a number was left in
// clear. It allocates only when it masks.
func maskDigitByDigit(s string) (string, int) {
	var b strings.Builder
	n, copied := 0, 0
	for i := 0; i+2*minPAN-1 <= len(s); {
		if !isDigit(s[i]) || i > 0 && (isDigit(s[i-1]) || isWord(s[i-1])) {
			i++
			continue
		}
		var digits [maxPAN + 1]byte
		k, j := 0, i
		for {
			digits[k] = s[j]
			k++
			j++ // after the digit
			if k > maxPAN || j+1 >= len(s) || !isSep(s[j]) || !isDigit(s[j+1]) || j+2 < len(s) && isDigit(s[j+2]) {
				break
			}
			j++ // the next digit
		}
		single := j == len(s) || !isDigit(s[j]) && !isWord(s[j])
		if k < minPAN || k > maxPAN || !single || !Luhn(string(digits[:k])) {
			i = j
			continue
		}
		b.WriteString(s[copied:i])
		b.WriteString(MaskPAN(string(digits[:k])))
		copied, n, i = j, n+1, j
	}
	if n == 0 {
		return s, 0
	}
	b.WriteString(s[copied:])
	return b.String(), n
}

// group is one run of digits, s[start:end].
type group struct{ start, end int }

// groups reads the digit groups from s[i] (a digit) on: runs of digits joined by
// separators, one to three of space, tab, '-', '.', '/', '_' and ',' (',' since 8
// December 2026, and the full-width and ideographic commas as it) ("4761 7390 0101
// 0119", "4761.7390.0101.0119", "4761 - 7390 - 0101 - 0119"). The kinds may mix
// ("4761 7390-0101 0119"): until 7 December 2026 one kind per number, a single
// space or dash, was read, and the rest left in clear. It appends them to gs.
func groups(s string, i int, gs []group) []group {
	commas := -1 // whether the groups so far are joined by commas (-1: no join yet)
	for {
		j := i
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		gs = append(gs, group{i, j})
		k := j
		comma := 0
		for k < len(s) && k-j < maxSep && isSep(s[k]) {
			if s[k] == ',' {
				comma = 1
			}
			k++
		}
		if k == j || k >= len(s) || !isDigit(s[k]) {
			return gs
		}
		// Commas join a number's groups only when they join all of them
		// ("4761,7390,0101,0119"): a comma between numbers written with other
		// separators parts them (a location "31.230416,121.473701", a list
		// "12.50, 30.00").
		if commas >= 0 && comma != commas {
			return gs
		}
		commas = comma
		i = k
	}
}

// maxSep is the most separator characters between two groups of a card number.
const maxSep = 3

func isSep(c byte) bool {
	return c == ' ' || c == '\t' || c == '-' || c == '.' || c == '/' || c == '_' || c == ','
}

// found is one card number in s: s[start:end] goes; its digits are those of groups
// first to last.
type found struct{ start, end, first, last int }

// match finds the longest card number that starts with group a of gs. A number
// glued to a letter or '_' (before its first group or after its last) must pass
// the stricter test of an identifier's (gluedCard), and is never part of a hex
// hash (hexHash).
func match(s string, gs []group, a int) (found, bool) {
	gluedBefore := a == 0 && gs[0].start > 0 && isWord(s[gs[0].start-1]) && !track1Start(s, gs[0].start)
	var best found
	ok := false
	digits := make([]byte, 0, maxPAN)
	for z := a; z < len(gs); z++ {
		if z > a && (!grouped(gs[a]) || !grouped(gs[z])) {
			break
		}
		digits = append(digits, s[gs[z].start:gs[z].end]...)
		if len(digits) > maxPAN {
			break
		}
		if len(digits) < minPAN || !Luhn(string(digits)) {
			continue
		}
		end := gs[z].end
		gluedAfter := false
		if z == len(gs)-1 && end < len(s) {
			if e, isTrack := trackEnd(s, end, z == a, track1Start(s, gs[a].start)); isTrack {
				end = e
			} else {
				gluedAfter = isWord(s[end])
			}
		}
		if (gluedBefore || gluedAfter) && (!gluedCard(digits) ||
			gluedBefore && hexHash(s, gs[a].start) || gluedAfter && hexHash(s, gs[z].start)) {
			continue
		}
		best, ok = found{start: g0start(s, gs[a].start), end: end, first: a, last: z}, true
	}
	return best, ok
}

// gluedCard reports whether digits, a number glued to a letter
// ("X4761739001010119", "card4761739001010119end"), read as a card number: as in
// an identifier (cardRun: 16 to 19 digits, or 13 to 15 with a scheme's prefix; no
// ICCID), its leading zeros put aside, since no card number starts with 0 (ISO/IEC
// 7812 gives cards no major industry identifier 0) while padded counters and IDs
// do ("M0000000000000000000", the amount "9F0206000000001000" of chip data, a DE 48
// value after its length). Plain Luhn, enough for a number standing alone, would
// take a tenth of the 15-digit merchant IDs and 14-digit timestamps glued to a
// letter.
func gluedCard(digits []byte) bool {
	k := 0
	for k < len(digits) && digits[k] == '0' {
		k++
	}
	return cardRun(string(digits[k:]))
}

// hashLen reports whether n hex digits is the length of a hash the switch prints
// or an operator pastes: 32 (the card hash, HMAC-SHA256 cut to 16 bytes; capture
// keys; the 16-byte references), 40 (SHA-1, a commit) and 64 (SHA-256 and
// HMAC-SHA256: audit links, oplog and change digests, packages, signatures).
// Shorter hex (a 16-digit fingerprint) is not kept whole: a PAN glued to three hex
// letters is as long.
func hashLen(n int) bool { return n == 32 || n == 40 || n == 64 }

// hexHash reports whether the token around s[i] (its run of ASCII letters and
// digits) is a hex hash: hex digits only, in one case, and hashLen long. Its digit
// runs are left as they are, though one may read as a card number.
func hexHash(s string, i int) bool {
	start, end := i, i
	for start > 0 && isAlnum(s[start-1]) {
		start--
	}
	for end < len(s) && isAlnum(s[end]) {
		end++
	}
	if !hashLen(end - start) {
		return false
	}
	lower, upper := false, false
	for k := start; k < end; k++ {
		switch c := s[k]; {
		case isDigit(c):
		case 'a' <= c && c <= 'f':
			lower = true
		case 'A' <= c && c <= 'F':
			upper = true
		default:
			return false
		}
	}
	return !(lower && upper)
}

// grouped reports whether g can be a group of a PAN written with separators.
func grouped(g group) bool { return g.end-g.start >= minGroup && g.end-g.start <= maxGroup }

// trackEnd reports whether s[end:] continues the PAN that ends there as track data,
// and where the track data ends. Only a PAN in one piece (whole) can be track data.
func trackEnd(s string, end int, whole, track1 bool) (int, bool) {
	if !whole {
		return 0, false
	}
	if track1 {
		// ^NAME^YYMM... up to the end sentinel or the end of the digits.
		if s[end] != '^' {
			return 0, false
		}
		k := strings.IndexByte(s[end+1:], '^')
		if k < 0 {
			return 0, false
		}
		j := end + 1 + k + 1
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		return j, true
	}
	switch s[end] {
	case '=':
		j := end + 1
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		return j, true
	case 'D':
		j := end + 1
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		// At least the expiry (YYMM), and not a word like "4761...Dollars".
		if j-end-1 >= 4 && (j == len(s) || !isWord(s[j])) {
			return j, true
		}
	}
	return 0, false
}

// track1Start reports whether the digits at s[i] follow "%B", the start of track 1,
// or a 'B' that starts a word (track 1 copied without its start sentinel).
func track1Start(s string, i int) bool {
	return track1Lead(s, i) > 0
}

// track1Lead is the length of the track 1 start before the digits at s[i]: 2 for
// "%B", 1 for a 'B' at the start of s or after a character that is no letter,
// digit or '_', 0 otherwise.
func track1Lead(s string, i int) int {
	switch {
	case i < 1 || s[i-1] != 'B':
		return 0
	case i >= 2 && s[i-2] == '%':
		return 2
	case i == 1 || !isWord(s[i-2]):
		return 1
	}
	return 0
}

// g0start is where a card number whose digits start at i begins: the "%B" (or
// "B") of track 1 goes with it.
func g0start(s string, i int) int {
	return i - track1Lead(s, i)
}

func countDigits(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			n++
		}
	}
	return n
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isWord reports whether c is a letter, a digit or '_': digits glued to one are
// part of a word (a hash, an ID), and read as a card number only as an
// identifier's are (gluedCard).
func isWord(c byte) bool {
	return isAlnum(c) || c == '_'
}

// isAlnum reports whether c is an ASCII letter or digit.
func isAlnum(c byte) bool {
	return isDigit(c) || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// InID reports whether s, an identifier (a key ID, a rule's or a task's name, a
// parameter), holds a run of digits that reads as a card number, wherever it stands:
// digits glued to letters count ("z4761739001010267", "owner4761739001010119x"), as
// in MaskText, and so do those of a hex hash, since an identifier holds none. A
// run reads as a card number when it passes the Luhn check and has 16
// to 19 digits, or 13 to 15 with a card scheme's prefix: 4 for 13 digits (Visa), 30,
// 36 or 38 for 14 (Diners), 34 or 37 for 15 (American Express). Runs of 13 to 15
// digits without one are left alone: a merchant ID has 15 digits and a timestamp 14,
// and a tenth of them pass the Luhn check. Nor do runs starting with 89, a SIM's
// ICCID. Digits of other scripts count as their ASCII values.
func InID(s string) bool {
	if f, ok := foldDigits(s); ok {
		s = f
	}
	return len(idCards(s)) > 0
}

// MaskID returns s, an identifier, with each run of digits InID reads as a card
// number masked to first 6 / last 4, for an error message that quotes it. It
// returns s itself when there is none.
func MaskID(s string) string {
	if len(s) < minPAN {
		return s
	}
	orig := s
	if f, ok := foldDigits(s); ok {
		s = f
	}
	runs := idCards(s)
	if len(runs) == 0 {
		return orig
	}
	var b strings.Builder
	last := 0
	for _, r := range runs {
		b.WriteString(s[last:r[0]])
		b.WriteString(MaskPAN(s[r[0]:r[1]]))
		last = r[1]
	}
	b.WriteString(s[last:])
	return b.String()
}

// idCards returns the start and end of each run of ASCII digits in s that reads as
// a card number (InID).
func idCards(s string) [][2]int {
	var out [][2]int
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		if run := s[i:j]; cardRun(run) {
			out = append(out, [2]int{i, j})
		}
		i = j
	}
	return out
}

func cardRun(d string) bool {
	switch n := len(d); {
	case n < minPAN || n > maxPAN || !Luhn(d) || strings.HasPrefix(d, "89"):
		// 89 is telecommunications (ISO/IEC 7812's major industry identifier 8):
		// a SIM's ICCID, 19 digits passing the check, and no payment card.
		return false
	case n >= 16:
		return true
	case n == 13:
		return d[0] == '4'
	case n == 14:
		return strings.HasPrefix(d, "30") || strings.HasPrefix(d, "36") || strings.HasPrefix(d, "38")
	default: // 15
		return strings.HasPrefix(d, "34") || strings.HasPrefix(d, "37")
	}
}

// MaskField returns s, a value a terminal or a person wrote (a label, an app
// version, a note) that is stored or shown, with its card numbers masked: those
// MaskText finds, and those glued to letters that MaskID finds. It returns s
// itself, without allocating, when s has too few digits to hold one.
func MaskField(s string) string {
	if countDigits(s) < minPAN && isASCII(s) {
		return s
	}
	m, _ := MaskText(s)
	return MaskID(m)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
