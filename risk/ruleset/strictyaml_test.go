package ruleset

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"go.yaml.in/yaml/v3"
)

// loadBothWays loads dir with the plain decode where onlyKnownFields allows it
// and again with the strict decode always, and returns both results.
func loadBothWays(t *testing.T, dir string) (fast, strict *RuleSet, fastErr, strictErr error) {
	t.Helper()
	fast, fastErr = Load(dir, LoadOptions{})
	reparseAlways = true
	defer func() { reparseAlways = false }()
	strict, strictErr = Load(dir, LoadOptions{})
	return
}

// TestDecodeInputBothWays: the analysts' rule pack's test inputs decode to the
// same values with the plain decode (where onlyKnownFields allows it) as with
// the strict one, and inputs with unknown names, wrong types, aliases or merge
// keys give the same errors (the strict way's words) either way.
func TestDecodeInputBothWays(t *testing.T) {
	pack := filepath.Join("..", "..", "rules")
	if _, err := os.Stat(pack); err != nil {
		t.Fatalf("the rule pack: %v", err)
	}
	fast, strict, ferr, serr := loadBothWays(t, pack)
	if ferr != nil || serr != nil {
		t.Fatalf("the rule pack: %v / %v", ferr, serr)
	}
	cases := 0
	for i, r := range fast.Rules {
		if !reflect.DeepEqual(r.Tests, strict.Rules[i].Tests) {
			t.Errorf("rule %s: the tests decode differently:\n%+v\n%+v", r.ID, r.Tests, strict.Rules[i].Tests)
		}
		cases += len(r.Tests)
	}
	if cases < 100 {
		t.Fatalf("%d test cases in the rule pack, want its 200 or so", cases)
	}

	// Which inputs the plain decode takes, and the errors of those it must not.
	for _, tc := range []struct {
		name, input string
		plain       bool // onlyKnownFields says yes
		err         bool
	}{
		{"known", `{txn: {amount: 5, card_hash: abc, time: 2025-06-04T06:00:00Z}, merchant: {single_limit: 10}, device: {findings: [root]}}`, true, false},
		{"unknown at the top", `{txm: {amount: 5}}`, false, true},
		{"unknown inside", `{txn: {amount: 5, amout: 6}}`, false, true},
		{"unknown in lists", `{lists: {nope: true}}`, false, true},
		{"wrong type", `{txn: {amount: five}}`, true, true},
		{"a sequence for a struct", `{txn: [1, 2]}`, true, true},
		{"merge key", `{txn: {<<: {amount: 5}}}`, false, false},
		{"binary key", `{txn: {!!binary dGltZQ==: 2025-06-04T06:00:00Z}}`, false, false},
		{"binary key of no field", `{!!binary terminal: {id: x}}`, false, true},
		{"alias", `{txn: &t {amount: 5}, merchant: {single_limit: 10}}`, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{"a.yaml": `
rules:
  - id: big
    condition: txn.amount > 100
    action: alert
    tests:
      - {name: a, input: ` + tc.input + `, expect: miss}
`}
			var node yaml.Node
			if err := yaml.Unmarshal([]byte(tc.input), &node); err != nil {
				t.Fatal(err)
			}
			if got := onlyKnownFields(deref(&node), inputReflect); got != tc.plain {
				t.Errorf("onlyKnownFields = %v, want %v", got, tc.plain)
			}
			fast, strict, ferr, serr := loadBothWays(t, writeRules(t, files))
			if (ferr != nil) != tc.err {
				t.Fatalf("error %v, want one: %v", ferr, tc.err)
			}
			if ferr != nil || serr != nil {
				if ferr == nil || serr == nil || ferr.Error() != serr.Error() {
					t.Fatalf("errors differ:\n%v\n%v", ferr, serr)
				}
				return
			}
			if !reflect.DeepEqual(fast.Rules[0].Tests, strict.Rules[0].Tests) {
				t.Errorf("decoded differently:\n%+v\n%+v", fast.Rules[0].Tests, strict.Rules[0].Tests)
			}
		})
	}
}
