package kit

import (
	"slices"
	"strings"
)

// SubUsage returns the lines of usage (a command group's help page) that describe
// the subcommand name ("merchant report", or "oplog" for a group's own form). A
// page lists its subcommands on lines indented by two spaces, as "switchyard GROUP
// SUB ..." or as "SUB ...", SUB possibly a|b|c alternatives, each followed by its
// more deeply indented continuation lines. "" if no line describes it.
func SubUsage(usage, name string) string {
	group, sub, _ := strings.Cut(name, " ")
	if group == "" {
		return ""
	}
	var b strings.Builder
	in := false
	for _, line := range strings.Split(usage, "\n") {
		trimmed := strings.TrimLeft(line, " ")
		indent := len(line) - len(trimmed)
		f := strings.Fields(trimmed)
		switch {
		case len(f) == 0 || indent < 2:
			in = false
		case indent == 2 && f[0] == "switchyard":
			in = len(f) >= 2 && f[1] == group
			if in && sub == "" {
				in = len(f) == 2 || strings.HasPrefix(f[2], "[") || strings.HasPrefix(f[2], "-")
			} else if in {
				in = len(f) >= 3 && slices.Contains(strings.Split(f[2], "|"), sub)
			}
		case indent == 2:
			in = sub != "" && slices.Contains(strings.Split(f[0], "|"), sub)
		}
		if in {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}
