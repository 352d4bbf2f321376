package ruleset

import (
	"reflect"
	"slices"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// decodeInput and parseFile must decode strictly (an unknown name is an error),
// which yaml.v3 offers only to a Decoder reading text (KnownFields), not to
// Node.Decode: the strict way parses the text again (parseFile: a rule file is
// parsed into a node tree first, for the lines of its keys) or marshals the node
// and parses it again (decodeInput: a test's input), which cost more than the
// rest of a rule set's load together. Almost every file and input names only
// known fields, and for those a plain Node.Decode gives the same value;
// onlyKnownFields tells which, and anything it is unsure of goes the strict way,
// which also words every error.

// reparseAlways, set by tests, makes decodeInput and parseFile always take the
// strict way.
var reparseAlways bool

var (
	yamlNodeReflect    = reflect.TypeFor[yaml.Node]()
	yamlUnmarshaler    = reflect.TypeFor[yaml.Unmarshaler]()
	yamlObsoleteUnmars = reflect.TypeFor[interface {
		UnmarshalYAML(unmarshal func(any) error) error
	}]()
	// structFields caches, by struct type, its fields by their YAML name;
	// nil for a type onlyKnownFields is unsure of (inline or embedded fields).
	structFields sync.Map // reflect.Type -> map[string]reflect.Type
)

// onlyKnownFields reports whether every mapping key in n names a field of the
// struct type it would be decoded into (t at the top), so that a strict
// decoder would report no unknown field. False when unsure: aliases, merge
// keys, inline or embedded fields, the older unmarshaler interface (whose
// decoding a strict decoder reaches into). A type with its own UnmarshalYAML
// decodes its node itself, strictly or not whichever way it is reached.
func onlyKnownFields(n *yaml.Node, t reflect.Type) bool {
	if n == nil {
		return true
	}
	if n.Kind == yaml.AliasNode {
		return false
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == yamlNodeReflect {
		return true // a yaml.Node field takes its node as it is, strictly or not
	}
	pt := reflect.PointerTo(t)
	if pt.Implements(yamlObsoleteUnmars) || t.Implements(yamlObsoleteUnmars) {
		return false
	}
	if pt.Implements(yamlUnmarshaler) || t.Implements(yamlUnmarshaler) {
		return true
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return true // a type error either way, or a scalar the type reads (time.Time)
		}
		fields := fieldsOf(t)
		if fields == nil {
			return false
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode || k.Tag != "" && k.Tag != "!!str" || k.Value == "<<" {
				// A merge key, or a key with a tag (a !!binary key is
				// decoded before it is matched to a field).
				return false
			}
			ft, ok := fields[k.Value]
			if !ok || !onlyKnownFields(v, ft) {
				return false
			}
		}
		return true
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return true
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Kind == yaml.AliasNode || n.Content[i].Value == "<<" || !onlyKnownFields(n.Content[i+1], t.Elem()) {
				return false
			}
		}
		return true
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			return true
		}
		for _, c := range n.Content {
			if !onlyKnownFields(c, t.Elem()) {
				return false
			}
		}
		return true
	default:
		return true
	}
}

// fieldsOf returns struct type t's fields by the names yaml.v3 gives them (the
// tag's name, else the field's name in lower case; none for "-" and
// unexported fields), nil when t has an inline or embedded field.
func fieldsOf(t reflect.Type) map[string]reflect.Type {
	if f, ok := structFields.Load(t); ok {
		return f.(map[string]reflect.Type)
	}
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous {
			fields = nil
			break
		}
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "" && !strings.Contains(string(f.Tag), ":") {
			tag = string(f.Tag) // yaml.v3 reads a tag without a key as its own
		}
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if slices.Contains(strings.Split(opts, ","), "inline") {
			fields = nil
			break
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
	}
	structFields.Store(t, fields)
	return fields
}
