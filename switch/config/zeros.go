package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/switchyard/switchyard/switch/cluster"
)

// numberLeaves adds to out, by key path (listeners[0].idle_timeout), the value in v
// of every number and string the YAML node n sets explicitly: the integers, floats,
// durations, sizes and strings written in the file (not a null: `key:` with no
// value is left out, as a missing key). Maps are skipped (their entries have no
// defaults).
func numberLeaves(n *yaml.Node, v reflect.Value, path string, out map[string]reflect.Value) {
	for n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if f, ok := fieldByYAML(v, n.Content[i].Value); ok {
				numberLeaves(n.Content[i+1], f, join(path, n.Content[i].Value), out)
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, e := range n.Content {
			if i < v.Len() {
				numberLeaves(e, v.Index(i), fmt.Sprintf("%s[%d]", path, i), out)
			}
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64, reflect.String:
		if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
			out[path] = v
		}
	}
}

// fieldByYAML returns the field of the struct v that the YAML key name sets,
// looking into inline structs as the decoder does.
func fieldByYAML(v reflect.Value, name string) (reflect.Value, bool) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "-" {
			continue
		}
		if strings.Contains(","+opts+",", ",inline,") {
			fv := v.Field(i)
			for fv.Kind() == reflect.Pointer && !fv.IsNil() {
				fv = fv.Elem()
			}
			if fv.Kind() == reflect.Struct {
				if got, ok := fieldByYAML(fv, name); ok {
					return got, true
				}
			}
			continue
		}
		if tag == "" {
			tag = strings.ToLower(f.Name)
		}
		if f.IsExported() && tag == name {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// explicitZeros returns the paths of the numbers the file sets to 0 and of the
// strings it sets to "" (doc is the file's YAML, c the configuration decoded from
// it, before ApplyDefaults).
func explicitZeros(doc *yaml.Node, c *Config) []string {
	leaves := map[string]reflect.Value{}
	numberLeaves(doc, reflect.ValueOf(c).Elem(), "", leaves)
	var zeros []string
	for path, v := range leaves {
		if v.IsZero() {
			zeros = append(zeros, path)
		}
	}
	sort.Strings(zeros)
	return zeros
}

// emptyUsesDefault are the string keys (a list's index written []) whose "" is
// read as "not set" where they are used, not by ApplyDefaults, with their
// defaults: an explicit "" is refused for them as for the keys ApplyDefaults fills.
var emptyUsesDefault = map[string]string{
	"refunds.policies[].void":        "same-day",
	"refunds.policies[].refund_from": "any-time",
	"hsm.backend":                    "software",
	"hsm.lmk_scheme":                 "keyblock",
	"ratings.refresh_at":             DefaultRatingsRefreshAt,
	"cluster.group_pause":            cluster.DefaultGroupPause.String(),
	"cluster.shed_after":             cluster.DefaultShedAfter.String(),
	"cluster.lease_ttl":              cluster.DefaultLeaseTTL.String(),
	"cluster.lease_refresh":          cluster.DefaultLeaseRefresh.String(),
}

// listIndex matches a list's index in a key path: [3].
var listIndex = regexp.MustCompile(`\[[0-9]+\]`)

// checkZeros refuses each of the zeros (explicitZeros) that ApplyDefaults has
// replaced by a default: ApplyDefaults reads 0 and "" as "not set", so an
// operator's explicit 0 (no grace, no timeout) or "" (log.level: "") would
// silently become the default; and each "" of emptyUsesDefault. Where 0 means
// something, Parse sets the default before decoding (journal.window) and the 0
// stands; a "" that ApplyDefaults leaves (a file not named, refunds.policies[].kind
// for every kind) stands too.
func checkZeros(doc *yaml.Node, c *Config, zeros []string) error {
	leaves := map[string]reflect.Value{}
	numberLeaves(doc, reflect.ValueOf(c).Elem(), "", leaves)
	var errs []error
	for _, path := range zeros {
		v, ok := leaves[path]
		if !ok {
			continue
		}
		if v.Kind() == reflect.String {
			def, atUse := emptyUsesDefault[listIndex.ReplaceAllString(path, "[]")]
			if !v.IsZero() {
				def = v.String()
			} else if !atUse {
				continue
			}
			errs = append(errs, fmt.Errorf("%s: \"\": want a value (leave the key out for the default, %s)", path, def))
			continue
		}
		if v.IsZero() {
			continue
		}
		zero, def := "0", fmt.Sprint(v.Interface())
		if d, ok := v.Interface().(Duration); ok {
			zero, def = "0s", shortDuration(d.D())
		}
		errs = append(errs, fmt.Errorf("%s: %s: want a value above zero (leave the key out for the default, %s)", path, zero, def))
	}
	return errors.Join(errs...)
}

// shortDuration writes d as time.Duration does without its zero minutes and
// seconds: 10m, 168h, 1h30m.
func shortDuration(d time.Duration) string {
	s := d.String()
	if t, ok := strings.CutSuffix(s, "m0s"); ok {
		s = t + "m"
	}
	if t, ok := strings.CutSuffix(s, "h0m"); ok {
		s = t + "h"
	}
	return s
}
