// Package csvcell keeps the cells of the CSV files the switch writes from being
// run as formulas when a spreadsheet (Excel, WPS, LibreOffice) opens them
// ("CSV injection", OWASP), and undoes that on the files it reads back.
//
// The rule: a cell that is not a plain decimal number and whose first character
// is one a spreadsheet starts a formula with (= + - @, a tab or a carriage return,
// or their full-width forms ＝ ＋ － ＠, which Chinese input methods type) is
// written with a single quote ' before it. A spreadsheet shows the cell as text
// and hides the quote. Numbers, negative ones included (-100, -1.50), are written
// as they are, so amounts stay numbers. A cell that already starts with quotes
// followed by such a character gets one more quote, so that Unescape, which
// removes one, gives back every value exactly.
package csvcell

import (
	"encoding/csv"
	"io"
	"strings"
	"unicode/utf8"
)

// triggers are the first characters with which a spreadsheet reads a cell as a
// formula (or, for tab and carriage return, may after trimming them).
const triggers = "=+-@\t\r＝＋－＠"

// needsQuote says whether s, past any leading single quotes, starts with a
// trigger character and is not a plain number.
func needsQuote(s string) bool {
	r, _ := utf8.DecodeRuneInString(strings.TrimLeft(s, "'"))
	if r == utf8.RuneError || !strings.ContainsRune(triggers, r) {
		return false
	}
	return !isNumber(s)
}

// isNumber says whether s is a plain decimal number: an optional sign, digits and
// an optional fraction ("-100", "+1.5", "-.5").
func isNumber(s string) bool {
	if s != "" && (s[0] == '-' || s[0] == '+') {
		s = s[1:]
	}
	digits, dot := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && !dot:
			dot = true
		default:
			return false
		}
	}
	return digits > 0
}

// Escape returns s as it is safe to write in a CSV cell: with a single quote
// before it when a spreadsheet would take it for a formula (see the package
// documentation), as it is otherwise.
func Escape(s string) string {
	if needsQuote(s) {
		return "'" + s
	}
	return s
}

// Unescape undoes Escape: it removes the single quote Escape put before a cell.
// A cell Escape would not have written (a quote before anything but a formula
// character) is returned as it is.
func Unescape(s string) string {
	if strings.HasPrefix(s, "'") && needsQuote(s[1:]) {
		return s[1:]
	}
	return s
}

// Writer is a csv.Writer that escapes every cell (Escape) it writes. Every CSV
// the switch writes for people goes through one.
type Writer struct {
	*csv.Writer
	buf []string
}

// NewWriter returns a Writer writing to w.
func NewWriter(w io.Writer) *Writer { return &Writer{Writer: csv.NewWriter(w)} }

// Write writes one record, each cell escaped.
func (w *Writer) Write(record []string) error {
	w.buf = w.buf[:0]
	for _, c := range record {
		w.buf = append(w.buf, Escape(c))
	}
	return w.Writer.Write(w.buf)
}

// WriteAll writes records, each cell escaped, and flushes.
func (w *Writer) WriteAll(records [][]string) error {
	for _, r := range records {
		if err := w.Write(r); err != nil {
			return err
		}
	}
	w.Flush()
	return w.Error()
}
