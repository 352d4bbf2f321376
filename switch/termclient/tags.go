package termclient

import "fmt"

// ParseTags parses DE 48 tags written as TAG=VALUE pairs separated by commas, as
// typed on a command line: "DI=SN-1,GL=39.9,116.4". A tag is two letters or digits;
// a comma starts a new pair only when TAG= follows it, otherwise it belongs to the
// value (a location GL=lat,lon has one). Each argument is parsed on its own (a
// repeated --tlv flag gives several); empty arguments are skipped. A value that
// itself contains ",XY=" cannot be written this way.
func ParseTags(args ...string) ([][2]string, error) {
	var out [][2]string
	for _, a := range args {
		if a == "" {
			continue
		}
		if !startsTag(a) {
			return nil, fmt.Errorf("DE 48 tags %q: want TAG=VALUE (a 2-character tag of letters or digits), pairs separated by commas", a)
		}
		rest := a
		for rest != "" {
			// The value runs to the next comma followed by TAG=, or to the end.
			end := len(rest)
			for i := 3; i < len(rest); i++ {
				if rest[i] == ',' && startsTag(rest[i+1:]) {
					end = i
					break
				}
			}
			out = append(out, [2]string{rest[:2], rest[3:end]})
			rest = rest[min(end+1, len(rest)):]
		}
	}
	return out, nil
}

// startsTag reports whether s begins with a DE 48 tag and '=': two ASCII letters or
// digits.
func startsTag(s string) bool {
	if len(s) < 3 || s[2] != '=' {
		return false
	}
	for _, c := range []byte(s[:2]) {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
