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

// parseBothWays parses f with the plain decode where onlyKnownFields allows it and
// again with the strict decode always, and returns both files and problems.
func parseBothWays(f SourceFile) (fast, strict *parsedFile, fastProblems, strictProblems []Problem) {
	c := &compiler{}
	fast = c.parseFile(f)
	reparseAlways = true
	defer func() { reparseAlways = false }()
	s := &compiler{}
	strict = s.parseFile(f)
	return fast, strict, c.problems, s.problems
}

// TestParseFileBothWays: every file of the analysts' rule pack takes the plain
// decode of the node tree already parsed (no second parse) and gives the same
// document as the strict decoder; files with unknown keys, wrong types, aliases or
// merge keys give the same document and the same problems either way.
func TestParseFileBothWays(t *testing.T) {
	files, err := ReadDir(filepath.Join("..", "..", "rules"))
	if err != nil || len(files) < 5 {
		t.Fatalf("the rule pack: %d files, %v", len(files), err)
	}
	for _, f := range files {
		var root yaml.Node
		if err := yaml.Unmarshal(f.Data, &root); err != nil {
			t.Fatal(err)
		}
		if !onlyKnownFields(root.Content[0], fileDocReflect) {
			t.Errorf("%s: onlyKnownFields = false: the pack's file would be parsed twice", f.Name)
		}
		fast, strict, fp, sp := parseBothWays(f)
		if fast == nil || strict == nil || len(fp) != 0 || len(sp) != 0 {
			t.Fatalf("%s: %v / %v", f.Name, fp, sp)
		}
		if !reflect.DeepEqual(fast.doc, strict.doc) {
			t.Errorf("%s: the file decodes differently", f.Name)
		}
	}
	const rule = "  - id: big\n    condition: txn.amount > 100\n    action: alert\n"
	for _, tc := range []struct {
		name, text string
		plain      bool // onlyKnownFields says yes
		problems   bool
	}{
		{"known", "owner: risk\ntimezone: Asia/Shanghai\ncounters:\n  - {name: c, dimension: card, window: 1h}\nrules:\n" + rule, true, false},
		{"unknown at the top", "ownr: risk\nrules:\n" + rule, false, true},
		{"unknown in a rule", "rules:\n" + rule + "    sevrity: high\n", false, true},
		{"unknown in a counter", "counters:\n  - {name: c, dimenson: card}\nrules:\n" + rule, false, true},
		{"wrong type", "rules: 5\n", true, true},
		{"no rules", "owner: risk\n", true, true},
		{"test_base takes any keys", "test_base: {txn: {amount: 5}, anything: 1}\nrules:\n" + rule, true, false},
		{"merge key", "base: &b {id: big}\nrules:\n  - <<: *b\n    condition: txn.amount > 100\n    action: alert\n", false, true},
		{"alias", "rules:\n  - &r {id: big, condition: txn.amount > 100, action: alert}\n", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := SourceFile{Name: "a.yaml", Data: []byte(tc.text)}
			var root yaml.Node
			if err := yaml.Unmarshal(f.Data, &root); err != nil {
				t.Fatal(err)
			}
			if got := onlyKnownFields(root.Content[0], fileDocReflect); got != tc.plain {
				t.Errorf("onlyKnownFields = %v, want %v", got, tc.plain)
			}
			fast, strict, fp, sp := parseBothWays(f)
			if (len(fp) != 0) != tc.problems {
				t.Errorf("problems %v, want some: %v", fp, tc.problems)
			}
			if !reflect.DeepEqual(fp, sp) {
				t.Errorf("problems differ:\n%v\n%v", fp, sp)
			}
			if (fast == nil) != (strict == nil) || fast != nil && !reflect.DeepEqual(fast.doc, strict.doc) {
				t.Errorf("decoded differently:\n%+v\n%+v", fast, strict)
			}
		})
	}
}

// BenchmarkLoadPack loads the analysts' rule pack (parse, compile, the tests'
// inputs), as a start or a reload does.
func BenchmarkLoadPack(b *testing.B) {
	dir := filepath.Join("..", "..", "rules")
	for b.Loop() {
		if _, err := Load(dir, LoadOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
