package config

import (
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// undocumented are the configuration keys docs/switchyard.example.yaml leaves out on
// purpose: the cluster section is documented in docs/cluster.md ("Configuration
// keys"), breaker.threshold and breaker.cooldown are old names refused with a
// pointer to the new ones, and risk.profiles.defaults and the fields of an
// attestation key (which needs its PEM file to validate) are shown commented out.
// Each entry stands for itself and the keys below it.
var undocumented = []string{"cluster", "breaker.threshold", "breaker.cooldown", "risk.profiles.defaults", "attestation.keys[]"}

// TestExampleDocumentsEveryKey keeps docs/switchyard.example.yaml complete: every key
// of Config (by its yaml tags) appears in it, so that a key added to the code is
// documented where operators look (TestExampleFile checks the other way: every key
// of the example is known).
func TestExampleDocumentsEveryKey(t *testing.T) {
	b, err := os.ReadFile("../../docs/switchyard.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	nodePaths(&doc, "", have)
	want := map[string]bool{}
	typePaths(reflect.TypeFor[Config](), "", want)
	var missing []string
next:
	for k := range want {
		for _, u := range undocumented {
			if k == u || strings.HasPrefix(k, u+".") || strings.HasPrefix(k, u+"[]") {
				continue next
			}
		}
		if !have[k] {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("keys of the configuration missing from docs/switchyard.example.yaml (document them there, with their default):\n  %s", strings.Join(missing, "\n  "))
	}
}

// nodePaths adds the key paths of the YAML node n (list elements as []) to out.
func nodePaths(n *yaml.Node, path string, out map[string]bool) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			nodePaths(c, path, out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := join(path, n.Content[i].Value)
			out[p] = true
			nodePaths(n.Content[i+1], p, out)
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			nodePaths(c, path+"[]", out)
		}
	}
}

// typePaths adds the key paths of the type t (slices' elements as [], maps' values
// not descended into) to out.
func typePaths(t reflect.Type, path string, out map[string]bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(reflect.TypeFor[yaml.Unmarshaler]()) {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		fields := map[string]reflect.Type{}
		yamlFields(t, fields)
		for k, ft := range fields {
			p := join(path, k)
			out[p] = true
			typePaths(ft, p, out)
		}
	case reflect.Slice:
		typePaths(t.Elem(), path+"[]", out)
	}
}

// TestClusterExamplesParse: the cluster example's node files (examples/cluster, which
// docs/cluster.md runs) stay valid.
func TestClusterExamplesParse(t *testing.T) {
	files, err := filepath.Glob("../../examples/cluster/node*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples/cluster/node*.yaml: %v", err)
	}
	for _, f := range files {
		if _, err := Load(f); err != nil {
			t.Error(err)
		}
	}
}
