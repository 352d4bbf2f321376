package kit

import (
	"slices"
	"strings"
)

// SubUsage returns the lines of usage (a command group's help page) that describe
// the subcommand name ("merchant report", or "oplog" for a group's own form). A
// page lists its subcommands as "switchyard GROUP SUB ..." lines, or as "SUB ..."
// lines, indented by two spaces (or not at all, when the page's "switchyard GROUP"
// lines start at the margin), SUB possibly a|b|c alternatives, each followed by its
// more deeply indented continuation lines. "" if no line describes it.
func SubUsage(usage, name string) string {
	group, sub, _ := strings.Cut(name, " ")
	if group == "" {
		return ""
	}
	lines := strings.Split(usage, "\n")
	head := 2 // the indentation of a subcommand's first line
	for _, line := range lines {
		if strings.HasPrefix(line, "switchyard "+group+" ") {
			head = 0
			break
		}
	}
	var b strings.Builder
	in := false
	for _, line := range lines {
		trimmed := strings.TrimLeft(line, " ")
		indent := len(line) - len(trimmed)
		f := strings.Fields(trimmed)
		switch {
		case len(f) == 0 || indent < head:
			in = false
		case indent == head && f[0] == "switchyard":
			in = len(f) >= 2 && f[1] == group
			if in && sub == "" {
				in = len(f) == 2 || strings.HasPrefix(f[2], "[") || strings.HasPrefix(f[2], "-")
			} else if in {
				in = len(f) >= 3 && slices.Contains(strings.Split(f[2], "|"), sub)
			}
		case indent == head:
			in = sub != "" && slices.Contains(strings.Split(f[0], "|"), sub)
		}
		if in {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}
