package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// checkKeys walks the YAML node n against the Go type t that it is decoded into and
// reports, naming each key by its path (listeners[0].idle_timeout), every key the
// type does not know (with the nearest known key when one is close: a typo) and every
// value that does not decode (a duration without a unit, text for a number). The
// decoder's own errors name only a line, and only the first of them in a value a
// custom type decodes; this names them all.
func checkKeys(n *yaml.Node, t reflect.Type, path string, bad func(key, format string, args ...any)) {
	for n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Tag == "!!null" {
		return // an empty value: the zero value, defaults apply
	}
	if reflect.PointerTo(t).Implements(reflect.TypeFor[yaml.Unmarshaler]()) {
		checkLeaf(n, t, path, bad)
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			checkLeaf(n, t, path, bad) // the decoder says what it wanted
			return
		}
		fields := map[string]reflect.Type{}
		yamlFields(t, fields)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" { // a merge key: its keys are checked where they are defined
				continue
			}
			ft, ok := fields[k.Value]
			if !ok {
				bad(join(path, k.Value), "unknown key (line %d)%s", k.Line, suggest(k.Value, fields))
				continue
			}
			checkKeys(v, ft, join(path, k.Value), bad)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			checkLeaf(n, t, path, bad)
			return
		}
		for i, e := range n.Content {
			checkKeys(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), bad)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			checkLeaf(n, t, path, bad)
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			checkKeys(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value), bad)
		}
	case reflect.Interface, reflect.Func:
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		// The decoder truncates a float into an integer (50.5 becomes 50): an
		// amount in minor units written in major ones would be taken a hundred
		// times smaller, a count silently rounded.
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!float" {
			bad(path, "%s is not a whole number (line %d)", n.Value, n.Line)
			return
		}
		checkLeaf(n, t, path, bad)
	default:
		checkLeaf(n, t, path, bad)
	}
}

// lineRE is the "line N: " the YAML decoder starts its messages with.
var lineRE = regexp.MustCompile(`^line (\d+): `)

// checkLeaf decodes n into a value of type t and reports the decoder's complaint
// under the key's path, with its line at the end.
func checkLeaf(n *yaml.Node, t reflect.Type, path string, bad func(key, format string, args ...any)) {
	err := n.Decode(reflect.New(t).Interface())
	if err == nil {
		return
	}
	msgs := []string{err.Error()}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	if path == "" {
		path = "the file" // a top level that is not a mapping
	}
	for _, m := range msgs {
		m = lineRE.ReplaceAllString(m, "")
		bad(path, "%s (line %d)", m, n.Line)
	}
}

// yamlFields adds t's fields by their YAML names to out, inline structs' included.
func yamlFields(t reflect.Type, out map[string]reflect.Type) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		if strings.Contains(","+opts+",", ",inline,") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				yamlFields(ft, out)
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name) // the YAML package's default
		}
		out[name] = f.Type
	}
}

// suggest returns ": did you mean X?" for the known key nearest to k when it is
// within two edits, else the list of the known keys.
func suggest(k string, fields map[string]reflect.Type) string {
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	sort.Strings(names)
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(k, n); d < bestD {
			best, bestD = n, d
		}
	}
	if best != "" {
		return fmt.Sprintf(": did you mean %s?", best)
	}
	return fmt.Sprintf("; known keys here: %s", strings.Join(names, ", "))
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
