// Package kit is the toolkit every switchyard command is built with, so that the
// commands behave alike. Its conventions:
//
//   - Exit codes: ExitOK (0) success, and for help asked with -h, -help or --help at
//     any level ("switchyard merchant -h", "switchyard merchant freeze -h"); ExitError
//     (1) the operation failed or found problems (the API refused, a rule test
//     failed, an import had rejected rows); ExitUsage (2) a bad command line. Tests and
//     scripts rely on these three values.
//   - Messages: a failure is one line on stderr, "switchyard: WHAT: WHY"; a usage
//     error adds the hint to run the command with -h. Results go to stdout only, so
//     that they can be piped.
//   - Help never acts: "-h" anywhere before "--" prints the usage to stdout and
//     returns ExitOK before any connection is opened or any API is called (WantsHelp).
//   - Output: for people by default, a table (Table) or one record's labelled
//     values (Fields), control characters in their text escaped (a record's text
//     can come from outside: no escape sequence reaches the terminal), times in
//     the acquirer's zone with their offset (LocalTime);
//     --json for JSON (one indented document, or JSON lines for a stream), the
//     machine form scripts read; --csv or --format csv where a spreadsheet is the
//     natural reader (JSON, CSV).
//   - Connection: every command that talks to a running switch takes --admin URL
//     (default $SWITCHYARD_ADMIN, else http://127.0.0.1:8080) and --token T (default
//     $SWITCHYARD_TOKEN) anywhere on its line, and most take --data DIR to read a
//     stopped switch's data directory instead (ExtractConn).
package kit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/switchyard/switchyard/internal/csvcell"
)

// Exit codes of every command (see the package comment).
const (
	ExitOK    = 0 // success, or help was asked for
	ExitError = 1 // the operation failed or found problems
	ExitUsage = 2 // bad command line
)

// UsageError is a bad command line: the command exits with ExitUsage.
type UsageError struct{ Msg string }

// Error returns the message.
func (e *UsageError) Error() string { return e.Msg }

// Usagef returns a *UsageError with a formatted message.
func Usagef(format string, args ...any) error {
	return &UsageError{fmt.Sprintf(format, args...)}
}

// IsUsage reports whether err is (or wraps) a command-line usage error.
func IsUsage(err error) bool {
	var ue *UsageError
	return errors.As(err, &ue)
}

// WantsHelp reports whether args ask for help: "-h", "-help", "--help" or "help"
// as the first argument, or "-h", "-help", "--help" anywhere before "--". A command
// checks it before it connects to anything, so that help never acts.
func WantsHelp(args []string) bool {
	if len(args) > 0 && args[0] == "help" {
		return true
	}
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

// Table writes a table for people: header and rows are tab-separated cells,
// aligned in columns two spaces apart (by display width when a cell holds wide
// characters, Chinese ones: Width). A cell is shown as ForTerminal makes it.
func Table(w io.Writer, header string, rows [][]string) {
	lines := make([][]string, 0, len(rows)+1)
	lines = append(lines, strings.Split(header, "\t"))
	wide, same := false, true
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, c := range r {
			cells[i] = ForTerminal(c)
			wide = wide || Width(cells[i]) != utf8.RuneCountInString(cells[i])
		}
		same = same && len(cells) == len(lines[0])
		lines = append(lines, cells)
	}
	if wide && same {
		alignByWidth(w, lines, 2)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, cells := range lines {
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	_ = tw.Flush()
}

// alignByWidth writes lines (each as many cells) as Table's tabwriter would, but
// with the columns aligned by the cells' display width (Width): a Chinese
// character takes two columns of a terminal, where the tabwriter counts one.
func alignByWidth(w io.Writer, lines [][]string, padding int) {
	widths := make([]int, len(lines[0]))
	for _, cells := range lines {
		for j, c := range cells {
			widths[j] = max(widths[j], Width(c))
		}
	}
	var b strings.Builder
	for _, cells := range lines {
		b.Reset()
		for j, c := range cells {
			b.WriteString(c)
			if j < len(cells)-1 {
				b.WriteString(strings.Repeat(" ", widths[j]-Width(c)+padding))
			}
		}
		b.WriteByte('\n')
		_, _ = io.WriteString(w, b.String())
	}
}

// Width is the number of terminal columns s takes: two for a wide or full-width
// character (Chinese, Japanese, Korean, full-width forms, most emoji), none for a
// combining mark or a format character, one for the others. It follows Unicode's
// East Asian Width for the common ranges, not every code point.
func Width(s string) int {
	n := 0
	for _, r := range s {
		switch {
		case unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf):
		case wideRune(r):
			n += 2
		default:
			n++
		}
	}
	return n
}

// wideRune reports whether r is East Asian Wide or Fullwidth (the common ranges).
func wideRune(r rune) bool {
	switch {
	case r < 0x1100:
		return false
	case r <= 0x115F, r >= 0x2E80 && r <= 0x303E, r >= 0x3041 && r <= 0x33FF, r >= 0x3400 && r <= 0x4DBF,
		r >= 0x4E00 && r <= 0x9FFF, r >= 0xA000 && r <= 0xA4CF, r >= 0xAC00 && r <= 0xD7A3, r >= 0xF900 && r <= 0xFAFF,
		r >= 0xFE30 && r <= 0xFE4F, r >= 0xFF00 && r <= 0xFF60, r >= 0xFFE0 && r <= 0xFFE6,
		r >= 0x1F300 && r <= 0x1F64F, r >= 0x1F900 && r <= 0x1F9FF, r >= 0x20000 && r <= 0x3FFFD:
		return true
	}
	return false
}

// ForTerminal returns s as a terminal may show it: tabs and line breaks become
// spaces (a row stays one line, its columns aligned), and every other control
// character (C0, DEL, C1), format character (the bidi overrides and isolates
// U+202A-U+202E and U+2066-U+2069, zero-width characters) or invalid UTF-8 byte is
// written as its Go escape (\x1b, \u009b, \u202e); Chinese and other printable
// text is kept as it is. The cells and values come from records that others wrote: a
// merchant's webhook host's status line, a change's reason, a terminal's
// report; as raw bytes an escape sequence among them would act on the
// operator's terminal (move the cursor over other rows, retitle the window,
// write the clipboard with OSC 52). Table and Fields apply it to every cell and
// value; a command that writes such text otherwise (its own tabwriter with other
// settings, a sentence with fmt) applies it to each value it writes.
func ForTerminal(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < 0x20 || b >= 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var sb strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&sb, `\x%02x`, s[i])
		case r == '\t' || r == '\n' || r == '\r':
			sb.WriteByte(' ')
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&sb, `\x%02x`, r)
		case r >= 0x80 && r <= 0x9f, unicode.Is(unicode.Cf, r):
			// C1 controls; format characters (bidi overrides and isolates,
			// zero-width ones), which would reorder or hide the text around them.
			fmt.Fprintf(&sb, `\u%04x`, r)
		default:
			sb.WriteString(s[i : i+n])
		}
		i += n
	}
	return sb.String()
}

// ForTerminalLines is ForTerminal for text of several lines (a rule file's
// problem with its source line and caret, a test's failure): each line is
// escaped as ForTerminal does, and the line feeds between them are kept.
func ForTerminalLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = ForTerminal(l)
	}
	return strings.Join(lines, "\n")
}

// Fields writes one record for people: a "Label: value" line per row, the values
// aligned in a column (as kubectl describe does). An empty value is written "-"; tabs
// and line breaks in a value become spaces, so that each row stays one line, and
// other control characters are escaped (ForTerminal).
func Fields(w io.Writer, rows [][2]string) {
	flat := strings.NewReplacer("\r\n", " ")
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	for _, r := range rows {
		v := ForTerminal(flat.Replace(r[1]))
		if v == "" {
			v = "-"
		}
		fmt.Fprintf(tw, "%s:\t%s\n", r[0], v)
	}
	_ = tw.Flush()
}

// LocalTimeLayout is how a command shows a time to people: in the acquirer's zone,
// with its offset (the journal's TIME column).
const LocalTimeLayout = "2006-01-02 15:04:05.000 -07:00"

// LocalTime shows t in loc (nil: UTC) with LocalTimeLayout; "-" for the zero time.
func LocalTime(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return "-"
	}
	if loc == nil {
		loc = time.UTC
	}
	return t.In(loc).Format(LocalTimeLayout)
}

// JSON writes v as one indented JSON document.
func JSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// CSV writes a header and rows as RFC 4180 CSV, each cell that a spreadsheet
// would run as a formula quoted (csvcell).
func CSV(w io.Writer, header []string, rows [][]string) error {
	cw := csvcell.NewWriter(w)
	if err := cw.Write(header); err != nil {
		return err
	}
	if err := cw.WriteAll(rows); err != nil {
		return err
	}
	return cw.Error()
}
